from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.roles import MANAGERS, TAXONOMY_ADMINS, role_required
from annotator.models import AnnotationBatch, PromptActivation, PromptVersion
from annotator.prompt_versions import (
    PromptVersionError,
    prompt_version_activate,
    prompt_version_create,
)
from annotator.selectors import prompt_tokens_by_version
from annotator.services import annotation_batch_create, annotation_renormalise, batch_progress
from annotator.unmapped import CATEGORY_FIELDS, unmapped_value_products, unmapped_values
from catalog.models import Attribute, AttributeValue, Category, Product
from catalog.selectors import product_list_queryset
from catalog.taxonomy import services
from catalog.taxonomy.selectors import category_by_path
from config.http import HtmxHttpRequest

ANNOTATORS = (MANAGERS, TAXONOMY_ADMINS)
PROMPT_EDITORS = (TAXONOMY_ADMINS, MANAGERS)
UNMAPPED_PAGE = "annotator/unmapped/list.html"
UNMAPPED_PRODUCTS_PAGE = "annotator/unmapped/products.html"
LATEST_SHOWN = 12  # answers shown with their thumbnail on a batch's page


@require_GET
@role_required(*ANNOTATORS)
def batch_list(request: HtmxHttpRequest) -> HttpResponse:
    batches = AnnotationBatch.objects.select_related("created_by")[:30]
    pending = Product.objects.filter(status=Product.Status.PENDING).count()
    return render(request, "annotator/batch_list.html", {"batches": batches, "pending": pending})


@require_POST
@role_required(*ANNOTATORS)
def batch_start(request: HtmxHttpRequest) -> HttpResponse:
    """Start a batch for: chosen products (`product` ids), the product list's
    current filter (`scope=filter` with q/status/category), or all pending."""
    scope = request.POST.get("scope", "pending")
    if scope == "selected":
        ids = [int(i) for i in request.POST.getlist("product") if i.isdigit()]
        products = Product.objects.filter(id__in=ids)
        description = f"{len(ids)} chosen products"
    elif scope == "filter":
        status = request.POST.get("status", "")
        category = None
        if request.POST.get("category", "").isdigit():
            category = Category.objects.filter(pk=request.POST["category"]).first()
        query = request.POST.get("q", "").strip()[:200]
        products = product_list_queryset(
            query=query,
            status=status if status in Product.Status.values else "",
            category=category,
        )
        parts = [f"search “{query}”" if query else "", status, category.path if category else ""]
        description = "products matching " + (", ".join(p for p in parts if p) or "everything")
    elif scope == "failed":
        products = Product.objects.filter(status=Product.Status.FAILED)
        description = "failed products, again"
    else:
        products = Product.objects.filter(status=Product.Status.PENDING)
        description = "all pending products"
    batch = annotation_batch_create(products=products, user=request.user, description=description)
    if not batch.total:
        messages.warning(
            request, "Nothing to annotate: no product in that selection may be annotated now."
        )
    return redirect("batch_detail", pk=batch.pk)


@require_GET
@role_required(*ANNOTATORS)
def batch_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(AnnotationBatch.objects.select_related("created_by"), pk=pk)
    context = {
        "batch": batch,
        "progress": batch_progress(batch),
        "waiting_for_image": Product.objects.filter(annotation_batch_waiting=batch.pk).count(),
        "reannotate_fallback": settings.ANNOTATOR_REANNOTATE_FALLBACK,
        # The latest answers, each with the thumbnail of the image the model saw.
        "latest": batch.annotations.select_related("product", "category").order_by("-id")[
            :LATEST_SHOWN
        ],
    }
    if request.htmx:
        return render(request, "annotator/batch_detail.html#progress", context)
    return render(request, "annotator/batch_detail.html", context)


@require_POST
@role_required(TAXONOMY_ADMINS)
def renormalise(request: HtmxHttpRequest) -> HttpResponse:
    """Re-map chosen products' stored answers after a taxonomy fix (no provider call)."""
    ids = [int(i) for i in request.POST.getlist("product") if i.isdigit()]
    rerouted, accepted = annotation_renormalise(product_ids=ids)
    messages.success(
        request,
        f"Re-normalised {len(ids)} products: {rerouted} re-routed, {accepted} now auto-accepted.",
    )
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "taxonomy_unmapped"
    return redirect(target)


# --- unmapped values (/taxonomy/unmapped/) ---------------------------------------------


def _unmapped_context(**extra: Any) -> dict[str, Any]:
    values_by_code: dict[str, list[AttributeValue]] = {}
    for value in AttributeValue.objects.filter(is_active=True).select_related("attribute"):
        values_by_code.setdefault(value.attribute.code, []).append(value)
    rows = [
        {"item": item, "choices": values_by_code.get(item.field, [])} for item in unmapped_values()
    ]
    return {
        "rows": rows,
        "paths": Category.objects.filter(is_active=True).values_list("path", flat=True),
        "attribute_codes": set(values_by_code)
        | set(Attribute.objects.values_list("code", flat=True)),
        **extra,
    }


@require_GET
@role_required(TAXONOMY_ADMINS)
def unmapped_list(request: HtmxHttpRequest) -> HttpResponse:
    """What the model answered that the taxonomy does not know, most frequent
    first, with one-click fixes."""
    return render(
        request,
        f"{UNMAPPED_PAGE}#unmapped"
        if request.htmx and request.htmx.target == "unmapped"
        else UNMAPPED_PAGE,
        _unmapped_context(),
    )


@require_GET
@role_required(TAXONOMY_ADMINS)
def unmapped_products(request: HtmxHttpRequest) -> HttpResponse:
    """Products in review whose latest annotation left this value unmapped."""
    field_name = request.GET.get("field", "")[:50]
    raw = request.GET.get("raw", "")[:500]
    products = unmapped_value_products(field_name=field_name, raw=raw)
    return render(
        request,
        UNMAPPED_PRODUCTS_PAGE,
        {"field": field_name, "raw": raw, "products": products},
    )


@require_POST
@role_required(TAXONOMY_ADMINS)
def unmapped_resolve(request: HtmxHttpRequest) -> HttpResponse:
    """Add an unmapped answer as a synonym of a category or value, or as a new value."""
    form = request.POST
    field_name, raw = form.get("field", "").strip(), " ".join(form.get("raw", "").split())
    how, target = form.get("how", ""), form.get("target", "").strip()
    notice = error = ""
    try:
        if not raw:
            raise services.TaxonomyChangeError("Nothing to add.")
        if field_name in CATEGORY_FIELDS:
            if how != "synonym":
                raise services.TaxonomyChangeError("A category answer can become a synonym only.")
            category = category_by_path(target)
            services.category_synonym_add(user=request.user, category=category, synonym=raw)
            notice = f"{raw!r} now means {category.path}."
        else:
            attribute = Attribute.objects.filter(code=field_name).first()
            if attribute is None:
                raise services.TaxonomyChangeError(f"There is no attribute {field_name!r}.")
            if how == "new_value":
                value = services.attribute_value_add(
                    user=request.user, attribute=attribute, name=raw
                )
                notice = f"Added {value.name} to {attribute.name}."
            else:
                value = attribute.values.filter(pk=int(target) if target.isdigit() else 0).first()
                if value is None:
                    raise services.TaxonomyChangeError("Pick the value it means.")
                services.attribute_value_synonym_add(user=request.user, value=value, synonym=raw)
                notice = f"{raw!r} now means {attribute.name}: {value.name}."
    except services.TaxonomyChangeError as exc:
        error = str(exc)
    affected = [] if error else unmapped_value_products(field_name=field_name, raw=raw)
    if affected and not error:
        notice += (
            f" {len(affected)} product{'s' if len(affected) != 1 else ''} in review had it;"
            " they keep their current annotation until annotated again."
        )
    if request.htmx:
        return render(
            request, f"{UNMAPPED_PAGE}#unmapped", _unmapped_context(notice=notice, error=error)
        )
    if error:
        messages.error(request, error)
    else:
        messages.success(request, notice)
    return redirect("taxonomy_unmapped")


class PromptVersionForm(forms.Form):
    name = forms.CharField(max_length=200)
    model = forms.CharField(
        max_length=200, required=False, help_text="Blank: the configured ANNOTATOR_MODEL."
    )
    system_prompt = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 18}),
        strip=False,
        help_text="{taxonomy} is replaced by the categories and allowed values.",
    )
    user_template = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        strip=False,
        help_text="Per product. {title} is the product title.",
    )


# --- prompt versions (/prompts/) ---------------------------------------------------------


@require_GET
@role_required(*PROMPT_EDITORS)
def prompt_list(request: HtmxHttpRequest) -> HttpResponse:
    versions = list(PromptVersion.objects.select_related("created_by", "activated_by"))
    history = PromptActivation.objects.select_related("prompt_version", "previous", "activated_by")[
        :30
    ]
    tokens = prompt_tokens_by_version(versions)
    for version in versions:
        version.tokens = tokens[version.pk]
    return render(
        request, "annotator/prompts/list.html", {"versions": versions, "history": history}
    )


@require_GET
@role_required(*PROMPT_EDITORS)
def prompt_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(
        PromptVersion.objects.select_related("created_by", "activated_by"), pk=pk
    )
    context = {
        "version": version,
        "history": PromptActivation.objects.filter(prompt_version=version).select_related(
            "previous", "activated_by"
        )[:30],
    }
    return render(request, "annotator/prompts/detail.html", context)


@require_http_methods(["GET", "POST"])
@role_required(*PROMPT_EDITORS)
def prompt_new(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """A new version from an old one: its text and model, edited."""
    source = get_object_or_404(PromptVersion, pk=pk)
    initial = {
        "name": f"{source.name} (edited)"[:200],
        "model": request.GET.get("model", source.model)[:200],
        "system_prompt": source.system_prompt,
        "user_template": source.user_template,
    }
    form = PromptVersionForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            version = prompt_version_create(source=source, user=request.user, **form.cleaned_data)
        except PromptVersionError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Version {version.version} saved. It is not active yet.")
            return redirect("prompt_detail", pk=version.pk)
    return render(request, "annotator/prompts/form.html", {"form": form, "source": source})


@require_POST
@role_required(*PROMPT_EDITORS)
def prompt_activate(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(PromptVersion, pk=pk)
    if prompt_version_activate(prompt_version=version, user=request.user) is None:
        messages.info(request, f"Version {version.version} was already active.")
    else:
        messages.success(
            request, f"Version {version.version} is now active: new annotations use it."
        )
    return redirect("prompt_detail", pk=version.pk)

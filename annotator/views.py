from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import MANAGERS, TAXONOMY_ADMINS, role_required
from annotator.models import AnnotationBatch
from annotator.services import annotation_batch_create, annotation_renormalise, batch_progress
from catalog.models import Category, Product
from catalog.selectors import product_list_queryset
from config.http import HtmxHttpRequest

ANNOTATORS = (MANAGERS, TAXONOMY_ADMINS)


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
    context = {"batch": batch, "progress": batch_progress(batch)}
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

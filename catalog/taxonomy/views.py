"""The taxonomy admin screen (/taxonomy/), for the Taxonomy admins group.

Each view parses its form, calls one service of catalog.taxonomy.services and
renders the page, or with htmx the partial its target names (`#tree`,
`#panel`, `#workspace`...). Without JavaScript every form posts and
redirects back (the message says what happened); links are plain links.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.db.models import Prefetch, Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import push_url

from accounts.roles import TAXONOMY_ADMINS, role_required
from catalog.models import Attribute, AttributeValue, Category, Product, TaxonomyChange
from catalog.taxonomy import services
from catalog.taxonomy.formats import (
    EXPORTERS,
    PATH_SEPARATOR,
    TaxonomyFileError,
    detect_format,
    taxonomy_spec_from_db,
)
from catalog.taxonomy.selectors import category_by_path, category_tree_counted
from config.http import HtmxHttpRequest

TREE_PAGE = "catalog/taxonomy/tree.html"
ATTRIBUTES_PAGE = "catalog/taxonomy/attributes.html"
IMPORT_PAGE = "catalog/taxonomy/import.html"
HISTORY_PAGE = "catalog/taxonomy/history.html"
HISTORY_PAGE_SIZE = 25
MAX_IMPORT_BYTES = 20 * 1024 * 1024
# Previews kept per session; an older upload's stored file is deleted.
MAX_PENDING_IMPORTS = 3
SESSION_IMPORTS = "taxonomy_imports"
UPLOAD_FOLDER = "taxonomy-imports"
STALE_UPLOAD_AGE = timedelta(days=1)
EXPORT_TYPES = {
    "json": ("application/json", "loupe-taxonomy.json"),
    "csv": ("text/csv", "loupe-taxonomy.csv"),
    "google": ("text/plain", "loupe-taxonomy-with-ids.txt"),
}


def _template(request: HtmxHttpRequest, page: str, partials: set[str]) -> str:
    """The partial named by the htmx target when it is one of `partials`."""
    target = request.htmx.target if request.htmx else None
    return f"{page}#{target}" if target in partials else page


def _words(text: str) -> list[str]:
    """Synonyms typed one per line or separated by commas."""
    return [word.strip() for word in text.replace("\n", ",").split(",") if word.strip()]


def _threshold(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise services.TaxonomyChangeError(
            "The review threshold must be a number between 0 and 1, or blank."
        ) from None


# --- categories ----------------------------------------------------------------------


def _tree_context(
    *, selected: Category | None, query: str = "", with_tree: bool = True, **extra: Any
) -> dict[str, Any]:
    context: dict[str, Any] = {"selected": selected, "query": query, **extra}
    if with_tree:
        roots, found = category_tree_counted(
            query=query, selected_id=selected.pk if selected else None
        )
        context.update(
            roots=roots,
            found=found,
            paths=Category.objects.order_by("path").values_list("path", flat=True),
        )
    if selected is not None:
        context["selected_products"] = Product.objects.filter(
            Q(category=selected) | Q(category__path__startswith=selected.path + PATH_SEPARATOR)
        ).count()
        context["selected_children"] = list(selected.children.order_by("name"))
    return context


@require_GET
@role_required(TAXONOMY_ADMINS)
def taxonomy_tree(request: HtmxHttpRequest) -> HttpResponse:
    """The category tree with product counts; `?q=` narrows it to the nodes
    whose name, synonym or path matches, and their ancestors."""
    query = request.GET.get("q", "").strip()[:200]
    return render(
        request,
        _template(request, TREE_PAGE, {"tree", "workspace"}),
        _tree_context(selected=None, query=query),
    )


@require_GET
@role_required(TAXONOMY_ADMINS)
def category_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    selected = get_object_or_404(Category.objects.select_related("parent"), pk=pk)
    template = _template(request, TREE_PAGE, {"panel", "workspace"})
    return render(
        request,
        template,
        _tree_context(selected=selected, with_tree=not template.endswith("#panel")),
    )


def _after_category_change(
    request: HtmxHttpRequest, selected: Category | None, *, notice: str = "", error: str = ""
) -> HttpResponse:
    url = reverse("taxonomy_category", args=[selected.pk]) if selected else reverse("taxonomy_tree")
    if request.htmx:
        response = render(
            request,
            f"{TREE_PAGE}#workspace",
            _tree_context(selected=selected, notice=notice, error=error),
        )
        return push_url(response, url)
    if error:
        messages.error(request, error)
    elif notice:
        messages.success(request, notice)
    return redirect(url)


@require_POST
@role_required(TAXONOMY_ADMINS)
def category_add(request: HtmxHttpRequest) -> HttpResponse:
    parent = None
    if request.POST.get("parent", "").isdigit():
        parent = get_object_or_404(Category, pk=request.POST["parent"])
    try:
        category = services.category_add(
            user=request.user,
            name=request.POST.get("name", ""),
            parent=parent,
            synonyms=_words(request.POST.get("synonyms", "")),
        )
    except services.TaxonomyChangeError as exc:
        return _after_category_change(request, parent, error=str(exc))
    return _after_category_change(request, category, notice=f"Added {category.path}.")


CATEGORY_ACTIONS = {"rename", "move", "edit", "deactivate", "activate", "merge"}


@require_POST
@role_required(TAXONOMY_ADMINS)
def category_change(request: HtmxHttpRequest, pk: int, action: str) -> HttpResponse:
    """Rename, move, edit (synonyms, review threshold), deactivate, activate or
    merge one category."""
    if action not in CATEGORY_ACTIONS:
        raise Http404
    category = get_object_or_404(Category, pk=pk)
    user, form = request.user, request.POST
    selected = category
    try:
        if action == "rename":
            category = services.category_rename(
                user=user, category=category, name=form.get("name", "")
            )
            notice = f"Renamed to {category.path}."
        elif action == "move":
            text = form.get("parent", "").strip()
            parent = category_by_path(text) if text else None
            category = services.category_move(user=user, category=category, parent=parent)
            notice = f"Moved to {category.path}."
        elif action == "edit":
            category = services.category_edit(
                user=user,
                category=category,
                synonyms=_words(form.get("synonyms", "")),
                review_threshold=_threshold(form.get("review_threshold", "")),
            )
            notice = f"Saved {category.path}."
        elif action == "deactivate":
            count = services.category_deactivate(user=user, category=category)
            notice = f"Deactivated {count} categor{'y' if count == 1 else 'ies'}."
        elif action == "activate":
            count = services.category_activate(user=user, category=category)
            notice = f"Activated {count} categor{'y' if count == 1 else 'ies'}."
        else:
            target = category_by_path(form.get("target", ""))
            source_path = category.path
            repointed = services.category_merge(user=user, source=category, target=target)
            selected = Category.objects.get(pk=target.pk)
            moved = ", ".join(f"{label}: {n}" for label, n in sorted(repointed.items()))
            notice = f"Merged {source_path} into {selected.path}." + (
                f" Re-pointed {moved}." if moved else ""
            )
    except services.TaxonomyChangeError as exc:
        return _after_category_change(request, selected, error=str(exc))
    selected.refresh_from_db()
    return _after_category_change(request, selected, notice=notice)


# --- attributes and values ------------------------------------------------------------


def _attributes_context(*, selected: AttributeValue | None, **extra: Any) -> dict[str, Any]:
    attributes = Attribute.objects.prefetch_related(
        Prefetch("values", queryset=AttributeValue.objects.order_by("position", "name")),
        Prefetch("categories", queryset=Category.objects.order_by("path")),
    )
    return {"attributes": attributes, "selected": selected, **extra}


@require_GET
@role_required(TAXONOMY_ADMINS)
def attribute_list(request: HtmxHttpRequest) -> HttpResponse:
    return render(
        request,
        _template(request, ATTRIBUTES_PAGE, {"workspace"}),
        _attributes_context(selected=None),
    )


@require_GET
@role_required(TAXONOMY_ADMINS)
def value_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    value = get_object_or_404(AttributeValue.objects.select_related("attribute"), pk=pk)
    return render(
        request,
        _template(request, ATTRIBUTES_PAGE, {"panel", "workspace"}),
        _attributes_context(selected=value, **_value_extra(value)),
    )


def _value_extra(value: AttributeValue) -> dict[str, Any]:
    return {
        "siblings": value.attribute.values.exclude(pk=value.pk).order_by("position", "name"),
        "value_products": Product.objects.filter(
            **{f"attributes__{value.attribute.code}": value.name}
        ).count(),
    }


def _after_value_change(
    request: HtmxHttpRequest,
    selected: AttributeValue | None,
    *,
    notice: str = "",
    error: str = "",
) -> HttpResponse:
    url = (
        reverse("taxonomy_value", args=[selected.pk])
        if selected
        else reverse("taxonomy_attributes")
    )
    if request.htmx:
        extra = _value_extra(selected) if selected else {}
        response = render(
            request,
            f"{ATTRIBUTES_PAGE}#workspace",
            _attributes_context(selected=selected, notice=notice, error=error, **extra),
        )
        return push_url(response, url)
    if error:
        messages.error(request, error)
    elif notice:
        messages.success(request, notice)
    return redirect(url)


@require_POST
@role_required(TAXONOMY_ADMINS)
def attribute_add(request: HtmxHttpRequest) -> HttpResponse:
    try:
        attribute = services.attribute_add(
            user=request.user,
            code=request.POST.get("code", ""),
            name=request.POST.get("name", ""),
        )
    except services.TaxonomyChangeError as exc:
        return _after_value_change(request, None, error=str(exc))
    return _after_value_change(request, None, notice=f"Added the attribute {attribute.name}.")


@require_POST
@role_required(TAXONOMY_ADMINS)
def attribute_rename(request: HtmxHttpRequest, code: str) -> HttpResponse:
    attribute = get_object_or_404(Attribute, code=code)
    try:
        services.attribute_rename(
            user=request.user, attribute=attribute, name=request.POST.get("name", "")
        )
    except services.TaxonomyChangeError as exc:
        return _after_value_change(request, None, error=str(exc))
    return _after_value_change(request, None, notice=f"Renamed {code} to {attribute.name}.")


@require_POST
@role_required(TAXONOMY_ADMINS)
def attribute_categories(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """Limit an attribute to categories (paths, one a line); blank = all."""
    attribute = get_object_or_404(Attribute, code=code)
    try:
        categories = services.attribute_scope_parse(request.POST.get("categories", ""))
        services.attribute_categories_set(
            user=request.user, attribute=attribute, categories=categories
        )
    except services.TaxonomyChangeError as exc:
        return _after_value_change(request, None, error=str(exc))
    where = "; ".join(sorted(c.path for c in categories)) or "every category"
    return _after_value_change(request, None, notice=f"{attribute.name} now applies to {where}.")


@require_POST
@role_required(TAXONOMY_ADMINS)
def attribute_state(request: HtmxHttpRequest, code: str, action: str) -> HttpResponse:
    if action not in {"activate", "deactivate"}:
        raise Http404("unknown action")
    attribute = get_object_or_404(Attribute, code=code)
    services.attribute_set_active(
        user=request.user, attribute=attribute, active=action == "activate"
    )
    state = "active" if attribute.is_active else "inactive"
    return _after_value_change(request, None, notice=f"{attribute.name} is {state}.")


@require_POST
@role_required(TAXONOMY_ADMINS)
def value_add(request: HtmxHttpRequest, code: str) -> HttpResponse:
    attribute = get_object_or_404(Attribute, code=code)
    try:
        value = services.attribute_value_add(
            user=request.user,
            attribute=attribute,
            name=request.POST.get("name", ""),
            synonyms=_words(request.POST.get("synonyms", "")),
            hex_colour=request.POST.get("hex", ""),
        )
    except services.TaxonomyChangeError as exc:
        return _after_value_change(request, None, error=str(exc))
    return _after_value_change(request, value, notice=f"Added {value.name} to {attribute.name}.")


VALUE_ACTIONS = {"rename", "edit", "merge", "deactivate", "activate"}


@require_POST
@role_required(TAXONOMY_ADMINS)
def value_change(request: HtmxHttpRequest, pk: int, action: str) -> HttpResponse:
    """Rename, edit (synonyms, colour), merge, deactivate or activate a value."""
    if action not in VALUE_ACTIONS:
        raise Http404
    value = get_object_or_404(AttributeValue.objects.select_related("attribute"), pk=pk)
    user, form = request.user, request.POST
    selected: AttributeValue | None = value
    try:
        if action == "rename":
            rewritten = services.attribute_value_rename(
                user=user, value=value, name=form.get("name", "")
            )
            notice = f"Renamed; {rewritten} product{'s' if rewritten != 1 else ''} updated."
        elif action == "edit":
            services.attribute_value_edit(
                user=user,
                value=value,
                synonyms=_words(form.get("synonyms", "")),
                hex_colour=form.get("hex", ""),
            )
            notice = "Saved."
        elif action in ("deactivate", "activate"):
            services.attribute_value_set_active(user=user, value=value, active=action == "activate")
            notice = f"{value.name} {action}d."
        else:
            target_id = form.get("target", "")
            target = AttributeValue.objects.filter(
                pk=int(target_id) if target_id.isdigit() else 0, attribute=value.attribute
            ).first()
            if target is None:
                raise services.TaxonomyChangeError("Pick the value to merge into.")
            delete = form.get("delete_source") == "on"
            rewritten = services.attribute_value_merge(
                user=user, source=value, target=target, delete_source=delete
            )
            selected = target
            notice = (
                f"Merged {value.name} into {target.name}; {rewritten} "
                f"product{'s' if rewritten != 1 else ''} updated."
            )
    except services.TaxonomyChangeError as exc:
        return _after_value_change(request, value, error=str(exc))
    selected = AttributeValue.objects.select_related("attribute").get(pk=selected.pk)
    return _after_value_change(request, selected, notice=notice)


# --- import and export ------------------------------------------------------------------


def _pending(request: HtmxHttpRequest) -> dict[str, dict[str, str]]:
    return dict(request.session.get(SESSION_IMPORTS, {}))


def _forget(request: HtmxHttpRequest, token: str) -> None:
    pending = _pending(request)
    entry = pending.pop(token, None)
    if entry:
        default_storage.delete(entry["file"])
    request.session[SESSION_IMPORTS] = pending


def _prune_stale_uploads() -> None:
    """Delete uploads whose preview was abandoned (the session that knew the
    token may be gone)."""
    cutoff = timezone.now() - STALE_UPLOAD_AGE
    try:
        _folders, files = default_storage.listdir(UPLOAD_FOLDER)
        for name in files:
            stored = f"{UPLOAD_FOLDER}/{name}"
            if default_storage.get_modified_time(stored) < cutoff:
                default_storage.delete(stored)
    except (FileNotFoundError, NotImplementedError):
        pass  # nothing uploaded yet, or a storage that cannot list


@require_GET
@role_required(TAXONOMY_ADMINS)
def export(request: HtmxHttpRequest, fmt: str) -> HttpResponse:
    if fmt not in EXPORTERS:
        raise Http404
    content_type, filename = EXPORT_TYPES[fmt]
    text = EXPORTERS[fmt](taxonomy_spec_from_db())
    response = HttpResponse(text, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _import_page(request: HtmxHttpRequest, status: int = 200, **context: Any) -> HttpResponse:
    context.setdefault("formats", services.FORMATS)
    return render(request, IMPORT_PAGE, context, status=status)


@require_http_methods(["GET", "POST"])
@role_required(TAXONOMY_ADMINS)
def import_preview(request: HtmxHttpRequest) -> HttpResponse:
    """GET: the upload form. POST: parse the file and show what loading it
    would change; the file waits in storage under a token for the apply."""
    if request.method == "GET":
        return _import_page(request)
    upload = request.FILES.get("file")
    if upload is None:
        return _import_page(request, 400, errors=[("file", "Choose a file to upload.")])
    if upload.size > MAX_IMPORT_BYTES:
        return _import_page(request, 400, errors=[("file", "The file is larger than 20 MB.")])
    try:
        text = upload.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        return _import_page(request, 400, errors=[("file", "The file is not UTF-8 text.")])
    fmt = request.POST.get("format", "auto")
    if fmt not in services.FORMATS:
        fmt = detect_format(upload.name or "", text)
    try:
        spec = services.taxonomy_file_parse(text=text, fmt=fmt)
        preview = services.taxonomy_import_preview(spec=spec, fmt=fmt)
    except TaxonomyFileError as exc:
        return _import_page(request, 400, errors=exc.errors, filename=upload.name, fmt=fmt)
    _prune_stale_uploads()
    token = secrets.token_urlsafe(16)
    stored = default_storage.save(f"{UPLOAD_FOLDER}/{token}.txt", ContentFile(text.encode()))
    pending = _pending(request)
    for old in list(pending)[: max(0, len(pending) - MAX_PENDING_IMPORTS + 1)]:
        default_storage.delete(pending.pop(old)["file"])
    pending[token] = {"file": stored, "fmt": fmt, "name": upload.name or ""}
    request.session[SESSION_IMPORTS] = pending
    return _import_page(
        request,
        preview=preview,
        token=token,
        filename=upload.name,
        fmt=fmt,
        categories_in_file=len(spec.categories),
    )


@require_POST
@role_required(TAXONOMY_ADMINS)
def import_apply(request: HtmxHttpRequest) -> HttpResponse:
    """Load the previewed file (the stored copy, never a re-upload)."""
    token = request.POST.get("token", "")
    entry = _pending(request).get(token)
    if entry is None or not default_storage.exists(entry["file"]):
        messages.error(request, "That preview has expired; upload the file again.")
        return redirect("taxonomy_import")
    with default_storage.open(entry["file"], "rb") as stream:
        text = stream.read().decode("utf-8")
    try:
        result = services.taxonomy_import_apply(
            user=request.user,
            text=text,
            fmt=entry["fmt"],
            filename=entry["name"],
            deactivate_removed=request.POST.get("deactivate_removed") == "on",
        )
    except TaxonomyFileError as exc:
        _forget(request, token)
        return _import_page(
            request, 400, errors=exc.errors, filename=entry["name"], fmt=entry["fmt"]
        )
    _forget(request, token)
    deactivated = f", {result.deactivated} deactivated" if result.deactivated else ""
    messages.success(request, f"Imported {entry['name']}: {result.report}{deactivated}.")
    return redirect("taxonomy_history")


# --- history -------------------------------------------------------------------------------

LIST_SHOWN = 8


def _shown(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        items = [" → ".join(map(str, i)) if isinstance(i, list) else str(i) for i in value]
        more = f" … (+{len(items) - LIST_SHOWN} more)" if len(items) > LIST_SHOWN else ""
        return ", ".join(items[:LIST_SHOWN]) + more if items else "—"
    if isinstance(value, dict):
        return ", ".join(f"{key}: {_shown(item)}" for key, item in value.items()) or "—"
    return str(value)


def _diff(change: TaxonomyChange) -> list[tuple[str, str, str]]:
    before = change.before if isinstance(change.before, dict) else {}
    after = change.after if isinstance(change.after, dict) else {}
    keys = [*before, *(key for key in after if key not in before)]
    return [(key, _shown(before.get(key)), _shown(after.get(key))) for key in keys]


@require_GET
@role_required(TAXONOMY_ADMINS)
def history(request: HtmxHttpRequest) -> HttpResponse:
    """Every taxonomy change, newest first, 25 a page."""
    paginator = Paginator(TaxonomyChange.objects.select_related("user"), HISTORY_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    rows = [(change, _diff(change)) for change in page]
    return render(
        request,
        _template(request, HISTORY_PAGE, {"history"}),
        {"page": page, "rows": rows},
    )

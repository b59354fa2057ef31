from __future__ import annotations

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseClientRefresh

from accounts.roles import ALL_ROLES, MANAGERS, TAXONOMY_ADMINS, role_required
from catalog.forms import ImportUploadForm
from catalog.image_urls import FOLDER, image_url_check
from catalog.importers import import_run_create
from catalog.intake import import_run_enqueue, import_run_failed_images, import_run_image_counts
from catalog.models import Category, ImportRun, Product, ProductImage
from catalog.selectors import catalog_summary, product_list_queryset
from config.http import HtmxHttpRequest

PAGE_SIZE = 50


@require_GET
def home(request: HtmxHttpRequest) -> HttpResponse:
    """Landing page: what the user may do, and the catalogue at a glance.
    Any logged-in user, also one without a role (the page says so)."""
    return render(request, "catalog/home.html", {"summary": catalog_summary()})


@require_GET
@role_required(*ALL_ROLES)
def product_list(request: HtmxHttpRequest) -> HttpResponse:
    """Products, newest first, with keyset pagination (`?before=<id>`): each page
    is one indexed range scan however deep it is, so 1M rows stay fast."""
    query = request.GET.get("q", "").strip()[:200]
    status = request.GET.get("status", "")
    if status not in Product.Status.values:
        status = ""
    category = None
    if request.GET.get("category", "").isdigit():
        category = Category.objects.filter(pk=request.GET["category"]).first()
    products = product_list_queryset(query=query, status=status, category=category)
    # "N to review" on a batch page: the products that batch sent to review
    # (the reverse relation: catalog imports nothing from annotator).
    batch = request.GET.get("batch", "")
    if batch.isdigit():
        products = products.filter(
            annotations__batch_id=int(batch), annotations__route="needs_review"
        ).distinct()
    else:
        batch = ""
    before = request.GET.get("before", "")
    if before.isdigit():
        products = products.filter(id__lt=int(before))
    page = list(products[: PAGE_SIZE + 1])
    has_next = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    params = request.GET.copy()
    params.pop("before", None)
    context = {
        "products": page,
        "next_before": page[-1].id if has_next else None,
        "is_first_page": not before,
        "filter_params": params.urlencode(),
        "query": query,
        "batch": batch,
        "status": status,
        "category": category,
        "statuses": Product.Status.choices,
        "categories": Category.objects.filter(is_active=True).only("id", "path"),
    }
    template = "catalog/product_list.html"
    if request.htmx and request.htmx.target == "product-results":
        template += "#results"
    return render(request, template, context)


@require_GET
@role_required(*ALL_ROLES)
def product_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    product = get_object_or_404(Product.objects.select_related("category"), pk=pk)
    return render(
        request,
        "catalog/product_detail.html",
        {"product": product, "images": product.images.all()},
    )


def _stored_image_response(stored: FieldFile) -> HttpResponse:
    """Stream stored bytes from the storage (filesystem or S3), or with
    MEDIA_SIGNED_URLS redirect to a short-lived signed URL of the storage, so the
    bytes do not pass through the app. Either way the page asking needs a login."""
    if settings.MEDIA_SIGNED_URLS and settings.MEDIA_STORAGE == "s3":
        response: HttpResponse = HttpResponseRedirect(stored.storage.url(stored.name))
        response["Cache-Control"] = "private, no-store"  # the URL expires
        return response
    response = FileResponse(stored.storage.open(stored.name, "rb"), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=86400"
    return response


@require_GET
@role_required(*ALL_ROLES)
def image_file(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The normalised copy of an image. Served through a view so images need a
    login like every page."""
    image = get_object_or_404(ProductImage, pk=pk, status=ProductImage.Status.READY)
    if not image.file:
        raise Http404
    return _stored_image_response(image.file)


@require_GET
@role_required(*ALL_ROLES)
def image_thumb(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The ~256 px thumbnail made at intake, for lists and grids; rows stored before
    thumbnails existed get the full copy (`manage.py make_renditions` fills them in)."""
    image = get_object_or_404(ProductImage, pk=pk, status=ProductImage.Status.READY)
    stored = image.thumb_file or image.file
    if not stored:
        raise Http404
    return _stored_image_response(stored)


@login_not_required
@require_GET
def image_thumb_signed(
    request: HtmxHttpRequest, pk: int, expires: int, signature: str, name: str
) -> HttpResponse:
    """A thumbnail by the signed, expiring URL a role-checked page made
    (catalog.image_urls): the signature is the permission, so nothing here reads
    the session, the user or the database. A wrong or expired signature is sent
    to the login-protected image_thumb, which checks the session and role."""
    stored_name = FOLDER + name
    if not image_url_check(image_id=pk, name=stored_name, expires=expires, signature=signature):
        response: HttpResponse = redirect("image_thumb", pk=pk)
        response["Cache-Control"] = "no-store"
        return response
    try:
        stream = default_storage.open(stored_name, "rb")
    except FileNotFoundError:
        raise Http404 from None
    response = FileResponse(stream, content_type="image/jpeg")
    # The name is content-addressed (sha256): its bytes never change, so the
    # browser keeps them without asking again for as long as the URL is valid.
    lifetime = max(0, expires - int(time.time()))
    response["Cache-Control"] = f"private, max-age={lifetime}, immutable"
    # Other sites' pages may not embed it, even with the URL.
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


@require_http_methods(["GET", "POST"])
@role_required(MANAGERS, TAXONOMY_ADMINS)
def import_list(request: HtmxHttpRequest) -> HttpResponse:
    """Upload a CSV/JSONL product file; the import runs in a worker."""
    form = ImportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        with transaction.atomic():
            run = import_run_create(upload=upload, user=request.user)
            # A queue that is down: the run stays `queued`, the sweep starts it (503).
            transaction.on_commit(lambda: import_run_enqueue(run_id=run.pk))
        messages.success(request, f"Import of {run.filename} queued.")
        return redirect("import_detail", pk=run.pk)
    runs = ImportRun.objects.select_related("created_by")[:20]
    return render(request, "catalog/import_list.html", {"form": form, "runs": runs})


@require_GET
@role_required(MANAGERS, TAXONOMY_ADMINS)
def import_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """An import's report, live: rows as the import runs, then images pending /
    ready / failed as the workers fetch them."""
    run = get_object_or_404(ImportRun.objects.select_related("created_by"), pk=pk)
    images = import_run_image_counts(run)
    settled = run.is_finished and not images["pending"]
    context = {"run": run, "images": images, "settled": settled}
    if request.htmx and request.htmx.target == "import-report":
        if settled:
            # Reload once so the whole page shows the final report and errors;
            # the settled page no longer polls.
            return HttpResponseClientRefresh()
        return render(request, "catalog/import_detail.html#report", context)
    context["failed_images"] = import_run_failed_images(run)
    return render(request, "catalog/import_detail.html", context)

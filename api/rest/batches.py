"""/api/v1/annotation-batches: start one, read its progress."""

from __future__ import annotations

from django.http import Http404, HttpRequest
from ninja import Router, Status

from accounts.roles import MANAGERS, TAXONOMY_ADMINS
from annotator.models import AnnotationBatch
from annotator.services import annotation_batch_create, batch_progress
from api.rest.core import require_roles
from api.rest.products import ProductFilters, filtered_products
from api.rest.schemas import BatchByFilterIn, BatchBySkusIn, BatchOut, ErrorOut
from catalog.models import Product

router = Router(tags=["annotation batches"])
ERRORS = {401: ErrorOut, 403: ErrorOut, 422: ErrorOut, 429: ErrorOut}


def _batch_out(batch: AnnotationBatch, unknown: list[str] | None = None) -> dict:
    progress = batch_progress(batch)
    return {
        "id": batch.pk,
        "description": batch.description,
        "total": progress.total,
        "done": progress.done,
        "failed": progress.failed,
        "auto_accepted": progress.auto_accepted,
        "needs_review": progress.needs_review,
        "fallback": progress.fallback,
        "percent": progress.percent,
        "finished": progress.finished,
        "cost_usd": str(progress.cost_usd),
        "elapsed_s": progress.elapsed_s,
        "rate_per_min": progress.rate_per_min,
        "eta_s": progress.eta_s,
        "created_at": batch.created_at.isoformat(),
        "unknown_skus": unknown or [],
    }


@router.post("/annotation-batches", response={201: BatchOut, 404: ErrorOut, **ERRORS})
def batch_create(request: HttpRequest, payload: BatchBySkusIn | BatchByFilterIn):
    """Annotate the listed SKUs, or the products matching `filter`. Products
    that may not be annotated now (in review by a person, already running)
    are left out, as on the batch page."""
    require_roles(request, MANAGERS, TAXONOMY_ADMINS)
    unknown: list[str] = []
    if isinstance(payload, BatchBySkusIn):
        skus = list(dict.fromkeys(payload.skus))
        products = Product.objects.filter(sku__in=skus)
        found = set(products.values_list("sku", flat=True))
        unknown = [sku for sku in skus if sku not in found]
        description = payload.description or f"{len(skus)} SKUs from the API"
    else:
        filters = ProductFilters(status=payload.filter.status, category=payload.filter.category)
        products = filtered_products(filters)
        description = payload.description or "products matching an API filter"
    batch = annotation_batch_create(products=products, user=request.user, description=description)
    return Status(201, _batch_out(batch, unknown))


@router.get("/annotation-batches/{batch_id}", response={200: BatchOut, 404: ErrorOut, **ERRORS})
def batch_detail(request: HttpRequest, batch_id: int):
    require_roles(request)
    batch = AnnotationBatch.objects.filter(pk=batch_id).first()
    if batch is None:
        raise Http404(f"no annotation batch {batch_id}")
    return _batch_out(batch)

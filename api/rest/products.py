"""/api/v1/products: list (keyset pages), detail, bulk upsert."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q
from django.http import Http404, HttpRequest
from django.utils import timezone
from ninja import Query, Router, Schema
from pydantic import Field, ValidationError

from accounts.roles import MANAGERS, TAXONOMY_ADMINS
from api.metadata import metadata_context, product_metadata_one, products_page
from api.rest.core import api, require_roles
from api.rest.schemas import (
    ErrorOut,
    ProductIn,
    ProductOut,
    ProductPageOut,
    ProductStatus,
    ProductsUpsertIn,
    UpsertOut,
)
from catalog.importers import import_rows
from catalog.models import Category, Product

router = Router(tags=["products"])
WRITERS = (MANAGERS, TAXONOMY_ADMINS)
ERRORS = {401: ErrorOut, 403: ErrorOut, 422: ErrorOut, 429: ErrorOut}


class ProductFilters(Schema):
    status: ProductStatus | None = None
    category: int | None = Field(default=None, description="Category id; its subtree matches")
    updated_since: datetime | None = None
    cursor: int | None = Field(
        default=None, ge=0, description="Continue after this product id (from `next`)"
    )
    limit: int = Field(default=100, ge=1, le=500)


def filtered_products(filters: ProductFilters):
    """Products matching the filters, oldest id first (the keyset order)."""
    products = Product.objects.order_by("id")
    if filters.status:
        products = products.filter(status=filters.status)
    if filters.category is not None:
        category = Category.objects.filter(pk=filters.category).first()
        if category is None:
            raise Http404(f"no category with id {filters.category}")
        subtree = Category.objects.filter(
            Q(pk=category.pk) | Q(path__startswith=category.path + " > ")
        )
        products = products.filter(category__in=subtree)
    if filters.updated_since is not None:
        since = filters.updated_since
        if timezone.is_naive(since):
            since = timezone.make_aware(since)
        products = products.filter(updated_at__gte=since)
    return products


@router.get("/products", response={200: ProductPageOut, 404: ErrorOut, **ERRORS})
def product_list(request: HttpRequest, filters: Query[ProductFilters]):
    """Products by ascending id. Pages are keyset ranges (`id > cursor`), so
    rows inserted while a client pages appear once, at the end, and no row is
    skipped or repeated however deep the page."""
    require_roles(request)
    products = filtered_products(filters)
    if filters.cursor is not None:
        products = products.filter(id__gt=filters.cursor)
    items = products_page(products[: filters.limit + 1], context=metadata_context())
    has_next = len(items) > filters.limit
    items = items[: filters.limit]
    next_url = None
    if has_next:
        params = request.GET.copy()
        params["cursor"] = str(items[-1]["id"])
        next_url = request.build_absolute_uri(f"{request.path}?{params.urlencode()}")
    # Returned as built: `product_final_metadata` makes ProductOut's shape (the
    # schema tests check every response against it), and validating a page of
    # items again through pydantic, field by field, cost more than its queries.
    return api.create_response(request, {"items": items, "next": next_url}, status=200)


@router.get("/products/{sku}", response={200: ProductOut, 404: ErrorOut, **ERRORS})
def product_detail(request: HttpRequest, sku: str):
    require_roles(request)
    product = None if "\x00" in sku else Product.objects.filter(sku=sku).first()
    if product is None:
        raise Http404(f"no product with SKU {sku}")
    return product_metadata_one(product)


def _record(index: int, raw: Any) -> tuple[int, dict[str, Any] | str]:
    """One API row as an importer record, or the reason it is refused."""
    if not isinstance(raw, dict):
        return index, "each product must be a JSON object"
    try:
        row = ProductIn.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "row"
        if first["type"] == "string_pattern_mismatch":  # the only pattern: Text's
            return index, f"{where}: control characters (such as NUL) are not allowed"
        return index, f"{where}: {first['msg']}"
    record: dict[str, Any] = {"sku": row.sku}
    for name in ("title", "description", "brand"):
        value = getattr(row, name)
        if value is not None:
            record[name] = value
    if row.image_urls:
        record["image_url"] = "|".join(row.image_urls)
    return index, record


@router.post("/products", response={200: UpsertOut, **ERRORS})
def product_upsert(request: HttpRequest, payload: ProductsUpsertIn):
    """Create or update up to 1,000 products by SKU, with the CSV import's
    rules (the same code): absent fields are unchanged, a bad row is reported
    with its index and skipped, good rows are kept. Images are queued for the
    workers, never fetched during the request."""
    require_roles(request, *WRITERS)
    records = (_record(index, raw) for index, raw in enumerate(payload.products))
    report = import_rows(records, allow_paths=False, queue_images=True, position="index")
    return {
        "received": len(payload.products),
        "created": report.rows_created,
        "updated": report.rows_updated,
        "unchanged": report.rows_unchanged,
        "duplicates": report.rows_duplicate,
        "failed": report.rows_failed,
        "images_queued": report.images_queued,
        "errors": [{"index": e.line, "sku": e.sku, "reason": e.reason} for e in report.errors],
    }

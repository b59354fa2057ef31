"""Exports of products' final metadata: CSV, JSON Lines and a Google
Merchant Center supplemental feed. Generators of text lines over
`final_metadata_rows`, so memory stays flat at any catalogue size and the
same code serves the CLI (`export_products`) and the browser download."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from api.metadata import (
    FINAL_STATUSES,
    MetadataContext,
    final_flat_rows,
    final_metadata_rows,
    metadata_context,
)
from catalog.models import Product
from config.csv_cells import csv_cell

FORMATS = ("csv", "jsonl", "google-merchant")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson; charset=utf-8",
    "google-merchant": "text/tab-separated-values; charset=utf-8",
}
EXTENSIONS = {"csv": "csv", "jsonl": "jsonl", "google-merchant": "tsv"}
LIST_SEPARATOR = "|"
# Loupe attribute code -> Google Merchant Center product data attribute. Codes
# not listed have no field in the specification and are left out of the feed.
MERCHANT_FIELDS = {
    "color": "color",
    "material": "material",
    "pattern": "pattern",
    "size": "size",
    "gender": "gender",
    "age_group": "age_group",
    "size_type": "size_type",
    "size_system": "size_system",
}
# Merchant Center's limits for these fields (characters); longer values are cut.
MERCHANT_LIMITS = {"color": 100, "material": 200, "pattern": 100, "size": 100, "product_type": 750}


def export_queryset(
    *, statuses: list[str] | None = None, since: datetime | None = None, base=None
) -> QuerySet[Product]:
    """Products to export: by default those with final values."""
    products = base if base is not None else Product.objects.all()
    products = products.filter(status__in=statuses or list(FINAL_STATUSES))
    if since is not None:
        if timezone.is_naive(since):
            since = timezone.make_aware(since)
        products = products.filter(updated_at__gte=since)
    return products


class _Line:
    def write(self, text: str) -> str:
        return text


def csv_columns(context: MetadataContext) -> list[str]:
    return [
        "sku",
        "title",
        "brand",
        "status",
        "category_id",
        "category_path",
        "google_product_category",
        *context.attribute_codes,
        "tags",
        "decided",
        "decided_at",
        "decided_by",
        "updated_at",
    ]


def csv_lines(products: QuerySet[Product], context: MetadataContext) -> Iterator[str]:
    """One row per product, the columns of `csv_columns`: the metadata object
    flattened (tags joined by LIST_SEPARATOR), every text cell through
    `csv_cell`. Ids, statuses, decision kinds and ISO times are written as
    they are: none can start like a formula."""
    writer = csv.writer(_Line())
    yield writer.writerow(csv_columns(context))
    cell = csv_cell
    # Category cells once per category, not once per product.
    categories = {
        pk: (info.id, cell(info.path), info.google_id) for pk, info in context.categories.items()
    }
    no_category = (None, None, None)
    join = LIST_SEPARATOR.join
    for sku, title, brand, status, category, values, tags, decision, updated_at in final_flat_rows(
        products, context=context
    ):
        how, at, by = decision
        yield writer.writerow(
            (
                cell(sku),
                cell(title),
                cell(brand),
                status,
                *(categories[category.id] if category else no_category),
                *[cell(value) for value in values],
                cell(join(tags)),
                how,
                at,
                cell(by),
                updated_at,
            )
        )


def jsonl_lines(products: QuerySet[Product], context: MetadataContext) -> Iterator[str]:
    for item in final_metadata_rows(products, context=context):
        yield json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n"


def merchant_columns(context: MetadataContext) -> list[str]:
    mapped = [MERCHANT_FIELDS[c] for c in context.attribute_codes if c in MERCHANT_FIELDS]
    return ["id", "google_product_category", "product_type", *mapped]


def _tsv(value: Any, limit: int | None = None) -> str:
    """A feed cell: no tabs or line breaks (they would split the row)."""
    text = "" if value is None else " ".join(str(value).split())
    return text[:limit] if limit else text


def merchant_lines(products: QuerySet[Product], context: MetadataContext) -> Iterator[str]:
    """Tab-separated supplemental feed keyed by `id` (the SKU): only products
    with final values, only columns the specification defines."""
    indexes = [i for i, c in enumerate(context.attribute_codes) if c in MERCHANT_FIELDS]
    limits = [MERCHANT_LIMITS.get(MERCHANT_FIELDS[context.attribute_codes[i]]) for i in indexes]
    yield "\t".join(merchant_columns(context)) + "\n"
    for row in final_flat_rows(products, context=context):
        category = row.category
        if category is None:
            continue  # no final values: nothing to supplement
        cells = [
            _tsv(row.sku),
            _tsv(category.google_id),
            _tsv(category.path, MERCHANT_LIMITS["product_type"]),
            *(
                _tsv(row.attribute_values[i], limit)
                for i, limit in zip(indexes, limits, strict=True)
            ),
        ]
        yield "\t".join(cells) + "\n"


def export_lines(
    *, fmt: str, products: QuerySet[Product], context: MetadataContext | None = None
) -> Iterator[str]:
    """The export as lines of text, in `fmt` (one of FORMATS)."""
    context = context or metadata_context()
    if fmt == "csv":
        return csv_lines(products, context)
    if fmt == "jsonl":
        return jsonl_lines(products, context)
    if fmt == "google-merchant":
        return merchant_lines(products, context)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")

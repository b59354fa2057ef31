"""A product's final metadata: the one object the REST API returns, the
webhooks send and the exports write (JSON Lines as is; CSV and the Merchant
feed flatten it). `product_final_metadata` builds it; `final_metadata_rows`
streams it for many products with a constant number of queries per chunk."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Max, OuterRef, QuerySet, Subquery, Sum

from annotator.models import Annotation
from catalog.models import Attribute, Category, Product, ProductImage
from review.models import Decision

# Statuses whose category/attributes/tags are final values a shop may use.
FINAL_STATUSES = (Product.Status.AUTO_ACCEPTED, Product.Status.REVIEWED)
HOW_DECIDED = {
    Decision.Action.ACCEPT: "accepted",
    Decision.Action.EDIT: "edited",
    Decision.Action.REJECT: "rejected",
}
CHUNK = 2000  # rows per query round: bounds memory (about 10 MB of rows) and stays fast


@dataclass(frozen=True)
class CategoryInfo:
    id: int
    path: str
    google_id: int | None  # its own, or its nearest ancestor's


@dataclass(frozen=True)
class MetadataContext:
    """What every product's metadata needs from the taxonomy, read once."""

    attribute_codes: tuple[str, ...]
    categories: dict[int, CategoryInfo]


_cached: tuple[tuple, float, MetadataContext] | None = None
CONTEXT_MAX_AGE = 30.0  # seconds; also bounds staleness after a bulk .update()


def metadata_context() -> MetadataContext:
    """The taxonomy part of metadata, rebuilt when the taxonomy changed: one
    small aggregate query per call instead of reading every category (an API
    page must stay well under 50 ms)."""
    global _cached
    fingerprint = (
        tuple(
            Category.objects.aggregate(
                n=Count("id"), at=Max("updated_at"), g=Sum("google_id")
            ).values()
        ),
        tuple(Attribute.objects.order_by("position", "code").values_list("code", flat=True)),
    )
    now = time.monotonic()
    if _cached is not None and _cached[0] == fingerprint and now - _cached[1] < CONTEXT_MAX_AGE:
        return _cached[2]
    context = _metadata_context_build(fingerprint[1])
    _cached = (fingerprint, now, context)
    return context


def _metadata_context_build(codes: tuple[str, ...]) -> MetadataContext:
    """Attribute codes from the Attribute table (not a fixed list) and every
    category with its Google id inherited from the nearest ancestor that has one."""
    rows = {
        pk: (parent, path, google)
        for pk, parent, path, google in Category.objects.values_list(
            "id", "parent_id", "path", "google_id"
        )
    }
    categories: dict[int, CategoryInfo] = {}
    for pk, (_, path, _) in rows.items():
        node, google, seen = pk, None, set()
        while node is not None and node not in seen and google is None:
            seen.add(node)
            parent, _, google = rows[node]
            node = parent
        categories[pk] = CategoryInfo(pk, path, google)
    return MetadataContext(attribute_codes=codes, categories=categories)


def _iso(value) -> str | None:
    return value.isoformat() if value else None


# Columns read per product, annotation and decision: plain rows (values()),
# not model instances, so a million products export in under a minute.
PRODUCT_FIELDS = (
    "id",
    "sku",
    "title",
    "brand",
    "status",
    "category_id",
    "attributes",
    "tags",
    "created_at",
    "updated_at",
)
ANNOTATION_FIELDS = (
    "id",
    "status",
    "route",
    "model",
    "provider",
    "prompt_version__version",
    "confidence",
    "score",
    "review_reason",
    "created_at",
)
DECISION_FIELDS = ("id", "action", "created_at", "reviewer__username")
IMAGE_FIELDS = ("product_id", "position", "status", "source_url", "error")


def _decision_part(product: dict[str, Any], decision: dict | None) -> dict[str, Any]:
    status = product["status"]
    if status == Product.Status.AUTO_ACCEPTED:
        at = product["latest_annotation_at"] or product["updated_at"]
        return {"how": "auto_accepted", "at": _iso(at), "by": None}
    if status in (Product.Status.REVIEWED, Product.Status.REJECTED) and decision:
        return {
            "how": HOW_DECIDED.get(decision["action"]),
            "at": _iso(decision["created_at"]),
            "by": decision["reviewer__username"],
        }
    return {"how": None, "at": None, "by": None}


def _annotation_part(annotation: dict | None) -> dict[str, Any] | None:
    if annotation is None:
        return None
    return {
        "id": annotation["id"],
        "status": annotation["status"],
        "route": annotation["route"],
        "model": annotation["model"],
        "provider": annotation["provider"],
        "prompt_version": annotation["prompt_version__version"],
        "confidence": annotation["confidence"],
        "score": annotation["score"],
        "reason": annotation["review_reason"] or None,
        "created_at": _iso(annotation["created_at"]),
    }


def product_final_metadata(
    product: dict[str, Any],
    *,
    context: MetadataContext,
    decision: dict[str, Any] | None,
    annotation: dict[str, Any] | None,
    images: list[dict[str, Any]],
) -> dict[str, Any]:
    """The product as a shop sees it, from its row (PRODUCT_FIELDS and the
    latest annotation's time), its latest decision and annotation and its
    images. `final` holds values only when the product has final values
    (auto-accepted or reviewed); otherwise nulls."""
    is_final = product["status"] in FINAL_STATUSES
    category = context.categories.get(product["category_id"]) if is_final else None
    stored = product["attributes"] or {}
    return {
        "id": product["id"],
        "sku": product["sku"],
        "title": product["title"],
        "brand": product["brand"],
        "status": product["status"],
        "final": {
            "category_id": category.id if category else None,
            "category_path": category.path if category else None,
            "google_product_category": category.google_id if category else None,
            "attributes": {
                code: (stored.get(code) or None) if is_final else None
                for code in context.attribute_codes
            },
            "tags": list(product["tags"] or []) if is_final else [],
        },
        "decision": _decision_part(product, decision),
        "annotation": _annotation_part(annotation),
        "images": [
            {
                "position": image["position"],
                "status": image["status"],
                "source_url": image["source_url"] or None,
                "error": image["error"] or None,
            }
            for image in images
        ],
        "created_at": _iso(product["created_at"]),
        "updated_at": _iso(product["updated_at"]),
    }


def _rows_with_latest_ids(products: QuerySet[Product]) -> QuerySet:
    latest_decision = Decision.objects.filter(
        product=OuterRef("pk"), undone_at__isnull=True
    ).exclude(action=Decision.Action.SKIP)
    latest_annotation = Annotation.objects.filter(product=OuterRef("pk")).order_by("-id")
    return products.annotate(
        latest_decision_id=Subquery(latest_decision.order_by("-id").values("id")[:1]),
        # Both read from the (product, -id, created_at) index alone.
        latest_annotation_id=Subquery(latest_annotation.values("id")[:1]),
        latest_annotation_at=Subquery(latest_annotation.values("created_at")[:1]),
    ).values(*PRODUCT_FIELDS, "latest_decision_id", "latest_annotation_id", "latest_annotation_at")


def final_metadata_for(
    rows: list[dict[str, Any]], *, context: MetadataContext, with_details: bool = True
) -> list[dict[str, Any]]:
    """Metadata for rows read through `_rows_with_latest_ids`: three queries
    (one without `with_details`: no annotation details and no images, for the
    flat exports that do not print them)."""
    decision_ids = [r["latest_decision_id"] for r in rows if r["latest_decision_id"]]
    decisions = {}
    if decision_ids:
        decisions = {
            d["id"]: d
            for d in Decision.objects.filter(pk__in=decision_ids).values(*DECISION_FIELDS)
        }
    annotations: dict[int, dict] = {}
    images: dict[int, list[dict]] = {}
    if with_details:
        annotation_ids = [r["latest_annotation_id"] for r in rows if r["latest_annotation_id"]]
        annotations = {
            a["id"]: a
            for a in Annotation.objects.filter(pk__in=annotation_ids).values(*ANNOTATION_FIELDS)
        }
        for image in (
            ProductImage.objects.filter(product__in=[r["id"] for r in rows])
            .order_by("product_id", "position")
            .values(*IMAGE_FIELDS)
        ):
            images.setdefault(image["product_id"], []).append(image)
    return [
        product_final_metadata(
            r,
            context=context,
            decision=decisions.get(r["latest_decision_id"]),
            annotation=annotations.get(r["latest_annotation_id"]),
            images=images.get(r["id"], []),
        )
        for r in rows
    ]


def product_metadata_one(product: Product, *, context: MetadataContext | None = None) -> dict:
    """One product's metadata (the detail endpoint and webhook payloads)."""
    rows = list(_rows_with_latest_ids(Product.objects.filter(pk=product.pk)))
    return final_metadata_for(rows, context=context or metadata_context())[0]


def products_page(products: QuerySet[Product], *, context: MetadataContext) -> list[dict[str, Any]]:
    """Metadata of an already sliced page of products, in the queryset's order."""
    return final_metadata_for(list(_rows_with_latest_ids(products)), context=context)


def final_metadata_rows(
    products: QuerySet[Product],
    *,
    context: MetadataContext | None = None,
    with_details: bool = True,
    chunk: int = CHUNK,
) -> Iterator[dict[str, Any]]:
    """Stream metadata in id order, `chunk` products at a time (keyset on id),
    so memory stays flat however many products match."""
    context = context or metadata_context()
    base = products.order_by("id")
    last = 0
    while True:
        page = list(_rows_with_latest_ids(base.filter(id__gt=last))[:chunk])
        if not page:
            return
        yield from final_metadata_for(page, context=context, with_details=with_details)
        last = page[-1]["id"]

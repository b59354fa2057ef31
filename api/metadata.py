"""A product's final metadata: the one object the REST API returns, the
webhooks send and the exports write (JSON Lines as is; CSV and the Merchant
feed flatten it). `product_final_metadata` builds it; `final_metadata_rows`
streams it for many products with a constant number of queries per chunk."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.db.models import Case, Count, Max, OuterRef, QuerySet, Subquery, Sum, When

from annotator.models import Annotation
from catalog.models import Attribute, Category, Product, ProductImage
from review.models import Decision

# Statuses whose category/attributes/tags are final values a shop may use.
FINAL_STATUSES = (Product.Status.AUTO_ACCEPTED, Product.Status.REVIEWED)
# Statuses a reviewer's decision explains (a rejection is a decision too).
DECIDED_STATUSES = (Product.Status.REVIEWED, Product.Status.REJECTED)
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

    @property
    def no_values(self) -> tuple[None, ...]:
        """The attribute values of a product without final values."""
        return (None,) * len(self.attribute_codes)


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


def decision_values(
    status: str, latest_annotation_at: Any, updated_at: Any, decision: tuple | None
) -> tuple[str | None, str | None, str | None]:
    """How a product's final values were decided, when and by whom. `decision`
    is its latest non-skip decision as (action, created_at, reviewer username)."""
    if status == Product.Status.AUTO_ACCEPTED:
        return "auto_accepted", _iso(latest_annotation_at or updated_at), None
    if decision is not None and status in DECIDED_STATUSES:
        action, at, by = decision
        return HOW_DECIDED.get(action), _iso(at), by
    return None, None, None


def final_values(
    status: str, category_id: int | None, attributes: Any, tags: Any, context: MetadataContext
) -> tuple[CategoryInfo | None, tuple[str | None, ...], list[str]]:
    """A product's final category, attribute values (in `context.attribute_codes`
    order) and tags: values only when it has final values (auto-accepted or
    reviewed), otherwise no category, nulls and no tags."""
    if status not in FINAL_STATUSES:
        return None, context.no_values, []
    stored = attributes or {}
    return (
        context.categories.get(category_id),
        tuple([stored.get(code) or None for code in context.attribute_codes]),
        list(tags or []),
    )


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
    decision: tuple | None,
    annotation: dict[str, Any] | None,
    images: list[dict[str, Any]],
) -> dict[str, Any]:
    """The product as a shop sees it, from its row (PRODUCT_FIELDS and the
    latest annotation's time), its latest decision (as `decision_values` takes
    it) and annotation and its images. `final` holds values only when the
    product has final values (auto-accepted or reviewed); otherwise nulls."""
    status = product["status"]
    category, values, tags = final_values(
        status, product["category_id"], product["attributes"], product["tags"], context
    )
    how, at, by = decision_values(
        status, product["latest_annotation_at"], product["updated_at"], decision
    )
    return {
        "id": product["id"],
        "sku": product["sku"],
        "title": product["title"],
        "brand": product["brand"],
        "status": status,
        "final": {
            "category_id": category.id if category else None,
            "category_path": category.path if category else None,
            "google_product_category": category.google_id if category else None,
            "attributes": dict(zip(context.attribute_codes, values, strict=True)),
            "tags": tags,
        },
        "decision": {"how": how, "at": at, "by": by},
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


def _with_latest(products: QuerySet[Product], *, annotation_id: bool) -> QuerySet[Product]:
    """Products annotated with what their metadata needs from other tables:
    the latest decision's id (only where a decision explains the status) and
    the latest annotation's time (only for auto-accepted products), each read
    from an index; with `annotation_id`, the latest annotation's id too. The
    CASE guards skip the lookups the metadata would not print."""
    latest_decision = (
        Decision.objects.filter(product=OuterRef("pk"), undone_at__isnull=True)
        .exclude(action=Decision.Action.SKIP)
        .order_by("-id")
    )
    # Both read from the (product, -id, created_at) index alone.
    latest_annotation = Annotation.objects.filter(product=OuterRef("pk")).order_by("-id")
    fields: dict[str, Any] = {
        "latest_decision_id": Case(
            When(status__in=DECIDED_STATUSES, then=Subquery(latest_decision.values("id")[:1]))
        ),
        "latest_annotation_at": Case(
            When(
                status=Product.Status.AUTO_ACCEPTED,
                then=Subquery(latest_annotation.values("created_at")[:1]),
            )
        ),
    }
    if annotation_id:
        fields["latest_annotation_id"] = Subquery(latest_annotation.values("id")[:1])
    return products.annotate(**fields)


def _decisions(ids: list[int]) -> dict[int, tuple]:
    """Decisions by id as (action, created_at, reviewer username): one query."""
    if not ids:
        return {}
    return {
        pk: (action, at, by)
        for pk, action, at, by in Decision.objects.filter(pk__in=ids).values_list(*DECISION_FIELDS)
    }


def final_metadata_for(rows: list[dict[str, Any]], *, context: MetadataContext) -> list[dict]:
    """Metadata for rows read through `_with_latest(annotation_id=True)`:
    three queries (decisions, annotations, images), however many rows."""
    decisions = _decisions([r["latest_decision_id"] for r in rows if r["latest_decision_id"]])
    annotation_ids = [r["latest_annotation_id"] for r in rows if r["latest_annotation_id"]]
    annotations: dict[int, dict] = {}
    if annotation_ids:
        annotations = {
            a["id"]: a
            for a in Annotation.objects.filter(pk__in=annotation_ids).values(*ANNOTATION_FIELDS)
        }
    images: dict[int, list[dict]] = {}
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


DETAIL_FIELDS = (
    *PRODUCT_FIELDS,
    "latest_decision_id",
    "latest_annotation_id",
    "latest_annotation_at",
)


def _detail_rows(products: QuerySet[Product]) -> list[dict[str, Any]]:
    return list(_with_latest(products, annotation_id=True).values(*DETAIL_FIELDS))


def product_metadata_one(product: Product, *, context: MetadataContext | None = None) -> dict:
    """One product's metadata (the detail endpoint and webhook payloads)."""
    rows = _detail_rows(Product.objects.filter(pk=product.pk))
    return final_metadata_for(rows, context=context or metadata_context())[0]


def products_page(products: QuerySet[Product], *, context: MetadataContext) -> list[dict[str, Any]]:
    """Metadata of an already sliced page of products, in the queryset's order."""
    return final_metadata_for(_detail_rows(products), context=context)


def final_metadata_rows(
    products: QuerySet[Product], *, context: MetadataContext | None = None, chunk: int = CHUNK
) -> Iterator[dict[str, Any]]:
    """Stream metadata in id order, `chunk` products at a time (keyset on id),
    so memory stays flat however many products match."""
    context = context or metadata_context()
    base = products.order_by("id")
    last = 0
    while True:
        page = _detail_rows(base.filter(id__gt=last)[:chunk])
        if not page:
            return
        yield from final_metadata_for(page, context=context)
        last = page[-1]["id"]


# What the flat exports (CSV, Merchant feed) print of a product, in this order.
FLAT_FIELDS = (
    "id",
    "sku",
    "title",
    "brand",
    "status",
    "category_id",
    "attributes",
    "tags",
    "updated_at",
    "latest_decision_id",
    "latest_annotation_at",
)


class FlatMetadata(NamedTuple):
    """The part of a product's final metadata the flat exports print, as
    `product_final_metadata` decides it (the same two functions), without the
    annotation and images. A tuple: a million of them stream fast."""

    sku: str
    title: str
    brand: str
    status: str
    category: CategoryInfo | None
    attribute_values: tuple[str | None, ...]  # in context.attribute_codes order
    tags: list[str]
    decision: tuple[str | None, str | None, str | None]  # how, at, by
    updated_at: str | None


def final_flat_rows(
    products: QuerySet[Product], *, context: MetadataContext | None = None, chunk: int = CHUNK
) -> Iterator[FlatMetadata]:
    """Stream the flat part of every product's metadata in id order, `chunk`
    products at a time: plain tuples from `values_list`, two queries per
    chunk, no per-product dicts (a million rows export in about a minute)."""
    context = context or metadata_context()
    base = _with_latest(products.order_by("id"), annotation_id=False)
    last = 0
    while True:
        page = list(base.filter(id__gt=last).values_list(*FLAT_FIELDS)[:chunk])
        if not page:
            return
        decisions = _decisions([row[9] for row in page if row[9]])
        for (
            _,
            sku,
            title,
            brand,
            status,
            category_id,
            attributes,
            tags,
            updated_at,
            decision_id,
            annotation_at,
        ) in page:
            category, values, tag_list = final_values(
                status, category_id, attributes, tags, context
            )
            how_at_by = decision_values(
                status, annotation_at, updated_at, decisions.get(decision_id)
            )
            yield FlatMetadata(
                sku, title, brand, status, category, values, tag_list, how_at_by, _iso(updated_at)
            )
        last = page[-1][0]

"""The corrections browser: what reviewers changed, grouped into pairs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from django.db.models import Count, Max, Min, Q, QuerySet

from annotator.models import PromptVersion
from catalog.models import Category, ProductImage
from review.models import Correction
from review.services import review_fields
from tuning.services.common import percent


@dataclass(frozen=True)
class CorrectionFilters:
    category: Category | None = None  # the final category, with its subtree
    model: str = ""
    prompt_version: PromptVersion | None = None
    date_from: date | None = None
    date_to: date | None = None


@dataclass
class CorrectionPair:
    ai_value: str
    final_value: str
    count: int
    share: float  # percent of the field's corrections
    product_ids: list[int]
    image_ids: list[int] = field(default_factory=list)


@dataclass
class FieldPairs:
    field: str
    total: int
    pairs: list[CorrectionPair]


def _subtree(category: Category, prefix: str = "") -> Q:
    return Q(**{f"{prefix}category": category}) | Q(
        **{f"{prefix}category__path__startswith": f"{category.path} > "}
    )


def corrections_filtered(filters: CorrectionFilters) -> QuerySet[Correction]:
    corrections = Correction.objects.all()
    if filters.category is not None:
        corrections = corrections.filter(_subtree(filters.category))
    if filters.model:
        corrections = corrections.filter(model=filters.model)
    if filters.prompt_version is not None:
        corrections = corrections.filter(prompt_version=filters.prompt_version)
    if filters.date_from is not None:
        corrections = corrections.filter(created_at__date__gte=filters.date_from)
    if filters.date_to is not None:
        corrections = corrections.filter(created_at__date__lte=filters.date_to)
    return corrections


def correction_pairs(*, filters: CorrectionFilters, top: int = 10) -> list[FieldPairs]:
    """For each field, its most frequent (AI value -> reviewer value) pairs
    with up to two example products: one GROUP BY query per field, one for
    the totals and one for the example images."""
    corrections = corrections_filtered(filters)
    totals = dict(
        corrections.order_by().values("field").annotate(n=Count("id")).values_list("field", "n")
    )
    results: list[FieldPairs] = []
    for name in review_fields():
        rows = (
            corrections.filter(field=name)
            .order_by()
            .values("ai_value", "final_value")
            .annotate(n=Count("id"), newest=Max("product_id"), oldest=Min("product_id"))
            .order_by("-n", "ai_value", "final_value")[:top]
        )
        total = totals.get(name, 0)
        results.append(
            FieldPairs(
                field=name,
                total=total,
                pairs=[
                    CorrectionPair(
                        ai_value=row["ai_value"],
                        final_value=row["final_value"],
                        count=row["n"],
                        share=percent(row["n"] / total) if total else 0.0,
                        product_ids=sorted({row["newest"], row["oldest"]}, reverse=True),
                    )
                    for row in rows
                ],
            )
        )
    images = primary_images(
        {pid for group in results for p in group.pairs for pid in p.product_ids}
    )
    for group in results:
        for pair in group.pairs:
            pair.image_ids = [images[pid] for pid in pair.product_ids if pid in images]
    return results


def primary_images(product_ids: Iterable[int]) -> dict[int, int]:
    """product id -> id of its first ready image, in one query."""
    ids = set(product_ids)
    if not ids:
        return {}
    found: dict[int, int] = {}
    rows = (
        ProductImage.objects.filter(product_id__in=ids, status=ProductImage.Status.READY)
        .order_by("product_id", "position")
        .values_list("product_id", "id")
    )
    for product_id, image_id in rows:
        found.setdefault(product_id, image_id)
    return found

"""Reads for the unmapped-values screen: raw answers of the latest annotations
that the taxonomy does not know (yet)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from django.db import models
from django.db.models import Exists, OuterRef

from annotator.models import Annotation
from catalog.models import Product
from catalog.taxonomy.vocabulary import Vocabulary, match_key, vocabulary_current

# The unmapped-values view reads at most this many recent annotations.
UNMAPPED_SCAN_LIMIT = 20_000
UNMAPPED_EXAMPLES = 3

CATEGORY_FIELDS = ("category", "subcategory")


@dataclass
class UnmappedValue:
    field: str
    raw: str
    products: int = 0
    in_review: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def is_category(self) -> bool:
        return self.field in CATEGORY_FIELDS


def _maps_now(vocabulary: Vocabulary, field_name: str, raw: str) -> bool:
    if field_name in CATEGORY_FIELDS:
        return bool(vocabulary.find_categories(raw))
    return vocabulary.match_value(field_name, raw) is not None


def _latest_annotations() -> models.QuerySet:
    newer = Annotation.objects.filter(product=OuterRef("product"), pk__gt=OuterRef("pk"))
    return Annotation.objects.exclude(unmapped={}).filter(~Exists(newer)).order_by("-pk")


def unmapped_values(*, limit: int = UNMAPPED_SCAN_LIMIT) -> list[UnmappedValue]:
    """Raw answers that mapped to nothing in each product's latest annotation
    (of the newest `limit`), grouped by field and match key ("Navy-Blue" and
    "navy blue" are one row, shown in the most frequent spelling, the newest
    on a tie), most products first. A value that maps now (a synonym was
    added since) drops out."""
    vocabulary = vocabulary_current()
    groups: dict[tuple[str, str], UnmappedValue] = {}
    spellings: dict[tuple[str, str], Counter[str]] = {}
    rows = _latest_annotations().values_list("unmapped", "product__sku", "product__status")
    for unmapped, sku, status in rows[:limit]:
        if not isinstance(unmapped, dict):
            continue
        for field_name, raw in unmapped.items():
            raw = " ".join(str(raw or "").split())
            if not raw or _maps_now(vocabulary, field_name, raw):
                continue
            key = (field_name, match_key(raw) or raw.casefold())
            group = groups.setdefault(key, UnmappedValue(field=field_name, raw=raw))
            spellings.setdefault(key, Counter())[raw] += 1
            group.products += 1
            group.in_review += status == Product.Status.NEEDS_REVIEW
            if len(group.examples) < UNMAPPED_EXAMPLES:
                group.examples.append(sku)
    for key, group in groups.items():
        group.raw = spellings[key].most_common(1)[0][0]
    return sorted(groups.values(), key=lambda g: (-g.products, g.field, g.raw.casefold()))


def unmapped_value_products(*, field_name: str, raw: str) -> list[tuple[int, str, str]]:
    """Products in needs_review whose latest annotation left `raw` unmapped in
    `field_name`: (id, sku, title), for re-normalising after a fix."""
    key = match_key(raw) or raw.casefold()
    rows = (
        _latest_annotations()
        .filter(product__status=Product.Status.NEEDS_REVIEW)
        .values_list("unmapped", "product_id", "product__sku", "product__title")
    )
    found = []
    for unmapped, product_id, sku, title in rows.iterator(chunk_size=2000):
        value = unmapped.get(field_name) if isinstance(unmapped, dict) else None
        if value and (match_key(str(value)) or str(value).casefold()) == key:
            found.append((product_id, sku, title))
    return found

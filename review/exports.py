"""Reviewed items as evaluation and prompt-tuning data: what the AI answered,
what the reviewer made final, and which fields differ.

One record per accept or edit that was not undone, oldest first. Rows are
read with `.iterator(chunk_size=...)`: a constant number of queries per
chunk (the decisions with their product, reviewer, annotation, image and
prompt version; then their corrections; then the products' images), however
many rows there are, and memory bounded by the chunk.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time
from typing import IO, Any

from django.db.models import Prefetch
from django.urls import reverse
from django.utils import timezone

from catalog.models import Attribute, ProductImage
from config.csv_cells import csv_cell
from review.models import Correction, Decision
from review.services import review_fields

FORMATS = ("csv", "jsonl")
CHUNK_SIZE = 1000


def attribute_codes() -> list[str]:
    """Every attribute of the taxonomy, inactive ones too (older decisions
    hold them), in the admin's order: one CSV column pair each."""
    return list(Attribute.objects.order_by("position", "code").values_list("code", flat=True))


def csv_columns(codes: Iterable[str]) -> tuple[str, ...]:
    values = ("category_id", "category", *codes, "tags")
    return (
        "decision_id",
        "action",
        "sku",
        "title",
        "image_sha256",
        "image_url",
        "image_source_url",
        *(f"ai_{name}" for name in values),
        "ai_model",
        "ai_prompt_version",
        "ai_arm",
        "ai_confidence",
        "ai_review_reason",
        *(f"final_{name}" for name in values),
        "changed_fields",
        "reviewer",
        "decided_at",
    )


LIST_SEPARATOR = "|"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_since(text: str | None) -> date | None:
    """`YYYY-MM-DD` to a date; blank is None. ValueError with a message for
    people otherwise."""
    if not text:
        return None
    try:
        if not _DATE.fullmatch(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"“{text}” is not a date: use YYYY-MM-DD, e.g. 2025-01-31.") from None


def _decisions(*, since: date | None):
    decisions = (
        Decision.objects.filter(
            action__in=[Decision.Action.ACCEPT, Decision.Action.EDIT], undone_at__isnull=True
        )
        .select_related("product", "reviewer", "annotation__image", "annotation__prompt_version")
        .prefetch_related(
            Prefetch("corrections", queryset=Correction.objects.only("id", "decision_id", "field")),
            Prefetch(
                "product__images",
                queryset=ProductImage.objects.order_by("position"),
                to_attr="images_by_position",
            ),
        )
        .order_by("id")
    )
    if since is not None:
        # On or after the start of that day in TIME_ZONE: a range on the
        # indexed created_at, not a per-row date conversion.
        start = timezone.make_aware(datetime.combine(since, time.min))
        decisions = decisions.filter(created_at__gte=start)
    return decisions


def corrections_export_rows(
    *, since: date | None, chunk_size: int = CHUNK_SIZE
) -> Iterator[dict[str, Any]]:
    fields = review_fields()
    for decision in _decisions(since=since).iterator(chunk_size=chunk_size):
        yield _record(decision, fields)


def _record(decision: Decision, fields: tuple[str, ...]) -> dict[str, Any]:
    product, annotation = decision.product, decision.annotation
    # The image the AI was shown; the product's primary one if that is gone.
    image = annotation.image if annotation and annotation.image else None
    if image is None and product.images_by_position:
        image = product.images_by_position[0]
    changed = {correction.field for correction in decision.corrections.all()}
    return {
        "decision_id": decision.pk,
        "action": decision.action,
        "sku": product.sku,
        "title": product.title,
        "image": {
            "sha256": image.sha256 if image else "",
            "url": reverse("image_file", args=[image.pk]) if image else "",
            "source_url": image.source_url if image else "",
        },
        "ai": {
            **decision.before,
            "model": annotation.model if annotation else "",
            "prompt_version": (
                annotation.prompt_version.version
                if annotation and annotation.prompt_version
                else None
            ),
            "arm": annotation.arm if annotation else "",
            "confidence": annotation.confidence if annotation else None,
            "review_reason": annotation.review_reason if annotation else "",
        },
        "final": decision.after,
        "changed_fields": [
            *(name for name in fields if name in changed),
            *sorted(changed - set(fields)),  # an attribute deleted since
        ],
        "reviewer": decision.reviewer.get_username(),
        "decided_at": decision.created_at.isoformat(),
    }


# --- formats ---------------------------------------------------------------------------


def jsonl_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"


def _values_columns(prefix: str, values: dict[str, Any], codes: Iterable[str]) -> dict[str, Any]:
    attributes = values.get("attributes") or {}
    return {
        f"{prefix}_category_id": values.get("category_id"),
        f"{prefix}_category": values.get("category", ""),
        **{f"{prefix}_{code}": attributes.get(code, "") for code in codes},
        f"{prefix}_tags": LIST_SEPARATOR.join(values.get("tags") or []),
    }


def csv_record(row: dict[str, Any], codes: Iterable[str]) -> dict[str, Any]:
    """One export record flattened to the CSV columns of these attribute codes."""
    ai = row["ai"]
    return {
        "decision_id": row["decision_id"],
        "action": row["action"],
        "sku": row["sku"],
        "title": row["title"],
        "image_sha256": row["image"]["sha256"],
        "image_url": row["image"]["url"],
        "image_source_url": row["image"]["source_url"],
        **_values_columns("ai", ai, codes),
        "ai_model": ai["model"],
        "ai_prompt_version": ai["prompt_version"],
        "ai_arm": ai["arm"],
        "ai_confidence": ai["confidence"],
        "ai_review_reason": ai["review_reason"],
        **_values_columns("final", row["final"], codes),
        "changed_fields": LIST_SEPARATOR.join(row["changed_fields"]),
        "reviewer": row["reviewer"],
        "decided_at": row["decided_at"],
    }


class _Line:
    """A file-like object whose write returns the text: csv.writer as a
    line generator (the pattern Django documents for streaming CSV)."""

    def write(self, text: str) -> str:
        return text


def csv_lines(rows: Iterable[dict[str, Any]], codes: list[str] | None = None) -> Iterator[str]:
    """A header, then one line a record. The attribute columns are the
    taxonomy's when the export starts (`codes` overrides)."""
    codes = attribute_codes() if codes is None else codes
    columns = csv_columns(codes)
    writer = csv.writer(_Line())
    yield writer.writerow(columns)
    for row in rows:
        flat = csv_record(row, codes)
        yield writer.writerow([csv_cell(flat[name]) for name in columns])


def _write(lines: Iterator[str], stream: IO[str]) -> int:
    written = 0
    for line in lines:
        stream.write(line)
        written += 1
    return written


def write_jsonl(rows: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    """Write one JSON object a line; returns the number of records."""
    return _write(jsonl_lines(rows), stream)


def write_csv(rows: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    """Write a header and one line a record; returns the number of records.
    Open files with newline="" (the csv module writes \\r\\n itself)."""
    return _write(csv_lines(rows), stream) - 1

"""The row rules shared by every importer (CSV, JSON Lines, the API): what a record
must hold to become a product row, and the report of an import."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from accounts.hygiene import control_characters_find
from catalog.models import Product, ProductImage

MAX_REPORTED_ERRORS = 1000
PRODUCT_FIELDS = ("title", "description", "brand")
IMAGE_FIELDS = ("image_url", "image_path")
# Column sizes are the model's (one source of truth); text without one (description)
# and any cell are capped here, so a 1 MB cell is a row error.
CELL_MAX_CHARS = 100_000
_FIELD_LIMITS = {
    name: Product._meta.get_field(name).max_length or CELL_MAX_CHARS
    for name in ("sku", *PRODUCT_FIELDS)
}
SOURCE_LIMITS = {
    "url": ProductImage._meta.get_field("source_url").max_length,
    "path": ProductImage._meta.get_field("source_path").max_length,
}
_url_validator = URLValidator(schemes=["http", "https"])
_SURROGATE = re.compile(r"[\ud800-\udfff]")


@dataclass
class ProductRow:
    line: int
    sku: str
    values: dict[str, str]  # only the product fields present in the row
    # (kind, source, problem): kind is "url" or "path"; a source with a problem (not a
    # URL, too long) is stored as a failed image with that reason, keeping its product.
    images: list[tuple[str, str, str]]
    first_line: int | None = None  # the line of an earlier row with this SKU in the file


@dataclass
class RowError:
    line: int
    sku: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "sku": self.sku, "reason": self.reason}


@dataclass
class ImportReport:
    """What an import did. Counts cover committed rows only, so an import stopped
    part-way reports what it kept: rows_total = created + updated + unchanged +
    duplicate + failed. A SKU is counted once (created, updated or unchanged against
    what was stored before this file); its later rows in the same file are duplicates."""

    rows_total: int = 0
    rows_created: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    rows_duplicate: int = 0
    images_ready: int = 0
    images_failed: int = 0
    images_queued: int = 0
    errors: list[RowError] = field(default_factory=list)
    rows_failed: int = 0

    def fail(self, error: RowError) -> None:
        self.rows_total += 1
        self.rows_failed += 1
        self._record(error)

    def warn(self, error: RowError) -> None:
        """An image problem or a duplicate SKU: reported, but its row was imported."""
        self._record(error)

    def _record(self, error: RowError) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(error)


# --- rows -------------------------------------------------------------------------


class _RowProblem(Exception):
    pass


def _text(name: str, value: Any) -> str:
    """A cell or JSON value as text; lists only for the image columns."""
    if value is None:
        return ""
    if isinstance(value, list) and name in IMAGE_FIELDS:
        if not all(isinstance(item, str | int | float) for item in value):
            raise _RowProblem(f"{name} must be text or a list of texts")
        return "|".join(str(item) for item in value)
    if isinstance(value, dict | list):
        kind = "an object" if isinstance(value, dict) else "a list"
        raise _RowProblem(f"{name} must be text, not {kind}")
    text = str(value).strip()
    limit = _FIELD_LIMITS.get(name, CELL_MAX_CHARS)
    if name not in IMAGE_FIELDS and len(text) > limit:
        raise _RowProblem(f"{name} is longer than {limit:,} characters")
    if len(text) > CELL_MAX_CHARS:
        raise _RowProblem(f"{name} is longer than {CELL_MAX_CHARS:,} characters")
    if control_characters_find(text):
        code = ord(next(c for c in text if control_characters_find(c)))
        shown = f"U+{code:04X}" + (" (NUL)" if code == 0 else "")
        raise _RowProblem(
            f"{name} contains the control character {shown}, which cannot be stored: remove it"
        )
    if _SURROGATE.search(text):
        raise _RowProblem(f"{name} is not valid Unicode text (a lone surrogate)")
    return text


def _image_sources(kind: str, text: str) -> list[tuple[str, str, str]]:
    name, limit = f"image_{kind}", SOURCE_LIMITS[kind]
    sources = []
    for source in filter(None, (part.strip() for part in text.split("|"))):
        problem = ""
        if len(source) > limit:
            problem = f"{name} is longer than {limit:,} characters"
        elif kind == "url":
            try:
                _url_validator(source)
            except (ValidationError, ValueError):
                problem = "image_url is not an http(s) URL"
        sources.append((kind, source, problem))
    return sources


def parse_row(line: int, record: dict[str, Any]) -> ProductRow | RowError:
    """One record as a product row, or the reason it is refused. Shared by every importer
    (CSV, JSON Lines, the API)."""
    sku = ""
    try:
        sku = _text("sku", record.get("sku"))
        if not sku:
            return RowError(line, "", "missing sku")
        if any(ch.isspace() for ch in sku):
            return RowError(line, sku, "sku must not contain spaces")
        values = {name: _text(name, record[name]) for name in PRODUCT_FIELDS if name in record}
        images = _image_sources("url", _text("image_url", record.get("image_url")))
        images += _image_sources("path", _text("image_path", record.get("image_path")))
    except _RowProblem as problem:
        return RowError(line, _shown_sku(sku or record.get("sku")), str(problem))
    return ProductRow(line=line, sku=sku, values=values, images=images)


def _shown_sku(value: Any) -> str:
    """The SKU of a refused row as the report can store it (JSON in PostgreSQL takes
    neither NUL nor lone surrogates), else blank."""
    if not isinstance(value, str | int):
        return ""
    text = str(value).strip()[: _FIELD_LIMITS["sku"]]
    return "" if control_characters_find(text) or _SURROGATE.search(text) else text

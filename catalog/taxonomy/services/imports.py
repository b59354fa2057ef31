"""Taxonomy files in the admin: parse, preview what loading would change,
apply in one transaction (with a `TaxonomyChange` row)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog.models import Attribute, AttributeValue, Category
from catalog.taxonomy.formats import (
    PATH_SEPARATOR,
    TaxonomyFileError,
    TaxonomySpec,
    parse_csv,
    parse_google,
    parse_json,
    taxonomy_load,
)
from catalog.taxonomy.services.categories import _lock_tree, _paths_refresh
from catalog.taxonomy.services.history import Action, User, _record

FORMATS = ("json", "csv", "google")

# --- import and export --------------------------------------------------------------


def taxonomy_file_parse(*, text: str, fmt: str) -> TaxonomySpec:
    """Parse with catalog.taxonomy's parsers; any failure is a TaxonomyFileError."""
    parsers = {"json": parse_json, "csv": parse_csv, "google": parse_google}
    if fmt not in parsers:
        raise TaxonomyFileError([("file", f"unknown format {fmt!r}")])
    try:
        return parsers[fmt](text)
    except TaxonomyFileError:
        raise
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise TaxonomyFileError([("file", f"cannot be read as {fmt}: {exc}")]) from exc


@dataclass
class ImportPreview:
    """What loading a file would change. Categories are matched as
    `taxonomy_load` matches them: by Google id first, else by path."""

    added: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    values_added: list[str] = field(default_factory=list)
    values_updated: list[str] = field(default_factory=list)
    values_removed: list[str] = field(default_factory=list)
    removed_ids: list[int] = field(default_factory=list, repr=False)
    removed_value_ids: list[int] = field(default_factory=list, repr=False)

    @property
    def has_changes(self) -> bool:
        return any(
            (
                self.added,
                self.renamed,
                self.moved,
                self.updated,
                self.removed,
                self.values_added,
                self.values_updated,
                self.values_removed,
            )
        )

    def summary(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "renamed": [list(pair) for pair in self.renamed],
            "moved": [list(pair) for pair in self.moved],
            "updated": self.updated,
            "removed": self.removed,
            "values_added": self.values_added,
            "values_updated": self.values_updated,
            "values_removed": self.values_removed,
        }


def _keep_local_fields(spec: TaxonomySpec) -> None:
    """Google's file carries names and ids only: a category it matches keeps
    its synonyms, review threshold and active flag instead of losing them."""
    rows = list(Category.objects.all())
    by_google = {row.google_id: row for row in rows if row.google_id is not None}
    by_path = {tuple(row.path_names): row for row in rows}
    for item in spec.categories:
        row = by_google.get(item.google_id) if item.google_id else None
        row = row or by_path.get(item.path)
        if row is not None:
            item.synonyms = list(row.synonyms)
            item.review_threshold = row.review_threshold
            item.is_active = row.is_active


def taxonomy_import_preview(*, spec: TaxonomySpec, fmt: str) -> ImportPreview:
    """Compare a parsed file with the database without writing anything.
    "removed" lists what is active in the database and not in the file.
    Raises TaxonomyFileError when loading would put two categories of the
    same name under one parent. For a Google file, `spec` is first given the
    local fields its format cannot carry (see _keep_local_fields)."""
    if fmt == "google":
        _keep_local_fields(spec)
    preview = ImportPreview()
    existing = {row.pk: row for row in Category.objects.all()}
    # The same lookups as taxonomy_load, updated as it goes, so the preview
    # predicts what the load does.
    by_path: dict[tuple[str, ...], Any] = {tuple(c.path_names): c.pk for c in existing.values()}
    by_google: dict[int, Any] = {
        c.google_id: c.pk for c in existing.values() if c.google_id is not None
    }
    final: dict[Any, tuple[Any, str, str]] = {
        c.pk: (c.parent_id, c.name, c.path) for c in existing.values()
    }
    matched: set[int] = set()
    errors: list[tuple[str, str]] = []
    for item in sorted(spec.categories, key=lambda c: len(c.path)):
        path = PATH_SEPARATOR.join(item.path)
        parent_ref = by_path[item.path[:-1]] if len(item.path) > 1 else None
        ref = by_google.get(item.google_id) if item.google_id else None
        ref = ref or by_path.get(item.path)
        if ref is None:
            ref = ("new", item.path)
            preview.added.append(path)
        elif isinstance(ref, int):
            if ref in matched:
                errors.append((path, "matches the same category as another line"))
            matched.add(ref)
            row = existing[ref]
            if row.name != item.path[-1]:
                preview.renamed.append((row.path, path))
            if row.parent_id != parent_ref:
                preview.moved.append((row.path, path))
            elif row.name == item.path[-1] and (
                list(row.synonyms),
                row.is_active,
                row.review_threshold,
                row.google_id,
            ) != (item.synonyms, item.is_active, item.review_threshold, item.google_id):
                preview.updated.append(path)
        final[ref] = (parent_ref, item.path[-1], path)
        by_path[item.path] = ref
        if item.google_id:
            by_google[item.google_id] = ref
    owners: dict[tuple[Any, str], str] = {}
    for parent_ref, name, path in final.values():
        if (parent_ref, name) in owners:
            errors.append((path, f"would clash with the existing {owners[parent_ref, name]!r}"))
        owners.setdefault((parent_ref, name), path)
    if errors:
        raise TaxonomyFileError(errors)
    unmatched = sorted(
        (row for pk, row in existing.items() if pk not in matched and row.is_active),
        key=lambda row: row.path,
    )
    preview.removed = [row.path for row in unmatched]
    preview.removed_ids = [row.pk for row in unmatched]

    attributes = {a.code: a for a in Attribute.objects.prefetch_related("values")}
    for attr_spec in spec.attributes:
        attribute = attributes.get(attr_spec.code)
        values = {v.name.lower(): v for v in attribute.values.all()} if attribute else {}
        listed = set()
        for value_spec in attr_spec.values:
            label = f"{attr_spec.code}: {value_spec.name}"
            listed.add(value_spec.name.lower())
            value = values.get(value_spec.name.lower())
            if value is None:
                preview.values_added.append(label)
            elif (value.name, list(value.synonyms), value.hex, value.is_active) != (
                value_spec.name,
                value_spec.synonyms,
                value_spec.hex,
                value_spec.is_active,
            ):
                preview.values_updated.append(label)
        for key, value in sorted(values.items()):
            if key not in listed and value.is_active:
                preview.values_removed.append(f"{attr_spec.code}: {value.name}")
                preview.removed_value_ids.append(value.pk)
    return preview


@dataclass
class ImportResult:
    preview: ImportPreview
    report: str
    deactivated: int


def taxonomy_import_apply(
    *, user: User, text: str, fmt: str, filename: str = "", deactivate_removed: bool = False
) -> ImportResult:
    """Load a whole file in one transaction: all of it or, on any error,
    nothing (TaxonomyFileError lists why). Optionally deactivate what the
    file no longer lists."""
    spec = taxonomy_file_parse(text=text, fmt=fmt)
    try:
        with transaction.atomic():
            _lock_tree()
            preview = taxonomy_import_preview(spec=spec, fmt=fmt)
            report = taxonomy_load(spec=spec)
            # A renamed or moved node's children that the file does not list
            # still carry the old path.
            _paths_refresh()
            deactivated = 0
            if deactivate_removed:
                now = timezone.now()
                deactivated = Category.objects.filter(
                    pk__in=preview.removed_ids, is_active=True
                ).update(is_active=False, updated_at=now)
                deactivated += AttributeValue.objects.filter(
                    pk__in=preview.removed_value_ids, is_active=True
                ).update(is_active=False, updated_at=now)
            _record(
                user=user,
                action=Action.IMPORT,
                subject=filename or f"{fmt} file",
                before={"format": fmt},
                after={
                    **preview.summary(),
                    "report": str(report),
                    "deactivated_removed": deactivate_removed,
                },
            )
    except IntegrityError as exc:
        raise TaxonomyFileError([("file", f"clashes with the current taxonomy: {exc}")]) from exc
    return ImportResult(preview=preview, report=str(report), deactivated=deactivated)

"""The taxonomy as files: parse (Loupe JSON, Loupe CSV, Google's
`taxonomy-with-ids`), load idempotently, and export.

Loading is additive: it creates and updates, never deletes (removal belongs
to the taxonomy admin, with a preview). A category is matched by its Google id
when it has one, else by its full path, so loading the same file twice
changes nothing and a renamed Google node is renamed, not duplicated.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils.text import slugify

from catalog.models import Attribute, AttributeValue, Category
from catalog.taxonomy.vocabulary import clean_synonyms

DEFAULT_TAXONOMY_FILE = Path(__file__).resolve().parent.parent / "data" / "default_taxonomy.json"
PATH_SEPARATOR = " > "
# Attribute codes are keys beside these in the model's answer and the review
# form, so they cannot be attribute codes.
RESERVED_CODES = ("category", "subcategory", "tags", "version", "seconds")
CSV_COLUMNS = ["kind", "key", "name", "synonyms", "hex", "active", "review_threshold", "google_id"]
_GOOGLE_LINE = re.compile(r"^(\d+)\s+-\s+(.+)$")
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


class TaxonomyFileError(Exception):
    """The file cannot be loaded; `errors` lists (line or location, reason)."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{where}: {reason}" for where, reason in errors[:10]))


@dataclass
class CategorySpec:
    path: tuple[str, ...]
    synonyms: list[str] = field(default_factory=list)
    is_active: bool = True
    review_threshold: float | None = None
    google_id: int | None = None


@dataclass
class ValueSpec:
    name: str
    synonyms: list[str] = field(default_factory=list)
    hex: str = ""
    is_active: bool = True


@dataclass
class AttributeSpec:
    code: str
    name: str
    values: list[ValueSpec] = field(default_factory=list)
    # The category paths the attribute is limited to ([] = every category);
    # None when the file does not say (CSV), so loading leaves the scope as is.
    categories: list[tuple[str, ...]] | None = None
    is_active: bool | None = None


@dataclass
class TaxonomySpec:
    categories: list[CategorySpec] = field(default_factory=list)
    attributes: list[AttributeSpec] = field(default_factory=list)


@dataclass
class LoadReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def __str__(self) -> str:
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


# --- parsing ----------------------------------------------------------------


def parse_json(text: str) -> TaxonomySpec:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaxonomyFileError([(f"line {exc.lineno}", f"invalid JSON: {exc.msg}")]) from exc
    if not isinstance(data, dict):
        raise TaxonomyFileError([("file", "expected a JSON object with 'categories'")])
    spec, errors = TaxonomySpec(), []

    def walk(nodes: Any, parent: tuple[str, ...], where: str) -> None:
        if not isinstance(nodes, list):
            errors.append((where, "'children' must be a list"))
            return
        for index, node in enumerate(nodes):
            here = f"{where}[{index}]"
            name = str(node.get("name", "")).strip() if isinstance(node, dict) else ""
            if not name:
                errors.append((here, "category without a name"))
                continue
            path = (*parent, name)
            try:
                spec.categories.append(
                    CategorySpec(
                        path=path,
                        synonyms=clean_synonyms(node.get("synonyms")),
                        is_active=bool(node.get("active", True)),
                        review_threshold=_threshold(node.get("review_threshold")),
                        google_id=_int_or_none(node.get("google_id")),
                    )
                )
            except ValueError as exc:
                errors.append((PATH_SEPARATOR.join(path), str(exc)))
            walk(node.get("children", []), path, f"{here}.children")

    walk(data.get("categories", []), (), "categories")
    for index, attribute in enumerate(data.get("attributes", [])):
        code = slugify(str(attribute.get("code", "")))
        if not code:
            errors.append((f"attributes[{index}]", "attribute without a code"))
            continue
        spec.attributes.append(
            AttributeSpec(
                code=code,
                name=str(attribute.get("name") or code.title()),
                values=[
                    ValueSpec(
                        name=str(value["name"]).strip(),
                        synonyms=clean_synonyms(value.get("synonyms")),
                        hex=str(value.get("hex", "")).lower(),
                        is_active=bool(value.get("active", True)),
                    )
                    for value in attribute.get("values", [])
                    if str(value.get("name", "")).strip()
                ],
                categories=_scope_paths(attribute.get("categories")),
                is_active=bool(attribute["active"]) if "active" in attribute else None,
            )
        )
    _check(spec, errors)
    return spec


def parse_csv(text: str) -> TaxonomySpec:
    reader = csv.DictReader(io.StringIO(text))
    missing = {"kind", "key", "name"} - set(reader.fieldnames or [])
    if missing:
        raise TaxonomyFileError([("line 1", f"missing columns: {', '.join(sorted(missing))}")])
    spec, errors = TaxonomySpec(), []
    attributes: dict[str, AttributeSpec] = {}
    for row in reader:
        where = f"line {reader.line_num}"
        kind, key = (row.get("kind") or "").strip(), (row.get("key") or "").strip()
        try:
            if kind == "category":
                path = tuple(part.strip() for part in key.split(">"))
                if not all(path):
                    raise ValueError(f"bad category path {key!r}")
                spec.categories.append(
                    CategorySpec(
                        path=path,
                        synonyms=clean_synonyms(row.get("synonyms", "")),
                        is_active=_bool(row.get("active", "")),
                        review_threshold=_threshold(row.get("review_threshold")),
                        google_id=_int_or_none(row.get("google_id")),
                    )
                )
            elif kind == "attribute":
                attributes.setdefault(key, AttributeSpec(code=key, name=key)).name = (
                    row.get("name") or key
                ).strip()
            elif kind == "value":
                if not (row.get("name") or "").strip():
                    raise ValueError("value without a name")
                attributes.setdefault(key, AttributeSpec(code=key, name=key.title())).values.append(
                    ValueSpec(
                        name=row["name"].strip(),
                        synonyms=clean_synonyms(row.get("synonyms", "")),
                        hex=(row.get("hex") or "").strip().lower(),
                        is_active=_bool(row.get("active", "")),
                    )
                )
            else:
                raise ValueError(f"kind must be category, attribute or value, not {kind!r}")
        except ValueError as exc:
            errors.append((where, str(exc)))
    spec.attributes = list(attributes.values())
    _check(spec, errors)
    return spec


def parse_google(text: str, *, root: str | None = None) -> TaxonomySpec:
    """Google's `taxonomy-with-ids` format: `ID - A > B > C`, `#` comments."""
    spec, errors = TaxonomySpec(), []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _GOOGLE_LINE.match(line)
        if not match:
            errors.append((f"line {number}", "expected 'ID - Category > Subcategory'"))
            continue
        path = tuple(part.strip() for part in match.group(2).split(">"))
        if root and path[0] != root:
            continue
        spec.categories.append(CategorySpec(path=path, google_id=int(match.group(1))))
    if root and not spec.categories and not errors:
        errors.append(("file", f"no category under the root {root!r}"))
    _check(spec, errors)
    return spec


def parse_file(path: Path, *, fmt: str | None = None, root: str | None = None) -> TaxonomySpec:
    text = Path(path).read_text(encoding="utf-8-sig")
    fmt = fmt or detect_format(Path(path).name, text)
    if fmt == "google":
        return parse_google(text, root=root)
    spec = parse_csv(text) if fmt == "csv" else parse_json(text)
    if root:
        spec.categories = [c for c in spec.categories if c.path[0] == root]
    return spec


def detect_format(filename: str, text: str) -> str:
    suffix = Path(filename).suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix == ".csv":
        return "csv"
    first = next((line for line in text.splitlines() if line.strip()), "")
    if first.lstrip().startswith("{"):
        return "json"
    if first.startswith("#") or _GOOGLE_LINE.match(first.strip()):
        return "google"
    return "csv"


def _scope_paths(value: Any) -> list[tuple[str, ...]] | None:
    """ "Clothing > Tops" strings (or name lists) to path tuples."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    paths = []
    for item in items:
        names = item if isinstance(item, list) else str(item).split(PATH_SEPARATOR.strip())
        path = tuple(str(name).strip() for name in names if str(name).strip())
        if path and path not in paths:
            paths.append(path)
    return paths


def _threshold(value: Any) -> float | None:
    if value in (None, ""):
        return None
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"review_threshold must be between 0 and 1, not {value}")
    return number


def _int_or_none(value: Any) -> int | None:
    if value in (None, ""):
        return None
    return int(value)


def _bool(value: Any) -> bool:
    return str(value).strip().lower() not in {"0", "false", "no", "off"}


def _check(spec: TaxonomySpec, errors: list[tuple[str, str]]) -> None:
    """Whole-file checks: every parent is defined first, no path twice."""
    seen: set[tuple[str, ...]] = set()
    for category in spec.categories:
        where = PATH_SEPARATOR.join(category.path)
        if category.path in seen:
            errors.append((where, "category listed twice"))
        if len(category.path) > 1 and category.path[:-1] not in seen:
            errors.append((where, "parent category is not defined before it"))
        seen.add(category.path)
    for attribute in spec.attributes:
        names = [value.name.lower() for value in attribute.values]
        for name in {n for n in names if names.count(n) > 1}:
            errors.append((f"attribute {attribute.code}", f"value {name!r} listed twice"))
        for value in attribute.values:
            if value.hex and not _HEX.match(value.hex):
                errors.append((f"{attribute.code}: {value.name}", f"bad hex colour {value.hex!r}"))
        if attribute.code in RESERVED_CODES:
            errors.append((f"attribute {attribute.code}", "this code names a field of its own"))
        for path in attribute.categories or []:
            if seen and path not in seen:
                where = PATH_SEPARATOR.join(path)
                errors.append((f"attribute {attribute.code}", f"no category {where!r} in the file"))
    if errors:
        raise TaxonomyFileError(errors)


# --- loading ----------------------------------------------------------------


def _unique_slug(path: tuple[str, ...], taken: set[str]) -> str:
    base = slugify(" ".join(path))[:240] or "category"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug)
    return slug


@transaction.atomic
def taxonomy_load(*, spec: TaxonomySpec) -> LoadReport:
    """Create or update every category and attribute value in `spec`.

    New rows are inserted in bulk, one INSERT per tree level and one for the
    values of each attribute: the default taxonomy is ~550 rows, and one query
    per row made loading it the slowest step of many tests and of a fresh
    machine's setup."""
    report = LoadReport()
    existing = list(Category.objects.select_for_update())
    by_path = {tuple(c.path_names): c for c in existing}
    by_google = {c.google_id: c for c in existing if c.google_id is not None}
    slugs = {c.slug for c in existing}

    # Parents precede children in a valid spec, so each level's parents exist
    # (and have their primary keys) once the level above is inserted.
    levels: dict[int, list[CategorySpec]] = {}
    for item in spec.categories:
        levels.setdefault(len(item.path), []).append(item)
    for _, items in sorted(levels.items()):
        new: list[Category] = []
        for item in items:
            parent = by_path[item.path[:-1]] if len(item.path) > 1 else None
            wanted = {
                "name": item.path[-1],
                "parent_id": parent.pk if parent else None,
                "path": PATH_SEPARATOR.join(item.path),
                "depth": len(item.path) - 1,
                "synonyms": item.synonyms,
                "is_active": item.is_active,
                "review_threshold": item.review_threshold,
                "google_id": item.google_id,
            }
            category = by_google.get(item.google_id) if item.google_id else None
            category = category or by_path.get(item.path)
            if category is None:
                category = Category(slug=_unique_slug(item.path, slugs), **wanted)
                new.append(category)
                report.created += 1
            elif any(getattr(category, key) != value for key, value in wanted.items()):
                for key, value in wanted.items():
                    setattr(category, key, value)
                category.save()
                report.updated += 1
            else:
                report.unchanged += 1
            by_path[item.path] = category
            if item.google_id:
                by_google[item.google_id] = category
        Category.objects.bulk_create(new)  # sets each one's pk (PostgreSQL, SQLite 3.35+)

    _attributes_load(spec.attributes, by_path, report)
    return report


def _attributes_load(
    specs: list[AttributeSpec], by_path: dict[tuple[str, ...], Category], report: LoadReport
) -> None:
    """The attributes of a spec, their scopes and values, in a constant number
    of queries (one per kind of row), not four per attribute."""
    for attr_spec in specs:
        missing = [p for p in attr_spec.categories or () if p not in by_path]
        if missing:
            raise TaxonomyFileError(
                [
                    (f"attribute {attr_spec.code}", f"no category {PATH_SEPARATOR.join(p)!r}")
                    for p in missing
                ]
            )
    existing = {a.code: a for a in Attribute.objects.filter(code__in=[a.code for a in specs])}
    new_attributes = [
        Attribute(code=attr_spec.code, name=attr_spec.name, position=position)
        for position, attr_spec in enumerate(specs)
        if attr_spec.code not in existing
    ]
    Attribute.objects.bulk_create(new_attributes)
    created = {attribute.code for attribute in new_attributes}
    attributes = existing | {attribute.code: attribute for attribute in new_attributes}

    through = Attribute.categories.through
    scopes: dict[int, set[int]] = {}
    for attribute_id, category_id in through.objects.filter(
        attribute__in=list(existing.values())
    ).values_list("attribute_id", "category_id"):
        scopes.setdefault(attribute_id, set()).add(category_id)
    stored_values: dict[int, dict[str, AttributeValue]] = {}
    for value in AttributeValue.objects.filter(attribute__in=list(existing.values())):
        stored_values.setdefault(value.attribute_id, {})[value.name.lower()] = value

    rescoped: dict[int, set[int]] = {}
    new_values: list[AttributeValue] = []
    for attr_spec in specs:
        attribute = attributes[attr_spec.code]
        changed = attr_spec.code not in created and attribute.name != attr_spec.name
        attribute.name = attr_spec.name
        if attr_spec.is_active is not None and attribute.is_active != attr_spec.is_active:
            attribute.is_active, changed = attr_spec.is_active, True
        if attr_spec.categories is not None:
            scope = {by_path[path].pk for path in attr_spec.categories}
            if scope != scopes.get(attribute.pk, set()):
                rescoped[attribute.pk] = scope
                changed = True
        if changed:
            attribute.save()  # bumps updated_at, so the vocabulary is rebuilt
        values = stored_values.get(attribute.pk, {})
        for value_position, value_spec in enumerate(attr_spec.values):
            wanted = {
                "name": value_spec.name,
                "synonyms": value_spec.synonyms,
                "hex": value_spec.hex,
                "is_active": value_spec.is_active,
            }
            value = values.get(value_spec.name.lower())
            if value is None:
                value = AttributeValue(attribute=attribute, position=value_position, **wanted)
                values[value_spec.name.lower()] = value
                new_values.append(value)
                report.created += 1
            elif any(getattr(value, key) != v for key, v in wanted.items()):
                for key, v in wanted.items():
                    setattr(value, key, v)
                value.save()
                report.updated += 1
            else:
                report.unchanged += 1
    if rescoped:
        through.objects.filter(attribute_id__in=list(rescoped)).delete()
        through.objects.bulk_create(
            through(attribute_id=attribute_id, category_id=category_id)
            for attribute_id, scope in rescoped.items()
            for category_id in scope
        )
    AttributeValue.objects.bulk_create(new_values)


# --- export -----------------------------------------------------------------


def taxonomy_spec_from_db() -> TaxonomySpec:
    return TaxonomySpec(
        categories=[
            CategorySpec(
                path=tuple(c.path_names),
                synonyms=list(c.synonyms),
                is_active=c.is_active,
                review_threshold=c.review_threshold,
                google_id=c.google_id,
            )
            for c in Category.objects.order_by("path")
        ],
        attributes=[
            AttributeSpec(
                code=a.code,
                name=a.name,
                values=[
                    ValueSpec(
                        name=v.name, synonyms=list(v.synonyms), hex=v.hex, is_active=v.is_active
                    )
                    for v in a.values.all()
                ],
                categories=sorted(tuple(c.path_names) for c in a.categories.all()),
                is_active=a.is_active,
            )
            for a in Attribute.objects.prefetch_related("values", "categories")
        ],
    )


def export_json(spec: TaxonomySpec) -> str:
    nodes: dict[tuple[str, ...], dict[str, Any]] = {}
    roots: list[dict[str, Any]] = []
    for category in sorted(spec.categories, key=lambda c: c.path):
        node: dict[str, Any] = {"name": category.path[-1]}
        if category.synonyms:
            node["synonyms"] = category.synonyms
        if not category.is_active:
            node["active"] = False
        if category.review_threshold is not None:
            node["review_threshold"] = category.review_threshold
        if category.google_id is not None:
            node["google_id"] = category.google_id
        nodes[category.path] = node
        parent = nodes.get(category.path[:-1])
        (parent.setdefault("children", []) if parent else roots).append(node)
    attributes = []
    for attribute in spec.attributes:
        values = []
        for value in attribute.values:
            item: dict[str, Any] = {"name": value.name}
            if value.synonyms:
                item["synonyms"] = value.synonyms
            if value.hex:
                item["hex"] = value.hex
            if not value.is_active:
                item["active"] = False
            values.append(item)
        entry: dict[str, Any] = {"code": attribute.code, "name": attribute.name}
        if attribute.categories:
            entry["categories"] = [PATH_SEPARATOR.join(path) for path in attribute.categories]
        if attribute.is_active is False:
            entry["active"] = False
        attributes.append({**entry, "values": values})
    return json.dumps({"categories": roots, "attributes": attributes}, indent=1, ensure_ascii=False)


def export_csv(spec: TaxonomySpec) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for category in sorted(spec.categories, key=lambda c: c.path):
        writer.writerow(
            {
                "kind": "category",
                "key": PATH_SEPARATOR.join(category.path),
                "name": category.path[-1],
                "synonyms": "|".join(category.synonyms),
                "active": "1" if category.is_active else "0",
                "review_threshold": ""
                if category.review_threshold is None
                else category.review_threshold,
                "google_id": category.google_id or "",
            }
        )
    for attribute in spec.attributes:
        writer.writerow({"kind": "attribute", "key": attribute.code, "name": attribute.name})
        for value in attribute.values:
            writer.writerow(
                {
                    "kind": "value",
                    "key": attribute.code,
                    "name": value.name,
                    "synonyms": "|".join(value.synonyms),
                    "hex": value.hex,
                    "active": "1" if value.is_active else "0",
                }
            )
    return out.getvalue()


def export_google(spec: TaxonomySpec) -> str:
    """Categories with a Google id, in Google's own line format and order."""
    lines = [
        f"{c.google_id} - {PATH_SEPARATOR.join(c.path)}"
        for c in sorted(spec.categories, key=lambda c: c.path)
        if c.google_id is not None
    ]
    return "# Google_Product_Taxonomy_Version: exported by Loupe\n" + "\n".join(lines) + "\n"


EXPORTERS = {"json": export_json, "csv": export_csv, "google": export_google}

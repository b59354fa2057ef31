"""The taxonomy as plain, immutable data, and the matching of free text to it.

Providers and the pipeline use a `Vocabulary` instead of models: it is built
once per taxonomy change (`vocabulary_current` checks a cheap signature on
every call, so an admin's edit is used by the next annotation without a
restart) and matching is a dictionary lookup.

Matching is case, plural and punctuation insensitive: "T-Shirts", "t shirt"
and "tshirts" all give the key "tshirt".
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from typing import Any

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def _singular(word: str) -> str:
    """A crude but consistent singular: the same key for both forms matters
    more than correct English ("tennis" -> "tenni" on both sides is fine)."""
    if len(word) <= 3:
        return word[:-2] + "y" if word.endswith("ie") else word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us")):
        word = word[:-1]
    # "hoodie"/"hoodies" and "accessory"/"accessories" must meet: -ie == -y.
    if word.endswith("ie"):
        word = word[:-2] + "y"
    return word


def clean_synonyms(value: Any) -> list[str]:
    """Synonyms as stored: lowercase, stripped, de-duplicated, in order; from a
    list or a "a|b" string."""
    items = value.split("|") if isinstance(value, str) else list(value or [])
    seen: dict[str, None] = {}
    for item in items:
        text = str(item).strip().lower()
        if text:
            seen.setdefault(text, None)
    return list(seen)


@functools.lru_cache(maxsize=16384)
def match_key(text: str) -> str:
    """The comparison key of a name, synonym or model answer (memoised: a
    vocabulary rebuild keys the same ~2,000 names and synonyms again)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    text = text.replace("&", " and ")
    words = [_singular(word) for word in _NON_ALNUM.split(text) if word]
    return "".join(words)


@dataclass(frozen=True)
class CategoryTerm:
    id: int
    path: str
    name: str
    synonyms: tuple[str, ...]
    depth: int
    parent_id: int | None
    is_leaf: bool
    review_threshold: float | None = None

    @property
    def top(self) -> str:
        return self.path.split(" > ")[0]


@dataclass(frozen=True)
class ValueTerm:
    id: int
    name: str
    synonyms: tuple[str, ...]
    hex: str = ""


@dataclass(frozen=True)
class AttributeTerm:
    """An active attribute. `scope` holds the ids of the active categories it
    is limited to (each with its subtree) and `scope_paths` their paths,
    sorted; `scope` is None when it applies to every category."""

    code: str
    name: str
    scope: frozenset[int] | None = None
    scope_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Vocabulary:
    categories: tuple[CategoryTerm, ...]
    # Active attributes only, in the admin's order: code -> allowed values.
    attributes: dict[str, tuple[ValueTerm, ...]]
    signature: str = ""
    # code -> name and category scope; an attribute missing here applies everywhere.
    attribute_terms: dict[str, AttributeTerm] = field(default_factory=dict)
    _category_index: dict[str, list[CategoryTerm]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _value_index: dict[str, dict[str, ValueTerm]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _by_id: dict[int, CategoryTerm] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for term in self.categories:
            self._by_id[term.id] = term
            for text in (term.name, term.path, *term.synonyms):
                bucket = self._category_index.setdefault(match_key(text), [])
                if term not in bucket:
                    bucket.append(term)
        for code, values in self.attributes.items():
            index = self._value_index.setdefault(code, {})
            for value in values:
                for text in (value.name, *value.synonyms):
                    index.setdefault(match_key(text), value)

    def category(self, category_id: int | None) -> CategoryTerm | None:
        return self._by_id.get(category_id) if category_id is not None else None

    def ancestors(self, term: CategoryTerm) -> list[CategoryTerm]:
        chain, parent = [], self.category(term.parent_id)
        while parent is not None:
            chain.append(parent)
            parent = self.category(parent.parent_id)
        return chain

    def find_categories(self, text: str | None) -> list[CategoryTerm]:
        if not text:
            return []
        return list(self._category_index.get(match_key(text), []))

    def match_category(
        self, category: str | None, subcategory: str | None
    ) -> tuple[CategoryTerm | None, list[str]]:
        """The most specific node the answer names, and which of the two
        fields named nothing in the taxonomy ("category", "subcategory")."""
        unmapped: list[str] = []
        tops = self.find_categories(category)
        if category and not tops:
            unmapped.append("category")
        subs = self.find_categories(subcategory)
        if subcategory and not subs:
            unmapped.append("subcategory")
        if subs:
            # Several nodes share the name: prefer the one under the named category.
            top_ids = {t.id for t in tops}
            under = [s for s in subs if top_ids & {a.id for a in self.ancestors(s)}]
            return (under or subs)[0], unmapped
        return (tops[0] if tops else None), unmapped

    def attribute_name(self, code: str) -> str:
        term = self.attribute_terms.get(code)
        return term.name if term else code.replace("_", " ").replace("-", " ").capitalize()

    def attributes_for(self, term: CategoryTerm | None) -> list[str]:
        """The codes of the active attributes that apply to a product of
        category `term`: unscoped ones, and scoped ones whose categories
        include `term` or one of its ancestors. With no category known yet
        every attribute may apply."""
        if term is None:
            return list(self.attributes)
        lineage = {term.id, *(node.id for node in self.ancestors(term))}
        codes = []
        for code in self.attributes:
            attribute = self.attribute_terms.get(code)
            if attribute is None or attribute.scope is None or attribute.scope & lineage:
                codes.append(code)
        return codes

    def match_value(self, code: str, text: str | None) -> ValueTerm | None:
        if not text:
            return None
        return self._value_index.get(code, {}).get(match_key(text))

    @property
    def leaves(self) -> list[CategoryTerm]:
        return [term for term in self.categories if term.is_leaf]


_cache: dict[str, Vocabulary] = {}
_cache_lock = threading.Lock()


def _signature() -> str:
    # Edits go through save(), whose auto_now bumps updated_at; deletions
    # change the counts. A bulk .update() must set updated_at itself.
    # One query (it runs on every review page and decision): scalar subqueries.
    from django.db import connection

    from catalog.models import Attribute, AttributeValue, Category

    category, value, attribute, scope = (
        connection.ops.quote_name(model._meta.db_table)
        for model in (Category, AttributeValue, Attribute, Attribute.categories.through)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT COUNT(*) FROM {category}), (SELECT MAX(updated_at) FROM {category}),"  # noqa: S608 - table names from _meta
            f" (SELECT COUNT(*) FROM {value}), (SELECT MAX(updated_at) FROM {value}),"
            f" (SELECT COUNT(*) FROM {attribute}), (SELECT MAX(updated_at) FROM {attribute}),"
            f" (SELECT COUNT(*) FROM {scope})"
        )
        return repr(cursor.fetchone())


def vocabulary_current() -> Vocabulary:
    """The active taxonomy, rebuilt only when it changed."""
    from catalog.models import Attribute, AttributeValue, Category

    signature = _signature()
    cached = _cache.get("current")
    if cached is not None and cached.signature == signature:
        return cached
    with _cache_lock:
        rows = list(
            Category.objects.filter(is_active=True).values(
                "id", "path", "name", "synonyms", "depth", "parent_id", "review_threshold"
            )
        )
        parents = {row["parent_id"] for row in rows}
        categories = tuple(
            CategoryTerm(
                id=row["id"],
                path=row["path"],
                name=row["name"],
                synonyms=tuple(row["synonyms"]),
                depth=row["depth"],
                parent_id=row["parent_id"],
                is_leaf=row["id"] not in parents,
                review_threshold=row["review_threshold"],
            )
            for row in rows
        )
        paths = {row["id"]: row["path"] for row in rows}
        attribute_terms: dict[str, AttributeTerm] = {}
        for attribute in Attribute.objects.filter(is_active=True).prefetch_related("categories"):
            scoped = [c.id for c in attribute.categories.all()]
            # Inactive scope categories drop out; with all of them gone the
            # attribute applies nowhere, not everywhere.
            scope = frozenset(pk for pk in scoped if pk in paths) if scoped else None
            attribute_terms[attribute.code] = AttributeTerm(
                code=attribute.code,
                name=attribute.name,
                scope=scope,
                scope_paths=tuple(sorted(paths[pk] for pk in scope or ())),
            )
        attributes: dict[str, list[ValueTerm]] = {code: [] for code in attribute_terms}
        for value in (
            AttributeValue.objects.filter(is_active=True, attribute__is_active=True)
            .select_related("attribute")
            .order_by("attribute__position", "position", "name")
        ):
            attributes[value.attribute.code].append(
                ValueTerm(
                    id=value.id, name=value.name, synonyms=tuple(value.synonyms), hex=value.hex
                )
            )
        vocabulary = Vocabulary(
            categories=categories,
            attributes={code: tuple(values) for code, values in attributes.items()},
            signature=signature,
            attribute_terms=attribute_terms,
        )
        _cache["current"] = vocabulary
        return vocabulary

"""Taxonomy admin services: edit the category tree and the attribute vocabulary,
merge, import with a preview, and record every change in the history.

Every service takes the acting user and writes one `TaxonomyChange` row in the
same transaction as the change. Writes go through `save()` or set `updated_at`
themselves, because `vocabulary_current()` notices a change by the latest
`updated_at` (and the row counts): the next annotation uses the edited taxonomy
without a restart.

One soft dependency: `unmapped_values` reads annotator's `Annotation` through
the app registry (`apps.get_model`) inside the function. catalog never imports
annotator or review; merges re-point their foreign keys generically, through
the reverse relations of `Category`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, models, transaction
from django.db.models import Count, Exists, F, OuterRef
from django.utils import timezone

from catalog.models import Attribute, AttributeValue, Category, Product, TaxonomyChange
from catalog.taxonomy import (
    _HEX,
    PATH_SEPARATOR,
    TaxonomyFileError,
    TaxonomySpec,
    TreeNode,
    _unique_slug,
    category_tree,
    parse_csv,
    parse_google,
    parse_json,
    taxonomy_load,
)
from catalog.vocabulary import Vocabulary, clean_synonyms, match_key, vocabulary_current

User = AbstractBaseUser | AnonymousUser
Action = TaxonomyChange.Action
FORMATS = ("json", "csv", "google")
# Products rewritten per UPDATE when a value is renamed or merged.
REWRITE_CHUNK = 500
# The unmapped-values view reads at most this many recent annotations.
UNMAPPED_SCAN_LIMIT = 20_000
UNMAPPED_EXAMPLES = 3


class TaxonomyChangeError(ValueError):
    """The change is refused; the message says why, in the admin's words."""


# --- history ----------------------------------------------------------------------


def _record(
    *, user: User, action: str, subject: str, before: dict[str, Any], after: dict[str, Any]
) -> TaxonomyChange:
    return TaxonomyChange.objects.create(
        user=user if user.is_authenticated else None,
        action=action,
        subject=subject[:1000],
        before=before,
        after=after,
    )


def _category_state(category: Category) -> dict[str, Any]:
    return {
        "name": category.name,
        "path": category.path,
        "synonyms": list(category.synonyms),
        "is_active": category.is_active,
        "review_threshold": category.review_threshold,
        "google_id": category.google_id,
    }


def _value_state(value: AttributeValue) -> dict[str, Any]:
    return {
        "name": value.name,
        "synonyms": list(value.synonyms),
        "hex": value.hex,
        "is_active": value.is_active,
    }


def _changed(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict, dict]:
    keys = [key for key in after if before.get(key) != after[key]]
    return {key: before.get(key) for key in keys}, {key: after[key] for key in keys}


# --- the category tree --------------------------------------------------------------


@dataclass
class CategoryNode:
    """A node of the admin tree: products counted with every descendant's."""

    category: Category
    children: list[CategoryNode] = field(default_factory=list)
    products: int = 0
    own_products: int = 0
    matches: bool = False
    open: bool = False


def category_tree_counted(
    *, query: str = "", selected_id: int | None = None
) -> tuple[list[CategoryNode], int]:
    """The tree with products per node (one GROUP BY, rolled up over the tree
    in memory). With a `query` (a name or synonym; a path when it holds ">")
    only the matching nodes stay, with their ancestors open and their subtrees
    closed. Returns the roots and the number of matching nodes."""
    roots, _attributes = category_tree()
    own = dict(
        Product.objects.order_by()
        .filter(category__isnull=False)
        .values_list("category_id")
        .annotate(n=Count("id"))
        .values_list("category_id", "n")
    )
    needle = " ".join(query.split()).casefold()
    key = match_key(needle) if needle else ""

    def matches(category: Category) -> bool:
        # A query with ">" searches paths; else names and synonyms, so "tops"
        # finds Tops, not every node under it.
        texts = [category.path] if ">" in needle else [category.name, *category.synonyms]
        return any(needle in text.casefold() for text in texts) or (
            bool(key) and key in {match_key(text) for text in texts}
        )

    totals: dict[int, int] = {}

    def total(tree_node: TreeNode) -> int:
        pk = tree_node.category.pk
        totals[pk] = own.get(pk, 0) + sum(total(child) for child in tree_node.children)
        return totals[pk]

    for root in roots:
        total(root)
    found = 0

    def build(tree_node: TreeNode, inside_match: bool = False) -> CategoryNode | None:
        """In a search: a matching node, its ancestors (open) and its
        subtree (closed) stay; everything else goes."""
        nonlocal found
        category = tree_node.category
        node = CategoryNode(
            category=category,
            own_products=own.get(category.pk, 0),
            # Counts include every descendant, also those a search hides.
            products=totals[category.pk],
            matches=bool(needle) and matches(category),
        )
        found += node.matches
        match_below = False
        for child in tree_node.children:
            built = build(child, inside_match or node.matches)
            if built is not None:
                node.children.append(built)
                match_below = match_below or built.matches or built.open
        if needle:
            if not (node.matches or match_below or inside_match):
                return None
            node.open = match_below
        else:
            node.open = category.depth == 0 and bool(node.children)
        return node

    counted = [node for node in (build(root) for root in roots) if node is not None]
    if selected_id is not None and not needle:
        _open_path_to(counted, selected_id)
    return counted, found


def _open_path_to(nodes: list[CategoryNode], target_id: int) -> bool:
    for node in nodes:
        if node.category.pk == target_id or _open_path_to(node.children, target_id):
            node.open = node.open or bool(node.children)
            return True
    return False


def _clean_name(name: str) -> str:
    name = " ".join(str(name).split())
    if not name:
        raise TaxonomyChangeError("A name is required.")
    if ">" in name:
        raise TaxonomyChangeError("A category name cannot contain '>': it separates path levels.")
    if len(name) > 200:
        raise TaxonomyChangeError("A name is at most 200 characters.")
    return name


def _check_sibling_name(*, name: str, parent_id: int | None, exclude_id: int | None) -> None:
    siblings = Category.objects.filter(parent_id=parent_id, name__iexact=name)
    if exclude_id is not None:
        siblings = siblings.exclude(pk=exclude_id)
    clash = siblings.first()
    if clash is not None:
        where = "at the top level" if parent_id is None else "under the same parent"
        raise TaxonomyChangeError(f"{clash.path!r} already exists {where}.")


def _check_threshold(value: float | None) -> float | None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise TaxonomyChangeError("The review threshold must be between 0 and 1, or blank.")
    return value


def _paths_refresh() -> int:
    """Recompute `path` and `depth` of every category from the parent links;
    write only the rows that changed (with `updated_at`, for the vocabulary)."""
    rows = list(Category.objects.only("id", "name", "parent_id", "path", "depth"))
    by_id = {row.pk: row for row in rows}
    computed: dict[int, tuple[str, int]] = {}

    def compute(row: Category) -> tuple[str, int]:
        if row.pk not in computed:
            if row.parent_id is None:
                computed[row.pk] = (row.name, 0)
            else:
                parent_path, parent_depth = compute(by_id[row.parent_id])
                computed[row.pk] = (f"{parent_path}{PATH_SEPARATOR}{row.name}", parent_depth + 1)
        return computed[row.pk]

    now, changed = timezone.now(), []
    for row in rows:
        path, depth = compute(row)
        if (row.path, row.depth) != (path, depth):
            row.path, row.depth, row.updated_at = path, depth, now
            changed.append(row)
    Category.objects.bulk_update(changed, ["path", "depth", "updated_at"], batch_size=500)
    return len(changed)


def _lock_tree() -> dict[int, Category]:
    """Lock every category (tree edits are rare and touch many rows)."""
    return {row.pk: row for row in Category.objects.select_for_update()}


def _locked(nodes: dict[int, Category], pk: int) -> Category:
    if pk not in nodes:
        raise TaxonomyChangeError("The category no longer exists.")
    return nodes[pk]


def _descendant_ids(nodes: dict[int, Category], root_id: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for row in nodes.values():
        if row.parent_id is not None:
            children.setdefault(row.parent_id, []).append(row.pk)
    found, stack = [], list(children.get(root_id, []))
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


@transaction.atomic
def category_add(
    *,
    user: User,
    name: str,
    parent: Category | None = None,
    synonyms: list[str] | None = None,
    review_threshold: float | None = None,
) -> Category:
    name = _clean_name(name)
    parent_id = parent.pk if parent else None
    _check_sibling_name(name=name, parent_id=parent_id, exclude_id=None)
    path = (*(parent.path_names if parent else []), name)
    category = Category.objects.create(
        name=name,
        parent=parent,
        path=PATH_SEPARATOR.join(path),
        depth=len(path) - 1,
        slug=_unique_slug(path, set(Category.objects.values_list("slug", flat=True))),
        synonyms=clean_synonyms(synonyms or []),
        review_threshold=_check_threshold(review_threshold),
    )
    _record(
        user=user,
        action=Action.CATEGORY_ADD,
        subject=category.path,
        before={},
        after=_category_state(category),
    )
    return category


@transaction.atomic
def category_rename(*, user: User, category: Category, name: str) -> Category:
    """Rename one node; the paths of the node and all its descendants follow
    (slugs stay, so links and exports keep working)."""
    nodes = _lock_tree()
    category = _locked(nodes, category.pk)
    name = _clean_name(name)
    if name == category.name:
        return category
    _check_sibling_name(name=name, parent_id=category.parent_id, exclude_id=category.pk)
    before = {"name": category.name, "path": category.path}
    category.name = name
    category.save(update_fields=["name", "updated_at"])
    _paths_refresh()
    descendants = len(_descendant_ids(nodes, category.pk))
    category.refresh_from_db()
    _record(
        user=user,
        action=Action.CATEGORY_RENAME,
        subject=category.path,
        before=before,
        after={"name": category.name, "path": category.path, "descendants": descendants},
    )
    return category


@transaction.atomic
def category_move(*, user: User, category: Category, parent: Category | None) -> Category:
    """Put a node (with its subtree) under another parent, or at the top level.
    Refused when the new parent is the node itself or one of its descendants."""
    nodes = _lock_tree()
    category = _locked(nodes, category.pk)
    parent_id = parent.pk if parent else None
    if parent_id is not None:
        _locked(nodes, parent_id)
    if parent_id == category.parent_id:
        return category
    if parent_id == category.pk or parent_id in _descendant_ids(nodes, category.pk):
        raise TaxonomyChangeError(
            f"{category.path!r} cannot move under itself or one of its descendants."
        )
    _check_sibling_name(name=category.name, parent_id=parent_id, exclude_id=category.pk)
    before = {
        "path": category.path,
        "parent": nodes[category.parent_id].path if category.parent_id else None,
    }
    category.parent_id = parent_id
    category.save(update_fields=["parent", "updated_at"])
    _paths_refresh()
    descendants = len(_descendant_ids(nodes, category.pk))
    category.refresh_from_db()
    _record(
        user=user,
        action=Action.CATEGORY_MOVE,
        subject=category.path,
        before=before,
        after={
            "path": category.path,
            "parent": nodes[parent_id].path if parent_id else None,
            "descendants": descendants,
        },
    )
    return category


@transaction.atomic
def category_edit(
    *, user: User, category: Category, synonyms: list[str], review_threshold: float | None
) -> Category:
    """Set the synonyms and the per-category review threshold (None: the default)."""
    category = Category.objects.select_for_update().get(pk=category.pk)
    wanted = {
        "synonyms": [s for s in clean_synonyms(synonyms) if s != category.name.lower()],
        "review_threshold": _check_threshold(review_threshold),
    }
    before, after = _changed(_category_state(category), wanted)
    if not after:
        return category
    for key, value in after.items():
        setattr(category, key, value)
    category.save(update_fields=[*after, "updated_at"])
    _record(
        user=user, action=Action.CATEGORY_EDIT, subject=category.path, before=before, after=after
    )
    return category


def category_synonym_add(*, user: User, category: Category, synonym: str) -> Category:
    return category_edit(
        user=user,
        category=category,
        synonyms=[*category.synonyms, synonym],
        review_threshold=category.review_threshold,
    )


@transaction.atomic
def category_deactivate(*, user: User, category: Category) -> int:
    """Deactivate a node and its whole subtree; returns how many changed.
    Products keep their category; the annotator stops offering it."""
    nodes = _lock_tree()
    _locked(nodes, category.pk)
    ids = [category.pk, *_descendant_ids(nodes, category.pk)]
    changed = [nodes[pk].path for pk in ids if nodes[pk].is_active]
    Category.objects.filter(pk__in=ids, is_active=True).update(
        is_active=False, updated_at=timezone.now()
    )
    _record(
        user=user,
        action=Action.CATEGORY_DEACTIVATE,
        subject=nodes[category.pk].path,
        before={"active": changed},
        after={"inactive": changed},
    )
    return len(changed)


@transaction.atomic
def category_activate(*, user: User, category: Category) -> int:
    """Activate a node, its subtree and its ancestors (an active node under an
    inactive parent could not be reached)."""
    nodes = _lock_tree()
    ids = [category.pk, *_descendant_ids(nodes, category.pk)]
    parent_id = _locked(nodes, category.pk).parent_id
    while parent_id is not None:
        ids.append(parent_id)
        parent_id = nodes[parent_id].parent_id
    changed = [nodes[pk].path for pk in ids if not nodes[pk].is_active]
    Category.objects.filter(pk__in=ids, is_active=False).update(
        is_active=True, updated_at=timezone.now()
    )
    _record(
        user=user,
        action=Action.CATEGORY_ACTIVATE,
        subject=nodes[category.pk].path,
        before={"inactive": changed},
        after={"active": changed},
    )
    return len(changed)


def category_relations() -> list[models.ForeignObjectRel]:
    """Every foreign key and one-to-one to Category, whatever app declares it,
    except the tree's own parent link. `get_fields(include_hidden=True)`, not
    `_meta.related_objects`: the latter leaves out relations declared with
    related_name="+" (review's Correction.category is one)."""
    return [
        rel
        for rel in Category._meta.get_fields(include_hidden=True)
        if rel.auto_created
        and not rel.concrete
        and (rel.one_to_many or rel.one_to_one)
        and not (rel.related_model is Category and rel.field.name == "parent")
    ]


@transaction.atomic
def category_merge(*, user: User, source: Category, target: Category) -> dict[str, int]:
    """Merge `source` into `target`: every row pointing at the source points at
    the target, the source's name and synonyms become synonyms of the target,
    its children move under the target (a child named like one of the
    target's children is merged into it the same way) and the source goes.
    Returns rows re-pointed per "app.Model.field"."""
    nodes = _lock_tree()
    source, target = _locked(nodes, source.pk), _locked(nodes, target.pk)
    if source.pk == target.pk:
        raise TaxonomyChangeError("A category cannot be merged into itself.")
    if target.pk in _descendant_ids(nodes, source.pk):
        raise TaxonomyChangeError(
            f"{source.path!r} cannot be merged into its own descendant {target.path!r}."
        )
    before = {"source": _category_state(source), "target": _category_state(target)}
    children: dict[int, list[Category]] = {}
    for row in sorted(nodes.values(), key=lambda row: row.path):
        if row.parent_id is not None:
            children.setdefault(row.parent_id, []).append(row)
    repointed: Counter[str] = Counter()
    merged: list[str] = []
    relations = category_relations()

    def merge(source: Category, target: Category) -> None:
        for child in children.pop(source.pk, []):
            twin = next(
                (
                    c
                    for c in children.get(target.pk, [])
                    if c.name.casefold() == child.name.casefold()
                ),
                None,
            )
            if twin is not None:
                merge(child, twin)
            else:
                child.parent_id = target.pk
                child.save(update_fields=["parent", "updated_at"])
                children.setdefault(target.pk, []).append(child)
        for rel in relations:
            model, name = rel.related_model, rel.field.name
            rows = model._base_manager.filter(**{name: source})
            if (
                rel.one_to_one
                and rows.exists()
                and model._base_manager.filter(**{name: target}).exists()
            ):
                raise TaxonomyChangeError(
                    f"Both categories have a {model._meta.verbose_name}; it can point at one only."
                )
            count = rows.update(**{name: target})
            if count:
                repointed[f"{model._meta.label}.{name}"] += count
        target.synonyms = [
            s
            for s in clean_synonyms([*target.synonyms, source.name, *source.synonyms])
            if s != target.name.lower()
        ]
        target.save(update_fields=["synonyms", "updated_at"])
        merged.append(source.path)
        source.delete()

    try:
        with transaction.atomic():
            merge(source, target)
    except IntegrityError as exc:
        raise TaxonomyChangeError(f"The merge would break a uniqueness rule: {exc}") from exc
    _paths_refresh()
    target.refresh_from_db()
    _record(
        user=user,
        action=Action.CATEGORY_MERGE,
        subject=f"{before['source']['path']} → {target.path}",
        before=before,
        after={"target": _category_state(target), "merged": merged, "repointed": dict(repointed)},
    )
    return dict(repointed)


# --- attributes and their values ------------------------------------------------------


def _clean_value_name(name: str) -> str:
    name = " ".join(str(name).split())
    if not name:
        raise TaxonomyChangeError("A name is required.")
    if len(name) > 100:
        raise TaxonomyChangeError("A value name is at most 100 characters.")
    return name


def _clean_hex(hex_colour: str) -> str:
    hex_colour = hex_colour.strip().lower()
    if hex_colour and not hex_colour.startswith("#"):
        hex_colour = f"#{hex_colour}"
    if hex_colour and not _HEX.match(hex_colour):
        raise TaxonomyChangeError(f"{hex_colour!r} is not a colour like #1f2a44.")
    return hex_colour


def _check_value_words(*, attribute: Attribute, words: list[str], exclude_ids: set[int]) -> None:
    """A name or synonym may mean one active value of an attribute only, or
    the annotator could not tell which one the model meant."""
    taken: dict[str, str] = {}
    for other in attribute.values.filter(is_active=True).exclude(pk__in=exclude_ids):
        for text in (other.name, *other.synonyms):
            taken.setdefault(match_key(text), other.name)
    for word in words:
        owner = taken.get(match_key(word))
        if owner is not None:
            raise TaxonomyChangeError(f"{word!r} already means {owner!r} in {attribute.name}.")


def _products_rewrite_value(*, code: str, old: str, new: str) -> int:
    """Point Product.attributes[code] from `old` to `new`: a JSON key filter
    (PostgreSQL and SQLite alike) and a bulk update per chunk of locked rows.
    The product version moves on, so a reviewer's stale form is refused."""
    rewritten, last_id = 0, 0
    while True:
        chunk = list(
            Product.objects.select_for_update()
            .filter(pk__gt=last_id, **{f"attributes__{code}": old})
            .order_by("pk")
            .only("pk", "attributes")[:REWRITE_CHUNK]
        )
        if not chunk:
            return rewritten
        now = timezone.now()
        for product in chunk:
            product.attributes = {**product.attributes, code: new}
            product.updated_at = now
            product.version = F("version") + 1
        Product.objects.bulk_update(chunk, ["attributes", "updated_at", "version"])
        rewritten += len(chunk)
        last_id = chunk[-1].pk


@transaction.atomic
def attribute_add(*, user: User, code: str, name: str) -> Attribute:
    from django.utils.text import slugify

    code = slugify(code)[:50]
    name = _clean_value_name(name or code.title())
    if not code:
        raise TaxonomyChangeError("A code is required (letters, digits, hyphens).")
    if Attribute.objects.filter(code=code).exists():
        raise TaxonomyChangeError(f"The attribute {code!r} already exists.")
    position = (Attribute.objects.aggregate(m=models.Max("position"))["m"] or 0) + 1
    attribute = Attribute.objects.create(code=code, name=name, position=position)
    _record(
        user=user,
        action=Action.ATTRIBUTE_ADD,
        subject=code,
        before={},
        after={"code": code, "name": name},
    )
    return attribute


@transaction.atomic
def attribute_rename(*, user: User, attribute: Attribute, name: str) -> Attribute:
    """Rename the label; the code is the key in products and the model's answer."""
    name = _clean_value_name(name)
    if name == attribute.name:
        return attribute
    before = {"name": attribute.name}
    attribute.name = name
    attribute.save(update_fields=["name"])
    _record(
        user=user,
        action=Action.ATTRIBUTE_RENAME,
        subject=attribute.code,
        before=before,
        after={"name": name},
    )
    return attribute


@transaction.atomic
def attribute_value_add(
    *,
    user: User,
    attribute: Attribute,
    name: str,
    synonyms: list[str] | None = None,
    hex_colour: str = "",
) -> AttributeValue:
    name = _clean_value_name(name)
    if attribute.values.filter(name__iexact=name).exists():
        raise TaxonomyChangeError(f"{attribute.name} already has the value {name!r}.")
    words = [s for s in clean_synonyms(synonyms or []) if s != name.lower()]
    _check_value_words(attribute=attribute, words=[name, *words], exclude_ids=set())
    position = (attribute.values.aggregate(m=models.Max("position"))["m"] or 0) + 1
    value = AttributeValue.objects.create(
        attribute=attribute,
        name=name,
        synonyms=words,
        hex=_clean_hex(hex_colour),
        position=position,
    )
    _record(
        user=user,
        action=Action.VALUE_ADD,
        subject=f"{attribute.code}: {name}",
        before={},
        after=_value_state(value),
    )
    return value


@transaction.atomic
def attribute_value_rename(*, user: User, value: AttributeValue, name: str) -> int:
    """Rename a value and the products holding it; returns products rewritten."""
    value = AttributeValue.objects.select_for_update().select_related("attribute").get(pk=value.pk)
    name = _clean_value_name(name)
    if name == value.name:
        return 0
    attribute = value.attribute
    if attribute.values.filter(name__iexact=name).exclude(pk=value.pk).exists():
        raise TaxonomyChangeError(f"{attribute.name} already has the value {name!r}.")
    _check_value_words(attribute=attribute, words=[name], exclude_ids={value.pk})
    old = value.name
    value.name = name
    value.synonyms = [s for s in value.synonyms if s != name.lower()]
    value.save(update_fields=["name", "synonyms", "updated_at"])
    rewritten = _products_rewrite_value(code=attribute.code, old=old, new=name)
    _record(
        user=user,
        action=Action.VALUE_RENAME,
        subject=f"{attribute.code}: {name}",
        before={"name": old},
        after={"name": name, "products": rewritten},
    )
    return rewritten


@transaction.atomic
def attribute_value_edit(
    *, user: User, value: AttributeValue, synonyms: list[str], hex_colour: str
) -> AttributeValue:
    value = AttributeValue.objects.select_for_update().select_related("attribute").get(pk=value.pk)
    wanted = {
        "synonyms": [s for s in clean_synonyms(synonyms) if s != value.name.lower()],
        "hex": _clean_hex(hex_colour),
    }
    _check_value_words(attribute=value.attribute, words=wanted["synonyms"], exclude_ids={value.pk})
    before, after = _changed(_value_state(value), wanted)
    if not after:
        return value
    for key, new in after.items():
        setattr(value, key, new)
    value.save(update_fields=[*after, "updated_at"])
    _record(
        user=user,
        action=Action.VALUE_EDIT,
        subject=f"{value.attribute.code}: {value.name}",
        before=before,
        after=after,
    )
    return value


def attribute_value_synonym_add(
    *, user: User, value: AttributeValue, synonym: str
) -> AttributeValue:
    return attribute_value_edit(
        user=user, value=value, synonyms=[*value.synonyms, synonym], hex_colour=value.hex
    )


@transaction.atomic
def attribute_value_set_active(
    *, user: User, value: AttributeValue, active: bool
) -> AttributeValue:
    value = AttributeValue.objects.select_for_update().select_related("attribute").get(pk=value.pk)
    if value.is_active == active:
        return value
    if active:
        _check_value_words(
            attribute=value.attribute, words=[value.name, *value.synonyms], exclude_ids={value.pk}
        )
    value.is_active = active
    value.save(update_fields=["is_active", "updated_at"])
    _record(
        user=user,
        action=Action.VALUE_ACTIVATE if active else Action.VALUE_DEACTIVATE,
        subject=f"{value.attribute.code}: {value.name}",
        before={"is_active": not active},
        after={"is_active": active},
    )
    return value


@transaction.atomic
def attribute_value_merge(
    *, user: User, source: AttributeValue, target: AttributeValue, delete_source: bool = False
) -> int:
    """Merge `source` into `target` (same attribute): the source's name and
    synonyms become synonyms of the target, products holding the source's
    name hold the target's, and the source is deactivated (or deleted).
    Returns products rewritten."""
    locked = {
        v.pk: v
        for v in AttributeValue.objects.select_for_update()
        .select_related("attribute")
        .filter(pk__in=[source.pk, target.pk])
    }
    if len(locked) != 2:
        raise TaxonomyChangeError("Pick two different values.")
    source, target = locked[source.pk], locked[target.pk]
    if source.attribute_id != target.attribute_id:
        raise TaxonomyChangeError("Only values of the same attribute can be merged.")
    attribute = target.attribute
    before = {"source": _value_state(source), "target": _value_state(target)}
    target.synonyms = [
        s
        for s in clean_synonyms([*target.synonyms, source.name, *source.synonyms])
        if s != target.name.lower()
    ]
    target.save(update_fields=["synonyms", "updated_at"])
    if delete_source:
        source.delete()
    else:
        # The source keeps its words for the record, but only active values
        # are in the vocabulary, so they now mean the target.
        source.is_active = False
        source.save(update_fields=["is_active", "updated_at"])
    rewritten = _products_rewrite_value(
        code=attribute.code, old=before["source"]["name"], new=target.name
    )
    _record(
        user=user,
        action=Action.VALUE_MERGE,
        subject=f"{attribute.code}: {before['source']['name']} → {target.name}",
        before=before,
        after={
            "target": _value_state(target),
            "source": "deleted" if delete_source else "deactivated",
            "products": rewritten,
        },
    )
    return rewritten


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


# --- unmapped values ---------------------------------------------------------------------

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
    # Soft dependency, by name: catalog must not import annotator.
    annotation_model = apps.get_model("annotator", "Annotation")
    newer = annotation_model.objects.filter(product=OuterRef("product"), pk__gt=OuterRef("pk"))
    return annotation_model.objects.exclude(unmapped={}).filter(~Exists(newer)).order_by("-pk")


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

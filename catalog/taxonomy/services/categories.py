"""Category services: add, rename, move, edit, (de)activate, merge.

Every service takes the acting user and writes one `TaxonomyChange` row in the
same transaction as the change. Writes go through `save()` or set `updated_at`
themselves, because `vocabulary_current()` notices a change by the latest
`updated_at` (and the row counts): the next annotation uses the edited taxonomy
without a restart. Merges re-point other apps' foreign keys generically,
through the reverse relations of `Category`: catalog imports no annotator or
review code.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from catalog.models import Category
from catalog.taxonomy.formats import PATH_SEPARATOR, _unique_slug
from catalog.taxonomy.services.history import (
    Action,
    TaxonomyChangeError,
    User,
    _category_state,
    _changed,
    _record,
)
from catalog.taxonomy.vocabulary import clean_synonyms


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
    """The one rule for a category's review threshold: blank (the default
    applies) or 0..1, kept to 4 decimals."""
    if value is not None and not 0.0 <= value <= 1.0:
        raise TaxonomyChangeError("The review threshold must be between 0 and 1, or blank.")
    return None if value is None else round(value, 4)


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
    return _category_fields_set(user=user, category=category, wanted=wanted)


@transaction.atomic
def category_threshold_set(*, user: User, category: Category, threshold: float | None) -> Category:
    """The one service that sets a category's review threshold (it applies to
    its subtree unless a deeper category has its own; None: the default).
    Calibration calls it; the taxonomy screen's edit form goes through the same
    rule and write. Writes the audit row; save() bumps updated_at, which
    tells every worker's vocabulary to reload."""
    category = Category.objects.select_for_update().get(pk=category.pk)
    wanted = {"review_threshold": _check_threshold(threshold)}
    return _category_fields_set(user=user, category=category, wanted=wanted)


def _category_fields_set(*, user: User, category: Category, wanted: dict[str, Any]) -> Category:
    """Write the changed fields of a locked category and its audit row."""
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

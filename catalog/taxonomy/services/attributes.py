"""Attribute and attribute value services: add, rename, edit, synonyms,
(de)activate, merge. A renamed or merged value is rewritten in the products
that carry it. Every service writes its `TaxonomyChange` row."""

from __future__ import annotations

from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from catalog.models import Attribute, AttributeValue, Category, Product
from catalog.taxonomy.formats import _HEX, PATH_SEPARATOR, RESERVED_CODES
from catalog.taxonomy.services.history import (
    Action,
    TaxonomyChangeError,
    User,
    _changed,
    _record,
    _value_state,
)
from catalog.taxonomy.vocabulary import clean_synonyms, match_key

# Products rewritten per UPDATE when a value is renamed or merged.
REWRITE_CHUNK = 500

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
    name = _clean_value_name(name or code.replace("_", " ").replace("-", " ").capitalize())
    if not code:
        raise TaxonomyChangeError("A code is required (letters, digits, hyphens).")
    if code in RESERVED_CODES:
        raise TaxonomyChangeError(
            f"{code!r} names a field of its own in the annotation: choose another code."
        )
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
    # updated_at too: it is how the vocabulary (and so the prompt) sees the change.
    attribute.save(update_fields=["name", "updated_at"])
    _record(
        user=user,
        action=Action.ATTRIBUTE_RENAME,
        subject=attribute.code,
        before=before,
        after={"name": name},
    )
    return attribute


@transaction.atomic
def attribute_categories_set(
    *, user: User, attribute: Attribute, categories: list[Category]
) -> Attribute:
    """Limit the attribute to these categories and their subtrees; an empty
    list makes it apply to every category again. The next annotation's
    prompt and the review form follow; stored values are left as they are."""
    before = sorted(attribute.categories.values_list("path", flat=True))
    after = sorted({category.path for category in categories})
    if before == after:
        return attribute
    attribute.categories.set(categories)
    attribute.save(update_fields=["updated_at"])
    _record(
        user=user,
        action=Action.ATTRIBUTE_SCOPE,
        subject=attribute.code,
        before={"categories": before},
        after={"categories": after},
    )
    return attribute


def attribute_scope_parse(text: str) -> list[Category]:
    """Category paths, one a line ("Clothing > Tops", any case), to
    categories; a TaxonomyChangeError names the lines that are no category."""
    wanted = [
        PATH_SEPARATOR.join(part.strip() for part in line.split(">"))
        for line in text.splitlines()
        if line.strip(" >\t")
    ]
    if not wanted:
        return []
    query = models.Q()
    for line in wanted:
        query |= models.Q(path__iexact=line)
    found = {category.path.lower(): category for category in Category.objects.filter(query)}
    unknown = [line for line in wanted if line.lower() not in found]
    if unknown:
        more = " …" if len(unknown) > 5 else ""
        raise TaxonomyChangeError("Not a category path: " + "; ".join(unknown[:5]) + more)
    return list({found[line.lower()].pk: found[line.lower()] for line in wanted}.values())


@transaction.atomic
def attribute_set_active(*, user: User, attribute: Attribute, active: bool) -> Attribute:
    """Deactivate or activate an attribute. A deactivated one leaves the
    schema, the prompt and the review form; the values products hold for it
    stay stored (and exported), and activating it brings it back."""
    if attribute.is_active == active:
        return attribute
    attribute.is_active = active
    attribute.save(update_fields=["is_active", "updated_at"])
    _record(
        user=user,
        action=Action.ATTRIBUTE_ACTIVATE if active else Action.ATTRIBUTE_DEACTIVATE,
        subject=attribute.code,
        before={"is_active": not active},
        after={"is_active": active},
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

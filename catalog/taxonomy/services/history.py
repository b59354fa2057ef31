"""The taxonomy's history: every service writes one `TaxonomyChange` row in
the same transaction as its change, through `_record`."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from catalog.models import AttributeValue, Category, TaxonomyChange

User = AbstractBaseUser | AnonymousUser
Action = TaxonomyChange.Action


class TaxonomyChangeError(ValueError):
    """The change is refused; the message says why, in the admin's words."""


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

"""The three roles of Loupe and the one decorator that enforces them.

Roles are Django groups created by the first migration. A superuser has every
role. Views state the roles they admit; everyone else gets 403.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

TAGGERS = "Taggers"
TAXONOMY_ADMINS = "Taxonomy admins"
MANAGERS = "Managers"
ALL_ROLES = (TAGGERS, TAXONOMY_ADMINS, MANAGERS)


def user_roles(user: AbstractBaseUser | AnonymousUser) -> frozenset[str]:
    """The roles a user holds (all of them for an active superuser), cached on the user."""
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    cached = getattr(user, "_loupe_roles", None)
    if cached is None:
        if user.is_superuser:
            cached = frozenset(ALL_ROLES)
        else:
            cached = frozenset(user.groups.values_list("name", flat=True))
        user._loupe_roles = cached  # type: ignore[union-attr]
    return cached


def has_role(user: AbstractBaseUser | AnonymousUser, *roles: str) -> bool:
    return bool(user_roles(user) & set(roles))


def role_required(*roles: str) -> Callable:
    """Admit users holding any of `roles` (superusers always); 403 for the rest.

    Login itself is enforced globally by LoginRequiredMiddleware.
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not has_role(request.user, *roles):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        wrapped.loupe_roles = roles  # type: ignore[attr-defined]
        return wrapped

    return decorator

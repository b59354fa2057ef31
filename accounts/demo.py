"""Demo users: one login per role, plus a superuser, for trying the app out."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from accounts import roles

DEMO_USERS: tuple[tuple[str, str | None], ...] = (
    ("tagger", roles.TAGGERS),
    ("taxonomist", roles.TAXONOMY_ADMINS),
    ("manager", roles.MANAGERS),
    ("admin", None),  # superuser: every role
)
SUPERUSER_LABEL = "Superuser (all roles)"


def demo_users_ensure(*, password: str | None) -> tuple[list[tuple[str, str]], str | None]:
    """Create the missing demo users, one per role plus a superuser.

    With `password`, every demo user gets it (set again on each call, so a
    chosen demo password always works). Without, users created now share one
    random password, returned so the caller can show it once; users that
    already exist keep theirs, and the returned password is None when no user
    was created. Roles are the groups the accounts migration created.
    """
    User = get_user_model()
    logins: list[tuple[str, str]] = []
    generated: str | None = None
    with transaction.atomic():
        for username, group_name in DEMO_USERS:
            user = User.objects.filter(username=username).first()
            if user is None:
                if password is None and generated is None:
                    generated = secrets.token_urlsafe(12)
                email = f"{username}@example.com"
                if group_name is None:
                    User.objects.create_superuser(username, email, password or generated)
                else:
                    user = User.objects.create_user(username, email, password or generated)
                    user.groups.add(Group.objects.get(name=group_name))
            elif password is not None:
                user.set_password(password)
                user.save(update_fields=["password"])
            logins.append((username, group_name or SUPERUSER_LABEL))
    return logins, generated

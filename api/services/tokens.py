"""Personal API tokens: created (the secret shown once), checked, revoked.
Only a SHA-256 of the secret is stored: tokens are long random strings, so a
fast hash is enough (no password-style stretching needed) and lookups stay O(1)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.db.models import QuerySet
from django.utils import timezone

from api.models import ApiToken

TOKEN_PREFIX = "loupe_"  # noqa: S105 - a marker, not a secret
SHOWN_PREFIX = 12  # "loupe_" + 6 characters: enough to tell tokens apart in a list
LAST_USED_GRANULARITY = timedelta(minutes=1)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_token_create(*, user, name: str) -> tuple[ApiToken, str]:
    """A new token for `user`; returns the row and the secret (never stored)."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name.strip()[:100] or "token",
        prefix=secret[:SHOWN_PREFIX],
        key_hash=_hash(secret),
    )
    return token, secret


def api_token_authenticate(*, secret: str) -> ApiToken | None:
    """The live token for this secret (its user active), else None."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=_hash(secret), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_GRANULARITY:
        # At most one write a minute per token, not one per request.
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def api_tokens_of(*, user) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).order_by("-id")


def api_token_revoke(*, user, token_id: int | None = None, prefix: str = "") -> int:
    """Revoke the user's token by id or by shown prefix; returns how many."""
    tokens = ApiToken.objects.filter(user=user, revoked_at__isnull=True)
    if token_id is not None:
        tokens = tokens.filter(pk=token_id)
    elif prefix:
        tokens = tokens.filter(prefix=prefix[:SHOWN_PREFIX])
    else:
        return 0
    return tokens.update(revoked_at=timezone.now())

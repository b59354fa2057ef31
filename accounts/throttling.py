"""Login throttling: the browser login (django-axes) and a small counter for other logins.

The browser login is throttled by django-axes (settings in config/settings.py): after
AXES_FAILURE_LIMIT wrong passwords for one username from one address, that pair is locked
for AXES_COOLOFF_TIME and the login page says so (`lockout_response`). Superusers unlock in
the admin (Axes > Access attempts) or with `manage.py axes_reset_username NAME`.

Logins that do not go through django.contrib.auth (API tokens) use the same limit and
cool-off through three functions over the shared cache (Redis in production, so every
web process sees the same counts):

    key = f"api-token:{client_ip(request)}"      # who is guessing: an address, a token id...
    if is_locked(key):
        return 429 with lockout_message()
    if token is wrong:
        failed_attempt_register(key)
        return 401
    failed_attempts_reset(key)                   # optional: a success clears the count

A key is any string; it is hashed, so raw tokens or user input are safe to pass.
"""

from __future__ import annotations

import hashlib
import math

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from config.counters import counter_incr

_PREFIX = "loupe:throttle"


def cool_off_seconds() -> int:
    return max(1, math.ceil(settings.AXES_COOLOFF_TIME.total_seconds()))


def lockout_message() -> str:
    minutes = max(1, math.ceil(cool_off_seconds() / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return (
        f"Too many failed log-ins: this account is locked from your address for {minutes} "
        f"{unit}. Try again later, or ask an administrator to unlock it."
    )


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or the last entry of LOGIN_CLIENT_IP_HEADER (the
    one the trusted proxy appended; earlier entries come from the client and can be forged)."""
    header = settings.LOGIN_CLIENT_IP_HEADER
    if header:
        forwarded = [part.strip() for part in request.META.get(header, "").split(",")]
        if forwarded and forwarded[-1]:
            return forwarded[-1]
    return request.META.get("REMOTE_ADDR", "")


def _keys(key: str) -> tuple[str, str]:
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{_PREFIX}:count:{digest}", f"{_PREFIX}:locked:{digest}"


def failed_attempt_register(key: str) -> int:
    """Count one failed attempt for `key`; lock it at the limit. Returns the count so far."""
    count_key, locked_key = _keys(key)
    timeout = cool_off_seconds()
    count = counter_incr(count_key, timeout=timeout)
    # The window runs from the last failure, as axes' does (and incr on some backends
    # resets the timeout to the default, so set it again either way).
    cache.touch(count_key, timeout=timeout)
    if count >= settings.AXES_FAILURE_LIMIT:
        cache.set(locked_key, True, timeout=timeout)
    return count


def is_locked(key: str) -> bool:
    """Whether `key` reached the failure limit within the cool-off."""
    return bool(cache.get(_keys(key)[1]))


def failed_attempts_reset(key: str) -> None:
    """Forget `key`'s failures and lock (after a success, or an administrator's unlock)."""
    cache.delete_many(list(_keys(key)))


def lockout_response(request: HttpRequest, response: HttpResponse | None, credentials: dict):
    """django-axes' lockout page: the login form again, with the reason, as 429."""
    form = AuthenticationForm(request, initial={"username": (credentials or {}).get("username")})
    context = {"form": form, "lockout_message": lockout_message(), "next": ""}
    return render(request, "registration/login.html", context, status=429)

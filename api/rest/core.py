"""The NinjaAPI object: authentication (Bearer token or browser session with
CSRF), the per-token rate limit, role checks and one JSON shape for errors.

django-ninja rather than DRF: the codebase already speaks pydantic (the
annotation contract), ninja builds the OpenAPI 3 schema from the same type
hints that validate requests, and function-style operations match the
project's function views; DRF would add serializers parallel to the schemas."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError
from ninja.openapi.docs import Swagger
from ninja.security import HttpBearer, SessionAuth
from ninja.throttling import BaseThrottle

from accounts.roles import ALL_ROLES, has_role
from accounts.throttling import (
    client_ip,
    cool_off_seconds,
    failed_attempt_register,
    is_locked,
    lockout_message,
)
from api.models import ApiToken
from api.services.tokens import api_token_authenticate
from config.counters import counter_incr
from config.queue import BROKER_ERRORS

log = logging.getLogger(__name__)


class TokenLocked(Exception):
    """Too many wrong tokens from this address: refused until the cool-off ends."""


def _token_check(request: HttpRequest, secret: str) -> ApiToken | None:
    """The live token for `secret`, with the login limit applied per client address:
    after LOGIN_FAILURE_LIMIT wrong tokens the address gets 429 for the cool-off,
    whatever it sends (a right token too, as a locked browser login does), so
    guessing learns nothing more until then."""
    key = f"api-token:{client_ip(request)}"
    try:
        if is_locked(key):
            raise TokenLocked
        found = api_token_authenticate(secret=secret)
        if found is None and failed_attempt_register(key) >= settings.AXES_FAILURE_LIMIT:
            log.warning("API tokens locked for %s: too many wrong ones", client_ip(request))
    except BROKER_ERRORS as exc:
        # The shared cache (Redis) is down: check the token without counting, as
        # the rate limit does, rather than refuse every integration.
        log.warning("API token failures not counted, the shared cache is unreachable: %s", exc)
        found = api_token_authenticate(secret=secret)
    return found


class TokenAuth(HttpBearer):
    """`Authorization: Bearer <token>`: the request acts as the token's user."""

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        found = _token_check(request, token)
        if found is None:
            return None
        request.user = found.user
        request.api_token = found  # type: ignore[attr-defined]
        return found.user


class BrowserSession(SessionAuth):
    """The logged-in browser session; unsafe methods need the CSRF token."""

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        user = getattr(request, "user", None)
        return user if user is not None and user.is_authenticated else None


class TokenRateThrottle(BaseThrottle):
    """API_RATE_LIMIT requests a minute per token (per user for sessions),
    counted in the shared cache (Redis in production) so every web process
    sees one budget. A fixed one-minute window: simple and atomic (incr)."""

    window = 60

    def allow_request(self, request: HttpRequest) -> bool:
        limit = settings.API_RATE_LIMIT
        if not limit:
            return True
        token = getattr(request, "api_token", None)
        who = f"t{token.pk}" if token is not None else f"u{request.user.pk}"
        now = time.time()
        window_start = int(now // self.window) * self.window
        self._wait = window_start + self.window - now
        key = f"api-rate:{who}:{window_start}"
        try:
            count = counter_incr(key, timeout=self.window + 5)
        except BROKER_ERRORS as exc:
            # Redis (cache and job queue) is down: serve the request rather than
            # fail it; what it hands to the queue answers 503 (config.queue).
            log.warning("API rate limit not counted, the shared cache is unreachable: %s", exc)
            return True
        return count <= limit

    def wait(self) -> float | None:
        return max(1.0, getattr(self, "_wait", 1.0))


def _docs_access(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The schema and the docs page need a login or a token like everything else."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            try:
                token = _token_check(request, header[7:].strip())
            except TokenLocked:
                return _locked_response()
            if token is not None:
                request.user = token.user
        if not request.user.is_authenticated:
            if request.path.endswith("/docs"):
                return redirect_to_login(request.get_full_path())
            return JsonResponse(
                {"error": "unauthenticated", "detail": "Log in or send a token.", "fields": []},
                status=401,
            )
        return view(request, *args, **kwargs)

    return wrapped


class Docs(Swagger):
    """ninja's Swagger page with its JS and CSS from Loupe's static files. ninja
    renders it so only when it is an installed app, and falls back to a CDN
    otherwise; it is not one here (config/settings.py NINJA_FILES says why)."""

    def render_page(self, request: HttpRequest, api: NinjaAPI, **kwargs: Any) -> HttpResponse:
        self.settings["url"] = self.get_openapi_url(api, kwargs)
        context = {
            "swagger_settings": json.dumps(self.settings, indent=1),
            "api": api,
            # The page sends the CSRF token when a way in needs it (the session).
            "add_csrf": any(getattr(auth, "csrf", False) for auth in api.auth or ()),
        }
        return render(request, self.template, context)


api = NinjaAPI(
    title="Loupe API",
    version="1",
    description=(
        "Products, their final attributes and annotation batches. Authenticate with "
        "`Authorization: Bearer <token>` (create one at /settings/tokens/) or a browser "
        "session (unsafe methods then need the CSRF token). Errors are "
        '`{"error": code, "detail": text, "fields": [...]}`.'
    ),
    urls_namespace="api-v1",
    auth=[TokenAuth(), BrowserSession()],
    throttle=[TokenRateThrottle()],
    docs=Docs(),
    docs_decorator=_docs_access,
)


def require_roles(request: HttpRequest, *roles: str) -> None:
    """403 unless the request's user (a token acts as its user) holds a role."""
    if not has_role(request.user, *(roles or ALL_ROLES)):
        raise PermissionDenied


def _error(
    request: HttpRequest, status: int, code: str, detail: str, fields: list | None = None
) -> HttpResponse:
    return api.create_response(
        request, {"error": code, "detail": detail, "fields": fields or []}, status=status
    )


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: Exception) -> HttpResponse:
    response = _error(request, 401, "unauthenticated", "A valid API token or login is needed.")
    response["WWW-Authenticate"] = 'Bearer realm="loupe"'
    return response


@api.exception_handler(PermissionDenied)
def _forbidden(request: HttpRequest, exc: Exception) -> HttpResponse:
    return _error(request, 403, "forbidden", "Your role does not allow this.")


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Exception) -> HttpResponse:
    return _error(request, 404, "not_found", str(exc) or "Not found.")


@api.exception_handler(ValidationError)
def _invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    fields = [
        {
            # Without pydantic's internal steps ("function-wrap[...]").
            "loc": ".".join(str(part) for part in error.get("loc", ()) if "[" not in str(part)),
            "message": error.get("msg", "invalid"),
        }
        for error in exc.errors
    ]
    return _error(request, 422, "invalid", "The request has invalid fields.", fields)


@api.exception_handler(Throttled)
def _throttled(request: HttpRequest, exc: Throttled) -> HttpResponse:
    response = _error(request, 429, "rate_limited", "Too many requests; slow down.")
    response["Retry-After"] = str(math.ceil(exc.wait or 1))
    return response


def _locked_response() -> HttpResponse:
    response = JsonResponse(
        {"error": "locked", "detail": lockout_message(), "fields": []}, status=429
    )
    response["Retry-After"] = str(cool_off_seconds())
    return response


@api.exception_handler(TokenLocked)
def _token_locked(request: HttpRequest, exc: TokenLocked) -> HttpResponse:
    return _locked_response()


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    codes = {400: "bad_request", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
    return _error(request, exc.status_code, codes.get(exc.status_code, "error"), str(exc))

"""Every environment variable Loupe reads, parsed and checked in one place.

`Environment` has one field per variable: its type, its default and, as the
field's description, the form it expects, which is what an error says:

    REVIEW_THRESHOLD: expected a number between 0 and 1, got 'abc'

`environment_load()` reads os.environ, reports every bad variable at once
(ImproperlyConfigured, so nothing starts) and never echoes a secret.
config/settings.py turns the result into Django settings; defaults that depend
on another variable (DEBUG, ANNOTATOR_API_KEY) are None here and resolved there.

To add a variable: add a field with `var(default, "expected form", ...)`, use
it in config/settings.py and add it to the README's table (a test checks).

Empty values: for numbers and booleans an empty value means "not set" (the
default applies); for text it is the empty text (ANNOTATOR_FALLBACK_PROVIDER=""
turns the fallback off); for lists it is the empty list.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Json,
    SecretStr,
    ValidationError,
    field_validator,
)

BOOLEAN = "a boolean (1/0, true/false, yes/no, on/off)"
COMMA_LIST = "a comma-separated list"
# Fields parsed from "a,b,c" rather than taken as text.
LIST_FIELDS = {"ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "IMAGE_FETCH_ALLOWED_HOSTS", "CSP_IMG_SRC"}


def var(default: Any, expected: str, **constraints: Any) -> Any:
    """A variable: its default and the form it expects (shown in errors)."""
    return Field(default, description=expected, **constraints)


def _positive(kind: str) -> str:
    return f"a {kind} greater than 0"


class Environment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- Django core ---------------------------------------------------------------------
    DEBUG: bool = var(False, BOOLEAN)
    SECRET_KEY: SecretStr = var(SecretStr(""), "a long random string")
    ALLOWED_HOSTS: list[str] | None = var(None, f"{COMMA_LIST} of host names")
    CSRF_TRUSTED_ORIGINS: list[str] = var(
        [], f"{COMMA_LIST} of origins with their scheme, e.g. https://loupe.example.com"
    )
    LOUPE_VAR_DIR: Path | None = var(None, "a folder path")
    DATABASE_URL: str | None = var(
        None,
        "a database URL such as postgres://user:password@host:5432/loupe "
        "or sqlite:////path/to/loupe.sqlite3",
    )
    DB_CONN_MAX_AGE: int = var(60, "a whole number of seconds (0 or more)", ge=0)
    TIME_ZONE: str = var("UTC", "an IANA time zone name such as UTC or Europe/Paris")
    STATIC_ROOT: Path | None = var(None, "a folder path")
    MEDIA_ROOT: Path | None = var(None, "a folder path")
    MEDIA_STORAGE: Literal["filesystem", "s3"] = var("filesystem", "one of filesystem, s3")
    MEDIA_S3_BUCKET: str = var("", "an S3 bucket name (needed when MEDIA_STORAGE=s3)")
    MEDIA_S3_ENDPOINT_URL: str = var(
        "", "an http:// or https:// URL of an S3-compatible server, or empty for AWS"
    )
    MEDIA_S3_REGION: str = var("", "an S3 region name such as eu-west-1, or empty")
    MEDIA_SIGNED_URLS: bool = var(False, BOOLEAN)
    MEDIA_URL_EXPIRE: int = var(300, "a whole number of seconds greater than 0", gt=0)
    THUMBNAIL_INLINE_MAX_BYTES: int = var(16384, "a whole number of bytes (0 or more)", ge=0)
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = var(
        "INFO", "one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )

    # --- HTTPS and proxies (defaults: on when DEBUG is off) --------------------------------
    SECURE_SSL_REDIRECT: bool | None = var(None, BOOLEAN)
    SESSION_COOKIE_SECURE: bool | None = var(None, BOOLEAN)
    CSRF_COOKIE_SECURE: bool | None = var(None, BOOLEAN)
    SECURE_HSTS_SECONDS: int | None = var(None, "a whole number of seconds (0 or more)", ge=0)
    # includeSubDomains and preload promise HTTPS for every subdomain: opt-in.
    SECURE_HSTS_INCLUDE_SUBDOMAINS: bool = var(False, BOOLEAN)
    SECURE_HSTS_PRELOAD: bool = var(False, BOOLEAN)
    SECURE_PROXY_SSL_HEADER: str = var(
        "X-Forwarded-Proto",
        "an HTTP header name such as X-Forwarded-Proto, or empty to trust no proxy header",
    )

    # --- Login throttling and Content-Security-Policy ------------------------------------
    LOGIN_FAILURE_LIMIT: int = var(5, _positive("whole number of failed logins"), gt=0)
    LOGIN_COOLOFF_MINUTES: float = var(
        15.0, _positive("number of minutes"), gt=0, allow_inf_nan=False
    )
    LOGIN_CLIENT_IP_HEADER: str = var(
        "",
        "a request.META header key such as HTTP_X_FORWARDED_FOR, or empty for REMOTE_ADDR",
        pattern=r"^([A-Z][A-Z0-9_]*)?$",
    )
    CSP_IMG_SRC: list[str] = var([], f"{COMMA_LIST} of image origins, e.g. https://cdn.example.com")

    # --- Celery ------------------------------------------------------------------------------
    REDIS_URL: str = var("", "a Redis URL such as redis://host:6379/0 (or rediss://, unix://)")
    CELERY_QUEUE_DIR: Path | None = var(None, "a folder path")
    CELERY_TASK_SOFT_TIME_LIMIT: int = var(
        600, "a whole number of seconds (0 = no soft limit, only the hard one)", ge=0
    )
    CELERY_TASK_TIME_LIMIT: int = var(660, "a whole number of seconds greater than 0", gt=0)
    CELERY_DEFAULT_QUEUE: str = var("celery", "a queue name", min_length=1)
    CELERY_IMAGE_QUEUE: str = var("images", "a queue name", min_length=1)
    RECOVERY_SWEEP_SECONDS: int = var(
        30, "a whole number of seconds (0 = no sweep in the workers: run celery beat)", ge=0
    )

    # --- Images ------------------------------------------------------------------------------
    IMAGE_FETCH_ALLOWED_HOSTS: list[str] = var([], f"{COMMA_LIST} of host names")
    IMAGE_FETCH_CONNECT_TIMEOUT: float = var(
        5.0, _positive("number of seconds"), gt=0, allow_inf_nan=False
    )
    IMAGE_FETCH_READ_TIMEOUT: float = var(
        15.0, _positive("number of seconds"), gt=0, allow_inf_nan=False
    )
    IMAGE_FETCH_DEADLINE: float = var(
        20.0, _positive("number of seconds"), gt=0, allow_inf_nan=False
    )
    IMAGE_FETCH_MAX_BYTES: int = var(25 * 1024 * 1024, _positive("whole number of bytes"), gt=0)
    IMAGE_FETCH_MAX_REDIRECTS: int = var(5, "a whole number (0 or more)", ge=0)
    IMAGE_FETCH_PER_HOST: int = var(8, "a whole number (0 = no bound)", ge=0)
    IMAGE_MAX_PIXELS: int = var(40_000_000, _positive("whole number of pixels"), gt=0)
    IMAGE_STORE_MAX_SIDE: int = var(2048, _positive("whole number of pixels"), gt=0)
    IMAGE_STORE_PASSTHROUGH_MAX_SIDE: int = var(
        4096, "a whole number of pixels (0 = always normalise)", ge=0
    )
    IMAGE_IMPORT_ROOT: str = var("", "a folder path, or empty")

    # --- Review ------------------------------------------------------------------------------
    REVIEW_THRESHOLD: float = var(0.85, "a number between 0 and 1", ge=0, le=1, allow_inf_nan=False)
    REVIEW_AUDIT_RATE: float = var(
        0.02, "a number between 0 and 1", ge=0, le=1, allow_inf_nan=False
    )
    REVIEW_LEASE_SECONDS: int = var(600, "a whole number of seconds greater than 0", gt=0)
    REVIEW_UNDO_SECONDS: int = var(600, "a whole number of seconds (0 or more)", ge=0)
    REVIEW_AUDIT_BLIND: bool = var(True, BOOLEAN)

    # --- Annotation --------------------------------------------------------------------------
    ANNOTATOR_API_KEY: SecretStr = var(SecretStr(""), "an API key")
    ANNOTATOR_PROVIDER: str | None = var(None, "a provider name: openai or local")
    ANNOTATOR_BASE_URL: str = var(
        "https://api.openai.com/v1", "an http:// or https:// URL of an OpenAI-compatible API"
    )
    ANNOTATOR_MODEL: str = var("gpt-4o-mini", "a model name", min_length=1)
    ANNOTATOR_TIMEOUT: float = var(30.0, _positive("number of seconds"), gt=0, allow_inf_nan=False)
    ANNOTATOR_MAX_RETRIES: int = var(3, "a whole number (0 or more)", ge=0)
    ANNOTATOR_CONCURRENCY: int = var(128, _positive("whole number"), gt=0)
    ANNOTATOR_LEASE_SECONDS: int = var(60, _positive("whole number of seconds"), gt=0)
    ANNOTATOR_CONTEXT_TTL: float = var(
        5.0, "a number of seconds (0 or more)", ge=0, allow_inf_nan=False
    )
    ANNOTATOR_RPM: int = var(0, "a whole number of requests per minute (0 = no limit)", ge=0)
    ANNOTATOR_IMAGE_MAX_SIDE: int = var(1024, _positive("whole number of pixels"), gt=0)
    ANNOTATOR_IMAGE_DETAIL: Literal["auto", "low", "high"] = var("auto", "one of auto, low, high")
    ANNOTATOR_CANARY_PROVIDER: str = var("", "a provider name, or empty for no canary")
    ANNOTATOR_CANARY_MODEL: str = var("", "a model name, or empty")
    ANNOTATOR_CANARY_PERCENT: float = var(
        0.0, "a number between 0 and 100", ge=0, le=100, allow_inf_nan=False
    )
    ANNOTATOR_FALLBACK_PROVIDER: str = var("local", "a provider name, or empty for no fallback")
    ANNOTATOR_REANNOTATE_FALLBACK: bool = var(True, BOOLEAN)
    ANNOTATOR_CIRCUIT_FAILURES: int = var(5, _positive("whole number"), gt=0)
    ANNOTATOR_CIRCUIT_COOLDOWN: int = var(60, "a whole number of seconds (0 or more)", ge=0)
    ANNOTATOR_PRICES: Json[dict[str, tuple[float, float]]] = var(
        {},
        "a JSON object of model name to [USD per 1M input tokens, USD per 1M output tokens], "
        'e.g. {"my-model": [0.2, 0.8]}',
    )

    # --- API and webhooks -------------------------------------------------------------------
    API_RATE_LIMIT: int = var(
        600, "a whole number of requests a minute per token (0 = no limit)", ge=0
    )
    WEBHOOK_TIMEOUT: float = var(10.0, _positive("number of seconds"), gt=0, allow_inf_nan=False)
    WEBHOOK_BACKOFF_BASE: float = var(
        30.0, _positive("number of seconds"), gt=0, allow_inf_nan=False
    )
    WEBHOOK_RETRY_HOURS: float = var(24.0, _positive("number of hours"), gt=0, allow_inf_nan=False)
    WEBHOOK_DISABLE_AFTER_DAYS: float = var(
        3.0, _positive("number of days"), gt=0, allow_inf_nan=False
    )

    @field_validator("CSRF_TRUSTED_ORIGINS")
    @classmethod
    def _origins_have_a_scheme(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if not re.match(r"^https?://[^/]+", origin):
                raise ValueError(origin)
        return origins

    @field_validator("DATABASE_URL")
    @classmethod
    def _database_url_parses(cls, url: str | None) -> str | None:
        if url is not None:
            dj_database_url.parse(url)  # ValueError on an unknown scheme
        return url

    @field_validator("TIME_ZONE")
    @classmethod
    def _time_zone_exists(cls, name: str) -> str:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as unknown:
            raise ValueError(name) from unknown
        return name

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_url_scheme(cls, url: str) -> str:
        if url and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(url)
        return url

    @field_validator("ANNOTATOR_BASE_URL")
    @classmethod
    def _base_url_scheme(cls, url: str) -> str:
        if not re.match(r"^https?://[^/]+", url):
            raise ValueError(url)
        return url

    @field_validator("MEDIA_S3_ENDPOINT_URL")
    @classmethod
    def _s3_endpoint_scheme(cls, url: str) -> str:
        if url and not re.match(r"^https?://[^/]+", url):
            raise ValueError(url)
        return url

    @field_validator("SECURE_PROXY_SSL_HEADER")
    @classmethod
    def _header_name(cls, name: str) -> str:
        if name and not re.fullmatch(r"[A-Za-z0-9-]+", name):
            raise ValueError(name)
        return name

    def problems(self) -> list[str]:
        """Rules that span several variables."""
        found = []
        if not self.DEBUG and not self.SECRET_KEY.get_secret_value():
            found.append("SECRET_KEY: must be set when DEBUG is off (a long random string)")
        if 0 < self.CELERY_TASK_TIME_LIMIT <= self.CELERY_TASK_SOFT_TIME_LIMIT:
            found.append(
                "CELERY_TASK_SOFT_TIME_LIMIT: expected fewer seconds than CELERY_TASK_TIME_LIMIT "
                f"({self.CELERY_TASK_TIME_LIMIT}), got {self.CELERY_TASK_SOFT_TIME_LIMIT}"
            )
        if self.MEDIA_STORAGE == "s3" and not self.MEDIA_S3_BUCKET:
            found.append("MEDIA_S3_BUCKET: must be set when MEDIA_STORAGE=s3 (an S3 bucket name)")
        return found


def _raw_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """The variables that are set, in the shape the model validates."""
    data: dict[str, Any] = {}
    for name, field in Environment.model_fields.items():
        raw = environ.get(name)
        if raw is None:
            continue
        if name in LIST_FIELDS:
            data[name] = [item.strip() for item in raw.split(",") if item.strip()]
        elif raw.strip() == "" and field.annotation not in (str, str | None, SecretStr):
            continue  # an empty number or boolean means "not set"
        else:
            data[name] = raw.strip() if field.annotation is not SecretStr else raw
    return data


def _describe(name: str, environ: Mapping[str, str]) -> str:
    field = Environment.model_fields[name]
    raw = environ.get(name, "")
    shown = "a value that is not shown" if field.annotation is SecretStr else repr(raw.strip())
    return f"{name}: expected {field.description}, got {shown}"


def environment_load(environ: Mapping[str, str] | None = None) -> Environment:
    """Read and check the environment; every problem is named in one ImproperlyConfigured."""
    environ = os.environ if environ is None else environ
    try:
        env = Environment.model_validate(_raw_values(environ))
    except ValidationError as error:
        names = dict.fromkeys(str(detail["loc"][0]) for detail in error.errors())
        raise ImproperlyConfigured("\n".join(_describe(name, environ) for name in names)) from None
    problems = env.problems()
    if problems:
        raise ImproperlyConfigured("\n".join(problems))
    return env

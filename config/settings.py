"""Loupe settings: one module, driven by environment variables.

The embedded default (no variables set) is SQLite, a local media folder and a
Celery worker on kombu's filesystem transport. Production sets DATABASE_URL,
REDIS_URL, SECRET_KEY, ALLOWED_HOSTS and DEBUG=0; nothing else differs.

Every variable is read and checked by config/env.py (a bad value stops
startup with an error naming it); this module only turns them into settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import dj_database_url

from config.env import environment_load

T = TypeVar("T")


def unless_set(value: T | None, default: T) -> T:
    """The variable's value, or a default that depends on other variables."""
    return default if value is None else value


env = environment_load()  # lower case: not a Django setting

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = unless_set(env.LOUPE_VAR_DIR, BASE_DIR / "var")

DEBUG = env.DEBUG

SECRET_KEY = env.SECRET_KEY.get_secret_value()
if not SECRET_KEY:  # only with DEBUG on: config/env.py refuses it otherwise
    SECRET_KEY = "insecure-dev-only-key-never-used-in-production"  # noqa: S105

ALLOWED_HOSTS = unless_set(env.ALLOWED_HOSTS, ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.CSRF_TRUSTED_ORIGINS

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "accounts",
    "catalog",
    "annotator",
    "review",
    "tuning",
    "reports",
    "api",
    "ninja",  # serves the API docs page's JS/CSS from static files, no CDN
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a login; public exceptions are marked with
    # django.contrib.auth.decorators.login_not_required (the login page itself).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.roles",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        unless_set(env.DATABASE_URL, f"sqlite:///{VAR_DIR / 'loupe.sqlite3'}"),
        conn_max_age=env.DB_CONN_MAX_AGE,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # A web server and a worker share the file: wait for locks instead of
    # failing, and let readers run beside the writer.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env.TIME_ZONE
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = unless_set(env.STATIC_ROOT, VAR_DIR / "staticfiles")
MEDIA_URL = "media/"
MEDIA_ROOT = unless_set(env.MEDIA_ROOT, VAR_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Uploaded import files can be large (100k rows is ~10 MB).
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# Security headers; `manage.py check --deploy` is clean with DEBUG off.
# The proxy in front says "https" in this header; empty trusts no header (a
# client could otherwise claim HTTPS on a plain-HTTP deployment).
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + env.SECURE_PROXY_SSL_HEADER.upper().replace("-", "_"), "https")
    if env.SECURE_PROXY_SSL_HEADER
    else None
)
SECURE_SSL_REDIRECT = unless_set(env.SECURE_SSL_REDIRECT, not DEBUG)
SESSION_COOKIE_SECURE = unless_set(env.SESSION_COOKIE_SECURE, not DEBUG)
CSRF_COOKIE_SECURE = unless_set(env.CSRF_COOKIE_SECURE, not DEBUG)
SECURE_HSTS_SECONDS = unless_set(env.SECURE_HSTS_SECONDS, 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = unless_set(env.SECURE_HSTS_PRELOAD, not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.LOG_LEVEL},
}

# --- Celery -----------------------------------------------------------------
# REDIS_URL selects Redis as broker and result store. Without it a real worker
# still runs, over kombu's filesystem transport (no server needed).
REDIS_URL = env.REDIS_URL
CELERY_QUEUE_DIR = unless_set(env.CELERY_QUEUE_DIR, VAR_DIR / "celery")


def filesystem_broker(folder: Path) -> dict:
    """Celery settings for kombu's filesystem transport rooted at `folder`."""
    for name in ("queue", "processed", "control", "results"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    return {
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_BROKER_TRANSPORT_OPTIONS": {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": 0.1,  # the default 1 s caps a worker at 1 task/s
        },
        "CELERY_RESULT_BACKEND": f"file://{folder / 'results'}",
    }


if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"visibility_timeout": 3600}
else:
    globals().update(filesystem_broker(CELERY_QUEUE_DIR))
CELERY_TASK_ACKS_LATE = True  # a killed worker's task is redelivered, not lost
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.CELERY_TASK_SOFT_TIME_LIMIT
CELERY_TASK_TIME_LIMIT = env.CELERY_TASK_TIME_LIMIT
CELERY_TASK_IGNORE_RESULT = True  # results live in the database, not the backend
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Shared cache: circuit breaker and rate-limit counters must be seen by every
# worker, so it is Redis in production and a file cache on one machine.
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    )
}

# --- Images -------------------------------------------------------------------
# Hosts that may resolve to private/loopback addresses (local development and
# tests only). Everything else must resolve to public addresses.
IMAGE_FETCH_ALLOWED_HOSTS = env.IMAGE_FETCH_ALLOWED_HOSTS
IMAGE_FETCH_CONNECT_TIMEOUT = env.IMAGE_FETCH_CONNECT_TIMEOUT
IMAGE_FETCH_READ_TIMEOUT = env.IMAGE_FETCH_READ_TIMEOUT
IMAGE_FETCH_MAX_BYTES = env.IMAGE_FETCH_MAX_BYTES
IMAGE_FETCH_MAX_REDIRECTS = env.IMAGE_FETCH_MAX_REDIRECTS
# Decoded pixel budget: anything larger is refused as a decompression bomb.
IMAGE_MAX_PIXELS = env.IMAGE_MAX_PIXELS
# Longest side of the normalised copy kept in MEDIA storage.
IMAGE_STORE_MAX_SIDE = env.IMAGE_STORE_MAX_SIDE
# Folder that `image_path` values in browser uploads may read from. Unset means
# browser uploads may only reference images by URL (the CLI is trusted and
# reads paths relative to --images-dir).
IMAGE_IMPORT_ROOT = env.IMAGE_IMPORT_ROOT

# --- Review -------------------------------------------------------------------
REVIEW_THRESHOLD = env.REVIEW_THRESHOLD
REVIEW_LEASE_SECONDS = env.REVIEW_LEASE_SECONDS
REVIEW_UNDO_SECONDS = env.REVIEW_UNDO_SECONDS
# Hide the AI's suggestion on audit items until the reviewer reveals it, so
# the audit measures the AI instead of anchoring the reviewer on it.
REVIEW_AUDIT_BLIND = env.REVIEW_AUDIT_BLIND

# --- Annotation -----------------------------------------------------------------
# Secrets come from the environment only; they are never stored, logged or shown.
ANNOTATOR_API_KEY = env.ANNOTATOR_API_KEY.get_secret_value()
ANNOTATOR_PROVIDER = unless_set(env.ANNOTATOR_PROVIDER, "openai" if ANNOTATOR_API_KEY else "local")
ANNOTATOR_BASE_URL = env.ANNOTATOR_BASE_URL
ANNOTATOR_MODEL = env.ANNOTATOR_MODEL
ANNOTATOR_TIMEOUT = env.ANNOTATOR_TIMEOUT
ANNOTATOR_MAX_RETRIES = env.ANNOTATOR_MAX_RETRIES
ANNOTATOR_CONCURRENCY = env.ANNOTATOR_CONCURRENCY
ANNOTATOR_RPM = env.ANNOTATOR_RPM  # 0 = no limit
ANNOTATOR_IMAGE_MAX_SIDE = env.ANNOTATOR_IMAGE_MAX_SIDE
ANNOTATOR_IMAGE_DETAIL = env.ANNOTATOR_IMAGE_DETAIL
# Canary: a second provider/model for a share of products (by product id).
ANNOTATOR_CANARY_PROVIDER = env.ANNOTATOR_CANARY_PROVIDER
ANNOTATOR_CANARY_MODEL = env.ANNOTATOR_CANARY_MODEL
ANNOTATOR_CANARY_PERCENT = env.ANNOTATOR_CANARY_PERCENT
# Fallback when the primary fails or its circuit is open ("" disables it).
ANNOTATOR_FALLBACK_PROVIDER = env.ANNOTATOR_FALLBACK_PROVIDER
ANNOTATOR_CIRCUIT_FAILURES = env.ANNOTATOR_CIRCUIT_FAILURES
ANNOTATOR_CIRCUIT_COOLDOWN = env.ANNOTATOR_CIRCUIT_COOLDOWN
# USD per 1M tokens (input, output). Override with ANNOTATOR_PRICES as JSON,
# e.g. {"my-model": [0.2, 0.8]}; unknown models cost 0 and are flagged in reports.
ANNOTATOR_PRICES = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.5-flash": (0.30, 2.50),
    "local": (0.0, 0.0),
    **env.ANNOTATOR_PRICES,
}
REVIEW_AUDIT_RATE = env.REVIEW_AUDIT_RATE

# Periodic jobs (run `celery -A config beat` once per deployment; `make run`
# embeds it in the worker with -B).
CELERY_BEAT_SCHEDULE = {
    "webhooks-sweep": {"task": "api.tasks.webhooks_sweep", "schedule": 60.0},
    "requeue-stale-annotations": {"task": "annotator.tasks.requeue_stale", "schedule": 600.0},
    "reports-rollup-recent": {"task": "reports.rollup_recent", "schedule": 300.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- API and webhooks -----------------------------------------------------------
# Requests a minute per API token (per user for browser sessions); 0 disables.
API_RATE_LIMIT = env.API_RATE_LIMIT
WEBHOOK_TIMEOUT = env.WEBHOOK_TIMEOUT  # seconds, connect and read
WEBHOOK_BACKOFF_BASE = env.WEBHOOK_BACKOFF_BASE  # first retry, seconds
WEBHOOK_RETRY_HOURS = env.WEBHOOK_RETRY_HOURS
WEBHOOK_DISABLE_AFTER_DAYS = env.WEBHOOK_DISABLE_AFTER_DAYS

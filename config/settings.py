"""Loupe settings: one module, driven by environment variables.

The embedded default (no variables set) is SQLite, a local media folder and a
Celery worker on kombu's filesystem transport. Production sets DATABASE_URL,
REDIS_URL, SECRET_KEY, ALLOWED_HOSTS and DEBUG=0; nothing else differs.

Every variable is read and checked by config/env.py (a bad value stops
startup with an error naming it); this module only turns them into settings.
"""

from __future__ import annotations

from datetime import timedelta
from importlib.util import find_spec
from pathlib import Path
from typing import TypeVar

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE
from kombu import Queue

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
]
# django-ninja's docs page (template, JS, CSS) comes from its package folder,
# served from Loupe's own static files (no CDN; api.rest.core.Docs). Not an
# installed app: that would import ninja in every process at start-up, and a
# worker never serves the API (~5 MB of every worker process, counted by
# bench/pipeline_bench.py).
NINJA_FILES = Path(find_spec("ninja").origin).parent

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a login; public exceptions are marked with
    # django.contrib.auth.decorators.login_not_required (the login page itself,
    # signed thumbnails). Django's, asking the view before reading the session.
    "accounts.login.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Work saved but not handed to an unreachable job queue: 503, the sweep starts it.
    "config.queue.QueueUnreachableMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates", NINJA_FILES / "templates"],
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
STATICFILES_DIRS = [BASE_DIR / "static", NINJA_FILES / "static"]
STATIC_ROOT = unless_set(env.STATIC_ROOT, VAR_DIR / "staticfiles")
MEDIA_URL = "media/"
MEDIA_ROOT = unless_set(env.MEDIA_ROOT, VAR_DIR / "media")


def s3_media_storage(*, bucket: str, endpoint_url: str, region: str, url_expire: int) -> dict:
    """Django's `default` storage on S3 (or any S3-compatible server) via django-storages.

    Credentials are not settings: boto3 reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    (or an instance role) from the environment itself, so they are never in settings,
    never in an error page, never logged. config/env.py refuses s3 without a bucket."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint_url or None,
            "region_name": region or None,
            "default_acl": None,  # private objects; served by the app or signed URLs
            "file_overwrite": False,
            "querystring_auth": True,
            "signature_version": "s3v4",
            "querystring_expire": url_expire,
        },
    }


# MEDIA_STORAGE: "filesystem" (MEDIA_ROOT, the embedded default) or "s3", so workers on
# other machines read and write the same images.
MEDIA_STORAGE = env.MEDIA_STORAGE
# Image views redirect to a short-lived signed URL of the storage instead of streaming
# the bytes through the app (S3 only; the URL expires after MEDIA_URL_EXPIRE seconds).
MEDIA_SIGNED_URLS = env.MEDIA_SIGNED_URLS
MEDIA_URL_EXPIRE = env.MEDIA_URL_EXPIRE
# The bulk grid's tiles: a thumbnail of at most this many bytes on the filesystem storage
# is written into the page as a data: URI (no request at all); 0 never (signed URLs only).
THUMBNAIL_INLINE_MAX_BYTES = env.THUMBNAIL_INLINE_MAX_BYTES
STORAGES = {
    "default": (
        s3_media_storage(
            bucket=env.MEDIA_S3_BUCKET,
            endpoint_url=env.MEDIA_S3_ENDPOINT_URL,
            region=env.MEDIA_S3_REGION,
            url_expire=MEDIA_URL_EXPIRE,
        )
        if MEDIA_STORAGE == "s3"
        else {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    ),
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
# includeSubDomains and preload are promises about every subdomain and hard to take
# back, so each is opt-in; `check --deploy` warns while they are off (silenced below).
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.SECURE_HSTS_INCLUDE_SUBDOMAINS
SECURE_HSTS_PRELOAD = env.SECURE_HSTS_PRELOAD
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.LOG_LEVEL},
    # The OpenAI SDK's HTTP client logs every request at INFO: a line per
    # provider call (450,000 a day) that says nothing the annotation does not;
    # LOG_LEVEL=DEBUG still shows them.
    "loggers": {
        name: {"level": "DEBUG" if env.LOG_LEVEL == "DEBUG" else "WARNING"}
        for name in ("httpx", "httpx2", "httpcore", "httpcore2")
    },
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
        # kombu's transport with atomic writes (see the module).
        "CELERY_BROKER_TRANSPORT": "config.kombu_filesystem:Transport",
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


CELERY_TASK_SOFT_TIME_LIMIT = env.CELERY_TASK_SOFT_TIME_LIMIT
CELERY_TASK_TIME_LIMIT = env.CELERY_TASK_TIME_LIMIT
# Redis hands a message a worker took but never acknowledged (the worker was
# killed) to another worker after this long. Sized to the longest task: no task
# outlives the hard time limit, so a message is never redelivered while its task
# still runs (660 s + 120 s = 13 minutes by default). Tasks hold no countdown/ETA
# messages longer than a minute: retry schedules live in the database.
QUEUE_VISIBILITY_TIMEOUT = CELERY_TASK_TIME_LIMIT + 120
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"visibility_timeout": QUEUE_VISIBILITY_TIMEOUT}
else:
    globals().update(filesystem_broker(CELERY_QUEUE_DIR))
CELERY_TASK_ACKS_LATE = True  # a killed worker's task is redelivered, not lost
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True  # results live in the database, not the backend
CELERY_RESULT_EXPIRES = 3600
# Celery's Django fixup closes a worker process's database connections after every
# task unless told to reuse them: one PostgreSQL connection (a server process) per
# task, 14% of an intake worker's CPU, one task per image. Reused, they follow
# Django's own rule as around a web request (CONN_MAX_AGE, health checks,
# config/celery.py); the fixup still closes them every this many tasks.
CELERY_DB_REUSE_MAX = 1000
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True


def celery_queues(default: str, images: str) -> dict:
    """Queues and routes. Image intake has a queue of its own (its jobs are many and
    short, and must not wait behind annotations); a worker started without -Q
    consumes every queue listed here, so a plain `celery -A config worker` does it all."""
    return {
        "CELERY_TASK_DEFAULT_QUEUE": default,
        "CELERY_TASK_QUEUES": [Queue(default), Queue(images)],
        "CELERY_TASK_ROUTES": {"catalog.tasks.image_intake": {"queue": images}},
    }


CELERY_IMAGE_QUEUE = env.CELERY_IMAGE_QUEUE
globals().update(celery_queues(env.CELERY_DEFAULT_QUEUE, CELERY_IMAGE_QUEUE))

# Shared cache: circuit breaker and rate-limit counters must be seen by every
# worker, so it is Redis in production and a file cache on one machine.
CACHES = {
    "default": (
        {"BACKEND": "config.cache.RedisCache", "LOCATION": REDIS_URL}
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
# Image intake jobs fetching from one host at once, across all workers (0: no bound).
IMAGE_FETCH_PER_HOST = env.IMAGE_FETCH_PER_HOST
# Decoded pixel budget: anything larger is refused from its header. It bounds decode
# memory (a PNG decodes at 4 bytes a pixel): bench/image_memory_bench.py measures it.
IMAGE_MAX_PIXELS = env.IMAGE_MAX_PIXELS
# Longest side of the normalised copy kept in MEDIA storage.
IMAGE_STORE_MAX_SIDE = env.IMAGE_STORE_MAX_SIDE
# A clean JPEG (RGB/greyscale, no EXIF/XMP/IPTC) up to this side is stored as received
# instead of re-encoded to IMAGE_STORE_MAX_SIDE: ~70% of intake CPU saved, no quality
# lost (0: always normalise).
IMAGE_STORE_PASSTHROUGH_MAX_SIDE = env.IMAGE_STORE_PASSTHROUGH_MAX_SIDE
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
# Provider calls in flight per worker process (threads over one shared client).
ANNOTATOR_CONCURRENCY = env.ANNOTATOR_CONCURRENCY
# A worker renews the lease of the products it holds every quarter of this;
# the periodic re-queue hands a dead worker's products to another one after it.
ANNOTATOR_LEASE_SECONDS = env.ANNOTATOR_LEASE_SECONDS
# Seconds a worker keeps the active prompt, taxonomy and thresholds in memory.
ANNOTATOR_CONTEXT_TTL = env.ANNOTATOR_CONTEXT_TTL
ANNOTATOR_RPM = env.ANNOTATOR_RPM  # 0 = no limit
ANNOTATOR_IMAGE_MAX_SIDE = env.ANNOTATOR_IMAGE_MAX_SIDE
ANNOTATOR_IMAGE_DETAIL = env.ANNOTATOR_IMAGE_DETAIL
# Canary: a second provider/model for a share of products (by product id).
ANNOTATOR_CANARY_PROVIDER = env.ANNOTATOR_CANARY_PROVIDER
ANNOTATOR_CANARY_MODEL = env.ANNOTATOR_CANARY_MODEL
ANNOTATOR_CANARY_PERCENT = env.ANNOTATOR_CANARY_PERCENT
# Fallback when the primary fails or its circuit is open ("" disables it).
ANNOTATOR_FALLBACK_PROVIDER = env.ANNOTATOR_FALLBACK_PROVIDER
# Products the fallback answered go to the primary again once it answers
# (review.reannotation); off leaves them as the fallback left them.
ANNOTATOR_REANNOTATE_FALLBACK = env.ANNOTATOR_REANNOTATE_FALLBACK
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

# Periodic jobs. Every worker runs them in a thread of its own, one worker per
# period through a lock in the shared cache (config/sweeper.py), so `celery beat`
# is optional: run it (once) only with RECOVERY_SWEEP_SECONDS=0.
RECOVERY_SWEEP_SECONDS = env.RECOVERY_SWEEP_SECONDS
sweep_period = float(RECOVERY_SWEEP_SECONDS or 30)
CELERY_BEAT_SCHEDULE = {
    "requeue-stale-annotations": {
        "task": "annotator.tasks.requeue_stale",
        "schedule": sweep_period,
    },
    "requeue-stale-images": {
        "task": "catalog.tasks.requeue_stale_images",
        "schedule": sweep_period,
    },
    "requeue-queued-imports": {
        "task": "catalog.tasks.requeue_queued_imports",
        "schedule": sweep_period,
    },
    "requeue-queued-evaluations": {
        "task": "tuning.tasks.requeue_queued_evaluations",
        "schedule": sweep_period,
    },
    "fallback-reannotate": {"task": "review.tasks.reannotate_fallback", "schedule": 60.0},
    "webhooks-sweep": {"task": "api.tasks.webhooks_sweep", "schedule": 60.0},
    "reports-rollup-recent": {"task": "reports.rollup_recent", "schedule": 300.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Hardening: login throttling, input hygiene, CSP ----------------------------------
INSTALLED_APPS += ["axes", "csp"]
# Axes goes last: it turns a locked-out login into the lockout page.
MIDDLEWARE += [
    "csp.middleware.CSPMiddleware",
    # After authentication and messages, so its refusal page renders like any other.
    "accounts.hygiene.ControlCharacterMiddleware",
    "axes.middleware.AxesMiddleware",
]
# AxesStandaloneBackend first: it refuses a locked-out login before a password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# Login throttling (django-axes): a username from one IP address is locked after
# LOGIN_FAILURE_LIMIT wrong passwords, for LOGIN_COOLOFF_MINUTES after the last one.
# Superusers unlock in the admin (Axes > Access attempts: delete) or with
# `manage.py axes_reset_username NAME` / `axes_reset_ip ADDR` / `axes_reset`.
AXES_FAILURE_LIMIT = env.LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=env.LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.throttling.lockout_response"
AXES_CLIENT_IP_CALLABLE = "accounts.throttling.client_ip"
# Behind a reverse proxy REMOTE_ADDR is the proxy's: name the request header the proxy
# appends the client's address to (e.g. HTTP_X_FORWARDED_FOR; its last entry is used).
# Unset (the default) uses REMOTE_ADDR, which a client cannot forge.
LOGIN_CLIENT_IP_HEADER = env.LOGIN_CLIENT_IP_HEADER

# Content-Security-Policy (django-csp): scripts and style sheets only from our own static
# files. `style` attributes stay allowed (bar widths, colour swatches): they cannot run code.
# CSP_IMG_SRC adds image origins (e.g. the object-storage host when media lives there).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "style-src-elem": [SELF],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:", *env.CSP_IMG_SRC],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# HSTS includeSubDomains/preload are opt-in (see above): `check --deploy` warns while they
# are off; off is the decision, so the warnings go.
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]

# Images: one deadline for a whole fetch (connect, redirects, slow senders included).
IMAGE_FETCH_DEADLINE = env.IMAGE_FETCH_DEADLINE

# --- API and webhooks -----------------------------------------------------------
# Requests a minute per API token (per user for browser sessions); 0 disables.
API_RATE_LIMIT = env.API_RATE_LIMIT
WEBHOOK_TIMEOUT = env.WEBHOOK_TIMEOUT  # seconds, connect and read
WEBHOOK_BACKOFF_BASE = env.WEBHOOK_BACKOFF_BASE  # first retry, seconds
WEBHOOK_RETRY_HOURS = env.WEBHOOK_RETRY_HOURS
WEBHOOK_DISABLE_AFTER_DAYS = env.WEBHOOK_DISABLE_AFTER_DAYS

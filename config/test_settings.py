"""Test override: the real settings, minus what only slows tests down or needs
HTTPS. DATABASE_URL and REDIS_URL still choose the real backends."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")

from config.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Tests publish to a queue of their own, so a development worker running on
# the same broker never steals a test's task.
CELERY_IMAGE_QUEUE = f"loupe-test-{os.getpid()}-images"
globals().update(celery_queues(f"loupe-test-{os.getpid()}", CELERY_IMAGE_QUEUE))  # noqa: F405
if not REDIS_URL:  # noqa: F405
    globals().update(filesystem_broker(Path(tempfile.mkdtemp(prefix="loupe-celery-"))))  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": tempfile.mkdtemp(prefix="loupe-cache-"),
    }
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not shared-cache memory: live-server and worker threads then get
    # SQLite's normal locking with a busy timeout instead of "table is locked".
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": str(Path(tempfile.mkdtemp(prefix="loupe-testdb-")) / "test.sqlite3")  # noqa: F405
    }

# No sweeper thread in the test process (its in-process workers): a test runs a
# sweep itself, or starts worker subprocesses, which sweep as in production.
RECOVERY_SWEEP_SECONDS = 0

# Tests change prompts, thresholds and the taxonomy between two annotations.
ANNOTATOR_CONTEXT_TTL = 0.0

"""The shared cache of worker subprocesses, emptied before a test starts them.

The test process keeps its cache in a folder of its own (config/test_settings.py),
but `celery worker` subprocesses read REDIS_URL as production does and keep their
circuit state, sweep locks and "sent once" marks in Redis. Those outlive the test
run, and a later run's fresh test database reuses the same row ids: an import run
#1 then found the previous run's "already re-sent" mark for 10 minutes and was not
picked up. Only Django's cache keys (":<version>:..." with no KEY_PREFIX) go; the
broker's keys in the same Redis database stay."""

from __future__ import annotations

import os

import redis

DJANGO_CACHE_KEYS = ":[0-9]*:*"


def worker_cache_clear() -> int:
    """Delete the workers' Django cache keys; returns how many. No-op without REDIS_URL
    (workers then use a file cache under their own LOUPE_VAR_DIR)."""
    url = os.environ.get("REDIS_URL")
    if not url:
        return 0
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=DJANGO_CACHE_KEYS, count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        return len(keys)
    finally:
        client.close()

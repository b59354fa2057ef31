"""Loupe's Celery app with every SQL statement counted, for benchmarks only:
`celery -A bench.counted_worker worker` is `celery -A config worker` plus a
counter. Each worker process adds its count of statements (any thread, any
connection) to the shared-cache key QUERIES_KEY about once a second, so a
benchmark reads the key before and after a run for SQL statements per image.

Counting wraps Django's cursor (`CursorWrapper._execute*`), the layer every
ORM and raw statement goes through; an executemany counts once, as one
round trip."""

from __future__ import annotations

import threading
import time

from celery.signals import worker_process_init

from config.celery import app

__all__ = ["QUERIES_KEY", "app"]

QUERIES_KEY = "bench:sql-statements"

_count = 0
_lock = threading.Lock()


def _counted(method):
    def wrapper(self, *args, **kwargs):
        global _count
        with _lock:
            _count += 1
        return method(self, *args, **kwargs)

    return wrapper


@worker_process_init.connect
def _count_statements(**kwargs) -> None:
    from django.db.backends.utils import CursorWrapper

    from config.counters import counter_incr

    CursorWrapper._execute = _counted(CursorWrapper._execute)
    CursorWrapper._executemany = _counted(CursorWrapper._executemany)

    def flush() -> None:
        global _count
        while True:
            time.sleep(1.0)
            with _lock:
                count, _count = _count, 0
            if count:
                counter_incr(QUERIES_KEY, timeout=None, by=count)

    threading.Thread(target=flush, name="bench-query-count", daemon=True).start()

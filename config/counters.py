"""Counters in the shared cache (Redis in production, so every process on every
machine counts together): rate limits, failure counts, per-host slots."""

from __future__ import annotations

from django.core.cache import cache


def counter_incr(key: str, *, timeout: int | None, by: int = 1) -> int:
    """Add `by` (one) to the counter `key`, created at 0 to live `timeout`
    seconds (None: for ever) when absent. Returns the new count. The counter can
    vanish between its creation and the increment (it expired, or another thread
    reset it), which makes the cache's incr raise: it is then created again, and
    counted from `by` if that keeps happening."""
    for _ in range(3):
        cache.add(key, 0, timeout=timeout)
        try:
            return cache.incr(key, by)
        except ValueError:
            continue
    cache.set(key, by, timeout=timeout)
    return by

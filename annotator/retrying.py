"""The one retry policy for work that calls the AI provider (annotation and
offline evaluation): a provider that is down (after the routing's own fast
retries and fallback) is tried again later, three times, with growing delays;
the last attempt records the failure instead of retrying.

Annotation keeps its schedule in the database (AnnotationLease.retry_at, queued
by the recovery sweep when due), so a worker killed during an outage holds
nothing; evaluation items still retry as Celery countdowns (at most 600 s, below
the queue's visibility timeout)."""

from __future__ import annotations

import logging

from celery import Task

from annotator.providers.base import ProviderError

log = logging.getLogger(__name__)
PROVIDER_RETRY_DELAYS = (30, 120, 600)  # seconds before attempts 2, 3 and 4
PROVIDER_MAX_RETRIES = len(PROVIDER_RETRY_DELAYS)


def provider_retry_delay(retries: int) -> int:
    """Seconds before the next attempt, after `retries` retries so far."""
    return PROVIDER_RETRY_DELAYS[min(retries, PROVIDER_MAX_RETRIES - 1)]


def provider_final_attempt(task: Task) -> bool:
    """True on the last attempt: the task records the failure instead of raising."""
    return task.request.retries >= PROVIDER_MAX_RETRIES


def provider_retry(
    task: Task, exc: ProviderError, *, subject: str, args: tuple | None = None
) -> Exception:
    """The Retry to raise after a provider failure (`raise provider_retry(...)`);
    `args` replaces the task's arguments for the next attempt (default: the same)."""
    delay = provider_retry_delay(task.request.retries)
    log.warning("%s: provider failed (%s); retry in %ss", subject, exc, delay)
    return task.retry(args=args, countdown=delay, max_retries=PROVIDER_MAX_RETRIES)

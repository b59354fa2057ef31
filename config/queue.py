"""Handing work to the job queue (the Celery broker) when it may be unreachable.

Every web-facing enqueue goes through `enqueue`: the work it announces is already
committed in the database, so a broker that is down loses nothing. The caller
leaves a mark the recovery sweep finds (config/sweeper.py), `enqueue` logs and
returns False, and the request answers 503 with QUEUE_UNREACHABLE instead of a
generic 500 (QueueUnreachableMiddleware), once the view has finished: an import
that queues images chunk by chunk still stores every row.

Never hide a dead broker by running the job inline: the sweep starts it when the
queue is back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

QUEUE_UNREACHABLE = (
    "the job queue is unreachable; nothing was lost, it will start when the queue is back"
)
# Celery re-raises a broker's connection errors as kombu's OperationalError; the
# others are what a transport may let through.
BROKER_ERRORS = (OperationalError, RedisConnectionError, RedisTimeoutError, ConnectionError)

# The enqueue failures of the current request (None outside a request).
_failures: ContextVar[list[str] | None] = ContextVar("queue_failures", default=None)


def enqueue(send: Callable[[], Any], *, what: str) -> bool:
    """Call `send` (a task's .delay/.apply_async/send_task); False when the broker
    is unreachable. The caller's committed rows must already say what is to be
    done, so the recovery sweep can start it later."""
    try:
        send()
    except BROKER_ERRORS as exc:
        log.warning("job queue unreachable, %s is left to the recovery sweep: %s", what, exc)
        failures = _failures.get()
        if failures is not None:
            failures.append(what)
        return False
    return True


@contextmanager
def queue_failures() -> Iterator[list[str]]:
    """Collect what `enqueue` could not send within the block (a request, a command)."""
    failures: list[str] = []
    token = _failures.set(failures)
    try:
        yield failures
    finally:
        _failures.reset(token)


class QueueUnreachableMiddleware:
    """503 with QUEUE_UNREACHABLE (JSON under /api/) when the view's work is saved
    but could not be handed to the job queue."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with queue_failures() as failures:
            response = self.get_response(request)
        if not failures:
            return response
        return queue_unreachable_response(request)


def queue_unreachable_response(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        body = {"error": "queue_unreachable", "detail": QUEUE_UNREACHABLE, "fields": []}
        response: HttpResponse = JsonResponse(body, status=503)
    else:
        response = render(request, "queue_unreachable.html", {"message": QUEUE_UNREACHABLE})
        response.status_code = 503
    response["Retry-After"] = "60"
    return response

"""Writing the ProductEvent outbox. Callers run inside the transaction of the
change they report; the delivery task is enqueued only after that transaction
commits, so nothing is ever sent for a rolled-back change.

The enqueue itself runs on a thread of its own (one per process): a decision
waited ~2 ms for Celery to publish (a fifth of the review request), and events
committed close together (reviewers, chunks) travel in one job. A job lost
there (the process dies first, the broker is down) loses nothing: the events
are in the outbox and the periodic sweep dispatches every undispatched one."""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import uuid
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from catalog.models import ProductEvent

log = logging.getLogger(__name__)
# By name: catalog must not import the api app that sits above it.
DISPATCH_TASK = "api.tasks.webhook_events_dispatch"


def _send(event_ids: list[int]) -> None:
    from config.celery import app

    try:
        app.send_task(DISPATCH_TASK, args=[event_ids])
    except Exception:  # noqa: BLE001 - the periodic sweep delivers them later
        log.warning("could not enqueue events %s; the sweep will deliver them", event_ids)


class Publisher:
    """Hands event ids to `send` from a daemon thread, at most `batch` per call,
    merging what arrived meanwhile. The thread starts on first use in each
    process (a forked worker gets its own)."""

    def __init__(self, send: Callable[[list[int]], None], batch: int = 500):
        self._send, self._batch = send, batch
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._queue: queue.SimpleQueue[list[int]] = queue.SimpleQueue()

    def put(self, event_ids: list[int]) -> None:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._queue = queue.SimpleQueue()
                    threading.Thread(
                        target=self._run, args=(self._queue,), name="event-publisher", daemon=True
                    ).start()
                    if self._pid is None:
                        atexit.register(self.flush)
                    self._pid = os.getpid()
        self._queue.put(list(event_ids))

    def flush(self) -> None:
        """Send what is still waiting, here and now (at exit: a command's
        events go out with it rather than with the next sweep)."""
        ids: list[int] = []
        while True:
            try:
                ids += self._queue.get_nowait()
            except queue.Empty:
                break
        for start in range(0, len(ids), self._batch):
            try:
                self._send(ids[start : start + self._batch])
            except Exception:  # noqa: BLE001 - the sweep has them
                log.exception("could not enqueue events; the sweep will deliver them")

    def _run(self, pending: queue.SimpleQueue[list[int]]) -> None:
        carry: list[int] = []
        while True:
            ids = carry or pending.get()
            carry = []
            while len(ids) < self._batch:
                try:
                    ids += pending.get_nowait()
                except queue.Empty:
                    break
            ids, carry = ids[: self._batch], ids[self._batch :]
            try:
                self._send(ids)
            except Exception:  # noqa: BLE001 - never let the thread die; the sweep has them
                log.exception("could not enqueue events %s; the sweep will deliver them", ids)


_publisher = Publisher(_send)


def _enqueue(event_ids: list[int]) -> None:
    _publisher.put(event_ids)


def product_event_record(
    *,
    kind: str,
    product_id: int | None = None,
    batch_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> ProductEvent:
    """Add an event to the outbox within the caller's transaction."""
    (event,) = product_events_record(
        [ProductEvent(kind=kind, product_id=product_id, batch_id=batch_id, data=data or {})]
    )
    return event


def product_events_record(events: list[ProductEvent]) -> list[ProductEvent]:
    """Add many events (unsaved rows with kind, product/batch and data) to the
    outbox within the caller's transaction: one INSERT, and one dispatch job
    for all of them once the transaction commits (a worker's chunk of 100
    annotations costs one job, not 100)."""
    if not events:
        return []
    now = timezone.now()
    for event in events:
        event.event_id = uuid.uuid4()
        event.occurred_at = now
    saved = ProductEvent.objects.bulk_create(events)
    ids = [event.pk for event in saved]
    transaction.on_commit(lambda: _enqueue(ids))
    return saved

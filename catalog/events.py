"""Writing the ProductEvent outbox. Callers run inside the transaction of the
change they report; the delivery task is enqueued only after that transaction
commits, so nothing is ever sent for a rolled-back change."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from catalog.models import ProductEvent

log = logging.getLogger(__name__)
# By name: catalog must not import the api app that sits above it.
DISPATCH_TASK = "api.tasks.webhook_events_dispatch"


def _enqueue(event_ids: list[int]) -> None:
    from config.celery import app

    try:
        app.send_task(DISPATCH_TASK, args=[event_ids])
    except Exception:  # noqa: BLE001 - the periodic sweep delivers them later
        log.warning("could not enqueue events %s; the sweep will deliver them", event_ids)


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

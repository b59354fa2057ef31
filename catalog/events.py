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
DISPATCH_TASK = "api.tasks.webhook_event_dispatch"


def _enqueue(event_id: int) -> None:
    from config.celery import app

    try:
        app.send_task(DISPATCH_TASK, args=[event_id])
    except Exception:  # noqa: BLE001 - the periodic sweep delivers it later
        log.warning("could not enqueue event %s; the sweep will deliver it", event_id)


def product_event_record(
    *,
    kind: str,
    product_id: int | None = None,
    batch_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> ProductEvent:
    """Add an event to the outbox within the caller's transaction."""
    event = ProductEvent.objects.create(
        event_id=uuid.uuid4(),
        kind=kind,
        product_id=product_id,
        batch_id=batch_id,
        data=data or {},
        occurred_at=timezone.now(),
    )
    transaction.on_commit(lambda: _enqueue(event.pk))
    return event

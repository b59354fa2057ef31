"""Thin Celery tasks: ids in, a service call, nothing else."""

from __future__ import annotations

from celery import shared_task

from api.services import webhooks


@shared_task(acks_late=True, name="api.tasks.webhook_events_dispatch")
def webhook_events_dispatch(event_ids: list[int]) -> None:
    """Idempotent: an event is fanned out once (dispatched_at)."""
    webhooks.webhook_events_dispatch(event_ids=event_ids)


@shared_task(acks_late=True, name="api.tasks.webhook_event_dispatch")
def webhook_event_dispatch(event_id: int) -> None:
    """The one-event form, kept for messages queued before an upgrade."""
    webhooks.webhook_events_dispatch(event_ids=[event_id])


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def webhook_deliver(delivery_id: int) -> None:
    """Idempotent: a delivery not due (sent, or claimed by another) is skipped."""
    webhooks.webhook_delivery_attempt(delivery_id=delivery_id)


@shared_task
def webhooks_sweep() -> None:
    webhooks.webhooks_sweep()

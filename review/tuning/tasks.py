"""Thin Celery tasks for offline evaluation: ids in, a service call, the
retry policy here. Named explicitly, so they are found by name whichever
module registered them (see config/celery.py for the autodiscovery line)."""

from __future__ import annotations

import logging

from celery import shared_task

from annotator.providers.base import ProviderError
from review.models import EvaluationItem
from review.tuning.services import evaluation_item_run

log = logging.getLogger(__name__)
PROVIDER_RETRY_DELAYS = (30, 120, 600)  # the provider is down: try the item later


@shared_task(name="review.evaluation_run", acks_late=True)
def evaluation_run(run_id: int) -> int:
    """Fan the run out to one task per item not done yet, so many workers
    share it and no task runs into the time limit. A redelivered message
    only queues what is still open."""
    ids = list(
        EvaluationItem.objects.filter(run_id=run_id, done_at__isnull=True)
        .order_by("id")
        .values_list("id", flat=True)
    )
    for item_id in ids:
        evaluation_item.delay(item_id)
    return len(ids)


@shared_task(
    name="review.evaluation_item",
    bind=True,
    acks_late=True,
    max_retries=len(PROVIDER_RETRY_DELAYS),
)
def evaluation_item(self, item_id: int) -> None:
    """Idempotent: an item already done is left alone."""
    item = (
        EvaluationItem.objects.select_related("run__prompt_version", "run__baseline", "product")
        .filter(pk=item_id, done_at__isnull=True)
        .first()
    )
    if item is None:
        return
    final = self.request.retries >= self.max_retries
    try:
        evaluation_item_run(item=item, record_provider_error=final)
    except ProviderError as exc:
        delay = PROVIDER_RETRY_DELAYS[min(self.request.retries, len(PROVIDER_RETRY_DELAYS) - 1)]
        log.warning("evaluation item %s: provider failed (%s); retry in %ss", item_id, exc, delay)
        raise self.retry(countdown=delay) from exc

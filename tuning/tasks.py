"""Thin Celery tasks for offline evaluation: ids in, a service call; the
retry policy is annotator.retrying's, shared with annotation."""

from __future__ import annotations

from celery import shared_task

from annotator.providers.base import ProviderError
from annotator.retrying import PROVIDER_MAX_RETRIES, provider_final_attempt, provider_retry
from tuning.models import EvaluationItem
from tuning.services import evaluation_item_run, evaluation_runs_requeue


@shared_task(acks_late=True)
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


@shared_task(bind=True, acks_late=True, max_retries=PROVIDER_MAX_RETRIES)
def evaluation_item(self, item_id: int) -> None:
    """Idempotent: an item already done is left alone."""
    item = (
        EvaluationItem.objects.select_related("run__prompt_version", "run__baseline", "product")
        .filter(pk=item_id, done_at__isnull=True)
        .first()
    )
    if item is None:
        return
    try:
        evaluation_item_run(item=item, record_provider_error=provider_final_attempt(self))
    except ProviderError as exc:
        raise provider_retry(self, exc, subject=f"evaluation item {item_id}") from exc


@shared_task
def requeue_queued_evaluations() -> int:
    """The recovery sweep's part for evaluations (config/sweeper.py)."""
    return evaluation_runs_requeue()

"""Thin Celery tasks: ids in, pipeline call, retry policy here."""

from __future__ import annotations

from celery import shared_task

from annotator.chunks import annotation_chunk_run
from annotator.providers.base import ProviderError
from annotator.retrying import PROVIDER_MAX_RETRIES, provider_final_attempt, provider_retry


def _chunk_run(task, batch_id: int | None, product_ids: list[int]) -> None:
    outcome = annotation_chunk_run(
        product_ids=product_ids,
        batch_id=batch_id,
        record_provider_error=provider_final_attempt(task),
    )
    if outcome.retry:
        exc = ProviderError(f"no answer for {len(outcome.retry)} products", retryable=True)
        # Only the products still waiting go round again (the others are stored).
        args = (batch_id, outcome.retry)
        raise provider_retry(task, exc, subject=f"batch {batch_id} chunk", args=args)


@shared_task(bind=True, acks_late=True, max_retries=PROVIDER_MAX_RETRIES)
def annotate_chunk(self, batch_id: int | None, product_ids: list[int]) -> None:
    """Annotate a chunk of products with ANNOTATOR_CONCURRENCY calls in flight.

    Idempotent: only products still `annotating` are worked on and stored, so
    a redelivered message (killed worker, re-queue) never annotates twice.
    Products whose provider is down (and no fallback answered) are tried again
    later under annotator.retrying's policy, then recorded as `failed`."""
    _chunk_run(self, batch_id, product_ids)


@shared_task(acks_late=True)
def annotate_product(product_id: int, batch_id: int | None = None) -> None:
    """A product whose image has settled (sent by catalog's intake, by name):
    it joins the next chunk rather than taking a worker process for one call."""
    from annotator.services import annotation_released_add

    annotation_released_add(product_id=product_id, batch_id=batch_id)


@shared_task(acks_late=True)
def annotate_released() -> int:
    """Queue the released products as chunks (see annotate_product)."""
    from annotator.services import annotation_released_dispatch

    return annotation_released_dispatch()


@shared_task
def requeue_stale() -> int:
    from annotator.services import annotation_requeue_stale

    return annotation_requeue_stale()

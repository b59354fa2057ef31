"""Thin Celery tasks: ids in, pipeline call. The provider-down retry schedule is
kept on the products' leases (annotator.chunks), not in countdown messages."""

from __future__ import annotations

from celery import shared_task

from annotator.chunks import annotation_chunk_run


@shared_task(acks_late=True)
def annotate_chunk(batch_id: int | None, product_ids: list[int]) -> None:
    """Annotate a chunk of products with ANNOTATOR_CONCURRENCY calls in flight.

    Idempotent: only products still `annotating` are worked on and stored, so
    a redelivered message (killed worker, re-queue) never annotates twice.
    Products whose provider is down (and no fallback answered) get their next
    try written on their lease under annotator.retrying's policy; the recovery
    sweep queues them when due; the last try records them `failed`."""
    annotation_chunk_run(product_ids=product_ids, batch_id=batch_id)


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


@shared_task
def retries_release() -> int:
    """Queued by the call whose probe found the provider back (annotator.routing)."""
    from annotator.services import annotation_retries_release

    return annotation_retries_release()

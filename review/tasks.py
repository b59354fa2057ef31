"""Thin Celery tasks of the review app."""

from __future__ import annotations

from celery import shared_task

from review.reannotation import fallback_reannotate


@shared_task
def reannotate_fallback() -> int:
    """The products the fallback answered, to their provider again once it is
    back (review.reannotation). Every minute from beat, and queued by a worker
    whose provider answers again after the fallback served. Returns how many
    were queued."""
    batch = fallback_reannotate()
    return batch.total if batch is not None else 0

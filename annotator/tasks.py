"""Thin Celery tasks: ids in, pipeline call, retry policy here."""

from __future__ import annotations

import logging

from celery import shared_task

from annotator.models import AnnotationBatch
from annotator.pipeline import annotation_run
from annotator.providers.base import ProviderError
from catalog.models import Product

log = logging.getLogger(__name__)
PROVIDER_RETRY_DELAYS = (30, 120, 600)  # provider down and no fallback: try later


@shared_task(acks_late=True)
def annotate_chunk(batch_id: int | None, product_ids: list[int]) -> None:
    """Fan a chunk of a batch out to one task per product."""
    for product_id in product_ids:
        annotate_product.delay(product_id, batch_id)


@shared_task(bind=True, acks_late=True, max_retries=len(PROVIDER_RETRY_DELAYS))
def annotate_product(self, product_id: int, batch_id: int | None = None) -> None:
    """Idempotent: only a product still `annotating` is worked on, so a
    redelivered message (killed worker, requeue) never annotates twice."""
    product = Product.objects.filter(pk=product_id, status=Product.Status.ANNOTATING).first()
    if product is None:
        return
    batch = AnnotationBatch.objects.filter(pk=batch_id).first() if batch_id else None
    final = self.request.retries >= self.max_retries
    try:
        annotation_run(product=product, batch=batch, record_provider_error=final)
    except ProviderError as exc:
        delay = PROVIDER_RETRY_DELAYS[min(self.request.retries, len(PROVIDER_RETRY_DELAYS) - 1)]
        log.warning("product %s: provider failed (%s); retry in %ss", product_id, exc, delay)
        raise self.retry(countdown=delay) from exc


@shared_task
def requeue_stale() -> int:
    from annotator.services import annotation_requeue_stale

    return annotation_requeue_stale()

"""Thin Celery tasks: ids in, pipeline call, retry policy here."""

from __future__ import annotations

from celery import shared_task

from annotator.models import AnnotationBatch
from annotator.pipeline import annotation_run
from annotator.providers.base import ProviderError
from annotator.retrying import PROVIDER_MAX_RETRIES, provider_final_attempt, provider_retry
from catalog.intake import annotation_wait
from catalog.models import Product


@shared_task(acks_late=True)
def annotate_chunk(batch_id: int | None, product_ids: list[int]) -> None:
    """Fan a chunk of a batch out to one task per product."""
    for product_id in product_ids:
        annotate_product.delay(product_id, batch_id)


@shared_task(bind=True, acks_late=True, max_retries=PROVIDER_MAX_RETRIES)
def annotate_product(self, product_id: int, batch_id: int | None = None) -> None:
    """Idempotent: only a product still `annotating` is worked on, so a
    redelivered message (killed worker, requeue) never annotates twice."""
    product = Product.objects.filter(pk=product_id, status=Product.Status.ANNOTATING).first()
    if product is None:
        return
    if annotation_wait(product_id=product_id, batch_id=batch_id):
        return  # its image is still being fetched: the intake job queues this again
    batch = AnnotationBatch.objects.filter(pk=batch_id).first() if batch_id else None
    final = provider_final_attempt(self)
    try:
        annotation_run(product=product, batch=batch, record_provider_error=final)
    except ProviderError as exc:
        raise provider_retry(self, exc, subject=f"product {product_id}") from exc


@shared_task
def requeue_stale() -> int:
    from annotator.services import annotation_requeue_stale

    return annotation_requeue_stale()

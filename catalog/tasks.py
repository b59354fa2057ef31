"""Thin Celery tasks: load by id, call the service, own the retry policy."""

from celery import shared_task

from catalog import importers
from catalog.models import ImportRun


@shared_task(acks_late=True)
def import_run_execute(run_id: int) -> None:
    """Execute a browser upload. Idempotent: imports upsert by SKU, so a
    redelivery after a killed worker re-runs safely; a finished run is skipped."""
    run = ImportRun.objects.filter(pk=run_id).first()
    if run is None or run.is_finished:
        return
    importers.import_run_execute_stored(run=run)


@shared_task(acks_late=True)
def images_fetch(image_ids: list[int], images_root: str | None = None) -> None:
    """Fetch images an import queued. Idempotent: ready images are skipped."""
    from pathlib import Path

    from catalog.images import product_image_fetch
    from catalog.models import ProductImage

    for image in ProductImage.objects.filter(pk__in=image_ids).exclude(
        status=ProductImage.Status.READY
    ):
        product_image_fetch(image=image, images_dir=Path(images_root) if images_root else None)

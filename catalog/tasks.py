"""Thin Celery tasks: load by id, call the service, own the retry policy."""

from __future__ import annotations

from pathlib import Path

from celery import shared_task

from catalog import importers
from catalog.intake import HostBusy, image_intake_requeue_stale, image_intake_run
from catalog.models import ImportRun

# A saturated host: try again soon, for up to ~10 minutes; the last try fetches anyway.
HOST_BUSY_DELAY = 0.5
HOST_BUSY_RETRIES = 1200


@shared_task(acks_late=True)
def import_run_execute(run_id: int) -> None:
    """Execute a browser upload. Idempotent: imports upsert by SKU, so a
    redelivery after a killed worker re-runs safely; a finished run is skipped."""
    run = ImportRun.objects.filter(pk=run_id).first()
    if run is None or run.is_finished:
        return
    importers.import_run_execute_stored(run=run)


@shared_task(bind=True, acks_late=True, max_retries=HOST_BUSY_RETRIES)
def image_intake(
    self, image_id: int, images_root: str | None = None, trusted_paths: bool = False
) -> str:
    """Fetch, normalise and store one product image. Idempotent: an image no longer
    pending is skipped, so a redelivered message fetches nothing twice."""
    try:
        return image_intake_run(
            image_id=image_id,
            images_root=Path(images_root) if images_root else None,
            trusted_paths=trusted_paths,
            # The last try fetches whatever the host's load: an image is never left behind.
            bound_host=self.request.retries < self.max_retries,
        )
    except HostBusy as exc:
        raise self.retry(countdown=HOST_BUSY_DELAY) from exc


@shared_task
def requeue_stale_images() -> int:
    return image_intake_requeue_stale()

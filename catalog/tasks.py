"""Thin Celery tasks: load by id, call the service, own the retry policy."""

from __future__ import annotations

from pathlib import Path

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from django.conf import settings
from django.core.cache import cache

from catalog import importers
from catalog.intake import (
    HostBusy,
    image_intake_requeue_stale,
    image_intake_run,
    import_runs_requeue,
)
from catalog.models import ImportRun

# A saturated host: try again soon, for up to ~10 minutes; the last try fetches anyway.
HOST_BUSY_DELAY = 0.5
HOST_BUSY_RETRIES = 1200


def _time_limit_reason(exc: BaseException) -> str | None:
    """The run's message when a Celery time limit stopped it, else None."""
    if isinstance(exc, SoftTimeLimitExceeded):
        seconds = settings.CELERY_TASK_SOFT_TIME_LIMIT
    elif isinstance(exc, TimeLimitExceeded):
        seconds = settings.CELERY_TASK_TIME_LIMIT
    else:
        return None
    return (
        f"the import took longer than {seconds} s and was stopped; "
        "rows imported before that are kept"
    )


class ImportTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        """Past the hard time limit the pool kills the child process, so the task body never
        sees it: Celery calls this in the worker's main process instead."""
        reason = _time_limit_reason(exc) or f"the import stopped on an unexpected error: {exc!r}"
        importers.import_run_fail(run_id=args[0] if args else kwargs["run_id"], reason=reason)


@shared_task(base=ImportTask, acks_late=True)
def import_run_execute(run_id: int) -> None:
    """Execute a browser upload. Idempotent: imports upsert by SKU, so a
    redelivery after a killed worker re-runs safely; a finished run is skipped,
    and so is a run another delivery is executing (the recovery sweep re-sends
    runs still queued). A run stopped by a time limit ends `failed` with the reason."""
    run = ImportRun.objects.filter(pk=run_id).first()
    if run is None or run.is_finished:
        return
    # Held for the longest a task may live: a killed worker's claim is gone
    # before Redis redelivers its message (the visibility timeout is longer).
    claim = f"import-run:{run_id}:running"
    if not cache.add(claim, 1, timeout=settings.CELERY_TASK_TIME_LIMIT + 60):
        return
    try:
        # The run ends failed with the committed rows counted whatever stops it; a time
        # limit is worded as such.
        importers.import_run_execute_stored(run=run, stop_reason=_time_limit_reason)
    except SoftTimeLimitExceeded as exc:  # raised outside the import (opening the upload)
        importers.import_run_fail(run_id=run_id, reason=_time_limit_reason(exc) or "")
    finally:
        cache.delete(claim)


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


@shared_task
def requeue_queued_imports() -> int:
    return import_runs_requeue()

"""Import runs: a file from the CLI or a browser upload, checked, imported and reported
on its ImportRun, which always ends `done` or `failed` with its reason."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.utils import timezone

from accounts.hygiene import control_characters_strip
from catalog.importers.files import ImportFileError, import_file_check, read_records, text_open
from catalog.importers.rows import ImportReport
from catalog.importers.writing import import_rows
from catalog.models import ImportRun
from config.db import db_connections_heal

logger = logging.getLogger(__name__)

_REPORT_FIELDS = (
    "rows_total",
    "rows_created",
    "rows_updated",
    "rows_unchanged",
    "rows_duplicate",
    "rows_failed",
    "images_ready",
    "images_failed",
)


def import_run_execute(
    *,
    run: ImportRun,
    stream: IO[bytes],
    path_base: Path | None = None,
    images_root: Path | None = None,
    allow_paths: bool = True,
    progress: Callable[[int], None] | None = None,
    queue_images: bool = True,
    stop_reason: Callable[[Exception], str | None] | None = None,
) -> ImportRun:
    """Run an import and store its report on `run`; the run always ends `done` or
    `failed` with its reason. A file-level problem fails it before anything is written;
    any other exception (`stop_reason` words those it knows, such as a time limit)
    fails it with the rows committed so far kept and counted."""
    run.status = ImportRun.Status.RUNNING
    run.save(update_fields=["status"])
    report = ImportReport()
    try:
        fmt = import_file_check(stream, run.filename)
        import_rows(
            read_records(text_open(stream), fmt),
            path_base=path_base,
            images_root=images_root,
            allow_paths=allow_paths,
            progress=progress,
            run=run,
            queue_images=queue_images,
            report=report,
        )
        run.status = ImportRun.Status.DONE
    except ImportFileError as exc:
        run.status = ImportRun.Status.FAILED
        run.message = f"{exc}. Nothing was imported."[:500]
    except Exception as exc:  # also Celery's SoftTimeLimitExceeded: never stay "running"
        db_connections_heal()  # the exception may have stopped a query half-way
        reason = stop_reason(exc) if stop_reason else None
        if reason is None:
            logger.exception("import #%s stopped", run.pk)
            reason = (
                f"the import stopped on an unexpected error ({type(exc).__name__}: {exc}); "
                "rows imported before it are kept"
            )
        run.status = ImportRun.Status.FAILED
        run.message = control_characters_strip(reason)[:500]
    for name in _REPORT_FIELDS:
        setattr(run, name, getattr(report, name))
    run.errors = [error.as_dict() for error in sorted(report.errors, key=lambda e: e.line)]
    run.finished_at = timezone.now()
    run.save()
    return run


def import_file(
    *,
    path: Path,
    images_dir: Path | None = None,
    user: Any = None,
    source: str = "cli",
    progress: Callable[[int], None] | None = None,
    queue_images: bool = True,
) -> ImportRun:
    """Import a file from disk (CLI, demo). Relative image paths resolve
    against `images_dir`, else the file's own folder."""
    path = Path(path)
    run = ImportRun.objects.create(created_by=user, source=source, filename=path.name)
    with path.open("rb") as stream:
        return import_run_execute(
            run=run,
            stream=stream,
            path_base=Path(images_dir).resolve() if images_dir else path.resolve().parent,
            progress=progress,
            queue_images=queue_images,
        )


def import_run_create(*, upload: UploadedFile, user: Any) -> ImportRun:
    """Store a browser upload and its run; a worker executes it."""
    run = ImportRun(created_by=user, source="upload", filename=Path(upload.name or "").name)
    run.upload.save(run.filename or "upload.csv", upload, save=False)
    run.save()
    return run


def import_run_execute_stored(
    *, run: ImportRun, stop_reason: Callable[[Exception], str | None] | None = None
) -> ImportRun:
    """Execute a browser upload (called by the worker task)."""
    root = settings.IMAGE_IMPORT_ROOT
    with run.upload.open("rb") as stream:
        return import_run_execute(
            run=run,
            stream=stream,
            images_root=Path(root) if root else None,
            allow_paths=bool(root),
            stop_reason=stop_reason,
        )


def import_run_fail(*, run_id: int, reason: str) -> None:
    """End a run that was stopped from outside (a time limit, a crash) as failed with the
    reason. A run already finished keeps its outcome."""
    db_connections_heal()
    ImportRun.objects.filter(pk=run_id).exclude(
        status__in=[ImportRun.Status.DONE, ImportRun.Status.FAILED]
    ).update(status=ImportRun.Status.FAILED, message=reason[:500], finished_at=timezone.now())

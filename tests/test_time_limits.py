"""Celery time limits fire in a real prefork worker (a subprocess: the solo pool of the
`celery_worker` fixture enforces no hard limit) and the import run ends `failed` with
the reason, whichever limit stopped it. The same worker keeps its database connection
from one task to the next (Celery's Django fixup would close it after each).

The import is made slow by its size (images go to intake jobs since imports queue them,
so a slow image host no longer slows the import itself): 300,000 rows take far longer
than the 2 s limits, so only the time limit can end the task."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from catalog import importers, tasks
from catalog.models import ImportRun, Product
from tests.slow_server import drip_server
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent

# Each test starts a prefork Celery worker process of its own.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@contextmanager
def prefork_worker(*, soft: int, hard: int, log: Path) -> Iterator[subprocess.Popen]:
    """`celery worker --pool prefork` on this test's database, broker queue and media."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "1",
        "DATABASE_URL": _database_url(),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "IMAGE_FETCH_ALLOWED_HOSTS": "127.0.0.1",
        "IMAGE_FETCH_DEADLINE": "120",
        "IMAGE_FETCH_READ_TIMEOUT": "60",
        "CELERY_TASK_SOFT_TIME_LIMIT": str(soft),
        "CELERY_TASK_TIME_LIMIT": str(hard),
        # What the worker sends (its sweeps) stays on this test's queues.
        "CELERY_DEFAULT_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
        "CELERY_IMAGE_QUEUE": settings.CELERY_IMAGE_QUEUE,
    }
    if not settings.REDIS_URL:  # the filesystem broker: share the test's queue folder
        env["CELERY_QUEUE_DIR"] = str(
            Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]).parent
        )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=prefork",
            "--concurrency=1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=INFO",
            "-Q",
            settings.CELERY_TASK_DEFAULT_QUEUE,
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        yield worker
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def _queued_run(url: str) -> ImportRun:
    rows = "".join(f"SLOW-{n},Slow shirt {n},\n" for n in range(300_000))
    upload = SimpleUploadedFile(
        "slow.csv", f"sku,title,image_url\nSLOW,Slow shirt,{url}/shirt.png\n{rows}".encode()
    )
    run = importers.import_run_create(upload=upload, user=None)
    tasks.import_run_execute.delay(run.pk)
    return run


def _assert_counts_are_what_was_committed(run: ImportRun) -> None:
    """Counts are written with each chunk, so they are true however the run was stopped."""
    assert run.rows_created == Product.objects.count()
    assert (run.rows_total, run.rows_failed) == (run.rows_created, 0)


def _finished(run: ImportRun) -> bool:
    run.refresh_from_db()
    return run.is_finished


def test_soft_time_limit_ends_the_import_failed_with_the_reason(tmp_path):
    log = tmp_path / "worker.log"
    with drip_server() as base, prefork_worker(soft=2, hard=10, log=log):
        run = _queued_run(base)
        assert wait_for(lambda: _finished(run), timeout=60), log.read_text()

    assert run.status == ImportRun.Status.FAILED
    assert run.message == (
        "the import took longer than 2 s and was stopped; rows imported before that are kept"
    )
    assert run.finished_at is not None
    _assert_counts_are_what_was_committed(run)


def test_hard_time_limit_kills_the_task_and_ends_the_import_failed(tmp_path):
    # No soft limit (0): only the kill can end this task, as when a task ignores the soft one.
    log = tmp_path / "worker.log"
    with drip_server() as base, prefork_worker(soft=0, hard=2, log=log):
        run = _queued_run(base)
        assert wait_for(lambda: _finished(run), timeout=60), log.read_text()

    assert run.status == ImportRun.Status.FAILED
    assert run.message == (
        "the import took longer than 2 s and was stopped; rows imported before that are kept"
    )
    _assert_counts_are_what_was_committed(run)


def _worker_backends() -> set[tuple[int, str]]:
    """(pid, start) of the database's server processes other than this test's."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, backend_start::text FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return set(cursor.fetchall())


def _succeeded(log: Path, count: int) -> bool:
    return log.read_text().count("succeeded in") >= count


@pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"],
    reason="reads PostgreSQL's pg_stat_activity",
)
def test_a_worker_process_keeps_its_database_connection_across_tasks(tmp_path):
    log = tmp_path / "worker.log"
    with prefork_worker(soft=60, hard=90, log=log):
        tasks.requeue_queued_imports.delay()  # a task that queries the database
        assert wait_for(lambda: _succeeded(log, 1), timeout=60), log.read_text()
        after_first = _worker_backends()
        for _ in range(4):
            tasks.requeue_queued_imports.delay()
        assert wait_for(lambda: _succeeded(log, 5), timeout=60), log.read_text()

        # the server process that served the first task still serves the worker
        assert after_first & _worker_backends(), (after_first, _worker_backends())

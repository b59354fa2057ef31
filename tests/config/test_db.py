"""A signal that stops a query half-way (Celery's soft time limit) leaves psycopg's
connection waiting for that query's answer; db_connections_heal makes the next query
work again, and an import stopped that way still ends failed with its reason."""

from __future__ import annotations

import io
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection

from catalog.importers import import_run_execute
from catalog.models import ImportRun, Product
from config.db import db_connections_heal

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "postgresql" not in settings.DATABASES["default"]["ENGINE"],
        reason="SQLite runs a query to its end before Python handles a signal",
    ),
]


@contextmanager
def soft_time_limit(seconds: float) -> Iterator[None]:
    """Raise SoftTimeLimitExceeded from a signal handler, as Celery's prefork pool does."""

    def stop(signum, frame):
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def query_stopped_half_way() -> None:
    with soft_time_limit(0.2), connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(10)")


def _sleeping_queries() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE query = 'SELECT pg_sleep(10)' AND state = 'active'"
        )
        return cursor.fetchone()[0]


def test_a_connection_stopped_in_a_query_is_replaced_and_the_query_cancelled():
    with pytest.raises(SoftTimeLimitExceeded):
        query_stopped_half_way()
    assert not connection.is_usable()  # psycopg still waits for pg_sleep's answer

    db_connections_heal()

    assert Product.objects.count() == 0
    assert connection.is_usable()
    assert _sleeping_queries() == 0


def test_a_usable_connection_is_kept():
    Product.objects.count()
    kept = connection.connection

    db_connections_heal()

    assert connection.connection is kept


def test_an_import_stopped_in_a_query_ends_failed_with_its_reason_and_counts():
    # given an import whose time runs out in a query after its first chunk of 1,000 rows
    rows = "".join(f"Q{n},Shirt {n}\n" for n in range(1500))
    run = ImportRun.objects.create(source="upload", filename="q.csv")

    def progress(done: int) -> None:
        if done == 1000:
            query_stopped_half_way()

    import_run_execute(
        run=run,
        stream=io.BytesIO(f"sku,title\n{rows}".encode()),
        allow_paths=False,
        progress=progress,
        queue_images=False,
        stop_reason=lambda exc: (
            "stopped by the time limit" if isinstance(exc, SoftTimeLimitExceeded) else None
        ),
    )

    run.refresh_from_db()
    assert (run.status, run.message) == (ImportRun.Status.FAILED, "stopped by the time limit")
    assert run.rows_created == Product.objects.count() == 1000
    assert run.finished_at is not None

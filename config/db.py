"""Database connections in code that a signal can interrupt."""

from __future__ import annotations

from contextlib import suppress

from django.db import connections

CANCEL_TIMEOUT = 5.0  # seconds


def db_connections_heal() -> None:
    """Close every connection that no longer answers, so that the next query opens a
    fresh one. Call it before writing after an exception that a signal raised (Celery's
    soft time limit): it can land inside a database call, and psycopg leaves the
    connection waiting for that call's answer ("another command is already in
    progress" on the next query). The call is cancelled on the server first, as psycopg
    does on Ctrl-C: closing alone leaves it running there, holding its locks, until it
    ends. Inside a transaction Django's atomic() closes a broken connection on its way
    out, so a connection still in one is left to it."""
    for connection in connections.all(initialized_only=True):
        if connection.connection is None or connection.in_atomic_block or connection.is_usable():
            continue
        if connection.vendor == "postgresql":
            with suppress(Exception):  # best effort: the server may be gone too
                connection.connection.cancel_safe(timeout=CANCEL_TIMEOUT)
        connection.close()

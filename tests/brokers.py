"""This process's job queue made unreachable, as when REDIS_URL points at a broker
that is down: publishing fails the way it does in production (kombu's
OperationalError after Celery's publish retries), workers keep the real broker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from config.celery import app

CLOSED_PORT_BROKER = "redis://127.0.0.1:9/0"  # the discard port: nothing listens there


@contextmanager
def broker_unreachable() -> Iterator[None]:
    real, real_transport = app.conf.broker_url, app.conf.broker_transport

    def reset() -> None:
        app._pool = None
        app.amqp._producer_pool = None

    app.conf.broker_url = CLOSED_PORT_BROKER
    # Without REDIS_URL the settings name the filesystem transport, which would
    # win over the URL's scheme and publish to the folder as if nothing were down.
    app.conf.broker_transport = None
    reset()
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.broker_transport = real, real_transport
        reset()

"""The Celery app. Tasks live in each app's tasks.py and are autodiscovered."""

import os

from celery import Celery, states
from celery.signals import (
    before_task_publish,
    task_postrun,
    task_prerun,
    worker_process_init,
    worker_ready,
    worker_shutting_down,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# A worker skips Django's system checks at start-up (`migrate` and `manage.py
# check` run them before a deployment starts workers). Running them imports every
# URL module, view, form and the REST API into every worker process: ~9 MB of
# each and 0.3 s of its start, for code a worker never runs.
os.environ.setdefault("CELERY_SKIP_CHECKS", "1")

app = Celery("loupe")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="loupe.health", ignore_result=False)
def health(token: str) -> str:
    """Round-trip check: a worker echoes the token back through the result store."""
    return token


@before_task_publish.connect
def worker_decides_time_limits(headers: dict | None = None, **kwargs) -> None:
    """Let the worker's CELERY_TASK_(SOFT_)TIME_LIMIT apply, not the publisher's.

    Celery copies the publishing process's defaults into every message, and a worker obeys
    the message over its own settings: limits set on the workers only never fired. No task
    here sets a limit of its own, so the message carries none.
    """
    if headers is not None and "timelimit" in headers:
        headers["timelimit"] = [None, None]


def _in_worker(task) -> bool:
    """Not a task run eagerly in the caller's own thread (its connection is the caller's)."""
    return task is not None and not getattr(task.request, "is_eager", False)


@task_prerun.connect
def database_connections_check(task=None, **kwargs) -> None:
    """Before a task, what Django does before a web request: close connections
    past CONN_MAX_AGE or that failed (CELERY_DB_REUSE_MAX keeps them across tasks)."""
    from django.db import close_old_connections

    if _in_worker(task):
        close_old_connections()


@task_postrun.connect
def database_connections_tidy(task=None, state: str | None = None, **kwargs) -> None:
    """After a task, the same; a failed task may have been stopped inside a query
    (a soft time limit), which leaves the connection unusable without a database
    error Django would notice, so a failure checks the connection itself."""
    from django.db import close_old_connections

    from config.db import db_connections_heal

    if not _in_worker(task):
        return
    if state == states.FAILURE:
        db_connections_heal()
    close_old_connections()


@worker_process_init.connect
def fewer_malloc_arenas(**kwargs) -> None:
    """Each worker process runs many call threads (config/malloc.py)."""
    from config.malloc import malloc_arenas_limit

    malloc_arenas_limit()


@worker_ready.connect
def recovery_sweeper_start(sender=None, **kwargs) -> None:
    """Every worker sweeps (config/sweeper.py): no beat process is needed."""
    from config.sweeper import sweeper_start

    sweeper_start(app, owner=getattr(sender, "hostname", "") or "")


@worker_shutting_down.connect
def recovery_sweeper_stop(**kwargs) -> None:
    from config.sweeper import sweeper_stop

    sweeper_stop()

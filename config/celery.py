"""The Celery app. Tasks live in each app's tasks.py and are autodiscovered."""

import ctypes
import ctypes.util
import os

from celery import Celery
from celery.signals import (
    before_task_publish,
    worker_process_init,
    worker_ready,
    worker_shutting_down,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

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


M_ARENA_MAX = -8  # glibc's mallopt parameters
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 * 1024


@worker_process_init.connect
def malloc_tuned(**kwargs) -> None:
    """A worker process runs ANNOTATOR_CONCURRENCY call threads, each holding
    an image and its request and response buffers (100-500 KB) for a moment.

    - Two malloc arenas, not glibc's eight per core: buffers scattered over
      many arenas stay resident (~12 MB per process).
    - Buffers of 64 KB and more get their own mapping, returned to the system
      when freed: glibc's default threshold climbs to 32 MB after the first
      large frees, and the freed buffers then stay in the heap (~8 MB per
      process at 180 ms, bench/pipeline_bench.py, MALLOC_MMAP_THRESHOLD_=65536
      vs default).

    The MALLOC_ARENA_MAX / MALLOC_MMAP_THRESHOLD_ environment variables win;
    no-op off glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        if not os.environ.get("MALLOC_ARENA_MAX"):
            libc.mallopt(M_ARENA_MAX, 2)
        if not os.environ.get("MALLOC_MMAP_THRESHOLD_"):
            libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError):
        return


@worker_ready.connect
def recovery_sweeper_start(sender=None, **kwargs) -> None:
    """Every worker sweeps (config/sweeper.py): no beat process is needed."""
    from config.sweeper import sweeper_start

    sweeper_start(app, owner=getattr(sender, "hostname", "") or "")


@worker_shutting_down.connect
def recovery_sweeper_stop(**kwargs) -> None:
    from config.sweeper import sweeper_stop

    sweeper_stop()

"""The periodic jobs (recovery sweeps, webhook retries, report rollups) run inside
every worker, so nothing depends on one `celery beat` process being alive.

When a worker is ready, its main process (not its pool children) starts one
daemon thread. Every tick the thread tries, for each periodic job, to take that
job's lock in the shared cache (Redis in production, a file cache on one
machine) for the job's period: the one worker that gets it runs the job, in this
thread, at once (not as a message that would wait behind a backlog of jobs). So
with any number of workers each job runs about once per period, and it runs as
long as one worker is alive. A worker that dies mid-job only delays that job by
one period.

The jobs and periods are CELERY_BEAT_SCHEDULE's: `celery beat` may still send
them (every job is idempotent), it is simply no longer needed.
RECOVERY_SWEEP_SECONDS=0 turns the thread off (then run beat).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import connections

log = logging.getLogger(__name__)

LOCK_PREFIX = "loupe:periodic:"


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    task: str  # a registered Celery task name, called in the sweeper's thread
    period: float  # seconds


def periodic_jobs() -> list[PeriodicJob]:
    """The beat schedule's entries with a period in seconds."""
    jobs = []
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        schedule = entry["schedule"]
        if isinstance(schedule, int | float) and schedule > 0:
            jobs.append(PeriodicJob(name=name, task=entry["task"], period=float(schedule)))
    return jobs


def jobs_run_due(
    jobs: list[PeriodicJob], *, run: Callable[[str], object], owner: str = ""
) -> list[str]:
    """One tick: run each job whose lock this process took (its period long).
    Returns the names of the jobs run. A failing job is logged, the others run."""
    ran = []
    for job in jobs:
        try:
            if not cache.add(f"{LOCK_PREFIX}{job.name}", owner or "1", timeout=max(1, job.period)):
                continue
        except Exception as exc:  # noqa: BLE001 - the shared cache is down: next tick
            log.warning("periodic job %s: shared cache unreachable (%s)", job.name, exc)
            return ran
        try:
            run(job.task)
            ran.append(job.name)
        except Exception:
            log.exception("periodic job %s failed; it runs again next period", job.name)
        finally:
            # No connection stays open between ticks: the pool may fork a new
            # child at any time, and a child must not inherit a live socket.
            connections.close_all()
    return ran


class Sweeper:
    """The daemon thread of one worker process."""

    def __init__(self, *, run: Callable[[str], object], owner: str) -> None:
        self.jobs = periodic_jobs()
        self.run = run
        self.owner = owner
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def tick(self) -> float:
        """Often enough that a job's gap stays close to its period (a quarter of
        the shortest), never busier than once a second."""
        shortest = min((job.period for job in self.jobs), default=60.0)
        return max(1.0, shortest / 4)

    def start(self) -> None:
        if not self.jobs:
            return
        self._thread = threading.Thread(target=self._loop, name="loupe-sweeper", daemon=True)
        self._thread.start()
        log.info(
            "recovery sweeper started: %s",
            ", ".join(f"{job.name} every {job.period:g} s" for job in self.jobs),
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        # A little jitter so workers started together do not all knock at once.
        self._stop.wait(random.uniform(0, 1))
        while not self._stop.is_set():
            jobs_run_due(self.jobs, run=self.run, owner=self.owner)
            self._stop.wait(self.tick)


_sweeper: Sweeper | None = None


def sweeper_start(app, *, owner: str) -> Sweeper | None:
    """Start this worker's sweeper (once per process), unless turned off."""
    global _sweeper
    if settings.RECOVERY_SWEEP_SECONDS <= 0 or _sweeper is not None:
        return None

    def run(task_name: str) -> object:
        return app.tasks[task_name]()

    _sweeper = Sweeper(run=run, owner=owner)
    _sweeper.start()
    return _sweeper


def sweeper_stop() -> None:
    global _sweeper
    if _sweeper is not None:
        _sweeper.stop()
        _sweeper = None

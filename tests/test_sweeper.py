"""The periodic jobs run inside every worker (config/sweeper.py): one worker per
period takes a job's lock in the shared cache and runs it; beat is not needed."""

from __future__ import annotations

from django.core.cache import cache

from config.sweeper import LOCK_PREFIX, PeriodicJob, jobs_run_due, periodic_jobs


def test_the_periodic_jobs_are_the_beat_schedule_with_recovery_every_sweep(settings):
    jobs = {job.name: job for job in periodic_jobs()}

    assert set(jobs) == set(settings.CELERY_BEAT_SCHEDULE)
    for name in (
        "requeue-stale-annotations",
        "requeue-stale-images",
        "requeue-queued-imports",
        "requeue-queued-evaluations",
    ):
        assert jobs[name].period == 30.0  # RECOVERY_SWEEP_SECONDS' default
    assert jobs["webhooks-sweep"].task == "api.tasks.webhooks_sweep"


def test_one_worker_per_period_runs_a_job(db):
    # given two workers ticking at the same moment over one shared cache
    jobs = [PeriodicJob("a", "task.a", 30), PeriodicJob("b", "task.b", 30)]
    ran: list[str] = []

    first = jobs_run_due(jobs, run=ran.append, owner="w1")
    second = jobs_run_due(jobs, run=ran.append, owner="w2")

    # then each job ran once, in the first
    assert (first, second, ran) == (["a", "b"], [], ["task.a", "task.b"])

    # and once the period is over (the lock expired) the next worker runs it
    cache.delete(f"{LOCK_PREFIX}a")
    assert jobs_run_due(jobs, run=ran.append, owner="w2") == ["a"]


def test_a_failing_job_does_not_stop_the_others(db):
    jobs = [PeriodicJob("bad", "task.bad", 30), PeriodicJob("good", "task.good", 30)]
    ran: list[str] = []

    def run(task: str) -> None:
        if task == "task.bad":
            raise RuntimeError("boom")
        ran.append(task)

    assert jobs_run_due(jobs, run=run) == ["good"]
    assert ran == ["task.good"]

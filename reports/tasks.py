"""Beat task keeping the daily rollups current (see reports.rollup)."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from reports.rollup import rollup_day


@shared_task(name="reports.rollup_recent")
def rollup_recent() -> None:
    """Roll up yesterday and today (local days); idempotent."""
    today = timezone.localdate()
    for day in (today - timedelta(days=1), today):
        rollup_day(day)

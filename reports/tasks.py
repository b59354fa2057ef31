"""Beat task keeping the daily and hourly rollups current (see reports.rollup)."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from reports.dates import DateRange
from reports.rollup import OPEN_DAYS, ensure_rolled, hours_advance


@shared_task(name="reports.rollup_recent")
def rollup_recent() -> None:
    """Advance the hourly rows (yesterday and today) to now minus the settling
    time, and give the newest closed day its final daily rollup; idempotent."""
    hours_advance()
    closed = timezone.localdate() - timedelta(days=OPEN_DAYS)
    ensure_rolled(DateRange(closed, closed, timezone.get_default_timezone()))

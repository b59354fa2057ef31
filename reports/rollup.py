"""Daily rollups: the figures of a closed local day, read instead of its raw rows.

A report over a long range reads its past days from AnnotationDay and
DecisionDay and only yesterday and today from the raw rows. rollup_day(day)
rebuilds one day (DELETE, then INSERT of the day's GROUP BY, in one
transaction): idempotent, so the beat task (reports.tasks.rollup_recent) and a
report that finds a day missing may both run it at any time.

A day's rollup is final once it was computed after the day ended plus the
undo window (a decision can be undone up to 10 minutes later); a rollup taken
earlier, or none, is recomputed on demand when a report needs that day."""

from __future__ import annotations

from datetime import date, timedelta

from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from reports.dates import DateRange
from reports.models import (
    AnnotationDay,
    BreakdownDay,
    DecisionDay,
    ErrorDay,
    LatencyDay,
    RollupDay,
)

DAILY = (AnnotationDay, DecisionDay, LatencyDay, BreakdownDay, ErrorDay)

# Decisions can be undone up to 10 minutes after they were taken.
SETTLE = timedelta(minutes=15)
# Yesterday and today are always read from the raw rows.
OPEN_DAYS = 2


def _tz_name() -> str:
    return timezone.get_default_timezone_name()


def rollup_day(day: date) -> None:
    """Rebuild the rollup rows of one local day (settings.TIME_ZONE)."""
    from reports import selectors as s
    from review.models import Decision

    tz_name = _tz_name()
    rng = DateRange(day, day, timezone.get_default_timezone())
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # one rebuild of a day at a time
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", [f"reports:{tz_name}:{day}"]
                )
        rolled_at = timezone.now()
        for model in DAILY:
            model.objects.filter(tz=tz_name, day=day).delete()
        annotations = (
            s.Annotation.objects.filter(s.in_range(rng))
            .values("arm", "model")
            .annotate(**s._annotation_figures())
            .order_by()
        )
        AnnotationDay.objects.bulk_create(
            AnnotationDay(tz=tz_name, day=day, **row) for row in annotations
        )
        decisions = (
            Decision.objects.filter(s.in_range(rng))
            .values("reviewer_id")
            .annotate(
                **s._decision_figures(),
                skipped=Count("id", filter=Q(action=Decision.Action.SKIP)),
                undone=Count("id", filter=Q(undone_at__isnull=False)),
                seconds=Sum("seconds_spent", default=0.0),
            )
            .order_by()
        )
        DecisionDay.objects.bulk_create(
            DecisionDay(tz=tz_name, day=day, **row) for row in decisions
        )
        latency = (
            s.Annotation.objects.filter(s.in_range(rng), status__in=s.ANSWERED)
            .values("arm", bucket=s.latency_bucket())
            .annotate(n=Count("id"))
            .order_by()
        )
        LatencyDay.objects.bulk_create(LatencyDay(tz=tz_name, day=day, **row) for row in latency)
        BreakdownDay.objects.bulk_create(
            BreakdownDay(tz=tz_name, day=day, **row) for row in s.decision_breakdown_raw(rng)
        )
        ErrorDay.objects.bulk_create(
            ErrorDay(tz=tz_name, day=day, arm=arm, kind=kind, n=n)
            for _, arm, kind, n in s.error_counts_raw(rng)
        )
        RollupDay.objects.update_or_create(tz=tz_name, day=day, defaults={"rolled_at": rolled_at})


def split(rng: DateRange, now=None) -> tuple[DateRange | None, DateRange | None]:
    """(closed days read from rollups, open days read from raw rows); either may be None."""
    today = timezone.localtime(now or timezone.now(), rng.tz).date()
    last_closed = today - timedelta(days=OPEN_DAYS)
    closed = open_ = None
    if rng.start <= last_closed:
        closed = DateRange(rng.start, min(rng.end, last_closed), rng.tz)
    if rng.end > last_closed:
        open_ = DateRange(max(rng.start, last_closed + timedelta(days=1)), rng.end, rng.tz)
    return closed, open_


def ensure_rolled(rng: DateRange) -> None:
    """Roll up the days of rng (all closed) that have no final rollup yet."""
    final = {
        day
        for day, rolled_at in RollupDay.objects.filter(
            tz=_tz_name(), day__gte=rng.start, day__lte=rng.end
        ).values_list("day", "rolled_at")
        if rolled_at >= DateRange(day, day, rng.tz).end_at + SETTLE
    }
    for day in rng.dates():
        if day not in final:
            rollup_day(day)


def closed_part(rng: DateRange) -> tuple[DateRange | None, DateRange | None]:
    """split(rng), with the closed days' rollups made current. Ranges in
    another zone than settings.TIME_ZONE are read from raw rows only."""
    if rng.tz_name != _tz_name():
        return None, rng
    closed, open_ = split(rng)
    if closed is not None:
        ensure_rolled(closed)
    return closed, open_

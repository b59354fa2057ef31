"""Rollups: the figures of past days and of today's closed minutes, read
instead of their raw rows.

- Closed days (before yesterday) come from the daily rows (AnnotationDay,
  DecisionDay, ...). rollup_day(day) rebuilds one day (DELETE, then INSERT of
  the day's GROUP BY, in one transaction): idempotent, so the beat task
  (reports.tasks.rollup_recent) and a report that finds a day missing may both
  run it at any time. A day's rollup is final once it was computed after the
  day ended plus settle(); a rollup taken earlier, or none, is recomputed on
  demand when a report needs that day.
- Yesterday and today come from the hourly rows (AnnotationHour, ...), which
  hold exactly the raw rows created in [covered_from, rolled_until) of the
  zone's HourlyWatermark, plus a scan of the raw rows after rolled_until.
  hours_advance() moves the watermark to now - settle(), adding only the rows
  written since: the beat task runs it every few minutes and each report
  page before it reads, so the raw scan is the last ~settle() of rows
  whatever the day's volume. Rows older than settle() no longer change: a
  decision can be undone for REVIEW_UNDO_SECONDS, annotations and
  corrections are written once.

A report page reads the watermark, the hourly rows and the raw tail in one
REPEATABLE READ transaction (selectors.report_reads), so an advance committed
meanwhile is seen either wholly or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Model, Q
from django.utils import timezone

from reports.dates import DateRange
from reports.models import (
    AnnotationDay,
    AnnotationHour,
    BreakdownDay,
    BreakdownHour,
    DecisionDay,
    DecisionHour,
    ErrorDay,
    ErrorHour,
    HourlyWatermark,
    LatencyDay,
    LatencyHour,
    RollupDay,
)

DAILY = (AnnotationDay, DecisionDay, LatencyDay, BreakdownDay, ErrorDay)
HOURLY = (AnnotationHour, DecisionHour, LatencyHour, BreakdownHour, ErrorHour)
# Yesterday and today are never read from daily rows.
OPEN_DAYS = 2


def settle() -> timedelta:
    """How old a raw row must be before it is rolled up: the undo window
    (a decision can be undone that long after it was taken) and a margin."""
    return timedelta(seconds=settings.REVIEW_UNDO_SECONDS) + timedelta(minutes=5)


def _tz_name() -> str:
    # The zone's key, as DateRange.tz_name has it: get_default_timezone_name()
    # answers "+14" for Etc/GMT-14, which no range would ever match.
    return str(timezone.get_default_timezone())


@dataclass(frozen=True)
class Span:
    """A half-open interval of instants [start_at, end_at), bucketed in tz:
    what selectors.in_range and the raw queries need of a DateRange."""

    start_at: datetime
    end_at: datetime
    tz: tzinfo


# --- the grouped figures, shared by the daily and the hourly rows --------------------


def _period_key(value, *, hourly: bool) -> dict:
    from reports.selectors import bucket_key

    key = bucket_key(value)
    if hourly:
        return {"day": key.date(), "hour": key.hour}
    return {"day": key}


def grouped(span: Span | DateRange, *, hourly: bool) -> list[list[dict]]:
    """The rows of each table of DAILY (hourly: HOURLY) for the raw rows of
    span, per local day (and wall-clock hour), without tz."""
    from reports import selectors as s
    from review.models import Decision

    period = s.period_bucket(span, hourly=hourly)
    annotations = (
        s.Annotation.objects.filter(s.in_range(span))
        .annotate(period=period)
        .values("period", "arm", "model")
        .annotate(**s._annotation_figures())
        .order_by()
    )
    decisions = (
        Decision.objects.filter(s.in_range(span))
        .annotate(period=period)
        .values("period", "reviewer_id")
        .annotate(**s._people_figures())
        .order_by()
    )
    latency = (
        s.Annotation.objects.filter(s.in_range(span), status__in=s.ANSWERED)
        .annotate(period=period)
        .values("period", "arm", bucket=s.latency_bucket())
        .annotate(n=Count("id"))
        .order_by()
    )
    tables = [
        [{**_period_key(row.pop("period"), hourly=hourly), **row} for row in rows]
        for rows in (annotations, decisions, latency)
    ]
    tables.append(
        [
            {**_period_key(row.pop("period"), hourly=hourly), **row}
            for row in s.decision_breakdown_raw(span, hourly=hourly, by_period=True)
        ]
    )
    tables.append(
        [
            {**_period_key(period_, hourly=hourly), "arm": arm, "kind": kind, "n": n}
            for period_, arm, kind, n in s.error_counts_raw(span, hourly=hourly)
        ]
    )
    return tables


# --- daily rows ------------------------------------------------------------------


def rollup_day(day: date) -> None:
    """Rebuild the daily rows of one local day (settings.TIME_ZONE)."""
    tz_name = _tz_name()
    rng = DateRange(day, day, timezone.get_default_timezone())
    with transaction.atomic():
        _advisory_lock(f"reports:{tz_name}:{day}")
        rolled_at = timezone.now()
        for model in DAILY:
            model.objects.filter(tz=tz_name, day=day).delete()
        for model, rows in zip(DAILY, grouped(rng, hourly=False), strict=True):
            model.objects.bulk_create(model(tz=tz_name, **row) for row in rows)
        RollupDay.objects.update_or_create(tz=tz_name, day=day, defaults={"rolled_at": rolled_at})


def _advisory_lock(name: str) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [name])


def split(rng: DateRange, now=None) -> tuple[DateRange | None, DateRange | None]:
    """(closed days read from daily rows, open days); either may be None."""
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
        if rolled_at >= DateRange(day, day, rng.tz).end_at + settle()
    }
    for day in rng.dates():
        if day not in final:
            rollup_day(day)


# --- hourly rows -------------------------------------------------------------------

# The additive figures of each hourly table; every other field is part of the key.
SUMS: dict[type[Model], tuple[str, ...]] = {
    AnnotationHour: (
        "annotated",
        "auto_accepted",
        "sent_to_review",
        "failed",
        "calls",
        "requests",
        "cache_hits",
        "image_reuse_hits",
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "cost",
        "parse_errors",
        "provider_errors",
    ),
    DecisionHour: (
        "decided",
        "reviewed",
        "accepted",
        "edited",
        "rejected",
        "skipped",
        "undone",
        "seconds",
    ),
    LatencyHour: ("n",),
    BreakdownHour: ("n",),
    ErrorHour: ("n",),
}


def _merge(model: type[Model], tz_name: str, rows: list[dict]) -> None:
    """Add rows to the model's hourly rows: the hour the watermark stood in
    already has rows for its first minutes, which the new ones add to."""
    if not rows:
        return
    sums = SUMS[model]
    fields = [f.name for f in model._meta.concrete_fields if f.name not in ("id", "tz")]
    keys = [name for name in fields if name not in sums]
    hours = Q()
    for day, hour in {(row["day"], row["hour"]) for row in rows}:
        hours |= Q(day=day, hour=hour)
    touched = model.objects.filter(hours, tz=tz_name)
    merged: dict[tuple, dict] = {}
    for row in [*touched.values(*fields), *rows]:
        key = tuple(row[name] for name in keys)
        if key in merged:
            for name in sums:
                merged[key][name] += row[name]
        else:
            merged[key] = dict(row)
    touched.delete()
    model.objects.bulk_create(model(tz=tz_name, **row) for row in merged.values())


# A report page advances the hourly rows only if nobody did for this long: the
# raw scan it adds is this much longer at worst, and most pages write nothing.
PAGE_ADVANCE_EVERY = timedelta(minutes=1)


def hours_advance(*, now: datetime | None = None, wait: bool = True) -> HourlyWatermark | None:
    """Roll the raw rows written since the watermark, up to now - settle(),
    into the hourly rows. wait=False (a report page) returns None at once when
    another process is advancing, or when an advance ran in the last
    PAGE_ADVANCE_EVERY: the page does not queue behind it."""
    now = now or timezone.now()
    tz, tz_name = timezone.get_default_timezone(), _tz_name()
    recent = HourlyWatermark.objects.filter(tz=tz_name, rolled_at__gt=now - PAGE_ADVANCE_EVERY)
    if not wait and recent.exists():
        return None
    today = timezone.localtime(now, tz).date()
    yesterday_at = DateRange(today - timedelta(days=1), today, tz).start_at
    with transaction.atomic():
        HourlyWatermark.objects.get_or_create(
            tz=tz_name,
            defaults={"covered_from": yesterday_at, "rolled_until": yesterday_at, "rolled_at": now},
        )
        mark = (
            HourlyWatermark.objects.select_for_update(skip_locked=not wait)
            .filter(tz=tz_name)
            .first()
        )
        if mark is None:
            return None
        if mark.rolled_until < yesterday_at:
            # Nothing advanced it for more than a day: the days it missed are
            # closed and read from daily rows, so start again from yesterday.
            for model in HOURLY:
                model.objects.filter(tz=tz_name).delete()
            mark.covered_from = mark.rolled_until = yesterday_at
        target = now - settle()
        if target > mark.rolled_until:
            span = Span(mark.rolled_until, target, tz)
            for model, rows in zip(HOURLY, grouped(span, hourly=True), strict=True):
                _merge(model, tz_name, rows)
            mark.rolled_until = target
        mark.rolled_at = now
        mark.save()
        return mark


@dataclass(frozen=True)
class Parts:
    """Where each part of a range is read from: daily rows for whole closed
    days, hourly rows for whole open days, and raw rows for the rest."""

    days: DateRange | None
    hours: DateRange | None
    raw: Span | DateRange | None


def parts(rng: DateRange, *, hourly: bool = False) -> Parts:
    """The parts of rng, the closed days' rollups made current. A single day
    reported per hour never uses daily rows. Ranges in another zone than
    settings.TIME_ZONE are read from raw rows only."""
    if rng.tz_name != _tz_name():
        return Parts(None, None, rng)
    closed, open_ = (None, rng) if hourly else split(rng)
    if closed is not None:
        ensure_rolled(closed)
    if open_ is None:
        return Parts(closed, None, None)
    mark = HourlyWatermark.objects.filter(tz=rng.tz_name).first()
    if mark is None or open_.start_at < mark.covered_from or mark.rolled_until <= open_.start_at:
        return Parts(closed, None, open_)
    if mark.rolled_until >= open_.end_at:
        return Parts(closed, open_, None)
    return Parts(closed, open_, Span(mark.rolled_until, open_.end_at, rng.tz))


def bring_current(rng: DateRange, *, now: datetime | None = None) -> None:
    """What a report on rng needs written before it reads (in its own
    transactions, before the page's read transaction): closed days' final
    rollups and the hourly rows up to now - settle()."""
    if rng.tz_name != _tz_name():
        return
    now = now or timezone.now()
    closed, open_ = split(rng, now)
    if closed is not None:
        ensure_rolled(closed)
    today = timezone.localtime(now, rng.tz).date()
    if rng.end >= today - timedelta(days=OPEN_DAYS - 1):
        hours_advance(now=now, wait=False)

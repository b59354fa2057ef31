"""Read-only aggregate queries behind the report pages.

Every function here returns aggregates computed by the database (GROUP BY
over an indexed created_at range); no function loads annotation, decision or
correction rows into Python. Days and hours are buckets in the range's time
zone (settings.TIME_ZONE), truncated in SQL (`AT TIME ZONE` on PostgreSQL).

Definitions (shown on the pages too):
- annotated: Annotation rows created in the range; products: distinct products among them;
- auto-accepted / sent to review / failed: those rows by route;
- decided: Decisions accept, edit or reject that were not undone, by created_at;
  reviewed = accept + edit, rejected = reject;
- calls: annotations that reached a provider (status is not image_error);
- latency: annotations a provider answered (status ok or parse_error).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import (
    Aggregate,
    Count,
    F,
    FloatField,
    IntegerField,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.fields.json import KT
from django.db.models.functions import (
    Cast,
    Coalesce,
    Floor,
    Greatest,
    Least,
    Ln,
    TruncDate,
    TruncHour,
)
from django.utils import timezone

from annotator.models import Annotation, PromptVersion
from catalog.models import Category, Product
from reports import rollup
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
    LatencyDay,
    LatencyHour,
)
from review.models import Correction, Decision

A = Annotation
User = get_user_model()
ANSWERED = (A.Status.OK, A.Status.PARSE_ERROR)
# A provider was asked: not an image error, and not an answer reused for the
# same photo (dedupe by sha256), which costs nothing.
CALLED = ~Q(status=A.Status.IMAGE_ERROR) & Q(reused_from__isnull=True)
DECIDED_ACTIONS = (Decision.Action.ACCEPT, Decision.Action.EDIT, Decision.Action.REJECT)
REVIEWED_ACTIONS = (Decision.Action.ACCEPT, Decision.Action.EDIT)
DECIDED = Q(undone_at__isnull=True, action__in=DECIDED_ACTIONS)
PERCENTILES = (0.5, 0.95, 0.99)

# Annotation.errors holds one string per failed attempt, as the providers and
# the router write them: "429 rate limited", "503 server error", "timeout",
# "connection error", and "<provider>: <why>" when an arm failed (or its
# circuit was open) and the fallback answered. LIKE patterns, so PostgreSQL
# and SQLite classify identically; the first match wins.
ERROR_KINDS = (
    ("429", "429 rate limited"),
    ("5xx", "5xx server error"),
    ("timeout", "Timeout"),
    ("connection", "Connection error"),
    ("failover", "Arm failed, fallback used"),
    ("other", "Other"),
)
_KIND_CASE = """CASE
    WHEN {msg} LIKE '429 %%' THEN '429'
    WHEN {msg} LIKE '5__ %%' THEN '5xx'
    WHEN {msg} = 'timeout' OR {msg} LIKE '408 %%' THEN 'timeout'
    WHEN {msg} = 'connection error' THEN 'connection'
    WHEN {msg} LIKE '4__ %%' THEN 'other'
    WHEN {msg} LIKE '%%: %%' THEN 'failover'
    ELSE 'other' END"""


@contextmanager
def report_reads() -> Iterator[None]:
    """Run a page's queries in one transaction, with PostgreSQL's JIT off.

    REPEATABLE READ (when this opens the transaction) gives every query of the
    page one snapshot: the hourly watermark, the hourly rows and the raw rows
    after the watermark agree even if rollup.hours_advance commits meanwhile.
    JIT compiles a query when its estimated cost passes jit_above_cost; these
    aggregates over a range cross that line easily and then spend 30-400 ms
    compiling to save a few. SET LOCAL ends with the transaction."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                if outermost:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cursor.execute("SET LOCAL jit = off")
        yield


def in_range(rng: DateRange | rollup.Span, field: str = "created_at") -> Q:
    return Q(**{f"{field}__gte": rng.start_at, f"{field}__lt": rng.end_at})


def period_bucket(rng: DateRange | rollup.Span, *, hourly: bool, field: str = "created_at"):
    """The local day (or wall-clock hour) of a row, in the range's zone."""
    if hourly:
        return TruncHour(field, tzinfo=rng.tz)
    return TruncDate(field, tzinfo=rng.tz)


def _rolled_rows(
    parts: rollup.Parts,
    models: tuple[type, type],
    by: tuple[str, ...],
    aggregates: dict[str, Any],
    *,
    periods: bool = True,
    hourly: bool = False,
    extra: Q | None = None,
) -> list[dict[str, Any]]:
    """Rows of a daily and an hourly rollup table (models) for parts.days and
    parts.hours, grouped by `by` and, with periods, by "period": the date, or
    the naive local hour when hourly."""
    day_model, hour_model = models
    rows: list[dict[str, Any]] = []
    for model, rng in ((day_model, parts.days), (hour_model, parts.hours)):
        if rng is None:
            continue
        per_hour = hourly and model is hour_model
        group = (("day", "hour") if per_hour else ("day",)) if periods else ()
        qs = (
            model.objects.filter(_rolled(rng), extra or Q())
            .values(*group, *by)
            .annotate(**aggregates)
            .order_by()
        )
        for row in qs:
            if periods:
                day = row.pop("day")
                row["period"] = datetime.combine(day, time(row.pop("hour"))) if per_hour else day
            rows.append(row)
    return rows


def _add(into: dict[Any, dict], key: Any, row: dict[str, Any], names: tuple[str, ...]) -> None:
    """Add row's figures `names` into into[key] (a copy of row the first time)."""
    if key not in into:
        into[key] = dict(row)
        return
    for name in names:
        into[key][name] += row[name]


def bucket_key(value: Any) -> date | datetime | None:
    """A bucket as the ORM or a raw cursor returns it, as a date or a naive
    local hour (the keys of DateRange.buckets)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value) if len(value) > 10 else date.fromisoformat(value)
    if isinstance(value, datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value, value.tzinfo)
        return value.replace(tzinfo=None, minute=0, second=0, microsecond=0)
    return value


# --- percentiles ---------------------------------------------------------------


class PercentileCont(Aggregate):
    """PostgreSQL's percentile_cont(p) WITHIN GROUP (ORDER BY expression)."""

    function = "PERCENTILE_CONT"
    name = "PercentileCont"
    template = "%(function)s(%(percentile)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, percentile: float, **extra: Any):
        if not 0 <= percentile <= 1:
            raise ValueError("percentile must be within [0, 1]")
        super().__init__(expression, percentile=repr(float(percentile)), **extra)


def percentiles(
    qs: QuerySet, *, value: str, group: str | None, ps: tuple[float, ...] = PERCENTILES
) -> dict[Any, tuple[float, ...]]:
    """Continuous percentiles of `value` per `group` (a field or annotation of
    qs; None: one group, key None), interpolated like percentile_cont.

    PostgreSQL computes them with percentile_cont. SQLite (development only)
    has no percentile function, so there a window function ranks the values
    in SQL and picks the two neighbours of each percentile; Python only
    interpolates between those two numbers per group. No rows reach Python on
    either database."""
    qs = qs.order_by()
    if connection.vendor == "postgresql":
        aggregates = {f"p{i}": PercentileCont(value, p) for i, p in enumerate(ps)}
        if group is None:
            row = qs.aggregate(**aggregates)
            if row["p0"] is None:
                return {}
            return {None: tuple(row[f"p{i}"] for i in range(len(ps)))}
        return {
            row[group]: tuple(row[f"p{i}"] for i in range(len(ps)))
            for row in qs.values(group).annotate(**aggregates)
        }
    return _percentiles_ranked(qs, value=value, group=group, ps=ps)


def _percentiles_ranked(
    qs: QuerySet, *, value: str, group: str | None, ps: tuple[float, ...]
) -> dict[Any, tuple[float, ...]]:
    base = qs.values(g=F(group) if group else Value(1), v=F(value))
    try:
        sql, params = base.query.sql_with_params()
    except EmptyResultSet:  # a queryset that can match nothing (.none())
        return {}
    # Row numbers are 1-based: percentile p sits between rows floor(p(n-1))+1 and +2.
    picks = ", ".join(
        f"MAX(CASE WHEN rn = CAST({p!r} * (n - 1) AS INTEGER) + 1 THEN v END), "
        f"MAX(CASE WHEN rn = CAST({p!r} * (n - 1) AS INTEGER) + 2 THEN v END)"
        for p in ps
    )
    query = (
        f"SELECT g, MAX(n), {picks} FROM ("  # noqa: S608 - only numbers are interpolated
        "SELECT g, v, ROW_NUMBER() OVER (PARTITION BY g ORDER BY v) AS rn, "
        "COUNT(*) OVER (PARTITION BY g) AS n "
        f"FROM ({sql}) AS base WHERE v IS NOT NULL) AS ranked GROUP BY g"
    )
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        rows = cursor.fetchall()
    result = {}
    for key, count, *pairs in rows:
        values = []
        for i, p in enumerate(ps):
            low, high = pairs[2 * i], pairs[2 * i + 1]
            position = p * (count - 1)
            fraction = position - int(position)
            values.append(float(low) + fraction * (float(high if high is not None else low) - low))
        result[key if group else None] = tuple(values)
    return result


# --- annotations -----------------------------------------------------------------


def _annotation_figures() -> dict[str, Any]:
    return {
        "annotated": Count("id"),
        "auto_accepted": Count("id", filter=Q(route=A.Route.AUTO_ACCEPTED)),
        "sent_to_review": Count("id", filter=Q(route=A.Route.NEEDS_REVIEW)),
        "failed": Count("id", filter=Q(route=A.Route.FAILED)),
        "calls": Count("id", filter=CALLED),
        "requests": Sum("attempts", filter=CALLED, default=0),
        "cache_hits": Count("id", filter=Q(cached_input_tokens__gt=0)),
        "image_reuse_hits": Count("id", filter=Q(reused_from__isnull=False)),
        "input_tokens": Sum("input_tokens", default=0),
        "cached_input_tokens": Sum("cached_input_tokens", default=0),
        "output_tokens": Sum("output_tokens", default=0),
        "cost": Sum("cost_usd", default=Decimal(0)),
        "parse_errors": Count("id", filter=Q(status=A.Status.PARSE_ERROR)),
        "provider_errors": Count("id", filter=Q(status=A.Status.PROVIDER_ERROR)),
    }


ANNOTATION_FIGURES = tuple(_annotation_figures())


def annotation_buckets(rng: DateRange, *, hourly: bool) -> dict[Any, dict]:
    """Annotation figures per day (or hour). Sum them for the range's totals:
    one scan of the range serves both. Closed days come from the daily rollup."""
    parts = rollup.parts(rng, hourly=hourly)
    result: dict[Any, dict] = {}
    for row in _rolled_rows(
        parts, ANNOTATION_TABLES, (), _rolled_sums(ANNOTATION_FIGURES), hourly=hourly
    ):
        _add(result, row.pop("period"), row, ANNOTATION_FIGURES)
    if parts.raw is not None:
        for key, row in _raw_annotation_buckets(parts.raw, hourly=hourly).items():
            _add(result, key, row, ANNOTATION_FIGURES)
    return result


ANNOTATION_TABLES = (AnnotationDay, AnnotationHour)


def _raw_annotation_buckets(rng: DateRange | rollup.Span, *, hourly: bool) -> dict[Any, dict]:
    rows = (
        Annotation.objects.filter(in_range(rng))
        .annotate(bucket=period_bucket(rng, hourly=hourly))
        .values("bucket")
        .annotate(**_annotation_figures())
        .order_by()
    )
    return {bucket_key(row.pop("bucket")): row for row in rows}


def _rolled(rng: DateRange) -> Q:
    return Q(tz=rng.tz_name, day__gte=rng.start, day__lte=rng.end)


def _rolled_sums(names: tuple[str, ...]) -> dict[str, Any]:
    return {name: Sum(name, default=Decimal(0) if name == "cost" else 0) for name in names}


def annotation_totals(rng: DateRange) -> dict[str, Any]:
    return sum_figures(annotation_buckets(rng, hourly=False), ANNOTATION_FIGURES)


def sum_figures(buckets: dict[Any, dict], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: sum((row[key] for row in buckets.values()), 0) for key in keys}


def annotated_products(rng: DateRange) -> int:
    """Distinct products annotated in the range (a product annotated twice
    counts once). Its own query: COUNT(DISTINCT) forces a sort, which the
    grouped figures above should not pay for."""
    return Annotation.objects.filter(in_range(rng)).aggregate(n=Count("product_id", distinct=True))[
        "n"
    ]


def annotation_groups(rng: DateRange) -> list[dict[str, Any]]:
    """Annotation figures per (day, arm, model): one scan gives the cost page
    its days and its arms (a canary is compared on cost as well as quality)."""
    parts = rollup.parts(rng)
    merged: dict[tuple, dict] = {}
    for row in _rolled_rows(
        parts, ANNOTATION_TABLES, ("arm", "model"), _rolled_sums(ANNOTATION_FIGURES)
    ):
        row["bucket"] = row.pop("period")
        _add(merged, (row["bucket"], row["arm"], row["model"]), row, ANNOTATION_FIGURES)
    if parts.raw is not None:
        rows = (
            Annotation.objects.filter(in_range(parts.raw))
            .annotate(bucket=period_bucket(parts.raw, hourly=False))
            .values("bucket", "arm", "model")
            .annotate(**_annotation_figures())
            .order_by()
        )
        for row in rows:
            row["bucket"] = bucket_key(row["bucket"])
            _add(merged, (row["bucket"], row["arm"], row["model"]), row, ANNOTATION_FIGURES)
    return list(merged.values())


def sum_groups(rows: list[dict[str, Any]], by: tuple[str, ...]) -> dict[Any, dict[str, Any]]:
    """Figures of annotation_groups summed per `by` (a key tuple; one field: the value)."""
    result: dict[Any, dict[str, Any]] = {}
    for row in rows:
        key = row[by[0]] if len(by) == 1 else tuple(row[k] for k in by)
        into = result.setdefault(key, dict.fromkeys(ANNOTATION_FIGURES, 0))
        for name in ANNOTATION_FIGURES:
            into[name] += row[name]
    return result


# Ranges up to this many days get exact percentiles (percentile_cont over the
# raw rows); longer ones interpolate within fixed latency buckets, from the
# daily rollup for closed days: within 5% of the exact value (the page says so).
EXACT_PERCENTILE_DAYS = 7
LATENCY_RATIO = 1.05  # bucket k holds latencies in [1.05**k - 1, 1.05**(k+1) - 1)


def latency_bucket() -> Any:
    return Cast(Floor(Ln(F("latency_ms") + 1) / Value(math.log(LATENCY_RATIO))), IntegerField())


def latency_percentiles(rng: DateRange, *, by: str | None) -> dict[Any, tuple[float, ...]]:
    """p50/p95/p99 of latency_ms of answered calls per day ("day"), per arm
    ("arm") or over the range (None). Exact up to EXACT_PERCENTILE_DAYS days,
    from latency histograms beyond."""
    if rng.days > EXACT_PERCENTILE_DAYS:
        return _histogram_percentiles(rng, by=by)
    answered = Annotation.objects.filter(in_range(rng), status__in=ANSWERED)
    if by == "day":
        answered = answered.annotate(bucket=period_bucket(rng, hourly=False))
        return {
            bucket_key(k): v
            for k, v in percentiles(answered, value="latency_ms", group="bucket").items()
        }
    return percentiles(answered, value="latency_ms", group=by)


def _histogram_percentiles(rng: DateRange, *, by: str | None) -> dict[Any, tuple[float, ...]]:
    counts: dict[Any, dict[int, int]] = {}
    parts = rollup.parts(rng)
    rolled = _rolled_rows(
        parts,
        (LatencyDay, LatencyHour),
        ("arm", "bucket") if by == "arm" else ("bucket",),
        {"n": Sum("n")},
        periods=by == "day",
    )
    for row in rolled:
        key = row.get("period") if by == "day" else row.get("arm")
        into = counts.setdefault(key, {})
        into[row["bucket"]] = into.get(row["bucket"], 0) + row["n"]
    if parts.raw is not None:
        raw = parts.raw
        rows = (
            Annotation.objects.filter(in_range(raw), status__in=ANSWERED)
            .annotate(key=period_bucket(raw, hourly=False) if by == "day" else F(by or "id"))
            .values_list(
                "key" if by else Value(None, output_field=IntegerField()), latency_bucket()
            )
            .annotate(n=Count("id"))
            .order_by()
        )
        for key, bucket, n in rows:
            into = counts.setdefault(bucket_key(key) if by == "day" else key, {})
            into[bucket] = into.get(bucket, 0) + n
    return {key: histogram_percentiles(hist) for key, hist in counts.items() if hist}


def histogram_percentiles(
    hist: dict[int, int], ps: tuple[float, ...] = PERCENTILES
) -> tuple[float, ...]:
    """percentile_cont's position p * (n - 1), placed linearly within its bucket."""
    total = sum(hist.values())
    ordered = sorted(hist.items())
    values = []
    for p in ps:
        position, seen = p * (total - 1), 0
        for bucket, n in ordered:
            if position < seen + n:
                low = max(LATENCY_RATIO**bucket - 1, 0.0)
                high = LATENCY_RATIO ** (bucket + 1) - 1
                values.append(low + (position - seen + 0.5) / n * (high - low))
                break
            seen += n
    return tuple(values)


def error_counts(rng: DateRange) -> list[tuple[date, str, str, int]]:
    """error_counts_raw for what is not rolled up, the rollups for the rest
    (rows may share a group: consumers sum them)."""
    parts = rollup.parts(rng)
    result = [
        (row["period"], row["arm"], row["kind"], row["n"])
        for row in _rolled_rows(parts, (ErrorDay, ErrorHour), ("arm", "kind"), {"n": Sum("n")})
    ]
    if parts.raw is not None:
        result += error_counts_raw(parts.raw)
    return result


def error_counts_raw(
    rng: DateRange | rollup.Span, *, hourly: bool = False
) -> list[tuple[date, str, str, int]]:
    """(day or hour, arm, kind, count) of failed attempts recorded in Annotation.errors,
    classified in SQL: PostgreSQL expands the jsonb array with
    jsonb_array_elements_text, SQLite with json_each."""
    # Most annotations have no errors: leaving them out first also keeps
    # PostgreSQL's estimate (100 elements per array) from inflating the cost.
    base = (
        Annotation.objects.filter(in_range(rng))
        .exclude(errors=[])
        .annotate(bucket=period_bucket(rng, hourly=hourly))
        .values("bucket", "arm", "errors")
        .order_by()
    )
    sql, params = base.query.sql_with_params()
    if connection.vendor == "postgresql":
        elements = (
            "CROSS JOIN LATERAL jsonb_array_elements_text(CASE WHEN "
            "jsonb_typeof(base.errors) = 'array' THEN base.errors ELSE '[]'::jsonb END) AS e(msg)"
        )
        kind = _KIND_CASE.format(msg="e.msg")
    else:
        elements = ", json_each(CASE WHEN json_type(base.errors) = 'array' THEN base.errors "
        elements += "ELSE '[]' END) AS e"
        kind = _KIND_CASE.format(msg="e.value")
    query = (
        f"SELECT base.bucket, base.arm, {kind} AS kind, COUNT(*) "  # noqa: S608 - constants
        f"FROM ({sql}) AS base {elements} GROUP BY 1, 2, 3"
    )
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return [(bucket_key(day), arm, k, n) for day, arm, k, n in cursor.fetchall()]


# --- catalogue and review queue ----------------------------------------------------


def imported_buckets(rng: DateRange, *, hourly: bool) -> dict[Any, int]:
    rows = (
        Product.objects.filter(in_range(rng))
        .annotate(bucket=period_bucket(rng, hourly=hourly))
        .values("bucket")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {bucket_key(row["bucket"]): row["n"] for row in rows}


def backlog() -> tuple[int, datetime | None]:
    """Open review items now and when the oldest of them entered the queue (its
    latest annotation, the one that routed it to review)."""
    entered = (
        Annotation.objects.filter(product=OuterRef("pk")).order_by("-id").values("created_at")[:1]
    )
    figures = (
        Product.objects.filter(status=Product.Status.NEEDS_REVIEW)
        .annotate(entered=Subquery(entered))
        .aggregate(open=Count("id"), oldest=Min("entered"))
    )
    return figures["open"], figures["oldest"]


# --- decisions and people ---------------------------------------------------------


def _decision_figures() -> dict[str, Any]:
    return {
        "decided": Count("id", filter=DECIDED),
        "reviewed": Count("id", filter=DECIDED & Q(action__in=REVIEWED_ACTIONS)),
        "accepted": Count("id", filter=DECIDED & Q(action=Decision.Action.ACCEPT)),
        "edited": Count("id", filter=DECIDED & Q(action=Decision.Action.EDIT)),
        "rejected": Count("id", filter=DECIDED & Q(action=Decision.Action.REJECT)),
    }


PEOPLE_FIGURES = ("decided", "reviewed", "accepted", "edited", "rejected", "skipped", "undone")


def decision_buckets(rng: DateRange, *, hourly: bool) -> dict[Any, dict]:
    parts = rollup.parts(rng, hourly=hourly)
    names = tuple(_decision_figures())
    result: dict[Any, dict] = {}
    for row in _rolled_rows(
        parts,
        DECISION_TABLES,
        (),
        _rolled_sums(names),
        hourly=hourly,
        extra=Q(decided__gt=0),
    ):
        _add(result, row.pop("period"), row, names)
    if parts.raw is not None:
        for key, row in _raw_decision_buckets(parts.raw, hourly=hourly).items():
            _add(result, key, row, names)
    return result


DECISION_TABLES = (DecisionDay, DecisionHour)


def _raw_decision_buckets(rng: DateRange | rollup.Span, *, hourly: bool) -> dict[Any, dict]:
    rows = (
        Decision.objects.filter(in_range(rng), DECIDED)
        .annotate(bucket=period_bucket(rng, hourly=hourly))
        .values("bucket")
        .annotate(**_decision_figures())
        .order_by()
    )
    return {bucket_key(row.pop("bucket")): row for row in rows}


def decision_totals(rng: DateRange) -> dict[str, Any]:
    rows = people(rng)
    totals = {name: sum(row[name] for row in rows) for name in _decision_figures()}
    totals["reviewers"] = sum(1 for row in rows if row["decided"])
    return totals


# A decision counts as at least 1 s and at most 15 min of work: a tab left
# open over lunch is not 2 hours on one item (the lease is 10 minutes anyway).
TIMED_BOUNDS = (1.0, 900.0)


def timed_seconds() -> Any:
    """Seconds a decision took by the server's clock: from the claim (the
    rendering of the item) to the decision, shared among the items of a bulk
    group (Decision.server_seconds). Decisions recorded before the server
    timed them fall back to the page's own count. Bounded to TIMED_BOUNDS."""
    low, high = TIMED_BOUNDS
    value = Coalesce(F("server_seconds"), F("seconds_spent"), output_field=FloatField())
    return Least(Greatest(value, Value(low)), Value(high), output_field=FloatField())


def _people_figures() -> dict[str, Any]:
    return {
        **_decision_figures(),
        "skipped": Count("id", filter=Q(action=Decision.Action.SKIP)),
        "undone": Count("id", filter=Q(undone_at__isnull=False)),
        "seconds": Sum(timed_seconds(), default=0.0),
    }


def people(rng: DateRange) -> list[dict[str, Any]]:
    """Per tagger: items decided, how, the time spent on every decision in the
    range (skips and undone ones too: that time was spent), undos."""
    parts = rollup.parts(rng)
    found = _rolled_rows(
        parts,
        DECISION_TABLES,
        ("reviewer_id",),
        {**_rolled_sums(PEOPLE_FIGURES), "seconds": Sum("seconds", default=0.0)},
        periods=False,
    )
    if parts.raw is not None:
        found += (
            Decision.objects.filter(in_range(parts.raw))
            .values("reviewer_id")
            .annotate(**_people_figures())
            .order_by()
        )
    merged: dict[int, dict[str, Any]] = {}
    for row in found:
        into = merged.setdefault(
            row["reviewer_id"],
            {"reviewer_id": row["reviewer_id"], **dict.fromkeys(PEOPLE_FIGURES, 0), "seconds": 0.0},
        )
        for name in (*PEOPLE_FIGURES, "seconds"):
            into[name] += row[name]
    names = dict(User.objects.filter(id__in=merged).values_list("id", "username"))
    for row in merged.values():
        row["reviewer__username"] = names.get(row["reviewer_id"], "")
    return sorted(merged.values(), key=lambda row: row["reviewer__username"])


def people_totals(rng: DateRange) -> dict[str, Any]:
    rows = people(rng)
    totals: dict[str, Any] = {name: sum(row[name] for row in rows) for name in PEOPLE_FIGURES}
    totals["seconds"] = sum((row["seconds"] for row in rows), 0.0)
    return totals


def median_seconds(rng: DateRange, *, by_reviewer: bool) -> dict[Any, float]:
    """Median timed_seconds of decided items, per reviewer id or overall (key None)."""
    decided = Decision.objects.filter(in_range(rng), DECIDED).annotate(timed=timed_seconds())
    result = percentiles(
        decided, value="timed", group="reviewer_id" if by_reviewer else None, ps=(0.5,)
    )
    return {key: values[0] for key, values in result.items()}


# --- quality -------------------------------------------------------------------


def decision_breakdown(rng: DateRange) -> list[dict[str, Any]]:
    """decision_breakdown_raw for what is not rolled up, the rollups for the
    rest (rows may share a group: consumers sum them)."""
    parts = rollup.parts(rng)
    result = _rolled_rows(
        parts,
        (BreakdownDay, BreakdownHour),
        ("arm", "model", "prompt_version_id", "audit", "action"),
        {"n": Sum("n")},
        periods=False,
    )
    if parts.raw is not None:
        result += decision_breakdown_raw(parts.raw)
    return result


def decision_breakdown_raw(
    rng: DateRange | rollup.Span, *, hourly: bool = False, by_period: bool = False
) -> list[dict[str, Any]]:
    """Decided items (accept, edit, reject; not undone) per action and per the
    arm, model, prompt version and audit flag of the annotation decided on
    (Decision.annotation: the product's latest annotation when the decision
    was taken). A few dozen groups, which the pages sum per dimension.

    Raw SQL for one reason: joined the ORM way, PostgreSQL hashes the whole
    annotation table to match a week of decisions. A LATERAL subquery with
    OFFSET 0 (which the planner does not flatten) makes it one primary-key
    probe per decision. SQLite joins by index lookups anyway.

    by_period: each row also has "period", its local day (hourly: hour)."""
    base = Decision.objects.filter(in_range(rng), DECIDED)
    if by_period:
        base = base.annotate(period=period_bucket(rng, hourly=hourly))
    base = base.values("action", "annotation_id", *(("period",) if by_period else ()))
    sql, params = base.order_by().query.sql_with_params()
    # Only the quoted table name and the ORM's own SQL are interpolated.
    table = connection.ops.quote_name(Annotation._meta.db_table)
    if connection.vendor == "postgresql":
        join = (
            "LEFT JOIN LATERAL (SELECT arm, model, prompt_version_id, review_reason "  # noqa: S608
            f"FROM {table} WHERE id = base.annotation_id OFFSET 0) AS a ON true"
        )
    else:
        join = f"LEFT JOIN {table} AS a ON a.id = base.annotation_id"
    query = (
        "SELECT a.arm, a.model, a.prompt_version_id, a.review_reason = %s, "  # noqa: S608
        f"base.action, {'base.period' if by_period else 'NULL'}, COUNT(*) "
        f"FROM ({sql}) AS base {join} GROUP BY 1, 2, 3, 4, 5{', 6' if by_period else ''}"
    )
    with connection.cursor() as cursor:
        cursor.execute(query, [A.Reason.AUDIT, *params])
        rows = cursor.fetchall()
    return [
        {
            "arm": arm,
            "model": model,
            "prompt_version_id": prompt,
            "audit": bool(audit),
            "action": action,
            "n": n,
            **({"period": period} if by_period else {}),
        }
        for arm, model, prompt, audit, action, period, n in rows
    ]


# Correction.category is the final category the reviewer saved, which
# Decision.after records: the denominator for a category is read from there.
CORRECTION_FIELDS = {
    "field": "field",
    "category": "category_id",
    "model": "model",
    "prompt": "prompt_version_id",
    "arm": "arm",
}


def correction_counts(rng: DateRange, *, by: str) -> dict[Any, int]:
    rows = (
        Correction.objects.filter(in_range(rng))
        .values(key=F(CORRECTION_FIELDS[by]))
        .annotate(n=Count("id"))
        .order_by()
    )
    return {row["key"]: row["n"] for row in rows}


def reviewed_by_category(rng: DateRange) -> dict[int | None, dict[str, int]]:
    """Reviewed (accept + edit, not undone) decisions per final category."""
    rows = (
        Decision.objects.filter(in_range(rng), undone_at__isnull=True, action__in=REVIEWED_ACTIONS)
        .values(key=Cast(KT("after__category_id"), IntegerField()))
        .annotate(reviewed=Count("id"), edited=Count("id", filter=Q(action=Decision.Action.EDIT)))
        .order_by()
    )
    return {row.pop("key"): row for row in rows}


def prompt_versions(ids: list[int]) -> dict[int, int]:
    return dict(PromptVersion.objects.filter(id__in=ids).values_list("id", "version"))


def category_paths(ids: list[int]) -> dict[int, str]:
    return dict(Category.objects.filter(id__in=ids).values_list("id", "path"))

"""Daily rollups: rollup_day rebuilds a day idempotently, and a report read
from rollups for closed days equals the same report read from raw rows."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from reports import rollup
from reports import selectors as s
from reports.dates import DateRange
from reports.models import AnnotationDay, DecisionDay, RollupDay
from tests.factories import UserFactory
from tests.reports.conftest import make_annotation, make_decision, report_figures

pytestmark = pytest.mark.django_db


def _at(day, hour: int, minute: int = 0) -> datetime:
    tz = timezone.get_default_timezone()
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)


def _snapshot() -> list[tuple]:
    a = AnnotationDay.objects.order_by("day", "arm", "model").values_list()
    d = DecisionDay.objects.order_by("day", "reviewer_id").values_list()
    return [row[1:] for row in a] + [row[1:] for row in d]  # without ids


@pytest.fixture
def spread(reviewer):
    """Rows on closed days (incl. 00:30 and 23:30 local), yesterday and today."""
    ada, bob = UserFactory(username="ada"), UserFactory(username="bob")
    today = timezone.localdate()
    now = timezone.now()
    for back in (20, 9, 5, 3, 1):
        day = today - timedelta(days=back)
        for hour, minute in ((0, 30), (12, 0), (23, 30)):
            at = _at(day, hour, minute)
            make_annotation(at=at, cost="0.01", input_tokens=100, latency_ms=100 + back)
            make_annotation(
                at=at,
                arm="canary",
                model="other",
                route="needs_review",
                status="parse_error",
                cost="0.02",
                attempts=2,
                errors=["429 rate limited"],
            )
            make_annotation(at=at, route="failed", status="image_error")
            stamp = at.strftime("%Y-%m-%d %H:%M")
            make_decision(at=stamp, reviewer=ada, action="accept", seconds=10 + back)
            make_decision(at=stamp, reviewer=bob, action="edit", seconds=30)
            make_decision(at=stamp, reviewer=bob, action="skip", seconds=5)
            make_decision(at=stamp, reviewer=ada, action="reject", seconds=7, undone=True)
    make_annotation(at=now - timedelta(minutes=1), cost="0.05")
    make_decision(
        at=timezone.localtime(now - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M"),
        reviewer=bob,
        action="accept",
    )
    return ada, bob


def test_rollup_day_is_idempotent(spread):
    day = timezone.localdate() - timedelta(days=5)

    rollup.rollup_day(day)
    first = _snapshot()
    rollup.rollup_day(day)

    assert _snapshot() == first
    assert RollupDay.objects.filter(day=day).count() == 1
    figures = AnnotationDay.objects.get(day=day, arm="primary", model="gpt-4o-mini")
    assert (figures.annotated, figures.calls, figures.input_tokens) == (6, 3, 300)
    assert sum(d.decided for d in DecisionDay.objects.filter(day=day)) == 6


def test_report_from_rollups_equals_report_from_raw_rows(spread, monkeypatch):
    today = timezone.localdate()
    rng = DateRange(today - timedelta(days=29), today, timezone.get_default_timezone())

    now = timezone.now()  # one instant: per-day rates depend on it
    from_rollups = report_figures(rng, now)
    assert RollupDay.objects.count() == 28  # every closed day, empty ones included
    monkeypatch.setattr(rollup, "parts", lambda rng, hourly=False: rollup.Parts(None, None, rng))
    from_raw = report_figures(rng, now)

    assert from_rollups["selectors"] == from_raw["selectors"]
    assert from_rollups["tables"] == from_raw["tables"]
    assert from_raw["selectors"]["annotation_totals"]["annotated"] == 5 * 9 + 1
    assert from_raw["selectors"]["decision_totals"]["decided"] == 5 * 6 + 1


def test_an_early_rollup_is_recomputed_a_final_one_is_not(spread):
    day = timezone.localdate() - timedelta(days=5)
    rng = DateRange(day, day, timezone.get_default_timezone())
    wide = DateRange(day, day + timedelta(days=2), rng.tz)  # 5 and 3 days ago

    rollup.rollup_day(day)
    RollupDay.objects.filter(day=day).update(rolled_at=_at(day, 23, 55))  # before it settled
    make_annotation(at=_at(day, 15))
    assert s.annotation_totals(wide)["annotated"] == 9 + 1 + 9

    make_annotation(at=_at(day, 16))  # after a final rollup: not seen (days settle)
    assert s.annotation_totals(wide)["annotated"] == 9 + 1 + 9
    rollup.rollup_day(day)
    assert s.annotation_totals(wide)["annotated"] == 9 + 2 + 9


def test_beat_task_advances_the_hours_and_rolls_up_the_newest_closed_day(spread):
    from reports.models import AnnotationHour, HourlyWatermark
    from reports.tasks import rollup_recent

    rollup_recent()

    today = timezone.localdate()
    assert set(RollupDay.objects.values_list("day", flat=True)) == {today - timedelta(days=2)}
    mark = HourlyWatermark.objects.get()
    assert abs(mark.rolled_until - (timezone.now() - rollup.settle())).total_seconds() < 60
    assert sum(AnnotationHour.objects.values_list("annotated", flat=True)) == 9  # yesterday


def test_long_ranges_interpolate_percentiles_within_five_percent(reviewer):
    day = timezone.localdate() - timedelta(days=4)
    for i in range(200):
        make_annotation(at=_at(day, 10), arm="primary", latency_ms=50 + 37 * i)
    tz = timezone.get_default_timezone()
    short = DateRange(day - timedelta(days=6), day, tz)  # 7 days: exact
    long = DateRange(day - timedelta(days=7), day, tz)  # 8 days: histogram

    exact = s.latency_percentiles(short, by=None)[None]
    approx = s.latency_percentiles(long, by=None)[None]

    assert (
        exact
        == s.percentiles(s.Annotation.objects.filter(status="ok"), value="latency_ms", group=None)[
            None
        ]
    )
    for e, a in zip(exact, approx, strict=True):
        assert abs(a - e) <= 0.05 * e
    assert s.latency_percentiles(long, by="arm").keys() == {"primary"}
    assert s.latency_percentiles(long, by="day").keys() == {day}

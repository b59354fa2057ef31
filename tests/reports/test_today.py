"""Reports on today's data: the hourly rows, advanced a few minutes behind the
clock, and a scan of the rows after them give the figures the raw rows give;
items per hour come from the server's timing, bounded."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from reports import rollup
from reports import selectors as s
from reports.dates import DateRange
from reports.models import AnnotationHour, DecisionHour, HourlyWatermark
from tests.factories import UserFactory
from tests.reports.conftest import (
    figures,
    make_annotation,
    make_correction,
    make_decision,
    report_figures,
    table_rows,
)

pytestmark = pytest.mark.django_db

# Row times of the fixture (local hours and minutes) and the three clocks of
# the tests: the hourly rows are advanced at 12:10 and 16:07 (so they reach
# 11:55 and 15:52: the settling time is 15 minutes) and read at 18:00.
YESTERDAY_TIMES = ((9, 10), (23, 50))
TODAY_TIMES = ((0, 20), (7, 5), (11, 50), (11, 58), (13, 30), (15, 40), (15, 55), (17, 30))


def _at(day, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=timezone.get_default_timezone())


def _today(hour: int, minute: int = 0) -> datetime:
    return _at(timezone.localdate(), hour, minute)


def _rows_at(at: datetime, ada, bob) -> None:
    """Four annotations and four decisions (one edit corrected) at one time."""
    make_annotation(at=at, cost="0.01", input_tokens=100, output_tokens=20, latency_ms=400)
    make_annotation(
        at=at,
        arm="canary",
        model="other",
        route="needs_review",
        reason="audit",
        status="parse_error",
        cost="0.02",
        attempts=2,
        latency_ms=900,
        errors=["429 rate limited"],
    )
    make_annotation(at=at, route="failed", status="image_error")
    audit = make_annotation(
        at=at - timedelta(minutes=1), route="needs_review", reason="audit", latency_ms=700
    )
    make_decision(at=at, reviewer=ada, action="accept", server_seconds=30, annotation=audit)
    edit = make_decision(at=at, reviewer=bob, action="edit", server_seconds=0.2)  # 1 s
    make_correction(edit, field="color")
    make_decision(at=at, reviewer=ada, action="reject", server_seconds=5000, undone=True)  # 900
    make_decision(at=at, reviewer=bob, action="skip", seconds=12)  # untimed: the hint


@pytest.fixture
def busy_today(db):
    ada, bob = UserFactory(username="cyd"), UserFactory(username="dee")
    yesterday = timezone.localdate() - timedelta(days=1)
    for hour, minute in YESTERDAY_TIMES:
        _rows_at(_at(yesterday, hour, minute), ada, bob)
    for hour, minute in TODAY_TIMES:
        _rows_at(_today(hour, minute), ada, bob)
    return ada, bob


def _advance_twice() -> None:
    rollup.hours_advance(now=_today(12, 10))
    rollup.hours_advance(now=_today(16, 7))


def _raw_only(monkeypatch) -> None:
    monkeypatch.setattr(rollup, "parts", lambda rng, hourly=False: rollup.Parts(None, None, rng))


@pytest.mark.parametrize("days", [1, 2], ids=["today per hour", "yesterday and today"])
def test_a_report_over_today_is_the_same_from_the_rollups_and_from_raw_rows(
    busy_today, monkeypatch, days
):
    # given the hourly rows advanced twice, the second time mid-hour
    _advance_twice()
    today = timezone.localdate()
    rng = DateRange(today - timedelta(days=days - 1), today, timezone.get_default_timezone())
    now = _today(18)
    parts = rollup.parts(rng, hourly=rng.hourly)
    assert (parts.hours, parts.raw.start_at) == (rng, _today(15, 52))

    # when read through the rollups and from the raw rows alone
    from_rollups = report_figures(rng, now)
    _raw_only(monkeypatch)
    from_raw = report_figures(rng, now)

    # then every figure agrees, and agrees with counting the rows by hand
    assert from_rollups == from_raw
    times = len(TODAY_TIMES) + (len(YESTERDAY_TIMES) if days == 2 else 0)
    totals = from_rollups["selectors"]["annotation_totals"]
    assert (totals["annotated"], totals["calls"], totals["failed"]) == (4 * times, 3 * times, times)
    assert totals["cost"] == Decimal("0.03") * times
    people = from_rollups["selectors"]["people_totals"]
    assert (people["decided"], people["skipped"], people["undone"]) == (2 * times, times, times)
    # accept 30 s, edit 0.2 s -> 1 s, reject 5,000 s -> 900 s, skip untimed: its 12 s hint
    assert people["seconds"] == pytest.approx((30 + 1 + 900 + 12) * times)


def test_today_per_hour_adds_the_rows_after_the_watermark_to_its_hour(busy_today):
    _advance_twice()
    rng = DateRange(timezone.localdate(), timezone.localdate(), timezone.get_default_timezone())

    hours = s.annotation_buckets(rng, hourly=True)

    naive = {at: row["annotated"] for at, row in hours.items()}
    day = timezone.localdate()
    # 11:50 and 11:58 (two advances, one hour row); 15:40 rolled, 15:55 raw
    assert naive[datetime.combine(day, time(11))] == 8
    assert naive[datetime.combine(day, time(15))] == 8
    assert naive[datetime.combine(day, time(17))] == 4
    assert AnnotationHour.objects.filter(day=day, hour=11).count() == 2  # one per arm and model
    assert not AnnotationHour.objects.filter(day=day, hour=17).exists()


def test_the_report_reads_the_hourly_rows_not_the_raw_rows_behind_them(busy_today):
    # given the hourly rows up to 15:52, then a row stamped before that
    # (what no real write does: rows are stamped when written)
    _advance_twice()
    rng = DateRange(timezone.localdate(), timezone.localdate(), timezone.get_default_timezone())
    before = s.annotation_totals(rng)["annotated"]

    make_annotation(at=_today(10))
    make_annotation(at=_today(16))  # after the watermark: read raw

    assert s.annotation_totals(rng)["annotated"] == before + 1


def test_advancing_again_at_the_same_time_changes_nothing(busy_today):
    _advance_twice()
    snapshot = sorted(
        DecisionHour.objects.values_list("day", "hour", "reviewer_id", "decided", "seconds")
    )

    rollup.hours_advance(now=_today(16, 7))

    assert snapshot == sorted(
        DecisionHour.objects.values_list("day", "hour", "reviewer_id", "decided", "seconds")
    )
    assert HourlyWatermark.objects.get().rolled_until == _today(15, 52)


def test_a_watermark_more_than_a_day_behind_starts_again_from_yesterday(busy_today):
    old = timezone.localdate() - timedelta(days=5)
    HourlyWatermark.objects.create(
        tz=str(timezone.get_default_timezone()),
        covered_from=_at(old, 0),
        rolled_until=_at(old, 6),
        rolled_at=_at(old, 6),
    )
    AnnotationHour.objects.create(
        tz=str(timezone.get_default_timezone()), day=old, hour=3, arm="primary", annotated=7
    )

    mark = rollup.hours_advance(now=_today(12, 10))

    yesterday = timezone.localdate() - timedelta(days=1)
    assert (mark.covered_from, mark.rolled_until) == (_at(yesterday, 0), _today(11, 55))
    assert not AnnotationHour.objects.filter(day=old).exists()
    assert sum(AnnotationHour.objects.values_list("annotated", flat=True)) == 4 * (2 + 3)


def test_the_page_advances_the_hourly_rows_before_reading(client, manager, busy_today):
    client.force_login(manager)
    today = timezone.localdate().isoformat()

    response = client.get(reverse("reports:throughput"), {"start": today, "end": today})

    assert response.status_code == 200
    mark = HourlyWatermark.objects.get()
    assert abs((mark.rolled_until - (timezone.now() - rollup.settle())).total_seconds()) < 60
    rows = {row[0]: row for row in table_rows(response, "throughput")}
    assert rows["Total"][2] == str(4 * len(TODAY_TIMES))  # annotated today


def test_items_per_hour_use_the_servers_bounded_timing(client, manager):
    # given ada's four decisions: timed 30 s, 0.2 s (counts 1 s) and 4,000 s
    # (counts 900 s) by the server; one from before the server timed them
    # (its page's 9 s); the page claiming 0.01 s each time is not believed
    ada = UserFactory(username="ada")
    make_decision(at="2025-03-10 09:00", reviewer=ada, seconds=0.01, server_seconds=30)
    make_decision(at="2025-03-10 09:05", reviewer=ada, seconds=0.01, server_seconds=0.2)
    make_decision(at="2025-03-10 09:30", reviewer=ada, seconds=0.01, server_seconds=4000)
    make_decision(at="2025-03-10 09:40", reviewer=ada, seconds=9)
    client.force_login(manager)

    response = client.get(reverse("reports:people"), {"start": "2025-03-10", "end": "2025-03-10"})

    # 4 items / (940 s / 3,600) = 15.3 per hour; median of 1, 9, 30, 900 = 19.5 s
    shown = figures(response)
    assert shown["Team items per hour"] == "15.3"
    assert shown["Median seconds per item"] == "19.5"
    assert b"measured by the server" in response.content


def test_a_fixed_offset_zone_reads_its_hourly_rows(settings, busy_today):
    # Etc/GMT-14 calls itself "+14"; rollups and ranges must agree on its name
    settings.TIME_ZONE = "Etc/GMT-14"
    rollup.hours_advance()
    tz = timezone.get_default_timezone()
    today = timezone.localdate()

    parts = rollup.parts(DateRange(today, today, tz), hourly=True)

    assert HourlyWatermark.objects.get().tz == "Etc/GMT-14"
    assert parts.hours == DateRange(today, today, tz)

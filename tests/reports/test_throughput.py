"""Throughput: counts per day and per hour, the range boundaries in the
server's time zone, the backlog and its projection."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.urls import reverse

from reports import pages
from reports.dates import DateRange
from reports.selectors import report_reads
from tests.reports.conftest import (
    figures,
    html_tables,
    local,
    make_annotation,
    make_decision,
    make_product,
    table_rows,
)

pytestmark = pytest.mark.django_db

URL = reverse("reports:throughput")
WEEK = {"start": "2025-03-10", "end": "2025-03-12"}


@pytest.fixture
def three_days(reviewer):
    """Rows on 10-12 March 2025 and just outside, in Berlin time."""
    make_product(at="2025-03-09 23:30")  # out: the day before (22:30 UTC)
    make_product(at="2025-03-10 00:30")  # in, although 9 March in UTC
    make_product(at="2025-03-12 23:30")
    make_product(at="2025-03-13 00:30")  # out, although 12 March in UTC

    make_annotation(at="2025-03-09 23:59:59")  # out
    make_annotation(at="2025-03-10 00:00")  # first instant of the range
    make_annotation(at="2025-03-10 09:00")
    make_annotation(at="2025-03-10 10:00", route="needs_review", reason="low_confidence")
    make_annotation(at="2025-03-10 11:00", route="failed", status="image_error")
    twice = make_product()
    make_annotation(twice, at="2025-03-11 08:00")
    make_annotation(twice, at="2025-03-11 09:00")
    make_annotation(at="2025-03-12 23:30", route="needs_review", reason="low_confidence")
    make_annotation(at="2025-03-13 00:30", route="needs_review", reason="audit")  # out

    make_decision(at="2025-03-09 23:30", reviewer=reviewer, action="reject")  # out
    make_decision(at="2025-03-11 10:00", reviewer=reviewer, action="accept")
    make_decision(at="2025-03-11 11:00", reviewer=reviewer, action="edit")
    make_decision(at="2025-03-11 12:00", reviewer=reviewer, action="reject")
    make_decision(at="2025-03-11 13:00", reviewer=reviewer, action="skip")
    make_decision(at="2025-03-11 14:00", reviewer=reviewer, action="accept", undone=True)
    make_decision(at="2025-03-12 23:59", reviewer=reviewer, action="accept")
    make_decision(at="2025-03-13 00:30", reviewer=reviewer, action="accept")  # out


def test_counts_per_day_are_inclusive_and_in_the_server_time_zone(client, manager, three_days):
    client.force_login(manager)

    response = client.get(URL, WEEK)

    assert response.status_code == 200
    assert html_tables(response)["throughput"]["rows"][0] == [
        "Day",
        "Imported",
        "Annotated",
        "Auto-accepted",
        "Sent to review",
        "Failed",
        "Reviewed",
        "Rejected",
    ]
    assert table_rows(response, "throughput") == [
        ["2025-03-10", "1", "4", "2", "1", "1", "0", "0"],
        ["2025-03-11", "0", "2", "2", "0", "0", "2", "1"],
        ["2025-03-12", "1", "1", "0", "1", "0", "1", "0"],
        ["Total", "2", "7", "4", "2", "1", "3", "1"],
    ]
    assert figures(response)["Distinct products annotated"] == "6"
    assert b"Dates in <strong>Europe/Berlin</strong>" in response.content


def test_a_single_day_is_shown_per_hour(client, manager, three_days):
    client.force_login(manager)

    response = client.get(URL, {"start": "2025-03-12", "end": "2025-03-12"})

    rows = table_rows(response, "throughput")
    assert len(rows) == 25  # 24 hours and the total
    assert rows[0] == ["2025-03-12 00:00", "0", "0", "0", "0", "0", "0", "0"]
    assert rows[23] == ["2025-03-12 23:00", "1", "1", "0", "1", "0", "1", "0"]
    assert rows[24] == ["Total", "1", "1", "0", "1", "0", "1", "0"]


def test_hours_follow_the_clock_change(client, manager):
    # 26 October 2025, Berlin: 02:00-03:00 happens twice (CEST, then CET).
    make_annotation(at=datetime(2025, 10, 26, 0, 30, tzinfo=UTC))  # 02:30 CEST
    make_annotation(at=datetime(2025, 10, 26, 1, 30, tzinfo=UTC))  # 02:30 CET
    make_annotation(at=datetime(2025, 10, 26, 2, 30, tzinfo=UTC))  # 03:30 CET
    client.force_login(manager)

    response = client.get(URL, {"start": "2025-10-26", "end": "2025-10-26"})

    rows = {row[0]: row[2] for row in table_rows(response, "throughput")}
    assert len(rows) == 25  # 24 wall-clock hours and the total
    assert (rows["2025-10-26 02:00"], rows["2025-10-26 03:00"], rows["Total"]) == ("2", "1", "3")


@pytest.fixture
def backlog(reviewer):
    """Four products waiting for review; over 10-12 March three came into the
    queue and nine were decided."""
    waiting = [make_product(status="needs_review") for _ in range(4)]
    # Re-annotated: only its latest annotation counts as its entry to the queue.
    make_annotation(waiting[0], at="2025-03-05 08:00", route="needs_review", reason="audit")
    make_annotation(waiting[0], at="2025-03-11 12:00", route="needs_review", reason="audit")
    make_annotation(waiting[1], at="2025-03-09 10:00", route="needs_review", reason="audit")
    make_annotation(waiting[2], at="2025-03-12 10:00", route="needs_review", reason="audit")
    make_annotation(waiting[3], at="2025-03-12 11:00", route="needs_review", reason="audit")
    done = make_product(status="reviewed")
    make_annotation(done, at="2025-03-01 08:00", route="needs_review", reason="audit")
    for day in ("10", "11", "12"):
        for hour in ("09", "10", "11"):
            make_decision(at=f"2025-03-{day} {hour}:00", reviewer=reviewer)
    make_decision(at="2025-03-12 12:00", reviewer=reviewer, undone=True)
    make_decision(at="2025-03-12 13:00", reviewer=reviewer, action="skip")


def shown(report) -> dict[str, str]:
    table = report.figures
    return {row["label"]: table.cells(row)[1] for row in table.rows}


def test_backlog_oldest_item_and_when_it_clears(backlog):
    rng = DateRange(date(2025, 3, 10), date(2025, 3, 12), local("2025-03-10 00:00").tzinfo)

    with report_reads():
        report = pages.throughput(rng, local("2025-03-13 12:00"))

    figures = shown(report)
    assert figures["Open backlog (items)"] == "4"
    assert figures["Oldest open item waiting (hours)"] == "98.0"  # since 9 March 10:00
    assert figures["Sent to review per day"] == "1.0"
    assert figures["Reviewed + rejected per day"] == "3.0"
    assert figures["Backlog change per day (+ grows)"] == "-2.0"
    assert figures["Backlog clears in (days)"] == "2.0"
    assert figures["Backlog clears on"] == "2025-03-15"
    assert figures["Clears in (days) if nothing new arrived"] == "1.3"


def test_a_growing_backlog_does_not_clear(reviewer):
    for hour in range(10, 14):
        make_annotation(
            make_product(status="needs_review"),
            at=f"2025-03-10 {hour}:00",
            route="needs_review",
            reason="low_confidence",
        )
    make_decision(at="2025-03-10 15:00", reviewer=reviewer)
    rng = DateRange(date(2025, 3, 10), date(2025, 3, 10), local("2025-03-10 00:00").tzinfo)

    with report_reads():
        report = pages.throughput(rng, local("2025-03-11 00:00"))

    figures = shown(report)
    assert figures["Backlog change per day (+ grows)"] == "3.0"
    assert figures["Backlog clears in (days)"] == "never at this rate"
    assert figures["Backlog clears on"] == "—"
    assert figures["Clears in (days) if nothing new arrived"] == "4.0"


def test_an_empty_range_shows_zeros_not_errors(client, manager):
    client.force_login(manager)

    response = client.get(URL, WEEK)

    assert table_rows(response, "throughput")[-1] == ["Total", "0", "0", "0", "0", "0", "0", "0"]
    assert figures(response)["Open backlog (items)"] == "0"
    assert figures(response)["Oldest open item waiting (hours)"] == "—"

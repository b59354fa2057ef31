"""The pure parts of the reports: date ranges, statistics, table formatting,
SVG charts. No database."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.http import QueryDict

from reports.charts import Series, axis, bar_chart, hbar_chart, line_chart, short_number
from reports.dates import DateRange, number_from_params, range_from_params
from reports.stats import backlog_projection
from reports.tables import Column, Table, format_value, tables_csv
from tests.reports.conftest import local

BERLIN = ZoneInfo("Europe/Berlin")


# --- date range -------------------------------------------------------------------


def test_default_range_is_the_last_7_days_including_today_in_time_zone():
    # given 00:30 on 12 March in Berlin, which is still 11 March in UTC
    now = local("2025-03-12 00:30")

    rng, errors = range_from_params(QueryDict(""), now=now)

    assert errors == []
    assert (rng.start, rng.end) == (date(2025, 3, 6), date(2025, 3, 12))
    assert rng.tz_name == "Europe/Berlin"


def test_range_is_inclusive_local_midnight_to_midnight():
    rng, _ = range_from_params(
        QueryDict("start=2025-03-10&end=2025-03-12"), now=local("2025-04-01 12:00")
    )

    assert rng.start_at == datetime(2025, 3, 9, 23, 0, tzinfo=ZoneInfo("UTC"))
    assert rng.end_at == datetime(2025, 3, 12, 23, 0, tzinfo=ZoneInfo("UTC"))
    assert rng.days == 3


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "start=2025-13-01&end=2025-03-12",
            "“2025-13-01” is not a date (YYYY-MM-DD) for the start.",
        ),
        ("start=2025-03-01&end=yesterday", "“yesterday” is not a date (YYYY-MM-DD) for the end."),
        ("start=2025-03-12&end=2025-03-01", "The start date is after the end date."),
        ("start=2023-01-01&end=2025-03-01", "The range is longer than 400 days."),
    ],
)
def test_an_invalid_range_says_why_and_falls_back_to_the_last_7_days(query, message):
    rng, errors = range_from_params(QueryDict(query), now=local("2025-03-20 09:00"))

    assert errors == [message, "Showing the last 7 days instead."]
    assert (rng.start, rng.end) == (date(2025, 3, 14), date(2025, 3, 20))


def test_a_missing_end_means_today():
    rng, errors = range_from_params(QueryDict("start=2025-03-01"), now=local("2025-03-20 09:00"))

    assert errors == []
    assert (rng.start, rng.end) == (date(2025, 3, 1), date(2025, 3, 20))


def test_elapsed_days_count_the_passed_share_of_today():
    rng = DateRange(date(2025, 3, 10), date(2025, 3, 16), BERLIN)

    assert rng.elapsed_days(local("2025-03-12 18:00")) == 2.75
    assert rng.elapsed_days(local("2025-03-20 00:00")) == 7.0
    assert rng.elapsed_days(local("2025-03-01 00:00")) == 0.0


def test_elapsed_days_on_a_23_hour_day():
    # 30 March 2025: the clocks go forward at 02:00 in Berlin; 12:00 local is
    # 11 real hours after midnight, of a 23-hour day.
    rng = DateRange(date(2025, 3, 30), date(2025, 3, 30), BERLIN)

    assert rng.elapsed_days(local("2025-03-30 12:00")) == pytest.approx(11 / 23)


def test_a_single_day_has_one_bucket_per_local_hour_dst_included():
    spring = DateRange(date(2025, 3, 30), date(2025, 3, 30), BERLIN).buckets()
    autumn = DateRange(date(2025, 10, 26), date(2025, 10, 26), BERLIN).buckets()

    assert len(spring) == 23 and datetime(2025, 3, 30, 2) not in spring
    assert len(autumn) == 24  # 25 real hours; the repeated 02:00 is one bucket
    assert autumn[:4] == [datetime(2025, 10, 26, h) for h in range(4)]


def test_manager_numbers_are_checked():
    params = QueryDict("target=1500&baseline_price=abc&baseline_ms=-3")

    target, errors = number_from_params(params, "target", label="Target", maximum=Decimal(2000))
    price, price_errors = number_from_params(
        params, "baseline_price", label="Price", maximum=Decimal(100), default=Decimal("1.50")
    )
    latency, latency_errors = number_from_params(
        params, "baseline_ms", label="Latency", maximum=Decimal(1000)
    )

    assert (target, errors) == (Decimal(1500), [])
    assert (price, price_errors) == (
        Decimal("1.50"),
        ["Price: “abc” is not a number from 0 to 100; 1.50."],
    )
    assert (latency, latency_errors) == (
        None,
        ["Latency: “-3” is not a number from 0 to 1000; not set."],
    )
    assert number_from_params(params, "target", label="Target", maximum=Decimal(1000)) == (
        None,
        ["Target: “1500” is not a number from 0 to 1000; not set."],
    )


# --- statistics -------------------------------------------------------------------------


def test_backlog_projection_at_the_net_rate():
    # 4 waiting; over 3 days 3 came in and 9 went out: shrinks by 2 a day
    projection = backlog_projection(
        backlog=4,
        sent_to_review=3,
        decided=9,
        elapsed_days=3.0,
        now=local("2025-03-13 12:00"),
        tz=BERLIN,
    )

    assert projection.inflow_per_day == 1.0
    assert projection.outflow_per_day == 3.0
    assert projection.days_to_clear == 2.0
    assert projection.clears_on == date(2025, 3, 15)
    assert projection.days_without_inflow == pytest.approx(4 / 3)


def test_a_growing_backlog_never_clears():
    projection = backlog_projection(
        backlog=10,
        sent_to_review=9,
        decided=6,
        elapsed_days=3.0,
        now=local("2025-03-13 12:00"),
        tz=BERLIN,
    )

    assert (projection.days_to_clear, projection.clears_on) == (None, None)
    assert projection.net_per_day == -1.0
    assert projection.days_without_inflow == 5.0


def test_an_empty_backlog_is_clear_today():
    projection = backlog_projection(
        backlog=0,
        sent_to_review=0,
        decided=0,
        elapsed_days=0.0,
        now=local("2025-03-13 12:00"),
        tz=BERLIN,
    )

    assert (projection.days_to_clear, projection.clears_on) == (0.0, date(2025, 3, 13))


# --- tables --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind", "html", "csv"),
    [
        (1234567, "int", "1,234,567", "1234567"),
        (0.12345, "pct", "12.3%", "12.3"),
        (Decimal("1234.5"), "usd", "1,234.50", "1234.50"),
        (Decimal("0.29985"), "usd4", "0.2999", "0.2999"),
        (2.25, "num1", "2.3", "2.3"),  # half up, not to even
        (-0.04, "num1", "0.0", "0.0"),
        (None, "int", "—", ""),
        (date(2025, 3, 1), "date", "2025-03-01", "2025-03-01"),
        (datetime(2025, 3, 1, 14), "date", "2025-03-01 14:00", "2025-03-01 14:00"),
        ("never at this rate", "text", "never at this rate", "never at this rate"),
    ],
)
def test_a_cell_is_rounded_once_for_page_and_csv(value, kind, html, csv):
    assert format_value(value, kind) == html
    assert format_value(value, kind, csv_form=True) == csv


def test_csv_holds_every_table_with_its_total():
    table = Table(
        id="t",
        title="Per day",
        columns=[Column("day", "Day", "date"), Column("n", "Items")],
        rows=[{"day": date(2025, 3, 1), "n": 1200}],
        total={"day": "Total", "n": 1200},
    )

    text = tables_csv([table], heading=["Loupe report: X"])

    assert text.splitlines() == [
        "Loupe report: X",
        "",
        "Per day",
        "Day,Items",
        "2025-03-01,1200",
        "Total,1200",
    ]


def test_csv_defuses_spreadsheet_formulas_in_text():
    assert format_value("=HYPERLINK(1)", "text", csv_form=True) == "'=HYPERLINK(1)"
    assert format_value("=HYPERLINK(1)", "text") == "=HYPERLINK(1)"


# --- charts --------------------------------------------------------------------------------


def test_axis_has_round_ticks_above_the_largest_value():
    assert axis(1234) == (1500.0, [0, 500.0, 1000.0, 1500.0])
    assert axis(0) == (1.0, [0.0, 0.25, 0.5, 0.75, 1.0])
    assert axis(0.62) == (0.8, [0, 0.2, 0.4, 0.6000000000000001, 0.8])


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (1500, "", "1.5k"),
        (25000, "", "25k"),
        (2_000_000, "", "2M"),
        (0.25, "%", "25%"),
        (3.5, "$", "$3.5"),
        (180, "ms", "180 ms"),
    ],
)
def test_tick_labels_are_short(value, unit, text):
    assert short_number(value, unit) == text


def test_charts_are_well_formed_svg_with_escaped_labels():
    labels = ["<Mon>", "Tue & Wed"]
    charts = [
        line_chart(title="Flow", labels=labels, series=[Series("A<b>", [1, None])], target=2),
        bar_chart(
            title="Bars",
            labels=labels,
            series=[Series("A", [1, 2]), Series("B", [3, 0])],
            stacked=True,
        ),
        hbar_chart(title="Per field", labels=["colour & <tone>"], values=[0.5], unit="%"),
    ]

    for chart in charts:
        root = ET.fromstring(chart.svg)  # noqa: S314 - our own SVG, not input
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert "<Mon>" not in chart.svg and "<tone>" not in chart.svg
    assert "&lt;Mon&gt;" in charts[0].svg and "Tue &amp; Wed" in charts[1].svg
    assert charts[0].legend == [("A<b>", "s1"), ("Target", "target")]
    assert "&lt;tone&gt;" in charts[2].svg

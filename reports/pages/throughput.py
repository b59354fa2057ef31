"""The throughput report: what came in, what the AI did, what people decided."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reports import selectors as s
from reports.charts import Chart, Series, bar_chart, line_chart
from reports.dates import DateRange
from reports.pages.base import Report, Section, bucket_label, figures_table
from reports.stats import backlog_projection, per_day
from reports.tables import Column, Table


def throughput(rng: DateRange, now: datetime) -> Report:
    annotated = s.annotation_buckets(rng, hourly=rng.hourly)
    totals = s.sum_figures(annotated, ANNOTATION_OUTCOMES)
    table = _throughput_table(rng, annotated, totals)
    figures = _throughput_figures(rng, now, totals, table)
    return Report(
        figures=figures, sections=[Section("Flow", _throughput_charts(rng, table), [table])]
    )


ANNOTATION_OUTCOMES = ("annotated", "auto_accepted", "sent_to_review", "failed")
DECISION_OUTCOMES = ("reviewed", "rejected", "decided")


def _throughput_table(rng: DateRange, annotated, totals) -> Table:
    """One row per hour or day: imported, what the AI did, what people decided."""
    imported = s.imported_buckets(rng, hourly=rng.hourly)
    decided = s.decision_buckets(rng, hourly=rng.hourly)
    empty_a = dict.fromkeys(ANNOTATION_OUTCOMES, 0)
    empty_d = dict.fromkeys(DECISION_OUTCOMES, 0)
    rows = []
    for bucket in rng.buckets():
        a, d = annotated.get(bucket, empty_a), decided.get(bucket, empty_d)
        rows.append(
            {
                "bucket": bucket,
                "imported": imported.get(bucket, 0),
                **{k: a[k] for k in empty_a},
                **{k: d[k] for k in empty_d},
            }
        )
    total = {
        "bucket": "Total",
        "imported": sum(imported.values()),
        **{k: totals[k] for k in empty_a},
        "reviewed": sum(r["reviewed"] for r in rows),
        "rejected": sum(r["rejected"] for r in rows),
        "decided": sum(r["decided"] for r in rows),
    }
    unit = "Hour" if rng.hourly else "Day"
    return Table(
        id="throughput",
        title=f"Per {unit.lower()}",
        columns=[
            Column("bucket", unit, "date"),
            Column("imported", "Imported"),
            Column("annotated", "Annotated"),
            Column("auto_accepted", "Auto-accepted"),
            Column("sent_to_review", "Sent to review"),
            Column("failed", "Failed"),
            Column("reviewed", "Reviewed"),
            Column("rejected", "Rejected"),
        ],
        rows=rows,
        total=total,
    )


def _throughput_figures(rng: DateRange, now: datetime, totals, table: Table) -> Table:
    products = s.annotated_products(rng)
    open_items, oldest = s.backlog()
    elapsed = rng.elapsed_days(now)
    projection = backlog_projection(
        backlog=open_items,
        sent_to_review=totals["sent_to_review"],
        decided=table.total["decided"],
        elapsed_days=elapsed,
        now=now,
        tz=rng.tz,
    )
    change = None if projection.net_per_day is None else -projection.net_per_day
    age_hours = (now - oldest).total_seconds() / 3600 if oldest and open_items else None
    annotated_per_day = per_day(totals["annotated"], elapsed)
    if projection.days_to_clear is None and projection.inflow_per_day is not None:
        clears_in: Any = "never at this rate"
        clears_kind = "text"
    else:
        clears_in, clears_kind = projection.days_to_clear, "num1"
    return figures_table(
        [
            ("backlog", "Open backlog (items)", open_items, "int"),
            ("oldest_age_hours", "Oldest open item waiting (hours)", age_hours, "num1"),
            ("products", "Distinct products annotated", products, "int"),
            (
                "annotated_per_day",
                "Annotated per day",
                annotated_per_day,
                "num1",
            ),
            ("inflow_per_day", "Sent to review per day", projection.inflow_per_day, "num1"),
            ("outflow_per_day", "Reviewed + rejected per day", projection.outflow_per_day, "num1"),
            ("change_per_day", "Backlog change per day (+ grows)", change, "num1"),
            ("days_to_clear", "Backlog clears in (days)", clears_in, clears_kind),
            ("clears_on", "Backlog clears on", projection.clears_on, "date"),
            (
                "days_without_inflow",
                "Clears in (days) if nothing new arrived",
                projection.days_without_inflow,
                "num1",
            ),
        ]
    )


def _throughput_charts(rng: DateRange, table: Table) -> list[Chart]:
    rows = table.rows
    unit = "hour" if rng.hourly else "day"
    labels = [bucket_label(r["bucket"], rng) for r in rows]
    flow = line_chart(
        title=f"Flow per {unit}",
        labels=labels,
        series=[
            Series("Imported", [r["imported"] for r in rows]),
            Series("Annotated", [r["annotated"] for r in rows]),
            Series("Sent to review", [r["sent_to_review"] for r in rows]),
            Series("Reviewed + rejected", [r["decided"] for r in rows]),
        ],
    )
    outcome = bar_chart(
        title=f"Annotation outcome per {unit}",
        labels=labels,
        stacked=True,
        series=[
            Series("Auto-accepted", [r["auto_accepted"] for r in rows]),
            Series("Sent to review", [r["sent_to_review"] for r in rows]),
            Series("Failed", [r["failed"] for r in rows]),
        ],
    )
    return [flow, outcome]

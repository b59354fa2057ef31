"""The people report: reviewers' output and pace."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reports import selectors as s
from reports.charts import Series, bar_chart, hbar_chart
from reports.dates import DateRange
from reports.pages.base import Inputs, Report, Section, bucket_label, figures_table, to_hours
from reports.stats import per_day, share
from reports.tables import Column, Table


def people(rng: DateRange, now: datetime, inputs: Inputs) -> Report:
    taggers = s.people(rng)
    totals = s.people_totals(rng)
    team_median = s.median_seconds(rng, by_reviewer=False).get(None)
    target = float(inputs.target) if inputs.target else None

    medians = s.median_seconds(rng, by_reviewer=True)
    per_tagger = _tagger_table(taggers, medians, totals, team_median)
    team_daily = _team_table(rng, s.decision_buckets(rng, hourly=False), totals, target)
    figures = _people_figures(rng, now, taggers, totals, team_median, target, team_daily)
    labels = [bucket_label(d["day"], rng) for d in team_daily.rows]
    team_chart = bar_chart(
        title="Team items decided per day",
        labels=labels,
        series=[Series("Items decided", [d["decided"] for d in team_daily.rows])],
        target=target,
        target_label="Daily target",
    )
    speed_chart = hbar_chart(
        title="Items per hour per tagger",
        labels=[r["tagger"] for r in per_tagger.rows],
        values=[r["per_hour"] for r in per_tagger.rows],
        width=1100,
    )
    return Report(
        figures=figures,
        sections=[
            Section("Team", [team_chart], [team_daily]),
            Section("Taggers", [speed_chart], [per_tagger]),
        ],
    )


def _figures_of(row: dict[str, Any], median: float | None) -> dict[str, Any]:
    hours = to_hours(row["seconds"])
    return {
        "decided": row["decided"],
        "accepted": row["accepted"],
        "edited": row["edited"],
        "rejected": row["rejected"],
        "edited_share": share(row["edited"], row["reviewed"]),
        "accepted_share": share(row["accepted"], row["reviewed"]),
        "skipped": row["skipped"],
        "undone": row["undone"],
        "hours": hours,
        "per_hour": share(row["decided"], hours),
        "median_seconds": median,
    }


def _tagger_table(taggers, medians, totals, team_median: float | None) -> Table:
    return Table(
        id="taggers",
        title="Per tagger",
        columns=[
            Column("tagger", "Tagger", "text"),
            Column("decided", "Items decided"),
            Column("accepted", "Accepted as is"),
            Column("edited", "Edited"),
            Column("rejected", "Rejected"),
            Column("accepted_share", "Accepted as is (% of reviewed)", "pct"),
            Column("edited_share", "Edited (% of reviewed)", "pct"),
            Column("skipped", "Skipped"),
            Column("undone", "Undone"),
            Column("hours", "Hours spent", "num2"),
            Column("per_hour", "Items per hour", "num1"),
            Column("median_seconds", "Median seconds per item", "num1"),
        ],
        rows=[
            {
                "tagger": row["reviewer__username"],
                **_figures_of(row, medians.get(row["reviewer_id"])),
            }
            for row in taggers
        ],
        total={"tagger": "Team", **_figures_of(totals, team_median)},
    )


def _team_table(rng: DateRange, daily, totals, target: float | None) -> Table:
    days = []
    for day in rng.dates():
        items = daily.get(day, {}).get("decided", 0)
        days.append(
            {
                "day": day,
                "decided": items,
                "target": target,
                "of_target": share(items, target),
            }
        )
    total_target = target * rng.days if target else None
    return Table(
        id="team",
        title="Team per day",
        columns=[
            Column("day", "Day", "date"),
            Column("decided", "Items decided"),
            Column("target", "Daily target"),
            Column("of_target", "Share of target (%)", "pct"),
        ],
        rows=days,
        total={
            "day": "Total",
            "decided": totals["decided"],
            "target": total_target,
            "of_target": share(totals["decided"], total_target),
        },
    )


def _people_figures(
    rng: DateRange, now: datetime, taggers, totals, team_median, target, team_daily: Table
) -> Table:
    elapsed = rng.elapsed_days(now)
    team_hours = to_hours(totals["seconds"])
    days = team_daily.rows
    met = sum(1 for d in days if target and d["decided"] >= target) if target else None
    return figures_table(
        [
            ("taggers", "Taggers with decisions", len([t for t in taggers if t["decided"]]), "int"),
            ("decided", "Items decided", totals["decided"], "int"),
            ("per_day", "Items decided per day", per_day(totals["decided"], elapsed), "num1"),
            ("per_hour", "Team items per hour", share(totals["decided"], team_hours), "num1"),
            ("median_seconds", "Median seconds per item", team_median, "num1"),
            ("undone", "Undone decisions", totals["undone"], "int"),
            ("target", "Daily target (items)", target, "int"),
            ("days_met", f"Days at or above target (of {rng.days})", met, "int"),
        ]
    )

"""The overview: the key figures of every report on one page."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from config.stats import wilson_interval
from reports import selectors as s
from reports.dates import DateRange
from reports.pages.base import (
    MONTH_DAYS,
    Inputs,
    Report,
    Section,
    figures_table,
    per_thousand,
    usd_for,
)
from reports.pages.quality import breakdown_by
from reports.stats import per_day, share
from reports.tables import Column, Table


def overview(rng: DateRange, now: datetime, inputs: Inputs) -> Report:
    totals = s.annotation_totals(rng)
    decisions = s.decision_totals(rng)
    open_items, oldest = s.backlog()
    per_arm = breakdown_by(s.decision_breakdown(rng), "arm")
    p50, p95, _ = s.latency_percentiles(rng, by=None).get(None, (None, None, None))
    elapsed = rng.elapsed_days(now)
    audited = sum(a["audited"] for a in per_arm.values())
    accepted = sum(a["audit_ok"] for a in per_arm.values())
    low, high = wilson_interval(accepted, audited) or (None, None)
    decided_per_day = per_day(decisions["decided"], elapsed)
    per_1000 = per_thousand(totals["cost"], totals["calls"])
    images_per_day = per_day(totals["annotated"], elapsed)
    calls_month = None if not elapsed else totals["calls"] / elapsed * MONTH_DAYS
    cost_month = None if not elapsed else totals["cost"] / Decimal(str(elapsed)) * MONTH_DAYS
    figures = figures_table(
        [
            ("annotated", "Images annotated", totals["annotated"], "int"),
            ("annotated_per_day", "Images annotated per day", images_per_day, "num1"),
            (
                "auto_accept_rate",
                "Auto-accept rate",
                share(totals["auto_accepted"], totals["annotated"]),
                "pct",
            ),
            (
                "decided_per_day",
                "Reviewed + rejected per day",
                decided_per_day,
                "num1",
            ),
            ("backlog", "Open backlog (items)", open_items, "int"),
            (
                "oldest_age_hours",
                "Oldest open item waiting (hours)",
                (now - oldest).total_seconds() / 3600 if oldest and open_items else None,
                "num1",
            ),
            ("precision", "Audited auto-accept precision", share(accepted, audited), "pct"),
            (
                "precision_low",
                "Precision, 95% interval low",
                low,
                "pct",
            ),
            (
                "precision_high",
                "Precision, 95% interval high",
                high,
                "pct",
            ),
            (
                "per_1000",
                "Cost per 1,000 images (USD)",
                per_1000,
                "usd4",
            ),
            ("cost_month", "30-day cost projection (USD)", cost_month, "usd"),
            ("p50", "Latency p50 (ms)", p50, "ms"),
            ("p95", "Latency p95 (ms)", p95, "ms"),
        ]
    )
    compare = _before_after_table(
        inputs,
        images_per_day=images_per_day,
        reviewers=decisions["reviewers"],
        calls_month=calls_month,
        cost_month=cost_month,
        p50=p50,
    )
    return Report(figures=figures, sections=[Section("Compared with before", [], [compare])])


def _before_after_table(
    inputs: Inputs,
    *,
    images_per_day: float | None,
    reviewers: int,
    calls_month: float | None,
    cost_month: Decimal | None,
    p50: float | None,
) -> Table:
    """The manager's figures from before Loupe beside this range's."""
    return Table(
        id="before_after",
        title="Before and after",
        columns=[
            Column("measure", "Measure", "text"),
            Column("before", "Before", "row"),
            Column("now", "Now", "row"),
        ],
        rows=[
            {
                "measure": "Images handled per day",
                "before": inputs.before_per_day,
                "now": images_per_day,
                "kind": "int",
            },
            {
                "measure": "People tagging",
                "before": inputs.before_team,
                "now": reviewers,
                "kind": "int",
            },
            {
                "measure": "Images per person per day",
                "before": share(inputs.before_per_day, inputs.before_team),
                "now": share(images_per_day, reviewers),
                "kind": "int",
            },
            {
                "measure": "Monthly bill (USD), 30 days at this volume",
                "before": usd_for(inputs.baseline_price, calls_month),
                "now": cost_month,
                "kind": "usd",
            },
            {
                "measure": "Latency p50 (ms)",
                "before": inputs.baseline_ms,
                "now": p50,
                "kind": "ms",
            },
        ],
        note="Before: the figures you enter above (the bill is your baseline price per 1,000 "
        "calls times this range's call volume). Now: this range's data.",
    )

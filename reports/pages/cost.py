"""The cost and latency report: provider spend, speed and errors."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from annotator.pricing import model_price
from reports import selectors as s
from reports.charts import Chart, Series, bar_chart, line_chart
from reports.dates import DateRange
from reports.pages.base import (
    MONTH_DAYS,
    Inputs,
    Report,
    Section,
    bucket_label,
    figures_table,
    per_thousand,
    usd_for,
)
from reports.stats import per_day, share
from reports.tables import Column, Table


def _error_row(kinds: dict[str, int], parse: int, provider: int) -> dict[str, int]:
    return {
        **{f"e_{k}": kinds.get(k, 0) for k, _ in s.ERROR_KINDS},
        "parse_errors": parse,
        "provider_errors": provider,
    }


ERROR_COLUMNS = [
    *(Column(f"e_{k}", label) for k, label in s.ERROR_KINDS),
    Column("parse_errors", "Parse errors"),
    Column("provider_errors", "Provider errors (no answer)"),
]


def cost(rng: DateRange, now: datetime, inputs: Inputs) -> Report:
    groups = s.annotation_groups(rng)
    daily = s.sum_groups(groups, ("bucket",))
    totals = s.sum_figures(daily, s.ANNOTATION_FIGURES)
    arms = [
        {"arm": arm, "model": model, **figures}
        for (arm, model), figures in sorted(s.sum_groups(groups, ("arm", "model")).items())
    ]
    latency_arm = s.latency_percentiles(rng, by="arm")
    latency_all = s.latency_percentiles(rng, by=None).get(None, (None, None, None))
    by_day, by_arm = _errors_by_day_and_arm(s.error_counts(rng))

    cost_table = _cost_table(rng, daily, totals, inputs.baseline_price)
    latency_table = _latency_table(
        rng, daily, totals, s.latency_percentiles(rng, by="day"), latency_all, by_day
    )
    figures = _cost_figures(rng, now, inputs, totals, cost_table, latency_all)
    return Report(
        figures=figures,
        sections=[
            Section("Cost", [_cost_chart(rng, cost_table, inputs)], [cost_table, _arm_table(arms)]),
            Section(
                "Latency and errors",
                _latency_charts(rng, latency_table, inputs),
                [latency_table, _latency_arm_table(arms, latency_arm, by_arm)],
            ),
        ],
        warnings=_unpriced_warnings(arms),
    )


def _errors_by_day_and_arm(errors) -> tuple[dict[Any, dict[str, int]], dict[str, dict[str, int]]]:
    by_day: dict[Any, dict[str, int]] = {}
    by_arm: dict[str, dict[str, int]] = {}
    for day, arm, kind, n in errors:
        by_day.setdefault(day, {}).setdefault(kind, 0)
        by_day[day][kind] += n
        by_arm.setdefault(arm, {}).setdefault(kind, 0)
        by_arm[arm][kind] += n
    return by_day, by_arm


def _cost_table(rng: DateRange, daily, totals, price: Decimal | None) -> Table:
    zero = {k: 0 for k in s.ANNOTATION_FIGURES}
    days = []
    for day in rng.dates():
        row = daily.get(day, zero)
        days.append(
            {
                "day": day,
                **{k: row[k] for k in ("calls", "requests", "cache_hits", "image_reuse_hits")},
                **{k: row[k] for k in ("input_tokens", "cached_input_tokens", "output_tokens")},
                "cost": row["cost"],
                "per_1000": per_thousand(row["cost"], row["calls"]),
                "baseline": usd_for(price, row["calls"]),
            }
        )
    return Table(
        id="cost",
        title="Calls, tokens and cost per day",
        columns=[
            Column("day", "Day", "date"),
            Column("calls", "Calls (images)"),
            Column("requests", "Requests incl. retries"),
            Column("cache_hits", "Prompt-cache hits"),
            Column("image_reuse_hits", "Image reuse hits (no call)"),
            Column("input_tokens", "Input tokens"),
            Column("cached_input_tokens", "Cached input tokens"),
            Column("output_tokens", "Output tokens"),
            Column("cost", "Cost (USD)", "usd"),
            Column("per_1000", "Cost per 1,000 images (USD)", "usd4"),
            Column("baseline", "Baseline cost (USD)", "usd"),
        ],
        rows=days,
        total={
            "day": "Total",
            **{
                k: totals[k]
                for k in (
                    "calls",
                    "requests",
                    "cache_hits",
                    "image_reuse_hits",
                    "input_tokens",
                    "cached_input_tokens",
                    "output_tokens",
                    "cost",
                )
            },
            "per_1000": per_thousand(totals["cost"], totals["calls"]),
            "baseline": usd_for(price, totals["calls"]),
        },
    )


def _arm_table(arms: list[dict[str, Any]]) -> Table:
    return Table(
        id="cost_arm",
        title="Cost per arm and model",
        columns=[
            Column("arm", "Arm", "text"),
            Column("model", "Model", "text"),
            Column("calls", "Calls (images)"),
            Column("cache_hits", "Cache hits"),
            Column("input_tokens", "Input tokens"),
            Column("output_tokens", "Output tokens"),
            Column("cost", "Cost (USD)", "usd"),
            Column("per_1000", "Cost per 1,000 images (USD)", "usd4"),
        ],
        rows=[
            {
                "arm": a["arm"],
                "model": a["model"] or "—",
                **{k: a[k] for k in ("calls", "cache_hits", "input_tokens", "output_tokens")},
                "cost": a["cost"],
                "per_1000": per_thousand(a["cost"], a["calls"]),
            }
            for a in arms
        ],
    )


def _latency_table(rng: DateRange, daily, totals, latency_day, latency_all, by_day) -> Table:
    zero = {k: 0 for k in s.ANNOTATION_FIGURES}
    latency_rows = []
    for day in rng.dates():
        p = latency_day.get(day, (None, None, None))
        row = daily.get(day, zero)
        latency_rows.append(
            {
                "day": day,
                "p50": p[0],
                "p95": p[1],
                "p99": p[2],
                **_error_row(by_day.get(day, {}), row["parse_errors"], row["provider_errors"]),
            }
        )
    return Table(
        id="latency",
        title="Latency and errors per day",
        columns=[
            Column("day", "Day", "date"),
            Column("p50", "p50 (ms)", "ms"),
            Column("p95", "p95 (ms)", "ms"),
            Column("p99", "p99 (ms)", "ms"),
            *ERROR_COLUMNS,
        ],
        rows=latency_rows,
        total={
            "day": "All days",
            "p50": latency_all[0],
            "p95": latency_all[1],
            "p99": latency_all[2],
            **_error_row(
                {k: sum(d.get(k, 0) for d in by_day.values()) for k, _ in s.ERROR_KINDS},
                totals["parse_errors"],
                totals["provider_errors"],
            ),
        },
    )


def _latency_arm_table(arms: list[dict[str, Any]], latency_arm, by_arm) -> Table:
    arm_names = sorted({a["arm"] for a in arms} | set(latency_arm) | set(by_arm))
    arm_status: dict[str, list[int]] = {}
    for a in arms:
        status = arm_status.setdefault(a["arm"], [0, 0])
        status[0] += a["parse_errors"]
        status[1] += a["provider_errors"]
    return Table(
        id="latency_arm",
        title="Latency and errors per arm",
        columns=[
            Column("arm", "Arm", "text"),
            Column("p50", "p50 (ms)", "ms"),
            Column("p95", "p95 (ms)", "ms"),
            Column("p99", "p99 (ms)", "ms"),
            *ERROR_COLUMNS,
        ],
        rows=[
            {
                "arm": arm,
                **dict(zip(("p50", "p95", "p99"), latency_arm.get(arm, (None,) * 3), strict=True)),
                **_error_row(by_arm.get(arm, {}), *arm_status.get(arm, (0, 0))),
            }
            for arm in arm_names
        ],
    )


def _cost_figures(
    rng: DateRange, now: datetime, inputs: Inputs, totals, cost_table: Table, latency_all
) -> Table:
    price = inputs.baseline_price
    elapsed = rng.elapsed_days(now)
    calls_month = None if not elapsed else totals["calls"] / elapsed * MONTH_DAYS
    cost_month = None if not elapsed else totals["cost"] / Decimal(str(elapsed)) * MONTH_DAYS
    baseline_month = usd_for(price, calls_month)
    saving_month = (
        None if baseline_month is None or cost_month is None else baseline_month - cost_month
    )
    return figures_table(
        [
            ("calls", "Calls (images)", totals["calls"], "int"),
            ("cost", "Cost (USD)", totals["cost"], "usd"),
            ("cost_per_day", "Cost per day (USD)", per_day(totals["cost"], elapsed), "usd"),
            ("per_1000", "Cost per 1,000 images (USD)", cost_table.total["per_1000"], "usd4"),
            ("calls_month", "Calls in 30 days at this rate", calls_month, "int"),
            ("cost_month", "30-day projection (USD)", cost_month, "usd"),
            ("baseline_price", "Baseline price per 1,000 calls (USD)", price, "usd"),
            ("baseline_month", "Baseline for the same 30 days (USD)", baseline_month, "usd"),
            (
                "saving_month",
                "Saving in 30 days vs baseline (USD)",
                saving_month,
                "usd",
            ),
            (
                "cost_share",
                "AI cost as share of baseline",
                share(cost_month, baseline_month),
                "pct",
            ),
            ("p50", "Latency p50 (ms)", latency_all[0], "ms"),
            ("p95", "Latency p95 (ms)", latency_all[1], "ms"),
            ("p99", "Latency p99 (ms)", latency_all[2], "ms"),
            ("baseline_ms", "Baseline latency (ms)", inputs.baseline_ms, "ms"),
        ]
    )


def _cost_chart(rng: DateRange, cost_table: Table, inputs: Inputs) -> Chart:
    days = cost_table.rows
    labels = [bucket_label(d["day"], rng) for d in days]
    cost_series = [Series("AI cost", [float(d["cost"]) for d in days])]
    if inputs.baseline_price is not None:
        cost_series.append(Series("Baseline", [float(d["baseline"]) for d in days]))
    return bar_chart(title="Cost per day (USD)", labels=labels, series=cost_series, unit="$")


def _latency_charts(rng: DateRange, latency_table: Table, inputs: Inputs) -> list[Chart]:
    latency_rows = latency_table.rows
    labels = [bucket_label(r["day"], rng) for r in latency_rows]
    latency_chart = line_chart(
        title="Latency per day (ms)",
        labels=labels,
        series=[
            Series(name, [r[key] for r in latency_rows])
            for name, key in (("p50", "p50"), ("p95", "p95"), ("p99", "p99"))
        ],
        unit="ms",
        target=float(inputs.baseline_ms) if inputs.baseline_ms is not None else None,
        target_label="Baseline",
    )
    error_chart = bar_chart(
        title="Errors per day",
        labels=labels,
        stacked=True,
        series=[
            *(Series(label, [r[f"e_{k}"] for r in latency_rows]) for k, label in s.ERROR_KINDS),
            Series("Parse errors", [r["parse_errors"] for r in latency_rows]),
        ],
    )
    return [latency_chart, error_chart]


def _unpriced_warnings(arms: list[dict[str, Any]]) -> list[str]:
    unpriced = sorted(
        {
            a["model"]
            for a in arms
            if a["input_tokens"] + a["output_tokens"] > 0 and model_price(a["model"]) is None
        }
    )
    if not unpriced:
        return []
    return [
        "No price is configured for "
        + ", ".join(unpriced)
        + ": their calls count as $0 here. Add them to ANNOTATOR_PRICES."
    ]

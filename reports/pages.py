"""The report pages as data: key figures, charts and tables built from the
selectors' aggregates. The views render them as HTML or CSV; both read the
same Table objects, so the download matches the page."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from annotator.pricing import model_price
from reports import selectors as s
from reports.charts import Chart, Series, bar_chart, hbar_chart, line_chart
from reports.dates import DateRange
from reports.stats import backlog_projection, per_day, share, wilson_interval
from reports.tables import Column, Table
from review.services import FIELDS

MONTH_DAYS = 30


@dataclass
class Section:
    title: str
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    chart_columns: int = 1


@dataclass
class Report:
    figures: Table
    sections: list[Section]
    warnings: list[str] = field(default_factory=list)

    @property
    def tables(self) -> list[Table]:
        return [self.figures, *(t for section in self.sections for t in section.tables)]


@dataclass
class Inputs:
    """The manager's own numbers, from the URL (blank: not set)."""

    target: Decimal | None = None  # team items per day
    baseline_price: Decimal | None = None  # USD per 1,000 calls of the legacy API
    baseline_ms: Decimal | None = None  # the legacy API's typical latency
    before_per_day: Decimal | None = None  # images handled per day before AI
    before_team: Decimal | None = None  # people tagging before AI


def _figures(rows: list[tuple[str, str, Any, str]]) -> Table:
    """Key figures as a two-column table: (key, label, value, kind)."""
    return Table(
        id="figures",
        title="Key figures",
        columns=[Column("label", "Figure", "text"), Column("value", "Value", "row")],
        rows=[{"key": k, "label": label, "value": v, "kind": kind} for k, label, v, kind in rows],
    )


def bucket_label(bucket: date | datetime, rng: DateRange) -> str:
    if isinstance(bucket, datetime):
        return f"{bucket:%H:%M}"
    return f"{bucket:%a %d %b}" if rng.days <= 14 else f"{bucket:%d %b}"


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600


def _per_1000(cost: Decimal | None, calls: int) -> Decimal | None:
    return None if not calls or cost is None else cost / calls * 1000


def _usd(price: Decimal | None, calls: float | None) -> Decimal | None:
    if price is None or calls is None:
        return None
    return price * Decimal(str(calls)) / 1000


# --- 1. throughput ------------------------------------------------------------------


def throughput(rng: DateRange, now: datetime) -> Report:
    hourly = rng.hourly
    imported = s.imported_buckets(rng, hourly=hourly)
    annotated = s.annotation_buckets(rng, hourly=hourly)
    decided = s.decision_buckets(rng, hourly=hourly)
    products = s.annotated_products(rng)
    open_items, oldest = s.backlog()

    empty_a = {k: 0 for k in ("annotated", "auto_accepted", "sent_to_review", "failed")}
    totals = s.sum_figures(annotated, tuple(empty_a))
    empty_d = {"reviewed": 0, "rejected": 0, "decided": 0}
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
    decided_total = sum(r["decided"] for r in rows)
    total = {
        "bucket": "Total",
        "imported": sum(imported.values()),
        **{k: totals[k] for k in empty_a},
        "reviewed": sum(r["reviewed"] for r in rows),
        "rejected": sum(r["rejected"] for r in rows),
        "decided": decided_total,
    }
    unit = "Hour" if hourly else "Day"
    table = Table(
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
    elapsed = rng.elapsed_days(now)
    projection = backlog_projection(
        backlog=open_items,
        sent_to_review=totals["sent_to_review"],
        decided=decided_total,
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
    figures = _figures(
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
    labels = [bucket_label(r["bucket"], rng) for r in rows]
    flow = line_chart(
        title=f"Flow per {unit.lower()}",
        labels=labels,
        series=[
            Series("Imported", [r["imported"] for r in rows]),
            Series("Annotated", [r["annotated"] for r in rows]),
            Series("Sent to review", [r["sent_to_review"] for r in rows]),
            Series("Reviewed + rejected", [r["decided"] for r in rows]),
        ],
    )
    outcome = bar_chart(
        title=f"Annotation outcome per {unit.lower()}",
        labels=labels,
        stacked=True,
        series=[
            Series("Auto-accepted", [r["auto_accepted"] for r in rows]),
            Series("Sent to review", [r["sent_to_review"] for r in rows]),
            Series("Failed", [r["failed"] for r in rows]),
        ],
    )
    return Report(figures=figures, sections=[Section("Flow", [flow, outcome], [table])])


# --- 2. people ----------------------------------------------------------------------


def people(rng: DateRange, now: datetime, inputs: Inputs) -> Report:
    taggers = s.people(rng)
    medians = s.median_seconds(rng, by_reviewer=True)
    totals = s.people_totals(rng)
    team_median = s.median_seconds(rng, by_reviewer=False).get(None)
    daily = s.decision_buckets(rng, hourly=False)

    def figures_of(row: dict[str, Any], median: float | None) -> dict[str, Any]:
        hours = _hours(row["seconds"])
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

    per_tagger = Table(
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
                **figures_of(row, medians.get(row["reviewer_id"])),
            }
            for row in taggers
        ],
        total={"tagger": "Team", **figures_of(totals, team_median)},
    )
    target = float(inputs.target) if inputs.target else None
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
    team_daily = Table(
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
    elapsed = rng.elapsed_days(now)
    team_hours = _hours(totals["seconds"])
    met = sum(1 for d in days if target and d["decided"] >= target) if target else None
    figures = _figures(
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
    labels = [bucket_label(d["day"], rng) for d in days]
    team_chart = bar_chart(
        title="Team items decided per day",
        labels=labels,
        series=[Series("Items decided", [d["decided"] for d in days])],
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


# --- 3. quality -----------------------------------------------------------------------


def breakdown_by(rows: list[dict[str, Any]], key: str) -> dict[Any, dict[str, int]]:
    """decision_breakdown summed per one dimension (arm, model, prompt_version_id)."""
    result: dict[Any, dict[str, int]] = {}
    for row in rows:
        group = result.setdefault(
            row[key],
            {"decided": 0, "reviewed": 0, "accepted": 0, "edited": 0, "audited": 0, "audit_ok": 0},
        )
        n, action = row["n"], row["action"]
        group["decided"] += n
        group["reviewed"] += n if action in s.REVIEWED_ACTIONS else 0
        group["accepted"] += n if action == "accept" else 0
        group["edited"] += n if action == "edit" else 0
        if row["audit"]:
            group["audited"] += n
            group["audit_ok"] += n if action == "accept" else 0
    return result


def _correction_table(
    by: str,
    label: str,
    title: str,
    counts: dict[Any, int],
    reviewed: dict[Any, dict[str, int]],
    names: dict[Any, str],
) -> Table:
    rows = []
    for key in {*counts, *reviewed}:
        r = reviewed.get(key, {"reviewed": 0, "edited": 0})
        name = names.get(key, key)
        rows.append(
            {
                "group": "—" if name in (None, "") else str(name),
                "reviewed": r["reviewed"],
                "edited_share": share(r["edited"], r["reviewed"]),
                "corrections": counts.get(key, 0),
                "rate": share(counts.get(key, 0), r["reviewed"]),
            }
        )
    rows.sort(key=lambda row: (-row["corrections"], -row["reviewed"], row["group"]))
    return Table(
        id=f"corrections_{by}",
        title=title,
        columns=[
            Column("group", label, "text"),
            Column("reviewed", "Reviewed items"),
            Column("edited_share", "Edited (% of reviewed)", "pct"),
            Column("corrections", "Corrections"),
            Column("rate", "Correction rate (%)", "pct"),
        ],
        rows=rows,
    )


def quality(rng: DateRange, now: datetime) -> Report:
    daily = s.annotation_buckets(rng, hourly=False)
    totals = s.sum_figures(daily, ("annotated", "auto_accepted"))
    breakdown = s.decision_breakdown(rng)
    per_arm = breakdown_by(breakdown, "arm")

    days = []
    for day in rng.dates():
        row = daily.get(day, {"annotated": 0, "auto_accepted": 0})
        days.append(
            {
                "day": day,
                "annotated": row["annotated"],
                "auto_accepted": row["auto_accepted"],
                "rate": share(row["auto_accepted"], row["annotated"]),
            }
        )
    auto_table = Table(
        id="auto_accept",
        title="Auto-accept rate per day",
        columns=[
            Column("day", "Day", "date"),
            Column("annotated", "Annotated"),
            Column("auto_accepted", "Auto-accepted"),
            Column("rate", "Auto-accept rate (%)", "pct"),
        ],
        rows=days,
        total={
            "day": "Total",
            "annotated": totals["annotated"],
            "auto_accepted": totals["auto_accepted"],
            "rate": share(totals["auto_accepted"], totals["annotated"]),
        },
    )

    def precision_row(name: str, audited: int, accepted: int) -> dict[str, Any]:
        interval = wilson_interval(accepted, audited)
        return {
            "arm": name,
            "audited": audited,
            "accepted": accepted,
            "precision": share(accepted, audited),
            "low": interval[0] if interval else None,
            "high": interval[1] if interval else None,
        }

    audited = sum(a["audited"] for a in per_arm.values())
    accepted = sum(a["audit_ok"] for a in per_arm.values())
    overall = precision_row("All arms", audited, accepted)
    precision_table = Table(
        id="precision",
        title="Audited auto-accept precision",
        columns=[
            Column("arm", "Arm", "text"),
            Column("audited", "Audited items decided"),
            Column("accepted", "Accepted as is"),
            Column("precision", "Precision (%)", "pct"),
            Column("low", "95% interval low (%)", "pct"),
            Column("high", "95% interval high (%)", "pct"),
        ],
        rows=[
            precision_row(arm or "—", a["audited"], a["audit_ok"])
            for arm, a in sorted(per_arm.items(), key=lambda item: item[0] or "")
            if a["audited"]
        ],
        total=overall,
    )

    counts = s.correction_counts(rng, by="field")
    reviewed_total = sum(a["reviewed"] for a in per_arm.values())
    field_rows = [
        {
            "group": name,
            "reviewed": reviewed_total,
            "corrections": counts.get(name, 0),
            "rate": share(counts.get(name, 0), reviewed_total),
        }
        for name in [*FIELDS, *sorted(set(counts) - set(FIELDS))]
    ]
    field_table = Table(
        id="corrections_field",
        title="Corrections per field",
        columns=[
            Column("group", "Field", "text"),
            Column("reviewed", "Reviewed items"),
            Column("corrections", "Corrections"),
            Column("rate", "Correction rate (%)", "pct"),
        ],
        rows=field_rows,
    )
    by_prompt = breakdown_by(breakdown, "prompt_version_id")
    prompt_counts = s.correction_counts(rng, by="prompt")
    versions = s.prompt_versions([k for k in {*by_prompt, *prompt_counts} if k is not None])
    by_category = s.reviewed_by_category(rng)
    category_counts = s.correction_counts(rng, by="category")
    arm_table = _correction_table(
        "arm", "Arm", "Corrections per arm", s.correction_counts(rng, by="arm"), per_arm, {}
    )
    model_table = _correction_table(
        "model",
        "Model",
        "Corrections per model",
        s.correction_counts(rng, by="model"),
        breakdown_by(breakdown, "model"),
        {},
    )
    prompt_table = _correction_table(
        "prompt",
        "Prompt version",
        "Corrections per prompt version",
        prompt_counts,
        by_prompt,
        {pk: f"v{version}" for pk, version in versions.items()},
    )
    category_table = _correction_table(
        "category",
        "Category (final)",
        "Corrections per category",
        category_counts,
        by_category,
        s.category_paths([k for k in {*by_category, *category_counts} if k is not None]),
    )
    category_table.collapsed = len(category_table.rows) > 15
    corrections_total = sum(counts.values())
    figures = _figures(
        [
            (
                "auto_accept_rate",
                "Auto-accept rate",
                share(totals["auto_accepted"], totals["annotated"]),
                "pct",
            ),
            ("audited", "Audited items decided", audited, "int"),
            ("precision", "Audited auto-accept precision", overall["precision"], "pct"),
            ("precision_low", "Precision, 95% interval low", overall["low"], "pct"),
            ("precision_high", "Precision, 95% interval high", overall["high"], "pct"),
            ("reviewed", "Reviewed items (accept + edit)", reviewed_total, "int"),
            ("corrections", "Corrections", corrections_total, "int"),
            (
                "correction_rate",
                "Corrections per reviewed item",
                share(corrections_total, reviewed_total),
                "pct",
            ),
        ]
    )
    labels = [bucket_label(d["day"], rng) for d in days]
    rate_chart = line_chart(
        title="Auto-accept rate per day",
        labels=labels,
        series=[Series("Auto-accept rate", [d["rate"] for d in days])],
        unit="%",
    )
    field_chart = hbar_chart(
        title="Correction rate per field",
        labels=[r["group"] for r in field_rows],
        values=[r["rate"] for r in field_rows],
        unit="%",
    )
    arm_chart = hbar_chart(
        title="Correction rate per arm",
        labels=[r["group"] for r in arm_table.rows],
        values=[r["rate"] for r in arm_table.rows],
        unit="%",
    )
    return Report(
        figures=figures,
        sections=[
            Section("Auto-accept", [rate_chart], [auto_table, precision_table]),
            Section(
                "What reviewers changed",
                [field_chart, arm_chart],
                [field_table, arm_table, model_table, prompt_table, category_table],
                chart_columns=2,
            ),
        ],
    )


# --- 4. cost and latency ------------------------------------------------------------


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
    latency_day = s.latency_percentiles(rng, by="day")
    latency_arm = s.latency_percentiles(rng, by="arm")
    latency_all = s.latency_percentiles(rng, by=None).get(None, (None, None, None))
    errors = s.error_counts(rng)

    price = inputs.baseline_price
    zero = {k: 0 for k in s.ANNOTATION_FIGURES}
    days = []
    for day in rng.dates():
        row = daily.get(day, zero)
        days.append(
            {
                "day": day,
                **{k: row[k] for k in ("calls", "requests", "cache_hits")},
                **{k: row[k] for k in ("input_tokens", "cached_input_tokens", "output_tokens")},
                "cost": row["cost"],
                "per_1000": _per_1000(row["cost"], row["calls"]),
                "baseline": _usd(price, row["calls"]),
            }
        )
    cost_table = Table(
        id="cost",
        title="Calls, tokens and cost per day",
        columns=[
            Column("day", "Day", "date"),
            Column("calls", "Calls (images)"),
            Column("requests", "Requests incl. retries"),
            Column("cache_hits", "Cache hits"),
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
                    "input_tokens",
                    "cached_input_tokens",
                    "output_tokens",
                    "cost",
                )
            },
            "per_1000": _per_1000(totals["cost"], totals["calls"]),
            "baseline": _usd(price, totals["calls"]),
        },
    )
    arm_table = Table(
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
                "per_1000": _per_1000(a["cost"], a["calls"]),
            }
            for a in arms
        ],
    )
    by_day: dict[Any, dict[str, int]] = {}
    by_arm: dict[str, dict[str, int]] = {}
    for day, arm, kind, n in errors:
        by_day.setdefault(day, {}).setdefault(kind, 0)
        by_day[day][kind] += n
        by_arm.setdefault(arm, {}).setdefault(kind, 0)
        by_arm[arm][kind] += n
    latency_rows = []
    for d in days:
        p = latency_day.get(d["day"], (None, None, None))
        row = daily.get(d["day"], zero)
        latency_rows.append(
            {
                "day": d["day"],
                "p50": p[0],
                "p95": p[1],
                "p99": p[2],
                **_error_row(by_day.get(d["day"], {}), row["parse_errors"], row["provider_errors"]),
            }
        )
    latency_table = Table(
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
    arm_names = sorted({a["arm"] for a in arms} | set(latency_arm) | set(by_arm))
    arm_status = {}
    for a in arms:
        status = arm_status.setdefault(a["arm"], [0, 0])
        status[0] += a["parse_errors"]
        status[1] += a["provider_errors"]
    latency_arm_table = Table(
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

    elapsed = rng.elapsed_days(now)
    calls_month = None if not elapsed else totals["calls"] / elapsed * MONTH_DAYS
    cost_month = None if not elapsed else totals["cost"] / Decimal(str(elapsed)) * MONTH_DAYS
    baseline_month = _usd(price, calls_month)
    saving_month = (
        None if baseline_month is None or cost_month is None else baseline_month - cost_month
    )
    figures = _figures(
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
    labels = [bucket_label(d["day"], rng) for d in days]
    cost_series = [Series("AI cost", [float(d["cost"]) for d in days])]
    if price is not None:
        cost_series.append(Series("Baseline", [float(d["baseline"]) for d in days]))
    cost_chart = bar_chart(title="Cost per day (USD)", labels=labels, series=cost_series, unit="$")
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
    unpriced = sorted(
        {
            a["model"]
            for a in arms
            if a["input_tokens"] + a["output_tokens"] > 0 and model_price(a["model"]) is None
        }
    )
    warnings = []
    if unpriced:
        warnings.append(
            "No price is configured for "
            + ", ".join(unpriced)
            + ": their calls count as $0 here. Add them to ANNOTATOR_PRICES."
        )
    return Report(
        figures=figures,
        sections=[
            Section("Cost", [cost_chart], [cost_table, arm_table]),
            Section(
                "Latency and errors",
                [latency_chart, error_chart],
                [latency_table, latency_arm_table],
            ),
        ],
        warnings=warnings,
    )


# --- overview -----------------------------------------------------------------------


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
    per_1000 = _per_1000(totals["cost"], totals["calls"])
    images_per_day = per_day(totals["annotated"], elapsed)
    calls_month = None if not elapsed else totals["calls"] / elapsed * MONTH_DAYS
    cost_month = None if not elapsed else totals["cost"] / Decimal(str(elapsed)) * MONTH_DAYS
    figures = _figures(
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
    compare = Table(
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
                "now": decisions["reviewers"],
                "kind": "int",
            },
            {
                "measure": "Images per person per day",
                "before": share(inputs.before_per_day, inputs.before_team),
                "now": share(images_per_day, decisions["reviewers"]),
                "kind": "int",
            },
            {
                "measure": "Monthly bill (USD), 30 days at this volume",
                "before": _usd(inputs.baseline_price, calls_month),
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
    return Report(figures=figures, sections=[Section("Compared with before", [], [compare])])

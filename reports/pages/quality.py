"""The quality report: audited auto-accept precision and what reviewers corrected."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from config.stats import wilson_interval
from reports import selectors as s
from reports.charts import Series, hbar_chart, line_chart
from reports.dates import DateRange
from reports.pages.base import Report, Section, bucket_label, figures_table
from reports.stats import share
from reports.tables import Column, Table
from review.services import review_fields


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
    counts = s.correction_counts(rng, by="field")
    reviewed_total = sum(a["reviewed"] for a in per_arm.values())

    auto_table = _auto_accept_table(rng, daily, totals)
    precision_table = _precision_table(per_arm)
    field_table = _field_table(counts, reviewed_total)
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
    prompt_table = _prompt_table(rng, breakdown)
    category_table = _category_table(rng)
    figures = _quality_figures(totals, precision_table, reviewed_total, sum(counts.values()))
    labels = [bucket_label(d["day"], rng) for d in auto_table.rows]
    rate_chart = line_chart(
        title="Auto-accept rate per day",
        labels=labels,
        series=[Series("Auto-accept rate", [d["rate"] for d in auto_table.rows])],
        unit="%",
    )
    field_chart = hbar_chart(
        title="Correction rate per field",
        labels=[r["group"] for r in field_table.rows],
        values=[r["rate"] for r in field_table.rows],
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


def _auto_accept_table(rng: DateRange, daily, totals) -> Table:
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
    return Table(
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


def _precision_row(name: str, audited: int, accepted: int) -> dict[str, Any]:
    interval = wilson_interval(accepted, audited)
    return {
        "arm": name,
        "audited": audited,
        "accepted": accepted,
        "precision": share(accepted, audited),
        "low": interval[0] if interval else None,
        "high": interval[1] if interval else None,
    }


def _precision_table(per_arm: dict[Any, dict[str, int]]) -> Table:
    """Audited precision per arm; the total row is all arms together."""
    audited = sum(a["audited"] for a in per_arm.values())
    accepted = sum(a["audit_ok"] for a in per_arm.values())
    return Table(
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
            _precision_row(arm or "—", a["audited"], a["audit_ok"])
            for arm, a in sorted(per_arm.items(), key=lambda item: item[0] or "")
            if a["audited"]
        ],
        total=_precision_row("All arms", audited, accepted),
    )


def _field_table(counts: dict[str, int], reviewed_total: int) -> Table:
    # The taxonomy's fields, then attributes deleted since that still have
    # corrections, tags last.
    fields = review_fields()
    return Table(
        id="corrections_field",
        title="Corrections per field",
        columns=[
            Column("group", "Field", "text"),
            Column("reviewed", "Reviewed items"),
            Column("corrections", "Corrections"),
            Column("rate", "Correction rate (%)", "pct"),
        ],
        rows=[
            {
                "group": name,
                "reviewed": reviewed_total,
                "corrections": counts.get(name, 0),
                "rate": share(counts.get(name, 0), reviewed_total),
            }
            for name in [*fields[:-1], *sorted(set(counts) - set(fields)), fields[-1]]
        ],
    )


def _prompt_table(rng: DateRange, breakdown: list[dict[str, Any]]) -> Table:
    by_prompt = breakdown_by(breakdown, "prompt_version_id")
    prompt_counts = s.correction_counts(rng, by="prompt")
    versions = s.prompt_versions([k for k in {*by_prompt, *prompt_counts} if k is not None])
    return _correction_table(
        "prompt",
        "Prompt version",
        "Corrections per prompt version",
        prompt_counts,
        by_prompt,
        {pk: f"v{version}" for pk, version in versions.items()},
    )


def _category_table(rng: DateRange) -> Table:
    by_category = s.reviewed_by_category(rng)
    category_counts = s.correction_counts(rng, by="category")
    table = _correction_table(
        "category",
        "Category (final)",
        "Corrections per category",
        category_counts,
        by_category,
        s.category_paths([k for k in {*by_category, *category_counts} if k is not None]),
    )
    table.collapsed = len(table.rows) > 15
    return table


def _quality_figures(
    totals, precision_table: Table, reviewed_total: int, corrections_total: int
) -> Table:
    overall = precision_table.total
    return figures_table(
        [
            (
                "auto_accept_rate",
                "Auto-accept rate",
                share(totals["auto_accepted"], totals["annotated"]),
                "pct",
            ),
            ("audited", "Audited items decided", overall["audited"], "int"),
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

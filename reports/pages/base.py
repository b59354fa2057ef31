"""What every report page is made of: key figures, sections of charts and
tables, the manager's own inputs, and small unit helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from reports.charts import Chart
from reports.dates import DateRange
from reports.tables import Column, Table

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


def figures_table(rows: list[tuple[str, str, Any, str]]) -> Table:
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


def to_hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600


def per_thousand(cost: Decimal | None, calls: int) -> Decimal | None:
    return None if not calls or cost is None else cost / calls * 1000


def usd_for(price: Decimal | None, calls: float | None) -> Decimal | None:
    if price is None or calls is None:
        return None
    return price * Decimal(str(calls)) / 1000

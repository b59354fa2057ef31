"""The small amount of arithmetic done on aggregates after the database:
confidence intervals, rates, projections. Pure functions, no queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal

from django.utils import timezone


def share(part: float | Decimal | None, whole: float | Decimal | None) -> float | None:
    """part / whole, or None when there is nothing to divide by."""
    if part is None or not whole:
        return None
    return float(part) / float(whole)


def per_day(total: float | Decimal | None, elapsed_days: float) -> float | None:
    if total is None or elapsed_days <= 0:
        return None
    return float(total) / elapsed_days


@dataclass(frozen=True)
class BacklogProjection:
    backlog: int
    inflow_per_day: float | None  # new review items per day
    outflow_per_day: float | None  # reviewed + rejected per day
    days_to_clear: float | None  # None: does not clear at this rate
    clears_on: date | None
    days_without_inflow: float | None  # if nothing new arrived

    @property
    def net_per_day(self) -> float | None:
        if self.inflow_per_day is None or self.outflow_per_day is None:
            return None
        return self.outflow_per_day - self.inflow_per_day


def backlog_projection(
    *,
    backlog: int,
    sent_to_review: int,
    decided: int,
    elapsed_days: float,
    now: datetime,
    tz: tzinfo,
) -> BacklogProjection:
    """When the open backlog clears if the range's average rates go on: it
    shrinks by (decided - sent to review) per day."""
    inflow = per_day(sent_to_review, elapsed_days)
    outflow = per_day(decided, elapsed_days)
    if backlog == 0:
        today = timezone.localtime(now, tz).date()
        return BacklogProjection(0, inflow, outflow, 0.0, today, 0.0)
    if inflow is None or outflow is None:
        return BacklogProjection(backlog, None, None, None, None, None)
    without_inflow = backlog / outflow if outflow > 0 else None
    net = outflow - inflow
    if net <= 0:
        return BacklogProjection(backlog, inflow, outflow, None, None, without_inflow)
    days = backlog / net
    clears_on = timezone.localtime(now + timedelta(days=days), tz).date()
    return BacklogProjection(backlog, inflow, outflow, days, clears_on, without_inflow)

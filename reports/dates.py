"""The date range every report page reads from its URL, and the manager's inputs.

Dates are calendar days in settings.TIME_ZONE: the server's zone is the one
reference, so a report means the same thing whoever opens the link and
wherever their browser is. `start` and `end` are inclusive: the range runs
from 00:00 on `start` to 00:00 on the day after `end`, local time (an exact
half-open interval in UTC, so DST days are 23 or 25 hours long).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation

from django.http import QueryDict
from django.utils import timezone

DEFAULT_DAYS = 7
MAX_DAYS = 400


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date
    tz: tzinfo

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def hourly(self) -> bool:
        """A single day is reported per hour."""
        return self.start == self.end

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=self.tz)

    @property
    def end_at(self) -> datetime:
        """Exclusive: midnight at the start of the day after `end`."""
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=self.tz)

    @property
    def tz_name(self) -> str:
        return str(self.tz)

    def dates(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]

    def buckets(self) -> list:
        """The x axis: every date, or every local hour of a single day. On the
        night the clocks go back the repeated hour is one bucket (wall clock)."""
        if not self.hourly:
            return self.dates()
        keys: list[datetime] = []
        at = self.start_at.astimezone(UTC)
        while at < self.end_at:
            key = timezone.localtime(at, self.tz).replace(tzinfo=None)
            if key not in keys:
                keys.append(key)
            at += timedelta(hours=1)
        return keys

    def elapsed_days(self, now: datetime) -> float:
        """Days of the range that have happened by `now`: whole past days plus
        the elapsed share of today. Rates per day divide by this, so a range
        ending today is not diluted by the hours still to come."""
        today = timezone.localtime(now, self.tz).date()
        if today < self.start:
            return 0.0
        if today > self.end:
            return float(self.days)
        # In UTC: Python subtracts datetimes sharing a tzinfo as wall-clock
        # times, which would make every day 24 hours long.
        day_start = datetime.combine(today, time.min, tzinfo=self.tz).astimezone(UTC)
        day_end = datetime.combine(today + timedelta(days=1), time.min, tzinfo=self.tz)
        share = (now.astimezone(UTC) - day_start) / (day_end.astimezone(UTC) - day_start)
        return (today - self.start).days + share

    def query(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def _parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def range_from_params(params: QueryDict, *, now: datetime) -> tuple[DateRange, list[str]]:
    """The range asked for, or the last 7 days (including today) with a message
    saying why the request could not be used."""
    tz = timezone.get_default_timezone()
    today = timezone.localtime(now, tz).date()
    default = DateRange(start=today - timedelta(days=DEFAULT_DAYS - 1), end=today, tz=tz)
    raw_start, raw_end = params.get("start", "").strip(), params.get("end", "").strip()
    if not raw_start and not raw_end:
        return default, []
    start = _parse_date(raw_start) if raw_start else default.start
    end = _parse_date(raw_end) if raw_end else today
    errors = []
    if start is None:
        errors.append(f"“{raw_start[:20]}” is not a date (YYYY-MM-DD) for the start.")
    if end is None:
        errors.append(f"“{raw_end[:20]}” is not a date (YYYY-MM-DD) for the end.")
    if start and end and start > end:
        errors.append("The start date is after the end date.")
    if start and end and (end - start).days + 1 > MAX_DAYS:
        errors.append(f"The range is longer than {MAX_DAYS} days.")
    if errors:
        return default, [*errors, "Showing the last 7 days instead."]
    return DateRange(start=start, end=end, tz=tz), []


def number_from_params(
    params: QueryDict,
    name: str,
    *,
    label: str,
    maximum: Decimal,
    default: Decimal | None = None,
) -> tuple[Decimal | None, list[str]]:
    """A non-negative number typed by the manager (blank: the default)."""
    raw = params.get(name, "").strip().replace(",", "")
    if not raw:
        return default, []
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value < 0 or value > maximum:
        shown = "not set" if default is None else f"{default}"
        return default, [f"{label}: “{raw[:20]}” is not a number from 0 to {maximum}; {shown}."]
    return value, []

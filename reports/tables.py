"""Report tables: one structure rendered twice, as HTML and as CSV, so the
download holds exactly the numbers on the page.

Every cell is rounded once, here. HTML adds thousands separators and a "%"
sign; CSV writes the same digits bare (spreadsheets parse them as numbers)
and the unit is in the column header of both.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from config.csv_cells import csv_cell

# kind -> decimal places (None: not a number)
PLACES = {
    "int": 0,
    "num1": 1,
    "num2": 2,
    "pct": 1,
    "ratio3": 3,
    "usd": 2,
    "usd4": 4,
    "ms": 0,
    "text": None,
    "date": None,
}


@dataclass
class Column:
    key: str
    label: str
    kind: str = "int"  # a key of PLACES, or "row": the row's "kind" says

    @property
    def numeric(self) -> bool:
        return self.kind != "text" and self.kind != "date"


@dataclass
class Table:
    id: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    total: dict[str, Any] | None = None  # a last row set apart (team total, all days)
    note: str = ""
    empty: str = "Nothing in this range."
    collapsed: bool = False  # long tables start folded on the page (CSV has them whole)
    extra: dict[str, Any] = field(default_factory=dict)

    def _kind(self, column: Column, row: dict[str, Any]) -> str:
        return row.get("kind", "text") if column.kind == "row" else column.kind

    def cells(self, row: dict[str, Any], *, csv_form: bool = False) -> list[str]:
        return [
            format_value(row.get(c.key), self._kind(c, row), csv_form=csv_form)
            for c in self.columns
        ]

    @property
    def html_rows(self) -> list[list[tuple[str, bool]]]:
        """(text, numeric) per cell, for the template."""
        return [
            list(
                zip(
                    self.cells(row),
                    [self._kind(c, row) not in ("text", "date") for c in self.columns],
                    strict=True,
                )
            )
            for row in self.rows
        ]

    @property
    def html_total(self) -> list[tuple[str, bool]] | None:
        if self.total is None:
            return None
        return list(zip(self.cells(self.total), [c.numeric for c in self.columns], strict=True))


def _rounded(value: Any, places: int) -> Decimal:
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def format_value(value: Any, kind: str, *, csv_form: bool = False) -> str:
    if value is None or value == "":
        return "" if csv_form else "—"
    if kind == "date":
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%d %H:%M")
        if isinstance(value, date):
            return value.isoformat()
        return str(value)
    places = PLACES.get(kind)
    if places is None or isinstance(value, str):
        text = str(value)
        # A username or category like "=HYPERLINK(..)" must not run as a
        # formula when the file is opened in a spreadsheet.
        return csv_cell(text) if csv_form else text
    if kind == "pct":
        value = Decimal(str(value)) * 100
    number = _rounded(value, places)
    if number == 0:
        number = abs(number)  # no "-0.0"
    if csv_form:
        return f"{number:f}"
    text = f"{number:,f}"
    return f"{text}%" if kind == "pct" else text


def tables_csv(tables: list[Table], *, heading: list[str]) -> str:
    """All tables of a page in one CSV file: a title row, the header, the
    rows (and the total), a blank line between tables."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for line in heading:
        writer.writerow([line])
    for table in tables:
        writer.writerow([])
        writer.writerow([table.title])
        writer.writerow([c.label for c in table.columns])
        for row in table.rows:
            writer.writerow(table.cells(row, csv_form=True))
        if table.total is not None:
            writer.writerow(table.cells(table.total, csv_form=True))
    return out.getvalue()

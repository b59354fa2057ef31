"""One rule for every CSV Loupe writes: a cell that a spreadsheet would run
as a formula (OWASP "CSV injection") gets a leading quote. Titles, tags,
usernames and category names come from people and imported files, so the
corrections export, the reports CSV and the product exports all call this.
JSON Lines keeps every value exactly and never uses it."""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """The value as it may be written to a CSV cell: None becomes "", a text
    starting like a formula gets a leading apostrophe, anything else as is."""
    if value.__class__ is str:  # the common case first: this runs for every cell
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):  # a str subclass
        return "'" + value
    return value

"""Reading product import files: the checks made before anything is written, and the
records of a CSV or JSON Lines file with their line numbers.

What is wrong with the file as a whole is found by `import_file_check` before the first
row is written, so such a file imports nothing and says why (the CLI exits 2): binary
content, UTF-16/32, a byte that is not UTF-8 (with its line and byte offset), a quote
left open at the end of a CSV file, a CSV cell too large to read, a header without
`sku`. Everything else is a problem of one row, reported with its line number while the
other rows are imported: see `read_records`.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

# The csv module refuses cells over 128 KiB by stopping the whole file. Cells up to
# this size are read and checked by the row rules (a 1 MB description is a row error);
# only a larger one (16 Mi characters: an unclosed quote in practice) stops the file,
# at the check, before anything is written. The limit is process-wide and only raised.
CSV_FIELD_LIMIT = 16 * 1024 * 1024
csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))

# Columns whose cells are one line: a line break in one means a quote was left open and
# swallowed the rows after it (a description may hold line breaks).
SINGLE_LINE_COLUMNS = frozenset({"sku", "title", "brand", "image_url", "image_path"})

SAVE_AS_UTF8 = "save it as UTF-8 CSV or JSON Lines and import it again"
_HEAD_BYTES = 8192
_BLOCK_BYTES = 1 << 20
_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)
_SIGNATURES = (  # (first bytes, what the file is, what to do)
    (b"PK\x03\x04", "a ZIP archive (an Excel workbook?)", ": export the sheet as CSV UTF-8"),
    (b"\xd0\xcf\x11\xe0", "an Office document (an Excel workbook?)", ": export it as CSV UTF-8"),
    (b"%PDF", "a PDF document", ""),
    (b"\x89PNG", "a PNG image", ""),
    (b"\xff\xd8\xff", "a JPEG image", ""),
    (b"GIF8", "a GIF image", ""),
    (b"RIFF", "a RIFF file (a WebP image?)", ""),
    (b"\x1f\x8b", "a gzip archive", ": unpack it first"),
    (b"\x7fELF", "a program", ""),
)
# Appended after the last line of a CSV file: read as a record of its own unless a quote
# is still open, when it lands inside the open cell. A Unicode noncharacter, never text.
_END_OF_FILE = "\ufdd0loupe-end-of-file\ufdd0"


class ImportFileError(Exception):
    """The file as a whole cannot be imported (not UTF-8, binary, no `sku` column...).
    Raised before anything is written."""


def detect_format(filename: str, head: str) -> str:
    suffix = Path(filename).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    return "jsonl" if head.lstrip().startswith("{") else "csv"


def text_open(binary: IO[bytes]) -> io.TextIOWrapper:
    return io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")


def import_file_check(stream: IO[bytes], filename: str) -> str:
    """Check a whole file before anything is imported; return its format, "csv" or
    "jsonl", with `stream` back at its start. Raises ImportFileError saying what is
    wrong and where. Reads the file twice more (bytes, then CSV structure): a
    100,000-row file costs tenths of a second."""
    stream.seek(0)
    head = stream.read(_HEAD_BYTES)
    _binary_refuse(head)
    stream.seek(0)
    _utf8_check(stream)
    fmt = detect_format(filename, head.decode("utf-8-sig", errors="ignore"))
    stream.seek(0)
    text = text_open(stream)
    try:
        if fmt == "csv":
            for _ in _csv_header_and_rows(text):
                pass
        elif text.read(_HEAD_BYTES).lstrip().startswith("["):
            raise ImportFileError(
                "the file is one JSON array; JSON Lines has one JSON object per line"
            )
    finally:
        text.detach()  # closing the wrapper would close the caller's stream
    stream.seek(0)
    return fmt


def _binary_refuse(head: bytes) -> None:
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            raise ImportFileError(f"the file is {encoding} text, not UTF-8; {SAVE_AS_UTF8}")
    for signature, what, advice in _SIGNATURES:
        if head.startswith(signature):
            raise ImportFileError(f"the file is {what}, not CSV or JSON Lines text{advice}")
    # A stray NUL is a row error; text a quarter NUL is binary or UTF-16 without a BOM.
    if head and head.count(b"\x00") * 4 > len(head):
        raise ImportFileError(
            "the file looks binary (NUL bytes in its first 8 KB), not CSV or JSON Lines "
            f"text; {SAVE_AS_UTF8}"
        )


def _utf8_check(stream: IO[bytes]) -> None:
    """Decode the whole file as UTF-8 block by block; the first byte that is not UTF-8
    stops the import up front with its line and byte offset (a file in another
    encoding is wrong as a whole: importing its ASCII rows only would be worse)."""
    offset, line, pending = 0, 1, b""
    while True:
        block = stream.read(_BLOCK_BYTES)
        data = pending + block
        if not data:
            return
        try:
            data.decode("utf-8")
            good = len(data)
        except UnicodeDecodeError as exc:
            if not (block and exc.reason == "unexpected end of data"):
                bad = exc.start
                line += data.count(b"\n", 0, bad)
                raise ImportFileError(
                    f"the file is not UTF-8 text: line {line} holds the byte "
                    f"0x{data[bad]:02X} at byte offset {offset + bad}, which is not UTF-8; "
                    f"{SAVE_AS_UTF8}"
                ) from None
            good = exc.start  # a character cut by the end of the block: read on
        line += data.count(b"\n", 0, good)
        offset += good
        pending = data[good:]


# --- records -------------------------------------------------------------------------

Record = tuple[int, dict[str, Any] | str]  # (line, record) or (line, why it is unreadable)


def read_records(stream: IO[str], fmt: str) -> Iterator[Record]:
    """Yield (line number, record) for each row, or (line number, reason) for a row that
    cannot be read; blank lines are skipped."""
    return _csv_records(stream) if fmt == "csv" else _jsonl_records(stream)


class _KeptLines:
    """The file's lines for csv.reader, ending with the end-of-file marker, keeping the
    lines of the record being read (to re-read a record that spans lines)."""

    def __init__(self, text: IO[str]) -> None:
        self._lines = itertools.chain(text, [_END_OF_FILE + "\n"])
        self.kept: list[str] = []

    def __iter__(self) -> _KeptLines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.kept.append(line)
        return line


def _csv_rows(text: IO[str]) -> Iterator[tuple[int, int, list[str], str]]:
    """(first line, last line, cells, raw text when the record spans lines) per record."""
    lines = _KeptLines(text)
    reader = csv.reader(lines)
    last = 0
    while True:
        lines.kept.clear()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "field limit" in str(exc):
                raise ImportFileError(
                    f"line {reader.line_num}: a cell is longer than {CSV_FIELD_LIMIT:,} "
                    "characters (is a quote left open?)"
                ) from None
            raise ImportFileError(f"line {reader.line_num}: unreadable CSV: {exc}") from None
        first, last = last + 1, reader.line_num
        if cells == [_END_OF_FILE]:
            return
        if cells and _END_OF_FILE in cells[-1]:
            raise ImportFileError(
                f"the quote opened on line {first} is never closed: the rest of the file "
                "would be read as one cell; close the quote"
            )
        yield first, last, cells, "".join(lines.kept) if last > first else ""


def _csv_header_and_rows(text: IO[str]) -> Iterator[tuple[int, int, list[str], str]]:
    """The records after a checked header (lower-cased names, the header row first)."""
    rows = _csv_rows(text)
    first_row = next(rows, None)
    header = [name.strip().lower() for name in first_row[2]] if first_row else []
    if "sku" not in header:
        found = ", ".join(name for name in header if name) or "nothing"
        separator = next((sep for sep in ";\t|" if len(header) == 1 and sep in header[0]), "")
        hint = ""
        if separator:  # e.g. a spreadsheet saved with the locale's separator
            hint = f"; the columns look separated by {separator!r}: save it comma-separated"
        raise ImportFileError(f"the CSV header has no 'sku' column (found: {found}){hint}")
    twice = sorted({name for name in header if name and header.count(name) > 1})
    if twice:
        raise ImportFileError(f"the CSV header names {', '.join(twice)} more than once")
    yield 1, 1, header, ""
    yield from rows


def _csv_records(text: IO[str]) -> Iterator[Record]:
    rows = _csv_header_and_rows(text)
    _, _, header, _ = next(rows)
    for first, last, cells, raw in rows:
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        problem = _csv_row_problem(header, cells, first, last, raw)
        yield first, problem or dict(zip(header, cells, strict=True))


def _csv_row_problem(header: list[str], cells: list[str], first: int, last: int, raw: str):
    if raw:
        spanning = [
            name
            for name, cell in zip(header, cells, strict=False)
            if name in SINGLE_LINE_COLUMNS and ("\n" in cell or "\r" in cell)
        ]
        if spanning or not _strictly_quoted(raw):
            where = f" (the {spanning[0]} cell spans them)" if spanning else ""
            return (
                f"lines {first}-{last} read as one row{where}: is a quote on line {first} "
                "left open? None of these lines was imported"
            )
    if len(cells) > len(header):
        return f"more values than columns in the header ({len(cells)} for {len(header)})"
    if len(cells) < len(header):
        # Filling the missing cells with blanks would erase stored values.
        return f"fewer values than columns in the header ({len(cells)} for {len(header)})"
    return None


def _strictly_quoted(raw: str) -> bool:
    """Whether a record spanning lines is well-formed CSV. When a quote left open
    swallows rows, it closes at the next quote of the file, usually the opening quote
    of a later cell, so a character other than a separator follows it: strict CSV."""
    try:
        for _ in csv.reader(io.StringIO(raw), strict=True):
            pass
    except csv.Error:
        return False
    return True


def _jsonl_records(stream: IO[str]) -> Iterator[Record]:
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            yield number, f"invalid JSON: {exc.msg} (column {exc.colno})"
            continue
        except RecursionError:
            yield number, "the JSON is nested too deeply to read"
            continue
        except ValueError:  # int() refuses numbers over sys.get_int_max_str_digits()
            yield number, "a number in this line is too long to read (over 4,300 digits)"
            continue
        if not isinstance(record, dict):
            yield number, "each line must be a JSON object"
            continue
        yield number, {str(key).strip().lower(): value for key, value in record.items()}

"""Reading a spreadsheet into lines of cells: CSV (UTF-8, `,` or `;`) and Excel `.xlsx`.

A line's number is where it is in the file, as a person looking at it would
count: the header is line 1, and a CSV record spanning several physical
lines (a quoted line break) is numbered by the line it starts on. Problems
with the file itself (not UTF-8, no header, an unknown column, a quote that
never closes) raise FileFault naming the line where they start; a line that
cannot be read is the caller's row error, not a fault of the file.
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import IO, Any, NamedTuple

from screening.domain.fields import COLUMNS
from screening.files.formulas import restored

REQUIRED = ("number", "call_type")
# Columns an import reads past: the failed-rows file adds `reason`, and can be imported again as it is.
IGNORED = ("reason",)
XLSX_MAGIC = b"PK\x03\x04"
CSV, XLSX = "csv", "xlsx"
# A cell longer than this cannot be a value of ours; it is cut short wherever it is quoted back.
MAX_CELL = 1000


class FileFault(ValueError):
    """The file is not an import template; nothing of it is imported."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


class Line(NamedTuple):
    """One line of cells (a tuple: a million of them are made for a big file)."""

    number: int
    cells: list[str]
    # Spreadsheet cells as the workbook typed them (dates, numbers, booleans); None for CSV.
    typed: list[object] | None = None
    # For a CSV record that spans lines: the line it ends on.
    last: int = 0


@dataclass
class Sheet:
    """The header's column names (as written) and the lines after it."""

    columns: list[str]
    lines: Iterator[Line]
    # The separator a CSV file uses; "" for a workbook.
    delimiter: str = ""


def format_of(head: bytes, declared: str) -> str:
    """The format the content shows (a workbook is a zip archive), else the declared one."""
    if head.startswith(XLSX_MAGIC):
        return XLSX
    return declared


def header_of(cells: list[str], line: int = 1) -> list[str]:
    """The columns, checked: every name known, none twice, the required ones there."""
    names = [c.strip().lower() for c in cells]
    while names and not names[-1]:
        names.pop()  # spreadsheets pad the header with empty cells
    if not any(n in COLUMNS for n in names):
        shown = ",".join(c.strip() for c in cells)[:80]
        raise FileFault(
            line, f"missing header: the first line must name the columns, e.g. {','.join(COLUMNS)} (it has {shown!r})"
        )
    unknown = [n for n in names if n not in COLUMNS and n not in IGNORED]
    if unknown:
        raise FileFault(line, f"unknown column {unknown[0][:80]!r}; the columns are {','.join(COLUMNS)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise FileFault(line, f"column {repeated[0]!r} appears more than once")
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise FileFault(line, f"missing column {missing[0]!r}; the header must name {' and '.join(REQUIRED)}")
    return names


# ---------------------------------------------------------------------- CSV


class _Lines:
    """The file's lines decoded, counted, for the csv module; read and decoded a block at a time."""

    BLOCK = 4 * 1024 * 1024

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.number = 0
        # An apostrophe anywhere so far: only then may a cell hold one put before a formula (formulas.py).
        self.apostrophe = False

    def __iter__(self) -> Iterator[str]:
        carry = ""
        while block := self._source.read(self.BLOCK):
            try:
                text = carry + self._decoder.decode(block)
            except UnicodeDecodeError as exc:
                raise self._not_utf8(block, exc) from None
            if not self.apostrophe and "'" in text:
                self.apostrophe = True
            # Split at line feeds only (str.splitlines also splits at form feeds and the like, which
            # a cell may hold); the last piece, cut by the block's end, waits for the next block.
            pieces = text.split("\n")
            carry = pieces.pop()
            for piece in pieces:
                self.number += 1
                yield piece + "\n"
        try:
            carry += self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise FileFault(self.number + 1, "the file ends inside a UTF-8 character") from None
        if carry:
            self.number += 1
            self.apostrophe = self.apostrophe or "'" in carry
            yield carry

    def _not_utf8(self, block: bytes, exc: UnicodeDecodeError) -> FileFault:
        before = block[: exc.start]
        line = self.number + before.count(b"\n") + 1
        column = len(before) - (before.rfind(b"\n") + 1) + 1
        return FileFault(
            line,
            f"byte 0x{block[exc.start]:02x} at column {column} is not UTF-8;"
            " save the file as CSV UTF-8 (Excel: File > Save As > CSV UTF-8), or upload the .xlsx",
        )


def _delimiter(first: str) -> str:
    """`,` or `;`: whichever splits the header line into known column names."""
    best, found = ",", -1
    for candidate in (",", ";", "\t"):
        names = next(csv.reader([first], delimiter=candidate), [])
        known = sum(n.strip().lower() in COLUMNS for n in names)
        if known > found:
            best, found = candidate, known
    return best


def read_csv(source: IO[bytes]) -> Sheet:
    """A CSV template. Raises FileFault for the header; the lines raise it as they are read."""
    lines = _Lines(source)
    physical = iter(lines)
    # The header is read by hand, to find the separator before the csv module starts.
    first = ""
    for text in physical:
        if text.strip():
            first = text
            break
    if not first:
        if lines.number == 0:
            raise FileFault(1, f"the file is empty; line 1 must name the columns {','.join(COLUMNS)}")
        raise FileFault(
            1, f"missing header: the file has only empty lines; line 1 must name the columns {','.join(COLUMNS)}"
        )
    header_line = lines.number
    delimiter = _delimiter(first)
    try:
        header_cells = next(csv.reader([first], delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise FileFault(header_line, f"the header is not valid CSV: {exc}") from None
    columns = header_of(header_cells, header_line)
    return Sheet(columns, _csv_lines(lines, physical, delimiter), delimiter)


def _csv_lines(lines: _Lines, physical: Iterator[str], delimiter: str) -> Iterator[Line]:
    reader = csv.reader(physical, delimiter=delimiter, strict=True)
    while True:
        start = lines.number + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if lines.number > start:
                raise FileFault(
                    start, f"a quoted field opens on this line and does not close before line {lines.number} ({exc})"
                ) from None
            raise FileFault(start, f"not valid CSV: {exc}") from None
        # A blank line, or one of separators only: skipped (checked cheaply: most lines start with a value).
        if lines.apostrophe:
            for cell in cells:
                if cell[:1] == "'":
                    cells = [restored(c) for c in cells]
                    break
        if not cells or not (cells[0].strip() or "".join(cells).strip()):
            continue
        yield Line(start, cells, None, lines.number)


# --------------------------------------------------------------------- xlsx


def _text(value: object) -> str:
    """A workbook cell as the text a person sees in it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # Excel stores numbers typed into a cell as doubles: 8613800138000 arrives as 8613800138000.0.
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value)


def read_xlsx(source: IO[bytes]) -> Sheet:
    """The first sheet of a workbook. Raises FileFault for a file that is no workbook, or for its header."""
    from python_calamine import CalamineWorkbook  # a compiled reader: loaded only when a workbook comes

    try:
        book = CalamineWorkbook.from_filelike(source)
        sheet = book.get_sheet_by_index(0)
        start_row = (sheet.start or (0, 0))[0]
        rows = sheet.iter_rows()
    except (zipfile.BadZipFile, ValueError, OSError, IndexError) as exc:
        raise FileFault(1, f"not an .xlsx workbook that can be read ({type(exc).__name__}: {str(exc)[:200]})") from None
    except Exception as exc:  # noqa: BLE001 - calamine raises its own error types for damaged workbooks
        raise FileFault(1, f"not an .xlsx workbook that can be read ({type(exc).__name__}: {str(exc)[:200]})") from None
    number = start_row
    for row in rows:
        number += 1
        cells = [_text(v) for v in row]
        if any(c.strip() for c in cells):
            columns = header_of(cells, number)
            return Sheet(columns, _xlsx_lines(rows, number))
    raise FileFault(1, f"the workbook's first sheet is empty; its first row must name the columns {','.join(COLUMNS)}")


def _xlsx_lines(rows: Iterator[list[Any]], number: int) -> Iterator[Line]:
    for row in rows:
        number += 1
        cells = [_text(v) for v in row]
        if any(c.strip() for c in cells):
            yield Line(number, cells, list(row), number)


def read(source: IO[bytes], declared: str) -> Sheet:
    """A template file in the format its content shows, else the declared one."""
    head = source.read(len(XLSX_MAGIC))
    source.seek(0)
    if format_of(head, declared) == XLSX:
        return read_xlsx(source)
    return read_csv(source)


def from_bytes(data: bytes, declared: str) -> Sheet:
    return read(io.BytesIO(data), declared)

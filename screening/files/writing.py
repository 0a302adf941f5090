"""Writing rows of cells as CSV or as a workbook: failed-rows files and exports."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence

from screening.files.formulas import ESCAPED, defused
from screening.files.sheet import XLSX

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# CSV goes out in pieces of about this size.
CHUNK = 256 * 1024


def content_type(file_format: str) -> str:
    return XLSX_TYPE if file_format == XLSX else CSV_TYPE


def csv_chunks(
    header: Sequence[str], rows: Iterable[Sequence[str]], bom: bool = True, delimiter: str = ","
) -> Iterator[bytes]:
    """CSV in UTF-8, by default with a byte order mark (so that Excel reads it as UTF-8), in pieces.

    An empty header writes none: the rows continue a file begun earlier. A cell a spreadsheet would run
    as a formula is written behind an apostrophe (screening.files.formulas).
    """
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    if bom:
        out.write("\ufeff")
    if header:
        writer.writerow(header)
    for row in rows:
        for cell in row:
            if cell[:1] in ESCAPED:
                row = [defused(c) for c in row]
                break
        writer.writerow(row)
        if out.tell() >= CHUNK:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    if out.tell():
        yield out.getvalue().encode()


def xlsx_bytes(header: Sequence[str], rows: Iterable[Sequence[str]], sheet_name: str = "rows") -> bytes:
    """A workbook of one sheet, every cell text (numbers stay as written)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    book = Workbook(write_only=True)
    sheet = book.create_sheet(sheet_name)
    bold = Font(bold=True)
    titles = []
    for name in header:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = bold
        titles.append(cell)
    sheet.append(titles)
    for row in rows:
        cells = []
        for value in row:
            cell = WriteOnlyCell(sheet, value=value)
            # Text, always: a number keeps its + and leading zeros, and a cell written "=..." stays
            # what was written instead of becoming a formula (that Excel would run when opened).
            cell.data_type = "s"
            cell.number_format = "@"
            cells.append(cell)
        sheet.append(cells)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def file_chunks(file_format: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> Iterator[bytes]:
    if file_format == XLSX:
        yield xlsx_bytes(header, rows)
    else:
        yield from csv_chunks(header, rows)

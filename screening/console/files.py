"""The files the console hands out: the import template and exports, as CSV or XLSX.

Both use the import template's columns, so that an export can be edited and
imported again. The server reads uploaded files itself; the console only
writes. (To be pointed at the shared file module of the import issue once
it lands; until then the writer lives here.)

CSV is UTF-8 with a byte order mark: without it Excel reads Chinese notes as
mojibake, and the import reads it either way. XLSX is written as a stream of
inline strings (no shared-string table held in memory), so an export of
millions of entries costs a temporary file, not memory; every cell is text,
so +8613800138000 stays a number to dial, not 8.6E+12.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import IO
from xml.sax.saxutils import escape

from screening.v1 import screening_pb2 as pb

COLUMNS = ("number", "call_type", "match_kind", "enabled", "note", "expire_time")
EXAMPLE_ROWS = (
    ("+14155550100", "both", "exact", "true", "Reported for robocalls, ticket 1234", ""),
    ("+1900", "outbound", "prefix", "true", "Premium-rate numbers", ""),
    ("+8613800138000", "inbound", "", "false", "Paused, review by year end", "2027-01-01T00:00:00Z"),
)
CALL_TYPE_WORDS = {pb.CALL_TYPE_INBOUND: "inbound", pb.CALL_TYPE_OUTBOUND: "outbound", pb.CALL_TYPE_BOTH: "both"}
MATCH_KIND_WORDS = {pb.MATCH_KIND_EXACT: "exact", pb.MATCH_KIND_PREFIX: "prefix"}
CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def entry_row(entry: pb.ForbiddenNumber) -> tuple[str, ...]:
    expire = ""
    if entry.HasField("expire_time"):
        expire = entry.expire_time.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z")
    return (
        entry.number,
        CALL_TYPE_WORDS.get(entry.call_type, ""),
        MATCH_KIND_WORDS.get(entry.match_kind, "exact"),
        "true" if entry.enabled else "false",
        entry.note,
        expire,
    )


class CsvWriter:
    """Rows to CSV bytes, a batch at a time (for streaming responses)."""

    def __init__(self) -> None:
        self._text = io.StringIO()
        self._writer = csv.writer(self._text, lineterminator="\r\n")
        self._started = False

    def rows(self, rows: Iterable[Sequence[str]]) -> bytes:
        self._writer.writerows(rows)
        data = self._text.getvalue().encode()
        self._text.seek(0)
        self._text.truncate()
        if not self._started:
            self._started = True
            data = "\ufeff".encode() + data
        return data


def _column_name(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def _cell_text(value: str) -> str:
    # XML 1.0 forbids most control characters; a note pasted from elsewhere may hold one.
    cleaned = "".join(c for c in value if c in "\t\n\r" or ord(c) >= 0x20)
    return escape(cleaned)


_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/></Relationships>'
)


def _workbook(sheet_name: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        f'<sheets><sheet name="{escape(sheet_name)}" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )


class XlsxWriter:
    """One worksheet of text cells, written into `target` (a file opened for binary writing)."""

    def __init__(self, target: IO[bytes], sheet_name: str = "numbers") -> None:
        self._zip = zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED)
        self._zip.writestr("[Content_Types].xml", _CONTENT_TYPES)
        self._zip.writestr("_rels/.rels", _ROOT_RELS)
        self._zip.writestr("xl/workbook.xml", _workbook(sheet_name))
        self._zip.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        self._sheet = self._zip.open("xl/worksheets/sheet1.xml", "w", force_zip64=True)
        self._sheet.write(
            b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        )
        self._row = 0

    def rows(self, rows: Iterable[Sequence[str]]) -> None:
        parts: list[str] = []
        for row in rows:
            self._row += 1
            parts.append(f'<row r="{self._row}">')
            for index, value in enumerate(row):
                if value:
                    ref = f"{_column_name(index)}{self._row}"
                    parts.append(
                        f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{_cell_text(value)}</t></is></c>'
                    )
            parts.append("</row>")
        self._sheet.write("".join(parts).encode())

    def close(self) -> None:
        self._sheet.write(b"</sheetData></worksheet>")
        self._sheet.close()
        self._zip.close()


def template_csv() -> bytes:
    return CsvWriter().rows([COLUMNS, *EXAMPLE_ROWS])


def template_xlsx() -> bytes:
    out = io.BytesIO()
    writer = XlsxWriter(out, "template")
    writer.rows([COLUMNS, *EXAMPLE_ROWS])
    writer.close()
    return out.getvalue()

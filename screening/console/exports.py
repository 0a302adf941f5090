"""Exports: every matching entry as CSV or XLSX, in the import template's columns, streamed.

The columns, the words and the CSV writer are the shared ones
(screening.domain.fields, screening.files), so that an export can be edited
and imported again, and the template downloads are screening.files.template
itself. The workbook is the console's own: the shared writer (openpyxl)
builds a whole workbook in memory, while this one writes a stream of inline
strings into a temporary file, so an export of millions of entries costs
disk, not memory; every cell is text, so +8613800138000 stays a number to
dial, not 8.6E+12.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import IO
from xml.sax.saxutils import escape

from screening.domain.fields import COLUMNS
from screening.domain.model import Action, CallType, MatchKind
from screening.v1 import screening_pb2 as pb

# The template's words (the import reads these back): inbound, outbound, both; exact, prefix; block, allow.
CALL_TYPE_WORDS = {int(c): c.name.lower() for c in CallType}
MATCH_KIND_WORDS = {int(k): k.name.lower() for k in MatchKind}
ACTION_WORDS = {int(a): a.name.lower() for a in Action}


def entry_row(entry: pb.ForbiddenNumber) -> list[str]:
    """An entry as a template line: the words an import reads back."""
    expire = ""
    if entry.HasField("expire_time"):
        expire = entry.expire_time.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z")
    cells = {
        "number": entry.number,
        "call_type": CALL_TYPE_WORDS.get(entry.call_type, ""),
        "match_kind": MATCH_KIND_WORDS.get(entry.match_kind, "exact"),
        "enabled": "true" if entry.enabled else "false",
        "note": entry.note,
        "expire_time": expire,
        "action": ACTION_WORDS.get(entry.action, "block"),
    }
    return [cells[name] for name in COLUMNS]


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

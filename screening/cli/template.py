"""The import template: a CSV file admins fill in, read into ImportRow messages.

Columns: number,call_type,match_kind,enabled,note,expire_time. The header
is line 1 and must name `number` and `call_type`; the other columns may be
left out, in any order. call_type is inbound, outbound or both; match_kind
exact or prefix (empty: exact); enabled true or false (empty: true);
expire_time an RFC 3339 time with its offset (empty: never). A UTF-8 byte
order mark and quoted fields (commas, line breaks inside quotes) are fine.

Problems with the file itself (no header, unknown or repeated columns,
bytes that are not UTF-8) raise TemplateError naming the line. A cell that
cannot be read (call_type "sometimes") makes a row error with its line, in
the batch it belongs to, so that one typo does not stop a million-row file;
the server validates and reports everything else (the numbers above all).
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, TextIO

from google.protobuf import timestamp_pb2

from screening.cli.values import CALL_TYPES, MATCH_KINDS
from screening.domain.fields import COLUMNS as FILE_COLUMNS
from screening.v1 import screening_pb2 as pb

COLUMNS = FILE_COLUMNS
REQUIRED = ("number", "call_type")
DEFAULT_BATCH = 1000

_CALL_TYPES = CALL_TYPES
_MATCH_KINDS = {"": pb.MATCH_KIND_EXACT, **MATCH_KINDS}
_ENABLED = {"": None, "true": True, "false": False}

EXAMPLE_ROWS = (
    ("+14155550100", "both", "exact", "true", "Reported for robocalls, ticket 1234", ""),
    ("+1900", "outbound", "prefix", "true", "Premium-rate numbers", ""),
    ("+8613800138000", "inbound", "", "false", "Paused, review by year end", "2027-01-01T00:00:00Z"),
)


class TemplateError(ValueError):
    """The file is not an import template; nothing of it should be imported."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass
class TemplateBatch:
    """Rows to send in one message, and the rows of the same lines that could not be read."""

    rows: list[pb.ImportRow] = field(default_factory=list)
    errors: list[pb.ImportRowError] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows) + len(self.errors)


def write_template(out: TextIO) -> None:
    """The template to download: the header and example rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(EXAMPLE_ROWS)


def _lines(source: BinaryIO, position: list[int]) -> Iterator[str]:
    """Decoded lines for the csv module; position[0] is the number of the last line read."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    for raw in source:
        position[0] += 1
        try:
            yield decoder.decode(raw)
        except UnicodeDecodeError as exc:
            raise TemplateError(
                position[0],
                f"byte 0x{raw[exc.start]:02x} at column {exc.start + 1} is not UTF-8; save the file as UTF-8",
            ) from None
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise TemplateError(position[0], "the file ends inside a UTF-8 character") from None


def _header(cells: list[str]) -> list[str]:
    names = [c.strip().lower() for c in cells]
    unknown = [n for n in names if n not in COLUMNS]
    if not any(n in COLUMNS for n in names):
        raise TemplateError(1, f"missing header: the first line must name the columns, e.g. {','.join(COLUMNS)}")
    if unknown:
        raise TemplateError(1, f"unknown column {unknown[0]!r}; the columns are {','.join(COLUMNS)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise TemplateError(1, f"column {repeated[0]!r} appears more than once")
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise TemplateError(1, f"missing column {missing[0]!r}; the header must name {' and '.join(REQUIRED)}")
    return names


def _expire_time(text: str) -> timestamp_pb2.Timestamp:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expire_time {text!r}: not an RFC 3339 time such as 2027-01-01T00:00:00Z") from None
    if value.tzinfo is None:
        raise ValueError(f"expire_time {text!r}: needs a time zone offset, such as Z or +08:00")
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def _row(line: int, names: list[str], cells: list[str]) -> pb.ImportRow:
    """The row of one line, or ValueError naming the cell that cannot be read."""
    if len(cells) != len(names):
        raise ValueError(f"has {len(cells)} fields; the header has {len(names)}")
    values = dict(zip(names, cells, strict=True))
    row = pb.ImportRow(line=line, number=values["number"].strip(), note=values.get("note", ""))
    call_type = values["call_type"].strip().lower()
    if call_type not in _CALL_TYPES:
        raise ValueError(f"call_type {values['call_type']!r}: expected inbound, outbound or both")
    row.call_type = _CALL_TYPES[call_type]
    kind = values.get("match_kind", "").strip().lower()
    if kind not in _MATCH_KINDS:
        raise ValueError(f"match_kind {values['match_kind']!r}: expected exact or prefix (empty: exact)")
    row.match_kind = _MATCH_KINDS[kind]
    enabled = values.get("enabled", "").strip().lower()
    if enabled not in _ENABLED:
        raise ValueError(f"enabled {values['enabled']!r}: expected true or false (empty: true)")
    if _ENABLED[enabled] is not None:
        row.enabled = bool(_ENABLED[enabled])
    expire = values.get("expire_time", "").strip()
    if expire:
        row.expire_time.CopyFrom(_expire_time(expire))
    return row


def read_template(source: BinaryIO, batch_size: int = DEFAULT_BATCH) -> Iterator[TemplateBatch]:
    """Read a template file (opened in binary mode) into batches of at most `batch_size` lines.

    Blank lines are skipped. Raises TemplateError for a file that is not a
    template; the batches yielded before it should then be thrown away.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size {batch_size}: must be at least 1")
    position = [0]
    reader = csv.reader(_lines(source, position), strict=True)
    names: list[str] | None = None
    batch = TemplateBatch()
    while True:
        start = position[0] + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise TemplateError(position[0], f"not valid CSV: {exc}") from None
        if not cells or all(not c.strip() for c in cells):
            if names is None and start == 1:
                raise TemplateError(1, f"missing header: line 1 is empty; it must name the columns {','.join(COLUMNS)}")
            continue
        if names is None:
            names = _header(cells)
            continue
        try:
            batch.rows.append(_row(start, names, cells))
        except ValueError as exc:
            number = cells[names.index("number")] if len(cells) > names.index("number") else ""
            batch.errors.append(pb.ImportRowError(line=start, number=number, reason=str(exc)))
        if len(batch) >= batch_size:
            yield batch
            batch = TemplateBatch()
    if names is None:
        raise TemplateError(1, f"missing header: the file is empty; line 1 must name the columns {','.join(COLUMNS)}")
    if batch:
        yield batch

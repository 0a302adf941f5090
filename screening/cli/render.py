"""Printing resources as a table (rich), JSON (proto field names) or CSV.

CSV of entries starts with the import template's columns; `export` writes
exactly those, so an export can be edited and imported again (a cell a
spreadsheet would run as a formula behind an apostrophe, which import takes
off: screening.files.formulas).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table
from rich.text import Text

from screening.cli.values import (
    ACTION_NAMES,
    CALL_TYPE_NAMES,
    FILE_FORMAT_NAMES,
    JOB_STATE_NAMES,
    MATCH_KIND_NAMES,
    MODE_NAMES,
    STATUS_NAMES,
    VERDICT_NAMES,
    OutputFormat,
    format_time,
)
from screening.files.formulas import defused
from screening.v1 import screening_pb2 as pb

Cell = Callable[[Any], str]


@dataclass(frozen=True)
class Column:
    header: str  # table heading
    key: str  # CSV column
    cell: Cell
    table: bool = True
    csv: bool = True


@dataclass(frozen=True)
class Kind:
    """How one resource type is shown."""

    name: str
    columns: tuple[Column, ...]


def _time(field: str) -> Cell:
    return lambda m: format_time(getattr(m, field), m.HasField(field))


def _enabled(m: pb.ForbiddenNumber) -> str:
    return "true" if (m.enabled if m.HasField("enabled") else True) else "false"


ENTRY = Kind(
    "forbidden number",
    (
        Column("NUMBER", "number", lambda m: m.number),
        Column("CALL TYPE", "call_type", lambda m: CALL_TYPE_NAMES.get(m.call_type, "")),
        Column("MATCH", "match_kind", lambda m: MATCH_KIND_NAMES.get(m.match_kind, "")),
        Column("ENABLED", "enabled", _enabled),
        Column("NOTE", "note", lambda m: m.note),
        Column("EXPIRES", "expire_time", _time("expire_time")),
        # Unset (a server before actions): BLOCK, as the API reads it on input.
        Column("ACTION", "action", lambda m: ACTION_NAMES.get(m.action, "block")),
        Column("STATUS", "status", lambda m: STATUS_NAMES.get(m.status, "")),
        Column("ID", "id", lambda m: m.id),
        Column("CREATED", "create_time", _time("create_time"), table=False),
        Column("UPDATED", "update_time", _time("update_time")),
        Column("ETAG", "etag", lambda m: m.etag, table=False),
        Column("HITS", "hit_count", lambda m: str(m.hit_count)),
        Column("LAST HIT", "last_hit_time", _time("last_hit_time")),
    ),
)

# Exactly the import template's columns: an export in this form imports again.
TEMPLATE_ROW = Kind("forbidden number", ENTRY.columns[:7])


def _changed(event: pb.AuditEvent) -> str:
    if not event.HasField("before") or not event.HasField("after"):
        shown = event.after if event.HasField("after") else event.before
        return shown.number
    before, after = event.before, event.after
    changes = []
    for column in TEMPLATE_ROW.columns:
        old, new = column.cell(before), column.cell(after)
        if old != new:
            changes.append(f"{column.key} {old or '-'} -> {new or '-'}")
    return f"{after.number}: {'; '.join(changes)}" if changes else after.number


AUDIT_EVENT = Kind(
    "audit event",
    (
        Column("TIME", "create_time", _time("create_time")),
        Column("ACTION", "action", lambda m: m.action),
        Column("ACTOR", "actor", lambda m: m.actor),
        Column("RESOURCE", "resource_id", lambda m: m.resource_id),
        Column("CHANGE", "change", _changed),
        Column("REQUEST", "request_id", lambda m: m.request_id, table=False),
        Column("ID", "id", lambda m: m.id, table=False),
    ),
)


REASON_WORDS = {
    pb.SCREEN_REASON_BLOCK_ENTRY: "a blocking entry decided",
    pb.SCREEN_REASON_ALLOW_ENTRY: "an allow-exception decided",
    pb.SCREEN_REASON_NO_ENTRY: "no entry matches",
    pb.SCREEN_REASON_ONLY_DISABLED: "only disabled entries match",
    pb.SCREEN_REASON_ONLY_EXPIRED: "only expired entries match",
    pb.SCREEN_REASON_OTHER_DIRECTION: "entries match for the other direction only",
    pb.SCREEN_REASON_EMERGENCY_NUMBER: "an emergency number: always allowed",
    pb.SCREEN_REASON_WITHHELD: "a withheld caller: the tenant's withheld policy",
}


TENANT_SETTINGS = Kind(
    "tenant settings",
    (
        Column("TENANT", "tenant_id", lambda m: m.tenant_id),
        Column("NAME", "display_name", lambda m: m.display_name),
        Column("REGION", "region", lambda m: m.region or "(the server's)"),
        Column("WITHHELD CALLERS", "withheld_policy", lambda m: "block" if m.withheld_policy == 2 else "allow"),
        Column("LISTS", "subscribed_lists", lambda m: ",".join(m.subscribed_lists)),
        Column("ETAG", "etag", lambda m: m.etag),
    ),
)
REGION_CHANGE = Kind(
    "region change",
    (
        Column("ID", "id", lambda m: m.entry.id),
        Column("STORED", "number", lambda m: m.entry.number),
        Column("IN THE REGION", "number_in_region", lambda m: m.number_in_region),
    ),
)


def _progress(m: pb.ImportJob) -> str:
    """How far a running job got: the share of its file read, or its rows so far."""
    if m.state != pb.IMPORT_JOB_STATE_RUNNING:
        return ""
    if m.file_size:
        return f"{min(m.bytes_received / m.file_size, 1.0):.0%} of file"
    return f"{m.total_rows:,} rows"


IMPORT_JOB = Kind(
    "import job",
    (
        Column("ID", "id", lambda m: m.id),
        Column("STATE", "state", lambda m: JOB_STATE_NAMES.get(m.state, "")),
        Column("BY", "actor", lambda m: m.actor),
        Column("SOURCE", "source_name", lambda m: m.source_name),
        Column("FORMAT", "file_format", lambda m: FILE_FORMAT_NAMES.get(m.file_format, "rows")),
        Column("MODE", "mode", lambda m: MODE_NAMES.get(m.mode, "")),
        Column("PROGRESS", "bytes_received", _progress, csv=False),
        Column("ROWS", "total_rows", lambda m: str(m.total_rows)),
        Column("CREATED", "created_count", lambda m: str(m.created_count)),
        Column("UPDATED", "updated_count", lambda m: str(m.updated_count)),
        Column("UNCHANGED", "unchanged_count", lambda m: str(m.unchanged_count)),
        Column("SKIPPED", "skipped_count", lambda m: str(m.skipped_count)),
        Column("SUPERSEDED", "superseded_count", lambda m: str(m.superseded_count)),
        Column("FAILED", "failed_count", lambda m: str(m.failed_count)),
        Column("STARTED", "create_time", _time("create_time")),
        Column("FINISHED", "finish_time", _time("finish_time")),
        Column("REASON", "failure_reason", lambda m: m.failure_reason, table=False),
    ),
)

ROW_ERROR = Kind(
    "bad row",
    (
        Column("LINE", "line", lambda m: str(m.line)),
        Column("NUMBER", "number", lambda m: m.number),
        Column("COLUMN", "column", lambda m: m.column, table=False),
        Column("REASON", "reason", lambda m: m.reason),
    ),
)

VERDICT = Kind(
    "verdict",
    (
        Column("VERDICT", "verdict", lambda m: VERDICT_NAMES.get(m.verdict, "")),
        Column("NUMBER", "normalized_number", lambda m: m.normalized_number),
        Column("WHY", "reason", lambda m: REASON_WORDS.get(m.reason, "")),
        # The entry that decided, BLOCK or ALLOW, and the shared list it is on ("" for the tenant's own).
        Column("DECIDED BY", "decided_number", lambda m: m.decided_number),
        Column("MATCH", "decided_kind", lambda m: MATCH_KIND_NAMES.get(m.decided_kind, "")),
        Column("ACTION", "decided_action", lambda m: ACTION_NAMES.get(m.decided_action, "")),
        Column("LIST", "decided_list", lambda m: m.decided_list),
        Column("ENTRY", "decided_id", lambda m: m.decided_id),
        Column("MATCHED", "matched_number", lambda m: m.matched_number, table=False),
        Column("MATCHED KIND", "matched_kind", lambda m: MATCH_KIND_NAMES.get(m.matched_kind, ""), table=False),
        Column("MATCHED ID", "matched_id", lambda m: m.matched_id, table=False),
        Column("DATA VERSION", "data_version", lambda m: str(m.data_version)),
        Column("CALL ID", "call_id", lambda m: m.call_id, table=False),
    ),
)

REPLICA_STATUS = Kind(
    "replica status",
    (
        Column("SERVING", "serving", lambda m: str(m.serving).lower()),
        Column("DATA VERSION", "data_version", lambda m: str(m.data_version)),
        Column("ENTRIES", "entries", lambda m: str(m.entries)),
        Column("LISTENER CONNECTED", "connected", lambda m: str(m.connected).lower()),
        Column("LAST SYNC", "last_sync_time", _time("last_sync_time")),
        Column("SECONDS BEHIND", "seconds_behind", lambda m: f"{m.seconds_behind:.3f}"),
        Column("LISTENER RECONNECTS", "listener_reconnects", lambda m: str(m.listener_reconnects)),
        Column("HAS PRIMARY", "has_primary", lambda m: str(m.has_primary).lower()),
        Column("FEED", "feed", lambda m: "standby" if m.feed_standby else "primary"),
        Column(
            "HOT STANDBY FEEDBACK",
            "hot_standby_feedback",
            lambda m: (
                ("on" if m.hot_standby_feedback else "OFF: set hot_standby_feedback = on on the standby")
                if m.feed_standby
                else ""
            ),
        ),
        Column("FEED BEHIND", "feed_behind", lambda m: str(m.feed_behind) if m.feed_behind else ""),
    ),
)


def to_dict(message: Message) -> dict[str, Any]:
    """The proto3 JSON form grpcurl prints too, with the .proto field names."""
    return json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        unquote_int64_if_possible=True,
    )


def console(file: TextIO | None = None) -> Console:
    out = sys.stdout if file is None else file
    # Piped output is not cut at 80 columns: the reader is a program or a file.
    return Console(file=out, width=None if out.isatty() else 250, highlight=False)


def _table(kind: Kind, caption: str | None = None) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False, caption=caption, caption_justify="left")
    for column in kind.columns:
        if column.table:
            table.add_column(column.header, overflow="fold")
    return table


def _table_row(kind: Kind, message: Any) -> list[Text]:
    # Text, not markup: a note such as "[red]" is data.
    return [Text(c.cell(message)) for c in kind.columns if c.table]


def listing(
    messages: Iterable[Any],
    kind: Kind,
    output: OutputFormat,
    file: TextIO | None = None,
    caption: str | None = None,
) -> int:
    """Print many; JSON is an array, CSV has a header. Returns how many were printed."""
    out = sys.stdout if file is None else file
    count = 0
    if output is OutputFormat.table:
        table = _table(kind, caption)
        for count, message in enumerate(messages, 1):  # noqa: B007 - count is the result
            table.add_row(*_table_row(kind, message))
        console(out).print(table)
    elif output is OutputFormat.csv:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([c.key for c in kind.columns if c.csv])
        for count, message in enumerate(messages, 1):  # noqa: B007
            # A cell a spreadsheet would run as a formula goes out behind an apostrophe; import takes it off.
            writer.writerow([defused(c.cell(message)) for c in kind.columns if c.csv])
    else:
        # Streamed item by item, so an export of millions never sits in memory.
        out.write("[")
        for count, message in enumerate(messages, 1):
            out.write(("\n  " if count == 1 else ",\n  ") + json.dumps(to_dict(message), ensure_ascii=False))
        out.write("\n]\n" if count else "]\n")
    return count


def single(message: Any, kind: Kind, output: OutputFormat, file: TextIO | None = None) -> None:
    """Print one resource: a key/value table, a JSON object, or a CSV header and row."""
    out = sys.stdout if file is None else file
    if output is OutputFormat.json:
        out.write(json.dumps(to_dict(message), indent=2, ensure_ascii=False) + "\n")
    elif output is OutputFormat.csv:
        listing([message], kind, output, out)
    else:
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for column in kind.columns:
            value = column.cell(message)
            if value:
                table.add_row(column.header.lower(), Text(value))
        console(out).print(table)

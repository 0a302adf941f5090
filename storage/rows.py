"""What the queries take and return: rows as PostgreSQL holds them, enums as their smallint codes.

The storage layer owns these types; the layers above convert them to their
own. Column lists in SQL are derived from these dataclasses, so a column is
declared once here (and, for a forbidden number, checked against the
domain's declaration of its fields by a test).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any


def columns(row_type: type[Any]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(row_type))


@dataclass(frozen=True, slots=True)
class EntryRow:
    """A forbidden number as stored (live rows only reach the layers above)."""

    id: str
    tenant_id: str
    number: str
    match_kind: int
    call_type: int
    enabled: bool
    note: str
    expire_time: datetime | None
    # 1 block, 2 allow.
    action: int
    create_time: datetime
    update_time: datetime
    # Bumped by a trigger on every update; the API's etag.
    revision: int
    # Calls the entry decided, summed over replicas (entry_hits, a few seconds behind), and the last one.
    hit_count: int
    last_hit_time: datetime | None


@dataclass(frozen=True, slots=True)
class EntryValues:
    """The columns a create or an update writes."""

    number: str
    match_kind: int
    call_type: int
    enabled: bool
    note: str
    expire_time: datetime | None
    action: int = 1


# Set by the queries, never by a caller.
SERVER_COLUMNS = ("id", "tenant_id", "create_time", "update_time", "revision", "hit_count", "last_hit_time")


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """Restricts a listing; None or "" does not restrict."""

    enabled: bool | None = None
    call_type: int | None = None
    match_kind: int | None = None
    number_prefix: str = ""
    # 1 active (enabled, not expired), 2 disabled, 3 expired (enabled, expire_time passed).
    status: int | None = None
    # Digits the number contains, or text the note contains (case-insensitive).
    query: str = ""


@dataclass(frozen=True, slots=True)
class Who:
    """Who made a change, for the audit trail."""

    actor: str
    request_id: str


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    tenant_id: str
    actor: str
    action: str
    resource_id: str
    request_id: str
    # The entry before and after the change, as the layer above described it.
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    create_time: datetime
    # For a change an import made: the job ("" otherwise).
    import_job_id: str
    # The columns the change set.
    changed_fields: list[str]


@dataclass(frozen=True, slots=True)
class AuditFilter:
    resource_id: str = ""
    actor: str = ""
    action: str = ""
    import_job_id: str = ""


# Kinds of import_job_rows.
FAILED, SUPERSEDED = 1, 2


@dataclass(frozen=True, slots=True)
class JobLine:
    """A line of an import worth keeping: a bad one (FAILED) or one a later line replaced (SUPERSEDED)."""

    kind: int
    line: int
    number: str
    cells: list[str]
    reason: str = ""
    column: str = ""
    by_line: int = 0


@dataclass(frozen=True, slots=True)
class JobRow:
    id: str
    tenant_id: str
    state: int  # 1 running, 2 succeeded, 3 failed
    mode: int  # 1 upsert, 2 insert only
    source_name: str
    actor: str
    file_format: int  # 0 rows, 1 CSV, 2 xlsx
    file_size: int
    bytes_received: int
    columns: list[str]
    delimiter: str  # a CSV file's separator; "" for a workbook or rows
    total_rows: int
    created_count: int
    updated_count: int
    unchanged_count: int
    skipped_count: int
    superseded_count: int
    failed_count: int
    failure_reason: str
    create_time: datetime
    finish_time: datetime | None
    # The first lines of each kind, in line order (not every one: see ImportJobStore.lines).
    errors: list[JobLine]
    superseded: list[JobLine]

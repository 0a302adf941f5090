"""Plain typed domain objects, free of protobuf and SQL."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Direction(enum.IntEnum):
    INBOUND = 1
    OUTBOUND = 2


class CallType(enum.IntEnum):
    INBOUND = 1
    OUTBOUND = 2
    BOTH = 3

    def covers(self, direction: Direction) -> bool:
        return self is CallType.BOTH or self.value == direction.value


class MatchKind(enum.IntEnum):
    EXACT = 1
    PREFIX = 2


class Verdict(enum.IntEnum):
    ALLOW = 1
    BLOCK = 2


class ScreenReason(enum.IntEnum):
    BLOCK_ENTRY = 1
    ALLOW_ENTRY = 2
    NO_ENTRY = 3
    ONLY_DISABLED = 4
    ONLY_EXPIRED = 5
    OTHER_DIRECTION = 6
    EMERGENCY_NUMBER = 7
    WITHHELD = 8


class Action(enum.IntEnum):
    BLOCK = 1
    ALLOW = 2


class WithheldPolicy(enum.IntEnum):
    ALLOW = 1
    BLOCK = 2


class EntryStatus(enum.IntEnum):
    ACTIVE = 1
    DISABLED = 2
    EXPIRED = 3


class ImportMode(enum.IntEnum):
    UPSERT = 1
    INSERT_ONLY = 2


class ImportJobState(enum.IntEnum):
    RUNNING = 1
    SUCCEEDED = 2
    FAILED = 3


@dataclass(frozen=True, slots=True)
class ForbiddenNumber:
    """A stored entry as the admin API sees it."""

    id: str
    tenant_id: str
    number: str
    match_kind: MatchKind
    call_type: CallType
    enabled: bool
    note: str
    expire_time: datetime | None
    action: Action
    create_time: datetime
    update_time: datetime
    etag: str
    hit_count: int = 0
    last_hit_time: datetime | None = None

    def status(self, now: datetime) -> EntryStatus:
        if not self.enabled:
            return EntryStatus.DISABLED
        if self.expire_time is not None and self.expire_time <= now:
            return EntryStatus.EXPIRED
        return EntryStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class TenantSettings:
    tenant_id: str
    display_name: str
    region: str  # "" : the server's default region
    withheld_policy: WithheldPolicy
    subscribed_lists: list[str]
    etag: str
    update_time: datetime | None


@dataclass(frozen=True, slots=True)
class RegionChange:
    entry: ForbiddenNumber
    number_in_region: str


@dataclass(frozen=True, slots=True)
class Filters:
    enabled: bool | None = None
    call_type: CallType | None = None
    match_kind: MatchKind | None = None
    number_prefix: str = ""
    status: EntryStatus | None = None
    # Digits the number contains, or text the note contains (case-insensitive).
    query: str = ""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change, for the audit trail."""

    name: str = "anonymous"
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    tenant_id: str
    actor: str
    action: str
    resource_id: str
    request_id: str
    # The entry before and after the change: field name -> value, as screening.domain.fields declares them.
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    create_time: datetime
    # For a change an import made: the job ("" otherwise).
    import_job_id: str = ""
    # The fields the change set.
    changed_fields: list[str] = field(default_factory=list)


class FileFormat(enum.IntEnum):
    CSV = 1
    XLSX = 2


@dataclass(frozen=True, slots=True)
class RowError:
    """A bad import line: where it was, what it said, why it was refused."""

    line: int
    number: str
    reason: str
    # The line's cells as read, in the file's column order.
    cells: list[str] = field(default_factory=list)
    # The column the reason is about; "" when about the whole line.
    column: str = ""


@dataclass(frozen=True, slots=True)
class Superseded:
    """A line that a later line of the same import, for the same number and match kind, replaced."""

    line: int
    number: str
    by_line: int


@dataclass(frozen=True, slots=True)
class ImportJob:
    id: str
    tenant_id: str
    state: ImportJobState
    mode: ImportMode
    source_name: str
    actor: str
    file_format: FileFormat | None  # None: rows sent by a program
    file_size: int
    bytes_received: int
    columns: list[str]
    delimiter: str  # a CSV file's separator, kept for its failed-rows file; "" for a workbook or rows
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
    # The first bad lines and superseded lines, in line order.
    errors: list[RowError]
    superseded: list[Superseded]

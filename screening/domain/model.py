"""Plain typed domain objects, free of protobuf and SQL."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
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
    create_time: datetime
    update_time: datetime
    etag: str

    def status(self, now: datetime) -> EntryStatus:
        if not self.enabled:
            return EntryStatus.DISABLED
        if self.expire_time is not None and self.expire_time <= now:
            return EntryStatus.EXPIRED
        return EntryStatus.ACTIVE


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


@dataclass(frozen=True, slots=True)
class RowError:
    """A bad import row: where it was, what it said, why it was refused."""

    line: int
    number: str
    reason: str


@dataclass(frozen=True, slots=True)
class ImportJob:
    id: str
    tenant_id: str
    state: ImportJobState
    mode: ImportMode
    source_name: str
    total_rows: int
    created_count: int
    updated_count: int
    skipped_count: int
    failed_count: int
    errors: list[RowError]
    failure_reason: str
    create_time: datetime
    finish_time: datetime | None

"""Checks on admin input, each naming the field and the value it refuses."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from screening.domain.errors import InvalidArgument
from screening.domain.model import Action, CallType, EntryStatus, ImportMode, MatchKind
from screening.domain.numbers import normalize

MAX_NOTE = 500
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# A tenant, or a shared list: "@" and a name.
TENANT_PATTERN = re.compile(r"@?[A-Za-z0-9._-]{1,64}")
LIST_PREFIX = "@"
# PostgreSQL's timestamptz range, narrowed to what anyone would mean.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, tzinfo=UTC)


def tenant_id(value: str, field: str = "tenant_id") -> str:
    if not value:
        raise InvalidArgument(field, value, "is required")
    if not TENANT_PATTERN.fullmatch(value):
        raise InvalidArgument(
            field, value, "must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-' (a shared list: '@' first)"
        )
    return value


def required_id(value: str, field: str = "id") -> str:
    if not value:
        raise InvalidArgument(field, value, "is required")
    return value


def call_type(value: int, field: str) -> CallType:
    try:
        return CallType(value)
    except ValueError:
        reason = "is required" if value == 0 else "is not a known call type"
        raise InvalidArgument(
            field, value, f"{reason}; one of CALL_TYPE_INBOUND, CALL_TYPE_OUTBOUND, CALL_TYPE_BOTH"
        ) from None


def action(value: int, field: str) -> Action:
    """Unspecified means BLOCK."""
    if value == 0:
        return Action.BLOCK
    try:
        return Action(value)
    except ValueError:
        raise InvalidArgument(field, value, "is not a known action; one of ACTION_BLOCK, ACTION_ALLOW") from None


def optional_call_type(value: int, field: str) -> CallType | None:
    return None if value == 0 else call_type(value, field)


def match_kind(value: int, field: str) -> MatchKind:
    """Unspecified means EXACT."""
    if value == 0:
        return MatchKind.EXACT
    try:
        return MatchKind(value)
    except ValueError:
        raise InvalidArgument(
            field, value, "is not a known match kind; one of MATCH_KIND_EXACT, MATCH_KIND_PREFIX"
        ) from None


def optional_match_kind(value: int, field: str) -> MatchKind | None:
    return None if value == 0 else match_kind(value, field)


def optional_status(value: int, field: str) -> EntryStatus | None:
    if value == 0:
        return None
    try:
        return EntryStatus(value)
    except ValueError:
        raise InvalidArgument(
            field,
            value,
            "is not a known status; one of ENTRY_STATUS_ACTIVE, ENTRY_STATUS_DISABLED, ENTRY_STATUS_EXPIRED",
        ) from None


MAX_QUERY = 100


def query(value: str, field: str) -> str:
    text = value.strip()
    if len(text) > MAX_QUERY:
        raise InvalidArgument(field, value, f"has {len(text)} characters; at most {MAX_QUERY} are allowed")
    if "\x00" in text:
        raise InvalidArgument(field, value, "must not contain NUL characters")
    return text


MAX_FILTER = 200


def text_filter(value: str, field: str) -> str:
    """A text a listing is filtered by: what a stored text could equal."""
    if len(value) > MAX_FILTER:
        raise InvalidArgument(field, value, f"has {len(value)} characters; at most {MAX_FILTER} are allowed")
    if "\x00" in value:
        raise InvalidArgument(field, value, "must not contain NUL characters")
    return value


def import_mode(value: int, field: str) -> ImportMode:
    """Unspecified means UPSERT."""
    if value == 0:
        return ImportMode.UPSERT
    try:
        return ImportMode(value)
    except ValueError:
        raise InvalidArgument(
            field, value, "is not a known import mode; one of IMPORT_MODE_UPSERT, IMPORT_MODE_INSERT_ONLY"
        ) from None


def number(value: str, kind: MatchKind, region: str | None, field: str) -> str:
    return normalize(value, field=field, region=region, prefix=kind is MatchKind.PREFIX)


def note(value: str, field: str) -> str:
    if len(value) > MAX_NOTE:
        raise InvalidArgument(field, value, f"has {len(value)} characters; at most {MAX_NOTE} are allowed")
    if "\x00" in value:
        raise InvalidArgument(field, value, "must not contain NUL characters")
    return value


def expire_time(value: datetime | None, field: str) -> datetime | None:
    if value is not None and not _EARLIEST <= value <= _LATEST:
        raise InvalidArgument(field, value.isoformat(), "must be between 1970 and 9999")
    return value


def future_expire_time(value: datetime | None, field: str) -> datetime | None:
    """An expiry for a new entry: one already past would make an entry that never blocks."""
    if value is not None and value <= datetime.now(UTC):
        raise InvalidArgument(field, value.isoformat(), "is in the past; the entry would never block")
    return expire_time(value, field)


def page_size(value: int, field: str = "page_size") -> int:
    if value < 0:
        raise InvalidArgument(field, value, "must not be negative")
    if value == 0:
        return DEFAULT_PAGE_SIZE
    return min(value, MAX_PAGE_SIZE)

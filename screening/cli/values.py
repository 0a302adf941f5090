"""The words screenctl takes and prints, and their proto values."""

from __future__ import annotations

import enum
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import timestamp_pb2
from google.protobuf.descriptor import EnumDescriptor

from screening.v1 import screening_pb2 as pb


class CallTypeName(enum.StrEnum):
    inbound = "inbound"
    outbound = "outbound"
    both = "both"


class MatchKindName(enum.StrEnum):
    exact = "exact"
    prefix = "prefix"


class DirectionName(enum.StrEnum):
    inbound = "inbound"
    outbound = "outbound"


class OutputFormat(enum.StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def words(descriptor: EnumDescriptor) -> dict[str, Any]:
    """An enum's values by the word people type: CALL_TYPE_INBOUND -> "inbound" (UNSPECIFIED left out)."""
    prefix = descriptor.values[0].name.removesuffix("UNSPECIFIED")
    return {v.name.removeprefix(prefix).lower(): v.number for v in descriptor.values if v.number}


CALL_TYPES: dict[str, pb.CallType] = words(pb.CallType.DESCRIPTOR)
MATCH_KINDS: dict[str, pb.MatchKind] = words(pb.MatchKind.DESCRIPTOR)
DIRECTIONS: dict[str, pb.Direction] = words(pb.Direction.DESCRIPTOR)

CALL_TYPE_NAMES = {v: k for k, v in CALL_TYPES.items()}
MATCH_KIND_NAMES = {v: k for k, v in MATCH_KINDS.items()}
VERDICT_NAMES = {v: k.upper() for k, v in words(pb.Verdict.DESCRIPTOR).items()}
JOB_STATE_NAMES = {v: k for k, v in words(pb.ImportJobState.DESCRIPTOR).items()}

_RELATIVE = re.compile(r"\+(\d+)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """ISO 8601 (no zone means UTC), or `+N` minutes/hours/days/weeks from now: `+30d`."""
    relative = _RELATIVE.fullmatch(text.strip())
    if relative:
        amount, unit = relative.groups()
        return (now or datetime.now(UTC)) + timedelta(**{_UNITS[unit]: int(amount)})
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r}: expected ISO 8601 such as 2026-12-31 or 2026-12-31T18:00:00Z, or +30d") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def to_timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def format_time(ts: timestamp_pb2.Timestamp, present: bool = True) -> str:
    """RFC 3339 in UTC, as the JSON output writes it (0, 3, 6 or 9 fraction digits); "" when unset."""
    # One spelling for every output format: a CSV export compared with, or
    # diffed against, the JSON one must not differ in trailing zeros.
    return ts.ToJsonString() if present else ""

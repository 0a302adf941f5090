"""The words screenctl takes and prints, and their proto values."""

from __future__ import annotations

import enum
from datetime import datetime
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


class ActionName(enum.StrEnum):
    block = "block"
    allow = "allow"


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
ACTIONS: dict[str, pb.Action] = words(pb.Action.DESCRIPTOR)

CALL_TYPE_NAMES = {v: k for k, v in CALL_TYPES.items()}
MATCH_KIND_NAMES = {v: k for k, v in MATCH_KINDS.items()}
ACTION_NAMES = {v: k for k, v in ACTIONS.items()}
STATUSES: dict[str, pb.EntryStatus] = words(pb.EntryStatus.DESCRIPTOR)
STATUS_NAMES = {v: k for k, v in STATUSES.items()}
FILE_FORMAT_NAMES = {v: k for k, v in words(pb.FileFormat.DESCRIPTOR).items()}
MODE_NAMES = {v: k.replace("_", "-") for k, v in words(pb.ImportMode.DESCRIPTOR).items()}
VERDICT_NAMES = {v: k.upper() for k, v in words(pb.Verdict.DESCRIPTOR).items()}
JOB_STATE_NAMES = {v: k for k, v in words(pb.ImportJobState.DESCRIPTOR).items()}


def to_timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def format_time(ts: timestamp_pb2.Timestamp, present: bool = True) -> str:
    """RFC 3339 in UTC, as the JSON output writes it (0, 3, 6 or 9 fraction digits); "" when unset."""
    # One spelling for every output format: a CSV export compared with, or
    # diffed against, the JSON one must not differ in trailing zeros.
    return ts.ToJsonString() if present else ""

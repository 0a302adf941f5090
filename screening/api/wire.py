"""ScreenCall's answer written straight to wire bytes: the hot path's response, no message built.

Building a ScreenCallResponse through protobuf's Python API cost about
7,000 instructions a call (each keyword looked up in the descriptor, then
the message serialized), a quarter of the handler's; `_native.screen_response`
writes the same bytes in a few hundred (docs/performance.md, "Response
bytes"). ScreenCall and ScreenCallStream hand grpc these bytes (their
methods are ENCODED in screening.api.methods), and so does the switch socket.
Without the C extension, protobuf encodes them. tests/test_wire.py checks
both against protobuf's own encoding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from screening.domain.model import Action
from screening.usecases.screener import Decision
from screening.v1 import screening_pb2 as pb

# The response's fields in field-number order: the C encoder takes its values so.
FIELDS = tuple(f.name for f in sorted(pb.ScreenCallResponse.DESCRIPTOR.fields, key=lambda f: f.number))


def _encoded_by_protobuf(*values: Any) -> bytes:
    return pb.ScreenCallResponse(**dict(zip(FIELDS, values, strict=True))).SerializeToString()


_encode: Callable[..., bytes]
try:
    from screening._native import screen_response as _encode
except ImportError:  # not compiled: protobuf encodes
    _encode = _encoded_by_protobuf

_ALLOW_ACTION = Action.ALLOW


def screen_response(decision: Decision, call_id: str) -> bytes:
    """The encoded ScreenCallResponse: matched_* name a BLOCK entry, decided_* whichever entry decided."""
    normalized, hit, verdict, reason, list_id, version = decision
    if hit is None:
        return _encode(verdict, normalized, "", "", 0, call_id, version, reason, "", "", 0, 0, "")
    number, kind, action = hit.number, hit.match_kind, hit.action
    if action is _ALLOW_ACTION:
        return _encode(
            verdict, normalized, "", "", 0, call_id, version, reason, hit.id, number, kind, action, list_id
        )
    return _encode(
        verdict, normalized, hit.id, number, kind, call_id, version, reason, hit.id, number, kind, action, list_id
    )


def respond(decision: Decision, call_id: str) -> pb.ScreenCallResponse:
    """The same answer as a message, for a reply that embeds it (ExplainScreenCall)."""
    return pb.ScreenCallResponse.FromString(screen_response(decision, call_id))

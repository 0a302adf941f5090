"""ScreenCall's request and response on the wire, read and written in C: no protobuf message on the hot path.

Measured in instructions (docs/performance.md, "ScreenCall on the wire"):
building a ScreenCallResponse through protobuf's Python API cost about
7,000 a call (each keyword looked up in the descriptor, then the message
serialized), and reading a request's five fields about a thousand each.
`_native.screen_request` decodes a request into a struct sequence with the
message's field names, exactly as protobuf's parser would (or refuses it
as protobuf would), and `_native.screen_response` writes a response's
bytes. ScreenCall and ScreenCallStream use them (their methods are ENCODED
in screening.api.methods), and so does the switch socket. Without the C
extension protobuf does both. tests/test_wire.py checks them against
protobuf, on generated messages and on random and broken bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

from screening.domain.model import Action, MatchKind, ScreenReason
from screening.usecases.screener import Decision, Screener
from screening.v1 import screening_pb2 as pb

# The response's fields in field-number order: the C encoder takes its values so.
_BY_NAME = pb.ScreenCallResponse.DESCRIPTOR.fields_by_name
FIELDS = tuple(sorted(_BY_NAME, key=lambda name: _BY_NAME[name].number))


def _encoded_by_protobuf(*values: Any) -> bytes:
    return pb.ScreenCallResponse(**dict(zip(FIELDS, values, strict=True))).SerializeToString()


if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    # What the hot path reads: the message's fields, by name.
    Request: TypeAlias = pb.ScreenCallRequest | "_native.ScreenRequest"
else:
    Handler = grpc.RpcMethodHandler
    Request = Any

_encode: Callable[..., bytes]
parse_request: Callable[[bytes], Request]
try:
    from screening import _native
except ImportError:  # not compiled: protobuf reads and writes
    _native = None  # type: ignore[assignment]
    _encode = _encoded_by_protobuf
    parse_request = pb.ScreenCallRequest.FromString
else:
    _encode = _native.screen_response
    parse_request = _native.screen_request

# A ScreenCall: the request, and optionally the call's context (unused), to the encoded response.
Screen: TypeAlias = Callable[..., bytes]


def quick(screen: Screen, screener: Screener, tally: object) -> Screen:
    """`screen` with its most common answers made in C (_native.QuickScreen).

    For a known tenant's call with an E.164 number, the C call answers when
    no entry of the tenant or of its lists has the number, in any state
    (ALLOW), or when the first of them with an exact entry for it has one in
    the compact base that qualifies (BLOCK; its hit counted), and passes
    every other call to `screen`, which decides as before. Without the C
    extension (or with the Python tally): `screen` itself.
    """
    if _native is None or not isinstance(tally, _native.Tally):
        return screen
    return _native.QuickScreen(
        screen,
        screener.replica,
        screener.valid_tenants,
        screener.rules,
        tally,
        screener.hits,
        (
            pb.VERDICT_ALLOW,
            pb.VERDICT_BLOCK,
            int(ScreenReason.NO_ENTRY),
            int(ScreenReason.BLOCK_ENTRY),
            int(MatchKind.EXACT),
            int(Action.BLOCK),
        ),
    )


def fast_path_calls(screen: Screen) -> int:
    """Calls `screen` (from quick) answered in C: 0 when it has no C path."""
    return screen.answered if _native is not None and isinstance(screen, _native.QuickScreen) else 0


def encoded(handler: Handler) -> Handler:
    """A ScreenCall-shaped method's handler that reads requests with parse_request and sends the bytes it returns."""
    return handler._replace(request_deserializer=parse_request, response_serializer=None)  # type: ignore[attr-defined,no-any-return]


_ALLOW_ACTION = Action.ALLOW


def screen_response(decision: Decision, call_id: str) -> bytes:
    """The encoded ScreenCallResponse: matched_* name a BLOCK entry, decided_* whichever entry decided."""
    normalized, hit, verdict, reason, list_id, version = decision
    if hit is None:
        return _encode(verdict, normalized, "", "", 0, call_id, version, reason, "", "", 0, 0, "")
    number, kind, action = hit.number, hit.match_kind, hit.action
    if action is _ALLOW_ACTION:
        return _encode(verdict, normalized, "", "", 0, call_id, version, reason, hit.id, number, kind, action, list_id)
    return _encode(
        verdict, normalized, hit.id, number, kind, call_id, version, reason, hit.id, number, kind, action, list_id
    )


def respond(decision: Decision, call_id: str) -> pb.ScreenCallResponse:
    """The same answer as a message, for a reply that embeds it (ExplainScreenCall)."""
    return pb.ScreenCallResponse.FromString(screen_response(decision, call_id))

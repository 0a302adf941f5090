"""ScreenCall's messages as sipscreen.wire writes and reads them by hand, against protobuf's own."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sipscreen import wire

from screening.v1 import screening_pb2 as pb

text = st.text(max_size=300)


def test_the_enums_are_the_protos() -> None:
    assert (wire.DIRECTION_INBOUND, wire.DIRECTION_OUTBOUND) == (pb.DIRECTION_INBOUND, pb.DIRECTION_OUTBOUND)
    assert (wire.VERDICT_ALLOW, wire.VERDICT_BLOCK) == (pb.VERDICT_ALLOW, pb.VERDICT_BLOCK)
    assert (wire.MATCH_KIND_EXACT, wire.MATCH_KIND_PREFIX) == (pb.MATCH_KIND_EXACT, pb.MATCH_KIND_PREFIX)


@given(tenant=text, number=text, direction=st.sampled_from([0, 1, 2]), call_id=text)
def test_a_request_is_written_byte_for_byte_as_protobuf_writes_it(
    tenant: str, number: str, direction: int, call_id: str
) -> None:
    ours = wire.encode_request(tenant, number, direction, call_id)
    theirs = pb.ScreenCallRequest(tenant_id=tenant, number=number, direction=direction, call_id=call_id)  # type: ignore[arg-type]
    assert ours == theirs.SerializeToString()
    assert pb.ScreenCallRequest.FromString(ours) == theirs


@given(
    verdict=st.sampled_from([0, 1, 2]),
    strings=st.lists(text, min_size=8, max_size=8),
    kind=st.sampled_from([0, 1, 2]),
    version=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    reason=st.integers(min_value=0, max_value=20),
)
def test_a_response_is_read_as_protobuf_reads_it_whatever_else_it_holds(
    verdict: int, strings: list[str], kind: int, version: int, reason: int
) -> None:
    normalized, matched_id, matched_number, call_id, decided_id, decided_number, decided_list, _ = strings
    data = pb.ScreenCallResponse(
        verdict=verdict,  # type: ignore[arg-type]
        normalized_number=normalized,
        matched_id=matched_id,
        matched_number=matched_number,
        matched_kind=kind,  # type: ignore[arg-type]
        call_id=call_id,
        data_version=version,
        reason=reason,  # type: ignore[arg-type]
        decided_id=decided_id,
        decided_number=decided_number,
        decided_kind=kind,  # type: ignore[arg-type]
        decided_action=pb.ACTION_BLOCK,
        decided_list=decided_list,
    ).SerializeToString()
    assert wire.decode_response(data) == (verdict, matched_id, matched_number, kind)


@given(data=st.binary(max_size=64))
# An enum is an int32: protobuf reads a verdict of 2**31 as -2**31, and a 10-byte -1 as -1 (CI found the first).
@example(data=b"\x08\x80\x80\x80\x80\x08")
@example(data=b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x28\xff\xff\xff\xff\x0f")
def test_bytes_that_are_no_response_raise_value_error_or_read_as_protobuf_reads_them(data: bytes) -> None:
    try:
        theirs = pb.ScreenCallResponse.FromString(data)
    except Exception:  # noqa: BLE001  # protobuf's DecodeError
        theirs = None
    try:
        ours = wire.decode_response(data)
    except (ValueError, UnicodeDecodeError):
        # Refused, never misread: protobuf may still take these bytes (groups, fields it keeps unknown).
        return
    # Read by both: read alike. (We may read what protobuf refuses, e.g. bad UTF-8 in a field we skip.)
    if theirs is not None:
        assert ours == (theirs.verdict, theirs.matched_id, theirs.matched_number, theirs.matched_kind)


def test_a_truncated_response_is_refused() -> None:
    data = pb.ScreenCallResponse(verdict=pb.VERDICT_BLOCK, matched_id="abc").SerializeToString()
    with pytest.raises(ValueError):
        wire.decode_response(data[:-1])

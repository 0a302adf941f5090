"""ScreenCall's response bytes (screening/api/wire.py) against protobuf's own encoding."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from screening import _native
from screening.api import wire
from screening.domain.model import Action, MatchKind
from screening.index.rules import IndexEntry
from screening.usecases.screener import Decision
from screening.v1 import screening_pb2 as pb

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)  # proto3 strings are valid UTF-8
KINDS = {"s": TEXT, "v": INT32}


def field_values() -> st.SearchStrategy[tuple[object, ...]]:
    strategies = []
    for field in sorted(pb.ScreenCallResponse.DESCRIPTOR.fields, key=lambda f: f.number):
        if field.type == field.TYPE_STRING:
            strategies.append(TEXT)
        elif field.type == field.TYPE_INT64:
            strategies.append(INT64)
        else:
            assert field.type == field.TYPE_ENUM, field.name
            strategies.append(INT32)
    return st.tuples(*strategies)


@settings(max_examples=500)
@given(field_values())
def test_the_c_encoder_writes_what_protobuf_writes(values: tuple[object, ...]) -> None:
    assert _native.screen_response(*values) == wire._encoded_by_protobuf(*values)


def test_the_encoder_takes_the_fields_in_field_number_order() -> None:
    numbers = [pb.ScreenCallResponse.DESCRIPTOR.fields_by_name[name].number for name in wire.FIELDS]
    assert numbers == list(range(1, 14))
    values = ["x"] * 13
    for i, name in enumerate(wire.FIELDS):
        if pb.ScreenCallResponse.DESCRIPTOR.fields_by_name[name].type != 9:  # not a string
            values[i] = i + 1
    parsed = pb.ScreenCallResponse.FromString(_native.screen_response(*values))
    assert [getattr(parsed, name) for name in wire.FIELDS] == values


def test_wrong_arguments_raise_rather_than_write_a_wrong_message() -> None:
    values: list[object] = [1, "+1", "", "", 0, "c", 1, 1, "", "", 0, 0, ""]
    for bad_at, bad in ((1, 5), (0, "1"), (6, 2**64)):
        wrong = list(values)
        wrong[bad_at] = bad
        try:
            _native.screen_response(*wrong)
        except (TypeError, OverflowError):
            continue
        raise AssertionError(f"field {bad_at + 1} = {bad!r} was encoded")
    try:
        _native.screen_response(*values[:-1])
    except TypeError:
        pass
    else:
        raise AssertionError("12 fields were encoded")


ENTRIES = st.builds(
    IndexEntry,
    id=st.uuids().map(str),
    tenant_id=st.just("acme"),
    number=st.from_regex(r"\+[1-9][0-9]{1,14}", fullmatch=True),
    match_kind=st.sampled_from(MatchKind),
    call_type=st.just(3),
    enabled=st.just(True),
    action=st.sampled_from(Action),
)


@settings(max_examples=300)
@given(
    normalized=TEXT,
    hit=st.none() | ENTRIES,
    verdict=st.sampled_from([pb.VERDICT_ALLOW, pb.VERDICT_BLOCK]),
    reason=st.sampled_from(list(pb.ScreenReason.values())),
    list_id=st.sampled_from(["", "@dnc"]),
    version=st.integers(0, 2**62),
    call_id=TEXT,
)
def test_a_decision_answers_with_matched_fields_for_a_block_and_decided_fields_for_any_entry(
    normalized: str, hit: IndexEntry | None, verdict: int, reason: int, list_id: str, version: int, call_id: str
) -> None:
    response = wire.respond(Decision(normalized, hit, verdict, reason, list_id, version), call_id)
    want = pb.ScreenCallResponse(
        verdict=verdict,  # type: ignore[arg-type]
        normalized_number=normalized,
        call_id=call_id,
        data_version=version,
        reason=reason,  # type: ignore[arg-type]
    )
    if hit is not None:
        want.decided_id, want.decided_number = hit.id, hit.number
        want.decided_kind, want.decided_action, want.decided_list = hit.match_kind, hit.action, list_id  # type: ignore[assignment]
        if hit.action is Action.BLOCK:
            want.matched_id, want.matched_number, want.matched_kind = hit.id, hit.number, hit.match_kind  # type: ignore[assignment]
    assert response == want

"""The screening rules of the contract, against the index alone."""

import math

from screening.domain.model import CallType, Direction, MatchKind
from screening.index.rules import IndexEntry, ScreeningIndex

NOW = 1_800_000_000.0
IN, OUT = Direction.INBOUND, Direction.OUTBOUND


def entry(
    id: str,
    number: str,
    kind: MatchKind = MatchKind.EXACT,
    call_type: CallType = CallType.BOTH,
    tenant: str = "acme",
    enabled: bool = True,
    expires_at: float = math.inf,
) -> IndexEntry:
    return IndexEntry(id, tenant, number, kind, call_type, enabled, expires_at)


def index_of(*entries: IndexEntry) -> ScreeningIndex:
    index = ScreeningIndex()
    for e in entries:
        index.upsert(e)
    return index


def winner(index: ScreeningIndex, number: str, direction: Direction = IN, tenant: str = "acme") -> str | None:
    hit = index.screen(tenant, number, direction, NOW)
    return None if hit is None else hit.id


def test_exact_match_blocks_only_that_number() -> None:
    index = index_of(entry("a", "+14155550100"))
    assert winner(index, "+14155550100") == "a"
    assert winner(index, "+141555501000") is None
    assert winner(index, "+1415555010") is None


def test_prefix_matches_numbers_starting_with_it() -> None:
    index = index_of(entry("p", "+1900", MatchKind.PREFIX))
    assert winner(index, "+19005550100") == "p"
    assert winner(index, "+1900") == "p"
    assert winner(index, "+1800") is None
    assert winner(index, "+190") is None


def test_exact_wins_over_any_prefix() -> None:
    index = index_of(
        entry("long", "+1415555", MatchKind.PREFIX),
        entry("exact", "+14155550100"),
        entry("short", "+1", MatchKind.PREFIX),
    )
    assert winner(index, "+14155550100") == "exact"


def test_longest_prefix_wins() -> None:
    index = index_of(
        entry("short", "+1", MatchKind.PREFIX),
        entry("long", "+1415", MatchKind.PREFIX),
        entry("mid", "+14", MatchKind.PREFIX),
    )
    assert winner(index, "+14155550100") == "long"
    assert winner(index, "+14255550100") == "mid"
    assert winner(index, "+19995550100") == "short"


def test_longest_qualifying_prefix_wins_when_longer_ones_do_not_qualify() -> None:
    index = index_of(
        entry("short", "+1", MatchKind.PREFIX),
        entry("disabled", "+1415", MatchKind.PREFIX, enabled=False),
        entry("outbound", "+14", MatchKind.PREFIX, call_type=CallType.OUTBOUND),
    )
    assert winner(index, "+14155550100", IN) == "short"
    assert winner(index, "+14155550100", OUT) == "outbound"


def test_non_qualifying_exact_falls_back_to_prefix() -> None:
    index = index_of(entry("exact", "+14155550100", enabled=False), entry("p", "+1415", MatchKind.PREFIX))
    assert winner(index, "+14155550100") == "p"


def test_call_type_covers_direction() -> None:
    index = index_of(
        entry("in", "+1001", call_type=CallType.INBOUND),
        entry("out", "+1002", call_type=CallType.OUTBOUND),
        entry("both", "+1003", call_type=CallType.BOTH),
    )
    assert winner(index, "+1001", IN) == "in"
    assert winner(index, "+1001", OUT) is None
    assert winner(index, "+1002", IN) is None
    assert winner(index, "+1002", OUT) == "out"
    assert winner(index, "+1003", IN) == "both"
    assert winner(index, "+1003", OUT) == "both"


def test_disabled_entry_does_not_block() -> None:
    index = index_of(entry("a", "+1001", enabled=False))
    assert winner(index, "+1001") is None


def test_expired_entry_does_not_block() -> None:
    index = index_of(entry("old", "+1001", expires_at=NOW - 1), entry("new", "+1002", expires_at=NOW + 1))
    assert winner(index, "+1001") is None
    assert winner(index, "+1002") == "new"
    assert index.screen("acme", "+1002", IN, NOW + 1) is None  # expiry is exclusive of its instant


def test_tenants_are_isolated() -> None:
    index = index_of(entry("a", "+1001", tenant="acme"), entry("p", "+1", MatchKind.PREFIX, tenant="globex"))
    assert winner(index, "+1001", tenant="acme") == "a"
    assert winner(index, "+1001", tenant="globex") == "p"
    assert winner(index, "+2001", tenant="globex") is None
    assert winner(index, "+1001", tenant="initech") is None


def test_empty_number_matches_nothing() -> None:
    index = index_of(entry("p", "1", MatchKind.PREFIX))
    assert winner(index, "") is None


def test_exact_and_prefix_with_same_number_coexist() -> None:
    index = index_of(entry("e", "+1001"), entry("p", "+1001", MatchKind.PREFIX))
    assert winner(index, "+1001") == "e"
    assert winner(index, "+10019") == "p"


def test_update_moves_an_entry_and_remove_forgets_it() -> None:
    index = index_of(entry("a", "+1001"))
    index.upsert(entry("a", "+1002"))
    assert winner(index, "+1001") is None
    assert winner(index, "+1002") == "a"
    index.remove("a")
    assert winner(index, "+1002") is None
    assert len(index) == 0
    index.remove("a")  # idempotent


def test_change_arriving_before_the_one_that_freed_its_key() -> None:
    # b takes a's number before a's deletion has been read: b wins, a is forgotten,
    # and a's late tombstone changes nothing.
    index = index_of(entry("a", "+1001"))
    index.upsert(entry("b", "+1001"))
    assert winner(index, "+1001") == "b"
    assert index.get("a") is None
    index.remove("a")
    assert winner(index, "+1001") == "b"
    assert len(index) == 1


def test_prefix_lengths_are_tracked_through_removal() -> None:
    index = index_of(entry("p", "+1415", MatchKind.PREFIX), entry("q", "+1", MatchKind.PREFIX))
    index.remove("p")
    assert winner(index, "+14155550100") == "q"
    index.upsert(entry("q", "+1", MatchKind.PREFIX, enabled=False))
    assert winner(index, "+14155550100") is None

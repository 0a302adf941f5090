"""The index against a plain dict model: any interleaving of changes, merges and switches answers alike.

The model is the contract's rules written as plainly as possible: a dict of
entries by id, a screen that looks at all of them. The index under test gets
the same changes one at a time (the overlay), as whole change sets built
into a new index (the atomic switch of a big change set), and merges begun,
built, installed and settled a slice at a time, and compactions of its runs,
in between, with changes arriving meanwhile. Its runs are kept small (a size
ratio of 2, at most 3 runs) so that several of them, and copies of one entry
hidden in older ones, are the common case.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from screening.domain.model import CallType, MatchKind
from screening.index import rules
from screening.index.compact import Columns, id_parts
from screening.index.rules import (
    MISS_DISABLED,
    MISS_EXPIRED,
    MISS_OTHER_DIRECTION,
    NEVER,
    Compaction,
    IndexEntry,
    Merge,
    ScreeningIndex,
)

NOW = 1_800_000_000.0
TENANTS = ("acme", "globex")
EXACT_NUMBERS = ("+1", "1", "+12", "+123", "12", "01", "+1234567", "+999999999999999", "12a")
PREFIXES = ("+1", "+12", "1", "+9", "+1234")
PROBES = (*EXACT_NUMBERS, "+12345678", "+19", "10", "+9", "")
# Three ids share each high half, as time-ordered ids made in one millisecond do.
IDS = tuple(str(uuid.UUID(int=(i // 3 + 1) << 64 | (i * 0x9E3779B97F4A7C15) & (2**64 - 1))) for i in range(12))

entries = st.builds(
    lambda id_, tenant, kind, exact, prefix, call_type, enabled, expires: IndexEntry(
        id_, tenant, exact if kind is MatchKind.EXACT else prefix, kind, call_type, enabled, expires
    ),
    st.sampled_from(IDS),
    st.sampled_from(TENANTS),
    st.sampled_from(MatchKind),
    st.sampled_from(EXACT_NUMBERS),
    st.sampled_from(PREFIXES),
    st.sampled_from(CallType),
    st.booleans(),
    st.sampled_from((NEVER, NEVER, NOW - 1, NOW + 1)),
)


def _key(e: IndexEntry) -> tuple[str, MatchKind, str]:
    return e.tenant_id, e.match_kind, e.number


class Model:
    """Entries by id; at most one per (tenant, kind, number), the newest change winning."""

    def __init__(self) -> None:
        self.by_id: dict[str, IndexEntry] = {}

    def upsert(self, entry: IndexEntry) -> None:
        self.by_id.pop(entry.id, None)
        for other in [e for e in self.by_id.values() if _key(e) == _key(entry)]:
            del self.by_id[other.id]  # displaced: its own change is still to come
        self.by_id[entry.id] = entry

    def remove(self, entry_id: str) -> None:
        self.by_id.pop(entry_id, None)

    def miss(self, tenant: str, number: str, direction: int) -> int:
        """Why no entry qualifies: the highest MISS_* rank of the tenant's entries for the number, 0 for none."""
        ranks = [
            MISS_DISABLED if not e.enabled else MISS_EXPIRED if not e.expires_at > NOW else MISS_OTHER_DIRECTION
            for e in self.by_id.values()
            if e.tenant_id == tenant
            and (e.number == number if e.match_kind is MatchKind.EXACT else number.startswith(e.number))
            and not e.qualifies(direction, NOW)
        ]
        return max(ranks, default=0)

    def screen(self, tenant: str, number: str, direction: int) -> IndexEntry | None:
        if not number:
            return None
        mine = [e for e in self.by_id.values() if e.tenant_id == tenant]
        for e in mine:
            if e.match_kind is MatchKind.EXACT and e.number == number and e.qualifies(direction, NOW):
                return e
        prefixes = [
            e
            for e in mine
            if e.match_kind is MatchKind.PREFIX and number.startswith(e.number) and e.qualifies(direction, NOW)
        ]
        return max(prefixes, key=lambda e: len(e.number), default=None)


def _packs(e: IndexEntry) -> bool:
    return e.match_kind is MatchKind.EXACT and e.number != "12a"


class IndexAgainstModel(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.model = Model()
        self.index = ScreeningIndex(ratio=2, max_runs=3)
        self.merge: Merge | None = None
        self.built = self.installed = False
        self.compaction: Compaction | None = None

    @rule(entry=entries)
    def upsert(self, entry: IndexEntry) -> None:
        self.model.upsert(entry)
        self.index.upsert(entry)

    @rule(entry_id=st.sampled_from(IDS))
    def remove(self, entry_id: str) -> None:
        self.model.remove(entry_id)
        self.index.remove(entry_id)

    @precondition(lambda self: self.merge is None and self.compaction is None)
    @rule(chunk=st.sampled_from((1, 3, 1000)))
    def begin_merge(self, chunk: int) -> None:
        self.merge = self.index.begin_merge(chunk)
        self.built = False

    @precondition(lambda self: self.merge is not None and not self.built)
    @rule()
    def build_merge(self) -> None:
        assert self.merge is not None
        self.merge.build()
        self.built = True

    @precondition(lambda self: self.merge is not None and self.built and not self.installed)
    @rule()
    def install_merge(self) -> None:
        assert self.merge is not None
        self.index.install_merge(self.merge)
        self.installed = True

    @precondition(lambda self: self.merge is not None and self.installed)
    @rule(count=st.sampled_from((1, 2, 1000)))
    def settle_merge(self, count: int) -> None:
        assert self.merge is not None
        if not self.index.settle_merge(self.merge, count):
            self.merge, self.installed = None, False

    @precondition(lambda self: self.merge is not None and self.built and not self.installed)
    @rule()
    def finish_merge(self) -> None:
        assert self.merge is not None
        self.index.finish_merge(self.merge)
        self.merge = None

    @precondition(lambda self: self.merge is None and self.compaction is None)
    @rule()
    def begin_compaction(self) -> None:
        self.compaction = self.index.begin_compaction()
        if self.compaction is not None:
            self.compaction.build()

    @precondition(lambda self: self.compaction is not None)
    @rule()
    def finish_compaction(self) -> None:
        assert self.compaction is not None
        self.index.finish_compaction(self.compaction)
        self.compaction = None

    @rule(changes=st.lists(st.one_of(entries, st.sampled_from(IDS)), max_size=8))
    def switch_to_a_rebuilt_index(self, changes: list[IndexEntry | str]) -> None:
        """A change set applied whole: the replica's path for a big one (a running merge is dropped first,
        settled at once if installed, as merge_in_background does when cancelled)."""
        if self.merge is not None:
            if self.installed:
                while self.index.settle_merge(self.merge, 1000):
                    pass
            else:
                self.index.abort_merge()
            self.merge, self.installed = None, False
        if self.compaction is not None:
            self.index.abort_merge()
            self.compaction = None
        before = dict(self.model.by_id)
        for change in changes:
            if isinstance(change, str):
                self.model.remove(change)
            else:
                self.model.upsert(change)
        after = self.model.by_id
        changed = {i for i in before.keys() | after.keys() if before.get(i) is not after.get(i)}
        live = [after[i] for i in sorted(changed) if i in after]
        added = [e for e in live if _packs(e)]
        parts = [id_parts(i) for i in sorted(changed)]
        self.index = self.index.rebuilt(
            Columns.of_entries([(e.id, e.tenant_id, e.number, e.call_type, e.enabled, e.expires_at) for e in added]),
            np.array([p[0] for p in parts if p], np.uint64),
            np.array([p[1] for p in parts if p], np.uint64),
            [e for e in live if not _packs(e)],
        )

    @invariant()
    def answers_alike(self) -> None:
        index, model = self.index, self.model
        for tenant in TENANTS:
            for direction in (1, 2):
                many = index.screen_many(tenant, list(PROBES), direction, NOW)
                for number, batch in zip(PROBES, many, strict=True):
                    want = model.screen(tenant, number, direction)
                    got = index.screen(tenant, number, direction, NOW)
                    assert (got and _fields(got)) == (want and _fields(want)), (tenant, number, direction)
                    assert (batch and _fields(batch)) == (want and _fields(want)), (tenant, number, direction)
                    if want is None:
                        missed = index.lookup(tenant, number, direction, NOW)
                        assert missed == model.miss(tenant, number, direction), (tenant, number, direction)
        for entry_id in IDS:
            assert index.get(entry_id) == model.by_id.get(entry_id)
        assert len(index) == len(model.by_id)
        assert sorted(e.id for e in index.entries()) == sorted(model.by_id)


def _fields(e: IndexEntry) -> tuple[object, ...]:
    return e.id, e.tenant_id, e.number, e.match_kind, e.call_type, e.expires_at


IndexAgainstModel.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_index_agrees_with_a_dict_model = IndexAgainstModel.TestCase


def _entry(i: int, number: str, enabled: bool = True) -> IndexEntry:
    return IndexEntry(str(uuid.UUID(int=i + 1)), "acme", number, MatchKind.EXACT, CallType.BOTH, enabled)


def _merge_all(index: ScreeningIndex) -> None:
    merge = index.begin_merge()
    merge.build()
    index.finish_merge(merge)


def test_runs_keep_their_shape_and_hide_what_changed_in_older_ones() -> None:
    """Merges make runs of their chunks alone; compactions keep each run at least `ratio` times all newer ones;
    an update, a delete and a renumbering of entries in older runs are answered from the newest state."""
    index = ScreeningIndex(ratio=2, max_runs=4)
    for i in range(8):
        index.upsert(_entry(i, f"+1555000{i}"))
    _merge_all(index)
    assert index.run_sizes == [8]
    index.upsert(_entry(0, "+15550000", enabled=False))  # an update of an entry in the run
    index.remove(str(uuid.UUID(int=2)))  # a delete
    index.upsert(_entry(2, "+15559999"))  # a renumbering: +15550002 is free
    index.upsert(_entry(100, "+15550002"))  # ... and taken by another entry
    _merge_all(index)
    assert index.run_sizes == [3, 8]  # the older run is not merged again: 8 >= 2 x 3
    assert index.lookup("acme", "+15550000", 1, NOW) == MISS_DISABLED
    assert index.screen("acme", "+15550001", 1, NOW) is None
    assert (hit := index.screen("acme", "+15550002", 1, NOW)) is not None and hit.id == str(uuid.UUID(int=101))
    assert (hit := index.screen("acme", "+15559999", 1, NOW)) is not None and hit.id == str(uuid.UUID(int=3))
    assert len(index) == 8 and index.get(str(uuid.UUID(int=2))) is None
    for i in range(200, 205):
        index.upsert(_entry(i, f"+1666000{i}"))
    _merge_all(index)
    # 5 + 3 entries are more than half of 8: all three runs are compacted into one, less the 3 hidden copies.
    assert index.run_sizes == [5, 3, 8]
    compaction = index.begin_compaction()
    assert compaction is not None
    compaction.build()
    index.remove(str(uuid.UUID(int=201)))  # hidden while the compaction is built: hidden in its run too
    index.finish_compaction(compaction)
    assert index.run_sizes == [16 - 3] and len(index) == 13 - 1
    assert index.screen("acme", "+16660000", 1, NOW) is None
    assert index.begin_compaction() is None  # 1 of 13 hidden: below 1 / ratio
    assert index.lookup("acme", "+15550000", 1, NOW) == MISS_DISABLED
    assert (hit := index.screen("acme", "+15550002", 1, NOW)) is not None and hit.id == str(uuid.UUID(int=101))


async def test_a_merge_cancelled_at_any_step_leaves_the_index_answering_alike() -> None:
    """The replica cancels a running merge before it switches a big change set in: cancelled while its
    run is built, while its overlay copies are settled, or while the runs are compacted, the index
    answers as one that never merged, and merges again afterwards."""
    plain = ScreeningIndex()
    entries = [_entry(i, f"+1777{i:07d}", enabled=i % 5 != 0) for i in range(3000)]
    for entry in entries:
        plain.upsert(entry)
    numbers = [e.number for e in entries[::7]] + ["+17770099999"]
    expected = [plain.lookup("acme", n, 1, NOW) for n in numbers]

    def building(index: ScreeningIndex) -> bool:
        return index.run_sizes == [1000] and index._busy

    def settling(index: ScreeningIndex) -> bool:
        return index.run_sizes == [2000, 1000]  # installed: its 2,000 overlay copies go 1,000 a turn

    def compacting(index: ScreeningIndex) -> bool:
        return index.run_sizes == [2000, 1000] and not index._mergeable and index._busy

    for when in (building, settling, compacting):
        index = ScreeningIndex(ratio=4)
        for entry in entries[:1000]:
            index.upsert(entry)
        await rules.merge_in_background(index)
        for entry in entries[1000:]:
            index.upsert(entry)
        task = asyncio.create_task(rules.merge_in_background(index))
        for _ in range(100_000):
            if when(index):
                break
            await asyncio.sleep(0)
        else:
            raise AssertionError(f"the merge never reached {when.__name__}")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert [index.lookup("acme", n, 1, NOW) for n in numbers] == expected, when.__name__
        assert len(index) == len(plain) and not index._busy
        await rules.merge_in_background(index)
        assert index.run_sizes == [3000] and not index._mergeable  # merged and compacted after all
        assert [index.lookup("acme", n, 1, NOW) for n in numbers] == expected

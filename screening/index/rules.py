"""The in-memory screening index: what ScreenCall answers from.

A plain class with no I/O. Entries are keyed by id (how changes arrive) and
by (tenant, match kind, number) (how calls are screened). Disabled and
expired entries stay in the index so that enabling one, or an expiry that is
moved, needs no reload; they are skipped at screen time.

Two parts answer together. The base (screening/compact.py) holds the bulk of
EXACT entries in sorted arrays at 28 bytes each; it is built by the first
load and never modified. The overlay holds PREFIX entries and every change
since the base was built, as objects in dicts. An id in the base that was
changed or deleted since is "shadowed": its base copy is no longer served.
A merge folds the overlay's EXACT entries into a new base in a worker thread,
a bounded chunk at a time, while calls are answered from the old one. A big
change set takes another way (`rebuilt`): a new index, built in a worker
thread with everything this one holds and the whole set, which the replica
swaps in at once.

A look-up returns the most specific qualifying entry, whatever its action:
an exact entry over any prefix, a longer prefix over a shorter one. ALLOW
entries (allow-exceptions: few) never go into the base, whose look-ups read
no action (its keys have free flag bits that could hold one); they stay in
the overlay. When no entry qualifies, the
look-up tells why from the entries it passed over anyway (a MISS_* rank, the
highest seen), so the common miss, a number no entry has, costs no more.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

import numpy as np

from screening.domain.model import Action, CallType, Direction, MatchKind
from screening.index.compact import (
    CALL_TYPES,
    ENCODABLE,
    MISS_DISABLED,
    MISS_EXPIRED,
    MISS_OTHER_DIRECTION,
    NEVER,
    Base,
    Columns,
    Keyed,
    UInt64s,
    concat,
    id_parts,
    ids_in,
    keys_of,
    number_key,
    release_freed_memory,
)

_EXACT = MatchKind.EXACT
_BLOCK = Action.BLOCK

__all__ = [
    "MISS_DISABLED",
    "MISS_EXPIRED",
    "MISS_OTHER_DIRECTION",
    "NEVER",
    "IndexEntry",
    "ScreeningIndex",
    "merge_in_background",
]

# A merge starts once the overlay holds this many mergeable entries, and takes
# at most MERGE_CHUNK of them: its loop-thread steps are O(chunk), so a chunk
# bounds the pause calls see (measured during a 1M-row import: 120 ms a step
# at 50,000, under 50 ms at 10,000).
MERGE_AT = 20_000
MERGE_CHUNK = 10_000
_ID_SHARDS = 16
_ID_MASK = _ID_SHARDS - 1


@dataclass(slots=True)
class IndexEntry:
    id: str
    tenant_id: str
    number: str
    match_kind: MatchKind
    # CallType values are bit masks of Direction values (BOTH = 1 | 2).
    call_type: CallType
    enabled: bool
    expires_at: float = NEVER  # POSIX seconds
    action: Action = _BLOCK

    def qualifies(self, direction: int, now: float) -> bool:
        return self.enabled and self.call_type & direction != 0 and now < self.expires_at

    def miss(self, now: float) -> int:
        """Why the entry does not qualify (it does not): disabled, else expired, else the other direction."""
        if not self.enabled:
            return MISS_DISABLED
        return MISS_EXPIRED if not now < self.expires_at else MISS_OTHER_DIRECTION


class TenantRules:
    """One tenant's entries: exact numbers and prefixes."""

    __slots__ = ("_lengths_desc", "_prefix_lengths", "exact", "prefix")

    def __init__(self) -> None:
        self.exact: dict[str, IndexEntry] = {}
        self.prefix: dict[str, IndexEntry] = {}
        self._prefix_lengths: dict[int, int] = {}
        # Only lengths that some prefix has are probed, longest first.
        self._lengths_desc: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.exact) + len(self.prefix)

    def put(self, entry: IndexEntry) -> IndexEntry | None:
        """Store the entry under its key; return the entry it displaced."""
        if entry.match_kind is MatchKind.EXACT:
            old = self.exact.get(entry.number)
            self.exact[entry.number] = entry
            return old
        old = self.prefix.get(entry.number)
        self.prefix[entry.number] = entry
        if old is None:
            self._count_length(len(entry.number), +1)
        return old

    def drop(self, entry: IndexEntry) -> None:
        """Remove the entry if it is the one stored under its key."""
        table = self.exact if entry.match_kind is MatchKind.EXACT else self.prefix
        if table.get(entry.number) is entry:
            del table[entry.number]
            if entry.match_kind is MatchKind.PREFIX:
                self._count_length(len(entry.number), -1)

    def _count_length(self, length: int, delta: int) -> None:
        count = self._prefix_lengths.get(length, 0) + delta
        if count:
            self._prefix_lengths[length] = count
        else:
            self._prefix_lengths.pop(length, None)
        self._lengths_desc = tuple(sorted(self._prefix_lengths, reverse=True))

    def match_prefix(self, number: str, direction: int, now: float, missed: int = 0) -> IndexEntry | int:
        """The longest qualifying prefix entry; else the highest MISS_* rank: `missed`, or a prefix passed over."""
        size = len(number)
        prefix = self.prefix
        for length in self._lengths_desc:
            if length > size:
                continue
            entry = prefix.get(number[:length])
            if entry is not None:
                if entry.qualifies(direction, now):
                    return entry
                missed = max(missed, entry.miss(now))
        return missed


def _mergeable(entry: IndexEntry) -> bool:
    """Whether the base can hold the entry: EXACT, a normalized number, a UUID id."""
    return (
        entry.match_kind is MatchKind.EXACT
        and entry.action is _BLOCK
        and ENCODABLE.fullmatch(entry.number) is not None
        and id_parts(entry.id) is not None
    )


class Merge:
    """One merge: a snapshot taken on the loop thread, built by `build` in a worker thread."""

    def __init__(self, base: Base, shadowed: frozenset[str], entries: list[IndexEntry]) -> None:
        self.base = base
        self.shadowed = shadowed  # left out of the new base
        self.entries = entries
        self.result: Base | None = None

    def build(self) -> None:
        added = Columns.of_entries(
            [(e.id, e.tenant_id, e.number, e.call_type, e.enabled, e.expires_at) for e in self.entries]
        )
        drop = [parts for parts in map(id_parts, self.shadowed) if parts is not None]
        self.result = Base.build(concat(self.base.columns(drop), added))


class ScreeningIndex:
    """Every tenant's rules, kept equal to the database by the replica."""

    __slots__ = ("_base", "_by_id", "_mergeable", "_search", "_shadowed", "_tenants", "_touched")

    def __init__(self, base: Base | None = None) -> None:
        self._base = Base.empty() if base is None else base
        self._search = self._base.searcher()
        # The overlay.
        self._tenants: dict[str, TenantRules] = {}
        # Sharded: a dict of a million entries (a big import, before merges
        # catch up) takes tens of milliseconds to grow, and one that grows
        # together with a tenant's exact-number dict would stall the event
        # loop twice as long.
        self._by_id: tuple[dict[str, IndexEntry], ...] = tuple({} for _ in range(_ID_SHARDS))
        # Ids of overlay entries the base can hold: what a merge takes.
        self._mergeable: set[str] = set()
        # Base ids whose base copy is not served: changed (the overlay has them) or gone.
        self._shadowed: set[str] = set()
        # Ids changed while a merge is being built; None when no merge is.
        self._touched: set[str] | None = None

    @staticmethod
    def from_columns(columns: Columns) -> ScreeningIndex:
        """An index whose base holds these EXACT entries (the first load)."""
        return ScreeningIndex(Base.build(columns))

    def __len__(self) -> int:
        return len(self._base) - len(self._shadowed) + sum(map(len, self._by_id))

    @property
    def base_bytes(self) -> int:
        return self._base.nbytes

    def rebuilt(
        self, added: Columns, changed_hi: UInt64s, changed_lo: UInt64s, others: list[IndexEntry]
    ) -> ScreeningIndex:
        """A new index: this one with a whole change set applied; this one is left as it is.

        `added` holds the change set's live EXACT entries with UUID ids and
        numbers the key packs; `others` its other live entries; `changed_*`
        every id it changed, tombstones included. Everything this index
        holds and the set did not change goes into one new base with
        `added`, in one sort that releases the GIL, so it can run in a worker
        thread while this index keeps answering; nothing may change this
        index meanwhile.
        """
        base = self._base
        keep = np.ones(len(base), bool)
        stale = [base.position_of_id(*parts) for parts in map(id_parts, self._shadowed) if parts is not None]
        keep[[pos for pos in stale if pos >= 0]] = False
        if len(base):
            keep &= ~ids_in(base.ids[:, 0], base.ids[:, 1], changed_hi, changed_lo)
        overlay = [entry for shard in self._by_id for entry in shard.values()]
        parts = [id_parts(entry.id) or (0, 0) for entry in overlay]
        hi = np.fromiter((p[0] for p in parts), np.uint64, len(parts))
        lo = np.fromiter((p[1] for p in parts), np.uint64, len(parts))
        changed = ids_in(hi, lo, changed_hi, changed_lo).tolist()
        kept = [entry for entry, gone in zip(overlay, changed, strict=True) if not gone]
        mergeable = [(e.id, e.tenant_id, e.number, e.call_type, e.enabled, e.expires_at) for e in kept if _mergeable(e)]
        columns = concat(concat(base.columns_where(keep), Columns.of_entries(mergeable)), added)
        index = ScreeningIndex(Base.build(columns))
        for entry in kept:
            if not _mergeable(entry):
                index.upsert(entry)
        for entry in others:
            index.upsert(entry)
        return index

    @staticmethod
    def keys_of(numbers: list[str]) -> Keyed:
        """What screen_many searches the base for: once for a batch screened against several tenants."""
        return keys_of(numbers)

    def knows(self, tenant_id: str) -> bool:
        """Whether the tenant has entries here (a base tenant whose entries were since all deleted: until a merge)."""
        return tenant_id in self._tenants or self._base.has_tenant(tenant_id)

    def get(self, entry_id: str) -> IndexEntry | None:
        entry = self._by_id[hash(entry_id) & _ID_MASK].get(entry_id)
        if entry is not None or entry_id in self._shadowed:
            return entry
        parts = id_parts(entry_id)
        if parts is None:
            return None
        pos = self._base.position_of_id(*parts)
        return None if pos < 0 else self._base_entry(pos)

    def _base_entry(self, pos: int, tenant_id: str | None = None) -> IndexEntry:
        entry_id, tenant, number, call_type, enabled, expires_at = self._base.entry_at(pos, tenant_id)
        return IndexEntry(entry_id, tenant, number, MatchKind.EXACT, call_type, enabled, expires_at)

    def upsert(self, entry: IndexEntry) -> None:
        """Apply the current state of an entry. Idempotent.

        A change can arrive before the change that freed its key (another
        entry deleted or renumbered by a transaction not yet read); the
        database's uniqueness guarantees the displaced entry's own change
        follows, so it is dropped here and re-added when that change comes.
        """
        self.remove(entry.id)
        rules = self._tenants.get(entry.tenant_id)
        if rules is None:
            rules = self._tenants[entry.tenant_id] = TenantRules()
        displaced = rules.put(entry)
        if displaced is not None and displaced.id != entry.id:
            self._forget(displaced)
            self._touch(displaced.id)
        self._by_id[hash(entry.id) & _ID_MASK][entry.id] = entry
        if _mergeable(entry):
            self._mergeable.add(entry.id)
        if len(self._base) and entry.match_kind is MatchKind.EXACT and ENCODABLE.fullmatch(entry.number):
            pos = self._base.find(entry.tenant_id, number_key(entry.number))
            if pos >= 0:
                other = self._base.id_at(pos)
                if other != entry.id and other not in self._shadowed:
                    self._shadowed.add(other)
                    self._touch(other)

    def remove(self, entry_id: str) -> None:
        """Forget an entry (deleted). Idempotent."""
        self._touch(entry_id)
        old = self._by_id[hash(entry_id) & _ID_MASK].get(entry_id)
        if old is not None:
            self._forget(old)
        if len(self._base) and entry_id not in self._shadowed:
            parts = id_parts(entry_id)
            if parts is not None and self._base.position_of_id(*parts) >= 0:
                self._shadowed.add(entry_id)

    def _forget(self, entry: IndexEntry) -> None:
        """Take the entry out of the overlay."""
        del self._by_id[hash(entry.id) & _ID_MASK][entry.id]
        self._mergeable.discard(entry.id)
        rules = self._tenants[entry.tenant_id]
        rules.drop(entry)
        if not rules:
            del self._tenants[entry.tenant_id]

    def _touch(self, entry_id: str) -> None:
        if self._touched is not None:
            self._touched.add(entry_id)

    def screen(self, tenant_id: str, number: str, direction: Direction | int, now: float) -> IndexEntry | None:
        """The entry that decides this call (BLOCK or ALLOW), or None when no entry qualifies."""
        found = self.lookup(tenant_id, number, direction, now)
        return None if isinstance(found, int) else found

    def lookup(self, tenant_id: str, number: str, direction: Direction | int, now: float) -> IndexEntry | int:
        """The most specific qualifying entry of the tenant; else why none qualifies: a MISS_* rank, 0 for none.

        `number` is normalized (screening.domain.numbers.normalize): "" or digits
        after an optional '+', which is what the base's keys encode.
        """
        if not number:
            return 0
        missed = 0
        rules = self._tenants.get(tenant_id)
        if rules is not None:
            entry = rules.exact.get(number)
            if entry is not None:
                if entry.qualifies(direction, now):
                    return entry
                missed = entry.miss(now)
        # An overlay entry and a served base entry never share a key (upsert
        # shadows the base one), so the base is asked only now.
        found = self._search.hit(tenant_id, number, direction, now, self._shadowed)
        if found is not None:
            if isinstance(found, int):
                missed = found
            else:
                entry_id, call_type, expires = found
                return IndexEntry(entry_id, tenant_id, number, _EXACT, CALL_TYPES[call_type], True, expires)  # type: ignore[arg-type]
        return missed if rules is None or not rules.prefix else rules.match_prefix(number, direction, now, missed)

    def screen_many(
        self, tenant_id: str, numbers: list[str], direction: Direction | int, now: float, keyed: Keyed | None = None
    ) -> list[IndexEntry | None]:
        """screen() of each number, with the base searched for all of them at once (`keyed`: keys_of(numbers))."""
        rules = self._tenants.get(tenant_id)
        from_base = self._base.hits(tenant_id, numbers, direction, now, keyed)
        shadowed = self._shadowed
        if rules is None:
            # Nothing of the tenant's in the overlay (a big shared list, usually): only the base's hits.
            decided: list[IndexEntry | None] = [None] * len(numbers)
            for i, (pos, call_type, expires) in from_base.items():
                entry_id = self._search.id_at(pos)
                if entry_id not in shadowed:
                    kind = CALL_TYPES[call_type]
                    assert kind is not None
                    decided[i] = IndexEntry(entry_id, tenant_id, numbers[i], _EXACT, kind, True, expires)
            return decided
        results: list[IndexEntry | None] = []
        append = results.append
        for i, number in enumerate(numbers):
            if number:
                entry = rules.exact.get(number)
                if entry is not None and entry.qualifies(direction, now):
                    append(entry)
                    continue
            hit = from_base.get(i)
            if hit is not None:
                entry_id = self._search.id_at(hit[0])
                if entry_id not in shadowed:
                    append(IndexEntry(entry_id, tenant_id, number, _EXACT, CALL_TYPES[hit[1]], True, hit[2]))  # type: ignore[arg-type]
                    continue
            found = rules.match_prefix(number, direction, now) if number and rules.prefix else None
            append(None if isinstance(found, int) else found)
        return results

    def entries(self) -> list[IndexEntry]:
        base = self._base
        from_base = (self._base_entry(pos) for pos in range(len(base)))
        return [e for e in from_base if e.id not in self._shadowed] + [
            entry for shard in self._by_id for entry in shard.values()
        ]

    # Merging, in three steps: begin (loop thread), Merge.build (worker thread), finish (loop thread).

    def wants_merge(self) -> bool:
        return self._touched is None and len(self._mergeable) >= MERGE_AT

    def begin_merge(self, chunk: int = MERGE_CHUNK) -> Merge:
        by_id = self._by_id
        entries = [by_id[hash(i) & _ID_MASK][i] for i in itertools.islice(self._mergeable, chunk)]
        self._touched = set()
        return Merge(self._base, frozenset(self._shadowed), entries)

    def finish_merge(self, merge: Merge) -> None:
        """Serve from the merged base; what changed meanwhile stays in the overlay."""
        assert merge.result is not None and self._touched is not None
        touched, self._touched = self._touched, None
        base = merge.result
        merged = {entry.id for entry in merge.entries}
        for entry in merge.entries:
            if entry.id not in touched and self._by_id[hash(entry.id) & _ID_MASK].get(entry.id) is entry:
                self._forget(entry)
        # Set operations only (a merge during a big import sees many changes):
        # ids shadowed before the merge were left out of the new base; the new
        # base has stale copies of the merged ids changed since, and of the old
        # base's ids shadowed since (every such change shadowed them).
        self._shadowed = (touched & merged) | (self._shadowed - merge.shadowed)
        self._base = base
        self._search = base.searcher()

    def abort_merge(self) -> None:
        self._touched = None


async def merge_in_background(index: ScreeningIndex) -> None:
    """One merge; the sorting runs in a worker thread (numpy releases the GIL)."""
    merge = index.begin_merge()
    try:
        await asyncio.to_thread(merge.build)
    except BaseException:
        index.abort_merge()
        raise
    index.finish_merge(merge)
    # malloc_trim walks the whole heap: never on the event loop (ctypes releases the GIL).
    await asyncio.to_thread(release_freed_memory)

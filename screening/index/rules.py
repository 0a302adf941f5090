"""The in-memory screening index: what ScreenCall answers from.

A plain class with no I/O. Entries are keyed by id (how changes arrive) and
by (tenant, match kind, number) (how calls are screened). Disabled and
expired entries stay in the index so that enabling one, or an expiry that is
moved, needs no reload; they are skipped at screen time.

Two parts answer together. Runs (screening/index/compact.py's Base) hold the
bulk of EXACT entries in sorted arrays at 28 bytes each; each is built once
and never modified. The overlay holds PREFIX entries and every change since
the runs were built, as objects in dicts. An entry of a run that was changed
or deleted since, or whose number another entry took, is "shadowed" in that
run: its copy there is no longer served. A tenant's number has at most one
served copy in the overlay and all runs together, so a look-up asks the
overlay, then the runs newest first, and the first that answers decides.

A merge builds a new run of a bounded chunk of the overlay's EXACT entries
alone, in a worker thread, so it costs in proportion to the chunk, not to
the index. The runs are kept in shape by size ratio, as log-structured
stores do (`_plan`): each at least RATIO times all newer ones together, so
there are a handful of them and an entry is merged again a handful of times
on its way into the oldest, not once a merge; runs that break the rule are
compacted into one in a worker thread, less what they no longer serve. A big
change set takes another way (`rebuilt`): a new index, built in a worker
thread, with one new run of the set and the overlay's entries beside the
runs it shares, which the replica swaps in at once.

A look-up returns the most specific qualifying entry, whatever its action:
an exact entry over any prefix, a longer prefix over a shorter one. ALLOW
entries (allow-exceptions: few) never go into a run, whose look-ups read
no action (its keys have free flag bits that could hold one); they stay in
the overlay. When no entry qualifies, the
look-up tells why from the entries it passed over anyway (a MISS_* rank, the
highest seen), so the common miss, a number no entry has, costs no more.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from functools import partial

import numpy as np

from screening.domain.model import Action, CallType, Direction, MatchKind
from screening.index.compact import (
    CALL_TYPES,
    ENABLED,
    ENCODABLE,
    EXPIRES,
    MISS_DISABLED,
    MISS_EXPIRED,
    MISS_OTHER_DIRECTION,
    NEVER,
    Base,
    Columns,
    Keyed,
    Searcher,
    UInt64s,
    concat,
    format_ids,
    id_parts,
    ids_in,
    is_id,
    keys_of,
    number_key,
    parse_ids,
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
# A merged chunk's overlay copies are forgotten this many at a time, between turns of the loop
# (about a microsecond each).
SETTLE_AT_ONCE = 1000
# The shape of the runs (ScreeningIndex._plan): each at least RATIO times all newer ones together,
# at most MAX_RUNS of them (each is one more search for a number no run has).
RATIO = 4
MAX_RUNS = 8
_COPY_AT_ONCE = 20_000
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

    # exact, prefix and _lengths_desc are read by name in C as well (QuickScreen, screening/_native.c).
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
        and is_id(entry.id)
    )


def _columns_of(entries: list[IndexEntry]) -> Columns:
    """Mergeable entries as columns: C calls over lists of their fields, no Python step per field and entry."""
    n = len(entries)
    tenant_ids = [e.tenant_id for e in entries]
    names = sorted(set(tenant_ids))
    ordinal = {name: i for i, name in enumerate(names)}
    which, keys = keys_of([e.number for e in entries])
    assert len(which) == n  # mergeable entries have encodable numbers
    flags = np.fromiter(
        (e.call_type | (ENABLED if e.enabled else 0) | (EXPIRES if e.expires_at != NEVER else 0) for e in entries),
        np.int64,
        n,
    )
    hi, lo = parse_ids([e.id for e in entries])
    expires = np.fromiter((e.expires_at for e in entries), np.float64, n)
    expires[expires == NEVER] = 0.0
    tenant = np.fromiter(map(ordinal.__getitem__, tenant_ids), np.int32, n)
    return Columns(names, tenant, keys | flags, hi, lo, expires)


class Run:
    """One immutable Base, and which of its entries are no longer served.

    `shadowed` is what look-ups skip. `hidden` lists the ids in it for
    good, in the order they were hidden, so that a compaction can take
    what was hidden when it began as a prefix of the list (O(1) on the
    loop thread) and what was hidden while it ran as the rest. `pending`
    holds the ids of a merge just installed whose overlay copies are
    still being forgotten, a slice at a time: shadowed, not hidden.
    """

    __slots__ = ("base", "hidden", "pending", "search", "shadowed")

    def __init__(
        self,
        base: Base,
        shadowed: set[str] | None = None,
        hidden: list[str] | None = None,
        pending: set[str] | None = None,
        search: Searcher | None = None,
    ) -> None:
        self.base = base
        self.search = base.searcher() if search is None else search
        self.shadowed: set[str] = set() if shadowed is None else shadowed
        self.hidden: list[str] = [] if hidden is None else hidden
        self.pending: set[str] = set() if pending is None else pending

    def hide(self, entry_id: str) -> None:
        """Stop serving this run's copy of the id (the caller found it here)."""
        if entry_id in self.pending:
            self.pending.discard(entry_id)
            self.hidden.append(entry_id)
        elif entry_id not in self.shadowed:
            self.shadowed.add(entry_id)
            self.hidden.append(entry_id)

    def live(self) -> int:
        return len(self.base) - len(self.shadowed)

    def copy(self) -> Run:
        """A run over the same Base with sets of its own, copied a slice at a time (in a worker thread:
        one set() of a million ids would hold the GIL for a quarter of a second)."""
        shadowed: set[str] = set()
        ids = iter(self.shadowed)
        while part := list(itertools.islice(ids, _COPY_AT_ONCE)):
            shadowed.update(part)
        hidden: list[str] = []
        for start in range(0, len(self.hidden), _COPY_AT_ONCE):
            hidden += self.hidden[start : start + _COPY_AT_ONCE]
        hidden += self.pending  # their overlay copies go elsewhere: hidden for good
        return Run(self.base, shadowed, hidden, None, self.search)


class Merge:
    """One merge of overlay entries into a new run: ids taken on the loop thread, the rest by `build` in a worker."""

    def __init__(self, overlay: tuple[dict[str, IndexEntry], ...], ids: list[str]) -> None:
        self._overlay = overlay
        self._ids = ids
        self.entries: list[IndexEntry] = []
        self.run: Run | None = None
        self.settled = 0  # entries whose overlay copies were dealt with, after install

    def build(self) -> None:
        # The overlay changes meanwhile: an entry is taken as it is when read here (one dict read),
        # and settle_merge serves the run's copy only if the overlay still holds that very entry.
        overlay = self._overlay
        taken = [overlay[hash(i) & _ID_MASK].get(i) for i in self._ids]
        self.entries = [entry for entry in taken if entry is not None and _mergeable(entry)]
        ids = {entry.id for entry in self.entries}
        self.run = Run(Base.build(_columns_of(self.entries)), ids, None, set(ids))


class Compaction:
    """Adjacent runs merged into one, less what they no longer serve, built by `build` in a worker thread."""

    def __init__(self, first: int, runs: list[Run]) -> None:
        self.first = first
        self.runs = runs  # newest first, as in the index
        self.cut = [len(run.hidden) for run in runs]  # hidden before the compaction began: left out
        self.result: Base | None = None

    def build(self) -> None:
        merged: Columns | None = None
        for run, cut in zip(self.runs, self.cut, strict=True):
            keep = np.ones(len(run.base), bool)
            # `hidden` only grows at its end: its first `cut` ids stay as they are meanwhile.
            for start in range(0, cut, _COPY_AT_ONCE):
                hi, lo = parse_ids(run.hidden[start : min(cut, start + _COPY_AT_ONCE)])
                keep[run.base.positions_of_ids(hi, lo)] = False
            columns = run.base.columns_where(keep)
            merged = columns if merged is None else concat(merged, columns)
        assert merged is not None
        self.result = Base.build(merged)


class ScreeningIndex:
    """Every tenant's rules, kept equal to the database by the replica."""

    __slots__ = ("_busy", "_by_id", "_max_runs", "_mergeable", "_probes", "_ratio", "_runs", "_tenants")

    def __init__(self, base: Base | None = None, *, ratio: int = RATIO, max_runs: int = MAX_RUNS) -> None:
        # Newest first; a tenant's number has at most one served copy in all of them and the overlay.
        self._runs: list[Run] = [] if base is None or not len(base) else [Run(base)]
        # What lookup() walks: (searcher, shadowed) of each run, newest first. This and _tenants are read
        # by name in C as well (QuickScreen, screening/_native.c): a change of either's shape changes both.
        self._probes: tuple[tuple[Searcher, set[str]], ...] = ()
        self._ratio, self._max_runs = ratio, max_runs
        # The overlay.
        self._tenants: dict[str, TenantRules] = {}
        # Sharded: a dict of a million entries (a big import, before merges
        # catch up) takes tens of milliseconds to grow, and one that grows
        # together with a tenant's exact-number dict would stall the event
        # loop twice as long.
        self._by_id: tuple[dict[str, IndexEntry], ...] = tuple({} for _ in range(_ID_SHARDS))
        # Ids of overlay entries a run can hold: what a merge takes.
        self._mergeable: set[str] = set()
        # Whether a merge or a compaction is under way (one at a time).
        self._busy = False
        self._runs_changed()

    def _runs_changed(self) -> None:
        self._probes = tuple((run.search, run.shadowed) for run in self._runs)

    @staticmethod
    def from_columns(columns: Columns) -> ScreeningIndex:
        """An index whose base holds these EXACT entries (the first load)."""
        return ScreeningIndex(Base.build(columns))

    def __len__(self) -> int:
        return sum(run.live() for run in self._runs) + sum(map(len, self._by_id))

    @property
    def base_bytes(self) -> int:
        return sum(run.base.nbytes for run in self._runs)

    @property
    def run_sizes(self) -> list[int]:
        """Entries in each run, newest first."""
        return [len(run.base) for run in self._runs]

    def rebuilt(
        self, added: Columns, changed_hi: UInt64s, changed_lo: UInt64s, others: list[IndexEntry]
    ) -> ScreeningIndex:
        """A new index: this one with a whole change set applied; this one is left as it is.

        `added` holds the change set's live EXACT entries with UUID ids and
        numbers the key packs; `others` its other live entries; `changed_*`
        every id it changed, tombstones included. They go into a new run
        with the overlay's mergeable entries the set did not change; the
        runs are shared, each with its own copy of what it no longer serves
        plus the copies the set changed, so the work is in proportion to the
        change (and to what the runs no longer serve, which compactions keep
        a fraction of them). Runs in a worker thread while this index keeps
        answering; nothing may change this index meanwhile.
        """
        runs = [run.copy() for run in self._runs]
        for run in runs:
            where = run.base.positions_of_ids(changed_hi, changed_lo) >= 0
            if where.any():
                for entry_id in format_ids(changed_hi[where], changed_lo[where]):
                    run.hide(entry_id)
        overlay = [entry for shard in self._by_id for entry in shard.values()]
        parts = [id_parts(entry.id) or (0, 0) for entry in overlay]
        hi = np.fromiter((p[0] for p in parts), np.uint64, len(parts))
        lo = np.fromiter((p[1] for p in parts), np.uint64, len(parts))
        changed = ids_in(hi, lo, changed_hi, changed_lo).tolist()
        kept = [entry for entry, gone in zip(overlay, changed, strict=True) if not gone]
        mergeable = [entry for entry in kept if _mergeable(entry)]
        columns = concat(_columns_of(mergeable), added) if mergeable else added
        index = ScreeningIndex(ratio=self._ratio, max_runs=self._max_runs)
        index._runs = ([Run(Base.build(columns))] if len(columns.keys) else []) + runs
        index._runs_changed()
        for entry in kept:
            if not _mergeable(entry):
                index.upsert(entry)
        for entry in others:
            index.upsert(entry)
        return index

    @staticmethod
    def keys_of(numbers: list[str]) -> Keyed:
        """What screen_many searches the runs for: once for a batch screened against several tenants."""
        return keys_of(numbers)

    def knows(self, tenant_id: str) -> bool:
        """Whether the tenant has entries here (a run's tenant whose entries are all gone: until compacted)."""
        return tenant_id in self._tenants or any(run.base.has_tenant(tenant_id) for run in self._runs)

    def get(self, entry_id: str) -> IndexEntry | None:
        entry = self._by_id[hash(entry_id) & _ID_MASK].get(entry_id)
        if entry is not None or not self._runs:
            return entry
        parts = id_parts(entry_id)
        if parts is None:
            return None
        for run in self._runs:
            if entry_id not in run.shadowed:
                pos = run.base.position_of_id(*parts)
                if pos >= 0:
                    return _run_entry(run, pos)
        return None

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
        self._by_id[hash(entry.id) & _ID_MASK][entry.id] = entry
        if _mergeable(entry):
            self._mergeable.add(entry.id)
        if self._runs and entry.match_kind is MatchKind.EXACT and ENCODABLE.fullmatch(entry.number):
            key = number_key(entry.number)
            for run in self._runs:
                pos = run.base.find(entry.tenant_id, key)
                if pos >= 0:
                    other = run.base.id_at(pos)
                    if other != entry.id:
                        run.hide(other)

    def remove(self, entry_id: str) -> None:
        """Forget an entry (deleted). Idempotent."""
        old = self._by_id[hash(entry_id) & _ID_MASK].get(entry_id)
        if old is not None:
            self._forget(old)
        if self._runs:
            parts = id_parts(entry_id)
            if parts is not None:
                for run in self._runs:
                    if (entry_id not in run.shadowed or entry_id in run.pending) and run.base.position_of_id(
                        *parts
                    ) >= 0:
                        run.hide(entry_id)

    def _forget(self, entry: IndexEntry) -> None:
        """Take the entry out of the overlay."""
        del self._by_id[hash(entry.id) & _ID_MASK][entry.id]
        self._mergeable.discard(entry.id)
        rules = self._tenants[entry.tenant_id]
        rules.drop(entry)
        if not rules:
            del self._tenants[entry.tenant_id]

    def screen(self, tenant_id: str, number: str, direction: Direction | int, now: float) -> IndexEntry | None:
        """The entry that decides this call (BLOCK or ALLOW), or None when no entry qualifies."""
        found = self.lookup(tenant_id, number, direction, now)
        return None if isinstance(found, int) else found

    def lookup(self, tenant_id: str, number: str, direction: Direction | int, now: float) -> IndexEntry | int:
        """The most specific qualifying entry of the tenant; else why none qualifies: a MISS_* rank, 0 for none.

        `number` is normalized (screening.domain.numbers.normalize): "" or digits
        after an optional '+', which is what the runs' keys encode.
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
        # An overlay entry and a served run entry never share a key (upsert
        # hides the run's), nor do two runs, so the first run that answers decides.
        for search, shadowed in self._probes:
            found = search.hit(tenant_id, number, direction, now, shadowed)
            if found is not None:
                if isinstance(found, int):
                    missed = found
                    break
                entry_id, call_type, expires = found
                return IndexEntry(entry_id, tenant_id, number, _EXACT, CALL_TYPES[call_type], True, expires)  # type: ignore[arg-type]
        return missed if rules is None or not rules.prefix else rules.match_prefix(number, direction, now, missed)

    def screen_many(
        self, tenant_id: str, numbers: list[str], direction: Direction | int, now: float, keyed: Keyed | None = None
    ) -> list[IndexEntry | None]:
        """screen() of each number, with each run searched for all of them at once (`keyed`: keys_of(numbers))."""
        rules = self._tenants.get(tenant_id)
        if keyed is None and len(self._runs) > 1:
            keyed = keys_of(numbers)
        # A number's served copy is in one run at most: the runs' hits never overlap.
        from_runs: dict[int, IndexEntry] = {}
        for run in self._runs:
            shadowed, search = run.shadowed, run.search
            for i, (pos, call_type, expires) in run.base.hits(tenant_id, numbers, direction, now, keyed).items():
                entry_id = search.id_at(pos)
                if entry_id not in shadowed:
                    kind = CALL_TYPES[call_type]
                    assert kind is not None
                    from_runs[i] = IndexEntry(entry_id, tenant_id, numbers[i], _EXACT, kind, True, expires)
        if rules is None:
            # Nothing of the tenant's in the overlay (a big shared list, usually): only the runs' hits.
            decided: list[IndexEntry | None] = [None] * len(numbers)
            for i, hit in from_runs.items():
                decided[i] = hit
            return decided
        results: list[IndexEntry | None] = []
        append = results.append
        for i, number in enumerate(numbers):
            if number:
                entry = rules.exact.get(number)
                if entry is not None and entry.qualifies(direction, now):
                    append(entry)
                    continue
            served = from_runs.get(i)
            if served is not None:
                append(served)
                continue
            found = rules.match_prefix(number, direction, now) if number and rules.prefix else None
            append(None if isinstance(found, int) else found)
        return results

    def entries(self) -> list[IndexEntry]:
        served: list[IndexEntry] = []
        for run in self._runs:
            served += (e for e in map(partial(_run_entry, run), range(len(run.base))) if e.id not in run.shadowed)
        return served + [entry for shard in self._by_id for entry in shard.values()]

    # Merging, in steps: begin (loop thread), build (worker thread), install and settle (loop thread).

    def wants_merge(self) -> bool:
        return not self._busy and (len(self._mergeable) >= MERGE_AT or self._plan() is not None)

    def begin_merge(self, chunk: int = MERGE_CHUNK) -> Merge:
        assert not self._busy
        # One C call (list() of an islice of a set): the entries themselves are read by the build.
        ids = list(itertools.islice(self._mergeable, chunk))
        self._busy = True
        return Merge(self._by_id, ids)

    def install_merge(self, merge: Merge) -> None:
        """Serve from the merge's run too: O(1); its entries stay in the overlay, and shadowed in it, until settled."""
        assert merge.run is not None and self._busy
        if len(merge.run.base):
            self._runs.insert(0, merge.run)
            self._runs_changed()

    def settle_merge(self, merge: Merge, count: int) -> bool:
        """Forget up to `count` more of the merge's entries from the overlay, to be served from its run; whether
        some are left. An entry changed since the merge began stays, and its copy in the run is hidden."""
        run = merge.run
        assert run is not None
        entries = merge.entries[merge.settled : merge.settled + count]
        merge.settled += len(entries)
        for entry in entries:
            if entry.id in run.pending:
                if self._by_id[hash(entry.id) & _ID_MASK].get(entry.id) is entry:
                    run.pending.discard(entry.id)
                    run.shadowed.discard(entry.id)
                    self._forget(entry)
                else:
                    run.hide(entry.id)
        if merge.settled < len(merge.entries):
            return True
        self._busy = False
        return False

    def finish_merge(self, merge: Merge) -> None:
        """install_merge and settle_merge at once."""
        self.install_merge(merge)
        while self.settle_merge(merge, len(merge.entries)):
            pass

    def abort_merge(self) -> None:
        """Drop a merge or compaction begun and not installed."""
        self._busy = False

    def _plan(self) -> tuple[int, int] | None:
        """Runs to compact, as (first, count), newest first; None when they keep their shape.

        Each run is to be at least `ratio` times the size of all newer ones
        together (so there are about log(entries / chunk) / log(ratio + 1) of
        them, and an entry is merged that many times, not once a merge as
        with one base); when one is not, it is compacted with all newer
        ones. A run of which more than 1 / ratio is no longer served is
        compacted alone.
        """
        runs, ratio = self._runs, self._ratio
        newer, last = 0, 0
        for j, run in enumerate(runs):
            if j and len(run.base) < ratio * newer:
                last = j
            newer += len(run.base)
        if last:
            return 0, last + 1
        if len(runs) > self._max_runs:
            return 0, len(runs) - self._max_runs + 1
        for j, run in enumerate(runs):
            if len(run.shadowed) * ratio > len(run.base):
                return j, 1
        return None

    def begin_compaction(self) -> Compaction | None:
        """The compaction the runs want, if any: O(runs) on the loop thread."""
        if self._busy:
            return None
        plan = self._plan()
        if plan is None:
            return None
        first, count = plan
        self._busy = True
        return Compaction(first, self._runs[first : first + count])

    def finish_compaction(self, compaction: Compaction) -> None:
        """Serve from the compacted run: O(ids hidden in the compacted runs while it was built)."""
        assert compaction.result is not None and self._busy
        first, runs = compaction.first, compaction.runs
        assert self._runs[first : first + len(runs)] == runs
        since = [entry_id for run, cut in zip(runs, compaction.cut, strict=True) for entry_id in run.hidden[cut:]]
        merged = [Run(compaction.result, set(since), since)] if len(compaction.result) else []
        self._runs[first : first + len(runs)] = merged
        self._runs_changed()
        self._busy = False


def _run_entry(run: Run, pos: int) -> IndexEntry:
    entry_id, tenant, number, call_type, enabled, expires_at = run.base.entry_at(pos)
    return IndexEntry(entry_id, tenant, number, MatchKind.EXACT, call_type, enabled, expires_at)


async def merge_in_background(index: ScreeningIndex) -> None:
    """Merge the overlay's mergeable entries (a chunk) into a new run, then compact the runs as they want;
    what sorts runs in a worker thread (numpy releases the GIL), the rest on the loop in short steps."""
    if index._mergeable and not index._busy:
        merge = index.begin_merge()
        try:
            await asyncio.to_thread(merge.build)
        except BaseException:
            index.abort_merge()
            raise
        index.install_merge(merge)
        try:
            while True:
                if not index.settle_merge(merge, SETTLE_AT_ONCE):
                    break
                await asyncio.sleep(0)  # a turn of the loop for calls between slices
        except BaseException:
            # Cancelled (a big change set is to be switched in): settled at once, so that nothing is half done.
            while index.settle_merge(merge, len(merge.entries)):
                pass
            raise
    while (compaction := index.begin_compaction()) is not None:
        try:
            await asyncio.to_thread(compaction.build)
        except BaseException:
            index.abort_merge()
            raise
        index.finish_compaction(compaction)
    # malloc_trim walks the whole heap: never on the event loop (ctypes releases the GIL).
    await asyncio.to_thread(release_freed_memory)

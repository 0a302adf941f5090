"""The in-memory screening index: what ScreenCall answers from.

A plain class with no I/O. Entries are keyed by id (how changes arrive) and
by (tenant, match kind, number) (how calls are screened). Disabled and
expired entries stay in the index so that enabling one, or an expiry that is
moved, needs no reload; they are skipped at screen time.

Extension points: a rule set is looked up per tenant, so a list shared by all
tenants is one more rule set consulted after the tenant's own, and an
allow-exception is an entry with another action that wins the same way an
exact match wins over a prefix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from screening.model import CallType, Direction, MatchKind

NEVER = math.inf
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

    def qualifies(self, direction: int, now: float) -> bool:
        return self.enabled and self.call_type & direction != 0 and now < self.expires_at


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

    def match(self, number: str, direction: int, now: float) -> IndexEntry | None:
        """The winning qualifying entry: an exact match, else the longest prefix."""
        entry = self.exact.get(number)
        if entry is not None and entry.qualifies(direction, now):
            return entry
        size = len(number)
        prefix = self.prefix
        for length in self._lengths_desc:
            if length > size:
                continue
            entry = prefix.get(number[:length])
            if entry is not None and entry.qualifies(direction, now):
                return entry
        return None


class ScreeningIndex:
    """Every tenant's rules, kept equal to the database by the replica."""

    __slots__ = ("_by_id", "_tenants")

    def __init__(self) -> None:
        self._tenants: dict[str, TenantRules] = {}
        # Sharded: a dict of a million entries takes tens of milliseconds to
        # grow, and one that grows together with a tenant's exact-number dict
        # (same size, same moment) would stall the event loop twice as long.
        self._by_id: tuple[dict[str, IndexEntry], ...] = tuple({} for _ in range(_ID_SHARDS))

    def __len__(self) -> int:
        return sum(map(len, self._by_id))

    def get(self, entry_id: str) -> IndexEntry | None:
        return self._by_id[hash(entry_id) & _ID_MASK].get(entry_id)

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
            del self._by_id[hash(displaced.id) & _ID_MASK][displaced.id]
        self._by_id[hash(entry.id) & _ID_MASK][entry.id] = entry

    def remove(self, entry_id: str) -> None:
        """Forget an entry (deleted). Idempotent."""
        old = self._by_id[hash(entry_id) & _ID_MASK].pop(entry_id, None)
        if old is None:
            return
        rules = self._tenants[old.tenant_id]
        rules.drop(old)
        if not rules:
            del self._tenants[old.tenant_id]

    def screen(self, tenant_id: str, number: str, direction: Direction | int, now: float) -> IndexEntry | None:
        """The entry that forbids this call, or None when it is allowed."""
        if not number:
            return None
        rules = self._tenants.get(tenant_id)
        if rules is None:
            return None
        return rules.match(number, direction, now)

    def entries(self) -> list[IndexEntry]:
        return [entry for shard in self._by_id for entry in shard.values()]

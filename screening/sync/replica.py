"""Keeps the in-memory index equal to the database, and says how fresh it is."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg
import numpy as np

from screening.domain.model import Action, CallType, MatchKind
from screening.index.compact import (
    CALL_TYPE_MASK,
    ENABLED,
    EXPIRES,
    Base,
    Columns,
    format_id,
    id_parts,
    key_number,
    release_freed_memory,
)
from screening.index.rules import NEVER, IndexEntry, ScreeningIndex, merge_in_background
from screening.sync import snapshots
from screening.sync.feed import FeedWatch
from screening.sync.listener import Connect, Listener, echoed
from storage import changes, standby, tombstones
from storage.db import Conn, borrow
from storage.errors import RETRYABLE

log = logging.getLogger(__name__)

# A change set this size or smaller is applied to the index in place, with
# no await in between (a few milliseconds); a bigger one is built into a new
# index in a worker thread and swapped in.
APPLY_IN_PLACE = 2000


# Lookups, not Enum calls: a catch-up after a big import converts a million rows.
_MATCH_KINDS = {kind.value: kind for kind in MatchKind}
_CALL_TYPES = {call_type.value: call_type for call_type in CallType}
_ACTIONS = {action.value: action for action in Action}


def to_index_entry(row: changes.ChangedRow) -> IndexEntry:
    return IndexEntry(
        id=row.id,
        tenant_id=row.tenant_id,
        number=row.number,
        match_kind=_MATCH_KINDS[row.match_kind],
        call_type=_CALL_TYPES[row.call_type],
        enabled=row.enabled,
        expires_at=row.expire_time.timestamp() if row.expire_time is not None else NEVER,
        action=_ACTIONS[row.action],
    )


def _settle() -> None:
    """Exempt the objects alive now (the index's entries) from future garbage collections.

    A full collection walks every tracked object: with a million entries
    that is a stall of several hundred milliseconds, repeated each time the
    heap grows by a quarter. Entries hold no reference cycles, so frozen ones
    that are removed are still freed at once. Called only after big batches,
    so few short-lived objects that happen to be alive get frozen too.
    """
    gc.freeze()


def _rebuild(index: ScreeningIndex, change: changes.ChangeSet) -> ScreeningIndex:
    """`index` with the whole change set applied, as a new index (in a worker thread: a million rows take a while)."""
    others = [to_index_entry(row) for row in change.others]
    parts = [id_parts(entry.id) or (0, 0) for entry in others]
    changed_hi = np.concatenate((change.hi, np.fromiter((p[0] for p in parts), np.uint64, len(parts))))
    changed_lo = np.concatenate((change.lo, np.fromiter((p[1] for p in parts), np.uint64, len(parts))))
    live = ~change.deleted
    c = change
    added = Columns(c.tenants, c.tenant[live], c.keys[live], c.hi[live], c.lo[live], c.expires[live])
    return index.rebuilt(added, changed_hi, changed_lo, others)


class Stall:
    """Closes a connection once `limit` seconds pass with no progress reported.

    Cancelling a read would not do on a half-open connection: the
    cancellation waits on that connection too (asyncpg's cancel request, then
    the ROLLBACK of the transaction as it unwinds) and so hangs as long.
    Closing the socket fails all of it at once.
    """

    def __init__(self, conn: Conn, limit: float) -> None:
        self._conn = conn
        self._limit = limit
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._timer = self._loop.call_later(limit, self._check)

    def __enter__(self) -> Stall:
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def progress(self) -> None:
        self._last = self._loop.time()

    def _check(self) -> None:
        idle = self._loop.time() - self._last
        if idle >= self._limit:
            log.warning("no answer from the database for %.0fs: closing the connection", idle)
            self._conn.terminate()
        else:
            self._timer = self._loop.call_later(self._limit - idle, self._check)


@dataclass(frozen=True, slots=True)
class SyncState:
    serving: bool
    data_version: int
    entries: int
    connected: bool
    last_sync_time: float | None  # POSIX seconds of the last successful read
    seconds_behind: float
    listener_reconnects: int
    full_loads: int
    # Transaction ids the feed (a standby) is behind this replica's watermark; 0 unless waiting for it.
    feed_behind: int = 0
    feed_waits: int = 0  # times a catch-up found the feed behind and waited
    feed_standby: bool = False
    # On a standby feed, whether hot_standby_feedback is on (a primary feed: True).
    hot_standby_feedback: bool = True


class Replica:
    """Loads the index in one snapshot, then follows the change feed.

    Wake-ups come from NOTIFY through the listener (on the primary), and from
    a backstop poll that bounds staleness even when notifications are lost;
    a replica without a primary (`connect_listener` None) only polls. When the feed
    says the index can no longer be patched (another cluster, purged
    tombstones), a new index is loaded in the background and swapped in;
    screening goes on from the old one meanwhile.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        connect_listener: Connect | None,
        *,
        poll_interval: float = 0.5,
        retry_interval: float = 1.0,
        read_timeout: float = 5.0,
        load_stall_timeout: float = 30.0,
        tombstone_retention: float = 7 * 86400,
        on_ready: Callable[[], None] = lambda: None,
        echo_wakeups: Sequence[float] = (),
        feed: FeedWatch | None = None,
        snapshot: Callable[[], Awaitable[snapshots.Stored | None]] | None = None,
    ) -> None:
        # Where the first index comes from when a snapshot file may be there (screening.sync.snapshots).
        self._snapshot = snapshot
        self.loaded_from = ""  # "snapshot" or "database", once loaded
        self.feed = FeedWatch() if feed is None else feed
        self.index = ScreeningIndex()
        self.data_version = 0
        self.ready = False
        self.full_loads = 0
        self._position: changes.Position | None = None
        # Changed rows read since start: with every row read once, it grows with the changes only.
        self.rows_read = 0
        # Tenant names by the 64-bit hash the change feed gives instead (a hash names one tenant for good).
        self._tenant_names: dict[int, str] = {}
        self._pool = pool
        self._poll_interval = poll_interval
        self._retry_interval = retry_interval
        self._read_timeout = read_timeout
        self._load_stall_timeout = load_stall_timeout
        self._retention = tombstone_retention
        self._gc_interval = min(tombstone_retention / 2, 3600.0)
        self._next_gc = time.monotonic() + self._gc_interval
        self._on_ready = on_ready
        self._wake = asyncio.Event()
        self._merging: asyncio.Task[None] | None = None
        self._last_sync: float | None = None
        self._last_sync_monotonic: float | None = None
        self.feed_behind = 0
        self.feed_waits = 0
        self._behind_since: float | None = None
        self.listener = (
            None if connect_listener is None else Listener(connect_listener, echoed(self.wake, echo_wakeups))
        )

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        listener = None if self.listener is None else asyncio.create_task(self.listener.run(), name="listener")
        try:
            if not await self._start_from_snapshot():
                await self._load_until_done()
            self.ready = True
            self._on_ready()
            await self._follow()
        finally:
            for task in (listener, self._merging):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _load_until_done(self) -> None:
        while True:
            try:
                await self._load()
                self._caught_up_with_feed()
                return
            except changes.FeedBehind as behind:
                self._wait_for_feed(behind)
                await asyncio.sleep(self._poll_interval)
            except RETRYABLE as exc:
                log.warning(
                    "full load failed, retrying in %.1fs: %s: %s", self._retry_interval, type(exc).__name__, exc
                )
                await asyncio.sleep(self._retry_interval)

    async def _start_from_snapshot(self) -> bool:
        """The first index from a snapshot file, caught up through the feed; False: load from the database."""
        if self._snapshot is None:
            return False
        started = time.monotonic()
        try:
            snapshot = await self._snapshot()
        except snapshots.UNREADABLE as exc:  # the database is still there
            log.warning("snapshot not used, loading from the database: %s: %s", type(exc).__name__, exc)
            return False
        if snapshot is None:
            log.info("no snapshot file yet: loading from the database")
            return False
        log.info("snapshot read in %.2fs: %d entries in its base", time.monotonic() - started, len(snapshot.base))
        await self._install_base(snapshot.base, snapshot.position, snapshot.others, started, "snapshot")
        # Serving only once caught up: the file may be hours old.
        while True:
            try:
                await self.catch_up()
                self._caught_up_with_feed()
                log.info("caught up from the snapshot in %.2fs", time.monotonic() - started)
                return True
            except changes.ReloadNeeded as why:
                log.warning("the snapshot cannot be caught up (%s): loading from the database", why)
                return False
            except changes.FeedBehind as behind:
                self._wait_for_feed(behind)
                await asyncio.sleep(self._poll_interval)
            except RETRYABLE as exc:
                log.warning("catch-up from the snapshot failed, retrying: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(self._retry_interval)

    async def _load(self) -> None:
        """Build a whole new index from one snapshot, then swap it in."""
        started = time.monotonic()
        async with borrow(self._pool) as conn:
            # A load takes as long as the data does: bounded by its progress.
            with Stall(conn, self._load_stall_timeout) as stall:
                snapshot = await changes.load_snapshot(conn, stall.progress)
            if self._older(snapshot.position) and await standby.in_recovery(conn):
                assert self._position is not None
                raise changes.FeedBehind(self._position.horizon, snapshot.position.horizon)
        await self._install(snapshot, started, "database")

    async def _install(self, snapshot: changes.Snapshot, started: float, source: str) -> None:
        """Build a whole new index from a snapshot read from the database and swap it in."""
        position, others = snapshot.position, snapshot.others
        columns = Columns(snapshot.tenants, snapshot.tenant, snapshot.keys, snapshot.hi, snapshot.lo, snapshot.expires)
        del snapshot
        # Sorting millions of keys takes seconds; numpy releases the GIL, so
        # calls and health checks are answered meanwhile.
        base = await asyncio.to_thread(Base.build, columns)
        del columns
        await self._install_base(base, position, others, started, source)

    async def _install_base(
        self, base: Base, position: changes.Position, others: list[changes.ChangedRow], started: float, source: str
    ) -> None:
        """A new index of a built base and the other entries, swapped in at `position`."""
        index = ScreeningIndex(base)
        del base
        for i, row in enumerate(others):
            index.upsert(to_index_entry(row))
            if i % 10_000 == 9_999:
                _settle()
                await asyncio.sleep(0)  # keep answering calls and health checks
        self.index = index
        self.full_loads += 1
        self.loaded_from = source
        self._advance(position, reset=True)
        # malloc_trim walks the whole heap: off the event loop (ctypes releases the GIL).
        await asyncio.to_thread(release_freed_memory)
        log.info(
            "full load from the %s: %d entries at data_version %d in %.2fs",
            source,
            len(index),
            self.data_version,
            time.monotonic() - started,
        )

    async def _follow(self) -> None:
        failures = 0
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.catch_up()
                self._caught_up_with_feed()
                failures = 0
                if time.monotonic() >= self._next_gc:
                    await self._purge_tombstones()
            except changes.FeedBehind as behind:
                self._wait_for_feed(behind)
            except changes.ReloadNeeded as why:
                log.warning("reloading fully: %s", why)
                await self._load_until_done()
            except RETRYABLE as exc:
                # Back off while the database stays away, but catch up soon after a blip.
                failures += 1
                delay = min(self._retry_interval, 0.05 * 2**failures)
                log.warning(
                    "catch-up failed (%d in a row), serving from memory: %s: %s", failures, type(exc).__name__, exc
                )
                await asyncio.sleep(delay)

    async def catch_up(self) -> None:
        """Read the next change set whole, then switch to the index with all of it in one step.

        A caller sees the index before the change set or after it, with the
        data_version that goes with it, never a part of a transaction however
        big: a small set is applied with no await in between, a big one is
        built into a new index in a worker thread, then swapped in.
        """
        position = self._position
        assert position is not None
        started = time.monotonic()
        async with borrow(self._pool) as conn:
            # Each read is bounded (a connection that stopped answering), not the whole catch-up.
            with Stall(conn, self._read_timeout) as stall:
                if not await changes.moved(conn, position):
                    self._advance(position, changed=False)
                    return
                stall.progress()
                change = await changes.read_changes(conn, position, self._tenant_names, stall.progress)
        self.rows_read += len(change)
        if len(change) > APPLY_IN_PLACE:
            read = time.monotonic()
            index = await self._rebuilt(change)
            self.index = index
            log.info(
                "a change set of %d rows switched in: read in %.2fs, built in %.2fs",
                len(change),
                read - started,
                time.monotonic() - read,
            )
        else:
            self.apply(change)
        # With no await since the index changed: an answer that sees the
        # change set also sees the data_version it completes.
        self._advance(change.position, changed=len(change) > 0)
        self._maybe_merge()

    def _older(self, position: changes.Position) -> bool:
        """Whether a position of this replica's own cluster is behind its watermark."""
        return (
            self._position is not None
            and position.cluster == self._position.cluster
            and (position.horizon < self._position.horizon or position.watermark < self._position.watermark)
        )

    def _wait_for_feed(self, behind: changes.FeedBehind) -> None:
        """Keep answering from the index as it is: the standby will catch up, and data_version never goes back."""
        self.feed_waits += 1
        self.feed_behind = behind.watermark - behind.feed
        now = time.monotonic()
        if self._behind_since is None:
            self._behind_since = now
            log.warning("waiting for the feed: %s (answering from memory meanwhile)", behind)

    def _caught_up_with_feed(self) -> None:
        if self._behind_since is not None:
            log.info("the feed caught up after %.1fs of waiting", time.monotonic() - self._behind_since)
            self._behind_since = None
        self.feed_behind = 0

    async def _rebuilt(self, change: changes.ChangeSet) -> ScreeningIndex:
        if self._merging is not None:
            # A merge finishing would change the index the new one is built from: it is folded in anyway.
            self._merging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._merging
        index = self.index
        built = await asyncio.to_thread(_rebuild, index, change)
        await asyncio.to_thread(release_freed_memory)
        return built

    async def _purge_tombstones(self) -> None:
        self._next_gc = time.monotonic() + self._gc_interval
        if self.listener is None:
            return  # without a primary: replicas that have one purge
        async with self.listener.borrow() as conn:
            # Bounded like a load (the pool's command timeout is as long).
            with Stall(conn, self._load_stall_timeout):
                purged = await tombstones.purge(conn, self._retention)
        if purged:
            log.info("purged %d tombstones older than %.0fs", purged, self._retention)

    def apply(self, change: changes.ChangeSet) -> None:
        """Apply a change set to the index in place, all of it before any caller looks again."""
        index = self.index
        deleted = change.deleted.tolist()
        hi, lo, keys, tenant = change.hi.tolist(), change.lo.tolist(), change.keys.tolist(), change.tenant.tolist()
        for i, gone in enumerate(deleted):
            if gone:
                index.remove(format_id(hi[i], lo[i]))
        for i, gone in enumerate(deleted):
            if not gone:
                key = keys[i]
                index.upsert(
                    IndexEntry(
                        id=format_id(hi[i], lo[i]),
                        tenant_id=change.tenants[tenant[i]],
                        number=key_number(key),
                        match_kind=MatchKind.EXACT,
                        call_type=_CALL_TYPES[key & CALL_TYPE_MASK],
                        enabled=bool(key & ENABLED),
                        expires_at=float(change.expires[i]) if key & EXPIRES else NEVER,
                    )
                )
        for row in change.others:
            index.upsert(to_index_entry(row))

    def _maybe_merge(self) -> None:
        # Only once a change set has been read to its end: merging while a big
        # import is still being applied competes with it for the loop and
        # delays the import's last rows (measured: 4.6 s -> 17 s for 1M rows).
        index = self.index
        if self._merging is None and index.wants_merge():
            self._merging = asyncio.get_running_loop().create_task(self._merge(index), name="index-merge")

    async def _merge(self, index: ScreeningIndex) -> None:
        try:
            await merge_in_background(index)
        finally:
            self._merging = None

    def _advance(self, position: changes.Position, *, reset: bool = False, changed: bool = True) -> None:
        """Move to the position just read; the data_version follows its xmax.

        A transaction below xmax can commit without moving xmax (a newer one
        finished first): a change set that changed something always moves
        the data_version on by at least one, so that one data_version never
        names two states of the index.
        """
        previous = self.data_version
        same_cluster = self._position is not None and self._position.cluster == position.cluster
        self._position = position
        if reset and not same_cluster:  # another cluster's transaction ids: nothing to compare with
            self.data_version = position.horizon
        elif changed:
            self.data_version = max(position.horizon, previous + 1)
        else:
            self.data_version = max(position.horizon, previous)
        self._last_sync = time.time()
        self._last_sync_monotonic = time.monotonic()

    def state(self) -> SyncState:
        behind = 0.0 if self._last_sync_monotonic is None else time.monotonic() - self._last_sync_monotonic
        return SyncState(
            serving=self.ready,
            data_version=self.data_version,
            entries=len(self.index),
            connected=self.listener is not None and self.listener.connected,
            last_sync_time=self._last_sync,
            seconds_behind=behind,
            listener_reconnects=0 if self.listener is None else self.listener.reconnects,
            full_loads=self.full_loads,
            feed_behind=self.feed_behind,
            feed_waits=self.feed_waits,
            feed_standby=self.feed.standby,
            hot_standby_feedback=self.feed.hot_standby_feedback,
        )

"""Keeps the in-memory index equal to the database, and says how fresh it is."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import asyncpg

from screening.index import NEVER, IndexEntry, ScreeningIndex
from screening.model import CallType, MatchKind
from storage import changes
from storage.errors import RETRYABLE
from storage.listener import Connect, Listener

log = logging.getLogger(__name__)


def to_index_entry(row: changes.ChangedRow) -> IndexEntry:
    return IndexEntry(
        id=row.id,
        tenant_id=row.tenant_id,
        number=row.number,
        match_kind=MatchKind(row.match_kind),
        call_type=CallType(row.call_type),
        enabled=row.enabled,
        expires_at=row.expire_time.timestamp() if row.expire_time is not None else NEVER,
    )


@dataclass(frozen=True, slots=True)
class SyncState:
    serving: bool
    data_version: int
    entries: int
    connected: bool
    last_sync_time: float | None  # POSIX seconds of the last successful read
    seconds_behind: float
    listener_reconnects: int


class Replica:
    """Loads the index once in one snapshot, then follows the change feed.

    Wake-ups come from NOTIFY through the listener, and from a backstop poll
    that bounds staleness even when notifications are lost.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        connect_listener: Connect,
        *,
        poll_interval: float = 0.5,
        retry_interval: float = 1.0,
        on_ready: Callable[[], None] = lambda: None,
    ) -> None:
        self.index = ScreeningIndex()
        self.data_version = 0
        self.ready = False
        self._pool = pool
        self._poll_interval = poll_interval
        self._retry_interval = retry_interval
        self._on_ready = on_ready
        self._wake = asyncio.Event()
        self._last_sync: float | None = None
        self._last_sync_monotonic: float | None = None
        self.listener = Listener(connect_listener, self._wake.set)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        listener = asyncio.create_task(self.listener.run(), name="listener")
        try:
            await self._first_load()
            self.ready = True
            self._on_ready()
            await self._follow()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _first_load(self) -> None:
        while True:
            try:
                started = time.monotonic()
                index = ScreeningIndex()
                async with self._pool.acquire() as conn:
                    loader = changes.load_all(conn)
                    watermark = await anext(loader)
                    assert isinstance(watermark, int)
                    async for batch in loader:
                        assert isinstance(batch, list)
                        for row in batch:
                            index.upsert(to_index_entry(row))
                        await asyncio.sleep(0)  # let health checks through
                self.index = index
                self._advance(watermark)
                log.info(
                    "first load: %d entries at data_version %d in %.2fs",
                    len(index),
                    watermark,
                    time.monotonic() - started,
                )
                return
            except RETRYABLE as exc:
                log.warning(
                    "first load failed, retrying in %.1fs: %s: %s", self._retry_interval, type(exc).__name__, exc
                )
                await asyncio.sleep(self._retry_interval)

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            self._wake.clear()
            try:
                await self.catch_up()
            except RETRYABLE as exc:
                log.warning("catch-up failed, serving from memory: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(self._retry_interval)

    async def catch_up(self) -> None:
        async with self._pool.acquire() as conn:
            watermark, rows = await changes.read_since(conn, self.data_version)
        self.apply(rows)
        self._advance(watermark)

    def apply(self, rows: Iterable[changes.ChangedRow]) -> None:
        index = self.index
        for row in rows:
            if row.deleted:
                index.remove(row.id)
            else:
                index.upsert(to_index_entry(row))

    def _advance(self, watermark: int) -> None:
        # A watermark never moves back; with it the "complete up to" promise.
        self.data_version = max(self.data_version, watermark)
        self._last_sync = time.time()
        self._last_sync_monotonic = time.monotonic()

    def state(self) -> SyncState:
        behind = 0.0 if self._last_sync_monotonic is None else time.monotonic() - self._last_sync_monotonic
        return SyncState(
            serving=self.ready,
            data_version=self.data_version,
            entries=len(self.index),
            connected=self.listener.connected,
            last_sync_time=self._last_sync,
            seconds_behind=behind,
            listener_reconnects=self.listener.reconnects,
        )

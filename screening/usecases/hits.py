"""Calls each entry decided, counted in memory on the hot path and added to PostgreSQL in batches.

The hot path pays one dict update for a call an entry decided, and never
waits for the database: every `interval` seconds (10 at most) the counts
gathered since are swapped out and added to `entry_hits`, where every
replica's counts sum. Counts a failed write could not add are kept for the
next one; on shutdown the last ones are written. The writes go over the
replica's one connection to the primary (its listener's); a replica without
a primary counts nothing it could not write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from storage import hits
from storage.db import Conn
from storage.errors import RETRYABLE

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 10.0
# Entries counted at once: past it, the oldest counts wait for the next write rather than grow memory.
MAX_COUNTED = 1_000_000


class HitCounter:
    __slots__ = ("counts",)

    def __init__(self) -> None:
        # entry id -> [calls decided, POSIX time of the last]
        self.counts: dict[str, list[float]] = {}

    def hit(self, entry_id: str, now: float) -> None:
        counted = self.counts.get(entry_id)
        if counted is None:
            if len(self.counts) < MAX_COUNTED:
                self.counts[entry_id] = [1, now]
        else:
            counted[0] += 1
            counted[1] = now

    def take(self) -> dict[str, list[float]]:
        taken, self.counts = self.counts, {}
        return taken

    def give_back(self, counts: dict[str, list[float]]) -> None:
        for entry_id, (count, when) in counts.items():
            counted = self.counts.setdefault(entry_id, [0, when])
            counted[0] += count
            counted[1] = max(counted[1], when)


# A connection on the primary, for one piece of work.
Borrow = Callable[[], AbstractAsyncContextManager[Conn]]


class HitFlusher:
    def __init__(self, counter: HitCounter, borrow: Borrow | None, interval: float = FLUSH_INTERVAL) -> None:
        self._counter = counter
        self._borrow = borrow
        self._interval = interval

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._interval)
                await self.flush()
        finally:
            # Shutting down: the last counts are written, if the database lets us in a few seconds.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5.0):
                    await self.flush()

    async def flush(self) -> None:
        taken = self._counter.take()
        if not taken or self._borrow is None:
            return
        try:
            async with self._borrow() as conn:
                await hits.add(conn, {k: (int(v[0]), v[1]) for k, v in taken.items()})
        except RETRYABLE as exc:
            self._counter.give_back(taken)
            log.warning("cannot add %d entries' hit counts yet: %s: %s", len(taken), type(exc).__name__, exc)
        except BaseException:
            self._counter.give_back(taken)
            raise

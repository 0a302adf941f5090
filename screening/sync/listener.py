"""LISTEN on a dedicated connection, with heartbeat, reconnect and backoff.

NOTIFY is only a wake-up: a listener that was away misses notifications, so
every (re)connect also fires the wake-up and the replica catches up from its
watermark. A connection that stops answering (half-open: no FIN, no RST) is
found by the heartbeat within `heartbeat_interval + heartbeat_timeout`.

The listening connection is also the replica's one line to the primary for
its own small writes (hit counts, tombstone purges: `borrow`), so a replica
that reads its feed from a standby holds a single connection on the primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from storage.db import ACQUIRE_TIMEOUT
from storage.errors import UNREACHABLE

log = logging.getLogger(__name__)

CHANNEL = "screening_changes"

Connect = Callable[[], Awaitable[asyncpg.Connection]]


class Listener:
    def __init__(
        self,
        connect: Connect,
        on_wake: Callable[[], None],
        *,
        heartbeat_interval: float = 3.0,
        heartbeat_timeout: float = 3.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
    ) -> None:
        self._connect = connect
        self._on_wake = on_wake
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat_timeout = heartbeat_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self.connected = False
        self.reconnects = 0
        self.backend_pid: int | None = None
        self._conn: asyncpg.Connection | None = None
        self._up = asyncio.Event()
        # One query at a time on the connection: the heartbeat's, or a borrower's.
        self._busy = asyncio.Lock()

    async def run(self) -> None:
        """Listen until cancelled, reconnecting whenever the connection is lost."""
        delay = self._backoff_initial
        first = True
        while True:
            conn: asyncpg.Connection | None = None
            lost = asyncio.Event()
            try:
                conn = await self._connect()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._notified)
                self.backend_pid = conn.get_server_pid()
                self.connected = True
                self._conn = conn
                self._up.set()
                if not first:
                    self.reconnects += 1
                    log.info("listener reconnected (backend pid %s)", self.backend_pid)
                first = False
                delay = self._backoff_initial
                # Anything committed while nobody listened is read now.
                self._on_wake()
                await self._heartbeat(conn, lost)
            except asyncio.CancelledError:
                raise
            except UNREACHABLE as exc:
                log.warning("listener connection lost: %s", _describe(exc))
            except asyncpg.PostgresError as exc:
                log.warning("listener failed: %s", _describe(exc))
            finally:
                self.connected = False
                self._conn = None
                self._up.clear()
                if conn is not None:
                    conn.terminate()
            # Jitter keeps replicas from reconnecting in lockstep after an outage.
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self._backoff_max)

    async def _heartbeat(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._heartbeat_interval):
                    await lost.wait()
            if lost.is_set() or conn.is_closed():
                log.warning("listener connection closed by the server")
                return
            async with self._busy:
                await conn.fetchval("SELECT 1", timeout=self._heartbeat_timeout)

    @contextlib.asynccontextmanager
    async def borrow(self, wait: float = ACQUIRE_TIMEOUT) -> AsyncIterator[asyncpg.Connection]:
        """The listening connection, for one short piece of work on the primary (not while it is down).

        Like storage.db.borrow, work cut short closes the connection (the
        listener reconnects and catches up): it may be waiting on a peer that
        will never answer.
        """
        try:
            async with asyncio.timeout(wait):
                await self._up.wait()
        except TimeoutError:
            raise asyncpg.exceptions.ConnectionDoesNotExistError(
                f"the listener has had no connection to the primary for {wait:.0f}s"
            ) from None
        async with self._busy:
            conn = self._conn
            if conn is None or conn.is_closed():
                raise asyncpg.exceptions.ConnectionDoesNotExistError("the listener's connection to the primary closed")
            try:
                yield conn
            except (asyncio.CancelledError, TimeoutError):
                conn.terminate()
                raise

    def _notified(self, *_args: Any) -> None:
        self._on_wake()


def echoed(wake: Callable[[], None], delays: Sequence[float]) -> Callable[[], None]:
    """`wake` now, and again after each of `delays` seconds.

    A notification comes from the primary as it commits; a standby replays
    the commit a moment later, so a replica reading from a standby reads again
    shortly after, rather than waiting for its next poll.
    """
    if not delays:
        return wake

    def wake_and_echo() -> None:
        wake()
        loop = asyncio.get_running_loop()
        for delay in delays:
            loop.call_later(delay, wake)

    return wake_and_echo


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

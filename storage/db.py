"""Connections: the type the queries take, and how they are borrowed from a pool."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A query runs on a plain connection or on one borrowed from a pool.
Conn: TypeAlias = asyncpg.Connection | PoolConnectionProxy

# Waiting for a free connection, or for a connect, longer than this means
# the database is not there for us right now.
ACQUIRE_TIMEOUT = 5.0


@contextlib.asynccontextmanager
async def borrow(pool: asyncpg.Pool, wait: float = ACQUIRE_TIMEOUT) -> AsyncIterator[PoolConnectionProxy]:
    """A pooled connection that is dropped, not reused, when its work is interrupted.

    A query cut short by a deadline may be waiting on a peer that will never
    answer (a half-open connection); resetting such a connection for reuse
    would hang too, so it is terminated at once.
    """
    async with pool.acquire(timeout=wait) as conn:
        try:
            yield conn
        except (asyncio.CancelledError, TimeoutError):
            conn.terminate()
            raise

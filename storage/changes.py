"""The change feed replicas follow: snapshot reads keyed by transaction id.

A watermark is a transaction id (xid8). Every transaction below it had
finished when the watermark was taken, so every change it made has been
read. Each read runs in one REPEATABLE READ snapshot and returns the rows
stamped at or above the watermark, tombstones included, together with the
snapshot's xmin, which becomes the next watermark. Rows stamped at or above
xmin that are already visible are returned too (a change is answered as soon
as it commits) and read again next time, which is harmless because applying
a row's current state is idempotent.

Continuity is checked on every read: a different cluster (restore, failover
to another cluster), transaction ids that went backwards, or tombstones
purged past the watermark all mean the replica can no longer trust its
index, and `read_since` raises ReloadNeeded.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from storage.db import Conn

_POSITION = """SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint,
                      (SELECT system_identifier FROM pg_control_system()),
                      (SELECT purged_xid::text::bigint FROM sync_meta)"""
# Rows a catch-up reads and applies between two turns of the event loop.
CATCH_UP_BATCH = 2000
_ROW = "id::text, tenant_id, number, match_kind, call_type, enabled, expire_time, deleted"


@dataclass(frozen=True, slots=True)
class Position:
    watermark: int
    cluster: int  # pg_control_system().system_identifier


@dataclass(frozen=True, slots=True)
class ChangedRow:
    id: str
    tenant_id: str
    number: str
    match_kind: int
    call_type: int
    enabled: bool
    expire_time: datetime | None
    deleted: bool


class ReloadNeeded(Exception):
    """The replica's index can no longer be brought up to date by changes alone."""


def _to_row(record: asyncpg.Record) -> ChangedRow:
    return ChangedRow(*record)


async def load_all(conn: Conn, batch: int = 50_000) -> AsyncIterator[Position | list[ChangedRow]]:
    """Yield the position first, then every live row in batches, all from one snapshot."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        watermark, cluster, _purged = await conn.fetchrow(_POSITION)  # type: ignore[misc]
        yield Position(int(watermark), int(cluster))
        cursor = await conn.cursor(f"SELECT {_ROW} FROM forbidden_numbers WHERE NOT deleted")
        while True:
            records = await cursor.fetch(batch)
            if not records:
                return
            yield [_to_row(r) for r in records]


async def read_since(
    conn: Conn, since: Position, batch: int = CATCH_UP_BATCH
) -> AsyncGenerator[Position | list[ChangedRow], None]:
    """Yield the next position first, then the rows changed at or after `since.watermark` in batches.

    All from one snapshot, through a cursor: a catch-up after a million-row
    import reads (and its caller applies) a bounded batch at a time. The
    last batch is the first one shorter than `batch` (possibly empty).
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        watermark, cluster, purged = await conn.fetchrow(_POSITION)  # type: ignore[misc]
        if cluster != since.cluster:
            raise ReloadNeeded(f"the database is another cluster now ({since.cluster} -> {cluster})")
        if watermark < since.watermark:
            raise ReloadNeeded(f"transaction ids went back ({since.watermark} -> {watermark}): restored?")
        if purged >= since.watermark:
            raise ReloadNeeded(f"tombstones up to {purged} were purged past our watermark {since.watermark}")
        yield Position(int(watermark), int(cluster))
        cursor = await conn.cursor(
            f"SELECT {_ROW} FROM forbidden_numbers WHERE xid >= $1::text::xid8",
            str(since.watermark),
        )
        while True:
            records = await cursor.fetch(batch)
            yield [_to_row(r) for r in records]
            if len(records) < batch:
                return

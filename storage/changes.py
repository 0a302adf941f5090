"""The change feed replicas follow: snapshot reads keyed by transaction id.

A watermark is a transaction id (xid8). Every transaction below it had
finished when the watermark was taken, so every change it made has been
read. Each read runs in one REPEATABLE READ snapshot and returns the rows
stamped at or above the watermark, tombstones included, together with the
snapshot's xmin, which becomes the next watermark. Rows stamped at or above
xmin that are already visible are returned too (a change is answered as soon
as it commits) and read again next time, which is harmless because applying
a row's current state is idempotent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from storage.db import Conn

_SNAPSHOT_XMIN = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
_ROW = "id::text, tenant_id, number, match_kind, call_type, enabled, expire_time, deleted"


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


def _to_row(record: asyncpg.Record) -> ChangedRow:
    return ChangedRow(*record)


async def load_all(conn: Conn, batch: int = 50_000) -> AsyncIterator[int | list[ChangedRow]]:
    """Yield the watermark first, then every live row in batches, all from one snapshot."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        watermark = await conn.fetchval(_SNAPSHOT_XMIN)
        yield int(watermark)
        cursor = await conn.cursor(f"SELECT {_ROW} FROM forbidden_numbers WHERE NOT deleted")
        while True:
            records = await cursor.fetch(batch)
            if not records:
                return
            yield [_to_row(r) for r in records]


async def read_since(conn: Conn, watermark: int) -> tuple[int, list[ChangedRow]]:
    """The rows changed at or after `watermark`, and the next watermark."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        next_watermark = await conn.fetchval(_SNAPSHOT_XMIN)
        records = await conn.fetch(
            f"SELECT {_ROW} FROM forbidden_numbers WHERE xid >= $1::text::xid8",
            str(watermark),
        )
    return int(next_watermark), [_to_row(r) for r in records]

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

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import numpy as np
import numpy.typing as npt

from storage.db import Conn
from storage.rows import columns

_POSITION = """SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint,
                      (SELECT system_identifier FROM pg_control_system()),
                      (SELECT purged_xid::text::bigint FROM sync_meta)"""
# Rows a catch-up reads and applies between two turns of the event loop.
CATCH_UP_BATCH = 2000


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
    action: int
    deleted: bool


# What the feed reads of a row: the columns of ChangedRow.
_ROW = ", ".join(f"{name}::text" if name == "id" else name for name in columns(ChangedRow))


class ReloadNeeded(Exception):
    """The replica's index can no longer be brought up to date by changes alone."""


def _to_row(record: asyncpg.Record) -> ChangedRow:
    return ChangedRow(*record)


# The first load reads EXACT entries as fixed-width binary COPY rows that
# numpy parses in one step, so no per-row Python object is ever made. The key
# packs the number and flags exactly as screening.index.compact.number_key does (a
# test compares them): the value, the digit count (keeps "01" and "1" apart),
# whether it has a '+', then call_type | enabled << 2 | has-expiry << 3.
# Every expression here was picked for its cost over 10M rows: a hash of the
# tenant (not a join), ascii() for the '+', the raw timestamp (not extract()).
_PLUS = "(ascii(f.number) = 43)::int"
# (PostgreSQL gives << and | the same precedence, hence every parenthesis.)
_KEY = (
    f"((f.number::int8 << 9) | ((length(f.number) - {_PLUS}) << 5) | ({_PLUS} << 4)"
    " | f.call_type | (f.enabled::int << 2) | ((f.expire_time IS NOT NULL)::int << 3))"
)
_EXPIRES = "coalesce(f.expire_time, '-infinity')"
# Stored numbers are normalized, so every EXACT one packs; should one not,
# its cast fails and the load is done again with this filter.
_ENCODABLE = r"f.number ~ '^\+?[0-9]{1,15}$'"
# ALLOW entries (allow-exceptions, few) stay out of the arrays, whose key has
# no bit left for an action: they load as `others`, into the index's overlay.
_LIVE_EXACT = "NOT f.deleted AND f.match_kind = 1 AND f.action = 1"
# Every tenant, by a walk down the (tenant_id, number, match_kind) index: one
# index probe a tenant rather than a scan of every row.
_TENANTS = """
WITH RECURSIVE t AS (
    SELECT min(tenant_id) AS tenant_id FROM forbidden_numbers WHERE NOT deleted
    UNION ALL
    SELECT (SELECT min(tenant_id) FROM forbidden_numbers WHERE NOT deleted AND tenant_id > t.tenant_id)
    FROM t WHERE t.tenant_id IS NOT NULL
)
SELECT tenant_id, hashtext(tenant_id) FROM t WHERE tenant_id IS NOT NULL ORDER BY tenant_id"""
_COPY_BY_HASH = f"SELECT hashtext(f.tenant_id), f.id, {_KEY}, {_EXPIRES} FROM forbidden_numbers f WHERE {{where}}"
# When two tenants' hashes collide: their positions in the tenant list, by a join.
_COPY_BY_JOIN = f"""
SELECT (t.ordinal - 1)::int4, f.id, {_KEY}, {_EXPIRES}
FROM forbidden_numbers f JOIN unnest($1::text[]) WITH ORDINALITY AS t(tenant_id, ordinal) USING (tenant_id)
WHERE {{where}}"""
_OTHERS = f"SELECT {_ROW} FROM forbidden_numbers f WHERE NOT f.deleted AND NOT ({{exact}})"

_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_COPY_HEADER = len(_COPY_SIGNATURE) + 8  # flags, extension length (0)
_COPY_TRAILER = b"\xff\xff"
# One row: field count, then (length, value) for tenant, id, key, expiry.
_COPY_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("n_tenant", ">i4"),
        ("tenant", ">i4"),
        ("n_id", ">i4"),
        ("hi", ">u8"),
        ("lo", ">u8"),
        ("n_key", ">i4"),
        ("key", ">i8"),
        ("n_expires", ">i4"),
        ("expires", ">i8"),  # timestamptz: microseconds since 2000-01-01, -infinity = INT64_MIN
    ]
)
_PG_EPOCH_US = 946_684_800 * 1_000_000
_MINUS_INFINITY = np.iinfo(np.int64).min


@dataclass(slots=True)
class Snapshot:
    """Every live entry at one watermark: EXACT entries as columns, the rest as rows."""

    position: Position
    tenants: list[str]
    tenant: npt.NDArray[np.int32]  # index into tenants
    keys: npt.NDArray[np.int64]
    hi: npt.NDArray[np.uint64]  # the id's UUID, high and low 64 bits
    lo: npt.NDArray[np.uint64]
    expires: npt.NDArray[np.float64]  # POSIX seconds; 0 for none
    others: list[ChangedRow]  # PREFIX and ALLOW entries, and any number the key cannot pack


async def load_snapshot(conn: Conn, progress: Callable[[], None] = lambda: None) -> Snapshot:
    """Every live row, all from one snapshot, with the position it is complete up to.

    `progress` is called whenever data arrives (each query, each COPY chunk).
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        watermark, cluster, _purged = await conn.fetchrow(_POSITION)  # type: ignore[misc]
        progress()
        tenant_rows = await conn.fetch(_TENANTS)
        progress()
        tenants = [r[0] for r in tenant_rows]
        hashes = np.array([r[1] for r in tenant_rows], np.int32)
        by_hash = len(np.unique(hashes)) == len(hashes)
        copy = _COPY_BY_HASH if by_hash else _COPY_BY_JOIN
        args = () if by_hash else (tenants,)
        exact = _LIVE_EXACT
        try:
            async with conn.transaction():  # a savepoint: a failed cast leaves the snapshot usable
                buffer = await _copy(conn, copy.format(where=exact), progress, *args)
        except asyncpg.DataError:
            exact = f"{_LIVE_EXACT} AND {_ENCODABLE}"
            buffer = await _copy(conn, copy.format(where=exact), progress, *args)
        others = [_to_row(r) for r in await conn.fetch(_OTHERS.format(exact=exact))]
    # Decoding millions of rows takes a moment: off the event loop.
    return await asyncio.to_thread(
        _decode, buffer, Position(int(watermark), int(cluster)), tenants, hashes if by_hash else None, others
    )


def _decode(
    buffer: bytearray,
    position: Position,
    tenants: list[str],
    hashes: npt.NDArray[np.int32] | None,
    others: list[ChangedRow],
) -> Snapshot:
    rows = _parse(buffer)
    if hashes is not None:
        order = np.argsort(hashes)
        tenant = order[np.searchsorted(hashes[order], rows["tenant"])].astype(np.int32)
    else:
        tenant = rows["tenant"].astype(np.int32)
    stamps = rows["expires"].astype(np.int64)
    expires = np.where(stamps == _MINUS_INFINITY, 0.0, (stamps + _PG_EPOCH_US) / 1e6)
    return Snapshot(
        position,
        tenants,
        tenant,
        rows["key"].astype(np.int64),
        rows["hi"].astype(np.uint64),
        rows["lo"].astype(np.uint64),
        expires,
        others,
    )


async def _copy(conn: Conn, query: str, progress: Callable[[], None], *args: object) -> bytearray:
    buffer = bytearray()

    async def sink(chunk: bytes) -> None:
        buffer.extend(chunk)
        progress()

    await conn.copy_from_query(query, *args, output=sink, format="binary")
    return buffer


def _parse(buffer: bytearray) -> npt.NDArray[np.void]:
    if not buffer.startswith(_COPY_SIGNATURE) or not buffer.endswith(_COPY_TRAILER):
        raise ValueError("unexpected binary COPY framing")
    rows = np.frombuffer(memoryview(buffer)[_COPY_HEADER : len(buffer) - len(_COPY_TRAILER)], _COPY_ROW)
    layout = ("fields", 4), ("n_tenant", 4), ("n_id", 16), ("n_key", 8), ("n_expires", 8)
    if len(rows) and not all((rows[name] == size).all() for name, size in layout):
        raise ValueError("unexpected binary COPY row layout")
    return rows


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

"""The change feed replicas follow: snapshot reads keyed by transaction id.

Every row carries the id (xid8) of the transaction that wrote it last. A
position is a snapshot's bounds: its xmax (every transaction at or above it
had not finished) and the transactions below xmax still running (xip). What
that snapshot saw has been read; what it did not see is exactly the rows
stamped at or above its xmax or by one of its running transactions. So each
read, in one REPEATABLE READ snapshot, returns those rows, tombstones
included, and that snapshot's bounds become the next position: a row is read
once, however long some transaction in the cluster stays open (a
watermark at the oldest running transaction would re-read everything
stamped since it, on every read).

Continuity is checked on every read: a different cluster (restore, failover
to another cluster), transaction ids that went backwards, or tombstones
purged past the watermark all mean the replica can no longer trust its
index, and `read_changes` raises ReloadNeeded.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg
import numpy as np
import numpy.typing as npt

from storage.db import Conn
from storage.rows import columns
from storage.standby import in_recovery

# Every value is of a type asyncpg decodes without asking the catalog (the
# running xids as text[], not bigint[]): as the id lists below (text[], not
# uuid[]), so that a new feed connection runs no type introspection, a
# catalog query that took seconds on a database short of CPU, inside a read's
# stall limit, and again on each reconnection.
# A snapshot's xmax, running transactions and cluster: what `moved` compares, and the middle of a position.
_BOUNDS_OF_S = """pg_snapshot_xmax(s)::text::bigint, array(SELECT x::text FROM pg_snapshot_xip(s) AS x ORDER BY x),
                  (SELECT system_identifier FROM pg_control_system())"""
_POSITION = f"""SELECT pg_snapshot_xmin(s)::text::bigint, {_BOUNDS_OF_S},
                       (SELECT purged_xid::text::bigint FROM sync_meta)
                FROM pg_current_snapshot() AS s"""


@dataclass(frozen=True, slots=True)
class Position:
    """Where a snapshot's view ends: what the next read returns is what this one did not see."""

    watermark: int  # the snapshot's xmin: every transaction below it had finished
    cluster: int  # pg_control_system().system_identifier
    xmax: int = 0  # every transaction at or above it had not finished
    running: tuple[int, ...] = ()  # transactions below xmax that had not finished (pg_snapshot_xip)

    @property
    def horizon(self) -> int:
        """The xmax, or for a position from before xmax was kept, the watermark."""
        return self.xmax or self.watermark


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


# What a position's snapshot did not see and this one does, by two index
# scans of forbidden_numbers_xid: from its xmax to this one's, and its
# running transactions that have finished since. Rows of a transaction still
# running are passed over on every read but one (a big import writes a
# million of them while its file streams in).
_UNSEEN = "((xid >= $1::text::xid8 AND xid < $2::text::xid8) OR xid = ANY($3::text[]::xid8[]))"


# A snapshot's bounds alone, in one statement outside any transaction: for the
# poll that finds nothing new (most of them), one round trip instead of a
# transaction, a COPY and its argument quoting (five).
_BOUNDS = f"SELECT {_BOUNDS_OF_S} FROM pg_current_snapshot() AS s"


async def moved(conn: Conn, since: Position) -> bool:
    """Whether a snapshot now could see anything `since` did not: a transaction has ended since, or the cluster changed.

    The same xmax and the same running transactions mean no transaction has
    ended in the cluster since `since` was taken (xmax moves past every one
    that ends), so no row can have become visible to the feed.
    """
    xmax, running, cluster = await conn.fetchrow(_BOUNDS)  # type: ignore[misc]
    return int(xmax) != since.xmax or tuple(map(int, running)) != since.running or int(cluster) != since.cluster


async def current_position(conn: Conn) -> Position:
    """The bounds of the snapshot of the transaction `conn` is in (its first statement takes it)."""
    watermark, xmax, running, cluster, _purged = await conn.fetchrow(_POSITION)  # type: ignore[misc]
    return Position(int(watermark), int(cluster), int(xmax), tuple(map(int, running)))


def unseen_args(since: Position, now: Position) -> tuple[str, str, list[str]]:
    running = set(now.running)
    return str(since.horizon), str(now.xmax), [str(x) for x in since.running if x not in running]


class ReloadNeeded(Exception):
    """The replica's index can no longer be brought up to date by changes alone."""


class FeedBehind(Exception):
    """The feed is a standby that has not yet replayed up to the replica's watermark: wait for it, never go back."""

    def __init__(self, watermark: int, feed: int) -> None:
        super().__init__(f"the standby is at {feed}, behind this replica's watermark {watermark}")
        self.watermark = watermark
        self.feed = feed


async def went_back(conn: Conn, watermark: int, feed: int) -> None:
    """The feed is behind `watermark` in the same cluster: a standby still replaying (wait), or a restore (reload).

    A standby lags its primary; one restarted may even show less than it did
    before. Read as it is, it would take the replica back in time (answers
    that blocked a number would allow it again), so it is waited for. A
    primary whose transaction ids went back was restored, or is a promoted
    standby that lost transactions: the index may hold changes it does not.
    """
    if await in_recovery(conn):
        raise FeedBehind(watermark, feed)
    raise ReloadNeeded(f"transaction ids went back ({watermark} -> {feed}): restored?")


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
    f"((f.number::int8 << 13) | ((length(f.number) - {_PLUS}) << 9) | ({_PLUS} << 8)"
    " | f.call_type | (f.enabled::int << 2) | ((f.expire_time IS NOT NULL)::int << 3))"
)
_EXPIRES = "coalesce(f.expire_time, '-infinity')"
# Stored numbers are normalized, so every EXACT one packs; should one not,
# its cast fails and the load is done again with this filter.
# (A bounded repetition, [0-9]{1,15}, made this regex 15 times as slow: 8 µs a row.)
_ENCODABLE = rf"f.number ~ '^\+?[0-9]+$' AND length(f.number) <= 15 + {_PLUS}"
# ALLOW entries (allow-exceptions, few) stay out of the arrays: they load as
# `others`, into the index's overlay (the key's free flag bits could hold an
# action, but the base's look-ups do not read one).
_LIVE_EXACT = "NOT f.deleted AND f.match_kind = 1 AND f.action = 1"
# Every tenant, by a walk down the (tenant_id, number, match_kind) index: one
# index probe a tenant rather than a scan of every row, while tenants are few
# (the walk comes in ascending order and stops at the limit). Past that, one
# scan: 250,000 probes took 5 s where the scan of their million rows takes a
# fraction of it.
TENANT_WALK_LIMIT = 10_000
_TENANTS = """
WITH RECURSIVE t AS (
    SELECT min(tenant_id) AS tenant_id FROM forbidden_numbers WHERE NOT deleted
    UNION ALL
    SELECT (SELECT min(tenant_id) FROM forbidden_numbers WHERE NOT deleted AND tenant_id > t.tenant_id)
    FROM t WHERE t.tenant_id IS NOT NULL
)
SELECT tenant_id, hashtextextended(tenant_id, 0) FROM t WHERE tenant_id IS NOT NULL LIMIT $1"""
_TENANTS_SCAN = """SELECT tenant_id, hashtextextended(tenant_id, 0) FROM forbidden_numbers
WHERE NOT deleted GROUP BY tenant_id ORDER BY tenant_id"""
# Tenants by a 64-bit hash of their name: with 32 bits, a quarter of the loads
# of 50,000 tenants met a collision and fell back to the join below.
_TENANT_HASH = "hashtextextended(f.tenant_id, 0)"
_COPY_BY_HASH = f"SELECT {_TENANT_HASH}, f.id, {_KEY}, {_EXPIRES} FROM forbidden_numbers f WHERE {{where}}"
# When two tenants' hashes collide: their positions in the tenant list, by a join.
_COPY_BY_JOIN = f"""
SELECT (t.ordinal - 1)::int8, f.id, {_KEY}, {_EXPIRES}
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
        ("tenant", ">i8"),
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
        position = await current_position(conn)
        progress()
        # As CSV, parsed in a worker thread: 250,000 tenants as records would stall the event loop.
        listing = await _copy(conn, _TENANTS, progress, TENANT_WALK_LIMIT + 1, format="csv")
        if listing.count(b"\n") > TENANT_WALK_LIMIT:
            listing = await _copy(conn, _TENANTS_SCAN, progress, format="csv")
        tenants, hashes, by_hash = await asyncio.to_thread(_parse_tenants, listing)
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
    return await asyncio.to_thread(_decode, buffer, position, tenants, hashes if by_hash else None, others)


def _decode(
    buffer: bytearray,
    position: Position,
    tenants: list[str],
    hashes: npt.NDArray[np.int64] | None,
    others: list[ChangedRow],
) -> Snapshot:
    rows = _parse(buffer, _COPY_ROW, _LAYOUT)
    tenant = _tenant_ordinals(rows["tenant"], hashes)
    expires = _expiry_seconds(rows["expires"])
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


async def _copy(
    conn: Conn, query: str, progress: Callable[[], None], *args: object, format: Literal["csv", "binary"] = "binary"
) -> bytearray:
    buffer = bytearray()

    async def sink(chunk: bytes) -> None:
        buffer.extend(chunk)
        progress()

    await conn.copy_from_query(query, *args, output=sink, format=format)
    return buffer


def _parse_tenants(listing: bytearray) -> tuple[list[str], npt.NDArray[np.int64], bool]:
    """Tenant names and hashes, and whether the hashes are distinct."""
    # Row by row in Python, not list(reader): one C call over 250,000 rows
    # would hold the GIL, and so stall the event loop, for its whole length.
    names: list[str] = []
    hashes: list[int] = []
    for name, hashed in csv.reader(io.StringIO(listing.decode())):
        names.append(name)
        hashes.append(int(hashed))
    column = np.array(hashes, np.int64)
    return names, column, len(np.unique(column)) == len(column)


_LAYOUT = ("fields", 4), ("n_tenant", 8), ("n_id", 16), ("n_key", 8), ("n_expires", 8)


def _tenant_ordinals(column: npt.NDArray[np.int64], hashes: npt.NDArray[np.int64] | None) -> npt.NDArray[np.int32]:
    """Positions in the tenant list of a COPY's tenant column: hashes looked up, or ordinals already."""
    if hashes is None:
        return column.astype(np.int32)
    order = np.argsort(hashes)
    return order[np.searchsorted(hashes[order], column)].astype(np.int32)


def _expiry_seconds(stamps: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    stamps = stamps.astype(np.int64)
    return np.where(stamps == _MINUS_INFINITY, 0.0, (stamps + _PG_EPOCH_US) / 1e6)


def _parse(buffer: bytearray, dtype: np.dtype, layout: tuple[tuple[str, int], ...]) -> npt.NDArray[np.void]:
    if not buffer.startswith(_COPY_SIGNATURE) or not buffer.endswith(_COPY_TRAILER):
        raise ValueError("unexpected binary COPY framing")
    rows = np.frombuffer(memoryview(buffer)[_COPY_HEADER : len(buffer) - len(_COPY_TRAILER)], dtype)
    if len(rows) and not all((rows[name] == size).all() for name, size in layout):
        raise ValueError("unexpected binary COPY row layout")
    return rows


# A change set: every changed row the position's snapshot did not see, in
# one pass: a fixed-width binary COPY row each, the key packed as in the load
# (0 for a tombstone, -1 for a live row it cannot pack: a prefix, or a number
# no write path stores, then read whole by id), the tenant as a 64-bit hash
# of its name (names are looked up by id for hashes the caller does not know).
_EXACT_PACKS = f"f.match_kind = 1 AND f.action = 1 AND {_ENCODABLE}"
_COPY_CHANGED = f"""SELECT {_TENANT_HASH}, f.id,
CASE WHEN f.deleted THEN 0 WHEN {_EXACT_PACKS} THEN {_KEY} ELSE -1 END, {_EXPIRES}, f.deleted
FROM forbidden_numbers f WHERE {_UNSEEN}"""
_ROWS_BY_ID = f"SELECT {_ROW} FROM forbidden_numbers f WHERE f.id = ANY($1::text[]::uuid[])"
_TENANTS_BY_ID = f"SELECT {_TENANT_HASH}, f.tenant_id FROM forbidden_numbers f WHERE f.id = ANY($1::text[]::uuid[])"
# The load's row and the deletion flag.
_CHANGED_ROW = np.dtype([*_COPY_ROW.descr, ("n_deleted", ">i4"), ("deleted", "u1")])
_CHANGED_LAYOUT = (("fields", 5), ("n_tenant", 8), ("n_id", 16), ("n_key", 8), ("n_expires", 8), ("n_deleted", 1))


@dataclass(slots=True)
class ChangeSet:
    """Every row changed since a position, read in one snapshot: EXACT entries and tombstones as columns."""

    position: Position
    tenants: list[str]
    tenant: npt.NDArray[np.int32]  # index into tenants; meaningless for tombstones
    keys: npt.NDArray[np.int64]  # 0 for tombstones
    hi: npt.NDArray[np.uint64]
    lo: npt.NDArray[np.uint64]
    expires: npt.NDArray[np.float64]
    deleted: npt.NDArray[np.bool_]
    others: list[ChangedRow]  # live PREFIX entries, and numbers the key cannot pack

    def __len__(self) -> int:
        return len(self.keys) + len(self.others)


async def read_changes(
    conn: Conn, since: Position, names: dict[int, str], progress: Callable[[], None] = lambda: None
) -> ChangeSet:
    """The rows `since` did not see, and the position they complete, all from one snapshot.

    One pass over the changed rows, decoded without a Python object per row:
    a million-row import arrives as a few arrays. `names` maps tenant hashes
    to names; those of tenants new to it are added. `progress` is called
    whenever data arrives.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        watermark, xmax, running, cluster, purged = await conn.fetchrow(_POSITION)  # type: ignore[misc]
        progress()
        if cluster != since.cluster:
            raise ReloadNeeded(f"the database is another cluster now ({since.cluster} -> {cluster})")
        if xmax < since.horizon or watermark < since.watermark:
            await went_back(conn, since.horizon, xmax)
        if purged >= since.watermark:
            raise ReloadNeeded(f"tombstones up to {purged} were purged past our watermark {since.watermark}")
        position = Position(int(watermark), int(cluster), int(xmax), tuple(map(int, running)))
        buffer = await _copy(conn, _COPY_CHANGED, progress, *unseen_args(since, position))
        big = len(buffer) > 1 << 20  # a big change set is decoded off the event loop
        decoded = await asyncio.to_thread(_Decoded, buffer) if big else _Decoded(buffer)
        others: list[ChangedRow] = []
        if decoded.others is not None:
            others = [_to_row(r) for r in await conn.fetch(_ROWS_BY_ID, _uuids(decoded.others))]
            progress()
        unknown = [i for i, h in enumerate(decoded.hashes.tolist()) if h not in names]
        if unknown:
            for h, name in await conn.fetch(_TENANTS_BY_ID, _uuids(decoded.first_of_tenant[unknown])):
                names[h] = name
            progress()
    tenants = [names[h] for h in decoded.hashes.tolist()]
    if big:
        return await asyncio.to_thread(decoded.change_set, position, tenants, others)
    return decoded.change_set(position, tenants, others)


class _Decoded:
    """A change set's COPY rows, parsed: what the rest of its reading needs to know."""

    def __init__(self, buffer: bytearray) -> None:
        rows = self.rows = _parse(buffer, _CHANGED_ROW, _CHANGED_LAYOUT)
        self.key = rows["key"].astype(np.int64)
        other = self.key == -1
        self.keep = ~other
        self.others = rows[other] if other.any() else None  # live rows the key cannot pack
        self.packed = self.key > 0
        self.tenant_hash = rows["tenant"][self.packed].astype(np.int64)
        self.hashes, first = np.unique(self.tenant_hash, return_index=True)
        self.first_of_tenant = rows[np.flatnonzero(self.packed)[first]]

    def change_set(self, position: Position, tenants: list[str], others: list[ChangedRow]) -> ChangeSet:
        rows, keep = self.rows, self.keep
        tenant = np.zeros(len(rows), np.int32)
        tenant[self.packed] = np.searchsorted(self.hashes, self.tenant_hash)
        return ChangeSet(
            position,
            tenants,
            tenant[keep],
            self.key[keep],
            rows["hi"][keep].astype(np.uint64),
            rows["lo"][keep].astype(np.uint64),
            _expiry_seconds(rows["expires"][keep]),
            rows["deleted"][keep] != 0,
            others,
        )


def _uuids(rows: npt.NDArray[np.void]) -> list[str]:
    """Ids as text, for a text[] parameter (see _POSITION)."""
    return [str(uuid.UUID(int=hi << 64 | lo)) for hi, lo in zip(rows["hi"].tolist(), rows["lo"].tolist(), strict=True)]

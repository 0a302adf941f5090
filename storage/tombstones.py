"""Purging old tombstones, by one replica at a time."""

from __future__ import annotations

from storage.db import Conn

_LOCK_KEY = 0x5C8EE41E


async def purge(conn: Conn, retention_seconds: float) -> int:
    """Delete tombstones older than the retention; return how many went.

    Replicas that had not read a purged tombstone find out through
    sync_meta.purged_xid and reload fully (storage.changes).
    """
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK_KEY):
            return 0  # another replica is purging
        count, newest = await conn.fetchrow(  # type: ignore[misc]
            """WITH gone AS (
                   DELETE FROM forbidden_numbers
                   WHERE deleted AND update_time < now() - make_interval(secs => $1)
                   RETURNING xid)
               SELECT count(*), max(xid::text::bigint) FROM gone""",
            float(retention_seconds),
        )
        if count:
            await conn.execute(
                "UPDATE sync_meta SET purged_xid = greatest(purged_xid, $1::text::xid8)",
                str(newest),
            )
        return int(count)

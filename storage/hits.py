"""Adding a replica's counts of decided calls to the entries' totals."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from storage.db import Conn


async def add(conn: Conn, counts: Mapping[str, tuple[int, float]]) -> None:
    """counts: entry id -> (calls decided, POSIX time of the last). Summed into what every replica added."""
    ids, hits, last = [], [], []
    for entry_id, (count, when) in counts.items():
        try:
            ids.append(uuid.UUID(entry_id))
        except ValueError:
            continue  # an entry whose id no database row could have
        hits.append(count)
        last.append(datetime.fromtimestamp(when, UTC))
    await conn.execute(
        """INSERT INTO entry_hits AS h (entry_id, hits, last_hit)
           SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[])
           ON CONFLICT (entry_id) DO UPDATE
           SET hits = h.hits + EXCLUDED.hits, last_hit = greatest(h.last_hit, EXCLUDED.last_hit)""",
        ids,
        hits,
        last,
    )

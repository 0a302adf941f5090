"""What a replica's feed is: the primary, or a hot standby (and whether that standby protects its readers)."""

from __future__ import annotations

from dataclasses import dataclass

from storage.db import Conn


@dataclass(frozen=True, slots=True)
class FeedServer:
    standby: bool  # pg_is_in_recovery(): replaying a primary's WAL
    # On a standby: whether it tells the primary which rows its readers still
    # need, so that VACUUM there does not cancel a long read (a full load) here.
    hot_standby_feedback: bool


async def describe(conn: Conn) -> FeedServer:
    standby, feedback = await conn.fetchrow(  # type: ignore[misc]
        "SELECT pg_is_in_recovery(), current_setting('hot_standby_feedback')::bool"
    )
    return FeedServer(bool(standby), bool(feedback))


async def in_recovery(conn: Conn) -> bool:
    return bool(await conn.fetchval("SELECT pg_is_in_recovery()"))

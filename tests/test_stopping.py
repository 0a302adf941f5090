"""Stopping a server whatever its background tasks are doing."""

import asyncio
import logging

import asyncpg
import pytest

from screening.app import service
from tests.support import StartServer, wait_until

COPYING = """SELECT count(*) FROM pg_stat_activity
WHERE application_name = 'screening-feed' AND state = 'active' AND query LIKE 'COPY%'"""


async def test_a_task_that_fails_as_it_unwinds_from_a_cancel_still_ends_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As asyncpg does when a COPY is cancelled mid-stream: the ROLLBACK on the way out fails."""
    started = asyncio.Event()

    async def reading() -> None:
        try:
            started.set()
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise asyncpg.InternalClientError(
                "cannot switch to state 15; another operation (19) is in progress"
            ) from None

    task = asyncio.create_task(reading(), name="replica follower")
    await started.wait()
    with caplog.at_level(logging.INFO, logger=service.__name__):
        await service._cancel(task)
    assert task.done()
    assert "replica follower ended while stopping: InternalClientError" in caplog.text


async def test_a_server_stopped_while_its_replica_reads_a_big_change_set_stops_cleanly(
    start_server: StartServer, dsn: str
) -> None:
    """The cancel lands in the middle of the feed's COPY (about one run in ten hit the failing unwind)."""
    app = await start_server()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type)"
            " SELECT 'acme', '+1601' || lpad(i::text, 7, '0'), 1, 3 FROM generate_series(1, 600000) AS i"
        )

        async def copying() -> bool:
            return bool(await conn.fetchval(COPYING))

        await wait_until(copying, within=10, interval=0.005)
        await app.stop(grace=0)  # raised what the replica's task ended with
    finally:
        await conn.close()

"""Replicas that read from a real streaming hot standby (pg_basebackup -R of the embedded PostgreSQL).

The primary takes migrations, writes, tombstone purges and LISTEN; the
standby serves the first load and the change feed. A standby that lags is
waited for: data_version never goes back, and neither does an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable

import asyncpg
import grpc
import pytest

from screening.app.service import App
from screening.v1 import screening_pb2 as pb
from tests.support import Clients, StartServer, code_of, create, screen, until_verdict, wait_until
from tests.support.clusters import OwnCluster, Standby
from tests.support.faultproxy import FaultProxy

BLOCK, ALLOW = pb.VERDICT_BLOCK, pb.VERDICT_ALLOW
NO_ID = "00000000-0000-4000-8000-000000000000"


async def primary_connections(url: str) -> dict[str, int]:
    """Client connections on the primary by application_name (the replicas name theirs: screening-listener, ...)."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """SELECT application_name, count(*) FROM pg_stat_activity
               WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() GROUP BY 1"""
        )
    finally:
        await conn.close()
    return {r[0]: r[1] for r in rows}


@contextlib.asynccontextmanager
async def versions_of(app: App) -> AsyncIterator[list[int]]:
    """Every data_version the replica shows, sampled each millisecond or so while the block runs."""
    seen: list[int] = []

    async def sample() -> None:
        while True:
            if not seen or seen[-1] != app.replica.data_version:
                seen.append(app.replica.data_version)
            await asyncio.sleep(0.001)

    task = asyncio.create_task(sample())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def never_decreasing(versions: list[int]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(versions))


async def status(clients: Clients) -> pb.ReplicaStatus:
    return await clients.admin.GetReplicaStatus(pb.GetReplicaStatusRequest())


async def test_replicas_on_a_standby_converge_within_a_second_and_hold_one_primary_connection(
    start_server: StartServer, connect: Callable[[App], Clients], own_cluster: OwnCluster, standby: Standby
) -> None:
    fed = await start_server(database_url=own_cluster.url, feed_url=standby.url, hit_flush_interval=0.2)
    pure = await start_server(primary=False, feed_url=standby.url)
    writer, reader = connect(fed), connect(pure)

    took = []
    for i in range(5):
        entry = await create(writer, f"+4420700{i}")  # committed on the primary when this returns
        committed = time.monotonic()
        for clients in (writer, reader):
            await until_verdict(clients, entry.number, BLOCK, within=1.0)
        took.append(time.monotonic() - committed)
    assert max(took) < 1.0, took

    fed_status, pure_status = await status(writer), await status(reader)
    assert fed_status.has_primary and fed_status.feed_standby and fed_status.hot_standby_feedback
    assert fed_status.connected  # listening on the primary
    assert not pure_status.has_primary and pure_status.feed_standby and not pure_status.connected
    assert pure_status.data_version >= fed_status.data_version - 1 >= 0

    # Hit counts travel to the primary on the listener's connection.
    for _ in range(3):
        assert (await screen(writer, entry.number)).verdict == BLOCK

    async def counted() -> bool:
        got = await writer.admin.GetForbiddenNumber(pb.GetForbiddenNumberRequest(tenant_id="acme", id=entry.id))
        return got.hit_count >= 3  # until_verdict's calls count too

    await wait_until(counted, within=5, interval=0.1)
    # On the primary, for these two replicas: one listener (the fed one's); admin connections only while
    # admin calls come (they close 30 s after the last); the feeds read the standby.
    on_primary = await primary_connections(own_cluster.url)
    assert on_primary.get("screening-listener") == 1, on_primary
    assert "screening-feed" not in on_primary, on_primary
    assert set(on_primary) <= {"screening-listener", "screening-admin"}, on_primary
    on_standby = await primary_connections(standby.url)
    assert 2 <= on_standby.get("screening-feed", 0) <= 4, on_standby


async def test_admin_rpcs_through_a_replica_without_a_primary_answer_unavailable_naming_the_flag(
    start_server: StartServer, connect: Callable[[App], Clients], own_cluster: OwnCluster, standby: Standby
) -> None:
    await start_server(database_url=own_cluster.url)  # migrates the primary
    pure = connect(await start_server(primary=False, feed_url=standby.url))
    assert (await screen(pure, "+15550100")).verdict == ALLOW  # screening works

    calls = {
        "create": create(pure, "+15550101"),
        "get": pure.admin.GetForbiddenNumber(pb.GetForbiddenNumberRequest(tenant_id="acme", id=NO_ID)),
        "list": pure.admin.ListForbiddenNumbers(pb.ListForbiddenNumbersRequest(tenant_id="acme")),
        "enable": pure.admin.SetForbiddenNumbersEnabled(
            pb.SetForbiddenNumbersEnabledRequest(tenant_id="acme", ids=[NO_ID], enabled=True)
        ),
    }
    for name, call in calls.items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert code_of(caught.value) == grpc.StatusCode.UNAVAILABLE, (name, caught.value)
        assert "--database-url" in (caught.value.details() or ""), (name, caught.value.details())

    async def export() -> None:
        async for _ in pure.admin.ExportForbiddenNumbers(pb.ExportForbiddenNumbersRequest(tenant_id="acme")):
            pass

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await export()
    assert code_of(caught.value) == grpc.StatusCode.UNAVAILABLE
    assert "--database-url" in (caught.value.details() or "")


async def test_a_replica_never_goes_back_when_its_feed_moves_to_a_paused_standby(
    start_server: StartServer, connect: Callable[[App], Clients], own_cluster: OwnCluster, standby: Standby
) -> None:
    """The issue's case: a replica's feed URL moved from the primary to a lagging standby went 794 -> 788."""
    proxy = await FaultProxy(own_cluster.url).start()  # the feed URL, as a balancer would move it
    try:
        writer = connect(await start_server(database_url=own_cluster.url))
        moved_app = await start_server(database_url=own_cluster.url, feed_url=proxy.url("postgres"))
        moved = connect(moved_app)
        await create(writer, "+4930100")
        await until_verdict(moved, "+4930100", BLOCK)

        paused = await asyncpg.connect(standby.url)
        await paused.execute("SELECT pg_wal_replay_pause()")
        written: list[str] = []

        async def keep_writing() -> None:
            for i in range(1000):
                written.append((await create(writer, f"+4930200{i:03d}")).number)
                await asyncio.sleep(0.02)

        async with versions_of(moved_app) as versions:
            writing = asyncio.create_task(keep_writing())
            await wait_until(lambda: len(written) >= 5, within=10)
            # The primary's changes reach the replica while its feed is the primary.
            await until_verdict(moved, written[4], BLOCK)
            before = moved_app.replica.data_version
            proxy.retarget(standby.url)
            proxy.cut()
            await wait_until(lambda: moved_app.replica.state().feed_behind > 0, within=5)
            # Waiting, the replica answers as it did: what it blocked it still blocks.
            for number in written[:5]:
                assert (await screen(moved, number)).verdict == BLOCK
            assert moved_app.replica.data_version >= before
            status_while_waiting = await status(moved)
            assert status_while_waiting.feed_standby and status_while_waiting.feed_behind > 0

            await paused.execute("SELECT pg_wal_replay_resume()")
            resumed = time.monotonic()
            await wait_until(lambda: moved_app.replica.state().feed_behind == 0, within=5)
            writing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writing
            await until_verdict(moved, written[-1], BLOCK, within=2)
            caught_up = time.monotonic() - resumed
        await paused.close()
        assert never_decreasing(versions), versions
        assert moved_app.replica.state().feed_waits > 0
        assert moved_app.replica.full_loads == 1  # waited, never reloaded
        assert caught_up < 2.0
    finally:
        await proxy.close()


async def test_replicas_survive_a_standby_restart_without_going_back(
    start_server: StartServer, connect: Callable[[App], Clients], own_cluster: OwnCluster, standby: Standby
) -> None:
    writer = connect(await start_server(database_url=own_cluster.url))
    fed_app = await start_server(database_url=own_cluster.url, feed_url=standby.url)
    pure_app = await start_server(primary=False, feed_url=standby.url)
    fed, pure = connect(fed_app), connect(pure_app)
    await create(writer, "+3314000")
    for clients in (fed, pure):
        await until_verdict(clients, "+3314000", BLOCK)

    async with versions_of(fed_app) as fed_versions, versions_of(pure_app) as pure_versions:
        standby.stop("immediate")  # a crash: it restarts from its last restartpoint
        await create(writer, "+3314001")
        for clients in (fed, pure):  # answering from memory meanwhile
            assert (await screen(clients, "+3314000")).verdict == BLOCK
        standby.start()
        restarted = time.monotonic()
        await create(writer, "+3314002")
        for clients in (fed, pure):
            await until_verdict(clients, "+3314001", BLOCK, within=5)
            await until_verdict(clients, "+3314002", BLOCK, within=5)
        converged = time.monotonic() - restarted
    assert never_decreasing(fed_versions) and never_decreasing(pure_versions), (fed_versions, pure_versions)
    assert converged < 5.0
    assert fed_app.replica.full_loads == 1 and pure_app.replica.full_loads == 1


async def test_a_replica_without_a_primary_waits_for_the_schema_and_says_what_to_set(
    start_server: StartServer,
    connect: Callable[[App], Clients],
    own_cluster: OwnCluster,
    pg_home,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    careless = Standby(own_cluster, pg_home / "careless", hot_standby_feedback=False)
    try:
        pure_app = await start_server(primary=False, feed_url=careless.url, wait_ready=False)
        await wait_until(lambda: "no schema yet" in caplog.text, within=10)
        assert not pure_app.replica.ready
        assert "--database-url" in caplog.text
        await start_server(database_url=own_cluster.url)  # migrates the primary; the standby replays it
        await wait_until(lambda: pure_app.replica.ready, within=15, interval=0.1)
        assert "hot_standby_feedback = on" in caplog.text
        got = await status(connect(pure_app))
        assert got.feed_standby and not got.hot_standby_feedback
    finally:
        careless.close()


async def test_the_last_hit_counts_go_out_over_the_listener_before_it_closes(
    start_server: StartServer, connect: Callable[[App], Clients], dsn: str
) -> None:
    """The listener's connection carries the hit counts: on shutdown it stays up until the last write is done."""
    app = await start_server(hit_flush_interval=10.0)
    clients = connect(app)
    entry = await create(clients, "+4420800")
    await until_verdict(clients, entry.number, BLOCK)
    before = app.replica.listener.backend_pid if app.replica.listener else None
    for _ in range(4):
        assert (await screen(clients, entry.number)).verdict == BLOCK
    stopping = time.monotonic()
    await app.stop(grace=0)
    assert time.monotonic() - stopping < 3.0  # never waits for a listener that is already gone
    conn = await asyncpg.connect(dsn)
    try:
        hits = await conn.fetchval("SELECT hits FROM entry_hits WHERE entry_id = $1::uuid", entry.id)
    finally:
        await conn.close()
    assert before is not None and hits is not None and hits >= 4

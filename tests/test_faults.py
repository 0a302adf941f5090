"""The freshness promises under real faults: every case asserts that nothing is lost.

Faults are injected for real: a TCP proxy between the server and PostgreSQL
that resets, refuses or silently drops connections; pg_terminate_backend;
a PostgreSQL cluster stopped hard and started again.
"""

import asyncio
import contextlib
import time
from urllib.parse import urlsplit

import asyncpg
import grpc
import pytest

from screening.app.config import Config
from screening.app.service import App
from screening.sync.replica import Replica
from screening.v1 import screening_pb2 as pb
from storage.migrate import migrate
from tests.support import (
    Clients,
    StartServer,
    code_of,
    create,
    free_port,
    screen,
    until_verdict,
    wait_until,
    with_database,
)
from tests.support.clusters import OwnCluster
from tests.support.faultproxy import FaultProxy

BLOCK, ALLOW = pb.VERDICT_BLOCK, pb.VERDICT_ALLOW
INSERT = "INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type) VALUES ('acme', $1, 1, 3)"


def database_of(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


def report(case: str, seconds: float) -> None:
    print(f"\n[recovery] {case}: {seconds * 1000:.0f} ms")


async def all_blocked(clients: Clients, numbers: list[str]) -> bool:
    r = await clients.screening.ScreenNumbers(
        pb.ScreenNumbersRequest(tenant_id="acme", direction=pb.DIRECTION_INBOUND, numbers=numbers)
    )
    return all(x.verdict == BLOCK for x in r.results)


async def test_listener_killed_then_100_changes(server: App, clients: Clients, dsn: str) -> None:
    await wait_until(lambda: server.replica.listener.connected, within=5)
    old_pid = server.replica.listener.backend_pid
    db = await asyncpg.connect(dsn)
    try:
        assert await db.fetchval("SELECT pg_terminate_backend($1)", old_pid)
        numbers = [f"+1800555{i:04d}" for i in range(100)]
        for number in numbers:
            await db.execute(INSERT, number)
        committed = time.monotonic()
        await wait_until(lambda: all_blocked(clients, numbers), within=1.0)
        report("listener killed, 100 changes answered after last commit", time.monotonic() - committed)
        await wait_until(
            lambda: server.replica.listener.connected and server.replica.listener.backend_pid != old_pid, within=5
        )
        listening = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND query LIKE 'LISTEN%'",
            server.replica.listener.backend_pid,
        )
        assert listening == 1 and server.replica.listener.reconnects >= 1
    finally:
        await db.close()


async def test_half_open_connections_are_detected_and_caught_up(
    start_server: StartServer, connect, proxy: FaultProxy, dsn: str
) -> None:
    app = await start_server(database_url=proxy.url(database_of(dsn)))
    clients = connect(app)
    await create(clients, "+1900")
    await until_verdict(clients, "+1900", BLOCK)
    # The listener's first connection must exist to be the one that goes silent.
    await wait_until(lambda: app.replica.listener.connected, within=5)
    reconnects = app.replica.listener.reconnects
    proxy.blackhole()  # every open connection goes silent: no FIN, no RST
    started = time.monotonic()
    db = await asyncpg.connect(dsn)
    try:
        await db.execute(INSERT, "+1901")
    finally:
        await db.close()
    # Screening answers from memory throughout, until the new change arrives.
    while (await screen(clients, "+1901")).verdict != BLOCK:
        assert (await screen(clients, "+1900")).verdict == BLOCK
        # The detection itself takes the heartbeat's and the read's timeouts (3 + 3 s, 5 s); the rest is margin
        # for a machine busy with other work.
        assert time.monotonic() - started < 30, "half-open connection not detected"
        await asyncio.sleep(0.05)
    report("half-open connections detected and caught up", time.monotonic() - started)
    await wait_until(lambda: app.replica.listener.reconnects > reconnects, within=10)


async def test_same_row_race_ends_with_the_database_value(server: App, clients: Clients, dsn: str) -> None:
    """T2 takes its xid before T1 but writes the row after T1 committed: T2's value must win."""
    entry = await create(clients, "+1950")
    await until_verdict(clients, "+1950", BLOCK)
    t1, t2 = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        tx2 = t2.transaction()
        await tx2.start()
        await t2.fetchval("SELECT pg_current_xact_id()")  # T2's xid is the older one
        async with t1.transaction():
            await t1.execute("UPDATE forbidden_numbers SET enabled = false WHERE id = $1::uuid", entry.id)
        await until_verdict(clients, "+1950", ALLOW)
        await t2.execute("UPDATE forbidden_numbers SET enabled = true WHERE id = $1::uuid", entry.id)
        await tx2.commit()
        await until_verdict(clients, "+1950", BLOCK)
        assert await t1.fetchval("SELECT enabled FROM forbidden_numbers WHERE id = $1::uuid", entry.id)
    finally:
        await t1.close()
        await t2.close()


async def test_unreachable_database_keeps_screening_and_converges(
    start_server: StartServer, connect, proxy: FaultProxy, dsn: str
) -> None:
    cut_off = connect(await start_server(database_url=proxy.url(database_of(dsn))))
    writer = connect(await start_server())
    kept = await create(writer, "+2100")
    await until_verdict(cut_off, "+2100", BLOCK)

    proxy.refuse()  # the database is gone for this replica; changes continue elsewhere
    started = time.monotonic()
    added = await create(writer, "+2101")
    await writer.admin.DeleteForbiddenNumber(pb.DeleteForbiddenNumberRequest(tenant_id="acme", id=kept.id))
    for _ in range(5):
        assert (await screen(cut_off, "+2100")).verdict == BLOCK  # from memory
        await asyncio.sleep(0.1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(cut_off, "+2102")
    assert code_of(caught.value) == grpc.StatusCode.UNAVAILABLE
    assert "database" in caught.value.details()
    took = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cut_off.admin.GetForbiddenNumber(pb.GetForbiddenNumberRequest(tenant_id="acme", id=added.id), timeout=1)
    assert code_of(caught.value) == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - took < 1.0

    proxy.heal()
    healed = time.monotonic()
    await until_verdict(cut_off, "+2101", BLOCK, within=5)
    await until_verdict(cut_off, "+2100", ALLOW, within=5)
    report(f"database refused for {healed - started:.1f}s, converged after heal", time.monotonic() - healed)


async def test_database_stopped_hard_and_restarted(start_server: StartServer, connect, own_cluster: OwnCluster) -> None:
    one = connect(await start_server(database_url=own_cluster.url))
    two = connect(await start_server(database_url=own_cluster.url))
    await create(one, "+2200")
    await until_verdict(one, "+2200", BLOCK)  # the writer applies its own change through the feed too
    await until_verdict(two, "+2200", BLOCK)

    own_cluster.stop_hard()
    for clients in (one, two):
        assert (await screen(clients, "+2200")).verdict == BLOCK
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await create(clients, "+2201", deadline=3)
        assert code_of(caught.value) == grpc.StatusCode.UNAVAILABLE

    own_cluster.start()
    restarted = time.monotonic()

    async def created() -> bool:
        try:
            await create(one, "+2201", deadline=2)
        except grpc.aio.AioRpcError as error:
            return error.code() == grpc.StatusCode.ALREADY_EXISTS
        return True

    await wait_until(created, within=15, interval=0.2)
    await until_verdict(two, "+2201", BLOCK, within=5)
    await until_verdict(one, "+2201", BLOCK, within=5)
    report("PostgreSQL restarted, both replicas converged", time.monotonic() - restarted)


async def test_database_unreachable_at_start_up(
    start_server: StartServer, connect, proxy: FaultProxy, dsn: str
) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    await start_server()  # migrates
    proxy.refuse()
    app = await start_server(database_url=proxy.url(database_of(dsn)), wait_ready=False)
    clients = connect(app)
    health = health_pb2_grpc.HealthStub(clients.channel)
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await screen(clients, "+1")
        assert code_of(caught.value) == grpc.StatusCode.UNAVAILABLE
        check = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert check.status == health_pb2.HealthCheckResponse.NOT_SERVING
        await asyncio.sleep(0.3)
    proxy.heal()
    healed = time.monotonic()
    await wait_until(lambda: app.replica.ready, within=10)
    report("unreachable at start-up, serving after heal", time.monotonic() - healed)
    assert (await screen(clients, "+1")).verdict == ALLOW


async def test_replica_away_past_tombstone_retention_reloads(
    start_server: StartServer, connect, proxy: FaultProxy, dsn: str
) -> None:
    away = await start_server(database_url=proxy.url(database_of(dsn)), tombstone_retention=1.0)
    writer = connect(await start_server(tombstone_retention=1.0))
    gone = await create(writer, "+2300")
    await until_verdict(connect(away), "+2300", BLOCK)
    proxy.refuse()
    await writer.admin.DeleteForbiddenNumber(pb.DeleteForbiddenNumberRequest(tenant_id="acme", id=gone.id))
    db = await asyncpg.connect(dsn)
    try:
        await wait_until(
            lambda: db.fetchval("SELECT count(*) = 0 FROM forbidden_numbers WHERE id = $1::uuid", gone.id), within=5
        )
    finally:
        await db.close()
    loads = away.replica.full_loads
    proxy.heal()
    await until_verdict(connect(away), "+2300", ALLOW, within=5)
    assert away.replica.full_loads == loads + 1


async def test_another_cluster_behind_the_same_address_triggers_a_reload(
    start_server: StartServer, connect, proxy: FaultProxy, own_cluster: OwnCluster, dsn: str
) -> None:
    """Failover or restore to another cluster: the replica notices and reloads from it."""
    first = await start_server(database_url=proxy.url(database_of(dsn)))
    clients = connect(first)
    await create(clients, "+2400")
    await until_verdict(clients, "+2400", BLOCK)
    # The other cluster has a database of the same name (a restored copy, say).
    name = database_of(dsn)
    admin = await asyncpg.connect(own_cluster.url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    other = connect(await start_server(database_url=with_database(own_cluster.url, name)))
    await create(other, "+2401")
    loads = first.replica.full_loads
    proxy.retarget(own_cluster.url)
    proxy.cut()
    await until_verdict(clients, "+2401", BLOCK, within=10)
    await until_verdict(clients, "+2400", ALLOW, within=2)
    assert first.replica.full_loads == loads + 1


async def test_million_row_import_one_notification_every_row_answered(
    start_server: StartServer, connect, proxy: FaultProxy, dsn: str
) -> None:
    rows = 1_000_000
    importer = connect(await start_server())
    reader_app = await start_server(database_url=proxy.url(database_of(dsn)))
    reader = connect(reader_app)
    notifications: list[str] = []
    listener = await asyncpg.connect(dsn)
    await listener.add_listener("screening_changes", lambda *args: notifications.append(args[2]))
    numbers = [f"+1{i:010d}" for i in range(rows)]

    async def messages():
        yield pb.ImportForbiddenNumbersRequest(header=pb.ImportHeader(tenant_id="acme", source_name="1m.csv"))
        for start in range(0, rows, 10_000):
            if start == rows // 2:
                proxy.cut()  # the reading replica loses its connections mid-import
            batch = [
                pb.ImportRow(line=i + 2, number=numbers[i], call_type=pb.CALL_TYPE_BOTH)
                for i in range(start, start + 10_000)
            ]
            yield pb.ImportForbiddenNumbersRequest(rows=pb.ImportRowBatch(rows=batch))

    try:
        started = time.monotonic()
        job = await importer.admin.ImportForbiddenNumbers(messages(), timeout=300)
        committed = time.monotonic()
        assert (job.state, job.created_count, job.failed_count) == (pb.IMPORT_JOB_STATE_SUCCEEDED, rows, 0)

        async def every_row_answered() -> bool:
            for start in range(0, rows, 10_000):
                r = await reader.screening.ScreenNumbers(
                    pb.ScreenNumbersRequest(
                        tenant_id="acme", direction=pb.DIRECTION_OUTBOUND, numbers=numbers[start : start + 10_000]
                    )
                )
                if any(x.verdict != BLOCK for x in r.results):
                    return False
            return True

        await wait_until(lambda: len(reader_app.replica.index) >= rows, within=60, interval=0.05)
        loaded = time.monotonic()
        await wait_until(every_row_answered, within=30, interval=0.5)
        await asyncio.sleep(0.2)
        assert len(notifications) == 1
        print(
            f"\n[import] {rows} rows committed in {committed - started:.1f}s,"
            f" in the other replica's index {loaded - committed:.1f}s later"
            f" (all {rows} screened BLOCK in {time.monotonic() - loaded:.1f}s); 1 notification"
        )
    finally:
        await listener.close()


async def test_a_replica_told_to_listen_when_loaded_binds_only_after_its_first_load(
    proxy: FaultProxy, dsn: str
) -> None:
    """What a restarted --workers worker does: no connection reaches it before it can answer."""
    port = free_port()
    proxy.refuse()
    config = Config(listen=f"127.0.0.1:{port}", database_url=proxy.url(database_of(dsn)))
    app = await App(config, proxy.url(database_of(dsn)), listen_when_loaded=True).start()
    try:
        await asyncio.sleep(1.0)  # it keeps retrying the database meanwhile
        assert not app.replica.ready and not app.listening
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        proxy.heal()
        await wait_until(lambda: app.listening, within=10)
        assert app.replica.ready and app.port == port
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = await screen(Clients(channel), "+1555")
        assert answer.verdict == pb.VERDICT_ALLOW
    finally:
        await app.stop(0)


async def test_a_full_load_on_a_silent_connection_gives_up_and_is_retried(proxy: FaultProxy, dsn: str) -> None:
    db = await asyncpg.connect(dsn)
    try:
        await migrate(db)
    finally:
        await db.close()
    url = proxy.url(database_of(dsn))
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    replica = Replica(pool, lambda: asyncpg.connect(url), load_stall_timeout=1.0, retry_interval=0.2)
    try:
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")  # the connection the load will borrow is open, then goes silent
        proxy.blackhole()
        started = time.monotonic()
        running = asyncio.create_task(replica.run())
        # Closed after a second without data, then loaded over a new connection
        # (not after the pool's 30 s command timeout, nor never).
        await wait_until(lambda: replica.ready, within=8)
        report("full load on a silent connection retried", time.monotonic() - started)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    finally:
        await asyncio.wait_for(pool.close(), 10)


def _admin_request(method) -> object:
    """A well-formed request for `method`, naming tenant acme and an entry id that may not exist."""
    from google.protobuf import message_factory

    request = message_factory.GetMessageClass(method.input_type)()
    fields = method.input_type.fields_by_name
    if "tenant_id" in fields:
        request.tenant_id = "acme"
    if "id" in fields:
        request.id = "0b6f8a8e-5f4e-4c52-9d7e-6f2f1c0e9a11"
    if "ids" in fields:
        request.ids.append("0b6f8a8e-5f4e-4c52-9d7e-6f2f1c0e9a11")
    if "direction" in fields:
        request.direction = pb.DIRECTION_INBOUND
        request.number = "+4930123456"
    if "forbidden_number" in fields:
        entry = request.forbidden_number
        entry.tenant_id, entry.number, entry.call_type = "acme", "+4930123456", pb.CALL_TYPE_BOTH
        entry.id = "0b6f8a8e-5f4e-4c52-9d7e-6f2f1c0e9a11"
    if "settings" in fields:
        request.settings.tenant_id, request.settings.display_name = "acme", "ACME"
    if "region" in fields:
        request.region = "US"
    return request


# Answered without the database: from the replica's memory or the caller's token.
DATABASE_FREE = {"GetReplicaStatus", "GetCallerIdentity"}


async def test_every_unary_admin_call_on_a_silent_database_answers_unavailable_before_its_deadline(
    start_server: StartServer, connect, proxy: FaultProxy, dsn: str
) -> None:
    """The status of a call that waits on the database follows from its kind, for every such RPC."""
    app = await start_server(database_url=proxy.url(database_of(dsn)))
    clients = connect(app)
    await create(clients, "+4930000001")  # warm the pool: its connections are then frozen, not refused
    proxy.blackhole(new_too=True)
    service = pb.DESCRIPTOR.services_by_name["ForbiddenNumberAdmin"]
    unary = [m for m in service.methods if not m.client_streaming and not m.server_streaming]
    assert len(unary) >= 12
    for method in unary:
        call = clients.channel.unary_unary(
            f"/{service.full_name}/{method.name}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=lambda b: b,
        )
        started = time.monotonic()
        try:
            await call(_admin_request(method), timeout=2.0)
            code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as error:
            code = error.code()
        assert time.monotonic() - started < 2.0, method.name
        expected = grpc.StatusCode.OK if method.name in DATABASE_FREE else grpc.StatusCode.UNAVAILABLE
        assert code == expected, f"{method.name}: {code}"

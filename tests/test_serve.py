"""`python -m screening serve` as a user runs it: a real process, flags, env, signals."""

import asyncio
import signal
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from screening.v1 import screening_pb2 as pb
from tests.support import Clients, create, serving, until_verdict


async def test_serve_with_database_url_flags_reflection_and_sigterm(run_server, dsn: str) -> None:
    server = run_server("--database-url", dsn, "--default-region", "gb", "--shutdown-grace", "5")
    await serving(server.address)

    # grpcurl's view: every service is listed through reflection, with no proto files.
    with grpc.insecure_channel(server.address) as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {"screening.v1.Screening", "screening.v1.ForbiddenNumberAdmin", "grpc.health.v1.Health"} <= services

    async with grpc.aio.insecure_channel(server.address) as channel:
        clients = Clients(channel)
        await create(clients, "020 7946 0958")  # national, through --default-region gb
        await until_verdict(clients, "+442079460958", pb.VERDICT_BLOCK)

        # A stream in flight when SIGTERM arrives is allowed to finish.
        queue: asyncio.Queue[pb.ScreenCallRequest | None] = asyncio.Queue()

        async def requests():
            while (item := await queue.get()) is not None:
                yield item

        stream = clients.screening.ScreenCallStream(requests())
        request = pb.ScreenCallRequest(tenant_id="acme", number="02079460958", direction=pb.DIRECTION_INBOUND)
        await queue.put(request)
        assert (await stream.read()).verdict == pb.VERDICT_BLOCK

        server.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        await queue.put(request)
        assert (await stream.read()).verdict == pb.VERDICT_BLOCK  # still answered while draining
        await queue.put(None)
        assert await stream.read() == grpc.aio.EOF
    assert await asyncio.to_thread(server.proc.wait, 10) == 0


async def test_serve_with_embedded_database_by_default(run_server, pg_home: Path) -> None:
    data_dir = pg_home / "data"
    server = run_server(SCREENING_DATA_DIR=str(data_dir))
    await serving(server.address, within=60)
    async with grpc.aio.insecure_channel(server.address) as channel:
        clients = Clients(channel)
        await create(clients, "+15550100")
        await until_verdict(clients, "+15550100", pb.VERDICT_BLOCK)
    server.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(server.proc.wait, 20) == 0
    assert (data_dir / "pgdata" / "PG_VERSION").exists()
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()  # PostgreSQL stopped with us

    # The next start reuses the same cluster: the entry is still there.
    again = run_server("--data-dir", str(data_dir))
    await serving(again.address, within=60)
    async with grpc.aio.insecure_channel(again.address) as channel:
        await until_verdict(Clients(channel), "+15550100", pb.VERDICT_BLOCK)
    again.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(again.proc.wait, 20) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--default-region", "XX"], "--default-region 'XX'"),
        (["--listen", "nowhere"], "--listen 'nowhere'"),
        (["--database-url", "mysql://x"], "--database-url 'mysql://x'"),
    ],
)
def test_bad_flags_exit_with_a_clear_message(run_server, args: list[str], message: str) -> None:
    server = run_server(*args)
    assert server.proc.wait(10) == 2
    assert message in server.output()


async def test_sigterm_drains_100_calls_in_flight(run_server, dsn: str) -> None:
    server = run_server("--database-url", dsn, "--shutdown-grace", "5")
    await serving(server.address)
    async with grpc.aio.insecure_channel(server.address) as channel:
        clients = Clients(channel)
        await create(clients, "+15550100")
        await until_verdict(clients, "+15550100", pb.VERDICT_BLOCK)
        request = pb.ScreenCallRequest(tenant_id="acme", number="+15550100", direction=pb.DIRECTION_INBOUND)

        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service="screening.v1.Screening")
        )
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING

        queues: list[asyncio.Queue[pb.ScreenCallRequest | None]] = [asyncio.Queue() for _ in range(100)]

        def feed(queue: asyncio.Queue[pb.ScreenCallRequest | None]):
            async def requests():
                while (item := await queue.get()) is not None:
                    yield item

            return requests()

        streams = [clients.screening.ScreenCallStream(feed(q)) for q in queues]
        for q in queues:
            q.put_nowait(request)
        assert all(a.verdict == pb.VERDICT_BLOCK for a in await asyncio.gather(*(s.read() for s in streams)))

        signalled = asyncio.get_running_loop().time()
        server.proc.send_signal(signal.SIGTERM)
        # Health says NOT_SERVING first, while the calls in flight go on.
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()
        for q in queues:
            q.put_nowait(request)
        answers = await asyncio.gather(*(s.read() for s in streams))
        assert [a.verdict for a in answers] == [pb.VERDICT_BLOCK] * 100
        for q in queues:
            q.put_nowait(None)
        assert await asyncio.gather(*(s.read() for s in streams)) == [grpc.aio.EOF] * 100
    assert await asyncio.to_thread(server.proc.wait, 10) == 0
    assert asyncio.get_running_loop().time() - signalled < 5 + 2

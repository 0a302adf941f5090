"""Prometheus metrics scraped over HTTP from a real server and parsed with prometheus-client's parser."""

import asyncio
import secrets
import urllib.request
import uuid

import asyncpg
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from screening.app.config import Config
from screening.app.service import App
from screening.domain.errors import ConfigError
from screening.v1 import screening_pb2 as pb
from tests.support import (
    Clients,
    StartServer,
    bearer,
    code_of,
    create,
    screen,
    until_verdict,
    wait_until,
    write_auth_file,
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(app: App) -> Samples:
    assert app.metrics_server is not None
    url = f"http://127.0.0.1:{app.metrics_server.port}/metrics"

    def get() -> str:
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            return str(response.read().decode())

    text = await asyncio.to_thread(get)
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def app(start_server: StartServer) -> App:
    return await start_server(metrics_listen="127.0.0.1:0")


async def test_screen_calls_count_by_verdict_and_direction_with_latency(app: App, connect) -> None:
    clients: Clients = connect(app)
    before = await scrape(app)
    assert value(before, "screening_screen_calls_total", verdict="block", direction="inbound") == 0
    assert value(before, "screening_screen_latency_seconds_count") == 0

    await create(clients, "+14155550100", call_type=pb.CALL_TYPE_INBOUND)
    await until_verdict(clients, "+14155550100", pb.VERDICT_BLOCK)
    blocked_first = value(await scrape(app), "screening_screen_calls_total", verdict="block", direction="inbound")
    await screen(clients, "+14155550100")
    await screen(clients, "+14155550100", direction=pb.DIRECTION_OUTBOUND)  # inbound-only entry: allowed
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await screen(clients, "+14155550100", tenant="")
    assert code_of(bad.value) == grpc.StatusCode.INVALID_ARGUMENT

    after = await scrape(app)
    assert blocked_first >= 1
    assert value(after, "screening_screen_calls_total", verdict="block", direction="inbound") == blocked_first + 1
    assert value(after, "screening_screen_calls_total", verdict="allow", direction="outbound") == 1
    assert value(after, "screening_screen_calls_total", verdict="error", direction="inbound") == 1
    calls = sum(v for (name, _), v in after.items() if name == "screening_screen_calls_total")
    assert value(after, "screening_screen_latency_seconds_count") == calls
    assert 0 < value(after, "screening_screen_latency_seconds_sum") < calls * 0.25
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in after.items()
        if name == "screening_screen_latency_seconds_bucket"
    )
    assert buckets[-1] == (float("inf"), calls)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert buckets[0][0] == 0.00001
    # No tenant or number ever becomes a label.
    assert not any("tenant" in dict(labels) or "number" in dict(labels) for _, labels in after)

    # The stream counts each message.
    stream = clients.screening.ScreenCallStream(
        iter([pb.ScreenCallRequest(tenant_id="acme", number="+1555", direction=pb.DIRECTION_OUTBOUND)] * 3)
    )
    assert [r.verdict async for r in stream] == [pb.VERDICT_ALLOW] * 3
    batch = await clients.screening.ScreenNumbers(
        pb.ScreenNumbersRequest(tenant_id="acme", direction=pb.DIRECTION_INBOUND, numbers=["+14155550100", "+1"])
    )
    assert [r.verdict for r in batch.results] == [pb.VERDICT_BLOCK, pb.VERDICT_ALLOW]
    last = await scrape(app)
    assert value(last, "screening_screen_calls_total", verdict="allow", direction="outbound") == 4
    assert value(last, "screening_batch_screened_numbers_total", verdict="block") == 1
    assert value(last, "screening_batch_screened_numbers_total", verdict="allow") == 1


async def test_replica_state_and_admin_calls_move(app: App, connect, dsn: str) -> None:
    clients: Clients = connect(app)
    first = await scrape(app)
    assert value(first, "screening_serving") == 1
    assert value(first, "screening_full_loads_total") == 1
    assert value(first, "screening_entries_loaded") == 0
    assert value(first, "screening_last_sync_timestamp_seconds") > 0
    assert 0 <= value(first, "screening_seconds_behind") < 5
    assert value(first, "screening_admin_calls_total", method="CreateForbiddenNumber", code="OK") == 0

    entry = await create(clients, "+8613800138000")
    await create(clients, "+8613800138001")
    with pytest.raises(grpc.aio.AioRpcError):
        await create(clients, "+8613800138000")
    with pytest.raises(grpc.aio.AioRpcError):
        await clients.admin.GetForbiddenNumber(pb.GetForbiddenNumberRequest(tenant_id="acme", id="nope"))
    export = clients.admin.ExportForbiddenNumbers(pb.ExportForbiddenNumbersRequest(tenant_id="acme"))
    exported = [e async for e in export]
    assert len(exported) == 2
    await until_verdict(clients, "+8613800138001", pb.VERDICT_BLOCK)
    status = await clients.admin.GetReplicaStatus(pb.GetReplicaStatusRequest())

    after = await scrape(app)
    assert value(after, "screening_admin_calls_total", method="CreateForbiddenNumber", code="OK") == 2
    assert value(after, "screening_admin_calls_total", method="CreateForbiddenNumber", code="ALREADY_EXISTS") == 1
    assert value(after, "screening_admin_calls_total", method="GetForbiddenNumber", code="NOT_FOUND") == 1
    assert value(after, "screening_admin_calls_total", method="ExportForbiddenNumbers", code="OK") == 1
    assert value(after, "screening_admin_call_duration_seconds_count", method="CreateForbiddenNumber") == 3
    assert value(after, "screening_entries_loaded") == 2
    assert value(after, "screening_data_version") >= status.data_version > value(first, "screening_data_version")
    assert value(after, "screening_listener_connected") == 1
    assert entry.id

    # Kill the listener's backend: it reconnects by itself and the counter says so.
    assert value(after, "screening_listener_reconnects_total") == 0
    pid = app.replica.listener.backend_pid
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()

    async def reconnected() -> bool:
        return value(await scrape(app), "screening_listener_reconnects_total") == 1

    await wait_until(reconnected, within=15, interval=0.2)


async def test_metrics_endpoint_is_off_by_default_and_stops_with_the_server(start_server: StartServer) -> None:
    off = await start_server()
    assert off.metrics_server is None
    on = await start_server(metrics_listen="127.0.0.1:0")
    assert await scrape(on)
    port = on.metrics_server.port if on.metrics_server else 0
    await on.stop(grace=0)
    with pytest.raises(OSError):
        await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{port}/metrics", None, 2)


def test_metrics_listen_is_validated_like_listen() -> None:
    with pytest.raises(ConfigError, match="--metrics-listen 'nowhere'"):
        Config(metrics_listen="nowhere")
    assert Config(metrics_listen="0.0.0.0:9464").metrics_host_port == ("0.0.0.0", 9464)


async def test_admin_calls_refused_by_auth_are_counted(start_server: StartServer, tmp_path) -> None:
    reader = secrets.token_urlsafe(24)
    auth = write_auth_file(tmp_path / "tokens.toml", {"reader": (reader, ["viewer"], ["acme"])})
    app = await start_server(metrics_listen="127.0.0.1:0", auth_file=auth)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        clients = Clients(channel)
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await create(clients, "+15550100")
        assert code_of(anonymous.value) == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as no_role:
            await clients.admin.DeleteForbiddenNumber(
                pb.DeleteForbiddenNumberRequest(tenant_id="acme", id=str(uuid.uuid4())), metadata=bearer(reader)
            )
        assert code_of(no_role.value) == grpc.StatusCode.PERMISSION_DENIED
        export = clients.admin.ExportForbiddenNumbers(
            pb.ExportForbiddenNumbersRequest(tenant_id="other"), metadata=bearer(reader)
        )
        with pytest.raises(grpc.aio.AioRpcError) as elsewhere:
            [e async for e in export]
        assert code_of(elsewhere.value) == grpc.StatusCode.PERMISSION_DENIED
        listed = await clients.admin.ListForbiddenNumbers(
            pb.ListForbiddenNumbersRequest(tenant_id="acme"), metadata=bearer(reader)
        )
        assert listed.total_size == 0

    samples = await scrape(app)
    assert value(samples, "screening_admin_calls_total", method="CreateForbiddenNumber", code="UNAUTHENTICATED") == 1
    assert value(samples, "screening_admin_calls_total", method="ExportForbiddenNumbers", code="PERMISSION_DENIED") == 1
    assert value(samples, "screening_admin_calls_total", method="DeleteForbiddenNumber", code="PERMISSION_DENIED") == 1
    assert value(samples, "screening_admin_calls_total", method="ListForbiddenNumbers", code="OK") == 1


async def test_import_rows_count_by_outcome(app: App, connect) -> None:
    clients: Clients = connect(app)

    async def run(mode: int, *numbers: str) -> pb.ImportJob:
        async def messages():
            yield pb.ImportForbiddenNumbersRequest(header=pb.ImportHeader(tenant_id="acme", mode=mode))
            yield pb.ImportForbiddenNumbersRequest(
                rows=pb.ImportRowBatch(
                    rows=[
                        pb.ImportRow(line=i + 2, number=n, call_type=pb.CALL_TYPE_BOTH) for i, n in enumerate(numbers)
                    ]
                )
            )

        return await clients.admin.ImportForbiddenNumbers(messages())

    first = await run(pb.IMPORT_MODE_UPSERT, "+15550100", "+15550101", "not a number")
    assert (first.created_count, first.failed_count) == (2, 1)
    await run(pb.IMPORT_MODE_UPSERT, "+15550100")
    await run(pb.IMPORT_MODE_INSERT_ONLY, "+15550101", "+15550102")
    samples = await scrape(app)
    outcomes = {o: value(samples, "screening_import_rows_total", outcome=o) for o in ("created", "updated", "skipped")}
    assert outcomes == {"created": 3, "updated": 1, "skipped": 1}
    assert value(samples, "screening_import_rows_total", outcome="failed") == 1
    assert value(samples, "screening_admin_calls_total", method="ImportForbiddenNumbers", code="OK") == 3


async def test_a_stream_the_client_cancels_counts_as_cancelled(app: App, connect) -> None:
    clients: Clients = connect(app)

    async def messages():
        yield pb.ImportForbiddenNumbersRequest(header=pb.ImportHeader(tenant_id="acme"))
        for start in range(0, 20_000, 5_000):
            yield pb.ImportForbiddenNumbersRequest(
                rows=pb.ImportRowBatch(
                    rows=[
                        pb.ImportRow(line=i + 2, number=f"+1555{i:07d}", call_type=pb.CALL_TYPE_BOTH)
                        for i in range(start, start + 5_000)
                    ]
                )
            )

    assert (await clients.admin.ImportForbiddenNumbers(messages())).created_count == 20_000
    export = clients.admin.ExportForbiddenNumbers(pb.ExportForbiddenNumbersRequest(tenant_id="acme"))
    assert (await export.read()).number == "+15550000000"
    export.cancel()

    async def counted() -> bool:
        samples = await scrape(app)
        return value(samples, "screening_admin_calls_total", method="ExportForbiddenNumbers", code="CANCELLED") == 1

    await wait_until(counted, within=10, interval=0.1)


def test_native_tally_counts_exactly_as_the_python_one() -> None:
    import random

    from screening.api import metrics

    assert metrics.NativeTally is not None, "screening._native is not built: run `make install` with gcc present"
    assert isinstance(metrics.new_tally(), metrics.NativeTally)
    native, python = metrics.NativeTally(metrics.SCREEN_LATENCY_BUCKETS), metrics.ScreenTally()
    rng = random.Random(7)
    # Each bound itself (bisect_left puts it in its own bucket), just above it, nothing, far above every
    # bound; directions in range, unspecified, unknown and beyond a C long.
    seconds = [*metrics.SCREEN_LATENCY_BUCKETS, *(b * 1.0001 for b in metrics.SCREEN_LATENCY_BUCKETS), 0.0, 99.0]
    directions = [0, 1, 2, 3, -1, 7, 2**70]
    for _ in range(5_000):
        args = (rng.randrange(3), rng.choice(directions), rng.choice(seconds) * rng.choice((1, 0.5)))
        native.add(*args)
        python.add(*args)
    assert native.calls == python.calls
    assert native.buckets == python.buckets
    assert sum(native.buckets) == 5_000
    assert native.seconds == pytest.approx(python.seconds, rel=1e-12)
    with pytest.raises(IndexError):
        native.add(3, 1, 0.001)
    with pytest.raises(ValueError, match="increasing"):
        metrics.NativeTally((0.1, 0.1))

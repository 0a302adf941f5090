"""ScreenCall over real gRPC against a real database: the contract's rules end to end."""

import asyncio
import time

import asyncpg
import grpc
import pytest
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from screening.v1 import screening_pb2 as pb
from tests.support import Clients, StartServer, code_of, create, screen, until_verdict, wait_until

IN, OUT = pb.DIRECTION_INBOUND, pb.DIRECTION_OUTBOUND
BLOCK, ALLOW = pb.VERDICT_BLOCK, pb.VERDICT_ALLOW


async def test_exact_entry_blocks_and_names_itself(clients: Clients) -> None:
    entry = await create(clients, "+1 415 555 0100")
    r = await until_verdict(clients, "+14155550100", BLOCK)
    assert (r.matched_id, r.matched_number, r.matched_kind) == (entry.id, "+14155550100", pb.MATCH_KIND_EXACT)
    assert r.normalized_number == "+14155550100"
    other = await screen(clients, "+14155550101")
    assert other.verdict == ALLOW
    assert (other.matched_id, other.matched_number, other.matched_kind) == ("", "", pb.MATCH_KIND_UNSPECIFIED)


async def test_any_written_form_is_screened_normalized(clients: Clients) -> None:
    await create(clients, "+8613800138000")
    await until_verdict(clients, "+8613800138000", BLOCK)
    for form in ("+86 138 0013 8000", "tel:+86-138-0013-8000", "+86 (138) 0013.8000"):
        r = await screen(clients, form, call_id="call-7")
        assert (r.verdict, r.normalized_number, r.call_id) == (BLOCK, "+8613800138000", "call-7")


async def test_exact_wins_over_prefix_and_longest_prefix_wins(clients: Clients) -> None:
    short = await create(clients, "+1", match_kind=pb.MATCH_KIND_PREFIX)
    long = await create(clients, "+1415", match_kind=pb.MATCH_KIND_PREFIX)
    exact = await create(clients, "+14155550100")
    await until_verdict(clients, "+14155550100", BLOCK, matched_id=exact.id)
    r = await screen(clients, "+14155550199")
    assert (r.matched_id, r.matched_kind, r.matched_number) == (long.id, pb.MATCH_KIND_PREFIX, "+1415")
    assert (await screen(clients, "+12125550100")).matched_id == short.id


async def test_only_qualifying_entries_win(clients: Clients, server) -> None:
    short = await create(clients, "+1", match_kind=pb.MATCH_KIND_PREFIX, call_type=pb.CALL_TYPE_INBOUND)
    await create(clients, "+1415", match_kind=pb.MATCH_KIND_PREFIX, call_type=pb.CALL_TYPE_OUTBOUND)
    disabled = await create(clients, "+14155550100", enabled=False)
    await until_verdict(clients, "+14155550100", BLOCK, OUT)  # +1415 is there
    await wait_until(lambda: server.replica.index.get(disabled.id) is not None, within=1)
    r = await screen(clients, "+14155550100", IN)
    assert r.matched_id == short.id  # exact is disabled, +1415 is outbound only


async def test_call_type_decides_direction(clients: Clients) -> None:
    await create(clients, "+441", call_type=pb.CALL_TYPE_INBOUND)
    await create(clients, "+442", call_type=pb.CALL_TYPE_OUTBOUND)
    await create(clients, "+443", call_type=pb.CALL_TYPE_BOTH)
    await until_verdict(clients, "+443", BLOCK)
    assert [(await screen(clients, n, d)).verdict for n in ("+441", "+442", "+443") for d in (IN, OUT)] == [
        BLOCK,
        ALLOW,
        ALLOW,
        BLOCK,
        BLOCK,
        BLOCK,
    ]


async def test_disable_and_enable_take_effect(clients: Clients) -> None:
    entry = await create(clients, "+33123456789")
    await until_verdict(clients, "+33123456789", BLOCK)
    await clients.admin.SetForbiddenNumbersEnabled(
        pb.SetForbiddenNumbersEnabledRequest(tenant_id="acme", ids=[entry.id], enabled=False)
    )
    await until_verdict(clients, "+33123456789", ALLOW)
    await clients.admin.SetForbiddenNumbersEnabled(
        pb.SetForbiddenNumbersEnabledRequest(tenant_id="acme", ids=[entry.id], enabled=True)
    )
    await until_verdict(clients, "+33123456789", BLOCK)


async def test_expired_entry_stops_blocking_but_stays_listed(clients: Clients) -> None:
    soon = timestamp_pb2.Timestamp(seconds=int(time.time()) + 2)
    entry = await create(clients, "+4930123456", expire_time=soon)
    await until_verdict(clients, "+4930123456", BLOCK)
    await until_verdict(clients, "+4930123456", ALLOW, within=4)
    got = await clients.admin.GetForbiddenNumber(pb.GetForbiddenNumberRequest(tenant_id="acme", id=entry.id))
    assert got.expire_time.seconds == soon.seconds


async def test_tenants_are_isolated(clients: Clients) -> None:
    await create(clients, "+4915112345678", tenant="globex")
    await until_verdict(clients, "+4915112345678", BLOCK, tenant="globex")
    assert (await screen(clients, "+4915112345678", tenant="acme")).verdict == ALLOW


async def test_delete_stops_blocking(clients: Clients) -> None:
    entry = await create(clients, "+61212345678")
    await until_verdict(clients, "+61212345678", BLOCK)
    await clients.admin.DeleteForbiddenNumber(pb.DeleteForbiddenNumberRequest(tenant_id="acme", id=entry.id))
    await until_verdict(clients, "+61212345678", ALLOW)


async def test_withheld_caller_id_matches_nothing(clients: Clients) -> None:
    await create(clients, "1", match_kind=pb.MATCH_KIND_PREFIX)
    await until_verdict(clients, "123", BLOCK)
    r = await screen(clients, "")
    assert (r.verdict, r.normalized_number) == (ALLOW, "")


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"tenant_id": "", "number": "+1", "direction": IN}, "tenant_id"),
        ({"tenant_id": "acme", "number": "+1", "direction": 0}, "direction"),
        ({"tenant_id": "acme", "number": "+1", "direction": 9}, "direction"),
        ({"tenant_id": "acme", "number": "anonymous", "direction": IN}, "number"),
        ({"tenant_id": "acme", "number": "+١٢٣", "direction": IN}, "number"),
        ({"tenant_id": "acme", "number": "+12345678901234567", "direction": IN}, "number"),
    ],
)
async def test_bad_requests_are_invalid_argument(clients: Clients, request_fields: dict, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.screening.ScreenCall(pb.ScreenCallRequest(**request_fields))
    assert code_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(field + " ")
    value = request_fields[field]
    assert repr(value) in caught.value.details()


async def test_national_numbers_with_default_region(start_server: StartServer, connect) -> None:
    app = await start_server(default_region="US")
    clients = connect(app)
    entry = await create(clients, "(415) 555-0100")
    assert entry.number == "+14155550100"
    r = await until_verdict(clients, "415.555.0100", BLOCK)
    assert r.normalized_number == "+14155550100"
    assert (await screen(clients, "+1 415 555 0100")).verdict == BLOCK


async def test_data_version_is_monotonic_and_moves_with_changes(clients: Clients) -> None:
    before = (await screen(clients, "+100")).data_version
    assert before > 0
    await create(clients, "+100")
    after = (await until_verdict(clients, "+100", BLOCK)).data_version
    assert after > before


async def test_screen_numbers_answers_in_order(clients: Clients) -> None:
    entry = await create(clients, "+15550001")
    await until_verdict(clients, "+15550001", BLOCK)
    r = await clients.screening.ScreenNumbers(
        pb.ScreenNumbersRequest(tenant_id="acme", direction=OUT, numbers=["+15550000", "+1 555 0001", ""])
    )
    assert [x.verdict for x in r.results] == [ALLOW, BLOCK, ALLOW]
    assert r.results[1].matched_id == entry.id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.screening.ScreenNumbers(
            pb.ScreenNumbersRequest(tenant_id="acme", direction=OUT, numbers=["+1", "x"])
        )
    assert code_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert "numbers[1] 'x'" in caught.value.details()


async def test_screen_call_stream_answers_each_request(clients: Clients) -> None:
    await create(clients, "+15550002")
    await until_verdict(clients, "+15550002", BLOCK)

    async def requests():
        for i, number in enumerate(["+15550002", "+15550003", "+15550002"]):
            yield pb.ScreenCallRequest(tenant_id="acme", number=number, direction=IN, call_id=str(i))

    answers = [r async for r in clients.screening.ScreenCallStream(requests())]
    assert [(a.call_id, a.verdict) for a in answers] == [("0", BLOCK), ("1", ALLOW), ("2", BLOCK)]


async def test_unavailable_and_not_serving_until_first_load(
    start_server: StartServer, connect, dsn: str, server
) -> None:
    # `server` has migrated the schema. Hold a lock that blocks the next replica's first load.
    blocker = await asyncpg.connect(dsn)
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute("LOCK TABLE forbidden_numbers IN ACCESS EXCLUSIVE MODE")
    try:
        app = await start_server(wait_ready=False)
        clients = connect(app)
        health = health_pb2_grpc.HealthStub(clients.channel)
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await screen(clients, "+14155550100")
            assert code_of(caught.value) == grpc.StatusCode.UNAVAILABLE
            for service in ("", "screening.v1.Screening"):
                status = await health.Check(health_pb2.HealthCheckRequest(service=service))
                assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING
            await asyncio.sleep(0.2)
    finally:
        await tx.rollback()
        await blocker.close()
    await wait_until(lambda: app.replica.ready, within=5)
    assert (await screen(clients, "+14155550100")).verdict == ALLOW

    async def serving() -> bool:
        status = await health.Check(health_pb2.HealthCheckRequest(service="screening.v1.Screening"))
        return status.status == health_pb2.HealthCheckResponse.SERVING

    await wait_until(serving, within=2)


async def test_a_switch_on_the_same_host_screens_over_a_unix_socket(start_server: StartServer, tmp_path) -> None:
    path = tmp_path / "screening.sock"
    app = await start_server(listen=f"unix:{path}")
    async with grpc.aio.insecure_channel(f"unix:{path}") as channel:
        clients = Clients(channel)
        await create(clients, "+4930123456")
        answer = await until_verdict(clients, "+4930123456", pb.VERDICT_BLOCK)
        assert answer.normalized_number == "+4930123456"
    assert app.listening and path.exists()

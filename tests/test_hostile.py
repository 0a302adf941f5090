"""Hostile input: precise statuses, bounded messages, nothing stored by a refused call."""

from __future__ import annotations

import grpc
import pytest

from screening.v1 import screening_pb2 as pb
from tests.support import Clients, code_of, create

HUGE = "x" * 100_000


async def refused(call, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert code_of(caught.value) == code, caught.value.details()
    details = caught.value.details() or ""
    assert len(details) < 1200, len(details)
    return details


async def test_a_100kb_id_etag_or_tenant_gets_the_real_code_and_a_short_message(clients: Clients) -> None:
    entry = await create(clients, "+4930123456")
    details = await refused(
        clients.admin.GetForbiddenNumber(pb.GetForbiddenNumberRequest(tenant_id="acme", id=HUGE)),
        grpc.StatusCode.NOT_FOUND,
    )
    assert "(100000 characters)" in details
    details = await refused(
        clients.admin.DeleteForbiddenNumber(pb.DeleteForbiddenNumberRequest(tenant_id="acme", id=entry.id, etag=HUGE)),
        grpc.StatusCode.ABORTED,
    )
    assert "(100000 characters)" in details
    await refused(
        clients.admin.GetImportJob(pb.GetImportJobRequest(tenant_id="acme", id=HUGE)), grpc.StatusCode.NOT_FOUND
    )
    await refused(
        clients.admin.ListForbiddenNumbers(pb.ListForbiddenNumbersRequest(tenant_id=HUGE)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await refused(
        clients.screening.ScreenCall(pb.ScreenCallRequest(tenant_id="acme", number=HUGE, direction=1)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


@pytest.mark.parametrize(
    "method",
    [
        "/screening.v1.Screening/ScreenCall",
        "/screening.v1.ForbiddenNumberAdmin/GetForbiddenNumber",
        "/screening.v1.ForbiddenNumberAdmin/ExportForbiddenNumbers",
    ],
)
async def test_bytes_that_do_not_decode_are_invalid_argument(clients: Clients, method: str) -> None:
    # A field 2 (the number) holding bytes that are not UTF-8, and a truncated varint.
    for garbage in (b"\x12\x02\xff\xfe", b"\x08\xff\xff\xff", b"\xff" * 20):
        if "Export" in method:
            call = clients.channel.unary_stream(method)(garbage)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in call:
                    pass
        else:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await clients.channel.unary_unary(method)(garbage)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (garbage, caught.value)
        assert "could not be decoded" in (caught.value.details() or "")


async def test_undecodable_stream_messages_are_invalid_argument(clients: Clients) -> None:
    garbage = b"\x12\x02\xff\xfe"
    good = pb.ScreenCallRequest(tenant_id="acme", number="+4930", direction=1).SerializeToString()

    async def requests(*items: bytes):
        for item in items:
            yield item

    stream = clients.channel.stream_stream("/screening.v1.Screening/ScreenCallStream")(requests(good, garbage))
    answers = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for answer in stream:
            answers.append(answer)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and len(answers) == 1
    header = pb.ImportForbiddenNumbersRequest(header=pb.ImportHeader(tenant_id="acme")).SerializeToString()
    for items in ((garbage,), (header, garbage)):
        call = clients.channel.stream_unary("/screening.v1.ForbiddenNumberAdmin/ImportForbiddenNumbers")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(requests(*items))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value


async def test_row_level_security_hides_other_tenants_from_a_query_that_forgets_its_filter(
    server, clients: Clients, dsn: str
) -> None:
    import asyncpg

    for tenant, count in (("acme", 2), ("globex", 3)):
        for i in range(count):
            await create(clients, f"+4930555{i}", tenant=tenant)
    assert server._tenancy.role == "screening_tenant"
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                "SELECT set_config('screening.tenant', 'acme', true), set_config('role', 'screening_tenant', true)"
            )
            # No tenant filter in any of these: the database adds it.
            assert await conn.fetchval("SELECT count(*) FROM forbidden_numbers") == 2
            assert await conn.fetchval("SELECT count(DISTINCT tenant_id) FROM audit_events") == 1
            assert await conn.execute("UPDATE forbidden_numbers SET note = 'touched'") == "UPDATE 2"
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.execute(
                    "INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type)"
                    " VALUES ('globex', '+1', 1, 3)"
                )
        untouched = await conn.fetchval("SELECT count(*) FROM forbidden_numbers WHERE note = 'touched'")
        assert untouched == 0  # the transaction rolled back with the refused insert
        async with conn.transaction():
            await conn.execute(
                "SELECT set_config('screening.tenant', 'nobody', true), set_config('role', 'screening_tenant', true)"
            )
            assert await conn.fetchval("SELECT count(*) FROM forbidden_numbers") == 0
        # The owner (the change feed, the first load) sees every tenant.
        assert await conn.fetchval("SELECT count(*) FROM forbidden_numbers") == 5
    finally:
        await conn.close()

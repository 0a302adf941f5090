"""Input limits, each with a clear status and nothing stored."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from screening.app.config import Config
from screening.app.service import App
from screening.v1 import screening_pb2 as pb
from tests.support import Clients, StartServer


async def test_a_message_over_the_limit_is_resource_exhausted(
    start_server: StartServer, connect: Callable[[App], Clients]
) -> None:
    clients = connect(await start_server(max_receive_message_bytes=64 * 1024))
    small = pb.ScreenNumbersRequest(tenant_id="acme", direction=pb.DIRECTION_INBOUND, numbers=["+14155550100"] * 10)
    assert len((await clients.screening.ScreenNumbers(small)).results) == 10
    big = pb.ScreenNumbersRequest(tenant_id="acme", direction=pb.DIRECTION_INBOUND, numbers=["+14155550100"] * 10_000)
    assert big.ByteSize() > 64 * 1024
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await clients.screening.ScreenNumbers(big)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (refused.value.details() or "")


def test_the_default_message_limit_fits_the_largest_import_batch() -> None:
    """10,000 rows (the per-message maximum) with 500-character notes of three-byte characters."""
    row = pb.ImportRow(
        line=1_000_000,
        number="+861380013800",
        call_type=pb.CALL_TYPE_BOTH,
        match_kind=pb.MATCH_KIND_PREFIX,
        enabled=True,
        note="禁" * 500,
    )
    row.expire_time.GetCurrentTime()
    batch = pb.ImportForbiddenNumbersRequest(rows=pb.ImportRowBatch(rows=[row] * 10_000))
    assert batch.ByteSize() < Config().max_receive_message_bytes


async def test_metadata_over_the_limit_is_resource_exhausted(
    start_server: StartServer, connect: Callable[[App], Clients]
) -> None:
    clients = connect(await start_server(max_metadata_bytes=4096))
    request = pb.ScreenCallRequest(tenant_id="acme", number="+14155550100", direction=pb.DIRECTION_INBOUND)
    await clients.screening.ScreenCall(request, metadata=(("x-request-id", "a" * 1000),))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await clients.screening.ScreenCall(request, metadata=(("x-request-id", "a" * 5000),))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "metadata size exceeds" in (refused.value.details() or "")


def entry(**fields: object) -> pb.CreateForbiddenNumberRequest:
    base: dict[str, object] = {"tenant_id": "acme", "number": "+14155550100", "call_type": pb.CALL_TYPE_BOTH}
    base.update(fields)
    return pb.CreateForbiddenNumberRequest(forbidden_number=pb.ForbiddenNumber(**base))  # type: ignore[arg-type]


async def test_note_at_most_500_characters(clients: Clients) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await clients.admin.CreateForbiddenNumber(entry(note="n" * 501))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "forbidden_number.note" in (refused.value.details() or "")
    listed = await clients.admin.ListForbiddenNumbers(pb.ListForbiddenNumbersRequest(tenant_id="acme"))
    assert listed.total_size == 0
    # 500 characters count as characters, not bytes.
    created = await clients.admin.CreateForbiddenNumber(entry(note="禁" * 500))
    assert len(created.note) == 500
    with pytest.raises(grpc.aio.AioRpcError) as too_long:
        await clients.admin.UpdateForbiddenNumber(
            pb.UpdateForbiddenNumberRequest(
                forbidden_number=pb.ForbiddenNumber(tenant_id="acme", id=created.id, note="n" * 501)
            )
        )
    assert too_long.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    got = await clients.admin.GetForbiddenNumber(pb.GetForbiddenNumberRequest(tenant_id="acme", id=created.id))
    assert got.note == "禁" * 500


@pytest.mark.parametrize("tenant", ["", "t" * 65, "a b", "acme/other", "äcme", "acme\n"])
async def test_tenant_id_is_1_to_64_safe_characters(clients: Clients, tenant: str) -> None:
    calls = [
        ("forbidden_number.tenant_id", clients.admin.CreateForbiddenNumber(entry(tenant_id=tenant))),
        ("tenant_id", clients.admin.ListForbiddenNumbers(pb.ListForbiddenNumbersRequest(tenant_id=tenant))),
        ("tenant_id", clients.admin.ListAuditEvents(pb.ListAuditEventsRequest(tenant_id=tenant))),
        (
            "tenant_id",
            clients.screening.ScreenCall(
                pb.ScreenCallRequest(tenant_id=tenant, number="+14155550100", direction=pb.DIRECTION_INBOUND)
            ),
        ),
    ]
    for field, call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (refused.value.details() or "").startswith(field + " ")


async def test_tenant_id_of_64_characters_is_fine(clients: Clients) -> None:
    tenant = "T.a_b-9" + "x" * 57
    assert len(tenant) == 64
    created = await clients.admin.CreateForbiddenNumber(entry(tenant_id=tenant))
    assert created.tenant_id == tenant

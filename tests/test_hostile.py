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

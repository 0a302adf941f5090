"""Bulk import against a real database and real servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence

from screening.v1 import screening_pb2 as pb
from tests.support import Clients

TENANT = "acme"


def header(
    tenant: str = TENANT, mode: int = pb.IMPORT_MODE_UPSERT, source: str = "list.csv"
) -> pb.ImportForbiddenNumbersRequest:
    return pb.ImportForbiddenNumbersRequest(header=pb.ImportHeader(tenant_id=tenant, mode=mode, source_name=source))  # type: ignore[arg-type]


def rows(items: Iterable[pb.ImportRow]) -> pb.ImportForbiddenNumbersRequest:
    return pb.ImportForbiddenNumbersRequest(rows=pb.ImportRowBatch(rows=list(items)))


def row(line: int, number: str, call_type: int = pb.CALL_TYPE_BOTH, **fields: object) -> pb.ImportRow:
    return pb.ImportRow(line=line, number=number, call_type=call_type, **fields)  # type: ignore[arg-type]


def batched(items: Sequence[pb.ImportRow], size: int) -> list[pb.ImportForbiddenNumbersRequest]:
    return [rows(items[i : i + size]) for i in range(0, len(items), size)]


async def stream(
    messages: Iterable[pb.ImportForbiddenNumbersRequest],
) -> AsyncIterator[pb.ImportForbiddenNumbersRequest]:
    for m in messages:
        yield m


async def import_all(clients: Clients, messages: Iterable[pb.ImportForbiddenNumbersRequest]) -> pb.ImportJob:
    return await clients.admin.ImportForbiddenNumbers(stream(messages))


async def export(clients: Clients, tenant: str = TENANT, **filters: object) -> list[pb.ForbiddenNumber]:
    request = pb.ExportForbiddenNumbersRequest(tenant_id=tenant, filters=pb.ForbiddenNumberFilters(**filters))  # type: ignore[arg-type]
    return [e async for e in clients.admin.ExportForbiddenNumbers(request)]


async def test_small_import(clients: Clients) -> None:
    job = await import_all(clients, [header(), rows([row(2, "+1 415 555 0100"), row(3, "abc")])])
    assert job.state == pb.IMPORT_JOB_STATE_SUCCEEDED, job
    assert (job.total_rows, job.created_count, job.failed_count) == (2, 1, 1)
    print(job)

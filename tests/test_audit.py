"""The audit trail: one event per successful change, in the change's own transaction."""

from __future__ import annotations

import re

import asyncpg
import grpc
import pytest
from google.protobuf import field_mask_pb2

from screening.app.service import App
from screening.v1 import screening_pb2 as pb
from tests.support import Clients

RID = (("x-request-id", "req-42"),)


def new(number: str, tenant: str = "acme") -> pb.CreateForbiddenNumberRequest:
    return pb.CreateForbiddenNumberRequest(
        forbidden_number=pb.ForbiddenNumber(tenant_id=tenant, number=number, call_type=pb.CALL_TYPE_BOTH)
    )


async def events(clients: Clients, tenant: str = "acme", **filters: str) -> list[pb.AuditEvent]:
    found: list[pb.AuditEvent] = []
    token = ""
    while True:
        page = await clients.admin.ListAuditEvents(
            pb.ListAuditEventsRequest(tenant_id=tenant, page_size=2, page_token=token, **filters)
        )
        found += page.audit_events
        token = page.next_page_token
        if not token:
            return found


async def stored_events(server: App) -> int:
    conn = await asyncpg.connect(server.dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM audit_events"))
    finally:
        await conn.close()


async def test_create_update_delete_each_write_exactly_one_event(clients: Clients, server: App) -> None:
    created = await clients.admin.CreateForbiddenNumber(new("+14155550100"), metadata=RID)
    updated = await clients.admin.UpdateForbiddenNumber(
        pb.UpdateForbiddenNumberRequest(
            forbidden_number=pb.ForbiddenNumber(tenant_id="acme", id=created.id, note="fraud", etag=created.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["note"]),
        ),
        metadata=RID,
    )
    await clients.admin.DeleteForbiddenNumber(
        pb.DeleteForbiddenNumberRequest(tenant_id="acme", id=created.id), metadata=(("x-request-id", "req-43"),)
    )
    trail = await events(clients)
    assert [(e.action, e.resource_id, e.actor) for e in trail] == [
        ("delete", created.id, "anonymous"),
        ("update", created.id, "anonymous"),
        ("create", created.id, "anonymous"),
    ]
    delete, update, create = trail
    assert [e.request_id for e in trail] == ["req-43", "req-42", "req-42"]
    assert all(e.tenant_id == "acme" and e.create_time.seconds > 0 and e.id for e in trail)
    assert not create.HasField("before") and create.after.number == "+14155550100"
    assert (update.before.note, update.after.note) == ("", "fraud")
    assert (update.before.etag, update.after.etag) == (created.etag, updated.etag)
    assert delete.before.note == "fraud" and not delete.HasField("after")
    assert await stored_events(server) == 3


async def test_bulk_enable_writes_one_event_per_changed_entry(clients: Clients) -> None:
    ids = [(await clients.admin.CreateForbiddenNumber(new(f"+1415555010{i}"))).id for i in range(3)]
    first = await clients.admin.SetForbiddenNumbersEnabled(
        pb.SetForbiddenNumbersEnabledRequest(tenant_id="acme", ids=ids[:2], enabled=False)
    )
    second = await clients.admin.SetForbiddenNumbersEnabled(
        pb.SetForbiddenNumbersEnabledRequest(tenant_id="acme", ids=ids, enabled=False)
    )
    assert (first.updated_count, second.updated_count) == (2, 3)
    disables = await events(clients, action="disable")
    # The second call changed only the third entry.
    assert sorted(e.resource_id for e in disables) == sorted(ids)
    assert all(e.before.enabled and not e.after.enabled for e in disables)
    # Without x-request-id the server makes one, shared by the events of one call.
    request_ids = {e.resource_id: e.request_id for e in disables}
    assert all(re.fullmatch(r"[0-9a-f]{32}", r) for r in request_ids.values())
    assert request_ids[ids[0]] == request_ids[ids[1]] != request_ids[ids[2]]


async def failing_changes(clients: Clients) -> tuple[list[tuple[str, grpc.StatusCode]], list[pb.ForbiddenNumber]]:
    """Run every kind of refused change, one after another; return (what, code) for each and the entries."""
    a = await clients.admin.CreateForbiddenNumber(new("+14155550100"))
    b = await clients.admin.CreateForbiddenNumber(new("+14155550101"))
    stale = a.etag + "0"
    attempts = {
        "duplicate create": lambda: clients.admin.CreateForbiddenNumber(new("+1 415 555 0100")),
        "update into a duplicate": lambda: clients.admin.UpdateForbiddenNumber(
            pb.UpdateForbiddenNumberRequest(
                forbidden_number=pb.ForbiddenNumber(tenant_id="acme", id=b.id, number="+14155550100")
            )
        ),
        "update with a stale etag": lambda: clients.admin.UpdateForbiddenNumber(
            pb.UpdateForbiddenNumberRequest(
                forbidden_number=pb.ForbiddenNumber(tenant_id="acme", id=a.id, note="x", etag=stale)
            )
        ),
        "invalid update": lambda: clients.admin.UpdateForbiddenNumber(
            pb.UpdateForbiddenNumberRequest(
                forbidden_number=pb.ForbiddenNumber(tenant_id="acme", id=a.id, note="x" * 501)
            )
        ),
        "delete with a stale etag": lambda: clients.admin.DeleteForbiddenNumber(
            pb.DeleteForbiddenNumberRequest(tenant_id="acme", id=a.id, etag=stale)
        ),
        "delete of an unknown entry": lambda: clients.admin.DeleteForbiddenNumber(
            pb.DeleteForbiddenNumberRequest(tenant_id="acme", id="00000000-0000-0000-0000-000000000000")
        ),
        "bulk disable with one unknown id": lambda: clients.admin.SetForbiddenNumbersEnabled(
            pb.SetForbiddenNumbersEnabledRequest(
                tenant_id="acme", ids=[a.id, "00000000-0000-0000-0000-000000000000"], enabled=False
            )
        ),
        "cross-tenant delete": lambda: clients.admin.DeleteForbiddenNumber(
            pb.DeleteForbiddenNumberRequest(tenant_id="globex", id=a.id)
        ),
    }
    results = []
    for what, call in attempts.items():
        try:
            await call()
        except grpc.aio.AioRpcError as exc:
            results.append((what, exc.code()))
        else:
            results.append((what, grpc.StatusCode.OK))
    return results, [a, b]


async def test_refused_changes_leave_no_event_and_no_change(clients: Clients, server: App) -> None:
    outcome, entries = await failing_changes(clients)
    results = dict(outcome)
    assert results == {
        "duplicate create": grpc.StatusCode.ALREADY_EXISTS,
        "update into a duplicate": grpc.StatusCode.ALREADY_EXISTS,
        "update with a stale etag": grpc.StatusCode.ABORTED,
        "invalid update": grpc.StatusCode.INVALID_ARGUMENT,
        "delete with a stale etag": grpc.StatusCode.ABORTED,
        "delete of an unknown entry": grpc.StatusCode.NOT_FOUND,
        "bulk disable with one unknown id": grpc.StatusCode.NOT_FOUND,
        "cross-tenant delete": grpc.StatusCode.NOT_FOUND,
    }
    # Only the two creates that set the scene.
    assert [e.action for e in await events(clients)] == ["create", "create"]
    assert await stored_events(server) == 2
    listed = await clients.admin.ListForbiddenNumbers(pb.ListForbiddenNumbersRequest(tenant_id="acme"))
    # Unchanged, etags included.
    assert list(listed.forbidden_numbers) == entries


async def test_a_change_whose_event_cannot_be_written_is_not_made(clients: Clients, server: App) -> None:
    conn = await asyncpg.connect(server.dsn)
    try:
        await conn.execute("ALTER TABLE audit_events ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await clients.admin.CreateForbiddenNumber(new("+14155550100"))
        assert failed.value.code() == grpc.StatusCode.INTERNAL
        assert await conn.fetchval("SELECT count(*) FROM forbidden_numbers") == 0
    finally:
        await conn.close()


async def test_audit_listing_filters_and_keeps_tenants_apart(clients: Clients) -> None:
    a = await clients.admin.CreateForbiddenNumber(new("+14155550100"))
    b = await clients.admin.CreateForbiddenNumber(new("+14155550101"))
    other = await clients.admin.CreateForbiddenNumber(new("+14155550100", tenant="globex"))
    await clients.admin.DeleteForbiddenNumber(pb.DeleteForbiddenNumberRequest(tenant_id="acme", id=a.id))
    assert [e.action for e in await events(clients, resource_id=a.id)] == ["delete", "create"]
    assert [e.resource_id for e in await events(clients, action="create")] == [b.id, a.id]
    assert len(await events(clients, actor="anonymous")) == 3
    assert await events(clients, actor="someone-else") == []
    assert [e.resource_id for e in await events(clients, tenant="globex")] == [other.id]
    # Another tenant's id is not found through this tenant.
    assert await events(clients, tenant="globex", resource_id=a.id) == []
    page = await clients.admin.ListAuditEvents(pb.ListAuditEventsRequest(tenant_id="acme", page_size=1))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await clients.admin.ListAuditEvents(
            pb.ListAuditEventsRequest(tenant_id="globex", page_size=1, page_token=page.next_page_token)
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_entries_of_another_tenant_are_not_found_by_id(clients: Clients) -> None:
    """Below the interceptor every query filters by tenant, even for a caller allowed everywhere."""
    mine = await clients.admin.CreateForbiddenNumber(new("+14155550100"))
    calls = [
        clients.admin.GetForbiddenNumber(pb.GetForbiddenNumberRequest(tenant_id="globex", id=mine.id)),
        clients.admin.UpdateForbiddenNumber(
            pb.UpdateForbiddenNumberRequest(
                forbidden_number=pb.ForbiddenNumber(tenant_id="globex", id=mine.id, note="taken over")
            )
        ),
        clients.admin.SetForbiddenNumbersEnabled(
            pb.SetForbiddenNumbersEnabledRequest(tenant_id="globex", ids=[mine.id], enabled=False)
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    got = await clients.admin.GetForbiddenNumber(pb.GetForbiddenNumberRequest(tenant_id="acme", id=mine.id))
    assert (got.note, got.enabled, got.etag) == ("", True, mine.etag)
    assert (
        await clients.admin.ListForbiddenNumbers(pb.ListForbiddenNumbersRequest(tenant_id="globex"))
    ).total_size == 0

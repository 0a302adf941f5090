"""ForbiddenNumberAdmin CRUD over real gRPC against a real database."""

import base64
import time

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from screening.v1 import screening_pb2 as pb
from tests.support import Clients, code_of, create, expire

A = "acme"


async def fails(call, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert code_of(caught.value) == code, caught.value.details()
    return caught.value


def field_violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    status = rpc_status.from_call(error)
    assert status is not None
    found = []
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found += [(v.field, v.description) for v in bad.field_violations]
    return found


async def test_create_get_roundtrip(clients: Clients) -> None:
    expire = timestamp_pb2.Timestamp(seconds=4_102_444_800)
    created = await create(
        clients, "+44 20 7946 0958", call_type=pb.CALL_TYPE_OUTBOUND, note="spam", expire_time=expire
    )
    assert created.id and created.etag
    assert (created.number, created.match_kind, created.call_type, created.enabled, created.note) == (
        "+442079460958",
        pb.MATCH_KIND_EXACT,
        pb.CALL_TYPE_OUTBOUND,
        True,
        "spam",
    )
    assert created.expire_time == expire
    assert created.create_time.seconds > 0 and created.update_time == created.create_time
    got = await clients.admin.GetForbiddenNumber(pb.GetForbiddenNumberRequest(tenant_id=A, id=created.id))
    assert got == created


async def test_create_disabled(clients: Clients) -> None:
    created = await create(clients, "+15550100", enabled=False)
    assert created.HasField("enabled") and created.enabled is False


async def test_duplicate_is_already_exists_per_kind(clients: Clients) -> None:
    await create(clients, "+15550100")
    error = await fails(create(clients, "+1 555 0100"), grpc.StatusCode.ALREADY_EXISTS)
    assert "+15550100" in error.details()
    await create(clients, "+15550100", match_kind=pb.MATCH_KIND_PREFIX)  # other kind: allowed
    await create(clients, "+15550100", tenant="globex")  # other tenant: allowed


async def test_deleted_number_can_be_created_again(clients: Clients) -> None:
    first = await create(clients, "+15550100")
    await clients.admin.DeleteForbiddenNumber(pb.DeleteForbiddenNumberRequest(tenant_id=A, id=first.id))
    second = await create(clients, "+15550100")
    assert second.id != first.id


@pytest.mark.parametrize(
    ("fields", "field", "value"),
    [
        ({"tenant_id": "", "number": "+1", "call_type": pb.CALL_TYPE_BOTH}, "forbidden_number.tenant_id", "''"),
        ({"tenant_id": "a b", "number": "+1", "call_type": pb.CALL_TYPE_BOTH}, "forbidden_number.tenant_id", "'a b'"),
        ({"tenant_id": A, "number": "", "call_type": pb.CALL_TYPE_BOTH}, "forbidden_number.number", "''"),
        ({"tenant_id": A, "number": "call me", "call_type": pb.CALL_TYPE_BOTH}, "forbidden_number.number", "'call me'"),
        ({"tenant_id": A, "number": "+1"}, "forbidden_number.call_type", "0"),
        ({"tenant_id": A, "number": "+1", "call_type": 7}, "forbidden_number.call_type", "7"),
        ({"tenant_id": A, "number": "+1", "call_type": 3, "match_kind": 5}, "forbidden_number.match_kind", "5"),
        ({"tenant_id": A, "number": "+1", "call_type": 3, "note": "x" * 501}, "forbidden_number.note", "'xxx"),
    ],
)
async def test_create_rejects_bad_input_naming_field_and_value(
    clients: Clients, fields: dict, field: str, value: str
) -> None:
    error = await fails(
        clients.admin.CreateForbiddenNumber(
            pb.CreateForbiddenNumberRequest(forbidden_number=pb.ForbiddenNumber(**fields))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert error.details().startswith(f"{field} {value}")
    assert field_violations(error)[0][0] == field
    listed = await clients.admin.ListForbiddenNumbers(pb.ListForbiddenNumbersRequest(tenant_id=A))
    assert listed.total_size == 0


async def test_get_unknown_is_not_found(clients: Clients) -> None:
    entry = await create(clients, "+15550100")
    for tenant, entry_id in ((A, "no-such-id"), (A, "7f1c0a52-1111-4c1e-9a64-2f0d4c1b0000"), ("globex", entry.id)):
        error = await fails(
            clients.admin.GetForbiddenNumber(pb.GetForbiddenNumberRequest(tenant_id=tenant, id=entry_id)),
            grpc.StatusCode.NOT_FOUND,
        )
        assert entry_id in error.details()
    await fails(
        clients.admin.GetForbiddenNumber(pb.GetForbiddenNumberRequest(tenant_id=A, id="")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_update_with_mask_changes_only_masked_fields(clients: Clients) -> None:
    entry = await create(clients, "+15550100", note="before", call_type=pb.CALL_TYPE_INBOUND)
    updated = await clients.admin.UpdateForbiddenNumber(
        pb.UpdateForbiddenNumberRequest(
            forbidden_number=pb.ForbiddenNumber(tenant_id=A, id=entry.id, note="after", call_type=pb.CALL_TYPE_BOTH),
            update_mask=field_mask_pb2.FieldMask(paths=["note"]),
        )
    )
    assert (updated.note, updated.call_type, updated.number) == ("after", pb.CALL_TYPE_INBOUND, "+15550100")
    assert updated.etag != entry.etag
    assert updated.create_time == entry.create_time
    assert updated.update_time.ToNanoseconds() >= entry.update_time.ToNanoseconds()


async def test_update_without_mask_sets_populated_fields(clients: Clients) -> None:
    entry = await create(clients, "+15550100", note="keep")
    updated = await clients.admin.UpdateForbiddenNumber(
        pb.UpdateForbiddenNumberRequest(
            forbidden_number=pb.ForbiddenNumber(tenant_id=A, id=entry.id, number="+1 555 0199", enabled=False)
        )
    )
    assert (updated.number, updated.enabled, updated.note) == ("+15550199", False, "keep")


async def test_update_to_existing_number_is_already_exists_and_changes_nothing(clients: Clients) -> None:
    await create(clients, "+15550100")
    other = await create(clients, "+15550101")
    await fails(
        clients.admin.UpdateForbiddenNumber(
            pb.UpdateForbiddenNumberRequest(
                forbidden_number=pb.ForbiddenNumber(tenant_id=A, id=other.id, number="+15550100"),
                update_mask=field_mask_pb2.FieldMask(paths=["number"]),
            )
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    got = await clients.admin.GetForbiddenNumber(pb.GetForbiddenNumberRequest(tenant_id=A, id=other.id))
    assert got == other


async def test_stale_etag_is_aborted(clients: Clients) -> None:
    entry = await create(clients, "+15550100")

    def update(etag: str, note: str) -> object:
        return clients.admin.UpdateForbiddenNumber(
            pb.UpdateForbiddenNumberRequest(
                forbidden_number=pb.ForbiddenNumber(tenant_id=A, id=entry.id, note=note, etag=etag),
                update_mask=field_mask_pb2.FieldMask(paths=["note"]),
            )
        )

    first = await update(entry.etag, "one")
    error = await fails(update(entry.etag, "two"), grpc.StatusCode.ABORTED)
    assert entry.etag in error.details()
    await update(first.etag, "three")
    await update("", "four")  # no etag: unconditional
    await fails(
        clients.admin.DeleteForbiddenNumber(pb.DeleteForbiddenNumberRequest(tenant_id=A, id=entry.id, etag=first.etag)),
        grpc.StatusCode.ABORTED,
    )


async def test_update_rejects_unknown_mask_path_and_bad_values(clients: Clients) -> None:
    entry = await create(clients, "+15550100")
    for paths, fields, field in (
        (["id"], {}, "update_mask"),
        (["tenant_id"], {}, "update_mask"),
        (["call_type"], {"call_type": 0}, "forbidden_number.call_type"),
        (["number"], {"number": "1-800-FLOWERS"}, "forbidden_number.number"),
    ):
        error = await fails(
            clients.admin.UpdateForbiddenNumber(
                pb.UpdateForbiddenNumberRequest(
                    forbidden_number=pb.ForbiddenNumber(tenant_id=A, id=entry.id, **fields),
                    update_mask=field_mask_pb2.FieldMask(paths=paths),
                )
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert error.details().startswith(field)
    await fails(
        clients.admin.UpdateForbiddenNumber(
            pb.UpdateForbiddenNumberRequest(forbidden_number=pb.ForbiddenNumber(tenant_id=A, id="nope", note="x"))
        ),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_delete_then_not_found(clients: Clients) -> None:
    entry = await create(clients, "+15550100")
    await clients.admin.DeleteForbiddenNumber(pb.DeleteForbiddenNumberRequest(tenant_id=A, id=entry.id))
    for call in (
        clients.admin.GetForbiddenNumber(pb.GetForbiddenNumberRequest(tenant_id=A, id=entry.id)),
        clients.admin.DeleteForbiddenNumber(pb.DeleteForbiddenNumberRequest(tenant_id=A, id=entry.id)),
    ):
        await fails(call, grpc.StatusCode.NOT_FOUND)


async def test_list_pages_through_everything_in_order(clients: Clients) -> None:
    numbers = [f"+1555{i:04d}" for i in range(25)]
    for n in reversed(numbers):
        await create(clients, n)
    await create(clients, "+15550000", tenant="globex")
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await clients.admin.ListForbiddenNumbers(
            pb.ListForbiddenNumbersRequest(tenant_id=A, page_size=10, page_token=token)
        )
        assert page.total_size == 25
        seen += [e.number for e in page.forbidden_numbers]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == numbers and pages == 3


async def test_list_page_size_default_and_cap(clients: Clients) -> None:
    for i in range(3):
        await create(clients, f"+1666{i}")
    page = await clients.admin.ListForbiddenNumbers(pb.ListForbiddenNumbersRequest(tenant_id=A, page_size=5000))
    assert len(page.forbidden_numbers) == 3 and not page.next_page_token
    await fails(
        clients.admin.ListForbiddenNumbers(pb.ListForbiddenNumbersRequest(tenant_id=A, page_size=-1)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_list_filters(clients: Clients) -> None:
    a = await create(clients, "+4410", call_type=pb.CALL_TYPE_INBOUND)
    b = await create(clients, "+4420", call_type=pb.CALL_TYPE_OUTBOUND, enabled=False)
    c = await create(clients, "+44", match_kind=pb.MATCH_KIND_PREFIX)
    d = await create(clients, "+3310")

    async def ids(**filters) -> set[str]:
        page = await clients.admin.ListForbiddenNumbers(
            pb.ListForbiddenNumbersRequest(tenant_id=A, filters=pb.ForbiddenNumberFilters(**filters))
        )
        assert page.total_size == len(page.forbidden_numbers)
        return {e.id for e in page.forbidden_numbers}

    assert await ids() == {a.id, b.id, c.id, d.id}
    assert await ids(enabled=False) == {b.id}
    assert await ids(enabled=True) == {a.id, c.id, d.id}
    assert await ids(call_type=pb.CALL_TYPE_INBOUND) == {a.id}
    assert await ids(match_kind=pb.MATCH_KIND_PREFIX) == {c.id}
    assert await ids(number_prefix="+44") == {a.id, b.id, c.id}
    assert await ids(number_prefix="+44 1") == {a.id}
    assert await ids(number_prefix="+44", call_type=pb.CALL_TYPE_BOTH) == {c.id}


async def test_status_is_reported_and_filtered_and_query_searches_number_and_note(clients: Clients) -> None:
    past = timestamp_pb2.Timestamp(seconds=int(time.time()) - 60)
    future = timestamp_pb2.Timestamp(seconds=int(time.time()) + 3600)
    active = await create(clients, "+4930111222", note="Harasses AGENTS at night", expire_time=future)
    disabled = await expire(clients, await create(clients, "+4930111333", enabled=False))
    expired = await expire(clients, await create(clients, "+4930999", note="ticket 4930"))
    refused = await fails(create(clients, "+4930998", expire_time=past), grpc.StatusCode.INVALID_ARGUMENT)
    assert "is in the past" in refused.details() and field_violations(refused)[0][0] == "forbidden_number.expire_time"
    assert [e.status for e in (active, disabled, expired)] == [
        pb.ENTRY_STATUS_ACTIVE,
        pb.ENTRY_STATUS_DISABLED,
        pb.ENTRY_STATUS_EXPIRED,
    ]

    async def ids(**filters) -> set[str]:
        page = await clients.admin.ListForbiddenNumbers(
            pb.ListForbiddenNumbersRequest(tenant_id=A, filters=pb.ForbiddenNumberFilters(**filters))
        )
        assert page.total_size == len(page.forbidden_numbers)
        return {e.id for e in page.forbidden_numbers}

    assert await ids(status=pb.ENTRY_STATUS_ACTIVE) == {active.id}
    assert await ids(status=pb.ENTRY_STATUS_DISABLED) == {disabled.id}
    assert await ids(status=pb.ENTRY_STATUS_EXPIRED) == {expired.id}
    assert await ids(query="111") == {active.id, disabled.id}
    assert await ids(query="agents") == {active.id}
    assert await ids(query="4930") == {active.id, disabled.id, expired.id}  # digits in numbers, text in a note
    assert await ids(query="ticket") == {expired.id}
    assert await ids(query="4930 111-3") == {disabled.id}  # written forms: the digits 49301113, together
    assert await ids(query="4930 111-4") == set()
    assert await ids(query="%") == set()  # no pattern syntax
    fetched = await clients.admin.GetForbiddenNumber(pb.GetForbiddenNumberRequest(tenant_id=A, id=expired.id))
    assert fetched.status == pb.ENTRY_STATUS_EXPIRED
    for bad in (pb.ForbiddenNumberFilters(status=9), pb.ForbiddenNumberFilters(query="x" * 101)):
        error = await fails(
            clients.admin.ListForbiddenNumbers(pb.ListForbiddenNumbersRequest(tenant_id=A, filters=bad)),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert field_violations(error)[0][0] in ("filters.status", "filters.query")


async def test_page_token_is_bound_to_its_query(clients: Clients) -> None:
    for i in range(3):
        await create(clients, f"+1777{i}")
    page = await clients.admin.ListForbiddenNumbers(pb.ListForbiddenNumbersRequest(tenant_id=A, page_size=1))
    for request in (
        pb.ListForbiddenNumbersRequest(tenant_id="globex", page_token=page.next_page_token),
        pb.ListForbiddenNumbersRequest(
            tenant_id=A, page_token=page.next_page_token, filters=pb.ForbiddenNumberFilters(enabled=True)
        ),
        pb.ListForbiddenNumbersRequest(tenant_id=A, page_token="garbage!"),
    ):
        error = await fails(clients.admin.ListForbiddenNumbers(request), grpc.StatusCode.INVALID_ARGUMENT)
        assert error.details().startswith("page_token")


async def test_set_enabled_is_all_or_nothing(clients: Clients) -> None:
    a = await create(clients, "+1888")
    b = await create(clients, "+1889")
    done = await clients.admin.SetForbiddenNumbersEnabled(
        pb.SetForbiddenNumbersEnabledRequest(tenant_id=A, ids=[a.id, b.id, a.id], enabled=False)
    )
    assert done.updated_count == 2
    error = await fails(
        clients.admin.SetForbiddenNumbersEnabled(
            pb.SetForbiddenNumbersEnabledRequest(tenant_id=A, ids=[a.id, "missing"], enabled=True)
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    assert "missing" in error.details()
    got = await clients.admin.GetForbiddenNumber(pb.GetForbiddenNumberRequest(tenant_id=A, id=a.id))
    assert got.enabled is False
    await fails(
        clients.admin.SetForbiddenNumbersEnabled(pb.SetForbiddenNumbersEnabledRequest(tenant_id=A, enabled=True)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_export_streams_matching_entries_ordered(clients: Clients) -> None:
    for n in ("+1300", "+1100", "+1200"):
        await create(clients, n)
    await create(clients, "+1250", enabled=False)
    got = [
        e.number
        async for e in clients.admin.ExportForbiddenNumbers(
            pb.ExportForbiddenNumbersRequest(tenant_id=A, filters=pb.ForbiddenNumberFilters(enabled=True))
        )
    ]
    assert got == ["+1100", "+1200", "+1300"]


async def test_audit_trail_records_each_change_once(clients: Clients) -> None:
    entry = await create(clients, "+1999")
    await clients.admin.UpdateForbiddenNumber(
        pb.UpdateForbiddenNumberRequest(
            forbidden_number=pb.ForbiddenNumber(tenant_id=A, id=entry.id, note="n"),
            update_mask=field_mask_pb2.FieldMask(paths=["note"]),
        )
    )
    await fails(create(clients, "+1999"), grpc.StatusCode.ALREADY_EXISTS)  # rolled back: no event
    await clients.admin.DeleteForbiddenNumber(pb.DeleteForbiddenNumberRequest(tenant_id=A, id=entry.id))
    events = await clients.admin.ListAuditEvents(pb.ListAuditEventsRequest(tenant_id=A))
    assert [(e.action, e.resource_id, e.actor) for e in events.audit_events] == [
        ("delete", entry.id, "anonymous"),
        ("update", entry.id, "anonymous"),
        ("create", entry.id, "anonymous"),
    ]
    update = events.audit_events[1]
    assert (update.before.note, update.after.note) == ("", "n")
    first = await clients.admin.ListAuditEvents(pb.ListAuditEventsRequest(tenant_id=A, page_size=2))
    rest = await clients.admin.ListAuditEvents(
        pb.ListAuditEventsRequest(tenant_id=A, page_size=2, page_token=first.next_page_token)
    )
    assert [e.action for e in rest.audit_events] == ["create"] and not rest.next_page_token


async def test_replica_status(clients: Clients) -> None:
    await create(clients, "+1")
    status = await clients.admin.GetReplicaStatus(pb.GetReplicaStatusRequest())
    assert status.serving and status.data_version > 0 and status.last_sync_time.seconds > 0


async def test_forged_or_tampered_page_tokens_are_invalid_argument(clients: Clients, dsn: str) -> None:
    """Page tokens are signed with a key kept in the database: a token changed by a client never reaches a query."""
    import asyncpg

    from screening.domain.model import Filters
    from screening.domain.paging import PageTokens, scope

    for i in range(3):
        await create(clients, f"+1777{i}")
    page = await clients.admin.ListForbiddenNumbers(pb.ListForbiddenNumbersRequest(tenant_id=A, page_size=1))
    real = page.next_page_token
    raw = base64.urlsafe_b64decode(real + "=" * (-len(real) % 4))
    flipped = base64.urlsafe_b64encode(raw[:-3] + bytes([raw[-3] ^ 1]) + raw[-2:]).decode().rstrip("=")
    # Made up with any other key, even a well-formed position: refused.
    guessed = PageTokens(b"k" * 32).encode(scope(A, Filters()), ["+17770", 1])
    conn = await asyncpg.connect(dsn)
    try:
        key = bytes(await conn.fetchval("SELECT key FROM service_keys WHERE name = 'page_tokens'"))
    finally:
        await conn.close()
    # Even with our key, positions that do not fit the query's columns are refused.
    ours = PageTokens(key)
    query = scope(A, Filters())
    shapes = [ours.encode(query, p) for p in (["+1", "x"], ["+1"], [1, 1], ["+1\x00", 1], ["+1", 2**70])]
    for token in [flipped, guessed, real[:-2], real + "AA", "garbage!", "x" * 5000, *shapes]:
        error = await fails(
            clients.admin.ListForbiddenNumbers(pb.ListForbiddenNumbersRequest(tenant_id=A, page_token=token)),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert error.details().startswith("page_token") and len(error.details()) < 1000
    for token in (guessed, flipped):
        for call in (
            clients.admin.ListAuditEvents(pb.ListAuditEventsRequest(tenant_id=A, page_token=token)),
            clients.admin.ListImportJobs(pb.ListImportJobsRequest(tenant_id=A, page_token=token)),
            clients.admin.ListTenants(pb.ListTenantsRequest(page_token=token)),
        ):
            await fails(call, grpc.StatusCode.INVALID_ARGUMENT)
    # The real one still works, on any replica: they share the key.
    second = await clients.admin.ListForbiddenNumbers(pb.ListForbiddenNumbersRequest(tenant_id=A, page_token=real))
    assert [e.number for e in second.forbidden_numbers] == ["+17771", "+17772"]

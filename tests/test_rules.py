"""Screening rules beyond single entries: settings, regions, withheld callers, emergency numbers, shared lists."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from screening.app.service import App
from screening.v1 import screening_pb2 as pb
from screening.v1 import screening_pb2_grpc as pb_grpc
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

A = "acme"
IN, OUT = pb.DIRECTION_INBOUND, pb.DIRECTION_OUTBOUND
BLOCK, ALLOW = pb.VERDICT_BLOCK, pb.VERDICT_ALLOW


async def settings(
    clients: Clients, tenant: str = A, paths: list[str] | None = None, **fields: object
) -> pb.TenantSettings:
    request = pb.UpdateTenantSettingsRequest(settings=pb.TenantSettings(tenant_id=tenant, **fields))  # type: ignore[arg-type]
    if paths is not None:
        request.update_mask.paths.extend(paths)
    return await clients.admin.UpdateTenantSettings(request)


async def call(
    clients: Clients, number: str, direction: int = IN, tenant: str = A, **fields: object
) -> pb.ScreenCallResponse:
    return await clients.screening.ScreenCall(
        pb.ScreenCallRequest(tenant_id=tenant, number=number, direction=direction, **fields)  # type: ignore[arg-type]
    )


async def test_settings_are_stored_audited_and_conditional(clients: Clients) -> None:
    fresh = await clients.admin.GetTenantSettings(pb.GetTenantSettingsRequest(tenant_id=A))
    assert (fresh.etag, fresh.region, fresh.withheld_policy) == ("", "", pb.WITHHELD_POLICY_ALLOW)
    first = await settings(clients, display_name="ACME Insurance", region="us")
    assert (first.display_name, first.region, first.etag) == ("ACME Insurance", "US", "1")
    second = await settings(clients, paths=["withheld_policy"], withheld_policy=pb.WITHHELD_POLICY_BLOCK, etag="1")
    assert (second.display_name, second.withheld_policy, second.etag) == (
        "ACME Insurance",
        pb.WITHHELD_POLICY_BLOCK,
        "2",
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await settings(clients, paths=["display_name"], display_name="stale", etag="1")
    assert code_of(caught.value) == grpc.StatusCode.ABORTED
    for bad, field in (
        ({"region": "XX"}, "settings.region"),
        ({"subscribed_lists": ["not-a-list"]}, "settings.subscribed_lists[0]"),
        ({"display_name": "x" * 201}, "settings.display_name"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await settings(clients, **bad)
        assert code_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT and field in (caught.value.details() or "")
    events = await clients.admin.ListAuditEvents(pb.ListAuditEventsRequest(tenant_id=A, resource_id=A))
    assert [(e.action, list(e.changed_fields)) for e in events.audit_events] == [
        ("settings", ["withheld_policy"]),
        ("settings", ["display_name", "region"]),
    ]
    await create(clients, "+14155550100")
    listed = await clients.admin.ListTenants(pb.ListTenantsRequest())
    assert [(t.tenant_id, t.display_name) for t in listed.tenants] == [(A, "ACME Insurance")]


async def test_a_tenant_region_reads_its_national_numbers_when_writing_and_screening(clients: Clients) -> None:
    await settings(clients, region="US")
    await wait_until(lambda: _region_applied(clients), within=2)
    entry = await create(clients, "(415) 555-0102")
    assert entry.number == "+14155550102"
    answer = await until_verdict(clients, "415 555 0102", BLOCK)
    assert answer.normalized_number == "+14155550102" and answer.matched_id == entry.id
    other = await create(clients, "(415) 555-0102", tenant="globex")  # no region: bare digits
    assert other.number == "4155550102"


async def _region_applied(clients: Clients) -> bool:
    answer = await call(clients, "415 555 0100")
    return answer.normalized_number == "+14155550100"


async def test_a_region_change_is_reviewed_and_converted_so_nothing_stops_blocking(clients: Clients) -> None:
    old = await create(clients, "4155550102")  # written before the tenant had a region
    await create(clients, "10086")  # a short code: no region reads it as another number
    clash = await create(clients, "4155550103")
    await create(clients, "+14155550103")
    review = await clients.admin.ReviewRegionChange(pb.ReviewRegionChangeRequest(tenant_id=A, region="US"))
    assert [(c.entry.id, c.number_in_region) for c in review.changes] == [
        (old.id, "+14155550102"),
        (clash.id, "+14155550103"),
    ]
    assert (review.total_size, review.conflicts) == (2, 1)
    done = await clients.admin.ConvertNumbersToRegion(pb.ConvertNumbersToRegionRequest(tenant_id=A, region="US"))
    assert (done.converted_count, done.conflicts, done.settings.region) == (1, 1, "US")
    # The number as a switch sends it, nationally: still blocked after the region changed.
    await until_verdict(clients, "4155550102", BLOCK, matched_id=old.id)
    events = await clients.admin.ListAuditEvents(pb.ListAuditEventsRequest(tenant_id=A, resource_id=old.id))
    assert (events.audit_events[0].action, list(events.audit_events[0].changed_fields)) == ("update", ["number"])


async def test_withheld_callers_follow_the_tenant_policy_on_inbound_calls(clients: Clients) -> None:
    await create(clients, "+14155550100")
    for number, withheld in (("", False), ("", True), ("+14155550199", True)):
        answer = await call(clients, number, caller_withheld=withheld)
        assert (answer.verdict, answer.reason) == (ALLOW, pb.SCREEN_REASON_WITHHELD)
    await settings(clients, withheld_policy=pb.WITHHELD_POLICY_BLOCK)

    async def blocked() -> bool:
        return (await call(clients, "", caller_withheld=True)).verdict == BLOCK

    await wait_until(blocked, within=2)
    assert (await call(clients, "")).reason == pb.SCREEN_REASON_WITHHELD
    # Outbound calls have no caller to withhold: the policy is for inbound ones.
    assert (await call(clients, "+14155550100", OUT, caller_withheld=True)).verdict == BLOCK
    answer = await call(clients, "+14155550100")
    assert (answer.verdict, answer.reason, answer.decided_id) == (
        BLOCK,
        pb.SCREEN_REASON_BLOCK_ENTRY,
        answer.matched_id,
    )


async def test_emergency_numbers_are_never_blocked_on_outbound_calls(clients: Clients) -> None:
    await create(clients, "911", call_type=pb.CALL_TYPE_BOTH)
    await create(clients, "112", call_type=pb.CALL_TYPE_BOTH)
    await create(clients, "9", match_kind=pb.MATCH_KIND_PREFIX)
    await until_verdict(clients, "911", BLOCK)  # inbound: an entry like any other
    await until_verdict(clients, "9123", BLOCK)  # the prefix, created last, has reached the index too
    for number in ("911", "112"):
        answer = await call(clients, number, OUT)
        assert (answer.verdict, answer.reason) == (ALLOW, pb.SCREEN_REASON_EMERGENCY_NUMBER)
        assert answer.matched_id == ""
    assert (await call(clients, "9123", OUT)).verdict == BLOCK  # not an emergency number: the prefix blocks
    # With a region, that region's emergency numbers: 110 is China's police, not the US's.
    await settings(clients, region="CN")
    await create(clients, "110", call_type=pb.CALL_TYPE_OUTBOUND)

    async def cn() -> bool:
        return (await call(clients, "110", OUT)).reason == pb.SCREEN_REASON_EMERGENCY_NUMBER

    await wait_until(cn, within=2)
    batch = await clients.screening.ScreenNumbers(
        pb.ScreenNumbersRequest(tenant_id=A, direction=OUT, numbers=["110", "9123"])
    )
    assert [r.verdict for r in batch.results] == [ALLOW, BLOCK]


async def test_shared_lists_screen_their_subscribers_and_the_most_specific_entry_decides(clients: Clients) -> None:
    national = await create(clients, "+1900", tenant="@dnc", match_kind=pb.MATCH_KIND_PREFIX)
    listed = await create(clients, "+14155550100", tenant="@dnc")
    own_prefix = await create(clients, "+1900555", match_kind=pb.MATCH_KIND_PREFIX)
    await create(clients, "+14155550100", tenant="@fraud")
    assert (await call(clients, "+19001230000", OUT)).verdict == ALLOW  # not subscribed yet

    await settings(clients, subscribed_lists=["@dnc", "@fraud"])

    async def subscribed() -> bool:
        return (await call(clients, "+19001230000", OUT)).verdict == BLOCK

    await wait_until(subscribed, within=2)
    answer = await call(clients, "+19001230000", OUT)
    assert (answer.decided_id, answer.decided_list, answer.reason) == (
        national.id,
        "@dnc",
        pb.SCREEN_REASON_BLOCK_ENTRY,
    )
    # The tenant's own longer prefix is more specific than the list's.
    answer = await call(clients, "+19005550123", OUT)
    assert (answer.decided_id, answer.decided_list) == (own_prefix.id, "")
    # Two lists hold the same exact number: the first subscribed decides.
    answer = await call(clients, "+14155550100", OUT)
    assert (answer.decided_id, answer.decided_list) == (listed.id, "@dnc")
    # The tenant's own entry wins a tie.
    own = await create(clients, "+14155550100")
    answer = await until_verdict(clients, "+14155550100", BLOCK, matched_id=own.id)
    assert answer.decided_list == ""
    # Another tenant, not subscribed, is not screened against the lists.
    assert (await call(clients, "+19001230000", OUT, tenant="globex")).verdict == ALLOW


async def test_shared_lists_are_written_only_with_the_platform_role(start_server: StartServer, tmp_path: Path) -> None:
    secrets = {"platform": "p" * 32, "admin": "a" * 32}
    path = write_auth_file(
        tmp_path / "auth.toml",
        {
            "operator": (secrets["platform"], ["platform"], ["*"]),
            "tenant-admin": (secrets["admin"], ["admin", "viewer"], ["*"]),
        },
    )
    app: App = await start_server(auth_file=path)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        admin = pb_grpc.ForbiddenNumberAdminStub(channel)

        def entry(tenant: str) -> pb.CreateForbiddenNumberRequest:
            return pb.CreateForbiddenNumberRequest(
                forbidden_number=pb.ForbiddenNumber(tenant_id=tenant, number="+1900", call_type=pb.CALL_TYPE_BOTH)
            )

        await admin.CreateForbiddenNumber(entry("@dnc"), metadata=bearer(secrets["platform"]))
        await admin.CreateForbiddenNumber(entry(A), metadata=bearer(secrets["admin"]))
        for tenant, who in (("@dnc", "admin"), (A, "platform")):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await admin.CreateForbiddenNumber(entry(tenant), metadata=bearer(secrets[who]))
            assert code_of(caught.value) == grpc.StatusCode.PERMISSION_DENIED
        # Reading a list is a viewer's right like any tenant's.
        page = await admin.ListForbiddenNumbers(
            pb.ListForbiddenNumbersRequest(tenant_id="@dnc"), metadata=bearer(secrets["admin"])
        )
        assert [e.number for e in page.forbidden_numbers] == ["+1900"]


async def test_screen_call_explains_a_block(clients: Clients) -> None:
    entry = await create(clients, "+14155550100")
    answer = await until_verdict(clients, "+14155550100", BLOCK)
    assert (answer.reason, answer.decided_id, answer.decided_action, answer.decided_kind) == (
        pb.SCREEN_REASON_BLOCK_ENTRY,
        entry.id,
        pb.ACTION_BLOCK,
        pb.MATCH_KIND_EXACT,
    )
    assert (await screen(clients, "+14155550199")).verdict == ALLOW


async def test_hit_counts_are_summed_over_replicas_and_shown_by_get_list_and_export(
    start_server: StartServer, connect
) -> None:
    first = connect(await start_server(hit_flush_interval=0.2))
    second = connect(await start_server(hit_flush_interval=0.2))
    blocked = await create(first, "+14155550100")
    quiet = await create(first, "+14155550101")
    await until_verdict(first, "+14155550100", BLOCK)
    await until_verdict(second, "+14155550100", BLOCK)
    for clients, calls in ((first, 3), (second, 4)):
        for _ in range(calls):
            assert (await screen(clients, "+14155550100")).verdict == BLOCK
    # A test of a number is no call: it counts nothing.
    await first.admin.ExplainScreenCall(pb.ScreenCallRequest(tenant_id=A, number="+14155550100", direction=IN))

    async def counted() -> pb.ForbiddenNumber | None:
        entry = await first.admin.GetForbiddenNumber(pb.GetForbiddenNumberRequest(tenant_id=A, id=blocked.id))
        # until_verdict's own calls count too: at least the 7 made here.
        return entry if entry.hit_count >= 7 + 2 else None

    await wait_until(counted, within=5)
    entry = await counted()
    assert entry is not None and entry.HasField("last_hit_time")
    page = await first.admin.ListForbiddenNumbers(pb.ListForbiddenNumbersRequest(tenant_id=A))
    by_id = {e.id: e for e in page.forbidden_numbers}
    assert by_id[blocked.id].hit_count == entry.hit_count and by_id[quiet.id].hit_count == 0
    assert not by_id[quiet.id].HasField("last_hit_time")
    exported = [e async for e in first.admin.ExportForbiddenNumbers(pb.ExportForbiddenNumbersRequest(tenant_id=A))]
    assert {e.id: e.hit_count for e in exported}[blocked.id] == entry.hit_count

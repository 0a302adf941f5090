"""A tenant with neither entries nor settings is unknown: its calls are counted; ListTenants names the known."""

from __future__ import annotations

import logging

import pytest

from screening.app.service import App
from screening.v1 import screening_pb2 as pb
from tests.support import Clients, StartServer, create, until_verdict, wait_until
from tests.test_metrics import scrape, value

IN, OUT = pb.DIRECTION_INBOUND, pb.DIRECTION_OUTBOUND


async def call(
    clients: Clients, tenant: str, number: str = "+14155550100", direction: int = IN
) -> pb.ScreenCallResponse:
    return await clients.screening.ScreenCall(
        pb.ScreenCallRequest(tenant_id=tenant, number=number, direction=direction)
    )


async def test_calls_for_an_unknown_tenant_are_counted_and_logged_once(
    start_server: StartServer, connect, caplog: pytest.LogCaptureFixture
) -> None:
    app: App = await start_server(metrics_listen="127.0.0.1:0")
    clients: Clients = connect(app)
    await create(clients, "+14155550100", tenant="acme")
    await clients.admin.UpdateTenantSettings(
        pb.UpdateTenantSettingsRequest(
            settings=pb.TenantSettings(tenant_id="initech", withheld_policy=pb.WITHHELD_POLICY_BLOCK)
        )
    )
    await until_verdict(clients, "+14155550100", pb.VERDICT_BLOCK, tenant="acme")

    async def settings_applied() -> bool:
        withheld = await clients.screening.ScreenCall(
            pb.ScreenCallRequest(tenant_id="initech", direction=IN, caller_withheld=True)
        )
        return withheld.verdict == pb.VERDICT_BLOCK

    await wait_until(settings_applied, within=5)
    with caplog.at_level(logging.WARNING, logger="screening.usecases.screener"):
        for tenant, direction in (("ACME", IN), ("ACME", OUT), ("ACME", IN), ("acme", IN), ("acme", OUT)):
            await call(clients, tenant, direction=direction)
        await call(clients, "acme", "+14155550199")  # a miss for a known tenant: not counted
        await call(clients, "initech")  # settings and no entries: known
        # A test of a number is not a call.
        await clients.admin.ExplainScreenCall(pb.ScreenCallRequest(tenant_id="nobody", number="+1415", direction=IN))
    samples = await scrape(app)
    assert value(samples, "screening_unknown_tenant_calls_total", direction="inbound") == 2
    assert value(samples, "screening_unknown_tenant_calls_total", direction="outbound") == 1
    assert [r.getMessage() for r in caplog.records if "neither entries nor settings" in r.getMessage()] == [
        "screened a call for tenant 'ACME', which has neither entries nor settings: allowed (misspelt?)"
    ]


async def test_list_tenants_names_tenants_with_entries_or_settings(clients: Clients) -> None:
    await create(clients, "+14155550100", tenant="acme")
    await create(clients, "+14155550100", tenant="globex")
    for tenant in ("initech", "acme"):
        await clients.admin.UpdateTenantSettings(
            pb.UpdateTenantSettingsRequest(settings=pb.TenantSettings(tenant_id=tenant, display_name=tenant.title()))
        )
    listed = await clients.admin.ListTenants(pb.ListTenantsRequest())
    assert [(t.tenant_id, t.entry_count, t.display_name) for t in listed.tenants] == [
        ("acme", 1, "Acme"),
        ("globex", 1, ""),
        ("initech", 0, "Initech"),
    ]
    # Pages of one: every tenant once, in order.
    seen, token = [], ""
    while True:
        page = await clients.admin.ListTenants(pb.ListTenantsRequest(page_size=1, page_token=token))
        seen += [t.tenant_id for t in page.tenants]
        token = page.next_page_token
        if not token:
            break
    assert seen == ["acme", "globex", "initech"]

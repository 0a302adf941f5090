"""ScreenCall's common miss answered in C (_native.QuickScreen) gives the Python path's answer, call by call.

The C call answers only a known tenant's call for an E.164 number that no
entry of the tenant or of its lists has, and passes every other call to the
Python path (screening/api/wire.py). Here both answer the same drawn calls on
a real server over a real database, with entries in the compact base (loaded
at start), in the overlay (written since), shadowed (changed since the load),
as prefixes, in every state, and in subscribed lists.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screening import _native
from screening.app.service import App
from screening.v1 import screening_pb2 as pb
from tests.support import Clients, StartServer, create, expire, wait_until

IN, OUT = pb.DIRECTION_INBOUND, pb.DIRECTION_OUTBOUND
TENANT, SETTINGS_ONLY, LIST = "acme", "settled", "@fraud"
# Numbers some entry has, written before the second server starts (so in its compact base).
LOADED = ["+14155550100", "+14155550101", "+14155550102"]
LIST_LOADED = "+14155550200"
# Written once the second server serves: its overlay.
PREFIX, ALLOWED, DISABLED, OUTBOUND_ONLY, LIST_PREFIX = "+1900", "+14155550300", "+14155550301", "+14155550302", "+1888"
EXPIRED = "+14155550303"
ABSENT = ["+14155559999", "+4930123456", "+1", "+123456789012345", "+447700900123"]
KNOWN = [TENANT, SETTINGS_ONLY, LIST]


async def _setup(start_server: StartServer, connect: Callable[[App], Clients]) -> App:
    first = connect(await start_server())
    for number in LOADED:
        await create(first, number, tenant=TENANT)
    await create(first, LIST_LOADED, tenant=LIST)
    app = await start_server()
    clients = connect(app)
    for tenant, lists in ((TENANT, [LIST]), (SETTINGS_ONLY, [])):
        await clients.admin.UpdateTenantSettings(
            pb.UpdateTenantSettingsRequest(
                settings=pb.TenantSettings(tenant_id=tenant, display_name=tenant.title(), subscribed_lists=lists)
            )
        )
    await create(clients, PREFIX, tenant=TENANT, match_kind=pb.MATCH_KIND_PREFIX)
    await create(clients, ALLOWED, tenant=TENANT, action=pb.ACTION_ALLOW)
    await create(clients, DISABLED, tenant=TENANT, enabled=False)
    await create(clients, OUTBOUND_ONLY, tenant=TENANT, call_type=pb.CALL_TYPE_OUTBOUND)
    await expire(clients, await create(clients, EXPIRED, tenant=TENANT))
    await create(clients, LIST_PREFIX, tenant=LIST, match_kind=pb.MATCH_KIND_PREFIX)
    # A base entry changed since the load: shadowed in the base, answered by the overlay.
    listing = await clients.admin.ListForbiddenNumbers(pb.ListForbiddenNumbersRequest(tenant_id=TENANT))
    loaded = next(e for e in listing.forbidden_numbers if e.number == LOADED[0])
    await clients.admin.UpdateForbiddenNumber(
        pb.UpdateForbiddenNumberRequest(
            forbidden_number=pb.ForbiddenNumber(tenant_id=TENANT, id=loaded.id, enabled=False),
            update_mask={"paths": ["enabled"]},
        )
    )

    async def settled() -> bool:
        answer = await clients.screening.ScreenCall(
            pb.ScreenCallRequest(tenant_id=TENANT, number=LOADED[0], direction=IN)
        )
        return bool(
            answer.reason == pb.SCREEN_REASON_ONLY_DISABLED
            and {TENANT, SETTINGS_ONLY} <= app.screening._screener.rules.keys()
            and LIST_PREFIX in str(app.replica.index.lookup(LIST, LIST_PREFIX + "1234567", IN, 0.0))
        )

    await wait_until(settled, within=10)
    return app


def _outcome(screen: Callable[[_native.ScreenRequest], bytes], request: _native.ScreenRequest) -> object:
    try:
        return screen(request)
    except Exception as exc:  # noqa: BLE001 - compared, not handled
        return (type(exc), str(exc))


numbers = st.one_of(
    st.sampled_from(
        [*LOADED, LIST_LOADED, ALLOWED, DISABLED, OUTBOUND_ONLY, EXPIRED, *ABSENT, "", "4155550100", "112", "+"]
    ),
    st.sampled_from([PREFIX, LIST_PREFIX, "+1415", "+4930"]).flatmap(
        lambda head: st.text("0123456789", max_size=16 - len(head)).map(lambda tail: head + tail)
    ),
    st.text(max_size=20),
)
requests = st.builds(
    pb.ScreenCallRequest,
    tenant_id=st.sampled_from([*KNOWN, "never-seen", "Not A Tenant!", ""]),
    number=numbers,
    direction=st.sampled_from([IN, OUT, 0, 3, -1]),
    call_id=st.text(max_size=40),
    caller_withheld=st.booleans(),
)


async def test_the_c_path_answers_every_call_as_the_python_path(
    start_server: StartServer, connect: Callable[[App], Clients]
) -> None:
    app = await _setup(start_server, connect)
    servicer = app.screening
    quick = servicer.screen
    assert isinstance(quick, _native.QuickScreen)
    seen: dict[str, int] = {"answered in C": 0, "passed on": 0}

    @settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
    @given(message=requests)
    def same(message: pb.ScreenCallRequest) -> None:
        request = _native.screen_request(message.SerializeToString())
        before = quick.answered
        assert _outcome(quick, request) == _outcome(servicer._screen, request), message
        seen["answered in C" if quick.answered > before else "passed on"] += 1

    same()
    # Both kinds were drawn: the comparison covered the C answers, not only the fallback.
    assert seen["answered in C"] > 50 and seen["passed on"] > 50, seen


async def test_the_c_path_takes_exactly_the_common_miss(
    start_server: StartServer, connect: Callable[[App], Clients]
) -> None:
    app = await _setup(start_server, connect)
    clients = connect(app)
    quick = app.screening.screen
    assert isinstance(quick, _native.QuickScreen)
    tally = app.metrics.screen_tally

    async def taken(tenant: str, number: str, direction: int = IN, withheld: bool = False) -> bool:
        before, calls = quick.answered, sum(map(sum, tally.calls))
        await clients.screening.ScreenCall(
            pb.ScreenCallRequest(tenant_id=tenant, number=number, direction=direction, caller_withheld=withheld)  # type: ignore[arg-type]
        )
        # Counted once either way, in the same metric.
        assert sum(map(sum, tally.calls)) == calls + 1
        return quick.answered == before + 1

    # A tenant's first call has its id checked by the Python path (the setup screened TENANT already).
    for tenant in (SETTINGS_ONLY, LIST):
        assert not await taken(tenant, ABSENT[0]), tenant
    # Then: known tenants (entries, settings only, a list), absent E.164 numbers, either direction: in C.
    for tenant in KNOWN:
        for number in ABSENT:
            assert await taken(tenant, number, IN) and await taken(tenant, number, OUT), (tenant, number)
    # Any entry of the tenant or of its list with the number, in any state; under a prefix: passed on.
    for number in [*LOADED, LIST_LOADED, ALLOWED, DISABLED, OUTBOUND_ONLY, EXPIRED, PREFIX + "5550100"]:
        assert not await taken(TENANT, number), number
    assert not await taken(TENANT, LIST_PREFIX + "5550100")
    # The list's entries are not the settings-only tenant's: in C.
    assert await taken(SETTINGS_ONLY, LIST_LOADED)
    # Withheld, national, an unknown tenant (counted as unknown by the Python path): passed on.
    assert not await taken(TENANT, ABSENT[0], withheld=True)
    assert not await taken(TENANT, "4155559999")
    before = app.screening._screener.unknown_tenant_calls[IN]
    assert not await taken("never-seen", ABSENT[0])
    assert app.screening._screener.unknown_tenant_calls[IN] == before + 1
    # Bad input is refused by the Python path, with its status.
    try:
        await clients.screening.ScreenCall(pb.ScreenCallRequest(tenant_id=TENANT, number=ABSENT[0]))
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "direction" in (error.details() or "")
    else:
        raise AssertionError("a call without a direction was answered")

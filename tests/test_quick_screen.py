"""ScreenCall's common answers made in C (_native.QuickScreen) are the Python path's, call by call.

The C call answers a known tenant's call for an E.164 number only when no
entry of the tenant or of its lists has the number, or when the first of them
with an exact entry for it has a qualifying one in the compact base; it passes
every other call to the Python path (screening/api/wire.py). Here both answer
the same drawn calls: on a real server over a real database, with entries in
the compact base (loaded at start), in the overlay (written since), shadowed
(changed since the load), as prefixes, in every state, and in subscribed
lists; and in memory, over drawn entry sets spread across several runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screening import _native
from screening.api.metrics import Metrics
from screening.api.servicers import ScreeningServicer
from screening.app.service import App
from screening.domain.model import Action, MatchKind
from screening.index.compact import Columns
from screening.index.rules import ScreeningIndex
from screening.sync.settings import TenantRules
from screening.usecases.screener import Screener
from screening.v1 import screening_pb2 as pb
from tests.support import Clients, StartServer, create, expire, wait_until
from tests.test_allow_rules import Rule, _index_entry, queries, rule_sets

IN, OUT = pb.DIRECTION_INBOUND, pb.DIRECTION_OUTBOUND
TENANT, SETTINGS_ONLY, LIST = "acme", "settled", "@fraud"
# Numbers some entry has, written before the second server starts (so in its compact base).
LOADED = ["+14155550100", "+14155550101", "+14155550102"]
EXPIRING = "+14155550104"  # in the base, with an expiry still to come
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
    expiring = pb.ForbiddenNumber()
    expiring.expire_time.FromDatetime(datetime.now(UTC) + timedelta(days=1))
    await create(first, EXPIRING, tenant=TENANT, expire_time=expiring.expire_time)
    # The list has one number of its own, one the tenant lists too, one the tenant allows.
    for number in (LIST_LOADED, LOADED[2], ALLOWED):
        await create(first, number, tenant=LIST)
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
        [
            *LOADED,
            EXPIRING,
            LIST_LOADED,
            ALLOWED,
            DISABLED,
            OUTBOUND_ONLY,
            EXPIRED,
            *ABSENT,
            "",
            "4155550100",
            "112",
            "+",
        ]
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


async def test_the_c_path_takes_exactly_the_common_cases(
    start_server: StartServer, connect: Callable[[App], Clients]
) -> None:
    app = await _setup(start_server, connect)
    clients = connect(app)
    quick = app.screening.screen
    assert isinstance(quick, _native.QuickScreen)
    tally = app.metrics.screen_tally
    hits = app.screening._screener.hits

    async def taken(
        tenant: str, number: str, direction: int = IN, withheld: bool = False
    ) -> pb.ScreenCallResponse | None:
        """The answer when the C path gave it, else None."""
        before, calls = quick.answered, sum(map(sum, tally.calls))
        answer = await clients.screening.ScreenCall(
            pb.ScreenCallRequest(tenant_id=tenant, number=number, direction=direction, caller_withheld=withheld)  # type: ignore[arg-type]
        )
        # Counted once either way, in the same metric.
        assert sum(map(sum, tally.calls)) == calls + 1
        return answer if quick.answered == before + 1 else None

    # A tenant's first call has its id checked by the Python path (the setup screened TENANT already).
    for tenant in (SETTINGS_ONLY, LIST):
        assert await taken(tenant, ABSENT[0]) is None, tenant
    # Then: known tenants (entries, settings only, a list), absent E.164 numbers, either direction: in C.
    for tenant in KNOWN:
        for number in ABSENT:
            for direction in (IN, OUT):
                answer = await taken(tenant, number, direction)
                assert answer is not None and (answer.verdict, answer.reason) == (
                    pb.VERDICT_ALLOW,
                    pb.SCREEN_REASON_NO_ENTRY,
                )
    # A qualifying entry in the base decides in C, its hit counted: the tenant's own before its list's.
    for number, list_id in ((LOADED[1], ""), (LOADED[2], ""), (LIST_LOADED, LIST)):
        answer = await taken(TENANT, number, OUT)
        assert answer is not None, number
        assert (answer.verdict, answer.reason, answer.decided_list) == (
            pb.VERDICT_BLOCK,
            pb.SCREEN_REASON_BLOCK_ENTRY,
            list_id,
        )
        assert answer.matched_id == answer.decided_id and answer.matched_number == number
        counted = hits.counts[answer.decided_id][0]
        assert await taken(TENANT, number, IN) is not None
        assert hits.counts[answer.decided_id][0] == counted + 1
    # The list's entries are not the settings-only tenant's: allowed in C.
    answer = await taken(SETTINGS_ONLY, LIST_LOADED)
    assert answer is not None and answer.verdict == pb.VERDICT_ALLOW
    # An entry in the overlay, changed since the load, with an expiry, or a prefix of the number; the
    # tenant's own allow over its list's block: passed on.
    for number in [
        LOADED[0],
        EXPIRING,
        ALLOWED,
        DISABLED,
        OUTBOUND_ONLY,
        EXPIRED,
        PREFIX + "5550100",
        LIST_PREFIX + "5550100",
    ]:
        assert await taken(TENANT, number) is None, number
    # Withheld, national, an unknown tenant (counted as unknown by the Python path): passed on.
    assert await taken(TENANT, ABSENT[0], withheld=True) is None
    assert await taken(TENANT, "4155559999") is None
    before = app.screening._screener.unknown_tenant_calls[IN]
    assert await taken("never-seen", ABSENT[0]) is None
    assert app.screening._screener.unknown_tenant_calls[IN] == before + 1
    # Exported: how many calls the C path answered.
    assert app.metrics.registry.get_sample_value("screening_screen_fast_path_calls_total") == quick.answered > 0
    # Bad input is refused by the Python path, with its status.
    try:
        await clients.screening.ScreenCall(pb.ScreenCallRequest(tenant_id=TENANT, number=ABSENT[0]))
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "direction" in (error.details() or "")
    else:
        raise AssertionError("a call without a direction was answered")


# ------------------------------------------------------------ in memory, over several runs

OWNERS = ["acme", "@a", "@b"]


def _merge_all(index: ScreeningIndex) -> None:
    """The overlay's mergeable entries into a new run, as merge_in_background does it, without a loop."""
    merge = index.begin_merge()
    merge.build()
    index.install_merge(merge)
    while index.settle_merge(merge, 1_000):
        pass


@settings(max_examples=300, deadline=None)
@given(
    rules=rule_sets(owners=3),
    placed=st.lists(st.sampled_from(["base", "run", "overlay"]), min_size=8, max_size=8),
    changed=st.lists(st.booleans(), min_size=8, max_size=8),
    subscribed=st.sampled_from([(), ("@a",), ("@a", "@b"), ("@b", "@a")]),
)
def test_over_runs_the_c_path_answers_as_the_python_path(
    rules: list[Rule], placed: list[str], changed: list[bool], subscribed: tuple[str, ...]
) -> None:
    entries = [_index_entry(rule, OWNERS[rule.owner]) for rule in rules]
    where = dict(zip((e.id for e in entries), placed, strict=False))
    mergeable = [e for e in entries if e.match_kind is MatchKind.EXACT and e.action is Action.BLOCK]
    # Entries in the oldest run (a first load), in a newer run (a merge), and in the overlay.
    based = [e for e in mergeable if where.get(e.id) == "base"]
    index = ScreeningIndex.from_columns(
        Columns.of_entries([(e.id, e.tenant_id, e.number, e.call_type, e.enabled, e.expires_at) for e in based])
    )
    for entry in mergeable:
        if where.get(entry.id) == "run":
            index.upsert(entry)
    _merge_all(index)
    for entry in entries:
        if entry not in based and where.get(entry.id) != "run":
            index.upsert(entry)
    # Some entries changed since their run was built (shadowed there): disabled, or gone.
    for entry, change in zip(entries, changed, strict=False):
        if change:
            if entry.enabled:
                index.upsert(replace(entry, enabled=False))
            else:
                index.remove(entry.id)
    replica = SimpleNamespace(ready=True, index=index, data_version=7)
    follower = SimpleNamespace(by_tenant={"acme": TenantRules(None, False, subscribed)})
    screener = Screener(replica, None, follower)  # type: ignore[arg-type]
    servicer = ScreeningServicer(screener, Metrics())
    quick = servicer.screen
    assert isinstance(quick, _native.QuickScreen)
    for number in [*queries(rules), "+17770000000"]:  # the last under no drawn entry
        for direction in (IN, OUT):
            for tenant in OWNERS:
                request = _native.screen_request(
                    pb.ScreenCallRequest(
                        tenant_id=tenant,
                        number=number,
                        direction=direction,
                        call_id="c",
                    ).SerializeToString()
                )
                assert _outcome(quick, request) == _outcome(servicer._screen, request), (tenant, number, direction)
    # acme's calls after its first (whose id the Python path checks) include some the C path answered.
    assert quick.answered > 0

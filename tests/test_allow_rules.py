"""How allow-exceptions, prefixes, shared lists, expiry and direction combine.

The rule (docs/screening.md, "Which entry decides"): among the entries of the
tenant and of its subscribed lists that qualify for the call (enabled, not
expired, the call type covers the direction, the number matches), the most
specific decides, and its action is the verdict: an exact entry over any
prefix, a longer prefix over a shorter one, the tenant's own over a list's on
a tie, an earlier-subscribed list over a later one. When none qualifies, the
reason says why from the entries that match: another direction if any of them
is otherwise live, else disabled if any is disabled, else expired.

`model` below is that rule written plainly; the tests hold the index, and a
real server over a real database, to it: by examples, and by properties over
drawn entry sets (in memory, and through the API, then again after a restart
loads the same rows into the compact base).
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screening.domain.model import Action, CallType, MatchKind
from screening.index import compact
from screening.index.compact import Columns
from screening.index.rules import MISS_DISABLED, MISS_EXPIRED, MISS_OTHER_DIRECTION, NEVER, IndexEntry, ScreeningIndex
from screening.v1 import screening_pb2 as pb
from tests.support import Clients, StartServer, code_of, create, until_verdict, wait_until

IN, OUT = pb.DIRECTION_INBOUND, pb.DIRECTION_OUTBOUND
BLOCK, ALLOW = pb.VERDICT_BLOCK, pb.VERDICT_ALLOW
NOW = 1_800_000_000.0
# Numbers drawn from two digits after a fixed start, so that drawn entries overlap often.
START = "+1900"
REASON_OF_MISS = {
    0: pb.SCREEN_REASON_NO_ENTRY,
    MISS_EXPIRED: pb.SCREEN_REASON_ONLY_EXPIRED,
    MISS_DISABLED: pb.SCREEN_REASON_ONLY_DISABLED,
    MISS_OTHER_DIRECTION: pb.SCREEN_REASON_OTHER_DIRECTION,
}


@dataclass(frozen=True)
class Rule:
    """An entry as the model sees it. owner: 0 the tenant's own, 1.. its lists in subscription order."""

    owner: int
    number: str
    prefix: bool
    call_type: int  # 1 inbound, 2 outbound, 3 both
    enabled: bool
    expired: bool
    allow: bool


def model(rules: list[Rule], number: str, direction: int) -> tuple[int, int, Rule | None]:
    """(verdict, reason, deciding rule) for a call, by the rule in the module's docstring."""
    matching = [r for r in rules if (number.startswith(r.number) if r.prefix else number == r.number)]
    qualifying = [r for r in matching if r.enabled and not r.expired and r.call_type & direction]
    if qualifying:
        best = max(qualifying, key=lambda r: (not r.prefix, len(r.number), -r.owner))
        if best.allow:
            return ALLOW, pb.SCREEN_REASON_ALLOW_ENTRY, best
        return BLOCK, pb.SCREEN_REASON_BLOCK_ENTRY, best
    if not matching:
        return ALLOW, pb.SCREEN_REASON_NO_ENTRY, None
    if any(r.enabled and not r.expired for r in matching):
        return ALLOW, pb.SCREEN_REASON_OTHER_DIRECTION, None
    if any(not r.enabled for r in matching):
        return ALLOW, pb.SCREEN_REASON_ONLY_DISABLED, None
    return ALLOW, pb.SCREEN_REASON_ONLY_EXPIRED, None


def _unique_by_key(rules: list[Rule]) -> list[Rule]:
    """One entry per (owner, number, kind), as the database allows."""
    seen: dict[tuple[int, str, bool], Rule] = {}
    for rule in rules:
        seen.setdefault((rule.owner, rule.number, rule.prefix), rule)
    return list(seen.values())


def rule_sets(owners: int) -> st.SearchStrategy[list[Rule]]:
    exact = st.text("05", min_size=7, max_size=7).map(lambda d: START + d)
    prefix = st.text("05", min_size=0, max_size=4).map(lambda d: START + d)
    rule = st.builds(
        Rule,
        owner=st.integers(0, owners - 1),
        number=st.just(""),
        prefix=st.booleans(),
        call_type=st.sampled_from([1, 2, 3]),
        enabled=st.booleans(),
        expired=st.booleans(),
        allow=st.booleans(),
    )
    drawn = st.tuples(rule, exact, prefix).map(
        lambda t: Rule(**{**t[0].__dict__, "number": t[2] if t[0].prefix else t[1]})
    )
    return st.lists(drawn, min_size=0, max_size=8).map(_unique_by_key)


def queries(rules: list[Rule]) -> list[str]:
    """Numbers worth asking about: every exact entry's, and numbers under every prefix."""
    asked = {r.number for r in rules if not r.prefix}
    for r in rules:
        if r.prefix:
            asked.add((r.number + "5555555")[: len(START) + 7])
            asked.add((r.number + "0000000")[: len(START) + 7])
    asked.add(START + "0505050")
    return sorted(asked)


# ------------------------------------------------------------ the index alone


def _index_entry(rule: Rule, tenant: str) -> IndexEntry:
    return IndexEntry(
        id=str(uuid.uuid4()),
        tenant_id=tenant,
        number=rule.number,
        match_kind=MatchKind.PREFIX if rule.prefix else MatchKind.EXACT,
        call_type=CallType(rule.call_type),
        enabled=rule.enabled,
        expires_at=NOW - 1 if rule.expired else NEVER,
        action=Action.ALLOW if rule.allow else Action.BLOCK,
    )


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rules=rule_sets(owners=1), in_base=st.lists(st.booleans(), min_size=8, max_size=8))
def test_the_index_look_up_follows_the_model(
    native: bool, rules: list[Rule], in_base: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not native:
        monkeypatch.setattr(compact, "USE_NATIVE", False)
    entries = [_index_entry(r, "acme") for r in rules]
    # BLOCK exact entries may start in the compact base (a first load); everything else is upserted.
    based = [
        e
        for e, b in zip(entries, in_base, strict=False)
        if b and e.match_kind is MatchKind.EXACT and e.action is Action.BLOCK
    ]
    columns = Columns.of_entries([(e.id, e.tenant_id, e.number, e.call_type, e.enabled, e.expires_at) for e in based])
    index = ScreeningIndex.from_columns(columns)
    for entry in entries:
        if entry not in based:
            index.upsert(entry)
    by_id = {e.id: r for e, r in zip(entries, rules, strict=True)}
    for number in queries(rules):
        for direction in (IN, OUT):
            verdict, reason, decided = model(rules, number, direction)
            found = index.lookup("acme", number, direction, NOW)
            if decided is None:
                assert isinstance(found, int) and REASON_OF_MISS[found] == reason, (number, direction, found)
            else:
                assert isinstance(found, IndexEntry) and by_id[found.id] == decided, (number, direction, found)
                assert (found.action is Action.ALLOW) == (verdict == ALLOW)
        answers = index.screen_many("acme", [number], IN, NOW)
        assert answers == [index.screen("acme", number, IN, NOW)]


def test_a_near_miss_in_the_base_is_told_but_a_changed_one_is_not() -> None:
    disabled = IndexEntry(str(uuid.uuid4()), "acme", "+19005550100", MatchKind.EXACT, CallType.BOTH, False)
    index = ScreeningIndex.from_columns(
        Columns.of_entries([(disabled.id, "acme", disabled.number, CallType.BOTH, False, NEVER)])
    )
    assert index.lookup("acme", "+19005550100", IN, NOW) == MISS_DISABLED
    assert index.lookup("acme", "+19005550199", IN, NOW) == 0
    index.remove(disabled.id)  # its base copy is shadowed: no longer a near miss
    assert index.lookup("acme", "+19005550100", IN, NOW) == 0


# ------------------------------------------------------------ a real server


async def _subscribe(clients: Clients, tenant: str, lists: list[str]) -> None:
    await clients.admin.UpdateTenantSettings(
        pb.UpdateTenantSettingsRequest(settings=pb.TenantSettings(tenant_id=tenant, subscribed_lists=lists))
    )


async def _write(clients: Clients, tenant: str, lists: list[str], rules: list[Rule]) -> dict[str, Rule]:
    """The rules as entries of the tenant and its lists; expired ones get an expiry in the past. Returns id -> rule."""
    owners = [tenant, *lists]
    written: dict[str, Rule] = {}
    for rule in rules:
        entry = await create(
            clients,
            rule.number,
            tenant=owners[rule.owner],
            call_type=rule.call_type,
            match_kind=pb.MATCH_KIND_PREFIX if rule.prefix else pb.MATCH_KIND_EXACT,
            enabled=rule.enabled,
            action=pb.ACTION_ALLOW if rule.allow else pb.ACTION_BLOCK,
        )
        if rule.expired:
            # Created live (a create refuses a past expiry), then expired by an update, which may set one.
            entry.expire_time.FromDatetime(datetime.now(UTC) - timedelta(hours=1))
            await clients.admin.UpdateForbiddenNumber(
                pb.UpdateForbiddenNumberRequest(
                    forbidden_number=pb.ForbiddenNumber(
                        tenant_id=owners[rule.owner], id=entry.id, expire_time=entry.expire_time
                    ),
                    update_mask={"paths": ["expire_time"]},
                )
            )
        written[entry.id] = rule
    return written


async def _settled(clients: Clients, tenant: str, lists: list[str]) -> None:
    """Until the replica has applied everything written so far: a sentinel written last decides its number."""
    sentinel = "+17770000000"  # outside every drawn entry's reach
    written = await create(clients, sentinel, tenant=lists[-1] if lists else tenant)

    async def seen() -> bool:
        answer = await clients.screening.ScreenCall(
            pb.ScreenCallRequest(tenant_id=tenant, number=sentinel, direction=IN)
        )
        return answer.decided_id == written.id

    await wait_until(seen, within=5)


async def _check(clients: Clients, tenant: str, lists: list[str], written: dict[str, Rule]) -> None:
    rules = list(written.values())
    owners = [tenant, *lists]
    for number in queries(rules):
        for direction in (IN, OUT):
            verdict, reason, decided = model(rules, number, direction)
            answer = await clients.screening.ScreenCall(
                pb.ScreenCallRequest(tenant_id=tenant, number=number, direction=direction)
            )
            where = (number, direction, rules)
            assert (answer.verdict, answer.reason) == (verdict, reason), where
            if decided is None:
                assert answer.decided_id == "" and answer.matched_id == "", where
                continue
            assert written[answer.decided_id] == decided, where
            assert answer.decided_list == ("" if decided.owner == 0 else owners[decided.owner]), where
            assert answer.decided_action == (pb.ACTION_ALLOW if decided.allow else pb.ACTION_BLOCK), where
            # The contract's matched_* fields name a blocking entry only.
            assert answer.matched_id == (answer.decided_id if verdict == BLOCK else ""), where
        # The batch RPC decides the same way.
        batch = await clients.screening.ScreenNumbers(
            pb.ScreenNumbersRequest(tenant_id=tenant, direction=OUT, numbers=[number])
        )
        verdict, _, decided = model(rules, number, OUT)
        (result,) = batch.results
        assert (result.verdict, result.decided_id != "") == (verdict, decided is not None), (number, rules)
        if decided is not None:
            assert written[result.decided_id] == decided


async def test_an_allow_exception_inside_a_blocked_prefix(clients: Clients) -> None:
    lists: list[str] = []
    written = await _write(
        clients,
        "acme",
        lists,
        [
            Rule(0, "+1900", True, 3, True, False, False),
            Rule(0, "+1900555", True, 3, True, False, True),
        ],
    )
    await _settled(clients, "acme", lists)
    allowed = await clients.screening.ScreenCall(
        pb.ScreenCallRequest(tenant_id="acme", number="+19005550123", direction=OUT)
    )
    assert (allowed.verdict, allowed.reason, allowed.decided_number, allowed.decided_action) == (
        ALLOW,
        pb.SCREEN_REASON_ALLOW_ENTRY,
        "+1900555",
        pb.ACTION_ALLOW,
    )
    blocked = await clients.screening.ScreenCall(
        pb.ScreenCallRequest(tenant_id="acme", number="+19001230000", direction=OUT)
    )
    assert (blocked.verdict, blocked.reason, blocked.matched_number) == (BLOCK, pb.SCREEN_REASON_BLOCK_ENTRY, "+1900")
    await _check(clients, "acme", lists, written)


async def test_examples_of_lists_expiry_and_direction_combined(clients: Clients) -> None:
    lists = ["@dnc", "@fraud"]
    await _subscribe(clients, "acme", lists)
    written = await _write(
        clients,
        "acme",
        lists,
        [
            # A list blocks a prefix; the tenant allows one number in it.
            Rule(1, "+1900", True, 3, True, False, False),
            Rule(0, "+19005550000", False, 3, True, False, True),
            # The tenant's own allow ties with a list's block for the same prefix: the tenant's wins.
            Rule(0, "+190050", True, 3, True, False, True),
            Rule(1, "+190050", True, 3, True, False, False),
            # A more specific block on a later list beats the tenant's shorter allow.
            Rule(2, "+1900505", True, 3, True, False, False),
            # An expired allow-exception no longer lets anything through.
            Rule(0, "+19005055555", False, 3, True, True, True),
            # An allow for outbound calls only.
            Rule(0, "+19005500000", False, 2, True, False, True),
            # Misses: disabled, expired, the other direction.
            Rule(0, "+1800", True, 3, False, False, False),
            Rule(0, "+1801", True, 3, True, True, False),
            Rule(0, "+1802", True, 1, True, False, False),
        ],
    )
    await _settled(clients, "acme", lists)
    await _check(clients, "acme", lists, written)
    for number, direction, reason in (
        ("+18000000000", IN, pb.SCREEN_REASON_ONLY_DISABLED),
        ("+18010000000", IN, pb.SCREEN_REASON_ONLY_EXPIRED),
        ("+18020000000", OUT, pb.SCREEN_REASON_OTHER_DIRECTION),
        ("+18030000000", IN, pb.SCREEN_REASON_NO_ENTRY),
    ):
        answer = await clients.screening.ScreenCall(
            pb.ScreenCallRequest(tenant_id="acme", number=number, direction=direction)
        )
        assert (answer.verdict, answer.reason) == (ALLOW, reason), number


_tenants = itertools.count()
_drawn: list[tuple[str, list[str], dict[str, Rule]]] = []


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rules=rule_sets(owners=3))
async def test_a_server_screens_as_the_model_says(clients: Clients, rules: list[Rule]) -> None:
    tenant = f"prop{next(_tenants)}"
    lists = [f"@{tenant}-a", f"@{tenant}-b"]
    await _subscribe(clients, tenant, lists)
    written = await _write(clients, tenant, lists, rules)
    await _settled(clients, tenant, lists)
    await _check(clients, tenant, lists, written)


async def test_the_same_after_a_restart_loads_the_rows_into_the_compact_base(
    start_server: StartServer, connect
) -> None:
    # The entries that a first load packs into the base (BLOCK, exact) are screened there, not in dicts.
    writer = connect(await start_server())
    cases = []
    for i, rules in enumerate(
        [
            [
                Rule(0, "+19005550000", False, 3, False, False, False),
                Rule(1, "+1900555", True, 3, True, False, False),
                Rule(0, "+19005555555", False, 1, True, False, False),
                Rule(0, "+1900", True, 3, True, False, True),
                Rule(2, "+19005555555", False, 3, True, False, False),
            ],
            [
                Rule(0, "+19000000000", False, 3, True, True, False),
                Rule(0, "+190000", True, 2, True, False, False),
                Rule(1, "+19000000000", False, 3, True, False, True),
                Rule(0, "+19005000000", False, 3, True, False, False),
            ],
        ]
    ):
        tenant, lists = f"restart{i}", [f"@restart{i}-a", f"@restart{i}-b"]
        await _subscribe(writer, tenant, lists)
        cases.append((tenant, lists, await _write(writer, tenant, lists, rules)))
    reader = connect(await start_server())
    for tenant, lists, written in cases:
        await _settled(reader, tenant, lists)
        await _check(reader, tenant, lists, written)


async def test_actions_through_the_admin_api_and_an_import(clients: Clients) -> None:
    from tests.test_imports import export, header, import_all, row, rows

    # Unspecified on input is BLOCK; an unknown action is refused, naming the field and the value.
    plain = await create(clients, "+14155550100")
    assert plain.action == pb.ACTION_BLOCK
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(clients, "+14155550101", action=7)
    assert code_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert "forbidden_number.action" in (caught.value.details() or "") and "7" in (caught.value.details() or "")
    updated = await clients.admin.UpdateForbiddenNumber(
        pb.UpdateForbiddenNumberRequest(
            forbidden_number=pb.ForbiddenNumber(tenant_id="acme", id=plain.id, action=pb.ACTION_ALLOW),
            update_mask={"paths": ["action"]},
        )
    )
    assert updated.action == pb.ACTION_ALLOW
    events = await clients.admin.ListAuditEvents(pb.ListAuditEventsRequest(tenant_id="acme", resource_id=plain.id))
    assert list(events.audit_events[0].changed_fields) == ["action"]
    assert (events.audit_events[0].before.action, events.audit_events[0].after.action) == (
        pb.ACTION_BLOCK,
        pb.ACTION_ALLOW,
    )

    job = await import_all(
        clients,
        [
            header(),
            rows(
                [
                    row(1, "+1900", match_kind=pb.MATCH_KIND_PREFIX),
                    row(2, "+1900555", match_kind=pb.MATCH_KIND_PREFIX, action=pb.ACTION_ALLOW),
                    row(3, "+1900666", match_kind=pb.MATCH_KIND_PREFIX, action=9),
                ]
            ),
        ],
    )
    assert (job.created_count, job.failed_count) == (2, 1)
    assert [(e.line, e.column) for e in job.errors] == [(3, "action")]
    stored = {(e.number, e.action) for e in await export(clients)}
    assert {("+1900", pb.ACTION_BLOCK), ("+1900555", pb.ACTION_ALLOW)} <= stored
    await until_verdict(clients, "+19001230000", BLOCK, direction=OUT)  # the import's changes have arrived

    async def allowed() -> bool:
        answer = await clients.screening.ScreenCall(
            pb.ScreenCallRequest(tenant_id="acme", number="+19005550123", direction=OUT)
        )
        return (answer.verdict, answer.reason, answer.decided_number) == (
            ALLOW,
            pb.SCREEN_REASON_ALLOW_ENTRY,
            "+1900555",
        )

    await wait_until(allowed, within=5)

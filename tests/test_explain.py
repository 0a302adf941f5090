"""ExplainScreenCall, ListTenants and GetCallerIdentity without an auth file, over real gRPC and a real database."""

from datetime import UTC

import grpc
import pytest

from screening.v1 import screening_pb2 as pb
from tests.support import Clients, code_of, create, expire, until_verdict

A = "acme"


async def test_explain_names_the_deciding_entry_and_why_the_others_did_not(clients: Clients) -> None:
    exact_inbound = await create(clients, "+19005550123", call_type=pb.CALL_TYPE_INBOUND)
    long_prefix = await create(clients, "+1900555", match_kind=pb.MATCH_KIND_PREFIX, enabled=False)
    short_prefix = await create(clients, "+1900", match_kind=pb.MATCH_KIND_PREFIX, call_type=pb.CALL_TYPE_OUTBOUND)
    expired = await expire(clients, await create(clients, "+190", match_kind=pb.MATCH_KIND_PREFIX))
    await create(clients, "+1800", match_kind=pb.MATCH_KIND_PREFIX)  # not a prefix of the number
    await until_verdict(clients, "+19005550123", pb.VERDICT_BLOCK, pb.DIRECTION_OUTBOUND, matched_id=short_prefix.id)

    answer = await clients.admin.ExplainScreenCall(
        pb.ScreenCallRequest(tenant_id=A, number="+1 900 555 0123", direction=pb.DIRECTION_OUTBOUND, call_id="c1")
    )
    assert answer.result.verdict == pb.VERDICT_BLOCK
    assert (answer.result.matched_id, answer.result.call_id) == (short_prefix.id, "c1")
    assert answer.result.normalized_number == "+19005550123"
    assert [(c.entry.id, c.qualifies, c.decided) for c in answer.candidates] == [
        (exact_inbound.id, False, False),
        (long_prefix.id, False, False),
        (short_prefix.id, True, True),
        (expired.id, False, False),
    ]
    assert [c.explanation for c in answer.candidates] == [
        "forbids inbound calls only",
        "disabled",
        "decided: longest qualifying prefix",
        f"expired at {expired.expire_time.ToDatetime(tzinfo=UTC).isoformat()}",
    ]

    inbound = await clients.admin.ExplainScreenCall(
        pb.ScreenCallRequest(tenant_id=A, number="+19005550123", direction=pb.DIRECTION_INBOUND)
    )
    assert inbound.result.matched_id == exact_inbound.id
    assert inbound.candidates[0].explanation == "decided: exact match"
    assert inbound.candidates[2].explanation == "forbids outbound calls only"


async def test_explain_lists_the_subscribed_lists_entries_in_the_order_they_decide(clients: Clients) -> None:
    await clients.admin.UpdateTenantSettings(
        pb.UpdateTenantSettingsRequest(settings=pb.TenantSettings(tenant_id=A, subscribed_lists=["@dnc", "@fraud"]))
    )
    own_prefix = await create(clients, "+1900", match_kind=pb.MATCH_KIND_PREFIX)
    dnc_prefix = await create(clients, "+1900", tenant="@dnc", match_kind=pb.MATCH_KIND_PREFIX)
    fraud_exact = await create(clients, "+19005550123", tenant="@fraud")
    dnc_exact = await create(clients, "+19005550123", tenant="@dnc", note="reported by carrier X")
    await create(clients, "+19005550123", tenant="@other")  # a list acme does not subscribe to
    await until_verdict(clients, "+19005550123", pb.VERDICT_BLOCK, matched_id=dnc_exact.id)

    answer = await clients.admin.ExplainScreenCall(
        pb.ScreenCallRequest(tenant_id=A, number="+19005550123", direction=pb.DIRECTION_INBOUND)
    )
    assert (answer.result.decided_id, answer.result.decided_list) == (dnc_exact.id, "@dnc")
    # Exact before prefixes; among entries as specific, the tenant's own, then the lists as subscribed.
    assert [(c.entry.id, c.entry.tenant_id, c.qualifies, c.decided, c.explanation) for c in answer.candidates] == [
        (dnc_exact.id, "@dnc", True, True, "decided: exact match"),
        (
            fraud_exact.id,
            "@fraud",
            True,
            False,
            "an entry as specific decided first: the tenant's own, then the lists in subscription order",
        ),
        (own_prefix.id, A, True, False, "a more specific entry decided"),
        (dnc_prefix.id, "@dnc", True, False, "a more specific entry decided"),
    ]
    # A list's entry is shown without what is its keeper's: its note, and its hits (every subscriber's calls).
    listed = answer.candidates[0].entry
    assert (listed.note, listed.hit_count, listed.HasField("last_hit_time")) == ("", 0, False)
    # Another tenant, subscribed to nothing, considers none of the lists' entries.
    other = await clients.admin.ExplainScreenCall(
        pb.ScreenCallRequest(tenant_id="beta", number="+19005550123", direction=pb.DIRECTION_INBOUND)
    )
    assert other.result.verdict == pb.VERDICT_ALLOW and list(other.candidates) == []


async def test_explain_of_an_unlisted_or_withheld_number_allows_with_no_candidates(clients: Clients) -> None:
    for number in ("+4930123456", ""):
        answer = await clients.admin.ExplainScreenCall(
            pb.ScreenCallRequest(tenant_id=A, number=number, direction=pb.DIRECTION_INBOUND)
        )
        assert answer.result.verdict == pb.VERDICT_ALLOW
        assert list(answer.candidates) == []


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.ScreenCallRequest(tenant_id=A, number="+1 abc", direction=pb.DIRECTION_INBOUND), "number"),
        (pb.ScreenCallRequest(tenant_id=A, number="+1900"), "direction"),
        (pb.ScreenCallRequest(number="+1900", direction=pb.DIRECTION_INBOUND), "tenant_id"),
    ],
)
async def test_explain_refuses_what_screen_call_refuses(
    clients: Clients, request_: pb.ScreenCallRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.admin.ExplainScreenCall(request_)
    assert code_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (caught.value.details() or "")


async def test_list_tenants_pages_through_every_tenant_with_its_count(clients: Clients) -> None:
    tenants = [f"t{i:02d}" for i in range(7)]
    for i, tenant in enumerate(tenants):
        for j in range(i + 1):
            await create(clients, f"+4930{i}{j:03d}", tenant=tenant)
    seen: list[tuple[str, int]] = []
    token = ""
    while True:
        page = await clients.admin.ListTenants(pb.ListTenantsRequest(page_size=3, page_token=token))
        assert len(page.tenants) <= 3
        seen += [(t.tenant_id, t.entry_count) for t in page.tenants]
        token = page.next_page_token
        if not token:
            break
    assert seen == [(tenant, i + 1) for i, tenant in enumerate(tenants)]


async def test_caller_identity_without_an_auth_file_is_anonymous_with_every_right(clients: Clients) -> None:
    me = await clients.admin.GetCallerIdentity(pb.GetCallerIdentityRequest())
    assert (me.name, list(me.roles), list(me.tenants)) == (
        "anonymous",
        ["screen", "viewer", "admin", "platform"],
        ["*"],
    )

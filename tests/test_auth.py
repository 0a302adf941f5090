"""Tokens, roles and tenant scopes over every RPC, generated from the service descriptors."""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from screening.api import auth
from screening.api.registration import add_generic_only
from screening.app.config import Config
from screening.app.service import App
from screening.v1 import screening_pb2 as pb
from screening.v1 import screening_pb2_grpc as pb_grpc
from tests.support import StartServer, bearer, wait_until, with_database, write_auth_file

# Who may call each RPC, decided here independently of screening/auth.py. A
# new RPC fails test_every_rpc_is_classified until someone decides.
ROLE_OF = {
    "ScreenCall": "screen",
    "ScreenNumbers": "screen",
    "ScreenCallStream": "screen",
    "CreateForbiddenNumber": "admin",
    "GetForbiddenNumber": "viewer",
    "UpdateForbiddenNumber": "admin",
    "DeleteForbiddenNumber": "admin",
    "ListForbiddenNumbers": "viewer",
    "SetForbiddenNumbersEnabled": "admin",
    "ImportForbiddenNumbers": "admin",
    "GetImportJob": "viewer",
    "GetImportJobFailedRows": "viewer",
    "ListImportJobs": "viewer",
    "ExportForbiddenNumbers": "viewer",
    "ListAuditEvents": "viewer",
    "GetReplicaStatus": "viewer",
    "GetCallerIdentity": "screen",
    "GetTenantSettings": "viewer",
    "UpdateTenantSettings": "admin",
    "ReviewRegionChange": "viewer",
    "ConvertNumbersToRegion": "admin",
    "ListTenants": "viewer",
    "ExplainScreenCall": "viewer",
}
TENANT_FREE = {"GetReplicaStatus", "GetCallerIdentity", "ListTenants"}
# Any known token may call these, whatever its roles.
ANY_ROLE = {"GetCallerIdentity"}
TENANT = "acme"

# name -> (secret, roles, tenants); secrets are fresh per run so the log check means something.
TOKENS: dict[str, tuple[str, list[str], list[str]]] = {
    "switch": (secrets.token_urlsafe(24), ["screen"], [TENANT]),
    "reader": (secrets.token_urlsafe(24), ["viewer"], [TENANT, "globex"]),
    "manager": (secrets.token_urlsafe(24), ["admin"], [TENANT]),
    "switch-other": (secrets.token_urlsafe(24), ["screen"], ["other"]),
    "reader-other": (secrets.token_urlsafe(24), ["viewer"], ["other"]),
    "manager-other": (secrets.token_urlsafe(24), ["admin"], ["other"]),
    "root": (secrets.token_urlsafe(24), ["screen", "viewer", "admin"], ["*"]),
}
RIGHT = {"screen": "switch", "viewer": "reader", "admin": "manager"}
WRONG_ROLE = {"screen": "manager", "viewer": "switch", "admin": "reader"}
WRONG_TENANT = {"screen": "switch-other", "viewer": "reader-other", "admin": "manager-other"}
UNKNOWN_TOKEN = secrets.token_urlsafe(24)
DENIED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}

METHODS: list[MethodDescriptor] = [
    method for service in pb.DESCRIPTOR.services_by_name.values() for method in service.methods
]
CASES = ("no token", "unknown token", "wrong role", "wrong tenant", "right token")


def secret(name: str) -> str:
    return TOKENS[name][0]


def token_for(method: MethodDescriptor, case: str) -> str | None:
    role = ROLE_OF[method.name]
    return {
        "no token": None,
        "unknown token": UNKNOWN_TOKEN,
        "wrong role": secret(WRONG_ROLE[role]),
        "wrong tenant": secret(WRONG_TENANT[role]),
        "right token": secret(RIGHT[role]),
    }[case]


def expected(method: MethodDescriptor, case: str) -> set[grpc.StatusCode] | None:
    """The codes the case must end in; None: anything but a refusal."""
    if case in ("no token", "unknown token"):
        return {grpc.StatusCode.UNAUTHENTICATED}
    if case == "wrong role" and method.name in ANY_ROLE:
        return None
    if case == "wrong role" or (case == "wrong tenant" and method.name not in TENANT_FREE):
        return {grpc.StatusCode.PERMISSION_DENIED}
    return None


def requests_for(method: MethodDescriptor, tenant: str = TENANT) -> list[Any]:
    """Request messages naming `tenant` wherever the request type holds a tenant_id."""
    cls = message_factory.GetMessageClass(method.input_type)
    request = cls()
    if "tenant_id" in method.input_type.fields_by_name:
        request.tenant_id = tenant
    else:
        for field in method.input_type.fields:
            if field.message_type is not None and "tenant_id" in field.message_type.fields_by_name:
                getattr(request, field.name).tenant_id = tenant
                break
    if method.name == "ImportForbiddenNumbers":
        row = pb.ImportRow(line=2, number="+14155550100", call_type=pb.CALL_TYPE_BOTH)
        return [request, pb.ImportForbiddenNumbersRequest(rows=pb.ImportRowBatch(rows=[row]))]
    if method.input_type.name == "ScreenCallRequest" or method.input_type.name == "ScreenNumbersRequest":
        request.direction = pb.DIRECTION_INBOUND
    return [request]


# grpc.aio's client reports this in place of the server's status when one of
# its writes fails as the call ends (grpc/grpc#36066): a stream the server
# refuses while the client is still sending. Synchronous clients and other
# languages get the server's status; these tests check that status, so such a
# call is made again (the server ended it with an error: the retry asks the same).
_AIO_WRITE_RACE = (grpc.StatusCode.INTERNAL, "Internal error from Core")


async def invoke(
    channel: grpc.aio.Channel, method: MethodDescriptor, token: str | None, messages: list[Any]
) -> tuple[grpc.StatusCode, list[Any]]:
    for _ in range(5):
        code, details, responses = await _invoke_once(channel, method, token, messages)
        if not (method.client_streaming and (code, details) == _AIO_WRITE_RACE):
            return code, responses
    raise AssertionError(f"{method.name}: {_AIO_WRITE_RACE} five times in a row")


async def _invoke_once(
    channel: grpc.aio.Channel, method: MethodDescriptor, token: str | None, messages: list[Any]
) -> tuple[grpc.StatusCode, str | None, list[Any]]:
    path = f"/{method.containing_service.full_name}/{method.name}"
    request_cls = message_factory.GetMessageClass(method.input_type)
    response_cls = message_factory.GetMessageClass(method.output_type)
    kwargs: dict[str, Any] = {
        "request_serializer": request_cls.SerializeToString,
        "response_deserializer": response_cls.FromString,
    }
    metadata = bearer(token) if token is not None else None
    responses: list[Any] = []
    try:
        if not method.client_streaming and not method.server_streaming:
            responses.append(await channel.unary_unary(path, **kwargs)(messages[0], metadata=metadata, timeout=10))
        elif not method.client_streaming:
            async for response in channel.unary_stream(path, **kwargs)(messages[0], metadata=metadata, timeout=10):
                responses.append(response)
        elif not method.server_streaming:
            responses.append(await channel.stream_unary(path, **kwargs)(iter(messages), metadata=metadata, timeout=10))
        else:
            async for response in channel.stream_stream(path, **kwargs)(iter(messages), metadata=metadata, timeout=10):
                responses.append(response)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details(), responses
    return grpc.StatusCode.OK, None, responses


@pytest.fixture(scope="module")
def auth_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_auth_file(tmp_path_factory.mktemp("auth") / "tokens.toml", TOKENS)


@pytest.fixture(scope="module")
async def auth_app(cluster_url: str, auth_path: Path) -> AsyncIterator[App]:
    """One authenticated server for the whole matrix: starting one per case would cost more than the cases."""
    name = "t_" + uuid.uuid4().hex[:16]
    admin = await asyncpg.connect(cluster_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = with_database(cluster_url, name)
    # The matrix fails authentication on purpose, hundreds of times, from one address.
    config = Config(listen="127.0.0.1:0", database_url=dsn, auth_file=auth_path, auth_failures_burst=1_000_000)
    app = await App(config, dsn).start()
    try:
        await wait_until(lambda: app.replica.ready, within=20)
        yield app
    finally:
        await app.stop(grace=0)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="module")
async def channel(auth_app: App) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{auth_app.port}") as ch:
        yield ch


def test_every_rpc_is_classified() -> None:
    """A new RPC must be classified here and get a rule on the server."""
    assert {m.name for m in METHODS} == set(ROLE_OF)
    server_rules = auth.rules()
    assert set(server_rules) == {f"/{m.containing_service.full_name}/{m.name}" for m in METHODS}
    for method in METHODS:
        rule = server_rules[f"/{method.containing_service.full_name}/{method.name}"]
        assert ROLE_OF[method.name] in rule.roles
        assert (rule.tenant_of is None) == (method.name in TENANT_FREE)
        assert (rule.client_streaming, rule.server_streaming) == (method.client_streaming, method.server_streaming)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
async def test_auth_matrix(channel: grpc.aio.Channel, method: MethodDescriptor, case: str) -> None:
    code, _ = await invoke(channel, method, token_for(method, case), requests_for(method))
    want = expected(method, case)
    if want is None:
        assert code not in DENIED, f"{method.name} / {case}: refused with {code}"
        assert code != grpc.StatusCode.UNKNOWN
    else:
        assert code in want, f"{method.name} / {case}: got {code}, want {want}"


@pytest.mark.parametrize("method", [m for m in METHODS if ROLE_OF[m.name] == "viewer"], ids=lambda m: m.name)
async def test_admin_may_also_read(channel: grpc.aio.Channel, method: MethodDescriptor) -> None:
    code, _ = await invoke(channel, method, secret("manager"), requests_for(method))
    assert code not in DENIED


async def test_screen_token_cannot_use_admin_and_viewer_cannot_write(channel: grpc.aio.Channel) -> None:
    admin = pb_grpc.ForbiddenNumberAdminStub(channel)
    entry = pb.ForbiddenNumber(tenant_id=TENANT, number="+14155550111", call_type=pb.CALL_TYPE_BOTH)
    for name in ("switch", "reader", "manager-other"):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await admin.CreateForbiddenNumber(
                pb.CreateForbiddenNumberRequest(forbidden_number=entry), metadata=bearer(secret(name))
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert name in (refused.value.details() or "")
    created = await admin.CreateForbiddenNumber(
        pb.CreateForbiddenNumberRequest(forbidden_number=entry), metadata=bearer(secret("manager"))
    )
    assert created.tenant_id == TENANT


async def test_token_of_several_tenants_reaches_each_and_no_other(channel: grpc.aio.Channel) -> None:
    admin = pb_grpc.ForbiddenNumberAdminStub(channel)
    for tenant in (TENANT, "globex"):
        await admin.ListForbiddenNumbers(
            pb.ListForbiddenNumbersRequest(tenant_id=tenant), metadata=bearer(secret("reader"))
        )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await admin.ListForbiddenNumbers(
            pb.ListForbiddenNumbersRequest(tenant_id="initech"), metadata=bearer(secret("reader"))
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_malformed_authorization_is_unauthenticated(channel: grpc.aio.Channel) -> None:
    screening = pb_grpc.ScreeningStub(channel)
    request = pb.ScreenCallRequest(tenant_id=TENANT, number="+14155550100", direction=pb.DIRECTION_INBOUND)
    for value in (f"Basic {secret('switch')}", secret("switch"), "Bearer ", "Bearer"):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await screening.ScreenCall(request, metadata=(("authorization", value),))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # The scheme is case-insensitive (RFC 7235).
    response = await screening.ScreenCall(request, metadata=(("authorization", f"bearer {secret('switch')}"),))
    assert response.normalized_number == "+14155550100"


async def test_empty_tenant_needs_a_wildcard_token_and_then_is_invalid(channel: grpc.aio.Channel) -> None:
    screening = pb_grpc.ScreeningStub(channel)
    request = pb.ScreenCallRequest(tenant_id="", number="+14155550100", direction=pb.DIRECTION_INBOUND)
    with pytest.raises(grpc.aio.AioRpcError) as scoped:
        await screening.ScreenCall(request, metadata=bearer(secret("switch")))
    assert scoped.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as wildcard:
        await screening.ScreenCall(request, metadata=bearer(secret("root")))
    assert wildcard.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tenant_id" in (wildcard.value.details() or "")


async def test_every_message_of_a_screening_stream_is_checked(channel: grpc.aio.Channel) -> None:
    screening = pb_grpc.ScreeningStub(channel)
    mine = pb.ScreenCallRequest(tenant_id=TENANT, number="+14155550100", direction=pb.DIRECTION_INBOUND, call_id="1")
    theirs = pb.ScreenCallRequest(tenant_id="other", number="+14155550100", direction=pb.DIRECTION_INBOUND, call_id="2")
    answered = []
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for response in screening.ScreenCallStream(
            iter([mine, mine, theirs, mine]), metadata=bearer(secret("switch"))
        ):
            answered.append(response.call_id)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert answered == ["1", "1"]


async def test_health_and_reflection_need_no_token(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    answer = await health.Check(health_pb2.HealthCheckRequest(service="screening.v1.Screening"))
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    services: list[str] = []
    async for reply in reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    ):
        services += [s.name for s in reply.list_services_response.service]
    assert {"screening.v1.Screening", "screening.v1.ForbiddenNumberAdmin"} <= set(services)


async def test_a_refused_import_commits_nothing(auth_app: App, channel: grpc.aio.Channel) -> None:
    method = pb.DESCRIPTOR.services_by_name["ForbiddenNumberAdmin"].methods_by_name["ImportForbiddenNumbers"]
    code, _ = await invoke(channel, method, secret("manager"), requests_for(method, tenant="other"))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    conn = await asyncpg.connect(auth_app.dsn)
    try:
        # Scoped to the refused tenant: the matrix above imports into TENANT with allowed tokens.
        refused = "tenant_id = 'other'"
        assert await conn.fetchval(f"SELECT count(*) FROM forbidden_numbers WHERE {refused}") == 0
        assert await conn.fetchval(f"SELECT count(*) FROM audit_events WHERE {refused} AND action = 'import'") == 0
        if await conn.fetchval("SELECT to_regclass('import_jobs')") is not None:
            assert await conn.fetchval("SELECT count(*) FROM import_jobs WHERE tenant_id = 'other'") == 0
    finally:
        await conn.close()


async def test_actor_is_the_token_name_even_under_concurrency(channel: grpc.aio.Channel) -> None:
    admin = pb_grpc.ForbiddenNumberAdminStub(channel)
    names = ["manager", "root"] * 20

    async def create(i: int, name: str) -> tuple[str, str]:
        entry = pb.ForbiddenNumber(tenant_id=TENANT, number=f"+1415556{i:04d}", call_type=pb.CALL_TYPE_BOTH)
        created = await admin.CreateForbiddenNumber(
            pb.CreateForbiddenNumberRequest(forbidden_number=entry), metadata=bearer(secret(name))
        )
        return created.id, name

    made = dict(await asyncio.gather(*(create(i, name) for i, name in enumerate(names))))
    for entry_id, name in made.items():
        page = await admin.ListAuditEvents(
            pb.ListAuditEventsRequest(tenant_id=TENANT, resource_id=entry_id), metadata=bearer(secret("reader"))
        )
        assert [(e.actor, e.action) for e in page.audit_events] == [(name, "create")]


class RecordingAdmin(pb_grpc.ForbiddenNumberAdminServicer):
    """Records what reaches the handler, to show a refused stream never starts it."""

    def __init__(self) -> None:
        self.received: list[Any] = []

    async def ImportForbiddenNumbers(  # type: ignore[override]
        self, request_iterator: AsyncIterator[pb.ImportForbiddenNumbersRequest], context: Any
    ) -> pb.ImportJob:
        self.received.append("started")
        async for request in request_iterator:
            self.received.append(request.WhichOneof("payload"))
        return pb.ImportJob(tenant_id=TENANT)

    async def ExportForbiddenNumbers(  # type: ignore[override]
        self, request: pb.ExportForbiddenNumbersRequest, context: Any
    ) -> None:
        # The reader-writer style: a coroutine writing to the context, not a generator.
        self.received.append("export")
        await context.write(pb.ForbiddenNumber(tenant_id=request.tenant_id, number="+1"))


@pytest.fixture
async def recording_server(auth_path: Path) -> AsyncIterator[tuple[grpc.aio.Channel, RecordingAdmin]]:
    from screening.api import tokens

    recorder = RecordingAdmin()
    guard = auth.Auth(tokens.load(auth_path)).guard
    # Assembled as App assembles its server: each handler wrapped once where it is added.
    server = grpc.aio.server()
    add_generic_only(pb_grpc.add_ForbiddenNumberAdminServicer_to_server, recorder, server, wrap=guard)
    # A served method no rule covers stays closed.
    unruled = {"Do": guard("/test.Unruled/Do", grpc.unary_unary_rpc_method_handler(_echo))}
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Unruled", unruled)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            yield ch, recorder
    finally:
        await server.stop(0)


async def _echo(request: bytes, context: Any) -> bytes:
    return request


async def test_refused_import_header_never_reaches_the_handler(
    recording_server: tuple[grpc.aio.Channel, RecordingAdmin],
) -> None:
    channel, recorder = recording_server
    method = pb.DESCRIPTOR.services_by_name["ForbiddenNumberAdmin"].methods_by_name["ImportForbiddenNumbers"]
    code, _ = await invoke(channel, method, secret("manager"), requests_for(method, tenant="other"))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert recorder.received == []
    code, _ = await invoke(channel, method, secret("manager"), requests_for(method))
    assert code == grpc.StatusCode.OK
    assert recorder.received == ["started", "header", "rows"]
    # A second header naming a foreign tenant is refused when the handler reads it.
    recorder.received.clear()
    smuggled = [requests_for(method)[0], *requests_for(method, tenant="other")]
    code, _ = await invoke(channel, method, secret("manager"), smuggled)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    # ["started", "header"], once per attempt (invoke repeats a call grpc.aio misreports).
    assert recorder.received[:2] == ["started", "header"] and set(recorder.received) == {"started", "header"}


async def test_a_handler_writing_to_the_context_is_guarded_too(
    recording_server: tuple[grpc.aio.Channel, RecordingAdmin],
) -> None:
    channel, recorder = recording_server
    method = pb.DESCRIPTOR.services_by_name["ForbiddenNumberAdmin"].methods_by_name["ExportForbiddenNumbers"]
    code, _ = await invoke(channel, method, secret("reader"), requests_for(method, tenant="other"))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert recorder.received == []
    code, responses = await invoke(channel, method, secret("reader"), requests_for(method))
    assert code == grpc.StatusCode.OK
    assert [r.tenant_id for r in responses] == [TENANT]


async def test_a_served_method_without_a_rule_is_closed(
    recording_server: tuple[grpc.aio.Channel, RecordingAdmin],
) -> None:
    channel, _ = recording_server
    call = channel.unary_unary("/test.Unruled/Do")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(b"x", metadata=bearer(secret("root")))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_service_without_roles_stops_the_server_from_starting() -> None:
    from google.protobuf import descriptor_pb2, descriptor_pool

    proto = descriptor_pb2.FileDescriptorProto(name="extra.proto", package="extra")
    proto.message_type.add(name="Req").field.add(
        name="tenant_id", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING
    )
    service = proto.service.add(name="Extra")
    service.method.add(name="Do", input_type=".extra.Req", output_type=".extra.Req")
    pool = descriptor_pool.DescriptorPool()
    file = pool.Add(proto) and pool.FindFileByName("extra.proto")
    with pytest.raises(RuntimeError, match="has no kind"):
        auth.rules(file)


async def test_no_token_ever_reaches_the_logs(channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for method in METHODS:
        for case in CASES:
            await invoke(channel, method, token_for(method, case), requests_for(method))
    assert any("refused" in r.getMessage() for r in caplog.records), "the refusals are logged"
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records) + caplog.text
    for secret_value in [UNKNOWN_TOKEN, *(t[0] for t in TOKENS.values())]:
        assert secret_value not in text


async def test_caller_identity_names_the_token_its_roles_and_tenants(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.ForbiddenNumberAdminStub(channel)
    me = await stub.GetCallerIdentity(pb.GetCallerIdentityRequest(), metadata=bearer(secret("reader")))
    assert (me.name, list(me.roles), list(me.tenants)) == ("reader", ["viewer"], sorted([TENANT, "globex"]))
    root = await stub.GetCallerIdentity(pb.GetCallerIdentityRequest(), metadata=bearer(secret("root")))
    assert (list(root.roles), list(root.tenants)) == (["admin", "screen", "viewer"], ["*"])


async def test_list_tenants_shows_only_the_tokens_tenants(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.ForbiddenNumberAdminStub(channel)
    for tenant in (TENANT, "globex", "other", "initech"):
        await stub.CreateForbiddenNumber(
            pb.CreateForbiddenNumberRequest(
                forbidden_number=pb.ForbiddenNumber(
                    tenant_id=tenant, number="+4930555" + str(len(tenant)), call_type=pb.CALL_TYPE_BOTH
                )
            ),
            metadata=bearer(secret("root")),
        )
    seen = await stub.ListTenants(pb.ListTenantsRequest(), metadata=bearer(secret("reader")))
    assert {t.tenant_id for t in seen.tenants} <= {TENANT, "globex"}
    assert {"globex"} <= {t.tenant_id for t in seen.tenants}
    everything = await stub.ListTenants(pb.ListTenantsRequest(), metadata=bearer(secret("root")))
    assert {TENANT, "globex", "other", "initech"} <= {t.tenant_id for t in everything.tenants}


async def test_failed_authentication_is_throttled_per_address_and_counted(
    start_server: StartServer, auth_path: Path
) -> None:
    app = await start_server(auth_file=auth_path, auth_failures_burst=5, auth_failures_per_second=2.0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = pb_grpc.ScreeningStub(ch)
        request = pb.ScreenCallRequest(tenant_id=TENANT, number="+4930123", direction=pb.DIRECTION_INBOUND)
        # A token seen valid before is never throttled, whatever its address does.
        await stub.ScreenCall(request, metadata=bearer(secret("switch")))
        codes = []
        for _ in range(8):
            try:
                await stub.ScreenCall(request, metadata=bearer(UNKNOWN_TOKEN))
            except grpc.aio.AioRpcError as error:
                codes.append(error.code())
        assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 5 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3
        assert (await stub.ScreenCall(request, metadata=bearer(secret("switch")))).verdict == pb.VERDICT_ALLOW
        # A right token not seen before is refused too while the address is throttled: guessing gains nothing.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ScreenCall(request, metadata=bearer(secret("root")))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "retry in" in (
            caught.value.details() or ""
        )
        await asyncio.sleep(0.6)  # one more try per half second
        assert (await stub.ScreenCall(request, metadata=bearer(secret("root")))).verdict == pb.VERDICT_ALLOW
    failures = {
        r: app.metrics.registry.get_sample_value("screening_auth_failures_total", {"reason": r})
        for r in ("unknown", "throttled")
    }
    assert failures == {"unknown": 5.0, "throttled": 4.0}


async def test_replica_status_shows_a_scoped_token_only_its_tenants_entries(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.ForbiddenNumberAdminStub(channel)
    for tenant, count in ((TENANT, 2), ("globex", 1), ("other", 3)):
        for i in range(count):
            await stub.CreateForbiddenNumber(
                pb.CreateForbiddenNumberRequest(
                    forbidden_number=pb.ForbiddenNumber(
                        tenant_id=tenant, number=f"+3361000{i}{len(tenant)}", call_type=pb.CALL_TYPE_BOTH
                    )
                ),
                metadata=bearer(secret("root")),
            )

    async def counts() -> tuple[int, int]:
        scoped = await stub.GetReplicaStatus(pb.GetReplicaStatusRequest(), metadata=bearer(secret("reader")))
        everything = await stub.GetReplicaStatus(pb.GetReplicaStatusRequest(), metadata=bearer(secret("root")))
        return scoped.entries, everything.entries

    scoped, _ = await counts()
    listing = await stub.ListTenants(pb.ListTenantsRequest(), metadata=bearer(secret("reader")))
    stored = {t.tenant_id: t.entry_count for t in listing.tenants}
    assert scoped == sum(stored.values()) and set(stored) <= {TENANT, "globex"}

    async def caught_up() -> bool:
        scoped, everything = await counts()
        return everything >= scoped + 3  # the whole list holds the other tenant's entries too

    await wait_until(caught_up, within=2)

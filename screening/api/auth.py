"""Who may call what: bearer tokens, roles and tenant scopes, checked around each handler.

The rules come from the service descriptors, so every RPC of the proto has
one: a service or a tenant-free RPC nobody decided about stops the server
from starting instead of being served open. Health and reflection stay open.

Checks, in order: a known token (else UNAUTHENTICATED), a role the RPC
accepts (else PERMISSION_DENIED), then the tenant of every request message
(else PERMISSION_DENIED). For client streams the first message is checked
before the handler starts, so a refused import never begins; later messages
are checked as the handler reads them.

`Auth.guard` wraps each handler once, where services are added to the
server (screening/registration.py): not an interceptor, since grpc.aio runs
a server interceptor on every call, and one that only passes calls on costs
ScreenCall 2.6% of its throughput.

The token's name reaches the handler through a ContextVar, set in the
call's own task.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.descriptor import Descriptor, FileDescriptor

from screening.api.tokens import ROLES, Token, TokenTable
from screening.v1 import screening_pb2 as pb

log = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
OPEN_SERVICES = frozenset(
    {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"}
)
# Read-only admin RPCs; every other ForbiddenNumberAdmin RPC needs admin.
VIEWER_RPCS = frozenset(
    {
        "GetForbiddenNumber",
        "ListForbiddenNumbers",
        "ExportForbiddenNumbers",
        "GetImportJob",
        "GetImportJobFailedRows",
        "ListImportJobs",
        "ListAuditEvents",
        "GetReplicaStatus",
        "ListTenants",
        "ExplainScreenCall",
    }
)
# RPCs about the replica or the caller, not about one tenant's data (ListTenants
# answers only with the tenants the caller may act for).
TENANT_FREE_RPCS = frozenset({"GetReplicaStatus", "GetCallerIdentity", "ListTenants"})
# RPCs any known token may call, whatever its roles.
ANY_ROLE_RPCS = frozenset({"GetCallerIdentity"})
_BEARER = "bearer "

_caller: ContextVar[Token | None] = ContextVar("screening_caller", default=None)


def caller_name() -> str:
    """The calling token's name, or "anonymous" when the server has no auth file."""
    token = _caller.get()
    return ANONYMOUS if token is None else token.name


def caller() -> Token | None:
    """The calling token; None when the server has no auth file (every caller may do anything)."""
    return _caller.get()


TenantOf = Callable[[Any], str | None]


@dataclass(frozen=True, slots=True)
class Rule:
    method: str
    roles: frozenset[str]
    # None: the RPC is not about a tenant.
    tenant_of: TenantOf | None
    client_streaming: bool
    server_streaming: bool


def _roles(service: str, method: str) -> frozenset[str]:
    if method in ANY_ROLE_RPCS:
        return frozenset(ROLES)
    if service == "Screening":
        return frozenset({"screen"})
    if service == "ForbiddenNumberAdmin":
        return frozenset({"viewer", "admin"}) if method in VIEWER_RPCS else frozenset({"admin"})
    raise RuntimeError(f"service {service!r} has no roles: decide who may call it in screening/auth.py")


def _tenant_reader(message: Descriptor) -> TenantOf | None:
    """Where a request names its tenant: a tenant_id field, or one in a message field (resource, import header)."""
    if "tenant_id" in message.fields_by_name:
        return _read_tenant_id
    for field in message.fields:
        inner = field.message_type
        if inner is not None and "tenant_id" in inner.fields_by_name:
            return _nested_reader(field.name)
    return None


def _read_tenant_id(request: Any) -> str:
    return request.tenant_id  # type: ignore[no-any-return]


def _nested_reader(name: str) -> TenantOf:
    def read(request: Any) -> str | None:
        # An import's row batches carry no tenant: the header named it.
        return getattr(request, name).tenant_id if request.HasField(name) else None

    return read


def rules(file: FileDescriptor = pb.DESCRIPTOR) -> dict[str, Rule]:
    """One rule per RPC of the file's services, keyed by the method path gRPC uses."""
    found: dict[str, Rule] = {}
    for service in file.services_by_name.values():
        for method in service.methods:
            tenant_of = _tenant_reader(method.input_type)
            if tenant_of is None and method.name not in TENANT_FREE_RPCS:
                raise RuntimeError(
                    f"{service.name}.{method.name}: its request names no tenant; "
                    "add it to TENANT_FREE_RPCS in screening/auth.py only if it exposes no tenant's data"
                )
            path = f"/{service.full_name}/{method.name}"
            found[path] = Rule(
                method=path,
                roles=_roles(service.name, method.name),
                tenant_of=tenant_of,
                client_streaming=method.client_streaming,
                server_streaming=method.server_streaming,
            )
    return found


if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
else:
    Handler = grpc.RpcMethodHandler
_MAKERS: dict[tuple[bool, bool], Callable[..., Handler]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def _refusal(client_streaming: bool, server_streaming: bool, code: grpc.StatusCode, message: str) -> Handler:
    """A handler of the RPC's own streaming shape that only aborts."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        # A coroutine serves every shape in grpc.aio; no message is read.
        await context.abort(code, message)

    return _MAKERS[client_streaming, server_streaming](refuse)


# The caller's token, or why it is refused.
Identify = Callable[[Rule, Any], "Token | tuple[grpc.StatusCode, str]"]


def _guard(rule: Rule, inner: Handler, identify: Identify) -> Handler:
    """`inner` behind the token, role and tenant checks of `rule`; built once per RPC."""
    tenant_of = rule.tenant_of
    method = rule.method
    kwargs = {"request_deserializer": inner.request_deserializer, "response_serializer": inner.response_serializer}
    denied = grpc.StatusCode.PERMISSION_DENIED

    async def admit(context: grpc.aio.ServicerContext[Any, Any]) -> Token:
        token = identify(rule, context.invocation_metadata())
        if not isinstance(token, Token):
            await context.abort(*token)
            raise AssertionError("unreachable")  # abort always raises
        _caller.set(token)
        return token

    async def deny(context: grpc.aio.ServicerContext[Any, Any], token: Token, tenant: str) -> None:
        log.info("refused %s for token %r: tenant %r out of scope", method, token.name, tenant)
        await context.abort(denied, f"token {token.name!r} may not act for tenant {tenant!r} ({method})")

    async def check(request: Any, context: grpc.aio.ServicerContext[Any, Any], token: Token) -> None:
        tenant = tenant_of(request) if tenant_of is not None else None
        if tenant is not None and not token.may_act_for(tenant):
            await deny(context, token, tenant)

    if not rule.client_streaming:
        if not rule.server_streaming:
            behaviour: Any = inner.unary_unary  # grpc.aio's coroutines; the stubs know sync handlers only

            # The hot path (ScreenCall): the check is inlined.
            async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                token = identify(rule, context.invocation_metadata())
                if not isinstance(token, Token):
                    await context.abort(*token)
                    raise AssertionError("unreachable")  # abort always raises
                _caller.set(token)
                if tenant_of is not None:
                    tenant = tenant_of(request)
                    if tenant is not None and not token.may_act_for(tenant):
                        await deny(context, token, tenant)
                return await behaviour(request, context)

            return grpc.unary_unary_rpc_method_handler(unary_unary, **kwargs)

        streamer: Any = inner.unary_stream  # grpc.aio's coroutines; the stubs know sync handlers only

        if not inspect.isasyncgenfunction(streamer):
            # Written against context.write(): a coroutine, and so is its guard.
            async def unary_writer(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
                token = await admit(context)
                await check(request, context, token)
                await streamer(request, context)

            return grpc.unary_stream_rpc_method_handler(unary_writer, **kwargs)

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            token = await admit(context)
            await check(request, context, token)
            async for response in streamer(request, context):
                yield response

        return grpc.unary_stream_rpc_method_handler(unary_stream, **kwargs)

    async def checked(
        requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any] | None:
        """The request stream with its first message checked already; None when the client sent nothing."""
        token = await admit(context)
        stream = aiter(requests)
        try:
            first = await anext(stream)
        except StopAsyncIteration:
            return None
        await check(first, context, token)

        async def rest() -> AsyncIterator[Any]:
            yield first
            async for request in stream:
                await check(request, context, token)
                yield request

        return rest()

    if not rule.server_streaming:
        consumer: Any = inner.stream_unary  # grpc.aio's coroutines; the stubs know sync handlers only

        async def stream_unary(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            stream = await checked(requests, context)
            return await consumer(_nothing() if stream is None else stream, context)

        return grpc.stream_unary_rpc_method_handler(stream_unary, **kwargs)

    bidi: Any = inner.stream_stream  # grpc.aio's coroutines; the stubs know sync handlers only

    if not inspect.isasyncgenfunction(bidi):

        async def stream_writer(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]) -> None:
            stream = await checked(requests, context)
            await bidi(_nothing() if stream is None else stream, context)

        return grpc.stream_stream_rpc_method_handler(stream_writer, **kwargs)

    async def stream_stream(
        requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        stream = await checked(requests, context)
        async for response in bidi(_nothing() if stream is None else stream, context):
            yield response

    return grpc.stream_stream_rpc_method_handler(stream_stream, **kwargs)


async def _nothing() -> AsyncIterator[Any]:
    return
    yield  # makes this an (empty) async generator


def bearer_token(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            text = str(value)
            if text.startswith("Bearer ") or text[: len(_BEARER)].lower() == _BEARER:
                return text[len(_BEARER) :].strip()
            return ""
    return None


class Auth:
    def __init__(self, tokens: TokenTable, rule_table: Mapping[str, Rule] | None = None) -> None:
        # Replaced whole on reload; a call sees either the old or the new table.
        self.tokens = tokens
        self._rules = dict(rules() if rule_table is None else rule_table)

    def guard(self, path: str, handler: Handler) -> Handler:
        """The handler of the method at `path`, behind the checks its rule asks for."""
        rule = self._rules.get(path)
        if rule is not None:
            return _guard(rule, handler, self.identify)
        if path.split("/")[1] in OPEN_SERVICES:
            return handler
        # Served, yet in no rule: closed until someone decides who may call it.
        log.warning("%s has no authorization rule: every call to it is refused", path)
        return _refusal(
            handler.request_streaming,
            handler.response_streaming,
            grpc.StatusCode.PERMISSION_DENIED,
            f"{path} has no authorization rule",
        )

    def identify(self, rule: Rule, metadata: Any) -> Token | tuple[grpc.StatusCode, str]:
        """The calling token, if it may call the rule's method; else the refusal."""
        method = rule.method
        presented = bearer_token(metadata)
        token = self.tokens.find(presented) if presented else None
        if token is None:
            if presented is None:
                reason = "missing 'authorization: Bearer <token>' metadata"
            elif not presented:
                reason = "authorization metadata is not of the form 'Bearer <token>'"
            else:
                reason = "unknown token"
            log.debug("refused %s: %s", method, reason)
            return grpc.StatusCode.UNAUTHENTICATED, f"{reason} ({method})"
        if rule.roles.isdisjoint(token.roles):
            needed = " or ".join(sorted(rule.roles))
            log.info("refused %s for token %r: lacks role %s", method, token.name, needed)
            return (
                grpc.StatusCode.PERMISSION_DENIED,
                f"token {token.name!r} lacks the role {needed} that {method} needs",
            )
        return token

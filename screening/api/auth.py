"""Who may call what: bearer tokens, roles and tenant scopes, a concern around each handler.

The rules come from the service descriptors (screening.api.methods), so every
RPC of the proto has one: a service or a tenant-free RPC nobody decided
about stops the server from starting instead of being served open. Health
and reflection stay open.

Checks, in order: a known token (else UNAUTHENTICATED), a role the RPC's
kind accepts (else PERMISSION_DENIED), then the tenant of every request
message (else PERMISSION_DENIED). For client streams the first message is
checked before the handler starts, so a refused import never begins; later
messages are checked as the handler reads them (screening.api.wrapping).

The token reaches the handler through a ContextVar, set in the call's own task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FileDescriptor

from screening.api.methods import TENANT_FREE_RPCS, Kind, methods
from screening.api.throttle import FailedAuthThrottle, address
from screening.api.tokens import ROLES, Token, TokenTable
from screening.api.wrapping import Concern, Context, Handler, Refusal, wrap
from screening.domain.errors import quoted
from screening.v1 import screening_pb2 as pb

log = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
OPEN_SERVICES = frozenset(
    {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"}
)
ROLES_OF_KIND: dict[Kind, frozenset[str]] = {
    Kind.SCREEN: frozenset({"screen"}),
    Kind.READ: frozenset({"viewer", "admin", "platform"}),
    # Which of the two, the tenant decides: a shared list ("@...") needs platform, any other tenant admin.
    Kind.WRITE: frozenset({"admin", "platform"}),
    Kind.IDENTITY: frozenset(ROLES),
}
LIST_PREFIX = "@"
_BEARER = "bearer "
FAILURE_REASONS = ("missing", "malformed", "unknown", "throttled")

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
    # Writes: a shared list's need the platform role, another tenant's the admin role.
    writes: bool = False


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
    for path, method in methods(file).items():
        tenant_of = _tenant_reader(method.descriptor.input_type)
        if tenant_of is None and method.name not in TENANT_FREE_RPCS:
            raise RuntimeError(
                f"{method.service}.{method.name}: its request names no tenant; "
                "add it to TENANT_FREE_RPCS in screening/api/methods.py only if it exposes no tenant's data"
            )
        found[path] = Rule(
            method=path,
            roles=ROLES_OF_KIND[method.kind],
            tenant_of=tenant_of,
            client_streaming=method.client_streaming,
            server_streaming=method.server_streaming,
            writes=method.kind is Kind.WRITE,
        )
    return found


def bearer_token(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            text = str(value)
            if text.startswith("Bearer ") or text[: len(_BEARER)].lower() == _BEARER:
                return text[len(_BEARER) :].strip()
            return ""
    return None


class Auth:
    def __init__(
        self,
        tokens: TokenTable,
        rule_table: Mapping[str, Rule] | None = None,
        throttle: FailedAuthThrottle | None = None,
    ) -> None:
        # Replaced whole on reload; a call sees either the old or the new table.
        self.tokens = tokens
        self._rules = dict(rules() if rule_table is None else rule_table)
        self.throttle = FailedAuthThrottle() if throttle is None else throttle
        # Failed authentications by reason: missing, malformed, unknown, throttled (read by the metrics).
        self.failures = dict.fromkeys(FAILURE_REASONS, 0)

    def rule(self, path: str) -> Rule | None:
        return self._rules.get(path)

    def concern(self, path: str) -> Concern | None:
        """The checks of the method at `path`; None for a method no rule covers."""
        rule = self._rules.get(path)
        if rule is None:
            return None
        identify = self.identify
        tenant_of = rule.tenant_of
        method = rule.method
        writes = rule.writes

        def begin(context: Context) -> Token | Refusal:
            token = identify(rule, context.invocation_metadata(), context.peer)
            if type(token) is Token:
                _caller.set(token)
            return token

        def request(token: Token, message: Any) -> Refusal | None:
            tenant = tenant_of(message) if tenant_of is not None else None
            if tenant is None:
                return None
            if writes:
                needed = "platform" if tenant.startswith(LIST_PREFIX) else "admin"
                if needed not in token.roles:
                    return Refusal(
                        grpc.StatusCode.PERMISSION_DENIED,
                        f"token {token.name!r} lacks the role {needed} that writing {quoted(tenant)} needs ({method})",
                    )
            if token.may_act_for(tenant):
                return None
            log.info("refused %s for token %r: tenant %s out of scope", method, token.name, quoted(tenant))
            return Refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                f"token {token.name!r} may not act for tenant {quoted(tenant)} ({method})",
            )

        return Concern(begin=begin, request=request if tenant_of is not None else None)

    def closed(self, path: str, handler: Handler) -> Handler:
        """A method served yet in no rule: open for health and reflection, else refused until someone decides."""
        if path.split("/")[1] in OPEN_SERVICES:
            return handler
        log.warning("%s has no authorization rule: every call to it is refused", path)
        refusal = Refusal(grpc.StatusCode.PERMISSION_DENIED, f"{path} has no authorization rule")
        return wrap(handler, [Concern(begin=lambda _context: refusal)], None)

    def guard(self, path: str, handler: Handler) -> Handler:
        """The handler of the method at `path` behind its checks, and nothing else (tests assemble servers so)."""
        concern = self.concern(path)
        return self.closed(path, handler) if concern is None else wrap(handler, [concern], None)

    def identify(self, rule: Rule, metadata: Any, peer: Callable[[], str] = lambda: "") -> Token | Refusal:
        """The calling token, if it may call the rule's method; else the refusal.

        A token seen valid before is found at once; anything else is first
        checked against the throttle of the caller's address.
        """
        method = rule.method
        presented = bearer_token(metadata)
        token = self.tokens.known(presented) if presented else None
        if token is None:
            where = address(peer())
            wait = self.throttle.wait(where)
            if wait:
                self.failures["throttled"] += 1
                log.info("refused %s from %s: too many failed authentications", method, where)
                return Refusal(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"too many failed authentications from this address; retry in {wait:.1f}s ({method})",
                )
            token = self.tokens.find(presented) if presented else None
            if token is None:
                if presented is None:
                    failure, reason = "missing", "missing 'authorization: Bearer <token>' metadata"
                elif not presented:
                    failure, reason = "malformed", "authorization metadata is not of the form 'Bearer <token>'"
                else:
                    failure, reason = "unknown", "unknown token"
                self.failures[failure] += 1
                self.throttle.failed(where)
                log.debug("refused %s: %s", method, reason)
                return Refusal(grpc.StatusCode.UNAUTHENTICATED, f"{reason} ({method})")
        if rule.roles.isdisjoint(token.roles):
            needed = " or ".join(sorted(rule.roles))
            log.info("refused %s for token %r: lacks role %s", method, token.name, needed)
            return Refusal(
                grpc.StatusCode.PERMISSION_DENIED, f"token {token.name!r} lacks the role {needed} that {method} needs"
            )
        return token

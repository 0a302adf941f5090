"""The console's one way to the data: the server's ForbiddenNumberAdmin gRPC API.

Each call carries the signed-in person's token, so the server decides who may
do what (roles, tenants) and writes their name into the audit trail; the
console holds no rights of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from screening.console.config import ConsoleConfig
from screening.v1 import screening_pb2 as pb
from screening.v1 import screening_pb2_grpc as pb_grpc

# A page waits at most this long for one answer; imports and exports stream longer.
CALL_TIMEOUT = 15.0
_DETAILS_KEY = "grpc-status-details-bin"


@dataclass
class ApiError(Exception):
    """A failed call: its status code, the server's message, and the fields it names."""

    code: grpc.StatusCode
    message: str
    # Field path (e.g. "forbidden_number.number") -> what is wrong with it.
    fields: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def api_error(error: grpc.aio.AioRpcError) -> ApiError:
    fields: dict[str, str] = {}
    for key, value in error.trailing_metadata() or ():
        if key != _DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                for violation in bad.field_violations:
                    fields[violation.field] = violation.description
    return ApiError(error.code(), error.details() or error.code().name, fields)


@dataclass(frozen=True)
class Identity:
    name: str
    roles: tuple[str, ...]
    tenants: tuple[str, ...]

    @property
    def all_tenants(self) -> bool:
        return "*" in self.tenants

    @property
    def may_view(self) -> bool:
        return not {"viewer", "admin"}.isdisjoint(self.roles)

    @property
    def may_change(self) -> bool:
        return "admin" in self.roles

    def may_act_for(self, tenant: str) -> bool:
        return self.all_tenants or tenant in self.tenants


class Backend:
    def __init__(self, config: ConsoleConfig) -> None:
        options: list[tuple[str, Any]] = [
            # Uploads go on in chunks of 1 MiB; answers can be large (1000-row pages, job errors).
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ]
        if config.server_tls_ca is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=config.server_tls_ca.read_bytes())
            if config.server_tls_name:
                options.append(("grpc.ssl_target_name_override", config.server_tls_name))
            self.channel = grpc.aio.secure_channel(config.server, credentials, options=options)
        else:
            self.channel = grpc.aio.insecure_channel(config.server, options=options)
        self.admin = pb_grpc.ForbiddenNumberAdminStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    @staticmethod
    def metadata(token: str | None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {token}"),) if token else ()

    async def call(self, method: str, request: Any, token: str | None, deadline: float = CALL_TIMEOUT) -> Any:
        """A unary call to ForbiddenNumberAdmin; failures raise ApiError."""
        stub = getattr(self.admin, method)
        try:
            return await stub(request, metadata=self.metadata(token), timeout=deadline)
        except grpc.aio.AioRpcError as error:
            raise api_error(error) from None

    async def stream(self, method: str, request: Any, token: str | None, deadline: float) -> AsyncIterator[Any]:
        """A server-streaming call's messages; failures raise ApiError."""
        call = getattr(self.admin, method)(request, metadata=self.metadata(token), timeout=deadline)
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as error:
            raise api_error(error) from None
        finally:
            call.cancel()

    async def identity(self, token: str | None) -> Identity:
        found = await self.call("GetCallerIdentity", pb.GetCallerIdentityRequest(), token)
        return Identity(found.name, tuple(found.roles), tuple(found.tenants))

"""What kind of call each RPC is, declared once, from the service descriptors.

The kind decides who may call it (screening.api.auth) and how its errors
become statuses (screening.api.wrapping): a new RPC gets both from here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from google.protobuf.descriptor import FileDescriptor, MethodDescriptor

from screening.v1 import screening_pb2 as pb


class Kind(enum.Enum):
    # The hot path: answered from memory, never waits.
    SCREEN = "screen"
    # Reads tenant data (the viewer role).
    READ = "read"
    # Changes tenant data (the admin role).
    WRITE = "write"
    # About the caller itself: any known token.
    IDENTITY = "identity"


SCREENING_SERVICE = "Screening"
ADMIN_SERVICE = "ForbiddenNumberAdmin"
# Read-only admin RPCs; every other admin RPC writes (a new one is WRITE until decided otherwise).
READ_RPCS = frozenset(
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
        "GetTenantSettings",
        "ReviewRegionChange",
    }
)
IDENTITY_RPCS = frozenset({"GetCallerIdentity"})
# RPCs about the replica or the caller, not about one tenant's data (ListTenants
# answers only with the tenants the caller may act for).
TENANT_FREE_RPCS = frozenset({"GetReplicaStatus", "GetCallerIdentity", "ListTenants"})
# The hot path's RPCs, whose requests and responses screening.api.wire reads and writes:
# their servicer methods take its requests and return response bytes.
ENCODED_RPCS = frozenset({"ScreenCall", "ScreenCallStream"})


@dataclass(frozen=True, slots=True)
class Method:
    path: str  # as gRPC names it: /screening.v1.Screening/ScreenCall
    service: str  # the service's short name: Screening
    name: str
    kind: Kind
    client_streaming: bool
    server_streaming: bool
    descriptor: MethodDescriptor
    encoded: bool = False  # in ENCODED_RPCS

    @property
    def streaming(self) -> bool:
        return self.client_streaming or self.server_streaming


def kind_of(service: str, method: str) -> Kind:
    if service == SCREENING_SERVICE:
        return Kind.SCREEN
    if service != ADMIN_SERVICE:
        raise RuntimeError(f"service {service!r} has no kind: decide it in screening/api/methods.py")
    if method in IDENTITY_RPCS:
        return Kind.IDENTITY
    return Kind.READ if method in READ_RPCS else Kind.WRITE


def methods(file: FileDescriptor = pb.DESCRIPTOR) -> dict[str, Method]:
    """Every RPC of the file's services, keyed by path."""
    found = {}
    for service in file.services_by_name.values():
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            found[path] = Method(
                path=path,
                service=service.name,
                name=method.name,
                kind=kind_of(service.name, method.name),
                client_streaming=method.client_streaming,
                server_streaming=method.server_streaming,
                descriptor=method,
                encoded=service.name == SCREENING_SERVICE and method.name in ENCODED_RPCS,
            )
    return found

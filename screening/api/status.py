"""The one place where errors become gRPC statuses.

screening.api.wrapping calls `to_status` for whatever a servicer method
raises. Domain errors keep their message; an unreachable database becomes
UNAVAILABLE; anything unexpected is logged and becomes INTERNAL, never UNKNOWN.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from screening.domain import errors
from storage.errors import UNREACHABLE, NoPrimary

log = logging.getLogger(__name__)

# A status message (and each detail) stays far below what a client accepts in trailers (8-16 KB).
MAX_MESSAGE = 1000
# The resource type a refused import names its FAILED job with (google.rpc.ResourceInfo).
IMPORT_JOB = "screening.v1.ImportJob"

_CODES: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
}


def to_status(exc: BaseException) -> grpc.Status:
    """The status a failed call answers with."""
    details: list[Any] = []
    if isinstance(exc, errors.DomainError):
        code = next(c for cls, c in _CODES.items() if isinstance(exc, cls))
        message = exc.message
        if isinstance(exc, errors.InvalidArgument):
            details.append(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=exc.field, description=exc.message)
                    ]
                )
            )
        if isinstance(exc, errors.ImportFailed):
            details.append(error_details_pb2.ResourceInfo(resource_type=IMPORT_JOB, resource_name=exc.job_id))
        elif isinstance(exc, errors.NotFound):
            name = exc.resource_id if len(exc.resource_id) <= MAX_MESSAGE else errors.quoted(exc.resource_id)
            details.append(error_details_pb2.ResourceInfo(resource_type=exc.kind, resource_name=name))
    elif isinstance(exc, asyncpg.exceptions.QueryCanceledError):
        code, message = grpc.StatusCode.DEADLINE_EXCEEDED, "the database query took too long"
    elif isinstance(exc, NoPrimary):
        code, message = grpc.StatusCode.UNAVAILABLE, str(exc)
    elif isinstance(exc, UNREACHABLE):
        code = grpc.StatusCode.UNAVAILABLE
        message = f"database unavailable ({type(exc).__name__}); screening keeps answering, retry admin calls later"
    else:
        log.error("unexpected error", exc_info=exc)
        code, message = grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__})"
    if len(message) > MAX_MESSAGE:
        # Every message quotes its input cut short already; this bounds what anything else could add.
        message = message[:MAX_MESSAGE] + f"... ({len(message)} characters)"
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=packed))

"""The one place where errors become gRPC statuses.

Servicer methods are wrapped with `translate_errors` (unary responses),
`translate_stream_errors` (streamed responses), `translate_admin_errors`
(calls that wait on the database) or, on the hot path, `answer_errors` and
`answer_stream_errors` (plain functions, no awaits). Domain errors keep their
message; an unreachable database becomes UNAVAILABLE; anything unexpected is
logged and becomes INTERNAL, never UNKNOWN.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from screening.domain import errors
from storage.errors import UNREACHABLE

log = logging.getLogger(__name__)

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
        elif isinstance(exc, errors.NotFound):
            details.append(error_details_pb2.ResourceInfo(resource_type=exc.kind, resource_name=exc.resource_id))
    elif isinstance(exc, asyncpg.exceptions.QueryCanceledError):
        code, message = grpc.StatusCode.DEADLINE_EXCEEDED, "the database query took too long"
    elif isinstance(exc, UNREACHABLE):
        code = grpc.StatusCode.UNAVAILABLE
        message = f"database unavailable ({type(exc).__name__}); screening keeps answering, retry admin calls later"
    else:
        log.error("unexpected error", exc_info=exc)
        code, message = grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__})"
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=packed))


T = TypeVar("T")
S = TypeVar("S")
Context = grpc.aio.ServicerContext[Any, Any]


def translate_errors(
    method: Callable[[S, Any, Context], Awaitable[T]],
) -> Callable[[S, Any, Context], Awaitable[T]]:
    @functools.wraps(method)
    async def wrapper(self: S, request: Any, context: Context) -> T:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await context.abort_with_status(to_status(exc))
            raise AssertionError("unreachable") from exc  # abort_with_status always raises

    return wrapper


# Admin calls that wait on the database give up a little before the caller's
# deadline, so the caller hears UNAVAILABLE (and why) rather than a bare
# DEADLINE_EXCEEDED; without a deadline they give up after this long.
DEFAULT_BUDGET = 30.0
_MARGIN = 0.1


def translate_admin_errors(
    method: Callable[[S, Any, Context], Awaitable[T]],
) -> Callable[[S, Any, Context], Awaitable[T]]:
    @functools.wraps(method)
    async def wrapper(self: S, request: Any, context: Context) -> T:
        remaining = context.time_remaining()
        budget = DEFAULT_BUDGET if remaining is None else max(remaining * (1 - _MARGIN), 0.0)
        try:
            async with asyncio.timeout(budget):
                return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except TimeoutError:
            await context.abort_with_status(
                to_status(errors.Unavailable(f"the database did not answer within {budget:.1f}s; retry later"))
            )
            raise AssertionError("unreachable") from None
        except Exception as exc:
            await context.abort_with_status(to_status(exc))
            raise AssertionError("unreachable") from exc

    return wrapper


def answer_errors(
    method: Callable[[S, Any], T],
) -> Callable[[S, Any, Context], Awaitable[T]]:
    """translate_errors for a handler that never waits (ScreenCall): its body is a plain function.

    The handler grpc awaits is then the only coroutine of the call, where a
    decorated coroutine would make two (measurable on a call this short).
    """

    @functools.wraps(method)
    async def handler(self: S, request: Any, context: Context) -> T:
        try:
            return method(self, request)
        except Exception as exc:
            await context.abort_with_status(to_status(exc))
            raise AssertionError("unreachable") from exc

    return handler


def answer_stream_errors(
    method: Callable[[S, Any], T],
) -> Callable[[S, AsyncIterator[Any], Context], AsyncIterator[T]]:
    """A bidirectional stream that answers each request with `method(request)`, errors translated.

    One async generator for the whole stream, rather than one wrapping another.
    """

    @functools.wraps(method)
    async def handler(self: S, requests: AsyncIterator[Any], context: Context) -> AsyncIterator[T]:
        try:
            async for request in requests:
                yield method(self, request)
        except Exception as exc:  # noqa: BLE001 - every error leaves with a status
            await context.abort_with_status(to_status(exc))

    return handler


def translate_stream_errors(
    method: Callable[[S, Any, Context], AsyncIterator[T]],
) -> Callable[[S, Any, Context], AsyncIterator[T]]:
    @functools.wraps(method)
    async def wrapper(self: S, request: Any, context: Context) -> AsyncIterator[T]:
        try:
            async for item in method(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - every error leaves with a status
            await context.abort_with_status(to_status(exc))

    return wrapper

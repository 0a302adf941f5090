"""Admin RPC observation: one log line and the metrics for every admin call.

Not an interceptor: grpc.aio runs every interceptor on every call, and one
that only passes calls on cost ScreenCall 2.6% of its throughput (A/B, six
rounds). The admin servicer's handlers are wrapped once (`observe`), where
they are added to the server, outside the auth guard so that the calls it
refuses are counted too. The hot path is not touched at all.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

from screening.api.metrics import Metrics

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/screening.v1.ForbiddenNumberAdmin/"
Context = grpc.aio.ServicerContext[Any, Any]
if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
else:
    Handler = grpc.RpcMethodHandler  # generic only in the type stubs


class AdminCallObserver:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def observe(self, path: str, handler: Handler) -> Handler:
        """The handler of the method at `path`, observed when it is an admin RPC."""
        if not path.startswith(ADMIN_PREFIX):
            return handler
        return self._wrap(path[len(ADMIN_PREFIX) :], handler)

    def _done(self, method: str, context: Context, started: float, error: BaseException | None) -> None:
        elapsed = time.perf_counter() - started
        code = _code(context, error)
        self._metrics.admin_calls.labels(method, code).inc()
        self._metrics.admin_latency.labels(method).observe(elapsed)
        # The status message can quote the caller's numbers: only the code is logged.
        log.info(
            "admin %s %s %.1fms",
            method,
            code,
            elapsed * 1000,
            extra={"rpc": method, "code": code, "duration_ms": round(elapsed * 1000, 2)},
        )

    def _wrap(self, method: str, handler: Handler) -> Handler:
        done = self._done
        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None or handler.stream_unary is not None:
            streaming_request = handler.unary_unary is None
            # grpc's stubs type behaviors as sync; under grpc.aio they are coroutines.
            unary_behavior: Any = handler.stream_unary if streaming_request else handler.unary_unary

            async def unary(request: Any, context: Context) -> Any:
                started = time.perf_counter()
                try:
                    response = await unary_behavior(request, context)
                except BaseException as exc:
                    done(method, context, started, exc)
                    raise
                done(method, context, started, None)
                return response

            if streaming_request:
                return grpc.stream_unary_rpc_method_handler(unary, **kwargs)
            return grpc.unary_unary_rpc_method_handler(unary, **kwargs)

        streaming_request = handler.unary_stream is None
        stream_behavior: Any = handler.stream_stream if streaming_request else handler.unary_stream
        make = grpc.stream_stream_rpc_method_handler if streaming_request else grpc.unary_stream_rpc_method_handler

        if not inspect.isasyncgenfunction(stream_behavior):
            # A coroutine that writes with context.write(), or only aborts (an auth refusal).
            async def writer(request: Any, context: Context) -> None:
                started = time.perf_counter()
                try:
                    await stream_behavior(request, context)
                except BaseException as exc:
                    done(method, context, started, exc)
                    raise
                done(method, context, started, None)

            return make(writer, **kwargs)

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            started = time.perf_counter()
            try:
                async for response in stream_behavior(request, context):
                    yield response
            except BaseException as exc:
                done(method, context, started, exc)
                raise
            done(method, context, started, None)

        return make(stream, **kwargs)


def _code(context: Context, error: BaseException | None) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        # grpc.aio reports an aborted call's code as the raw integer.
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), "UNKNOWN")
    if error is None:
        return "OK"
    # A client that goes away closes a response stream with GeneratorExit.
    if isinstance(error, asyncio.CancelledError | GeneratorExit) or context.cancelled():
        return "CANCELLED"
    return "UNKNOWN"

"""The access log: one log line and the metrics for every admin call.

A concern (screening.api.wrapping) around each admin handler, outermost,
so that the calls auth refuses are counted too. The hot path has none.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import grpc

from screening.api.methods import SCREENING_SERVICE, Method
from screening.api.metrics import Metrics
from screening.api.wrapping import Concern, Context

log = logging.getLogger(__name__)


class AccessLog:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def concern(self, method: Method) -> Concern | None:
        """Admin calls are logged and counted; screening calls are tallied by the servicer itself."""
        if method.service == SCREENING_SERVICE:
            return None
        name = method.name
        calls = self._metrics.admin_calls
        latency = self._metrics.admin_latency.labels(name)

        def begin(_context: Context) -> float:
            return time.perf_counter()

        def end(started: float, context: Context, error: BaseException | None) -> None:
            elapsed = time.perf_counter() - started
            code = _code(context, error)
            calls.labels(name, code).inc()
            latency.observe(elapsed)
            # The status message can quote the caller's numbers: only the code is logged.
            log.info(
                "admin %s %s %.1fms",
                name,
                code,
                elapsed * 1000,
                extra={"rpc": name, "code": code, "duration_ms": round(elapsed * 1000, 2)},
            )

        return Concern(begin=begin, end=end)


def _code(context: Context, error: BaseException | None) -> str:
    code: Any = context.code()
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

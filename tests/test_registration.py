"""Services added generic-only still serve every method, through the wrap given."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from screening.api.registration import add_generic_only


async def test_generic_only_service_serves_through_its_wrap() -> None:
    seen: list[str] = []

    def wrap(path: str, handler: Any) -> Any:
        seen.append(path)
        return handler

    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    add_generic_only(health_pb2_grpc.add_HealthServicer_to_server, servicer, server, wrap=wrap)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        await servicer.set("x", health_pb2.HealthCheckResponse.SERVING)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="x"))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        assert "/grpc.health.v1.Health/Check" in seen and "/grpc.health.v1.Health/Watch" in seen
    finally:
        await server.stop(None)


def test_generated_code_that_registers_nothing_is_refused() -> None:
    def add_old_style(servicer: Any, server: Any) -> None:
        server.add_generic_rpc_handlers(())

    with pytest.raises(RuntimeError, match="add_old_style no longer calls add_registered_method_handlers"):
        add_generic_only(add_old_style, object(), grpc.aio.server())

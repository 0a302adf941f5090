"""Helpers shared by the tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc

from screening.v1 import screening_pb2_grpc as pb_grpc


class Clients:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.screening = pb_grpc.ScreeningStub(channel)
        self.admin = pb_grpc.ForbiddenNumberAdminStub(channel)


async def wait_until(predicate: Callable[[], Any], within: float = 5.0, interval: float = 0.01) -> None:
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)

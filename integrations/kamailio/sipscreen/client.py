"""ScreenCall from a Kamailio worker: one channel per process, a deadline on every call.

grpc is not fork-safe: Kamailio loads the script in its main process and then
forks its workers, so the channel is made lazily in the process that uses it
(and remade if the process id changes), never inherited across a fork.
"""

from __future__ import annotations

import enum
import os
import time
from dataclasses import dataclass

import grpc

from screening.v1 import screening_pb2 as pb
from screening.v1 import screening_pb2_grpc as pb_grpc
from sipscreen.breaker import Breaker
from sipscreen.settings import Settings

DIRECTIONS = {"inbound": pb.DIRECTION_INBOUND, "outbound": pb.DIRECTION_OUTBOUND}
KINDS = {pb.MATCH_KIND_EXACT: "exact", pb.MATCH_KIND_PREFIX: "prefix"}


class Outcome(enum.Enum):
    ALLOW = "allow"
    BLOCK = "block"
    # The number cannot be written as a phone number (e.g. "anonymous"): no entry can match it.
    UNSCREENABLE = "unscreenable"
    FAIL_OPEN = "fail_open"
    FAIL_CLOSED = "fail_closed"


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    matched_id: str = ""
    matched_number: str = ""
    matched_kind: str = ""
    # For failures: the gRPC status code name and details.
    error: str = ""
    # Why the policy answered without asking: "breaker" (open after repeated
    # failures) or "busy" (max_waiting workers already waiting); "" when asked.
    shortcut: str = ""
    # This call's failure opened the breaker, or its answer closed it.
    opened: bool = False
    closed: bool = False


ALLOWED = Decision(Outcome.ALLOW)


class ScreeningClient:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pid = 0
        self._channel: grpc.Channel | None = None
        self._stub: pb_grpc.ScreeningStub | None = None
        self._metadata = (("authorization", f"Bearer {settings.token}"),) if settings.token else None
        # In the main process, before the fork: every worker shares it.
        self.breaker = Breaker(settings.breaker_failures, settings.breaker_cooldown)
        self.max_waiting = settings.max_waiting or 1_000_000
        policy = Outcome.FAIL_CLOSED if settings.on_failure == "closed" else Outcome.FAIL_OPEN
        self._when_open = Decision(policy, error="circuit open", shortcut="breaker")
        self._busy = Decision(policy, error="every worker allowed to wait is waiting", shortcut="busy")

    def worker(self, rank: int, children: int) -> None:
        """In each worker after the fork: its place among the waiting, and how many may wait."""
        self.breaker.set_rank(rank)
        if not self._settings.max_waiting and children > 1:
            # One worker always stays free for in-dialog requests and other calls.
            self.max_waiting = children - 1

    def warm_up(self, within: float) -> bool:
        """Connect now rather than on the first call; False if not connected within `within` s."""
        self.connect()
        assert self._channel is not None
        ready = grpc.channel_ready_future(self._channel)
        try:
            ready.result(timeout=within)
        except grpc.FutureTimeoutError:
            ready.cancel()
            return False
        return True

    def connect(self) -> pb_grpc.ScreeningStub:
        """The stub of this process's channel; made on first use after a fork."""
        if self._stub is None or self._pid != os.getpid():
            # An inherited channel belongs to the parent: drop it without closing.
            self._pid = os.getpid()
            self._channel = self._open(
                [
                    ("grpc.keepalive_time_ms", self._settings.keepalive_ms),
                    ("grpc.keepalive_timeout_ms", self._settings.keepalive_timeout_ms),
                    # Pings only while calls are in flight: the server's default policy
                    # answers idle pings more often than every 5 minutes with GOAWAY.
                    ("grpc.keepalive_permit_without_calls", 0),
                    ("grpc.http2.max_pings_without_data", 0),
                    # Loopback or LAN: reconnect quickly after the service restarts.
                    ("grpc.initial_reconnect_backoff_ms", 100),
                    ("grpc.max_reconnect_backoff_ms", 1000),
                    ("grpc.enable_retries", 0),
                ]
            )
            self._stub = pb_grpc.ScreeningStub(self._channel)
        return self._stub

    def _open(self, options: list[tuple[str, object]]) -> grpc.Channel:
        tls = self._settings.tls
        if tls is None:
            return grpc.insecure_channel(self._settings.target, options=options)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=tls.ca, private_key=tls.key, certificate_chain=tls.cert
        )
        if tls.server_name:
            options = [*options, ("grpc.ssl_target_name_override", tls.server_name)]
        return grpc.secure_channel(self._settings.target, credentials, options=options)

    def screen(self, tenant: str, number: str, direction: str, call_id: str) -> Decision:
        breaker = self.breaker
        admitted = breaker.admit(time.monotonic())
        if not admitted:
            return self._when_open
        if breaker.waiting() >= self.max_waiting:
            return self._busy
        stub = self.connect()
        request = pb.ScreenCallRequest(
            tenant_id=tenant, number=number, direction=DIRECTIONS[direction], call_id=call_id
        )
        breaker.wait_begins()
        try:
            response = stub.ScreenCall(request, timeout=self._settings.deadline, metadata=self._metadata)
        except grpc.RpcError as exc:
            breaker.wait_ends()
            return self._failed(exc, probe=admitted == 2)
        breaker.wait_ends()
        closed = breaker.succeeded()
        if response.verdict == pb.VERDICT_BLOCK:
            return Decision(
                Outcome.BLOCK,
                matched_id=response.matched_id,
                matched_number=response.matched_number,
                matched_kind=KINDS.get(response.matched_kind, "exact"),
                closed=closed,
            )
        return Decision(Outcome.ALLOW, closed=closed) if closed else ALLOWED

    def _failed(self, exc: grpc.RpcError, probe: bool) -> Decision:
        # At run time the exception is also a grpc.Call, which has code() and details().
        code: grpc.StatusCode = exc.code()
        details: str = exc.details() or ""
        error = f"{code.name}: {details}"
        if code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith("number "):
            # An answer, about the number: the service is fine.
            return Decision(Outcome.UNSCREENABLE, error=error, closed=self.breaker.succeeded())
        # Anything else (unreachable, slow, refused, misconfigured) is no answer.
        opened = self.breaker.failed(probe)
        decision = self.unanswered(error)
        return Decision(decision.outcome, error=error, opened=opened) if opened else decision

    def unanswered(self, error: str) -> Decision:
        """The configured policy's decision for a call the service did not answer."""
        if self._settings.on_failure == "closed":
            return Decision(Outcome.FAIL_CLOSED, error=error)
        return Decision(Outcome.FAIL_OPEN, error=error)

"""Screening from a Kamailio worker: one connection per process, a deadline on every call.

Each worker keeps its own connection (the service's switch socket,
sipscreen/wire.py, when `switch_socket` is set; else a ScreenCallStream,
sipscreen/h2.py), opened after the fork
(and again if the process id changes), never inherited. The circuit breaker and
the count of waiting workers are shared by all workers (sipscreen/breaker.py).
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

from sipscreen import wire
from sipscreen.breaker import Breaker
from sipscreen.h2 import Stream, StreamError, Timeout, TlsFiles
from sipscreen.settings import Settings
from sipscreen.wire import SwitchSocket

DIRECTIONS = {"inbound": wire.DIRECTION_INBOUND, "outbound": wire.DIRECTION_OUTBOUND}
KINDS = {wire.MATCH_KIND_EXACT: "exact", wire.MATCH_KIND_PREFIX: "prefix"}


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
        tls = settings.tls
        self._stream: Stream | SwitchSocket
        if settings.switch_socket:
            self._stream = SwitchSocket(settings.switch_socket, token=settings.token)
        else:
            self._stream = Stream(
                settings.target,
                token=settings.token,
                tls=None if tls is None else TlsFiles(tls.ca, tls.cert, tls.key, tls.server_name),
            )
        # In the main process, before the fork: every worker shares it.
        self.breaker = Breaker(settings.breaker_failures, settings.breaker_cooldown)
        self.max_waiting = settings.max_waiting or 1_000_000
        # A worker counts against max_waiting once it has waited this long: a hiccup
        # of the service shorter than that sheds no call (and lets none through unscreened).
        self._stuck_after = settings.deadline / 4
        policy = Outcome.FAIL_CLOSED if settings.on_failure == "closed" else Outcome.FAIL_OPEN
        self._when_open = Decision(policy, error="circuit open", shortcut="breaker")
        self._busy = Decision(policy, error="every worker allowed to wait is waiting", shortcut="busy")

    def worker(self, rank: int, children: int) -> None:
        """In each worker after the fork: its place among the waiting, and how many may wait."""
        self.breaker.set_rank(rank)
        if not self._settings.max_waiting and children > 1:
            # One worker always stays free for in-dialog requests and other calls.
            self.max_waiting = children - 1

    def warm_up(self, within: float) -> str:
        """Connect now rather than on the first call; "" when connected, else why not."""
        try:
            self._stream.connect(within)
        except StreamError as exc:
            return str(exc)
        return ""

    def screen(self, tenant: str, number: str, direction: str, call_id: str) -> Decision:
        breaker = self.breaker
        now = time.monotonic()
        admitted = breaker.admit(now)
        if not admitted:
            return self._when_open
        if breaker.stuck(now - self._stuck_after) >= self.max_waiting:
            return self._busy
        request = wire.encode_request(tenant, number, DIRECTIONS[direction], call_id)
        breaker.wait_begins(now)
        try:
            answer = self._stream.call(request, now + self._settings.deadline)
        except StreamError as exc:
            if isinstance(exc, Timeout):
                self._stream.abandon()
            return self._failed(exc, probe=admitted == 2)
        finally:
            breaker.wait_ends()
        closed = breaker.succeeded()
        response = wire.decode_response(answer)
        if response.verdict == wire.VERDICT_BLOCK:
            return Decision(
                Outcome.BLOCK,
                matched_id=response.matched_id,
                matched_number=response.matched_number,
                matched_kind=KINDS.get(response.matched_kind, "exact"),
                closed=closed,
            )
        return Decision(Outcome.ALLOW, closed=closed) if closed else ALLOWED

    def _failed(self, exc: StreamError, probe: bool) -> Decision:
        error = str(exc)
        if exc.code == "INVALID_ARGUMENT" and exc.details.startswith("number "):
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

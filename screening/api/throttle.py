"""Failed authentications, limited per peer address: a token bucket for each address that fails.

Only the slow path pays: a token seen valid before is found in a cache and
never throttled, so a switch behind the same address as a guesser goes on.
A guesser, after `burst` failures, gets one more try every `1 / per_second`
seconds, whatever it presents, a right token included.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

DEFAULT_BURST = 20
DEFAULT_PER_SECOND = 1.0
# Addresses remembered at once; the least recently failing are forgotten first.
MAX_PEERS = 10_000


def address(peer: str) -> str:
    """The address of a gRPC peer string without its port: ipv4:10.0.0.7:5123 -> ipv4:10.0.0.7."""
    if peer.startswith(("ipv4:", "ipv6:")):
        return peer.rsplit(":", 1)[0]
    return peer


class FailedAuthThrottle:
    def __init__(
        self,
        burst: int = DEFAULT_BURST,
        per_second: float = DEFAULT_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._burst = float(burst)
        self._rate = per_second
        self._clock = clock
        # address -> (tokens left, when counted)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.throttled = 0

    def _tokens(self, peer: str, now: float) -> float:
        found = self._buckets.get(peer)
        if found is None:
            return self._burst
        tokens, then = found
        return min(self._burst, tokens + (now - then) * self._rate)

    def wait(self, peer: str) -> float:
        """0 when the peer may try; else the seconds until it may (and the try is counted as throttled)."""
        now = self._clock()
        tokens = self._tokens(peer, now)
        if tokens >= 1.0:
            return 0.0
        self.throttled += 1
        return (1.0 - tokens) / self._rate

    def failed(self, peer: str) -> None:
        now = self._clock()
        self._buckets[peer] = (max(self._tokens(peer, now) - 1.0, 0.0), now)
        self._buckets.move_to_end(peer)
        while len(self._buckets) > MAX_PEERS:
            self._buckets.popitem(last=False)

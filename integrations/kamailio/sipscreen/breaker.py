"""A circuit breaker and a count of waiting workers, shared by all of Kamailio's workers.

Made in the main process before Kamailio forks: an anonymous shared mapping is
inherited by every worker, so when one worker's calls time out the others
stop waiting too, without a lock, a Kamailio module or a round trip.
Each field is one aligned 8-byte word, so a read never sees half a write; the
rare lost update (two workers failing at once) only shifts when the breaker
opens by a call.
"""

from __future__ import annotations

import mmap
import struct
import time

_OPEN_UNTIL = struct.Struct("d")  # monotonic time (system-wide clock); 0.0: closed
_FAILURES = struct.Struct("q")  # failures in a row
_FAILURES_AT = 8
_SLOTS_AT = 16
SLOTS = 128  # one word per worker rank: when that worker began to wait on the service; 0.0: not waiting
_SLOTS = struct.Struct(f"{SLOTS}d")
_BEGAN = struct.Struct("d")
_SLOTS_END = _SLOTS_AT + _SLOTS.size
_NOBODY = bytes(_SLOTS.size)


class Breaker:
    def __init__(self, failures: int, cooldown: float) -> None:
        self.failures = failures
        self.cooldown = cooldown
        self._shm = mmap.mmap(-1, _SLOTS_AT + _SLOTS.size)
        self._slot = 0

    def set_rank(self, rank: int) -> None:
        """This worker's byte among the waiting ones (ranks beyond the table share slot 0)."""
        self._slot = _SLOTS_AT + 8 * (rank if 0 < rank < SLOTS else 0)

    def admit(self, now: float) -> int:
        """0: open, answer by the policy; 1: closed, ask; 2: ask as the one probe after a cool-down."""
        open_until: float = _OPEN_UNTIL.unpack_from(self._shm, 0)[0]
        if not open_until:
            return 1
        if now < open_until:
            return 0
        # This caller probes; the others keep answering at once until it reports.
        _OPEN_UNTIL.pack_into(self._shm, 0, now + self.cooldown)
        return 2

    def stuck(self, since: float) -> int:
        """Workers that have been waiting on the service since before `since` (a monotonic time)."""
        # Runs on every call, and mostly nobody waits: compare the bytes first; then count
        # in C (filter, map, sum), not by a Python loop over 128 slots.
        if self._shm[_SLOTS_AT:_SLOTS_END] == _NOBODY:
            return 0
        return sum(map(since.__gt__, filter(None, _SLOTS.unpack_from(self._shm, _SLOTS_AT))))

    def wait_begins(self, now: float) -> None:
        _BEGAN.pack_into(self._shm, self._slot, now)

    def wait_ends(self) -> None:
        _BEGAN.pack_into(self._shm, self._slot, 0.0)

    def succeeded(self) -> bool:
        """Record an answer; True when that closed an open breaker."""
        was_open = bool(_OPEN_UNTIL.unpack_from(self._shm, 0)[0])
        if was_open or _FAILURES.unpack_from(self._shm, _FAILURES_AT)[0]:
            _FAILURES.pack_into(self._shm, _FAILURES_AT, 0)
            _OPEN_UNTIL.pack_into(self._shm, 0, 0.0)
        return was_open

    def failed(self, probe: bool) -> bool:
        """Record a call with no answer; True when that opened the breaker (not when a probe kept it open)."""
        failures = _FAILURES.unpack_from(self._shm, _FAILURES_AT)[0] + 1
        _FAILURES.pack_into(self._shm, _FAILURES_AT, failures)
        if probe:
            _OPEN_UNTIL.pack_into(self._shm, 0, time.monotonic() + self.cooldown)
            return False
        if failures >= self.failures and not _OPEN_UNTIL.unpack_from(self._shm, 0)[0]:
            _OPEN_UNTIL.pack_into(self._shm, 0, time.monotonic() + self.cooldown)
            return True
        return False

    def is_open(self) -> bool:
        return bool(_OPEN_UNTIL.unpack_from(self._shm, 0)[0])

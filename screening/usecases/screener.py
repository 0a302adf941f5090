"""Screening a call: normalize the number, look it up in memory. No I/O."""

from __future__ import annotations

from time import time

from screening.domain import validation as check
from screening.domain.errors import InvalidArgument, Unavailable
from screening.domain.numbers import is_e164, normalize
from screening.index.rules import IndexEntry
from screening.sync.replica import Replica

_DIRECTIONS = (1, 2)
MAX_BATCH = 10_000


# Tenant ids seen valid, so the hot path checks a set, not a regex; bounded
# so that a client sending endless made-up ids cannot grow it without end.
_KNOWN_TENANTS = 10_000


class Screener:
    def __init__(self, replica: Replica, region: str | None) -> None:
        self._replica = replica
        self._region = region
        self._valid_tenants: set[str] = set()

    def _check(self, tenant_id: str, direction: int) -> None:
        if tenant_id not in self._valid_tenants:
            check.tenant_id(tenant_id)
            if len(self._valid_tenants) < _KNOWN_TENANTS:
                self._valid_tenants.add(tenant_id)
        if direction not in _DIRECTIONS:
            reason = "is required" if direction == 0 else "is not a known direction"
            raise InvalidArgument("direction", direction, f"{reason}; one of DIRECTION_INBOUND, DIRECTION_OUTBOUND")
        if not self._replica.ready:
            # Never ALLOW from an index that has not been loaded.
            raise Unavailable("forbidden numbers are still loading on this replica; retry shortly")

    def screen(self, tenant_id: str, number: str, direction: int) -> tuple[str, IndexEntry | None, int]:
        """(normalized number, winning entry or None, data_version)."""
        replica = self._replica
        if tenant_id not in self._valid_tenants or direction not in _DIRECTIONS or not replica.ready:
            self._check(tenant_id, direction)
        # normalize()'s own first test, made here: E.164 input needs no function call.
        normalized = number if is_e164(number) else normalize(number, region=self._region, allow_empty=True)
        return normalized, replica.index.screen(tenant_id, normalized, direction, time()), replica.data_version

    def screen_many(
        self, tenant_id: str, numbers: list[str], direction: int
    ) -> tuple[list[str], list[IndexEntry | None], int]:
        """(normalized numbers, winning entry or None for each, data_version)."""
        self._check(tenant_id, direction)
        if len(numbers) > MAX_BATCH:
            raise InvalidArgument("numbers", f"{len(numbers)} numbers", f"at most {MAX_BATCH} a call")
        region = self._region
        try:
            normalized = [normalize(n, region=region, allow_empty=True) for n in numbers]
        except InvalidArgument:
            # Again, naming the first bad number's position (not paid for on success).
            for i, n in enumerate(numbers):
                normalize(n, field=f"numbers[{i}]", region=region, allow_empty=True)
            raise
        replica = self._replica
        return (
            normalized,
            replica.index.screen_many(tenant_id, normalized, direction, time()),
            replica.data_version,
        )

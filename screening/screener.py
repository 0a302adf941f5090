"""Screening a call: normalize the number, look it up in memory. No I/O."""

from __future__ import annotations

import time

from screening import validation as check
from screening.errors import InvalidArgument, Unavailable
from screening.index import IndexEntry
from screening.numbers import normalize
from screening.replica import Replica

_DIRECTIONS = (1, 2)
MAX_BATCH = 10_000


class Screener:
    def __init__(self, replica: Replica, region: str | None) -> None:
        self._replica = replica
        self._region = region

    def _check(self, tenant_id: str, direction: int) -> None:
        check.tenant_id(tenant_id)
        if direction not in _DIRECTIONS:
            reason = "is required" if direction == 0 else "is not a known direction"
            raise InvalidArgument("direction", direction, f"{reason}; one of DIRECTION_INBOUND, DIRECTION_OUTBOUND")
        if not self._replica.ready:
            # Never ALLOW from an index that has not been loaded.
            raise Unavailable("forbidden numbers are still loading on this replica; retry shortly")

    def screen(self, tenant_id: str, number: str, direction: int) -> tuple[str, IndexEntry | None, int]:
        """(normalized number, winning entry or None, data_version)."""
        self._check(tenant_id, direction)
        normalized = normalize(number, region=self._region, allow_empty=True)
        replica = self._replica
        return normalized, replica.index.screen(tenant_id, normalized, direction, time.time()), replica.data_version

    def screen_many(
        self, tenant_id: str, numbers: list[str], direction: int
    ) -> tuple[list[tuple[str, IndexEntry | None]], int]:
        self._check(tenant_id, direction)
        if len(numbers) > MAX_BATCH:
            raise InvalidArgument("numbers", f"{len(numbers)} numbers", f"at most {MAX_BATCH} a call")
        region = self._region
        normalized = [
            normalize(n, field=f"numbers[{i}]", region=region, allow_empty=True) for i, n in enumerate(numbers)
        ]
        replica = self._replica
        index, now = replica.index, time.time()
        return [(n, index.screen(tenant_id, n, direction, now)) for n in normalized], replica.data_version

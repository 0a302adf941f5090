"""Screening a call: the tenant's rules, the number normalized, looked up in memory. No I/O.

In order: a withheld caller on an inbound call is the tenant's withheld
policy's to decide; an outbound call to an emergency number is allowed,
whatever any entry says; otherwise the most specific qualifying entry of the
tenant and of the shared lists it subscribes to decides (an exact entry over
any prefix, a longer prefix over a shorter one, the tenant's own over a
list's on a tie).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import time
from typing import NamedTuple, cast

from screening.domain import validation as check
from screening.domain.errors import InvalidArgument, Unavailable
from screening.domain.model import Action, MatchKind, ScreenReason
from screening.domain.numbers import is_e164, is_emergency, normalize
from screening.index.rules import MISS_DISABLED, MISS_EXPIRED, MISS_OTHER_DIRECTION, IndexEntry
from screening.sync.replica import Replica
from screening.sync.settings import SettingsFollower, TenantRules
from screening.usecases.hits import HitCounter

log = logging.getLogger(__name__)

_DIRECTIONS = (1, 2)
_INBOUND, _OUTBOUND = 1, 2
_ALLOW, _BLOCK = 1, 2
_EXACT = MatchKind.EXACT
MAX_BATCH = 10_000
_ALLOW_ACTION = Action.ALLOW
_BLOCK_ENTRY = int(ScreenReason.BLOCK_ENTRY)
_ALLOW_ENTRY = int(ScreenReason.ALLOW_ENTRY)
_NO_ENTRY = int(ScreenReason.NO_ENTRY)
_WITHHELD = int(ScreenReason.WITHHELD)
_EMERGENCY = int(ScreenReason.EMERGENCY_NUMBER)
# The reason of a miss, by the index's rank of the near misses it passed over (0: none).
_MISSES = [_NO_ENTRY, 0, 0, 0]
_MISSES[MISS_EXPIRED] = int(ScreenReason.ONLY_EXPIRED)
_MISSES[MISS_DISABLED] = int(ScreenReason.ONLY_DISABLED)
_MISSES[MISS_OTHER_DIRECTION] = int(ScreenReason.OTHER_DIRECTION)


# Tenant ids seen valid, so the hot path checks a set, not a regex; bounded
# so that a client sending endless made-up ids cannot grow it without end.
_KNOWN_TENANTS = 10_000


class Decision(NamedTuple):
    normalized: str
    entry: IndexEntry | None  # the entry that decided
    verdict: int  # 1 allow, 2 block
    reason: int  # ScreenReason; 0 when not told
    list_id: str  # the shared list the entry belongs to; "" for the tenant's own
    version: int


# Decisions are made as _new(Decision, (fields...)): a NamedTuple's own __new__ is a Python function,
# whose call costs the hot path about a thousand instructions; tuple.__new__ is C.
_new = cast("Callable[[type[Decision], tuple[object, ...]], Decision]", tuple.__new__)


def _more_specific(a: IndexEntry, b: IndexEntry) -> bool:
    """Whether `a` decides over `b`: an exact entry over any prefix, a longer prefix over a shorter one."""
    if a.match_kind is _EXACT:
        return b.match_kind is not _EXACT
    return b.match_kind is not _EXACT and len(a.number) > len(b.number)


class Screener:
    def __init__(
        self,
        replica: Replica,
        region: str | None,
        settings: SettingsFollower | None = None,
        hits: HitCounter | None = None,
    ) -> None:
        self.replica = replica
        self.hits = HitCounter() if hits is None else hits
        self._region = region
        self._settings = settings
        # The tenants' settings by id, as the follower keeps them (changed in place).
        self.rules: dict[str, TenantRules] = {} if settings is None else settings.by_tenant
        self.valid_tenants: set[str] = set()
        # Calls for tenants with neither entries nor settings, by direction (a typo'd tenant id screens
        # against nothing and is allowed: this is how an operator sees it).
        self.unknown_tenant_calls = [0, 0, 0]
        self._unknown_logged: set[str] = set()

    def _check(self, tenant_id: str, direction: int) -> None:
        if tenant_id not in self.valid_tenants:
            check.tenant_id(tenant_id)
            if len(self.valid_tenants) < _KNOWN_TENANTS:
                self.valid_tenants.add(tenant_id)
        if direction not in _DIRECTIONS:
            reason = "is required" if direction == 0 else "is not a known direction"
            raise InvalidArgument("direction", direction, f"{reason}; one of DIRECTION_INBOUND, DIRECTION_OUTBOUND")
        if not self.replica.ready:
            # Never ALLOW from an index that has not been loaded.
            raise Unavailable("forbidden numbers are still loading on this replica; retry shortly")

    def screen(
        self, tenant_id: str, number: str, direction: int, withheld: bool = False, count: bool = True
    ) -> Decision:
        """The answer to one call; `count` False: a test of a number, not a call (no hit is counted)."""
        replica = self.replica
        if tenant_id not in self.valid_tenants or direction not in _DIRECTIONS or not replica.ready:
            self._check(tenant_id, direction)
        rules = self.rules.get(tenant_id)
        version = replica.data_version
        if withheld or not number:
            if direction == _INBOUND:
                # A caller without a usable number: the tenant's policy, and nothing else, decides.
                blocked = rules is not None and rules.block_withheld
                return _new(Decision, ("", None, _BLOCK if blocked else _ALLOW, _WITHHELD, "", version))
            if not number:
                return _new(Decision, ("", None, _ALLOW, _NO_ENTRY, "", version))
        region = self._region if rules is None else rules.region
        # normalize()'s own first test, made here: E.164 input needs no function call.
        normalized = number if is_e164(number) else normalize(number, region=region, allow_empty=True)
        if direction == _OUTBOUND and is_emergency(normalized, region):
            return _new(Decision, (normalized, None, _ALLOW, _EMERGENCY, "", version))
        now = time()
        index = replica.index
        found = index.lookup(tenant_id, normalized, direction, now)
        decided_by = ""
        if isinstance(found, int):
            entry, missed = None, found
        else:
            entry, missed = found, 0
        if rules is not None and rules.lists and (entry is None or entry.match_kind is not _EXACT):
            for list_id in rules.lists:
                listed = index.lookup(list_id, normalized, direction, now)
                if isinstance(listed, int):
                    if listed > missed:
                        missed = listed
                elif entry is None or _more_specific(listed, entry):
                    entry, decided_by = listed, list_id
        if entry is None:
            if rules is None and not missed and count and not index.knows(tenant_id):
                self._unknown(tenant_id, direction)
            return _new(Decision, (normalized, None, _ALLOW, _MISSES[missed], "", version))
        if count:
            self.hits.hit(entry.id, now)
        if entry.action is _ALLOW_ACTION:
            return _new(Decision, (normalized, entry, _ALLOW, _ALLOW_ENTRY, decided_by, version))
        return _new(Decision, (normalized, entry, _BLOCK, _BLOCK_ENTRY, decided_by, version))

    def _unknown(self, tenant_id: str, direction: int) -> None:
        self.unknown_tenant_calls[direction] += 1
        if tenant_id not in self._unknown_logged and len(self._unknown_logged) < _KNOWN_TENANTS:
            # Once per tenant id: a switch sending a misspelt one would otherwise flood the log.
            self._unknown_logged.add(tenant_id)
            log.warning(
                "screened a call for tenant %r, which has neither entries nor settings: allowed (misspelt?)", tenant_id
            )

    def screen_many(
        self, tenant_id: str, numbers: list[str], direction: int
    ) -> tuple[list[str], list[IndexEntry | None], int]:
        """(normalized numbers, the deciding entry (BLOCK or ALLOW) or None for each, data_version)."""
        self._check(tenant_id, direction)
        if len(numbers) > MAX_BATCH:
            raise InvalidArgument("numbers", f"{len(numbers)} numbers", f"at most {MAX_BATCH} a call")
        rules = self.rules.get(tenant_id)
        region = self._region if rules is None else rules.region
        try:
            # normalize()'s own first test, made here: E.164 input needs no function call.
            normalized = [n if is_e164(n) else normalize(n, region=region, allow_empty=True) for n in numbers]
        except InvalidArgument:
            # Again, naming the first bad number's position (not paid for on success).
            for i, n in enumerate(numbers):
                normalize(n, field=f"numbers[{i}]", region=region, allow_empty=True)
            raise
        replica = self.replica
        now = time()
        index = replica.index
        keyed = index.keys_of(normalized) if rules is not None and rules.lists else None
        hits = index.screen_many(tenant_id, normalized, direction, now, keyed)
        if rules is not None and rules.lists:
            for list_id in rules.lists:
                for i, found in enumerate(index.screen_many(list_id, normalized, direction, now, keyed)):
                    current = hits[i]
                    if found is not None and (current is None or _more_specific(found, current)):
                        hits[i] = found
        if direction == _OUTBOUND:
            hits = [None if is_emergency(n, region) else hit for n, hit in zip(normalized, hits, strict=True)]
        return normalized, hits, replica.data_version

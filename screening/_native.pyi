"""The screening hot path in C (screening/_native.c)."""

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Any

class Searcher:
    # The arrays are anything with the buffer protocol (numpy arrays, memoryviews),
    # C-contiguous, of the item sizes compact.Base uses; checked at construction.
    # slices: int64, (shift, base, buckets, offset) for each tenant ordinal in turn.
    def __init__(
        self,
        keys: object,
        table: object,
        ids: object,
        exp_pos: object,
        exp_at: object,
        tenants: dict[str, int],
        slices: object,
        /,
    ) -> None: ...
    def hit(
        self, tenant_id: str, number: str, direction: int, now: float, shadowed: AbstractSet[str], /
    ) -> tuple[str, int, float] | int | None: ...
    def id_at(self, pos: int, /) -> str: ...

def is_e164(text: str, /) -> bool: ...
def number_keys(numbers: list[str], out: object, /) -> None: ...

class Tally:
    # bounds: the latency buckets' upper bounds in seconds, increasing.
    def __init__(self, bounds: tuple[float, ...], /) -> None: ...
    def add(self, verdict: int, direction: int, seconds: float, /) -> None: ...
    @property
    def calls(self) -> list[list[int]]: ...
    @property
    def buckets(self) -> list[int]: ...
    @property
    def seconds(self) -> float: ...

class ScreenRequest(tuple[str, str, int, str, bool]):
    """A ScreenCallRequest's fields (a struct sequence): the hot path reads them as the message's."""

    @property
    def tenant_id(self) -> str: ...
    @property
    def number(self) -> str: ...
    @property
    def direction(self) -> int: ...
    @property
    def call_id(self) -> str: ...
    @property
    def caller_withheld(self) -> bool: ...

class QuickScreen:
    """ScreenCall's common answers in C; every other call goes to fallback(request) (screening/api/wire.py)."""

    def __init__(
        self,
        fallback: Callable[[ScreenRequest], bytes],
        replica: object,
        valid_tenants: set[str],
        settings: dict[str, Any],
        tally: Tally,
        hits: Any,
        # (allow, block, no_entry, block_entry, exact, block_action): the enums' values.
        values: tuple[int, int, int, int, int, int],
        /,
    ) -> None: ...
    def __call__(self, request: ScreenRequest, context: object = ..., /) -> bytes: ...
    @property
    def answered(self) -> int: ...

# Raises ValueError for bytes that are not a ScreenCallRequest, as protobuf's parser would refuse them.
def screen_request(data: bytes, /) -> ScreenRequest: ...

# The 13 fields of a ScreenCallResponse in field-number order (str for strings, int for enums and int64).
def screen_response(*fields: str | int) -> bytes: ...
def id_position(ids: object, by_id: object, high: int, low: int, /) -> int: ...
def id_positions(
    ids: object,
    by_id: object,
    fence_hi: object,
    fence_lo: object,
    stride: int,
    high: object,
    low: object,
    out: object,
    /,
) -> None: ...

"""The compact part of the index: EXACT entries in sorted fixed-width arrays.

A carrier's list can hold tens of millions of numbers; as Python objects each
would cost hundreds of bytes. Here an entry costs 28 bytes:

- `keys` (int64, 8 bytes), sorted per tenant: the number packed into an
  integer (`number_key`) with the entry's flags in its low bits, so a lookup
  is one binary search within the tenant's slice and reads the flags from
  the same word;
- `ids` (two uint64 a row, 16 bytes): the entry's UUID, beside its key's
  position, so that the id of a hit is one more memory read;
- `by_id` (uint32, 4 bytes): key positions in the order of their ids, so
  that "is this id in here, and where?" is a binary search too.

Expiry times are rare, so they live in a sparse pair of arrays (positions,
times) consulted only for keys whose flag says they have one.

A Base is never modified once built: changes go to the index's overlay, a
merge builds a small new Base of a chunk of them (a run, in a thread: numpy
releases the GIL while it sorts), and runs are compacted into bigger ones
by size ratio (screening/index/rules.py) while calls are answered from the
old ones.
"""

from __future__ import annotations

import ctypes
import re
import time
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from screening.domain.model import CallType

try:
    from screening import _native
except ImportError:  # not compiled (no C compiler at install): Base serves its own look-ups
    _native = None  # type: ignore[assignment]

# Whether Base.searcher() hands out the C searcher; tests turn it off to run
# the pure-Python path against the same cases.
USE_NATIVE = _native is not None

NEVER = float("inf")

# The low bits of a key: its entry's flags. 50 + 4 + 1 bits of number leave
# 8; bits 4 to 7 are free for what an entry may come to carry (an action).
FLAG_BITS = 8
BUCKET = 8  # keys a bucket of the look-up table holds on average
CALL_TYPE_MASK = 0b0011  # CallType values are bit masks of Direction values
ENABLED = 0b0100
EXPIRES = 0b1000
# Why an entry with the number does not qualify, ranked: a look-up that finds
# none qualifying reports the highest rank it passed over (screening/index/rules.py).
MISS_EXPIRED = 1
MISS_DISABLED = 2
MISS_OTHER_DIRECTION = 3

# What number_key encodes: a normalized number, '+' and 1-15 digits or bare digits.
ENCODABLE = re.compile(r"\+?[0-9]{1,15}")
MAX_ENCODED = 16  # characters of the longest encodable number

# By value: CallType values are 1 to 3.
CALL_TYPES: tuple[CallType | None, ...] = (None, *sorted(CallType))

Int64s = npt.NDArray[np.int64]
UInt64s = npt.NDArray[np.uint64]
UInt32s = npt.NDArray[np.uint32]
Float64s = npt.NDArray[np.float64]


def number_key(number: str) -> int:
    """The packed form of an encodable number, flags zero. Callers check ENCODABLE.

    The value, then the digit count (keeps "01" and "1" apart), then whether
    it has a '+' (keeps "+1" and "1" apart): at most 50 + 4 + 1 bits.
    """
    # Written out (FLAG_BITS = 8): ((value << 4 | digits) << 1 | plus) << 8.
    if number[0] == "+":
        return int(number) << 13 | (len(number) << 9) - 256
    return int(number) << 13 | len(number) << 9


def key_number(key: int) -> str:
    packed = key >> FLAG_BITS
    digits = str(packed >> 5).zfill((packed >> 1) & 0xF)
    return "+" + digits if packed & 1 else digits


def flags_of(call_type: int, enabled: bool, expires_at: float) -> int:
    return call_type | (ENABLED if enabled else 0) | (EXPIRES if expires_at != NEVER else 0)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def id_parts(entry_id: str) -> tuple[int, int] | None:
    """(high, low) 64 bits of a canonical (lower-case, hyphenated) UUID string; None for any other id."""
    if _UUID.fullmatch(entry_id) is None:
        return None
    value = int(entry_id.replace("-", ""), 16)
    return value >> 64, value & 0xFFFF_FFFF_FFFF_FFFF


def is_id(entry_id: str) -> bool:
    """Whether id_parts() takes this id, without parsing it."""
    return _UUID.fullmatch(entry_id) is not None


def format_id(hi: int, lo: int) -> str:
    # bytes.hex with a separator is the cheapest way to the 8-4-4-4-12 form.
    h = hi.to_bytes(8).hex("-", 2)
    low = lo.to_bytes(8).hex()
    return f"{h[:4]}{h[5:]}-{low[:4]}-{low[4:]}"


# Of a batch of numbers: the positions of the encodable ones, and their keys.
Keyed = tuple[list[int], Int64s]


def keys_of(numbers: list[str]) -> Keyed:
    if USE_NATIVE:
        keys = np.empty(len(numbers), np.int64)
        _native.number_keys(numbers, keys)
        encodable = np.flatnonzero(keys >= 0)
        return encodable.tolist(), keys[encodable]
    which = [i for i, n in enumerate(numbers) if n and ENCODABLE.fullmatch(n)]
    return which, np.fromiter((number_key(numbers[i]) for i in which), np.int64, len(which))


class Searcher(Protocol):
    """The hot-path look-ups of one Base: _native.Searcher, or the Base itself."""

    def hit(
        self, tenant_id: str, number: str, direction: int, now: float, shadowed: AbstractSet[str]
    ) -> tuple[str, int, float] | int | None: ...

    def id_at(self, pos: int) -> str: ...


@dataclass(slots=True)
class Columns:
    """Entries as parallel columns, in any order: the input of Base.build."""

    tenants: list[str]  # names; `tenant` holds indexes into it
    tenant: npt.NDArray[np.int32]
    keys: Int64s
    hi: UInt64s
    lo: UInt64s
    expires: Float64s  # 0 where the key has no EXPIRES flag

    @staticmethod
    def empty() -> Columns:
        return Columns(
            [],
            np.empty(0, np.int32),
            np.empty(0, np.int64),
            np.empty(0, np.uint64),
            np.empty(0, np.uint64),
            np.empty(0, np.float64),
        )

    @staticmethod
    def of_entries(entries: Sequence[tuple[str, str, str, int, bool, float]]) -> Columns:
        """From (id, tenant, number, call_type, enabled, expires_at) of encodable EXACT entries with UUID ids."""
        n = len(entries)
        names = sorted({e[1] for e in entries})
        ordinal = {name: i for i, name in enumerate(names)}
        tenant = np.empty(n, np.int32)
        keys = np.empty(n, np.int64)
        hi = np.empty(n, np.uint64)
        lo = np.empty(n, np.uint64)
        expires = np.zeros(n, np.float64)
        for i, (entry_id, tenant_id, number, call_type, enabled, expires_at) in enumerate(entries):
            parts = id_parts(entry_id)
            assert parts is not None
            tenant[i] = ordinal[tenant_id]
            keys[i] = number_key(number) | flags_of(call_type, enabled, expires_at)
            hi[i], lo[i] = parts
            if expires_at != NEVER:
                expires[i] = expires_at
        return Columns(names, tenant, keys, hi, lo, expires)


def _bit_length(values: Int64s) -> Int64s:
    """int.bit_length() of each of these non-negative values."""
    lengths = np.zeros(len(values), np.int64)
    rest = values.copy()
    while True:
        more = rest > 0
        if not more.any():
            return lengths
        lengths += more
        rest >>= 1


_ORDINALS_AT_ONCE = 20_000


def _ordinals(names: list[str]) -> dict[str, int]:
    """{name: its position}, built a slice at a time: one dict call for 250,000 tenants holds the GIL
    for tens of milliseconds, a stall for the event loop when built in a worker thread."""
    ordinal: dict[str, int] = {}
    for start in range(0, len(names), _ORDINALS_AT_ONCE):
        end = min(len(names), start + _ORDINALS_AT_ONCE)
        ordinal.update(zip(names[start:end], range(start, end), strict=True))
        time.sleep(0)  # lets the event loop's thread take the GIL
    return ordinal


def _tables(keys: Int64s, starts: Int64s) -> tuple[Int64s, UInt32s]:
    """Every tenant's part of the look-up table, and the table: tenant i holds keys[starts[i]:starts[i + 1]].

    A tenant's keys are spread over about count / BUCKET buckets by their
    high bits: the smallest shift that leaves fewer distinct high parts than
    wanted buckets. The table lists each bucket's first key position.
    """
    n = len(starts) - 1
    if n <= 0:
        return np.empty((0, 4), np.int64), np.empty(0, np.uint32)
    first, last = keys[starts[:-1]], keys[starts[1:] - 1]
    low, high = first >> FLAG_BITS, last >> FLAG_BITS
    wanted = np.maximum(1, np.diff(starts) // BUCKET)
    shift = np.maximum(0, _bit_length(high - low) - _bit_length(wanted))
    while True:
        wide = (high >> shift) - (low >> shift) >= wanted
        if not wide.any():
            break
        shift[wide] += 1
    shift += FLAG_BITS
    base = first >> shift
    buckets = (last >> shift) - base + 1
    offset = np.zeros(n, np.int64)
    np.cumsum(buckets[:-1] + 1, out=offset[1:])
    counts = np.diff(starts)
    # Each key's bucket, numbered across the whole table: non-decreasing, so
    # the table is one search of every bucket number.
    numbered = (keys >> np.repeat(shift, counts)) - np.repeat(base - offset, counts)
    table = np.searchsorted(numbered, np.arange(int(offset[-1] + buckets[-1] + 1))).astype(np.uint32)
    return np.ascontiguousarray(np.stack((shift, base, buckets, offset), axis=1)), table


# What Base.arrays() holds, and each array's type.
_ARRAY_TYPES: dict[str, type[np.generic]] = {
    "starts": np.int64,
    "keys": np.int64,
    "ids": np.uint64,
    "by_id": np.uint32,
    "exp_pos": np.uint32,
    "exp_at": np.float64,
    "slices": np.int64,
    "table": np.uint32,
}


class Base:
    """An immutable set of EXACT entries, looked up by (tenant, number) or by id."""

    __slots__ = (
        "_by_id",
        "_exp_at",
        "_exp_pos",
        "_fence",
        "_ids",
        "_keys",
        "_ordinal",
        "_slices",
        "_starts",
        "_table",
        "_tenant_names",
        "by_id",
        "ids",
        "keys",
        "slices",
        "table",
    )

    def __init__(
        self,
        tenant_names: list[str],
        starts: Int64s,
        keys: Int64s,
        ids: UInt64s,
        by_id: UInt32s,
        exp_pos: UInt32s,
        exp_at: Float64s,
    ) -> None:
        starts = np.asarray(starts, np.int64)  # tenant i holds keys[starts[i]:starts[i + 1]]
        # A look-up table per tenant: the high bits of a key pick a bucket of
        # about BUCKET keys, so a look-up reads 2 table entries and about 3
        # keys, not the ~20 scattered ones of a binary search over millions
        # (in a busy server those reads are cache misses). Skewed numbers only
        # make some buckets larger, and a bucket is still binary searched.
        # Built for every tenant at once, in numpy: a load of 250,000 small
        # tenants would otherwise spend seconds in a Python loop holding the GIL.
        slices, table = _tables(keys, starts)
        self._hold(tenant_names, starts, keys, ids, by_id, exp_pos, exp_at, slices, table)

    def _hold(
        self,
        tenant_names: list[str],
        starts: Int64s,
        keys: Int64s,
        ids: UInt64s,
        by_id: UInt32s,
        exp_pos: UInt32s,
        exp_at: Float64s,
        slices: Int64s,
        table: UInt32s,
    ) -> None:
        self.keys, self.ids, self.by_id = keys, ids, by_id
        # Memoryviews: indexing one gives a plain int ~3x faster than a numpy scalar.
        self._keys: Sequence[int] = cast("Sequence[int]", keys.data)
        self._ids: Sequence[int] = cast("Sequence[int]", ids.reshape(-1).data)  # hi, lo, hi, lo, ...
        self._by_id: Sequence[int] = cast("Sequence[int]", by_id.data)
        self._exp_pos: Sequence[int] = cast("Sequence[int]", exp_pos.data)
        self._exp_at: Sequence[float] = cast("Sequence[float]", exp_at.data)
        self._tenant_names = tenant_names
        self._starts = starts
        self._ordinal = _ordinals(tenant_names)
        self.slices = slices
        self._slices: Sequence[int] = cast("Sequence[int]", slices.reshape(-1).data)
        self.table = table
        self._table: Sequence[int] = cast("Sequence[int]", table.data)
        self._fence: tuple[UInt64s, UInt64s] | None = None  # positions_of_ids' sample, made when first needed

    def arrays(self) -> tuple[list[str], dict[str, npt.NDArray[Any]]]:
        """The tenant names and every array of this Base as built (sorted, look-up table included):
        what from_arrays() takes back without sorting anything. Views, not copies."""
        return list(self._tenant_names), {
            "starts": self._starts,
            "keys": self.keys,
            "ids": self.ids,
            "by_id": self.by_id,
            "exp_pos": np.asarray(self._exp_pos),
            "exp_at": np.asarray(self._exp_at),
            "slices": self.slices,
            "table": self.table,
        }

    @staticmethod
    def from_arrays(tenant_names: list[str], arrays: Mapping[str, npt.NDArray[Any]]) -> Base:
        """The Base whose arrays() these were, holding these very arrays (read-only ones too: a Base writes none).

        Raises ValueError for arrays no Base could have (another shape or
        type, positions outside the keys, keys out of order): the C searcher
        reads wherever the table points, so nothing unchecked reaches it.
        O(entries) numpy passes, no sort.
        """
        a = {name: arrays[name] for name in _ARRAY_TYPES}
        for name, dtype in _ARRAY_TYPES.items():
            if a[name].dtype != dtype or not a[name].flags.c_contiguous:
                raise ValueError(f"{name}: {a[name].dtype} array, {np.dtype(dtype)} expected")
        keys, ids, starts, slices, table = a["keys"], a["ids"], a["starts"], a["slices"], a["table"]
        n, tenants = len(keys), len(tenant_names)
        shapes = {
            "keys": (n,),
            "ids": (n, 2),
            "by_id": (n,),
            "exp_pos": (len(a["exp_pos"]),),
            "exp_at": (len(a["exp_pos"]),),
            "starts": (tenants + 1,),
            "slices": (tenants, 4),
        }
        for name, shape in shapes.items():
            if a[name].shape != shape:
                raise ValueError(f"{name}: shape {a[name].shape}, {shape} expected")
        if table.ndim != 1 or (tenants and len(table) != slices[-1, 3] + slices[-1, 2] + 1):
            raise ValueError("table: not the length its slices give")
        if starts[0] != 0 or starts[-1] != n or (np.diff(starts) <= 0).any():
            raise ValueError("starts: not each tenant's first key position in turn")
        rising = keys[1:] > keys[:-1]
        rising[starts[1:-1] - 1] = True  # where one tenant's keys end and the next's begin
        if not rising.all():
            raise ValueError("keys: not sorted within each tenant")
        if len(table) and (table.max() > n or (np.diff(table.astype(np.int64)) < 0).any()):
            raise ValueError("table: positions outside the keys or out of order")
        if n and int(a["by_id"].max()) >= n:
            raise ValueError("by_id: positions outside the keys")
        exp_pos = a["exp_pos"]
        # Rising, in range, as many as the keys with the flag, all at such keys: exactly those keys.
        if (
            len(exp_pos) != np.count_nonzero(keys & EXPIRES)
            or (len(exp_pos) and int(exp_pos.max()) >= n)
            or (np.diff(exp_pos.astype(np.int64)) <= 0).any()
            or not (keys[exp_pos] & EXPIRES).all()
        ):
            raise ValueError("exp_pos: not the positions of the keys with an expiry")
        base = Base.__new__(Base)
        base._hold(tenant_names, starts, keys, ids, a["by_id"], exp_pos, a["exp_at"], slices, table)
        if len(base._ordinal) != tenants:
            raise ValueError("tenant names: not distinct")
        return base

    def _slice(self, tenant_id: str) -> tuple[int, int, int, int] | None:
        """(shift, base, buckets, offset) of the tenant's part of the look-up table."""
        ordinal = self._ordinal.get(tenant_id)
        if ordinal is None:
            return None
        s, at = self._slices, 4 * ordinal
        return s[at], s[at + 1], s[at + 2], s[at + 3]

    def __len__(self) -> int:
        return len(self._keys)

    def searcher(self) -> Searcher:
        """What answers hit() and id_at(): the C searcher over these arrays when built, else this Base."""
        if not USE_NATIVE:
            return self
        return _native.Searcher(
            self.keys, self.table, self.ids, self._exp_pos, self._exp_at, self._ordinal, self.slices
        )

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.keys, self.ids, self.by_id, self.table, self.slices))

    @staticmethod
    def build(columns: Columns) -> Base:
        """Sort the columns into a Base. Duplicate (tenant, number) pairs are a caller error."""
        c = columns
        # argsort then a stable sort by tenant: several times faster than lexsort.
        order = np.argsort(c.keys)
        if len(c.tenants) > 1:
            order = order[np.argsort(c.tenant[order], kind="stable")]
        tenant = c.tenant[order]
        keys = np.ascontiguousarray(c.keys[order])
        ids = np.empty((len(keys), 2), np.uint64)
        ids[:, 0] = c.hi[order]
        ids[:, 1] = c.lo[order]
        expires = c.expires[order]
        del order
        hi = ids[:, 0]
        id_order = np.argsort(hi)
        if len(hi) > 1 and (np.diff(hi[id_order]) == 0).any():  # equal high halves: ~never for random UUIDs
            id_order = np.lexsort((ids[:, 1], hi))
        by_id = id_order.astype(np.uint32)
        del id_order
        has_expiry = (keys & EXPIRES) != 0
        exp_pos = np.flatnonzero(has_expiry).astype(np.uint32)
        exp_at = np.ascontiguousarray(expires[has_expiry])
        bounds = np.searchsorted(tenant, np.arange(len(c.tenants) + 1, dtype=np.int32))
        present = np.flatnonzero(bounds[:-1] < bounds[1:])
        names = c.tenants if len(present) == len(c.tenants) else [c.tenants[i] for i in present.tolist()]
        starts = np.append(bounds[present], len(keys)).astype(np.int64)
        return Base(names, starts, keys, ids, by_id, exp_pos, exp_at)

    @staticmethod
    def empty() -> Base:
        return Base.build(Columns.empty())

    def has_tenant(self, tenant_id: str) -> bool:
        return tenant_id in self._ordinal

    def find(self, tenant_id: str, key: int) -> int:
        """Position of the tenant's entry with this number key (flags ignored), or -1."""
        where = self._slice(tenant_id)
        if where is None:
            return -1
        shift, base, buckets, offset = where
        bucket = (key >> shift) - base
        if not 0 <= bucket < buckets:
            return -1
        end = self._table[offset + bucket + 1]
        pos = bisect_left(self._keys, key, self._table[offset + bucket], end)
        if pos < end and self._keys[pos] >> FLAG_BITS == key >> FLAG_BITS:
            return pos
        return -1

    def expires_at(self, pos: int) -> float:
        return self._exp_at[bisect_left(self._exp_pos, pos)]

    def id_at(self, pos: int) -> str:
        return format_id(self._ids[2 * pos], self._ids[2 * pos + 1])

    def hit(
        self, tenant_id: str, number: str, direction: int, now: float, shadowed: AbstractSet[str]
    ) -> tuple[str, int, float] | int | None:
        """(id, call type, expiry) of the tenant's qualifying entry for this normalized number; for
        an entry with the number that does not qualify (a near miss), why, as a MISS_* rank; else None.

        An entry whose id is in `shadowed` is not there. The Python form
        of _native.Searcher.hit, which Base.searcher() hands out instead when
        the extension is built.
        """
        where = self._slice(tenant_id)
        if where is None or len(number) > MAX_ENCODED:
            return None
        key = number_key(number)
        # find(), inlined: this is the hot path.
        shift, base, buckets, offset = where
        bucket = (key >> shift) - base
        if not 0 <= bucket < buckets:
            return None
        table = self._table
        end = table[offset + bucket + 1]
        keys = self._keys
        pos = bisect_left(keys, key, table[offset + bucket], end)
        if pos == end:
            return None
        found = keys[pos]
        if found >> FLAG_BITS != key >> FLAG_BITS:
            return None
        expires = self.expires_at(pos) if found & EXPIRES else NEVER
        missed = (
            MISS_DISABLED
            if not found & ENABLED
            else MISS_EXPIRED
            if not now < expires
            else MISS_OTHER_DIRECTION
            if not found & direction
            else 0
        )
        entry_id = self.id_at(pos)
        if entry_id in shadowed:
            return None
        return missed or (entry_id, found & CALL_TYPE_MASK, expires)

    def hits(
        self, tenant_id: str, numbers: list[str], direction: int, now: float, keyed: Keyed | None = None
    ) -> dict[int, tuple[int, int, float]]:
        """hit() for many numbers, by one vectorized search: {index in numbers: (position, call type, expiry)}.

        `keyed`: keys_of(numbers), when the caller searches several tenants (a tenant and its lists) for them.
        """
        where = self._slice(tenant_id)
        if where is None:
            return {}
        _, _, buckets, offset = where
        start, end = self._table[offset], self._table[offset + buckets]
        which, wanted = keys_of(numbers) if keyed is None else keyed
        if not which:
            return {}
        pos = np.searchsorted(self.keys[start:end], wanted) + start
        found = self.keys[np.minimum(pos, end - 1)]
        ok = (
            (pos < end)
            & ((found >> FLAG_BITS) == (wanted >> FLAG_BITS))
            & ((found & ENABLED) != 0)
            & ((found & direction) != 0)
        )
        out: dict[int, tuple[int, int, float]] = {}
        for k in np.flatnonzero(ok).tolist():
            p = int(pos[k])
            key = int(found[k])
            expires = self.expires_at(p) if key & EXPIRES else NEVER
            if now < expires:
                out[which[k]] = (p, key & CALL_TYPE_MASK, expires)
        return out

    def entry_at(self, pos: int, tenant_id: str | None = None) -> tuple[str, str, str, CallType, bool, float]:
        """(id, tenant, number, call_type, enabled, expires_at) at a position."""
        if tenant_id is None:
            tenant_id = self._tenant_names[int(np.searchsorted(self._starts, pos, "right")) - 1]
        key = self._keys[pos]
        call_type = CALL_TYPES[key & CALL_TYPE_MASK]
        assert call_type is not None
        expires = self.expires_at(pos) if key & EXPIRES else NEVER
        return self.id_at(pos), tenant_id, key_number(key), call_type, bool(key & ENABLED), expires

    def position_of_id(self, hi: int, lo: int) -> int:
        """Key position of the entry with this id, or -1: a binary search over `by_id`."""
        if USE_NATIVE:
            return _native.id_position(self.ids, self.by_id, hi, lo)
        ids, by_id = self._ids, self._by_id
        n = len(by_id)
        where = bisect_left(range(n), hi, key=lambda i: ids[2 * by_id[i]])
        while where < n and ids[2 * by_id[where]] == hi:
            pos = by_id[where]
            if ids[2 * pos + 1] == lo:
                return pos
            where += 1
        return -1

    def positions_of_ids(self, hi: UInt64s, lo: UInt64s) -> Int64s:
        """position_of_id() of many ids at once, -1 for those not here.

        A binary search of every id at once: first in a sample of every
        _FENCE-th id in id order (kept, 1/_FENCE of `ids`), then within the
        _FENCE ids it leaves, so that ten thousand ids cost milliseconds at
        ten million entries, not tens of milliseconds of scattered reads.
        """
        n, m = len(self.by_id), len(hi)
        if not n or not m:
            return np.full(m, -1, np.int64)
        ids_hi, ids_lo, by_id = self.ids[:, 0], self.ids[:, 1], self.by_id
        if self._fence is None:
            sample = by_id[::_FENCE]
            self._fence = ids_hi[sample], ids_lo[sample]  # fancy indexing: contiguous copies
        fence_hi, fence_lo = self._fence
        if USE_NATIVE:
            # One C call that lets go of the GIL once (as numpy steps, each waited for it behind a busy loop).
            out = np.empty(m, np.int64)
            ask_hi, ask_lo = np.ascontiguousarray(hi, np.uint64), np.ascontiguousarray(lo, np.uint64)
            _native.id_positions(self.ids, by_id, fence_hi, fence_lo, _FENCE, ask_hi, ask_lo, out)
            return out
        # j: how many samples are below each id, comparing high halves, then low halves.
        j = np.searchsorted(fence_hi, hi, "left")
        same = np.searchsorted(fence_hi, hi, "right") - j
        one = np.flatnonzero(same == 1)  # an id whose high half a sample has: it, or one like it
        j[one] += fence_lo[j[one]] < lo[one]
        for i in np.flatnonzero(same > 1).tolist():  # several samples with one high half: ~never for random ids
            j[i] += int(np.searchsorted(fence_lo[j[i] : j[i] + same[i]], lo[i], "left"))
        # Samples j - 1 and j bound the id's place in id order.
        a = np.maximum(j - 1, 0) * _FENCE + (j > 0)
        b = np.where(j < len(fence_hi), j * _FENCE, n)
        while (a < b).any():
            mid = (a + b) >> 1
            pos = by_id[np.minimum(mid, n - 1)]
            h, low = ids_hi[pos], ids_lo[pos]
            below = (h < hi) | ((h == hi) & (low < lo))
            active = a < b
            a = np.where(active & below, mid + 1, a)
            b = np.where(active & ~below, mid, b)
        pos = by_id[np.minimum(a, n - 1)].astype(np.int64)
        found = (a < n) & (ids_hi[pos] == hi) & (ids_lo[pos] == lo)
        return np.where(found, pos, -1)

    def columns_where(self, keep: npt.NDArray[np.bool_]) -> Columns:
        """The entries at the positions `keep` marks, as columns."""
        tenant = np.repeat(
            np.arange(len(self._tenant_names), dtype=np.int32),
            np.diff(self._starts),
        )
        expires = np.zeros(len(self.keys), np.float64)
        expires[np.asarray(self._exp_pos, np.int64)] = np.asarray(self._exp_at, np.float64)
        return Columns(
            list(self._tenant_names),
            tenant[keep],
            self.keys[keep],
            self.ids[:, 0][keep],
            self.ids[:, 1][keep],
            expires[keep],
        )

    def columns(self, drop_ids: Iterable[tuple[int, int]]) -> Columns:
        """All entries as columns, less those with the given ids."""
        keep = np.ones(len(self.keys), bool)
        where = [p for p in (self.position_of_id(hi, lo) for hi, lo in drop_ids) if p >= 0]
        if where:
            keep[np.asarray(where, np.int64)] = False
        return self.columns_where(keep)


_IDS_AT_ONCE = 50_000
_FENCE = 64


def parse_ids(ids: Sequence[str]) -> tuple[UInt64s, UInt64s]:
    """(high, low) halves of canonical UUID strings, by C calls of a slice each (no Python step an id)."""
    n = len(ids)
    hi, lo = np.empty(n, np.uint64), np.empty(n, np.uint64)
    for start in range(0, n, _IDS_AT_ONCE):
        part = ids[start : start + _IDS_AT_ONCE]
        raw = np.frombuffer(bytes.fromhex("".join(part).replace("-", "")), ">u8").reshape(-1, 2)
        hi[start : start + len(part)] = raw[:, 0]
        lo[start : start + len(part)] = raw[:, 1]
    return hi, lo


def format_ids(hi: UInt64s, lo: UInt64s) -> list[str]:
    """format_id() of each (high, low) pair."""
    h = np.stack((hi, lo), axis=1).astype(">u8").tobytes().hex()
    return [
        f"{h[a : a + 8]}-{h[a + 8 : a + 12]}-{h[a + 12 : a + 16]}-{h[a + 16 : a + 20]}-{h[a + 20 : a + 32]}"
        for a in range(0, len(h), 32)
    ]


_MIX_HI = np.uint64(0x9E3779B97F4A7C15)
_MIX_LO = np.uint64(0xC2B2AE3D27D4EB4F)


def _mix(hi: UInt64s, lo: UInt64s) -> UInt64s:
    """A 64-bit hash of 128-bit ids: equal ids hash alike, others almost never."""
    with np.errstate(over="ignore"):
        h: UInt64s = hi * _MIX_HI ^ lo * _MIX_LO
        mixed: UInt64s = h ^ (h >> np.uint64(31))
        return mixed


def ids_in(hi: UInt64s, lo: UInt64s, other_hi: UInt64s, other_lo: UInt64s) -> npt.NDArray[np.bool_]:
    """Which of the ids (hi, lo) are among the other ids, vectorised (no Python object per id)."""
    found: npt.NDArray[np.bool_] = np.zeros(len(hi), bool)
    if not len(hi) or not len(other_hi):
        return found
    hashes = _mix(other_hi, other_lo)
    order = np.argsort(hashes)
    hashes = hashes[order]
    wanted = _mix(hi, lo)
    left = np.searchsorted(hashes, wanted, "left")
    right = np.searchsorted(hashes, wanted, "right")
    at = order[np.minimum(left, len(order) - 1)]
    found = (left < right) & (other_hi[at] == hi) & (other_lo[at] == lo)
    for i in np.flatnonzero(right - left > 1).tolist():  # two ids with one hash: ~never
        candidates = order[left[i] : right[i]]
        found[i] = bool(((other_hi[candidates] == hi[i]) & (other_lo[candidates] == lo[i])).any())
    return found


def release_freed_memory() -> None:
    """Hand memory freed by a load or merge back to the OS (glibc keeps it otherwise).

    Building a base frees a few arrays of tens of MB; below glibc's mmap
    threshold they come from the heap, whose free pages would otherwise stay
    in the process's RSS.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to do
        return
    libc.malloc_trim(0)


def concat(a: Columns, b: Columns) -> Columns:
    names = sorted(set(a.tenants) | set(b.tenants))
    ordinal = {name: i for i, name in enumerate(names)}

    def remap(c: Columns) -> npt.NDArray[np.int32]:
        table = np.asarray([ordinal[name] for name in c.tenants] or [0], np.int32)
        return table[c.tenant] if len(c.tenant) else np.empty(0, np.int32)

    return Columns(
        names,
        np.concatenate((remap(a), remap(b))),
        np.concatenate((a.keys, b.keys)),
        np.concatenate((a.hi, b.hi)),
        np.concatenate((a.lo, b.lo)),
        np.concatenate((a.expires, b.expires)),
    )

"""The compact base and its merges answer exactly as the plain overlay does.

The reference is a ScreeningIndex that never merges: every entry stays in
its dict overlay, which is the plain rule set of test_index.py. The index
under test gets the same changes, with merges begun, built and finished at
random points in between, and must agree on every screen, get and length.
"""

import logging
import random
import uuid
from datetime import UTC, datetime

import asyncpg
import numpy as np
import pytest

from screening.domain.model import Action, CallType, MatchKind
from screening.index import compact
from screening.index.compact import Base, Columns, flags_of, id_parts, key_number, number_key
from screening.index.rules import NEVER, IndexEntry, ScreeningIndex
from screening.sync.replica import to_index_entry
from storage import changes
from storage.migrate import migrate

NOW = 1_800_000_000.0
TENANTS = ("acme", "globex", "initech")
# Numbers that collide if encoded carelessly: leading zeros, with and without '+'.
NUMBERS = ("+1", "1", "+01", "01", "001", "+14155550100", "14155550100", "+999999999999999", "999999999999999", "+10")
PREFIXES = ("+1", "+14", "1", "+9")


def random_entry(rng: random.Random, ids: list[str]) -> IndexEntry:
    kind = MatchKind.PREFIX if rng.random() < 0.15 else MatchKind.EXACT
    number = rng.choice(PREFIXES if kind is MatchKind.PREFIX else NUMBERS)
    expires = rng.choice((NEVER, NEVER, NOW - 1, NOW + 1, NOW + 0.5))
    return IndexEntry(
        id=rng.choice(ids),
        tenant_id=rng.choice(TENANTS),
        number=number,
        match_kind=kind,
        call_type=rng.choice(list(CallType)),
        enabled=rng.random() < 0.8,
        expires_at=expires,
        action=Action.ALLOW if rng.random() < 0.1 else Action.BLOCK,
    )


def answers(index: ScreeningIndex, ids: list[str]) -> tuple[object, ...]:
    screened = tuple(
        None if (hit := index.screen(t, n, d, NOW)) is None else (hit.id, hit.number, hit.match_kind)
        for t in TENANTS
        for n in (*NUMBERS, "+14155550199", "19")
        for d in (1, 2)
    )
    # Whatever answers (the base in C or Python, or the overlay), a miss tells the same near miss.
    looked_up = tuple(
        found if isinstance(found := index.lookup(t, n, d, NOW), int) else found.id
        for t in TENANTS
        for n in (*NUMBERS, "+14155550199", "19")
        for d in (1, 2)
    )
    got = tuple(index.get(i) for i in ids)
    numbers = [*NUMBERS, "+14155550199", "19", ""]
    for t in TENANTS:
        for d in (1, 2):  # the batch path answers as the single one does
            assert index.screen_many(t, numbers, d, NOW) == [index.screen(t, n, d, NOW) for n in numbers]
    return screened, looked_up, got, len(index), sorted(e.id for e in index.entries())


@pytest.fixture(params=["native", "python"])
def lookups(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with the C searcher, then with the pure-Python look-ups it replaces."""
    if request.param == "python":
        monkeypatch.setattr(compact, "USE_NATIVE", False)
    return str(request.param)


def test_the_c_searcher_is_built() -> None:
    # Install compiles screening/_native.c (optional, so that a machine with no
    # C compiler still installs); here, where one is, it must have been built.
    assert compact.USE_NATIVE, "screening._native is not built: run `make install` with a C compiler (gcc) present"
    assert type(Base.empty().searcher()).__name__ == "Searcher"


def test_c_and_python_look_ups_agree() -> None:
    rng = random.Random(5)
    numbers = sorted({"+1" + str(rng.randrange(10**9, 10**10)) for _ in range(3000)} | set(NUMBERS))
    rows = []
    for number in numbers:
        expires = rng.choice((NEVER, NEVER, NOW - 1, NOW + 1))
        rows.append(
            (
                str(uuid.UUID(int=rng.getrandbits(128))),
                rng.choice(TENANTS),
                number,
                rng.choice(list(CallType)),
                rng.random() < 0.8,
                expires,
            )
        )
    base = Base.build(Columns.of_entries(rows))
    native = base.searcher()
    assert native is not base
    odd = ["", "+", "+1234567890123456", "1234567890123456", "+12a", "١٢٣", "+١٢٣", "12 3", "0", "+0"]
    queries = numbers + odd + ["+1" + str(rng.randrange(10**9, 10**10)) for _ in range(3000)]
    # Some listed ids shadowed: neither side may answer with them.
    shadowed = {row[0] for row in rows[::7]}
    checked = hits = 0
    for tenant in (*TENANTS, "nobody"):
        for number in queries:
            for direction in (1, 2):
                for now in (NOW, NOW + 2):
                    expected = None if number in odd else base.hit(tenant, number, direction, now, shadowed)
                    got = native.hit(tenant, number, direction, now, shadowed)
                    assert got == expected, (tenant, number, direction, now)
                    checked += 1
                    hits += expected is not None
    assert hits > 1000 and checked > 90_000
    # Shadowing is what turned those away.
    assert sum(native.hit(r[1], r[2], 3, NOW, set()) is not None for r in rows[::7]) > 100
    for pos in range(len(base)):
        assert native.id_at(pos) == base.id_at(pos)
    # The expiry and flag cases all occurred, on both sides of an expiry.
    keys = base.keys.tolist()
    assert {flags_of(ct, en, ex) & ~3 for (_, _, _, ct, en, ex) in rows} == {0, 4, 8, 12} and len(keys) == len(rows)
    with pytest.raises(IndexError):
        native.id_at(len(base))


def test_number_keys_are_distinct_and_reversible() -> None:
    keys = {number_key(n) for n in NUMBERS}
    assert len(keys) == len(NUMBERS)
    for n in NUMBERS:
        assert key_number(number_key(n)) == n
    assert id_parts("a") is None and id_parts(str(uuid.uuid4()).upper()) is None


def test_random_changes_and_merges_agree_with_the_plain_overlay(lookups: str) -> None:
    rng = random.Random(7)
    ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(40)] + ["not-a-uuid"]
    largest_base = 0
    for _ in range(30):
        merged, plain = ScreeningIndex(), ScreeningIndex()
        pending = None
        for _ in range(200):
            roll = rng.random()
            if roll < 0.7:
                entry = random_entry(rng, ids)
                merged.upsert(entry)
                plain.upsert(entry)
            elif roll < 0.9:
                entry_id = rng.choice(ids)
                merged.remove(entry_id)
                plain.remove(entry_id)
            elif pending is None:
                pending = merged.begin_merge(chunk=rng.choice((1, 5, 1000)))
                pending.build()
            else:
                merged.finish_merge(pending)
                pending = None
            if pending is None:
                assert answers(merged, ids) == answers(plain, ids)
            largest_base = max(largest_base, merged.base_bytes // 28)
        if pending is not None:
            merged.finish_merge(pending)
        assert answers(merged, ids) == answers(plain, ids)
    assert largest_base >= 10  # the merges did move entries into the base


def test_first_load_columns_answer_like_upserts(lookups: str) -> None:
    rng = random.Random(11)
    entries = {}
    for _ in range(300):
        e = random_entry(rng, [str(uuid.uuid4())])
        if e.match_kind is MatchKind.EXACT:
            entries[(e.tenant_id, e.number)] = e
    # As a first load does: ALLOW entries are not in the columns, they are upserted.
    loaded = ScreeningIndex.from_columns(
        Columns.of_entries(
            [
                (e.id, e.tenant_id, e.number, e.call_type, e.enabled, e.expires_at)
                for e in entries.values()
                if e.action is Action.BLOCK
            ]
        )
    )
    for e in entries.values():
        if e.action is Action.ALLOW:
            loaded.upsert(e)
    plain = ScreeningIndex()
    for e in entries.values():
        plain.upsert(e)
    ids = [e.id for e in entries.values()]
    assert answers(loaded, ids) == answers(plain, ids)
    assert loaded.get(ids[0]) == plain.get(ids[0])


def test_base_costs_under_29_bytes_an_entry() -> None:
    n = 100_000
    rng = np.random.default_rng(1)
    columns = Columns(
        ["acme"],
        np.zeros(n, np.int32),
        (np.arange(n, dtype=np.int64) * 2 + 1) << 4 | 7,
        rng.integers(0, 2**63, n, dtype=np.uint64),
        rng.integers(0, 2**63, n, dtype=np.uint64),
        np.zeros(n, np.float64),
    )
    assert 28 * n < Base.build(columns).nbytes < 28.6 * n  # 28 in arrays, the rest in the look-up table


async def test_first_load_from_the_database_packs_numbers_as_python_does(start_server, dsn: str) -> None:
    """The SQL packing of the binary COPY load equals number_key: same answers as plain upserts of the rows."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        rng = random.Random(3)
        seen = set()
        for _ in range(120):
            e = random_entry(rng, ["x"])
            if (e.tenant_id, e.number, e.match_kind) in seen:
                continue
            seen.add((e.tenant_id, e.number, e.match_kind))
            await conn.execute(
                "INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type, enabled, expire_time)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                e.tenant_id,
                e.number,
                int(e.match_kind),
                int(e.call_type),
                e.enabled,
                None if e.expires_at == NEVER else datetime.fromtimestamp(e.expires_at, UTC),
            )
        await conn.execute("UPDATE forbidden_numbers SET deleted = true WHERE number = '+10'")
        # Two tenants whose names hash alike (the load then maps tenants by a join),
        # and a number no write path would store (the load then filters what it packs).
        pair = await conn.fetchrow(
            "SELECT min(name), max(name) FROM (SELECT 't' || i AS name FROM generate_series(1, 300000) i) n"
            " GROUP BY hashtext(name) HAVING count(*) > 1 LIMIT 1"
        )
        for tenant in pair:
            await conn.execute(
                "INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type) VALUES ($1, '+1', 1, 3)",
                tenant,
            )
        await conn.execute(
            "INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type) VALUES ('acme', '12a', 1, 3)"
        )
        rows = [
            changes.ChangedRow(*r)
            for r in await conn.fetch(
                "SELECT id::text, tenant_id, number, match_kind, call_type, enabled, expire_time, action, deleted"
                " FROM forbidden_numbers"
            )
        ]
    finally:
        await conn.close()
    plain = ScreeningIndex()
    for row in rows:
        if not row.deleted:
            plain.upsert(to_index_entry(row))
    app = await start_server()
    loaded = app.replica.index
    assert loaded.base_bytes > 0  # the EXACT entries came through the binary COPY
    ids = [row.id for row in rows]
    assert answers(loaded, ids) == answers(plain, ids)
    for tenant in pair:
        assert loaded.screen(tenant, "+1", 1, NOW) == plain.screen(tenant, "+1", 1, NOW) is not None
    assert loaded.screen("acme", "12a", 1, NOW) == plain.screen("acme", "12a", 1, NOW) is not None


def test_ids_are_found_by_binary_search_even_when_their_high_halves_are_equal() -> None:
    n = 500
    rng = np.random.default_rng(3)
    hi = np.repeat(np.arange(n // 5, dtype=np.uint64), 5)  # five entries share each high half
    lo = rng.permutation(np.arange(n, dtype=np.uint64) * 7 + 1)
    keys = (rng.permutation(np.arange(n, dtype=np.int64)) * 2 + 1) << 4 | 7
    base = Base.build(Columns(["acme"], np.zeros(n, np.int32), keys, hi, lo, np.zeros(n, np.float64)))
    for h, lo_half, key in zip(hi.tolist(), lo.tolist(), keys.tolist(), strict=True):
        pos = base.position_of_id(h, lo_half)
        assert pos >= 0 and int(base.keys[pos]) == key
        assert base.id_at(pos) == str(uuid.UUID(int=h << 64 | lo_half))
    assert base.position_of_id(0, 0) == -1 and base.position_of_id(n, 1) == -1
    drop = [(int(hi[i]), int(lo[i])) for i in range(0, n, 3)]
    kept = base.columns(drop)
    assert len(kept.keys) == n - len(drop)
    assert set(zip(kept.hi.tolist(), kept.lo.tolist(), strict=True)).isdisjoint(drop)


async def test_a_server_says_when_it_searches_in_python(
    start_server, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="screening.app.service")
    await start_server()
    assert not [r for r in caplog.records if "_native.c" in r.getMessage()]
    monkeypatch.setattr(compact, "USE_NATIVE", False)
    app = await start_server()
    assert [r for r in caplog.records if "_native.c is not compiled" in r.getMessage()]
    assert all(type(search) is Base for search, _ in app.replica.index._probes)
    one = Columns.of_entries([(str(uuid.uuid4()), "acme", "+1555", 3, True, NEVER)])
    # The look-ups the index of such a server serves are Base's own.
    assert [type(search) for search, _ in ScreeningIndex.from_columns(one)._probes] == [Base]


async def test_a_first_load_of_many_tenants_lists_them_by_one_scan(
    start_server, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the walk's limit the tenants are listed by a scan: the same index either way."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute(
            "INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type)"
            " SELECT 'tenant-' || (i % 40), '+1706' || lpad(i::text, 7, '0'), 1 + (i % 9 = 0)::int, 3"
            " FROM generate_series(0, 399) AS i"
        )
    finally:
        await conn.close()
    walked = await start_server()
    monkeypatch.setattr(changes, "TENANT_WALK_LIMIT", 5)
    scanned = await start_server()
    digests = [
        sorted((e.id, e.tenant_id, e.number, e.match_kind) for e in app.replica.index.entries())
        for app in (walked, scanned)
    ]
    assert len(digests[0]) == 400
    assert digests[0] == digests[1]
    assert scanned.replica.index.screen("tenant-7", "+17060000007", 1, NOW) is not None


def test_c_and_python_key_a_batch_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = [*NUMBERS, "", "+", "12a", "+1234567890123456", "1234567890123456", "٤١٥", "+14155550199", "0"]
    native = compact.keys_of(batch)
    monkeypatch.setattr(compact, "USE_NATIVE", False)
    python = compact.keys_of(batch)
    assert native[0] == python[0] and native[1].tolist() == python[1].tolist()
    assert [batch[i] for i in python[0]] == [n for n in batch if compact.ENCODABLE.fullmatch(n)]


@pytest.mark.parametrize("size", [1, 63, 64, 65, 5000])
@pytest.mark.parametrize("high_halves", [None, 3])
def test_ids_are_found_many_at_once_as_one_at_a_time(size: int, high_halves: int | None, lookups: str) -> None:
    """positions_of_ids (in C; in Python a sample of the ids, then a search within 64 of them) agrees with
    position_of_id, also where many ids share a high half (time-ordered ids), for ids present and ids just
    beside them."""
    rng = np.random.default_rng(size)
    hi = rng.integers(0, 2**63, size, dtype=np.uint64)
    if high_halves is not None:
        hi %= np.uint64(high_halves)
    n = np.arange(size, dtype=np.int64)
    keys = ((12_000_000_000 + n) << 13) | ((12 << 9) - 256) | 7
    cols = Columns(
        ["acme"], np.zeros(size, np.int32), keys, hi, rng.integers(1, 2**63, size, dtype=np.uint64), np.zeros(size)
    )
    base = Base.build(cols)
    ids_hi, ids_lo = base.ids[:, 0].copy(), base.ids[:, 1].copy()
    assert base.positions_of_ids(ids_hi, ids_lo).tolist() == list(range(size))
    for other_hi, other_lo in (
        (ids_hi, ids_lo + np.uint64(1)),
        (ids_hi, ids_lo - np.uint64(1)),
        (ids_hi + np.uint64(1), ids_lo),
    ):
        found = base.positions_of_ids(other_hi, other_lo).tolist()
        assert found == [base.position_of_id(int(h), int(lo)) for h, lo in zip(other_hi, other_lo, strict=True)]
    assert compact.format_ids(ids_hi, ids_lo) == [base.id_at(pos) for pos in range(size)]
    parsed = compact.parse_ids(compact.format_ids(ids_hi, ids_lo))
    assert parsed[0].tolist() == ids_hi.tolist() and parsed[1].tolist() == ids_lo.tolist()

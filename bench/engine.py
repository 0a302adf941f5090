"""Figure i: the index engine alone, in one process: switches, merges, compactions, many tenants.

    python -m bench.engine SMALL LARGE TENANTS [DATABASE_URL]

Each step runs its heavy part as the replica does (in a worker thread) while
the event loop screens numbers, 50 a turn, as fast as it can, timing each
turn: a turn that takes long is a stall of the loop (the worst, and the
99.9th percentile, which a busy machine disturbs less); the same loop runs
idle for a second first, so the ratio of screens/s says what the step costs
calls in this process. Process CPU time covers every thread, the screening
loop's included; `work_cpu_s` is that less the idle loop's CPU a turn times
the turns taken meanwhile: the step's own. Prints JSON.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import numpy as np

from bench import data
from bench.data import SPAN, STEP, TENANT
from screening.domain.model import CallType, MatchKind
from screening.index import rules
from screening.index.compact import Base, Columns, format_id, key_number
from screening.index.rules import IndexEntry, ScreeningIndex
from storage import changes
from storage.migrate import migrate

Figures = dict[str, Any]


def keys_of(i: np.ndarray) -> np.ndarray:
    values = 12_000_000_000 + (i * STEP) % SPAN  # int("+1" + ten digits)
    return (values << 13) | ((12 << 9) - 256) | 7  # number_key, flags BOTH | ENABLED


def columns(start: int, n: int, tenants: int = 1, seed: int = 1) -> Columns:
    i = np.arange(start, start + n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    names = [TENANT] if tenants == 1 else [f"tenant-{t:07d}" for t in range(tenants)]
    return Columns(
        names,
        (i % tenants).astype(np.int32),
        keys_of(i),
        rng.integers(0, 2**63, n, dtype=np.uint64),
        rng.integers(0, 2**63, n, dtype=np.uint64),
        np.zeros(n),
    )


async def under_load(index_of: Callable[[], ScreeningIndex], work: Callable[[], Awaitable[Any]]) -> Figures:
    """Screens/s of the loop and its worst stall, idle for a second and then while `work` runs."""
    # Half of them listed (the first entries of every index here), half not.
    probes = [key_number(int(k)) for k in keys_of(np.arange(0, 2_000_000, 1000, dtype=np.int64))]

    screening = [0.0]  # the loop thread's CPU in screening turns

    async def measure(until: Callable[[], bool]) -> tuple[float, float, float, int]:
        screened, turns, started = 0, [], time.perf_counter()
        while not until():
            index = index_of()
            tick, cpu = time.perf_counter(), time.thread_time()
            for p in probes[screened % 1900 : screened % 1900 + 50]:
                index.screen(TENANT, p, 1, 0.0)
            screening[0] += time.thread_time() - cpu
            screened += 50
            await asyncio.sleep(0)
            turns.append(time.perf_counter() - tick)
        rate = screened / (time.perf_counter() - started)
        return rate, max(turns), float(np.percentile(turns, 99.9)), len(turns)

    # The work's CPU: its worker threads' (an executor of its own, whose threads' CPU clocks are read), and
    # the loop thread's outside screening turns, less what the idle loop spends there a turn.
    clocks: list[int] = []
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(initializer=lambda: clocks.append(time.pthread_getcpuclockid(threading.get_ident())))
    loop.set_default_executor(executor)
    idle_until = time.perf_counter() + 1.0
    loop_cpu = time.thread_time()
    idle_rate, idle_worst, idle_p999, idle_turns = await measure(lambda: time.perf_counter() >= idle_until)
    overhead_per_turn = (time.thread_time() - loop_cpu - screening[0]) / idle_turns
    done = False
    cpu, wall, loop_cpu, screening[0] = time.process_time(), time.perf_counter(), time.thread_time(), 0.0

    async def run() -> None:
        nonlocal done
        try:
            await work()
        finally:
            done = True

    task = asyncio.create_task(run())
    rate, worst, p999, turns = await measure(lambda: done)
    await task
    on_loop = time.thread_time() - loop_cpu - screening[0] - turns * overhead_per_turn
    in_workers = sum(time.clock_gettime(clock) for clock in clocks)
    executor.shutdown()
    return {
        "wall_s": round(time.perf_counter() - wall, 3),
        "cpu_s": round(time.process_time() - cpu, 3),
        "work_cpu_s": round(in_workers + max(0.0, on_loop), 3),
        "work_cpu_on_loop_s": round(max(0.0, on_loop), 3),
        "screens_per_s_idle": round(idle_rate),
        "screens_per_s_during": round(rate),
        "ratio": round(rate / idle_rate, 3),
        "worst_stall_ms": round(worst * 1000, 2),
        "worst_stall_idle_ms": round(idle_worst * 1000, 2),
        "p999_stall_ms": round(p999 * 1000, 2),
        "p999_stall_idle_ms": round(idle_p999 * 1000, 2),
    }


async def switch(small: int) -> Figures:
    """A replica of `small` entries takes an import of `small` more, whole, built in a worker thread."""
    state = {"index": ScreeningIndex.from_columns(columns(0, small))}
    added = columns(small, small, seed=2)

    async def work() -> None:
        built = await asyncio.to_thread(state["index"].rebuilt, added, added.hi, added.lo, [])
        state["index"] = built

    figures = await under_load(lambda: state["index"], work)
    assert len(state["index"]) == 2 * small
    figures["entries"] = small
    figures["change_set"] = small
    return figures


async def merge(large: int, changes: int) -> Figures:
    """`changes` upserts in the overlay of an index of `large` entries, merged as the replica merges them."""
    index = ScreeningIndex.from_columns(columns(0, large))
    extra = columns(large, changes, seed=3)
    for k in range(changes):
        index.upsert(
            IndexEntry(
                format_id(int(extra.hi[k]), int(extra.lo[k])),
                TENANT,
                key_number(int(extra.keys[k])),
                MatchKind.EXACT,
                CallType.BOTH,
                True,
            )
        )

    async def work() -> None:
        await rules.merge_in_background(index)

    figures = await under_load(lambda: index, work)
    figures["entries"] = large
    figures["changes"] = changes
    figures["runs_after"] = index.run_sizes
    return figures


async def change_set(large: int, changes: int) -> Figures:
    """A change set of `changes` new entries switched into an index of `large`, as the replica takes one over
    APPLY_IN_PLACE rows: a new index built in a worker thread and swapped in, then whatever compaction it wants."""
    state = {"index": ScreeningIndex.from_columns(columns(0, large))}
    added = columns(large, changes, seed=5)

    async def work() -> None:
        built = await asyncio.to_thread(state["index"].rebuilt, added, added.hi, added.lo, [])
        state["index"] = built
        if built.wants_merge():
            await rules.merge_in_background(built)

    figures = await under_load(lambda: state["index"], work)
    assert len(state["index"]) == large + changes
    figures["entries"] = large
    figures["changes"] = changes
    figures["runs_after"] = state["index"].run_sizes
    return figures


def lookup_cost(index: ScreeningIndex) -> Figures:
    """Thread CPU of one lookup, in microseconds: numbers no run has, and numbers of the oldest run."""
    absent = [key_number(int(k)) for k in keys_of(np.arange(SPAN - 20_000, SPAN, dtype=np.int64))]
    present = [key_number(int(k)) for k in keys_of(np.arange(0, 20_000, dtype=np.int64))]
    out: Figures = {"runs": len(index.run_sizes)}
    spent = time.thread_time()
    for name, numbers in (("miss_us", absent), ("hit_us", present)):
        best = float("inf")
        for _ in range(5):
            started = time.thread_time()
            for number in numbers:
                index.lookup(TENANT, number, 1, 0.0)
            best = min(best, time.thread_time() - started)
        out[name] = round(best / len(numbers) * 1e6, 3)
    out["spent_s"] = time.thread_time() - spent
    return out


# Change sets the amortized step takes at most: at 10M entries the big run's compaction comes after about
# 250 of them, which ran for more than 23 minutes beside the screening loop (docs/performance.md).
AMORTIZED_SETS = 40


async def amortized(large: int, changes: int, max_sets: int = AMORTIZED_SETS) -> Figures:
    """Change sets of `changes` new entries, one after another, into an index of `large`, until the big run
    is compacted or `max_sets` were taken: the CPU of every run built and compacted on the way, a change
    set's share of it, and the worst stall of the loop meanwhile; and a lookup's cost with one run and with
    the most runs met."""
    state = {"index": ScreeningIndex.from_columns(columns(0, large))}
    costs = {"one_run": lookup_cost(state["index"])}
    sets, most = 0, 1

    async def work() -> None:
        nonlocal sets, most
        start = large
        while True:
            index = state["index"]
            added = columns(start, changes, seed=7 + sets)
            start += changes
            index = state["index"] = await asyncio.to_thread(index.rebuilt, added, added.hi, added.lo, [])
            sets += 1
            if len(index.run_sizes) > most:
                most = len(index.run_sizes)
                costs["most_runs"] = await asyncio.to_thread(lookup_cost, index)
            if index.wants_merge():
                await rules.merge_in_background(index)
            if len(index.run_sizes) == 1 or sets >= max_sets:
                return

    figures = await under_load(lambda: state["index"], work)
    # Less the lookups timed on the way (in a worker thread, by its own CPU clock).
    timed = costs.get("most_runs", {}).pop("spent_s", 0.0)
    figures["cpu_s"] = round(figures["cpu_s"] - timed, 3)
    figures["work_cpu_s"] = round(figures["work_cpu_s"] - timed, 3)
    costs["one_run"].pop("spent_s")
    figures["entries"] = large
    figures["changes_per_set"] = changes
    figures["change_sets"] = sets
    figures["big_run_compacted"] = len(state["index"].run_sizes) == 1
    figures["work_cpu_ms_per_change_set"] = round(figures["work_cpu_s"] * 1000 / sets, 1)
    figures["lookup"] = costs
    return figures


async def tenants(count: int, per_tenant: int) -> Figures:
    """A first load's base of `count` tenants with `per_tenant` entries each, built in a worker thread."""
    rss_before = rss()
    state: dict[str, Any] = {"index": ScreeningIndex()}
    cols = columns(0, count * per_tenant, tenants=count, seed=4)

    async def work() -> None:
        base = await asyncio.to_thread(Base.build, cols)
        state["index"] = ScreeningIndex(base)

    figures = await under_load(lambda: state["index"], work)
    index: ScreeningIndex = state["index"]
    figures["tenants"] = count
    figures["entries_per_tenant"] = per_tenant
    figures["bytes_per_tenant_arrays"] = round(index.base_bytes / count, 1)
    figures["bytes_per_tenant_table_and_slices"] = round(
        (index._runs[0].base.table.nbytes + index._runs[0].base.slices.nbytes) / count, 1
    )
    base = index._runs[0].base
    names = base._tenant_names
    figures["bytes_per_tenant_names_and_dict"] = round(
        (sys.getsizeof(base._ordinal) + sum(map(sys.getsizeof, names)) + sys.getsizeof(names)) / count, 1
    )
    figures["rss_growth_per_tenant_bytes"] = round((rss() - rss_before) / count, 1)
    return figures


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


async def first_load(url: str, count: int, per_tenant: int) -> Figures:
    """A replica's first load, from the database, of `count` tenants with `per_tenant` entries each."""
    dsn = await data.create_database(url, "bench_tenants")
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute(
            "INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type)"
            " SELECT 'tenant-' || lpad((i / $2)::text, 7, '0'), '+1202' || lpad(i::text, 7, '0'), 1, 3"
            " FROM generate_series(0, $1 - 1) AS i",
            count * per_tenant,
            per_tenant,
        )
        await conn.execute("VACUUM ANALYZE forbidden_numbers")
        state = {"index": ScreeningIndex()}

        async def work() -> None:
            snapshot = await changes.load_snapshot(conn)
            s = snapshot
            columns = Columns(s.tenants, s.tenant, s.keys, s.hi, s.lo, s.expires)
            state["index"] = ScreeningIndex(await asyncio.to_thread(Base.build, columns))

        figures = await under_load(lambda: state["index"], work)
    finally:
        await conn.close()
    assert len(state["index"]) == count * per_tenant
    figures["tenants"] = count
    figures["entries_per_tenant"] = per_tenant
    return figures


async def main(small: int, large: int, tenant_count: int, url: str | None) -> Figures:
    # Tenants first: its RSS growth is read before the other steps' arrays come and go.
    figures = {"tenants": await tenants(tenant_count, 4)}
    if url:
        figures["first_load"] = await first_load(url, tenant_count, 4)
    figures["switch"] = await switch(small)
    figures["merge"] = await merge(large, 10_000)
    figures["change_set"] = await change_set(large, 10_000)
    figures["amortized"] = await amortized(large, 10_000)
    return figures


if __name__ == "__main__":
    small, large, tenant_count = (int(a) for a in sys.argv[1:4])
    url = sys.argv[4] if len(sys.argv) > 4 else None
    print(json.dumps(asyncio.run(main(small, large, tenant_count, url))))

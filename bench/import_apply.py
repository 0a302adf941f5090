"""The import transaction's statements one by one, as PostgreSQL's backend CPU time.

    .venv/bin/python bench/import_apply.py [--rows 1000000] [--rounds 1] [--database-url URL]

Stages `--rows` new entries through storage.import_jobs (COPY into staging,
the apply, the job's result, the commit) on a fresh database, and prints for
each statement the CPU time the PostgreSQL backend serving it spent (from
/proc, so the server must run on this machine) and the wall time. Backend
CPU is what the machine's other work disturbs least. Without --database-url
an embedded PostgreSQL is started in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from screening.app import embedded  # noqa: E402
from storage import migrate  # noqa: E402
from storage.import_jobs import ImportJobStore, Outcome, StagedRow  # noqa: E402
from storage.rows import Who  # noqa: E402
from storage.tenancy import Tenancy  # noqa: E402

TENANT = "bench"
COPY_ROWS = 20_000
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    """User and system CPU seconds of process `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


class _Timed:
    """A connection whose statements are timed as its backend's CPU; the rest passes through."""

    def __init__(self, conn: Any, pid: int, spent: list[tuple[str, float, float]]) -> None:
        self._conn, self._pid, self._spent = conn, pid, spent

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._conn, name)
        if name not in ("execute", "fetchrow", "fetchval", "fetch", "copy_records_to_table"):
            return target

        async def timed(*args: Any, **kwargs: Any) -> Any:
            cpu, wall = _cpu(self._pid), time.perf_counter()
            try:
                return await target(*args, **kwargs)
            finally:
                label = " ".join(str(args[0]).split())[:60] if args else name
                self._spent.append((label, _cpu(self._pid) - cpu, time.perf_counter() - wall))

        return timed


async def _sample(dsn: str, pid: int, waits: dict[str, int]) -> None:
    """What the backend waits on, sampled every 20 ms ("cpu": running, waiting on nothing)."""
    conn = await asyncpg.connect(dsn)
    try:
        while True:
            row = await conn.fetchrow(
                "SELECT state, wait_event_type, wait_event FROM pg_stat_activity WHERE pid = $1", pid
            )
            if row is not None and row["state"] == "active":
                key = f"{row['wait_event_type']}:{row['wait_event']}" if row["wait_event"] else "cpu"
                waits[key] = waits.get(key, 0) + 1
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


async def _stats(dsn: str) -> asyncpg.Record | None:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchrow(
            """SELECT (SELECT pg_size_pretty(wal_bytes) FROM pg_stat_wal) AS wal,
                      (SELECT wal_buffers_full FROM pg_stat_wal) AS wal_buffers_full,
                      (SELECT num_timed + num_requested FROM pg_stat_checkpointer) AS checkpoints,
                      current_setting('shared_buffers') AS shared_buffers,
                      current_setting('wal_buffers') AS wal_buffers,
                      current_setting('max_wal_size') AS max_wal_size"""
        )
    finally:
        await conn.close()


def _rows(count: int) -> list[StagedRow]:
    return [
        (i + 1, i + 2, f"+1{2_000_000_000 + i}", 1, 3, True, f"bench row {i}" if i % 3 == 0 else "", None, 1)
        for i in range(count)
    ]


async def one(dsn: str, rows: list[StagedRow]) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate.migrate(conn)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    import_pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1, server_settings={"temp_buffers": "256MB"})
    assert pool is not None and import_pool is not None
    try:
        tenancy = Tenancy()
        async with pool.acquire() as c:
            await tenancy.check(c)
        store = ImportJobStore(pool, import_pool, tenancy)
        who = Who(actor="bench", request_id="bench")
        job = await store.create(who, TENANT, 1, "bench.csv", 1, 0)
        spent: list[tuple[str, float, float]] = []
        started = time.perf_counter()
        async with import_pool.acquire() as raw:
            pid = raw.get_server_pid()
        cpu0 = _cpu(pid)
        waits: dict[str, int] = {}
        sampling = asyncio.create_task(_sample(dsn, pid, waits))
        async with store.transaction(who, TENANT, job.id) as tx:
            tx._conn = _Timed(tx._conn, pid, spent)  # type: ignore[assignment]
            staged = time.perf_counter()
            for start in range(0, len(rows), COPY_ROWS):
                await tx.stage(rows[start : start + COPY_ROWS])
            staged = time.perf_counter() - staged
            applied = await tx.apply(who, TENANT, job.id, True, len(rows))
            outcome = Outcome(len(rows), applied.created, applied.updated, 0, 0, applied.superseded, 0)
            await tx.succeed(who, TENANT, job.id, outcome, 0)  # rows, not a file: no bytes
            commit_at = time.perf_counter()
        committed = time.perf_counter() - commit_at
        total_cpu = _cpu(pid) - cpu0
        sampling.cancel()
        await asyncio.gather(sampling, return_exceptions=True)
        assert applied.created == len(rows), applied
    finally:
        await pool.close()
        await import_pool.close()
    copies = [s for s in spent if s[0].startswith("import_staging")]
    other = [s for s in spent if not s[0].startswith("import_staging")]
    return {
        "load": os.getloadavg()[0],
        "wall_s": round(time.perf_counter() - started, 2),
        "backend_cpu_s": round(total_cpu, 2),
        "copy": {"cpu_s": round(sum(s[1] for s in copies), 2), "wall_s": round(staged, 2)},
        "statements": [{"sql": s[0], "cpu_s": round(s[1], 2), "wall_s": round(s[2], 2)} for s in other if s[2] > 0.05],
        "commit_wall_s": round(committed, 2),
        "wait_samples_per_20ms": dict(sorted(waits.items(), key=lambda kv: -kv[1])),
        "wal_and_checkpoints": dict(stats) if (stats := await _stats(dsn)) else {},
    }


async def measure(cluster_url: str, count: int, rounds: int) -> list[dict[str, Any]]:
    rows = _rows(count)
    admin = await asyncpg.connect(cluster_url)
    results = []
    try:
        for _ in range(rounds):
            name = "bench_" + uuid.uuid4().hex[:12]
            await admin.execute(f'CREATE DATABASE "{name}"')
            try:
                results.append(await one(urlunsplit(urlsplit(cluster_url)._replace(path="/" + name)), rows))
                print(json.dumps(results[-1], indent=1), flush=True)
            finally:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--database-url", default=os.environ.get("SCREENING_BENCH_DATABASE_URL"))
    parser.add_argument(
        "--postgres-defaults", action="store_true", help="the embedded PostgreSQL without embedded.SETTINGS"
    )
    args = parser.parse_args()
    if args.postgres_defaults:
        embedded.SETTINGS.clear()
    if args.database_url:
        asyncio.run(measure(args.database_url, args.rows, args.rounds))
        return
    with tempfile.TemporaryDirectory(prefix="screening-bench-pg-") as tmp:
        url, stop = embedded.start(Path(tmp))
        try:
            asyncio.run(measure(url, args.rows, args.rounds))
        finally:
            stop()


if __name__ == "__main__":
    main()

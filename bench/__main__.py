"""`make bench`: every speed figure in one run, printed as a table and written to bench-results.json.

The machine has 2 cores. Where a figure compares servers, each server is
pinned to core 0 and its load generator (a separate process) to core 1, so
client CPU never sits in the server's process or on its core; servers being
compared run alternately with the same load, round after round, so drift in
the machine's load hits both. The scaling figure (g) pins nothing: its two
worker processes need both cores, and its load is batched so that the client
costs little. PostgreSQL is an embedded one in a temporary directory, filled
straight through SQL (not through the API).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from bench import data, digest, followers, h2load
from bench.servers import ROOT, Server, load, run_json
from bench.stats import mean, ratio_spread, round_ratios
from screening.app import embedded
from screening.v1 import screening_pb2 as pb
from screening.v1 import screening_pb2_grpc as pb_grpc

# Empty loop iterations of figure a2: about 8 µs, near what our handler spends (larger than the run-to-run noise).
BUSY_LOOPS = 1200
SERVER_CPU = {0}
CALL_NUMBERS = 1_000_000
RUN_WINDOW = 150_000  # more numbers than a load run makes calls (10 s at up to 13k calls/s)
CLIENT_CPU = {1}

Figures = dict[str, Any]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def write_numbers(path: Path, numbers: list[str]) -> str:
    path.write_text("\n".join(numbers))
    return str(path)


def alternate(rounds: int, *servers: tuple[str, Server]) -> list[tuple[str, Server]]:
    """a b, b a, a b, ... (a b c, c b a, ...): none always runs first or last (the machine's load drifts)."""
    order: list[tuple[str, Server]] = []
    for i in range(rounds):
        order += servers if i % 2 == 0 else reversed(servers)
    return order


def ceiling(single: Figures) -> float:
    """The most a second worker could add when the load generator shares the cores.

    All cores' time goes to server and client CPU per call (per number, for
    batches), as measured with one worker: that rate over one worker's.
    """
    per_number = single["server_cpu_us_per_call"] + single["client_cpu_us_per_call"]
    return float(len(os.sched_getaffinity(0)) / per_number * 1e6 / single["numbers_per_s"])


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.dir = workdir
        self.results: Figures = {}
        self._runs = 0

    # ---------------------------------------------------------------- setup

    async def setup(self, url: str) -> None:
        a = self.args
        started = time.perf_counter()
        self.dsn_empty = await data.create_database(url, "bench_empty")
        await data.fill(self.dsn_empty, 0)
        self.dsn_small = await data.create_database(url, "bench_small")
        await data.fill(self.dsn_small, a.small)
        log(f"{a.small:,} entries written in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        self.dsn_large = await data.create_database(url, "bench_large")
        await data.fill(self.dsn_large, a.large)
        log(f"{a.large:,} entries written in {time.perf_counter() - started:.1f}s")
        # Calls: 10% for listed numbers, 90% for others, nearly all distinct; each
        # load run takes its own window of them (_timed_load): far more than
        # the national-number parse cache holds, so it does not answer them.
        rng = random.Random(1)
        calls = [
            data.number_of(rng.randrange(a.small))
            if rng.random() < 0.1
            else data.number_of(a.small + rng.randrange(data.SPAN - a.small))
            for _ in range(CALL_NUMBERS)
        ]
        self.e164 = write_numbers(self.dir / "e164.txt", calls)
        self.national = write_numbers(self.dir / "national.txt", [n[2:] for n in calls])

    # ------------------------------------------------------------- figures

    def engine(self, url: str) -> Figures:
        """Figure i: the index engine in one process (bench/engine.py): switches, merges, many tenants."""
        log("i: index engine: a big change set switched in, a merge, change sets and compactions, 250,000 tenants")
        a = self.args
        return run_json("bench.engine", str(a.small), str(a.large), str(a.tenants), url)

    def digestion(self, url: str) -> Figures:
        """Figure j: ScreenCall on a replica digesting `--small`-row change sets, beside the floor (bench/digest.py)."""
        a = self.args
        log(
            f"j: ScreenCall on a replica digesting {a.small:,}-row change sets against the floor,"
            f" {a.digest_rounds} rounds"
        )
        figures = asyncio.run(
            digest.run(url, a.small, a.digest_rounds, a.digest_in_flight, self.dir, SERVER_CPU, CLIENT_CPU)
        )
        for r in figures["rounds"]:
            log(
                f"   {r['kind']}: window {r['window_s']:.2f} s (written in {r['written_s']:.1f} s),"
                f" ours {r['during']['calls_per_s']:.0f}/s p99 {r['during']['p99_ms']:.1f} ms"
                f" (before the commit {r['before']['calls_per_s']:.0f}/s),"
                f" floor {r['floor']['calls_per_s']:.0f}/s p99 {r['floor']['p99_ms']:.1f} ms:"
                f" ratio {r['ratio']:.3f}, p99 x{r['p99_ratio']:.2f}; the replica's threads' share of its core"
                f" {r['threads']} (before the commit {r['threads_before']}), the database"
                f" {r['database_cpu_s']:.2f} s CPU; the digestion's CPU (the replica's less its calls')"
                f" {r['digest_cpu_s']:.2f} s; cores busy {r['cores_busy']};"
                f" the replica's backends, sampled: {r['backend_waits']};"
                f" its log: {r['replica_log']}"
            )
        return figures

    def in_process(self) -> Figures:
        log("b: in-process screen cost")
        return run_json("bench.inprocess", str(self.args.large), cpus=CLIENT_CPU)

    def footprint(self) -> Figures:
        log("c: memory per entry and start-up time")
        figures: Figures = {}
        empty = Server.screening(self.dsn_empty).wait_serving()
        time.sleep(1)
        base_rss = empty.rss_bytes()
        empty.stop()
        figures["empty_rss_mb"] = base_rss / 2**20
        for name, dsn, n in (("small", self.dsn_small, self.args.small), ("large", self.dsn_large, self.args.large)):
            server = Server.screening(dsn, log=self.dir / f"serve-{name}.log").wait_serving(within=300)
            time.sleep(1)
            rss = server.rss_bytes()
            server.stop()
            figures[f"entries_{n}"] = {
                "start_to_serving_s": server.started_to_serving,
                "rss_mb": rss / 2**20,
                "bytes_per_entry": (rss - base_rss) / n,
            } | self._from_snapshot(name, dsn)
            log(f"   {n:,} entries: SERVING after {server.started_to_serving:.1f}s, {(rss - base_rss) / n:.1f} B/entry")
        return figures

    def _from_snapshot(self, name: str, dsn: str) -> Figures:
        """The same start from a snapshot file (`screening snapshot`, then --snapshot-url)."""
        path = self.dir / f"{name}.snapshot"
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "screening", "snapshot", "--from", dsn, "--to", str(path)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        written = time.perf_counter() - started
        served_log = self.dir / f"serve-{name}-snapshot.log"
        server = Server.screening(dsn, "--snapshot-url", str(path), "--log-level", "INFO", log=served_log)
        server.wait_serving(within=300)
        cpu = server.cpu_seconds()
        server.stop()
        # The replica's own account of reading the file and making its index (snapshot read, full load lines).
        lines = served_log.read_text()
        read = float(_SNAPSHOT_READ.findall(lines)[-1])
        loaded = float(_SNAPSHOT_LOADED.findall(lines)[-1])
        log(
            f"   from a snapshot ({path.stat().st_size / 2**20:.0f} MB, written in {written:.1f}s):"
            f" SERVING after {server.started_to_serving:.1f}s ({cpu:.1f}s CPU; file read in {read:.2f}s,"
            f" index made {loaded:.2f}s after the read began)"
        )
        return {
            "snapshot_written_s": written,
            "snapshot_mb": path.stat().st_size / 2**20,
            "start_to_serving_from_snapshot_s": server.started_to_serving,
            "start_cpu_s_from_snapshot": cpu,
            "snapshot_read_s": read,
            "snapshot_loaded_s": loaded,
        }

    def versus_floor(self) -> Figures:
        log("a: ScreenCall against the no-op floor")
        ours = Server.screening(self.dsn_small, "--default-region", "US", cpus=SERVER_CPU).wait_serving()
        floor = Server.noop(cpus=SERVER_CPU).wait_serving(health=False)
        # For national input, also the floor plus the contract's parse alone:
        # what the phonenumbers step leaves of the floor, whoever serves it.
        parsing = Server.parsing_noop("US", cpus=SERVER_CPU).wait_serving(health=False)
        figures: Figures = {}
        try:
            for kind, numbers in (("e164", self.e164), ("national", self.national)):
                for in_flight in (1, 16, 64):
                    servers = [("floor", floor), ("ours", ours)]
                    if kind == "national":
                        servers.append(("floor_parsing", parsing))
                    runs: dict[str, list[Figures]] = {name: [] for name, _ in servers}
                    for name, server in alternate(self.args.floor_rounds, *servers):
                        runs[name].append(
                            self._timed_load(
                                server, numbers, "--in-flight", str(in_flight), duration=self.args.floor_duration
                            )
                        )
                    row: Figures = {name: self._summary(r) for name, r in runs.items()}
                    row["ratio"] = row["ours"]["calls_per_s"] / row["floor"]["calls_per_s"]
                    row["ratio_rounds"] = round_ratios(runs["ours"], runs["floor"])
                    row["ratio_ci95"] = ratio_spread(row["ratio_rounds"])
                    if "floor_parsing" in row:
                        row["parse_ratio"] = row["floor_parsing"]["calls_per_s"] / row["floor"]["calls_per_s"]
                        row["ratio_to_parsing"] = row["ours"]["calls_per_s"] / row["floor_parsing"]["calls_per_s"]
                    # Calls per CPU-second of the server: the same ratio, less
                    # sensitive to other processes taking core 0 for a while.
                    row["cpu_ratio"] = row["ours"]["calls_per_cpu_s"] / row["floor"]["calls_per_cpu_s"]
                    figures[f"{kind}_{in_flight}"] = row
                    log(
                        f"   {kind} x{in_flight}: ours {row['ours']['calls_per_s']:.0f}/s,"
                        f" floor {row['floor']['calls_per_s']:.0f}/s, ratio {row['ratio']:.3f}"
                        f" ±{row['ratio_ci95']:.3f} (per server CPU-second {row['cpu_ratio']:.3f});"
                        f" server CPU per call {row['ours']['server_cpu_us_per_call']:.1f} us,"
                        f" {row['ours']['handler_us_per_call']:.1f} of them in the handler;"
                        f" floor {row['floor']['server_cpu_us_per_call']:.1f} us"
                        + (
                            f"; the floor with the parse alone {row['floor_parsing']['calls_per_s']:.0f}/s,"
                            f" ratio {row['parse_ratio']:.3f}, ours to it {row['ratio_to_parsing']:.3f}"
                            if "parse_ratio" in row
                            else ""
                        )
                    )
        finally:
            ours.stop()
            floor.stop()
            parsing.stop()
        return figures

    def handler_cost(self) -> Figures:
        """What a microsecond of handler CPU costs a call: the floor with and without a busy loop of known cost."""
        log("a2: the cost of handler CPU in a loaded server")
        loops = BUSY_LOOPS
        # Its cost on a warm CPU, in this process (the same interpreter).
        busy = range(loops)

        def spin() -> None:
            for _ in busy:
                pass

        warm_us = min(timeit.repeat(spin, number=20_000, repeat=5)) / 20_000 * 1e6
        floor = Server.noop(cpus=SERVER_CPU).wait_serving(health=False)
        busy_floor = Server.noop(cpus=SERVER_CPU, busy_loops=loops).wait_serving(health=False)
        try:
            runs: dict[str, list[Figures]] = {"floor": [], "busy": []}
            for name, server in alternate(self.args.floor_rounds, ("floor", floor), ("busy", busy_floor)):
                runs[name].append(
                    self._timed_load(server, self.e164, "--in-flight", "16", duration=self.args.floor_duration)
                )
        finally:
            floor.stop()
            busy_floor.stop()
        row: Figures = {name: self._summary(r) for name, r in runs.items()}
        added = row["busy"]["server_cpu_us_per_call"] - row["floor"]["server_cpu_us_per_call"]
        row.update(busy_loops=loops, busy_warm_us=warm_us, added_us_per_call=added, multiplier=added / warm_us)
        log(
            f"   a busy loop of {warm_us:.2f} us (warm) adds {added:.1f} us of server CPU per call:"
            f" x{row['multiplier']:.1f}"
        )
        return row

    def _timed_load(
        self,
        server: Server,
        numbers: str,
        *args: str,
        cpus: set[int] | None = CLIENT_CPU,
        duration: float | None = None,
    ) -> Figures:
        duration = self.args.duration if duration is None else duration
        cpu0, wall0 = server.cpu_seconds(), time.perf_counter()
        handler0 = server.handler_seconds()
        self._runs += 1
        result = load(
            server.address,
            "--numbers",
            numbers,
            "--offset",
            str(self._runs * RUN_WINDOW),
            "--take",
            str(RUN_WINDOW),
            "--duration",
            str(duration),
            "--warmup",
            "1",
            *args,
            cpus=cpus,
        )
        server_cpu = server.cpu_seconds() - cpu0
        result["server_cpu_share"] = server_cpu / (time.perf_counter() - wall0)
        # Numbers screened per CPU-second of the server, warm-up included.
        result["calls_per_cpu_s"] = result["all_numbers"] / max(server_cpu, 1e-9)
        result["client_cpu_share"] = result["client_cpu_s"] / (duration + 1)
        # Server CPU per call, and the part of it spent inside our handler
        # (from the server's own latency histogram; 0 for the no-op floor).
        result["server_cpu_us_per_call"] = server_cpu / max(result["all_numbers"], 1) * 1e6
        result["client_cpu_us_per_call"] = result["client_cpu_s"] / max(result["all_numbers"], 1) * 1e6
        spent, calls = (b - a for a, b in zip(handler0, server.handler_seconds(), strict=True))
        result["handler_us_per_call"] = spent / calls * 1e6 if calls else 0.0
        return result

    @staticmethod
    def _summary(runs: list[Figures]) -> Figures:
        return {
            "calls_per_s": mean([r["calls_per_s"] for r in runs]),
            "numbers_per_s": mean([r["numbers_per_s"] for r in runs]),
            "p50_ms": mean([r["p50_ms"] for r in runs]),
            "p99_ms": mean([r["p99_ms"] for r in runs]),
            "server_cpu_share": mean([r["server_cpu_share"] for r in runs]),
            "calls_per_cpu_s": mean([r["calls_per_cpu_s"] for r in runs]),
            "client_cpu_share": mean([r["client_cpu_share"] for r in runs]),
            "server_cpu_us_per_call": mean([r["server_cpu_us_per_call"] for r in runs]),
            "handler_us_per_call": mean([r["handler_us_per_call"] for r in runs]),
            "client_cpu_us_per_call": mean([r["client_cpu_us_per_call"] for r in runs]),
            "rounds": len(runs),
        }

    def rules(self) -> Figures:
        """ScreenCall and ScreenNumbers for a tenant with allow-exceptions and a subscribed shared list.

        The large data set (its tenant's own entries) plus a shared list of
        LISTED entries the tenant subscribes to, and EXCEPTIONS allow entries of
        the tenant for numbers of the list: every call looks in the tenant's
        entries and in the list's. Changes the large database: runs last.
        """
        a = self.args
        listed, exceptions = min(1_000_000, a.large), 1_000
        log(f"h: rules: {a.large:,} entries, {exceptions:,} allow-exceptions, a subscribed {listed:,}-entry list")
        asyncio.run(data.add_rules(self.dsn_large, a.large, listed, exceptions))
        # Calls: 10% the tenant's own numbers, 5% the list's only, 1% its allow-exceptions, the rest no one's.
        rng = random.Random(2)
        calls = []
        for _ in range(CALL_NUMBERS):
            draw = rng.random()
            if draw < 0.10:
                i = rng.randrange(a.large)
            elif draw < 0.15:
                i = a.large + exceptions + rng.randrange(listed // 2 - exceptions)
            elif draw < 0.16:
                i = a.large + rng.randrange(exceptions)
            else:
                i = a.large + listed + rng.randrange(data.SPAN - a.large - listed)
            calls.append(data.number_of(i))
        numbers = write_numbers(self.dir / "rules.txt", calls)
        # 11M rows loaded on one (shared) core: on a busy machine that took over 5 minutes.
        ours = Server.screening(self.dsn_large, cpus=SERVER_CPU, log=self.dir / "serve-rules.log").wait_serving(
            within=1200
        )
        floor = Server.noop(cpus=SERVER_CPU).wait_serving(health=False)
        figures: Figures = {}
        try:
            for in_flight in (1, 16, 64):
                runs: dict[str, list[Figures]] = {"floor": [], "ours": []}
                for name, server in alternate(a.floor_rounds, ("floor", floor), ("ours", ours)):
                    runs[name].append(
                        self._timed_load(server, numbers, "--in-flight", str(in_flight), duration=a.floor_duration)
                    )
                row: Figures = {name: self._summary(r) for name, r in runs.items()}
                row["ratio"] = row["ours"]["calls_per_s"] / row["floor"]["calls_per_s"]
                row["ratio_rounds"] = round_ratios(runs["ours"], runs["floor"])
                row["ratio_ci95"] = ratio_spread(row["ratio_rounds"])
                row["cpu_ratio"] = row["ours"]["calls_per_cpu_s"] / row["floor"]["calls_per_cpu_s"]
                figures[f"e164_{in_flight}"] = row
                log(
                    f"   e164 x{in_flight}: ours {row['ours']['calls_per_s']:.0f}/s,"
                    f" floor {row['floor']['calls_per_s']:.0f}/s, ratio {row['ratio']:.3f} ±{row['ratio_ci95']:.3f}"
                    f" (per server CPU-second {row['cpu_ratio']:.3f})"
                )
            runs = {"floor": [], "ours": []}
            batch = ("--mode", "batch", "--batch", "10000", "--in-flight", "2")
            for name, server in alternate(a.rounds // 2 or 1, ("floor", floor), ("ours", ours)):
                runs[name].append(self._timed_load(server, numbers, *batch))
            figures["screen_numbers"] = {name: self._summary(r) for name, r in runs.items()}
            log(f"   screen_numbers: ours {figures['screen_numbers']['ours']['numbers_per_s']:.0f} numbers/s")
        finally:
            ours.stop()
            floor.stop()
        return figures

    def batches(self) -> Figures:
        log("f: batch screening")
        ours = Server.screening(self.dsn_small, cpus=SERVER_CPU).wait_serving()
        floor = Server.noop(cpus=SERVER_CPU).wait_serving(health=False)
        figures: Figures = {}
        try:
            for mode, args in (
                ("screen_numbers", ("--mode", "batch", "--batch", "10000", "--in-flight", "2")),
                ("stream", ("--mode", "stream", "--in-flight", "64", "--streams", "2")),
            ):
                runs: dict[str, list[Figures]] = {"ours": [], "floor": []}
                for name, server in alternate(self.args.rounds // 2 or 1, ("floor", floor), ("ours", ours)):
                    runs[name].append(self._timed_load(server, self.e164, *args))
                row = {name: self._summary(r) for name, r in runs.items()}
                figures[mode] = row
                log(
                    f"   {mode}: ours {row['ours']['numbers_per_s']:.0f} numbers/s,"
                    f" floor {row['floor']['numbers_per_s']:.0f} numbers/s"
                )
        finally:
            ours.stop()
            floor.stop()
        return figures

    def propagation(self) -> Figures:
        log("e: propagation from commit to another replica's answer")
        writer = Server.screening(self.dsn_small).wait_serving()
        reader = Server.screening(self.dsn_small).wait_serving()
        try:
            return asyncio.run(self._propagate(writer.address, reader.address, self.args.changes))
        finally:
            writer.stop()
            reader.stop()

    @staticmethod
    async def _propagate(writer: str, reader: str, changes: int) -> Figures:
        from_commit: list[float] = []
        from_request: list[float] = []
        async with grpc.aio.insecure_channel(writer) as w, grpc.aio.insecure_channel(reader) as r:
            admin = pb_grpc.ForbiddenNumberAdminStub(w)
            screening = pb_grpc.ScreeningStub(r)
            for i in range(changes):
                number = f"+4420{i:08d}"
                request = pb.CreateForbiddenNumberRequest(
                    forbidden_number=pb.ForbiddenNumber(
                        tenant_id=data.TENANT, number=number, call_type=pb.CALL_TYPE_BOTH
                    )
                )
                query = pb.ScreenCallRequest(tenant_id=data.TENANT, number=number, direction=pb.DIRECTION_INBOUND)
                asked = time.perf_counter()
                await admin.CreateForbiddenNumber(request)
                committed = time.perf_counter()  # the write's commit happened before its response
                while (await screening.ScreenCall(query)).verdict != pb.VERDICT_BLOCK:
                    if time.perf_counter() - asked > 10:
                        raise RuntimeError(f"{number} not answered by the other replica within 10s")
                answered = time.perf_counter()
                from_commit.append(answered - committed)
                from_request.append(answered - asked)
                await asyncio.sleep(0.02)

        def pct(values: list[float], p: float) -> float:
            ordered = sorted(values)
            return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

        figures = {
            "changes": changes,
            "p50_ms": pct(from_commit, 50),
            "p99_ms": pct(from_commit, 99),
            "max_ms": max(from_commit) * 1000,
            "including_write_p50_ms": pct(from_request, 50),
            "including_write_p99_ms": pct(from_request, 99),
        }
        log(f"   p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms")
        return figures

    def scaling(self) -> Figures:
        log("g: 1 and 2 worker processes")
        one = Server.screening(self.dsn_small, "--workers", "1").wait_serving()
        two = Server.screening(self.dsn_small, "--workers", "2").wait_serving()
        figures: Figures = {}
        try:
            time.sleep(3)  # both of two's workers loaded, not only the first to answer
            for mode, args in (
                ("screen_numbers", ("--mode", "batch", "--batch", "2000", "--in-flight", "8", "--channels", "8")),
                ("screen_call_64", ("--in-flight", "64", "--channels", "8")),
            ):
                runs: dict[str, list[Figures]] = {"1": [], "2": []}
                for name, server in alternate(self.args.rounds, ("1", one), ("2", two)):
                    runs[name].append(self._timed_load(server, self.e164, *args, cpus=None))
                row: Figures = {f"workers_{name}": self._summary(r) for name, r in runs.items()}
                row["scaling"] = row["workers_2"]["numbers_per_s"] / row["workers_1"]["numbers_per_s"]
                row["ceiling"] = ceiling(row["workers_1"])
                figures[mode] = row
                log(
                    f"   {mode}: 1 worker {row['workers_1']['numbers_per_s']:.0f}/s,"
                    f" 2 workers {row['workers_2']['numbers_per_s']:.0f}/s, x{row['scaling']:.2f}"
                    f" (estimated ceiling with the load generator on the same cores: x{row['ceiling']:.2f})"
                )
            if h2load.available():
                figures["screen_call_h2load"] = self._scaling_h2load(one, two)
            else:
                figures["screen_call_h2load"] = "not run: no h2load (`make bench` installs Debian's nghttp2-client)"
        finally:
            one.stop()
            two.stop()
        return figures

    def _scaling_h2load(self, one: Server, two: Server) -> Figures:
        """Unary ScreenCall from a load generator in C, which leaves the second core to the second worker.

        The no-op floor runs the same way, one process and two on one port,
        alternated with ours: what a second process adds to gRPC itself here.
        """
        request = pb.ScreenCallRequest(
            tenant_id=data.TENANT,
            number=data.number_of(self.args.small + 1),  # not listed: the common case
            direction=pb.DIRECTION_INBOUND,
            call_id="h2load",
        )
        floor_one = Server.noop().wait_serving(health=False)
        floor_two = Server.noop(processes=2).wait_serving(health=False)
        servers = {"1": one, "2": two, "floor_1": floor_one, "floor_2": floor_two}
        runs: dict[str, list[Figures]] = {name: [] for name in servers}
        try:
            time.sleep(3)  # both floor processes listening, not only the first to answer
            for name, server in alternate(self.args.rounds, *servers.items()):
                runs[name].append(self._h2load_run(name, server, request))
        finally:
            floor_one.stop()
            floor_two.stop()
        summary: dict[str, Figures] = {
            name: {
                key: mean([r[key] for r in r_list])
                for key in ("calls_per_s", "server_cpu_us_per_call", "client_cpu_us_per_call")
            }
            for name, r_list in runs.items()
        }
        for figures in summary.values():
            figures["numbers_per_s"] = figures["calls_per_s"]
        single = summary["1"]
        row: Figures = {
            "workers_1": single,
            "workers_2": summary["2"],
            "scaling": summary["2"]["calls_per_s"] / single["calls_per_s"],
            "ceiling": ceiling(single),
            "floor": {
                "workers_1": summary["floor_1"],
                "workers_2": summary["floor_2"],
                "scaling": summary["floor_2"]["calls_per_s"] / summary["floor_1"]["calls_per_s"],
            },
        }
        log(
            f"   screen_call_h2load: 1 worker {single['calls_per_s']:.0f}/s, 2 workers"
            f" {row['workers_2']['calls_per_s']:.0f}/s, x{row['scaling']:.2f}; client CPU per call"
            f" {single['client_cpu_us_per_call']:.0f} us, server {single['server_cpu_us_per_call']:.0f} us"
            f" (estimated ceiling x{row['ceiling']:.2f}); the no-op floor: {summary['floor_1']['calls_per_s']:.0f}/s,"
            f" {summary['floor_2']['calls_per_s']:.0f}/s, x{row['floor']['scaling']:.2f}"
        )
        return row

    def _h2load_run(self, name: str, server: Server, request: pb.ScreenCallRequest) -> Figures:
        ours = not name.startswith("floor")
        workers = int(name[-1])
        before = server.screened_calls(workers) if ours else None
        cpu0 = server.cpu_seconds()
        # 32 connections: the kernel spreads connections, not calls, over the workers.
        result: Figures = h2load.run(
            server.address, request, connections=32, streams=4, duration=self.args.duration, warmup=1.0
        )
        cpu = server.cpu_seconds() - cpu0
        answered = result["calls"]
        if before is not None:
            after = server.screened_calls(workers)
            answered = after["allow"] + after["block"] - before["allow"] - before["block"]
            # h2load sees HTTP/2 status only: the servers' own tally says every call was screened.
            if result["failed"] or after["error"] > before["error"] or answered < result["calls"]:
                raise RuntimeError(f"h2load calls not all screened: {result}, server tally {before} -> {after}")
        elif result["failed"]:
            raise RuntimeError(f"h2load calls failed on the floor: {result}")
        result["server_cpu_us_per_call"] = cpu / answered * 1e6
        result["client_cpu_us_per_call"] = result["client_cpu_s"] / answered * 1e6
        return result

    def scale(self) -> Figures:
        plan = followers.plan_of(self.args, "scale-")
        log(f"s: {plan.followers} followers on a primary, then on two standbys (bench/followers.py)")
        return asyncio.run(followers.scale(plan))

    def imports(self, url: str) -> Figures | str:
        """Figure d: end-to-end file imports (bench/import_1m.py) on this run's cluster: 1M-row CSV, 100k-row xlsx."""
        found: Figures = {}
        for name, rows, file_format in (("csv", 1_000_000, "csv"), ("xlsx", 100_000, "xlsx")):
            log(f"d: import of a {rows:,}-row {file_format} file (bench/import_1m.py)")
            command = [sys.executable, str(ROOT / "bench" / "import_1m.py"), "--database-url", url]
            out = subprocess.run(
                [*command, "--rows", str(rows), "--format", file_format],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                return f"failed: {out.stderr[-500:]}"
            found[name] = json.loads(out.stdout)
            log(f"   {found[name]}")
        return found


Row = tuple[str, str, str, str]  # figure, measured, target, verdict


def _ok(good: bool, out_of_reach: bool = False, why: str = "", within: bool = False) -> str:
    """The verdict.

    `out_of_reach`: a reference measured beside ours (`why`) falls short of
    the target too. `within`: the target lies inside the figure's 95%
    confidence interval, so this run cannot tell.
    """
    if good:
        return "met"
    if out_of_reach:
        return f"NOT MET ({why} is below it too)"
    return "NOT MET (within the run's 95% interval)" if within else "NOT MET"


def _rows_a(a: Figures) -> list[Row]:
    rows: list[Row] = []
    for kind, target in (("e164", 0.95), ("national", 0.90)):
        for c in (1, 16, 64):
            r = a[f"{kind}_{c}"]
            # Older results files have no interval.
            spread = f" ±{r['ratio_ci95']:.3f}" if not math.isnan(r.get("ratio_ci95", math.nan)) else ""
            rows.append(
                (
                    f"a ScreenCall {kind} x{c}",
                    f"{r['ours']['calls_per_s']:.0f}/s p50 {r['ours']['p50_ms']:.2f} p99 {r['ours']['p99_ms']:.2f} ms;"
                    f" floor {r['floor']['calls_per_s']:.0f}/s p50 {r['floor']['p50_ms']:.2f}"
                    f" p99 {r['floor']['p99_ms']:.2f} ms; ratio {r['ratio']:.3f}{spread}"
                    f" (per CPU-s {r['cpu_ratio']:.3f});"
                    f" server CPU/call {r['ours']['server_cpu_us_per_call']:.0f} us"
                    f" (in handler {r['ours']['handler_us_per_call']:.1f}),"
                    f" floor {r['floor']['server_cpu_us_per_call']:.0f} us"
                    + (
                        f"; the floor with the contract's parse alone: ratio {r['parse_ratio']:.3f},"
                        f" ours to it {r['ratio_to_parsing']:.3f}"
                        if "parse_ratio" in r
                        else ""
                    ),
                    f">= {target}",
                    _ok(
                        r["ratio"] >= target,
                        out_of_reach=r.get("parse_ratio", 1.0) < target,
                        why="the parse alone",
                        within=r["ratio"] + r.get("ratio_ci95", 0.0) >= target,
                    ),
                )
            )
    return rows


def _rows_a2(a2: Figures) -> list[Row]:
    return [
        (
            "a2 cost of handler CPU",
            f"a busy loop of {a2['busy_warm_us']:.2f} us (warm) in the floor's handler adds"
            f" {a2['added_us_per_call']:.1f} us of server CPU per call (x{a2['multiplier']:.1f})",
            "",
            "",
        )
    ]


def _rows_b(b: Figures) -> list[Row]:
    rows: list[Row] = []
    for key in (
        "e164_absent_ns",
        "e164_present_ns",
        "formatted_absent_ns",
        "formatted_present_ns",
        "national_absent_ns",
        "national_present_ns",
        "national_cached_ns",
    ):
        is_e164 = key.startswith("e164")
        rows.append(
            (
                f"b in-process {key[:-3]}",
                f"{b[key]:.0f} ns ({b['entries']:,} entries)",
                "<= 2000 ns" if is_e164 else "",
                _ok(b[key] <= 2000) if is_e164 else "",
            )
        )
    for kind in ("absent", "present"):
        call, python = b[f"call_{kind}_ns"], b[f"call_python_{kind}_ns"]
        rows.append(
            (
                f"b in-process ScreenCall e164 {kind}, request to bytes",
                f"{call:.0f} ns; its Python path {python:.0f} ns (x{python / call:.1f})",
                "",
                "",
            )
        )
    return rows


_SNAPSHOT_READ = re.compile(r"snapshot read in ([0-9.]+)s")
_SNAPSHOT_LOADED = re.compile(r"full load from the snapshot: .* in ([0-9.]+)s")


def _rows_c(c: Figures) -> list[Row]:
    rows: list[Row] = []
    for key, value in c.items():
        if not key.startswith("entries_"):
            continue
        n = int(key.split("_")[1])
        large = n >= 10_000_000
        rows.append(
            (
                f"c {n:,} entries",
                f"{value['bytes_per_entry']:.1f} B/entry, SERVING after {value['start_to_serving_s']:.1f} s"
                + (
                    f"; from a snapshot file after {value['start_to_serving_from_snapshot_s']:.1f} s"
                    f" ({value.get('start_cpu_s_from_snapshot', math.nan):.1f} s CPU; read in"
                    f" {value.get('snapshot_read_s', math.nan):.2f} s, index made after"
                    f" {value.get('snapshot_loaded_s', math.nan):.2f} s;"
                    f" {value['snapshot_mb']:.0f} MB, written in {value['snapshot_written_s']:.1f} s)"
                    if "start_to_serving_from_snapshot_s" in value
                    else ""
                ),
                "<= 32 B, <= 30 s; <= 3 s from a snapshot" if large else "",
                _ok(
                    value["bytes_per_entry"] <= 32
                    and value["start_to_serving_s"] <= 30
                    and value.get("start_to_serving_from_snapshot_s", math.inf) <= 3
                )
                if large
                else "",
            )
        )
    return rows


def _rows_d(d: Figures | str) -> list[Row]:
    if isinstance(d, str):
        return [("d imports", d, "", "")]
    rows: list[Row] = []
    for name, label, target in (("csv", "d import 1M-row CSV", 20.0), ("xlsx", "d import 100k-row xlsx", 15.0)):
        r = d[name]
        answered = r["answered_by_second_replica_s"]
        rows.append(
            (
                label,
                f"committed in {r['committed_s']} s, answered by another replica after {answered} s"
                f" ({r['answered_after_commit_s']} s after the commit), with each entry's history;"
                f" importing replica's peak RSS {r['importing_replica_peak_rss_mb']:.0f} MB"
                f" (before: {r['importing_replica_peak_rss_before_mb']:.0f} MB)",
                f"answered <= {target:.0f} s",
                _ok(answered <= target),
            )
        )
    return rows


def _rows_i(h: Figures) -> list[Row]:
    s, m, t, f = h["switch"], h["merge"], h["tenants"], h["first_load"]
    c, a = h["change_set"], h["amortized"]

    def during(r: Figures) -> str:
        return (
            f"{r['wall_s']} s, {r['work_cpu_s']} s CPU of its own ({r['cpu_s']} s with the screening loop's);"
            f" loop's worst stall {r['worst_stall_ms']} ms,"
            f" 99.9th percentile {r['p999_stall_ms']} ms (idle: {r['worst_stall_idle_ms']} ms,"
            f" {r['p999_stall_idle_ms']} ms); screens/s in the loop meanwhile x{r['ratio']} of idle"
        )

    return [
        (
            f"i switch {s['change_set']:,} rows into {s['entries']:,}",
            during(s),
            "stall <= 10 ms",
            _ok(s["worst_stall_ms"] <= 10, out_of_reach=s["worst_stall_idle_ms"] > 10, why="the idle loop"),
        ),
        *(
            (
                f"i {what} {f['changes']:,} {unit} into {f['entries']:,}",
                during(f) + f"; runs after: {f['runs_after']}",
                "<= 0.1 s CPU, stall <= 5 ms",
                _ok(
                    f["work_cpu_s"] <= 0.1 and f["worst_stall_ms"] <= 5,
                    out_of_reach=f["work_cpu_s"] <= 0.1 and f["worst_stall_idle_ms"] > 5,
                    why="the idle loop's stall",
                ),
            )
            for what, unit, f in (("merge", "changes", m), ("change set of", "rows", c))
        ),
        (
            f"i {a['change_sets']} change sets of {a['changes_per_set']:,} into {a['entries']:,}, compactions included"
            + ("" if a.get("big_run_compacted", True) else " but not the big run's (stopped before it)"),
            during(a) + f"; {a['work_cpu_ms_per_change_set']} ms CPU a change set by the bench's accounting"
            " (it overstates: docs/performance.md);"
            f" a lookup (miss, hit) {a['lookup']['one_run']['miss_us']}, {a['lookup']['one_run']['hit_us']} us"
            f" with 1 run, {a['lookup']['most_runs']['miss_us']}, {a['lookup']['most_runs']['hit_us']} us"
            f" with {a['lookup']['most_runs']['runs']}",
            "<= 0.1 s CPU a change set",
            _ok(a["work_cpu_ms_per_change_set"] <= 100),
        ),
        (
            f"i load {t['tenants']:,} tenants x {t['entries_per_tenant']}",
            during(t) + f"; a tenant costs {t['bytes_per_tenant_arrays']} bytes in arrays"
            f" ({t['bytes_per_tenant_table_and_slices']} of them its look-up table and slice)"
            f" and {t['bytes_per_tenant_names_and_dict']} in its name and the tenant dict;"
            f" RSS grew {t['rss_growth_per_tenant_bytes']} bytes a tenant (the columns it was built from included)",
            "<= 5 s, stall < 10 ms",
            _ok(
                t["wall_s"] <= 5 and t["worst_stall_ms"] < 10,
                out_of_reach=t["worst_stall_idle_ms"] >= 10,
                why="the idle loop",
            ),
        ),
        (
            f"i first load of {f['tenants']:,} tenants x {f['entries_per_tenant']} from the database",
            during(f),
            "<= 5 s, stall < 10 ms",
            _ok(
                f["wall_s"] <= 5 and f["worst_stall_ms"] < 10,
                out_of_reach=f["worst_stall_idle_ms"] >= 10,
                why="the idle loop",
            ),
        ),
    ]


def _rows_j(j: Figures) -> list[Row]:
    rows: list[Row] = []
    for kind, label in (("import", "an import"), ("delete", "its delete")):
        if kind not in j:
            continue
        r = j[kind]
        rows.append(
            (
                f"j ScreenCall x{j['in_flight']} on a replica digesting {label} of {j['change_set']:,} rows",
                f"{r['ours_calls_per_s']:.0f}/s p99 {r['ours_p99_ms']:.1f} ms (worst {r['ours_max_ms']:.0f} ms)"
                f" from commit to switch ({r['window_s']:.1f} s; {r['ours_before_calls_per_s']:.0f}/s before it);"
                f" floor {r['floor_calls_per_s']:.0f}/s p99 {r['floor_p99_ms']:.1f} ms; ratio {r['ratio']:.3f}"
                f" ±{r['ratio_ci95']:.3f}, p99 x{r['p99_ratio']:.2f} (worst round x{r['p99_ratio_worst']:.2f});"
                f" the digestion took {r['digest_cpu_s']:.1f} s of the replica's core; {r['rounds']} rounds",
                ">= 0.85, p99 <= 2x",
                _ok(
                    r["ratio"] >= 0.85 and r["p99_ratio"] <= 2,
                    within=r["p99_ratio"] <= 2 and r["ratio"] + r["ratio_ci95"] >= 0.85,
                ),
            )
        )
    return rows


def _rows_e(e: Figures) -> list[Row]:
    return [
        (
            "e propagation",
            f"p50 {e['p50_ms']:.1f} ms, p99 {e['p99_ms']:.1f} ms ({e['changes']} changes)",
            "p99 <= 100 ms",
            _ok(e["p99_ms"] <= 100),
        )
    ]


def _rows_f(f: Figures) -> list[Row]:
    return [
        (
            f"f {mode}",
            f"{r['ours']['numbers_per_s']:.0f} numbers/s (floor {r['floor']['numbers_per_s']:.0f})",
            ">= 200000/s",
            _ok(
                r["ours"]["numbers_per_s"] >= 200_000,
                out_of_reach=r["floor"]["numbers_per_s"] < 200_000,
                why="the floor",
            ),
        )
        for mode, r in f.items()
    ]


def _rows_s(s: Figures) -> list[Row]:
    rows: list[Row] = []
    for layout, label in (("primary", "every follower on the primary"), ("standbys", "feeds on 2 standbys")):
        r = s[layout]
        rows.append(
            (
                f"s {r['followers']} followers, {label}",
                f"primary: {r['primary_connections']} connections ({r['primary_connections_per_follower']:.2f} a"
                f" follower), {r['primary_rows_read_per_change']['*']:.1f} rows read a change"
                f" ({r['primary_rows_read_per_change'].get('forbidden_numbers', 0.0):.1f} of entries),"
                f" CPU {r['primary_cpu_ms_per_change']:.1f} ms a change ({r['primary_cpu_pct_of_a_core']:.0f}%"
                f" of a core at {r['rate_per_s']:.0f} changes/s); every follower answered a commit after"
                f" p50 {r['lag_p50_ms']:.0f} ms, p99 {r['lag_p99_ms']:.0f} ms ({r['never_seen']} never)"
                + (
                    "; each standby: "
                    + ", ".join(
                        f"{rows['*']:.1f} rows read and {cpu:.1f} ms CPU a change"
                        for rows, cpu in zip(
                            r["standby_rows_read_per_change"], r.get("standby_cpu_ms_per_change", []), strict=False
                        )
                    )
                    if layout == "standbys"
                    else ""
                ),
                "<= 1 connection a follower, rows a change independent of followers" if layout == "standbys" else "",
                _ok(r["primary_connections_per_follower"] <= 1 and r["primary_rows_read_per_change"]["*"] < 2)
                if layout == "standbys"
                else "",
            )
        )
    return rows


def _rows_h(h: Figures) -> list[Row]:
    rows: list[Row] = []
    for c in (1, 16, 64):
        r = h[f"e164_{c}"]
        rows.append(
            (
                f"h ScreenCall e164 x{c}, 10M + allow-exceptions + 1M list",
                f"{r['ours']['calls_per_s']:.0f}/s p50 {r['ours']['p50_ms']:.2f} p99 {r['ours']['p99_ms']:.2f} ms;"
                f" floor {r['floor']['calls_per_s']:.0f}/s; ratio {r['ratio']:.3f} ±{r['ratio_ci95']:.3f}"
                f" (per CPU-s {r['cpu_ratio']:.3f})",
                ">= 0.95",
                _ok(r["ratio"] >= 0.95, within=r["ratio"] + r["ratio_ci95"] >= 0.95),
            )
        )
    r = h["screen_numbers"]
    rows.append(
        (
            "h ScreenNumbers, same data",
            f"{r['ours']['numbers_per_s']:.0f} numbers/s (floor {r['floor']['numbers_per_s']:.0f})",
            ">= 200000/s",
            _ok(
                r["ours"]["numbers_per_s"] >= 200_000,
                out_of_reach=r["floor"]["numbers_per_s"] < 200_000,
                why="the floor",
            ),
        )
    )
    return rows


def _rows_g(g: Figures) -> list[Row]:
    rows: list[Row] = []
    for mode, r in g.items():
        if isinstance(r, str):
            rows.append((f"g {mode}", r, ">= 1.4x", ""))
            continue
        floor = f"; the no-op floor x{r['floor']['scaling']:.2f}" if "floor" in r else ""
        # What falls short of the target too: the floor run beside ours, else the client-bound estimate.
        short_too = ("the floor", r["floor"]["scaling"] < 1.4) if "floor" in r else ("the ceiling", r["ceiling"] < 1.4)
        rows.append(
            (
                f"g {mode}",
                f"1 worker {r['workers_1']['numbers_per_s']:.0f}/s, 2 workers {r['workers_2']['numbers_per_s']:.0f}/s:"
                f" x{r['scaling']:.2f} (estimated ceiling, load generator on the same 2 cores: x{r['ceiling']:.2f}"
                f"{floor})",
                ">= 1.4x",
                _ok(r["scaling"] >= 1.4, out_of_reach=short_too[1], why=short_too[0]),
            )
        )
    return rows


# Each figure's rows, in the order the table prints them.
_ROWS: dict[str, Callable[[Any], list[Row]]] = {
    "a_screen_call_vs_floor": _rows_a,
    "a2_handler_cpu_cost": _rows_a2,
    "b_in_process_ns": _rows_b,
    "c_footprint": _rows_c,
    "d_import": _rows_d,
    "e_propagation": _rows_e,
    "f_batch": _rows_f,
    "h_rules": _rows_h,
    "g_scaling": _rows_g,
    "i_engine": _rows_i,
    "j_digest": _rows_j,
    "s_scale": _rows_s,
}


def table(results: Figures) -> str:
    """The figures measured (all of them, or those --only chose), one row each."""
    rows = [row for key, rows_of in _ROWS.items() if key in results for row in rows_of(results[key])]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--small", type=int, default=1_000_000, help="entries of the data set most figures use")
    parser.add_argument("--large", type=int, default=10_000_000, help="entries for the footprint figure")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of figure g (figure f runs half as many)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of each measured load run")
    parser.add_argument(
        "--floor-duration",
        type=float,
        default=10.0,
        help="seconds of each load run of figures a and a2, whose ratios need it:"
        " in 3 s runs a round's ratio varied by 3-15%% (sd), in 10 s runs by 2-4%%",
    )
    parser.add_argument(
        "--floor-rounds",
        type=int,
        default=8,
        help="alternations of figures a and a2: on a noisy 2-core VM, 4 rounds left 95%% intervals"
        " of up to ±0.20 on the ratio, 8 rounds up to ±0.13",
    )
    parser.add_argument("--changes", type=int, default=200, help="changes timed for propagation")
    parser.add_argument("--tenants", type=int, default=250_000, help="tenants (of 4 entries) for figure i")
    parser.add_argument(
        "--digest-rounds",
        type=int,
        default=3,
        help="change sets figure j digests, each beside a floor run: an import, then its delete, and so on",
    )
    parser.add_argument("--digest-in-flight", type=int, default=16, help="ScreenCalls in flight in figure j")
    parser.add_argument("--out", default=str(ROOT / "bench-results.json"))
    parser.add_argument(
        "--only",
        help="comma-separated figures to run (a, a2, b, c, d, e, f, g, h, i, j, s); the table shows only those",
    )
    # Figure s: followers on a primary and two standbys (bench/followers.py), in a cluster of its own.
    followers.add_arguments(parser, "scale-")
    args = parser.parse_args()
    started = time.perf_counter()
    results: Figures = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "grpc": grpc.__version__,
            "load_average_at_start": os.getloadavg(),
            "split": "servers pinned to core 0, load generators to core 1 (a, b, f, h, j); nothing pinned in g",
        }
    }
    with tempfile.TemporaryDirectory(prefix="screening-bench-") as tmp:
        workdir = Path(tmp)
        url, stop_database = embedded.start(workdir / "pg")
        try:
            bench = Bench(args, workdir)
            # d, i, j and s fill databases of their own (s: a primary and standbys); alone they need no data sets.
            if args.only is None or set(args.only.split(",")) - {"d", "i", "j", "s"}:
                asyncio.run(bench.setup(url))
            steps: list[tuple[str, Callable[[], Any]]] = [
                ("b_in_process_ns", bench.in_process),
                ("c_footprint", bench.footprint),
                ("a_screen_call_vs_floor", bench.versus_floor),
                ("a2_handler_cpu_cost", bench.handler_cost),
                ("f_batch", bench.batches),
                ("e_propagation", bench.propagation),
                ("g_scaling", bench.scaling),
                ("d_import", lambda: bench.imports(url)),
                ("h_rules", bench.rules),
                ("i_engine", lambda: bench.engine(url)),
                ("j_digest", lambda: bench.digestion(url)),
                ("s_scale", bench.scale),
            ]
            only = None if args.only is None else {f"{name}_" for name in args.only.split(",")}
            for key, step in steps:
                if only is None or any(key.startswith(name) for name in only):
                    results[key] = step()
        finally:
            stop_database()
    results["machine"]["load_average_at_end"] = os.getloadavg()
    results["machine"]["bench_seconds"] = time.perf_counter() - started
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\n(written to {args.out}; {results['machine']['bench_seconds']:.0f} s)")


if __name__ == "__main__":
    main()

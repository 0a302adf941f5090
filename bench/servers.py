"""Processes the bench starts: servers (ours and the no-op floor) and load generators."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from screening.v1 import screening_pb2 as pb
from screening.v1 import screening_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCREENING_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _python(cpus: set[int] | None) -> list[str]:
    """The command that starts Python, on `cpus` when given.

    Pinned by taskset's exec, not by a preexec_fn: Python code run between
    fork and exec in a process with other threads (grpc's, in the test
    process) can deadlock the child before it ever execs; it did once in CI,
    and the bench waited for a load generator that never started.
    """
    if cpus is None:
        return [sys.executable]
    return ["taskset", "--cpu-list", ",".join(map(str, sorted(cpus))), sys.executable]


class Server:
    """A server process on its own port; `started_to_serving` is measured from exec to SERVING."""

    def __init__(self, args: Sequence[str], cpus: set[int] | None = None, log: Path | None = None) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._log = open(log or os.devnull, "ab")  # noqa: SIM115 - closed in stop()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [*_python(cpus), *args, "--listen", self.address],
            env=_env(),
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.started_to_serving = float("nan")
        self.metrics_port: int | None = None

    @staticmethod
    def screening(dsn: str, *extra: str, cpus: set[int] | None = None, log: Path | None = None) -> Server:
        metrics_port = free_port()
        server = Server(
            [
                "-m",
                "screening",
                "serve",
                "--database-url",
                dsn,
                "--log-level",
                "WARNING",
                "--metrics-listen",
                f"127.0.0.1:{metrics_port}",
                *extra,
            ],
            cpus,
            log,
        )
        server.metrics_port = metrics_port
        return server

    def _samples(self, family_name: str, workers: int = 1) -> list[Any]:
        """The samples of one metric family, from each worker's metrics port (worker i: metrics port + i)."""
        assert self.metrics_port is not None
        found = []
        for port in range(self.metrics_port, self.metrics_port + workers):
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            for family in text_string_to_metric_families(text):
                if family.name == family_name:
                    found += family.samples
        return found

    def handler_seconds(self) -> tuple[float, float]:
        """(seconds, calls) the server's own ScreenCall latency histogram holds: time spent inside the handler."""
        if self.metrics_port is None:
            return 0.0, 0.0
        found = {s.name: s.value for s in self._samples("screening_screen_latency_seconds")}
        return found["screening_screen_latency_seconds_sum"], found["screening_screen_latency_seconds_count"]

    def screened_calls(self, workers: int = 1) -> dict[str, float]:
        """ScreenCall and stream messages the server has answered, by verdict ("error", "allow", "block")."""
        calls = dict.fromkeys(("error", "allow", "block"), 0.0)
        for sample in self._samples("screening_screen_calls", workers):
            if sample.name.endswith("_total"):
                calls[sample.labels["verdict"]] += sample.value
        return calls

    @staticmethod
    def noop(cpus: set[int] | None = None, busy_loops: int = 0, processes: int = 0) -> Server:
        """The floor; `processes` N: N of them on one port under a parent, as `--workers N` runs ours."""
        return Server(["-m", "bench.noop", "--busy-loops", str(busy_loops), "--processes", str(processes)], cpus)

    @staticmethod
    def parsing_noop(region: str, cpus: set[int] | None = None) -> Server:
        """The floor that also parses each number as national input of `region` (bench/noop.py)."""
        return Server(["-m", "bench.noop", "--parse-region", region], cpus)

    def wait_serving(self, within: float = 120, health: bool = True) -> Server:
        deadline = time.perf_counter() + within
        with grpc.insecure_channel(self.address) as channel:
            stub: Any = health_pb2_grpc.HealthStub(channel)
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.address} exited with {self.proc.returncode}")
                try:
                    if not health:
                        # A floor that answers a call serves. (grpc.channel_ready_future's polling thread
                        # could still run when the channel closed, and print a ValueError's traceback.)
                        screening: Any = pb_grpc.ScreeningStub(channel)
                        screening.ScreenCall(
                            pb.ScreenCallRequest(tenant_id="t", number="+14155550100", direction=pb.DIRECTION_INBOUND),
                            timeout=1,
                        )
                        break
                    status = stub.Check(health_pb2.HealthCheckRequest(service="screening.v1.Screening"), timeout=1)
                    if status.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"{self.address} not serving within {within}s")
                time.sleep(0.02)
        self.started_to_serving = time.perf_counter() - self.started
        return self

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        """User + system CPU of the process and its children (`--workers` processes), reaped or running."""
        return tree_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children, reaped or running."""
    return _cpu_ticks(pid) / os.sysconf("SC_CLK_TCK")


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:  # exited meanwhile: its time is in its parent's reaped-children fields
        return 0
    ticks = sum(int(f) for f in fields[11:15])
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        ticks += sum(_cpu_ticks(int(child)) for child in children)
    return ticks


def load(target: str, *args: str, cpus: set[int] | None = None) -> dict[str, float]:
    """Run one load generator process to completion; its JSON result."""
    return run_json("bench.load", "--target", target, *args, cpus=cpus)


async def start_load(target: str, *args: str, cpus: set[int] | None = None) -> asyncio.subprocess.Process:
    """A load generator process left running (its stdout and stderr piped): for a caller that acts meanwhile."""
    return await asyncio.create_subprocess_exec(
        *_python(cpus),
        "-m",
        "bench.load",
        "--target",
        target,
        *args,
        env=_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def run_json(module: str, *args: str, cpus: set[int] | None = None) -> dict[str, float]:
    out = subprocess.run(
        [*_python(cpus), "-m", module, *args],
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{module} failed: {out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout)
    return result

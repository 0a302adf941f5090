"""Real processes on loopback for the end-to-end tests and the SIP load run:
the screening service, Kamailio with the example config, SIPp UAS and UAC.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
HOST = "127.0.0.1"
PACKAGES = {"kamailio": "kamailio", "app_python3": "kamailio-python3-modules", "sipp": "sip-tester"}
APP_PYTHON3 = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules/app_python3.so")


def missing_packages() -> list[str]:
    missing = []
    if shutil.which("kamailio") is None:
        missing.append(PACKAGES["kamailio"])
    if not APP_PYTHON3.exists():
        missing.append(PACKAGES["app_python3"])
    if shutil.which("sipp") is None:
        missing.append(PACKAGES["sipp"])
    return missing


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free for both UDP and TCP right now (the OS picks it)."""
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((HOST, 0))
            port: int = s.getsockname()[1]
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, other) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        return port


def wait_for(predicate: object, what: str, within: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + within
    while not predicate():  # type: ignore[operator]
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready within {within}s")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class ClientTls:
    """How a client reaches a service that serves TLS (and requires client certificates)."""

    ca: bytes
    cert: bytes
    key: bytes
    server_name: str

    def channel(self, target: str) -> grpc.Channel:
        credentials = grpc.ssl_channel_credentials(self.ca, self.key, self.cert)
        return grpc.secure_channel(target, credentials, options=[("grpc.ssl_target_name_override", self.server_name)])


class Service:
    """`screening serve` with its embedded PostgreSQL in a fresh data directory."""

    def __init__(
        self, workdir: Path, *, args: Sequence[str] = (), tls: ClientTls | None = None, switch_socket: bool = False
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(socket.SOCK_STREAM)
        self.target = f"{HOST}:{self.port}"
        self.args = list(args)
        # `--switch-listen`: short, a Unix socket's path has at most 107 bytes.
        self.switch_socket = ""
        if switch_socket:
            self.switch_socket = tempfile.mkdtemp(prefix="sw-") + "/switch.sock"
            self.args += ["--switch-listen", f"unix:{self.switch_socket}"]
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "screening.log"

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.target) if self.tls is None else self.tls.channel(self.target)

    def start(self) -> Service:
        serve = Path(sys.executable).parent / "screening"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(serve), "serve", "--listen", self.target, "--data-dir", str(self.workdir / "pg"), *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self.serving, "screening service", 90, self.proc)
        return self

    def serving(self) -> bool:
        with self.channel() as channel:
            # The generated stub's methods are added at run time; its stub types lack them.
            stub: Any = health_pb2_grpc.HealthStub(channel)
            try:
                response = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
            except grpc.RpcError:
                return False
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, timeout=30)


@dataclass(frozen=True)
class SourceSpec:
    name: str
    direction: str
    port: int
    tenant: str
    tenant_header: str = ""
    # More lines of its [[sources]] table, e.g. 'identity = "pai"', 'numbers = "national"'.
    settings: tuple[str, ...] = ()


class Kamailio:
    """Kamailio with the example kamailio.cfg and a generated screening.toml."""

    def __init__(
        self,
        workdir: Path,
        *,
        target: str,
        next_hop_port: int,
        sources: Sequence[SourceSpec],
        on_failure: str = "open",
        enabled: bool = True,
        deadline_ms: int = 200,
        children: int = 4,
        service: Sequence[str] = (),
        tables: Sequence[str] = (),
        shm_mb: int = 64,
        pkg_mb: int = 16,
        log_level: int = 2,
    ) -> None:
        self.workdir = workdir
        self.log_level = log_level
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.settings = workdir / "screening.toml"
        self.ctl = workdir / "kamailio_ctl"
        self.log = workdir / "kamailio.log"
        self.children = children
        self.shm_mb = shm_mb
        self.pkg_mb = pkg_mb
        self.proc: subprocess.Popen[bytes] | None = None
        site_packages = next((ROOT / ".venv" / "lib").glob("python3.*/site-packages"))
        lines = [
            "[service]",
            f'target = "{target}"',
            f"deadline_ms = {deadline_ms}",
            f'on_failure = "{on_failure}"',
            f"enabled = {'true' if enabled else 'false'}",
            # More [service] lines, e.g. 'token_file = "..."'.
            *service,
            "[routing]",
            f'next_hop = "sip:{HOST}:{next_hop_port}"',
            "[python]",
            f'site_packages = ["{site_packages}"]',
        ]
        for source in sources:
            lines += [
                "[[sources]]",
                f'name = "{source.name}"',
                f'direction = "{source.direction}"',
                f'addresses = ["{HOST}:{source.port}"]',
                f'tenant = "{source.tenant}"',
                f'tenant_header = "{source.tenant_header}"',
                *source.settings,
            ]
        # Whole tables after the sources, e.g. "[logging]", "mask_numbers = false".
        lines += tables
        self.settings.write_text("\n".join(lines) + "\n")

    def start(self) -> Kamailio:
        command = [
            "kamailio",
            "-DD",
            "-E",
            "-f",
            str(HERE / "kamailio.cfg"),
            "-m",
            str(self.shm_mb),
            "-M",
            str(self.pkg_mb),
            "-P",
            str(self.workdir / "kamailio.pid"),
            "-Y",
            str(self.workdir),
            "-A",
            f"SIP_LISTEN=udp:{HOST}:{self.port}",
            "-A",
            f'CTL_SOCKET="unix:{self.ctl}"',
            "-A",
            f'KEMI_SCRIPT="{HERE / "kamailio_screening.py"}"',
            "-A",
            f"CHILDREN={self.children}",
            "-A",
            f"LOG_LEVEL={self.log_level}",
        ]
        env = {**os.environ, "SCREENING_KAMAILIO_CONFIG": str(self.settings)}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_for(self.answers_options, f"kamailio (log: {self.log})", 20, self.proc)
        return self

    def answers_options(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((HOST, 0))
            s.settimeout(0.3)
            me = f"{HOST}:{s.getsockname()[1]}"
            tag = time.monotonic_ns()
            request = (
                f"OPTIONS sip:{HOST}:{self.port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {me};branch=z9hG4bK{tag}\r\n"
                f"From: <sip:probe@{me}>;tag={tag}\r\nTo: <sip:{HOST}:{self.port}>\r\n"
                f"Call-ID: probe{tag}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )
            s.sendto(request.encode(), (HOST, self.port))
            try:
                data = s.recv(4096)
            except OSError:
                return False
        return data.startswith(b"SIP/2.0 200")

    def statistics(self) -> dict[str, int]:
        out = subprocess.run(
            ["kamcmd", "-s", f"unix:{self.ctl}", "stats.get_statistics", "script:"],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        stats = {}
        for line in out.splitlines():
            name, _, value = line.strip().strip('"').partition(" = ")
            if name.startswith("script:screening_"):
                stats[name.removeprefix("script:screening_")] = int(value)
        return stats

    def transactions(self) -> int:
        """tm's transactions in progress right now."""
        out = subprocess.run(
            ["kamcmd", "-s", f"unix:{self.ctl}", "tm.stats"], check=True, capture_output=True, text=True, timeout=10
        ).stdout
        for line in out.splitlines():
            name, _, value = line.strip().partition(":")
            if name == "current":
                return int(value)
        raise RuntimeError(f"tm.stats without 'current': {out!r}")

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


class Uas:
    """SIPp answering every call 200: the next hop of allowed calls."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Uas:
        self.proc = subprocess.Popen(
            [*sipp_common(), "-sf", str(HERE / "sipp" / "uas.xml"), "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.workdir,
        )
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


def sipp_common() -> list[str]:
    # Own control and media ports: several SIPp may run at once on this machine.
    return ["sipp", "-i", HOST, "-cp", str(free_port()), "-mp", str(free_port()), "-nostdin"]


@dataclass(frozen=True)
class Call:
    caller: str
    callee: str
    tenant: str = ""


@dataclass(frozen=True)
class Result:
    status: int
    # When the INVITE was sent, seconds since the epoch.
    start: float
    # INVITE sent to final reply received, in seconds.
    setup: float
    reason: str


@dataclass(frozen=True)
class UacRun:
    returncode: int
    results: list[Result]
    log: str


UAC = HERE / "sipp" / "uac.xml"


def uac_scenario(workdir: Path, from_uri: str = "", headers: Sequence[str] = (), base: Path = UAC) -> Path:
    """A copy of a UAC scenario whose From URI is `from_uri` and whose INVITE carries `headers`.

    For what the -inf fields cannot hold (their separator is ';'): user parameters,
    other URI schemes, P-Asserted-Identity.
    """
    text = base.read_text()
    if from_uri:
        text = text.replace("From: <sip:[field0]@[local_ip]:[local_port]>", f"From: <{from_uri}>")
    if headers:
        text = text.replace(
            "Subject: screening\n", "Subject: screening\n" + "".join(f"      {h}\n" for h in headers), 1
        )
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"uac-{time.monotonic_ns()}.xml"
    path.write_text(text)
    return path


def run_uac(
    workdir: Path,
    kamailio_port: int,
    local_port: int,
    calls: Sequence[Call],
    *,
    rate: int = 10,
    timeout: float = 60,
    scenario: Path = UAC,
) -> UacRun:
    """Place the calls through Kamailio from local_port; one Result per call, in call order."""
    workdir.mkdir(parents=True, exist_ok=True)
    run = f"uac-{time.monotonic_ns()}"
    inf = workdir / f"{run}.csv"
    inf.write_text("SEQUENTIAL\n" + "".join(f"{c.caller};{c.callee};{c.tenant};\n" for c in calls))
    log = workdir / f"{run}.log"
    errors = workdir / f"{run}.errors"
    proc = subprocess.run(
        [
            *sipp_common(),
            f"{HOST}:{kamailio_port}",
            *("-sf", str(scenario), "-p", str(local_port), "-inf", str(inf)),
            *("-m", str(len(calls)), "-r", str(rate), "-recv_timeout", "10000"),
            *("-trace_logs", "-log_file", str(log), "-trace_err", "-error_file", str(errors)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=workdir,
        timeout=timeout,
    )
    results: dict[int, Result] = {}
    text = log.read_text() if log.exists() else ""
    for line in text.splitlines():
        _, _, rest = line.partition("RESULT ")
        if not rest:
            continue
        try:
            number, status, t0s, t0us, t1s, t1us, *reason = rest.split(" ")
            start = float(t0s) + float(t0us) / 1e6
            setup = float(t1s) + float(t1us) / 1e6 - start
            results[int(number)] = Result(int(status), start, setup, " ".join(reason).strip())
        except ValueError:
            # A line with a field SIPp left empty (seen at rates past what a stack holds): the call counts as missing.
            continue
    detail = proc.stderr.decode(errors="replace")
    if errors.exists():
        detail += errors.read_text(errors="replace")[-4000:]
    return UacRun(proc.returncode, [results[n] for n in sorted(results)], detail)

"""Helpers shared by the tests, in one place: no test module imports another."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from typer.testing import CliRunner, Result

from screening.app.service import App
from screening.cli.main import app as screenctl
from screening.v1 import screening_pb2 as pb
from screening.v1 import screening_pb2_grpc as pb_grpc


class Clients:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.screening = pb_grpc.ScreeningStub(channel)
        self.admin = pb_grpc.ForbiddenNumberAdminStub(channel)


async def wait_until(predicate: Callable[[], Any], within: float = 5.0, interval: float = 0.01) -> None:
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)


async def create(
    clients: Clients,
    number: str,
    *,
    tenant: str = "acme",
    call_type: int = pb.CALL_TYPE_BOTH,
    match_kind: int = pb.MATCH_KIND_EXACT,
    deadline: float | None = None,
    **fields: Any,
) -> pb.ForbiddenNumber:
    return await clients.admin.CreateForbiddenNumber(
        pb.CreateForbiddenNumberRequest(
            forbidden_number=pb.ForbiddenNumber(
                tenant_id=tenant, number=number, call_type=call_type, match_kind=match_kind, **fields
            )
        ),
        timeout=deadline,
    )


async def screen(
    clients: Clients, number: str, direction: int = pb.DIRECTION_INBOUND, tenant: str = "acme", call_id: str = ""
) -> pb.ScreenCallResponse:
    return await clients.screening.ScreenCall(
        pb.ScreenCallRequest(tenant_id=tenant, number=number, direction=direction, call_id=call_id)
    )


async def until_verdict(
    clients: Clients,
    number: str,
    verdict: int,
    direction: int = pb.DIRECTION_INBOUND,
    tenant: str = "acme",
    within: float = 1.0,
    matched_id: str | None = None,
) -> pb.ScreenCallResponse:
    """Screen until the answer is `verdict` (changes reach the index asynchronously)."""
    last: list[pb.ScreenCallResponse] = []

    async def reached() -> bool:
        last[:] = [await screen(clients, number, direction, tenant)]
        return last[0].verdict == verdict and matched_id in (None, last[0].matched_id)

    await wait_until(reached, within=within)
    return last[0]


def code_of(error: BaseException) -> grpc.StatusCode:
    assert isinstance(error, grpc.aio.AioRpcError), error
    return error.code()


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def write_auth_file(path: Path, tokens: dict[str, tuple[str, list[str], list[str]]]) -> Path:
    """tokens: name -> (secret, roles, tenants); the file holds only the digests."""
    lines = []
    for name, (secret, roles, tenants) in tokens.items():
        lines += [
            "[[tokens]]",
            f"name = {json.dumps(name)}",
            f"token_sha256 = {json.dumps(hashlib.sha256(secret.encode()).hexdigest())}",
            f"roles = {json.dumps(roles)}",
            f"tenants = {json.dumps(tenants)}",
            "",
        ]
    path.write_text("\n".join(lines))
    return path


class ServeProcess:
    """`python -m screening serve --listen=127.0.0.1:0 ARGS` as a user runs it; `log` collects its stderr."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.log: list[str] = []
        self.port = 0

    @property
    def text(self) -> str:
        return "".join(self.log)


@contextlib.asynccontextmanager
async def serve_process(*args: str) -> AsyncIterator[ServeProcess]:
    """Started and listening (its port read from its log); on leaving, stopped with SIGTERM and checked to exit 0."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "screening",
        "serve",
        "--listen=127.0.0.1:0",
        *args,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    served = ServeProcess(process)
    try:
        while not served.port:
            line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
            assert line, "server exited: " + served.text
            served.log.append(line)
            match = re.search(r"listening on \S+ \(port (\d+)\)", line)
            served.port = int(match.group(1)) if match else 0
        yield served
        process.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(process.communicate(), 30)
        served.log.append(rest.decode())
        assert process.returncode == 0, served.text
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


# ---------------------------------------------------------------- databases


def with_database(url: str, name: str) -> str:
    """The same cluster's URL, naming another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


# Starts a server (a replica) on port 0: the `start_server` fixture of conftest.py.
StartServer = Callable[..., Awaitable[App]]


# ------------------------------------------------------- `screening serve`


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.port = free_port()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SCREENING_")}
        full_env |= {"SCREENING_LISTEN": f"127.0.0.1:{self.port}"} | env
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "screening", "serve", *args],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.address = f"127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.proc.stdout.read() if self.proc.stdout else ""


async def serving(address: str, within: float = 30) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)

        async def up() -> bool:
            try:
                r = await health.Check(health_pb2.HealthCheckRequest(service="screening.v1.Screening"), timeout=1)
            except grpc.aio.AioRpcError:
                return False
            return r.status == health_pb2.HealthCheckResponse.SERVING

        await wait_until(up, within=within, interval=0.1)


# --------------------------------------------------------------- screenctl


Run = Callable[..., Awaitable[Result]]


def runner_for(address: str) -> Run:
    async def run(*args: str, env: dict[str, str] | None = None) -> Result:
        full_env = {"SCREENCTL_SERVER": address, "SCREENCTL_TENANT": None, "SCREENCTL_TOKEN": None} | (env or {})
        return await asyncio.to_thread(CliRunner().invoke, screenctl, list(args), env=full_env)

    return run


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr, result.exception)
    return result.stdout


def failed(result: Result, exit_code: int = 1) -> str:
    """The error line; a failure is one line on stderr and never a traceback."""
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    if exit_code == 1:
        assert len(lines) == 1, lines
        assert lines[0].startswith("error: ")
    return result.stderr.strip()


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))

"""`serve --workers N` as an operator runs it: real processes sharing one port."""

import asyncio
import os
import signal
import threading
from pathlib import Path

import grpc

from screening.v1 import screening_pb2 as pb
from tests.support import Clients, Process, create, serving, wait_until


def children(pid: int) -> set[int]:
    """Live child processes of pid, found by their parent pid.

    Reading /proc/PID/task/TID/children instead races with the parent's
    threads coming and going (a thread that exits takes its file with it).
    """
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited while we looked
        # The command name may hold spaces or parentheses; the fields after
        # the last ")" are "state ppid ...".
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:  # zombies count: the parent must reap them
            found.add(int(entry.name))
    return found


def listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on the port (state 0A in /proc/net/tcp and tcp6)."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def listens(pid: int, port: int) -> bool:
    wanted = {f"socket:[{inode}]" for inode in listening_inodes(port)}
    try:
        return any(os.readlink(fd) in wanted for fd in Path(f"/proc/{pid}/fd").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return False


async def answers_block(address: str, number: str) -> None:
    """BLOCK from a fresh connection; a worker still loading answers UNAVAILABLE meanwhile."""

    async def block() -> bool:
        async with grpc.aio.insecure_channel(address) as channel:
            try:
                r = await Clients(channel).screening.ScreenCall(
                    pb.ScreenCallRequest(tenant_id="acme", number=number, direction=pb.DIRECTION_INBOUND), timeout=2
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                return False
            return r.verdict == pb.VERDICT_BLOCK

    await wait_until(block, within=30, interval=0.1)


def environ(pid: int) -> bytes:
    """The environment the process started with."""
    return Path(f"/proc/{pid}/environ").read_bytes()


def running(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def drain_output(server: Process) -> list[str]:
    """Collect the server's output in the background (a full pipe would block it)."""
    lines: list[str] = []

    def read() -> None:
        assert server.proc.stdout is not None
        lines.extend(server.proc.stdout)

    threading.Thread(target=read, daemon=True).start()
    return lines


async def test_two_workers_share_the_port_a_dead_one_is_restarted_and_sigterm_drains(run_server, dsn: str) -> None:
    server = run_server("--database-url", dsn, "--workers", "2", "--shutdown-grace", "2")
    output = drain_output(server)
    await serving(server.address)
    await wait_until(lambda: len(children(server.proc.pid)) == 2, within=10)
    workers = children(server.proc.pid)
    # Both workers accept on the one port, each with its own index kept live.
    await wait_until(lambda: all(listens(pid, server.port) for pid in workers), within=30)
    async with grpc.aio.insecure_channel(server.address) as channel:
        await create(Clients(channel), "+15550100")
    for _ in range(4):  # new connections land on either worker; every one answers BLOCK
        await answers_block(server.address, "+15550100")

    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    await wait_until(lambda: victim not in children(server.proc.pid) and len(children(server.proc.pid)) == 2, within=15)
    replacement = (children(server.proc.pid) - workers).pop()
    await wait_until(lambda: listens(replacement, server.port), within=30)
    # Only the restarted worker waits for its data before it binds the port.
    assert b"SCREENING_WORKER_RESTARTED=1" in environ(replacement)
    assert not any(b"SCREENING_WORKER_RESTARTED" in environ(pid) for pid in workers - {victim})
    for _ in range(4):
        await answers_block(server.address, "+15550100")

    current = children(server.proc.pid)
    server.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(server.proc.wait, 30) == 0
    assert not any(map(running, current))
    text = "".join(output)
    assert f"(pid {victim}) exited with -9; restarting" in text


def test_workers_need_a_fixed_port(run_server) -> None:
    server = run_server("--workers", "2", "--listen", "127.0.0.1:0")
    assert server.proc.wait(10) == 2
    assert "must be a port (not 0)" in server.output()


async def test_workers_stop_when_the_supervisor_is_killed_outright(run_server, dsn: str) -> None:
    server = run_server("--database-url", dsn, "--workers", "2")
    drain_output(server)
    await serving(server.address)
    await wait_until(lambda: len(children(server.proc.pid)) == 2, within=10)
    workers = children(server.proc.pid)
    server.proc.kill()
    await asyncio.to_thread(server.proc.wait, 10)
    # Orphans are reaped by init; none is left serving the port.
    await wait_until(lambda: not any(map(running, workers)), within=15)

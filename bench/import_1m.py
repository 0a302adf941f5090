"""Measure a bulk import end to end: a file (or rows) streamed, committed, answered by a second replica.

    .venv/bin/python bench/import_1m.py [--rows 1000000] [--format csv|xlsx|rows] [--database-url URL]

Three processes, as in production: this one runs the importing replica (A)
with an event-loop stall monitor; a second replica (B) runs as
`python -m screening serve`; a client process prepares the file (CSV, or an
xlsx workbook, as an admin's spreadsheet would be) or the row messages (not
timed), streams it to A in 1 MiB chunks (rows: 10,000 a message), and polls B
until it answers BLOCK for the first, middle and last imported numbers.
While the import runs the client also screens a number on A and on B every
10 ms and records the slowest answer. Every third row has a note, so that
the per-entry history carries some text. The importing replica's peak
resident memory is read from the kernel (ru_maxrss) before and after. Without
--database-url an embedded PostgreSQL is started in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import resource
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from screening.app import embedded  # noqa: E402
from screening.app.config import Config  # noqa: E402
from screening.app.service import App  # noqa: E402
from screening.v1 import screening_pb2 as pb  # noqa: E402
from screening.v1 import screening_pb2_grpc as pb_grpc  # noqa: E402

TENANT = "bench"
PER_MESSAGE = 10_000
CHUNK = 1024 * 1024
IMPORT_METHOD = "/screening.v1.ForbiddenNumberAdmin/ImportForbiddenNumbers"


def number(i: int) -> str:
    return f"+1{2_000_000_000 + i}"


# ------------------------------------------------------------------ client


async def probe(stub: pb_grpc.ScreeningStub, stop: asyncio.Event, worst: list[float]) -> None:
    request = pb.ScreenCallRequest(tenant_id=TENANT, number="+15550000000", direction=pb.DIRECTION_INBOUND)
    while not stop.is_set():
        started = time.perf_counter()
        await stub.ScreenCall(request, timeout=10)  # type: ignore[misc]  # an aio channel's stub
        worst[0] = max(worst[0], time.perf_counter() - started)
        await asyncio.sleep(0.01)


def _cells(i: int) -> list[str]:
    return [number(i), "both", "", "", f"bench row {i}" if i % 3 == 0 else "", ""]


def file_bytes(rows: int, file_format: str) -> bytes:
    if file_format == "csv":
        lines = ["number,call_type,match_kind,enabled,note,expire_time"]
        lines += [",".join(_cells(i)) for i in range(rows)]
        return ("\n".join(lines) + "\n").encode()
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("numbers")
    sheet.append(["number", "call_type", "match_kind", "enabled", "note", "expire_time"])
    for i in range(rows):
        sheet.append(_cells(i))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def prepared(rows: int, file_format: str) -> tuple[list[bytes], int]:
    """The serialized messages of the import, and the file's size (0 for rows)."""
    if file_format == "rows":
        messages = [
            pb.ImportForbiddenNumbersRequest(
                header=pb.ImportHeader(tenant_id=TENANT, mode=pb.IMPORT_MODE_UPSERT, source_name="bench")
            ).SerializeToString()
        ]
        for start in range(0, rows, PER_MESSAGE):
            batch = pb.ImportRowBatch(
                rows=[
                    pb.ImportRow(line=i + 2, number=number(i), call_type=pb.CALL_TYPE_BOTH)
                    for i in range(start, min(rows, start + PER_MESSAGE))
                ]
            )
            messages.append(pb.ImportForbiddenNumbersRequest(rows=batch).SerializeToString())
        return messages, 0
    data = file_bytes(rows, file_format)
    kind = pb.FILE_FORMAT_XLSX if file_format == "xlsx" else pb.FILE_FORMAT_CSV
    header = pb.ImportHeader(
        tenant_id=TENANT, source_name=f"bench.{file_format}", file_format=kind, file_size=len(data)
    )
    messages = [pb.ImportForbiddenNumbersRequest(header=header).SerializeToString()]
    for start in range(0, len(data), CHUNK):
        messages.append(pb.ImportForbiddenNumbersRequest(file_chunk=data[start : start + CHUNK]).SerializeToString())
    return messages, len(data)


async def client(target: str, replica: str, rows: int, file_format: str) -> dict[str, float | int]:
    messages, size = prepared(rows, file_format)

    options = [("grpc.max_send_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(target, options=options) as a, grpc.aio.insecure_channel(replica) as b:
        importing: Any = a.stream_unary(
            IMPORT_METHOD, request_serializer=None, response_deserializer=pb.ImportJob.FromString
        )
        screen_b = pb_grpc.ScreeningStub(b)
        stop = asyncio.Event()
        worst_a, worst_b = [0.0], [0.0]
        probes = [
            asyncio.create_task(probe(pb_grpc.ScreeningStub(a), stop, worst_a)),
            asyncio.create_task(probe(screen_b, stop, worst_b)),
        ]
        await asyncio.sleep(0.5)

        async def send() -> AsyncIterator[bytes]:
            for m in messages:
                yield m

        started = time.perf_counter()
        job = await importing(send(), timeout=600)
        committed = time.perf_counter() - started
        assert job.state == pb.IMPORT_JOB_STATE_SUCCEEDED, job
        assert job.created_count + job.updated_count + job.unchanged_count == rows, job
        wanted = [number(0), number(rows // 2), number(rows - 1)]
        while True:
            answers = await asyncio.gather(
                *(
                    screen_b.ScreenCall(
                        pb.ScreenCallRequest(tenant_id=TENANT, number=n, direction=pb.DIRECTION_INBOUND)
                    )
                    for n in wanted
                )
            )
            if all(r.verdict == pb.VERDICT_BLOCK for r in answers):
                break
            await asyncio.sleep(0.01)
        answered = time.perf_counter() - started
        await asyncio.sleep(0.5)  # B's catch-up is over; probes see its tail
        stop.set()
        await asyncio.gather(*probes)
    return {
        "rows": rows,
        "format": file_format,
        "file_bytes": size,
        "committed_s": round(committed, 2),
        "answered_by_second_replica_s": round(answered, 2),
        "answered_after_commit_s": round(answered - committed, 2),
        "worst_screencall_on_importing_replica_ms": round(worst_a[0] * 1000, 1),
        "worst_screencall_on_second_replica_ms": round(worst_b[0] * 1000, 1),
        "created": job.created_count,
    }


# -------------------------------------------------------------- orchestrator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def serving(address: str, within: float) -> None:
    deadline = time.monotonic() + within
    async with grpc.aio.insecure_channel(address) as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)
        while True:
            with contextlib.suppress(grpc.aio.AioRpcError):
                r = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{address} is not serving after {within}s")
            await asyncio.sleep(0.1)


async def monitor(stop: asyncio.Event, worst: list[float], tick: float = 0.005) -> None:
    """Longest time the loop took to come back from a 5 ms sleep, and the loop thread's CPU time in it.

    A stall with little CPU time is the machine's doing (other processes on
    the 2 shared cores), not the loop's; worst[2] is the most CPU time the
    loop thread spent in one such sample, an upper bound of its longest step.
    """
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before, cpu = loop.time(), time.thread_time()
        await asyncio.sleep(tick)
        lag, used = loop.time() - before - tick, time.thread_time() - cpu
        if lag > worst[0]:
            worst[0], worst[1] = lag, used
        worst[2] = max(worst[2], used)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def orchestrate(cluster_url: str, rows: int, file_format: str) -> dict[str, float | int]:
    name = "bench_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(cluster_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = urlunsplit(urlsplit(cluster_url)._replace(path="/" + name))
    replica_b = None
    app = None
    try:
        app = await App(Config(listen="127.0.0.1:0", database_url=dsn), dsn).start()
        port_b = free_port()
        replica_b = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "screening", "serve", "--database-url", dsn, "--listen", f"127.0.0.1:{port_b}"),
            cwd=ROOT,
            env={**os.environ, "SCREENING_LOG_LEVEL": "WARNING"},
        )
        await serving(f"127.0.0.1:{app.port}", 30)
        await serving(f"127.0.0.1:{port_b}", 30)
        stop = asyncio.Event()
        worst = [0.0, 0.0, 0.0]
        client_proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--client",
            f"127.0.0.1:{app.port}",
            f"127.0.0.1:{port_b}",
            "--rows",
            str(rows),
            "--format",
            file_format,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        rss_before = _peak_rss_mb()
        watcher = asyncio.create_task(monitor(stop, worst))
        out, _ = await client_proc.communicate()
        stop.set()
        await watcher
        if client_proc.returncode != 0:
            raise RuntimeError(f"client failed ({client_proc.returncode})")
        result: dict[str, float | int] = json.loads(out.decode().strip().splitlines()[-1])
        result["worst_loop_stall_on_importing_replica_ms"] = round(worst[0] * 1000, 1)
        result["loop_thread_cpu_during_that_stall_ms"] = round(worst[1] * 1000, 1)
        result["longest_loop_step_cpu_ms"] = round(worst[2] * 1000, 1)
        # The importing replica runs in this process: its peak resident memory before the import, and during it.
        result["importing_replica_peak_rss_before_mb"] = round(rss_before, 1)
        result["importing_replica_peak_rss_mb"] = round(_peak_rss_mb(), 1)
        return result
    finally:
        if replica_b is not None:
            replica_b.terminate()
            await asyncio.wait_for(replica_b.wait(), 15)
        if app is not None:
            await app.stop(grace=0)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("screening.app.service", "storage.migrate"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("csv", "xlsx", "rows"), default="csv")
    parser.add_argument("--database-url", default=os.environ.get("SCREENING_BENCH_DATABASE_URL"))
    parser.add_argument("--client", nargs=2, metavar=("IMPORTING", "SECOND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(asyncio.run(client(args.client[0], args.client[1], args.rows, args.format))))
        return
    if args.database_url:
        result = asyncio.run(orchestrate(args.database_url, args.rows, args.format))
    else:
        with tempfile.TemporaryDirectory(prefix="screening-bench-pg-") as tmp:
            url, stop = embedded.start(Path(tmp))
            try:
                result = asyncio.run(orchestrate(url, args.rows, args.format))
            finally:
                stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Unary ScreenCall load from h2load (nghttp2's HTTP/2 load generator, in C).

The Python load generator (bench/load.py) spends about as much CPU on a
unary call as the server does, so on two cores it cannot show what a second
worker adds: the client takes the core the second worker needs. h2load
sends gRPC over cleartext HTTP/2 (the request framed by hand: a zero byte,
the length, the serialized ScreenCallRequest) for a fraction of that CPU.
It repeats one request, and it cannot read gRPC status trailers, so callers
check the servers' own count of screened calls (Server.screened_calls).
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

from screening.v1 import screening_pb2 as pb

PATH = "/screening.v1.Screening/ScreenCall"
_DONE = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored")
_FINISHED = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s")


def available() -> bool:
    return shutil.which("h2load") is not None


def framed(request: pb.ScreenCallRequest) -> bytes:
    """One gRPC message on the wire: uncompressed flag, big-endian length, payload."""
    payload = request.SerializeToString()
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


def run(
    address: str,
    request: pb.ScreenCallRequest,
    *,
    connections: int,
    streams: int,
    duration: float,
    warmup: float,
) -> dict[str, float]:
    """calls_per_s, calls (in the measured window), failed, client_cpu_s (warm-up included)."""
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "request.bin"
        body.write_bytes(framed(request))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(
            [
                "h2load",
                "--duration",  # h2load takes whole units: milliseconds
                f"{round(duration * 1000)}ms",
                "--warm-up-time",
                f"{round(warmup * 1000)}ms",
                "--clients",
                str(connections),
                "--max-concurrent-streams",
                str(streams),
                "--threads",
                "1",
                "--data",
                str(body),
                "--header",
                "content-type: application/grpc",
                "--header",
                "te: trailers",
                f"http://{address}{PATH}",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=duration + warmup + 60,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = _DONE.search(out.stdout)
    finished = _FINISHED.search(out.stdout)
    if out.returncode != 0 or done is None or finished is None:
        raise RuntimeError(f"h2load printed no result: {out.stdout[-800:]} {out.stderr[-800:]}")
    total, _, _, succeeded, _, _ = map(int, done.groups())
    return {
        "calls_per_s": float(finished.group(3)),
        "calls": float(succeeded),
        "failed": float(total - succeeded),
        "client_cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    }

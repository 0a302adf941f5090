"""How long the console's Forbidden numbers page takes over a tenant of 1M entries (target: 200 ms).

    .venv/bin/python bench/console_list.py [--entries 1000000] [--database-url URL] [--rounds 30]

Not part of `make test`. The rows are written straight into PostgreSQL
(bench/data.py); the server (`screening serve`) and the console
(`screening console`) then run as two processes, as `make run` starts them,
and this process asks the console for whole pages over HTTP, one at a time,
as a browser would: the first page, the next page (a keyset page token),
each status filter, a search by digits and one by note text. Each figure is
the time to the last byte of the HTML, median and 95th percentile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import http.cookiejar
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from bench.data import TENANT, create_database, fill  # noqa: E402
from screening.app import embedded  # noqa: E402
from screening.v1 import screening_pb2 as pb  # noqa: E402
from screening.v1 import screening_pb2_grpc as pb_grpc  # noqa: E402

TARGET_MS = 200.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# One session, as a browser keeps its cookie: a new visitor would also pay for GetCallerIdentity.
_browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def get(url: str) -> tuple[float, str]:
    started = time.perf_counter()
    with _browser.open(url, timeout=30) as response:
        body = response.read().decode()
    return (time.perf_counter() - started) * 1000, body


def grpc_times(target: str, rounds: int) -> dict[str, list[float]]:
    """The same pages asked of the server directly: what the console adds is the difference."""
    asks = {
        "first page (50)": (50, pb.ForbiddenNumberFilters()),
        "first page (200)": (200, pb.ForbiddenNumberFilters()),
        "status active": (50, pb.ForbiddenNumberFilters(status=pb.ENTRY_STATUS_ACTIVE)),
        "status disabled": (50, pb.ForbiddenNumberFilters(status=pb.ENTRY_STATUS_DISABLED)),
        "search digits 5551": (50, pb.ForbiddenNumberFilters(query="5551")),
        "search note text": (50, pb.ForbiddenNumberFilters(query="robocall")),
    }
    times: dict[str, list[float]] = {name: [] for name in asks}
    with grpc.insecure_channel(target) as channel:
        admin = pb_grpc.ForbiddenNumberAdminStub(channel)
        for _ in range(rounds):
            for name, (size, filters) in asks.items():
                request = pb.ListForbiddenNumbersRequest(tenant_id=TENANT, page_size=size, filters=filters)
                started = time.perf_counter()
                admin.ListForbiddenNumbers(request, timeout=30)
                times[name].append((time.perf_counter() - started) * 1000)
    return times


def wait_for(url: str, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            get(url)
            return
        time.sleep(0.5)
    raise SystemExit(f"{url} did not answer within {within}s")


@contextlib.contextmanager
def process(*args: str) -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen([sys.executable, "-m", "screening", *args], stderr=subprocess.DEVNULL)
    try:
        yield child
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()


def measure(base: str, rounds: int) -> dict[str, list[float]]:
    _, first = get(f"{base}/t/{TENANT}/numbers")
    found = re.search(r'href="([^"]*page=[^"]*)" rel="next"', first)
    assert found, "the first page has no next page link"
    next_page = html.unescape(found.group(1))
    pages = {
        "first page (50)": f"/t/{TENANT}/numbers",
        "first page (200)": f"/t/{TENANT}/numbers?size=200",
        "next page (page token)": next_page,
        "status active": f"/t/{TENANT}/numbers?status=active",
        "status disabled": f"/t/{TENANT}/numbers?status=disabled",
        "search digits 5551": f"/t/{TENANT}/numbers?q=5551",
        "search note text": f"/t/{TENANT}/numbers?q=robocall",
    }
    times: dict[str, list[float]] = {name: [] for name in pages}
    for _ in range(rounds):
        for name, path in pages.items():
            elapsed, _ = get(base + path)
            times[name].append(elapsed)
    return times


async def prepare(database_url: str | None, entries: int, home: Path) -> tuple[str, object]:
    stop = None
    if database_url is None:
        database_url, stop = await asyncio.to_thread(embedded.start, home)
    assert database_url is not None
    dsn = await create_database(database_url, "console_list_bench")
    started = time.perf_counter()
    await fill(dsn, entries)
    print(f"filled {entries:,} entries in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return dsn, stop


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=os.environ.get("SCREENING_BENCH_DATABASE_URL"))
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="console-bench-") as home:
        dsn, stop = asyncio.run(prepare(args.database_url, args.entries, Path(home)))
        try:
            grpc_port, http_port = free_port(), free_port()
            base = f"http://127.0.0.1:{http_port}"
            with (
                process("serve", "--listen", f"127.0.0.1:{grpc_port}", "--database-url", dsn),
                process("console", "--listen", f"127.0.0.1:{http_port}", "--server", f"127.0.0.1:{grpc_port}"),
            ):
                wait_for(f"{base}/t/{TENANT}/numbers", 600)
                times = measure(base, args.rounds)
                direct = grpc_times(f"127.0.0.1:{grpc_port}", args.rounds)
        finally:
            if callable(stop):
                stop()
    print(f"console list page over {args.entries:,} entries, {args.rounds} rounds (ms); [ListForbiddenNumbers alone]:")
    for name, values in times.items():
        p95 = percentile(values, 0.95)
        verdict = "meets" if p95 <= TARGET_MS else "MISSES"
        alone = direct.get(name)
        server = f"[median {statistics.median(alone):6.1f} p95 {percentile(alone, 0.95):6.1f}]" if alone else ""
        print(
            f"  {name:24} median {statistics.median(values):7.1f}  p95 {p95:7.1f}  "
            f"{verdict} {TARGET_MS:.0f} ms  {server}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

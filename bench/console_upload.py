"""How long an import of 100k rows takes through the console's dialog, as xlsx and as csv, and what it shows meanwhile.

    .venv/bin/python bench/console_upload.py [--rows 100000] [--formats xlsx,csv] [--database-url URL]
                                             [--bad-every 1000] [--screenshots DIR]

Not part of `make test`. The server (`screening serve`) and the console
(`screening console`) run as two processes, as `make run` starts them, over
an embedded PostgreSQL (or --database-url); Debian's Chromium (`make
console-packages`) drives the import dialog as a person would: open it,
choose the file, Upload and import, wait for the summary, then open the Task
Center. Each format imports into a tenant of its own, so both create every
row. One line in --bad-every is bad (a letter in the number), so the job has
bad lines to list.

While the import runs the page is sampled every 100 ms for what it shows:
the browser's upload (#upload-progress), the console's sending on to the
server (#server-progress), the rows the server has read. The figures: the
file's size; from the click to the console holding the file (the dialog's
request answered), to the first rows read, to the summary; the server's own
job time (create_time to finish_time); the Task Center's row for the job.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from playwright.async_api import Page, async_playwright, expect  # noqa: E402

from bench.data import create_database, fill, number_of  # noqa: E402
from screening.app import embedded  # noqa: E402
from screening.domain.fields import COLUMNS  # noqa: E402
from screening.files.writing import csv_chunks, xlsx_bytes  # noqa: E402
from screening.v1 import screening_pb2 as pb  # noqa: E402
from screening.v1 import screening_pb2_grpc as pb_grpc  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CALL_TYPES = ("inbound", "outbound", "both")
# An import of 100k rows on a busy 2-core machine: minutes at most.
WITHIN_MS = 600_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rows(count: int, bad_every: int) -> Iterator[list[str]]:
    for i in range(count):
        number = number_of(i)
        if bad_every and i % bad_every == bad_every - 1:
            number = number[:-3] + "CAL"
        expire = "2030-01-01 08:00" if i % 10 == 0 else ""
        yield [number, CALL_TYPES[i % 3], "exact", "true" if i % 7 else "false", f"bench row {i}", expire]


def write_file(path: Path, file_format: str, count: int, bad_every: int) -> None:
    if file_format == "xlsx":
        path.write_bytes(xlsx_bytes(COLUMNS, rows(count, bad_every), "numbers"))
    else:
        with path.open("wb") as out:
            for chunk in csv_chunks(COLUMNS, rows(count, bad_every)):
                out.write(chunk)


@dataclass
class Run:
    file_format: str
    size: int
    seen: list[tuple[float, str, str]] = field(default_factory=list)
    answered_ms: float = 0.0
    first_rows_ms: float | None = None
    summary_ms: float = 0.0
    summary: dict[str, str] = field(default_factory=dict)
    server_ms: float = 0.0
    task_center_row: str = ""
    button_while_reading: set[str] = field(default_factory=set)

    def phase(self, name: str) -> list[str]:
        return [value for _, seen_name, value in self.seen if seen_name == name]


# What the dialog shows, read in one step: the browser's upload, the console's sending, the rows read.
SAMPLE = """() => {
  const upload = document.getElementById("upload-progress");
  const sent = document.getElementById("server-progress");
  const rows = document.querySelector("[data-testid=rows-read]");
  const summary = document.querySelector("[data-testid=import-summary], [data-testid=upload-error]");
  return {
    upload: upload ? String(upload.value) : "",
    sent: sent ? String(sent.value) : "",
    rows: rows ? rows.textContent.trim() : "",
    done: summary !== null,
    answered: document.querySelector("[data-testid=upload]") !== null,
    busy: document.querySelector("#import-form button[type=submit]").disabled,
  };
}"""


async def import_through_dialog(page: Page, base: str, tenant: str, path: Path, run: Run, shots: Path | None) -> None:
    await page.goto(f"{base}/t/{tenant}/numbers")
    await page.get_by_role("button", name="Import").click()
    dialog = page.get_by_role("dialog", name="Import forbidden numbers")
    await dialog.get_by_label("File (.xlsx or .csv)").set_input_files(path)
    started = time.perf_counter()
    await dialog.get_by_role("button", name="Upload and import").click()
    shot_taken = False
    last: dict[str, str] = {}
    while True:
        state = await page.evaluate(SAMPLE)
        now = (time.perf_counter() - started) * 1000
        if state["rows"]:
            run.button_while_reading.add("disabled" if state["busy"] else "ENABLED")
        for name in ("upload", "sent", "rows"):
            if state[name] and state[name] != last.get(name):
                run.seen.append((now, name, state[name]))
                last[name] = state[name]
        if state["answered"] and not run.answered_ms:
            run.answered_ms = now
        if state["rows"] and run.first_rows_ms is None:
            run.first_rows_ms = now
            if shots and not shot_taken:
                await page.screenshot(path=str(shots / f"bench-upload-rows-{run.file_format}.png"))
                shot_taken = True
        if state["done"]:
            run.summary_ms = now
            break
        if now > WITHIN_MS:
            raise SystemExit(f"{run.file_format}: no summary within {WITHIN_MS / 1000:.0f}s")
        await asyncio.sleep(0.1)
    summary = page.get_by_test_id("import-summary")
    await expect(summary).to_be_visible()
    for name in ("total", "created", "failed"):
        run.summary[name] = await summary.get_by_test_id(f"sum-{name}").inner_text()
    if shots:
        await page.screenshot(path=str(shots / f"bench-upload-summary-{run.file_format}.png"))
    await page.goto(f"{base}/t/{tenant}/jobs")
    first = page.locator("table.jobs tbody tr").first
    await expect(first.get_by_test_id("state")).to_have_text("Succeeded")
    run.task_center_row = " | ".join(" ".join(cell.split()) for cell in (await first.inner_text()).split("\t"))
    if shots:
        await page.screenshot(path=str(shots / f"bench-task-center-{run.file_format}.png"), full_page=True)


def server_time_ms(target: str, tenant: str) -> float:
    with grpc.insecure_channel(target) as channel:
        admin = pb_grpc.ForbiddenNumberAdminStub(channel)
        job = admin.ListImportJobs(pb.ListImportJobsRequest(tenant_id=tenant, page_size=1), timeout=30).import_jobs[0]
    started = job.create_time.ToDatetime()
    finished = job.finish_time.ToDatetime()
    return (finished - started).total_seconds() * 1000


def wait_for(url: str, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5):
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


async def drive(base: str, grpc_target: str, files: dict[str, Path], shots: Path | None) -> list[Run]:
    runs = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            for file_format, path in files.items():
                context = await browser.new_context(locale="en-US", timezone_id="Asia/Shanghai")
                context.set_default_timeout(WITHIN_MS)
                page = await context.new_page()
                run = Run(file_format, path.stat().st_size)
                tenant = f"upload-{file_format}"
                await import_through_dialog(page, base, tenant, path, run, shots)
                run.server_ms = await asyncio.to_thread(server_time_ms, grpc_target, tenant)
                runs.append(run)
                await context.close()
        finally:
            await browser.close()
    return runs


def report(runs: list[Run], count: int) -> None:
    print(f"import of {count:,} rows through the console's dialog (Chromium), times from the click (s):")
    for run in runs:
        first_rows = f"{run.first_rows_ms / 1000:6.1f}" if run.first_rows_ms is not None else "  none"
        print(
            f"  {run.file_format:5} {run.size / 1e6:5.1f} MB  console holds the file {run.answered_ms / 1000:5.1f}"
            f"  first rows read {first_rows}  summary {run.summary_ms / 1000:6.1f}"
            f"  (server's job {run.server_ms / 1000:5.1f})"
        )
        print(f"        summary: {run.summary}")
        uploads, sent, read = run.phase("upload"), run.phase("sent"), run.phase("rows")
        print(f"        browser upload bar: {' '.join(uploads)}")
        print(f"        sent to the server: {' '.join(sent) or '-'}")
        shown = read if len(read) <= 8 else [*read[:4], "...", *read[-3:]]
        print(f"        rows read ({len(read)} updates): {' / '.join(shown) or '-'}")
        print(f"        Upload and import button meanwhile: {', '.join(sorted(run.button_while_reading)) or '-'}")
        print(f"        Task Center: {run.task_center_row}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--formats", default="xlsx,csv")
    parser.add_argument("--bad-every", type=int, default=1000, help="one bad line in this many (0: none)")
    parser.add_argument("--database-url", default=os.environ.get("SCREENING_BENCH_DATABASE_URL"))
    parser.add_argument("--screenshots", type=Path, help="save the dialog's progress, summary and Task Center here")
    args = parser.parse_args()
    formats = [f for f in args.formats.split(",") if f]
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="console-upload-bench-") as home:
        files = {}
        for file_format in formats:
            path = Path(home) / f"bench-{args.rows}.{file_format}"
            started = time.perf_counter()
            write_file(path, file_format, args.rows, args.bad_every)
            print(f"wrote {path.name} in {time.perf_counter() - started:.1f}s", file=sys.stderr)
            files[file_format] = path
        database_url, stop = args.database_url, None
        if database_url is None:
            database_url, stop = embedded.start(Path(home) / "pg")
        try:
            dsn = asyncio.run(create_database(database_url, "console_upload_bench"))
            asyncio.run(fill(dsn, 0))
            grpc_port, http_port = free_port(), free_port()
            base = f"http://127.0.0.1:{http_port}"
            with (
                process("serve", "--listen", f"127.0.0.1:{grpc_port}", "--database-url", dsn),
                process("console", "--listen", f"127.0.0.1:{http_port}", "--server", f"127.0.0.1:{grpc_port}"),
            ):
                wait_for(f"{base}/t/upload-xlsx/numbers", 600)
                runs = asyncio.run(drive(base, f"127.0.0.1:{grpc_port}", files, args.screenshots))
        finally:
            if callable(stop):
                stop()
    report(runs, args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

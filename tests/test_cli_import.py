"""screenctl template, import, jobs and job against a real server, with a 50,000-row file."""

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from screening.app.service import App
from screening.domain.fields import COLUMNS
from screening.files import formulas
from screening.v1 import screening_pb2 as pb
from tests.support import Clients, Run, failed, ok, rows, runner_for, until_verdict

ROWS = 50_000
# Lines (the header is line 1) the server refuses: numbers it cannot read, and cells that are no call type.
BAD_NUMBER = {1_001: "+86 abc", 25_000: "12345678901234567", 49_999: "tel:"}
BAD_CELL = {7: "sometimes", 40_000: "never"}


def number(i: int) -> str:
    return f"+1555{i:07d}"


def write_file(path: Path, count: int = ROWS, first: int = 0, bad: bool = True) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["number", "call_type", "note"])
        for i in range(first, first + count):
            line = i - first + 2
            call_type = BAD_CELL.get(line, "inbound") if bad else "inbound"
            writer.writerow([BAD_NUMBER.get(line, number(i)) if bad else number(i), call_type, f"row {i}"])


async def test_import_of_50k_rows_shows_progress_summary_and_bad_lines(
    server: App, clients: Clients, tmp_path: Path
) -> None:
    cli: Run = runner_for(f"127.0.0.1:{server.port}")
    path = tmp_path / "numbers.csv"
    write_file(path)

    result = await cli("import", str(path), "-t", "acme", "--progress", "--show-errors", "3")
    assert result.exit_code == 1, (result.stdout, result.stderr)  # some rows failed
    out = result.stdout
    assert "succeeded" in out.splitlines()[0] and "numbers.csv" in out.splitlines()[0]
    assert "50,000 rows: 49,995 created, 0 updated, 0 unchanged, 0 superseded, 5 failed" in out
    # The first bad lines, in line order, each with its reason.
    assert "bad lines (first 3):" in out
    table = out[out.index("bad lines") :].splitlines()
    assert table[1].split() == ["LINE", "NUMBER", "REASON"]
    assert [int(line.split()[0]) for line in table[2:5]] == [7, 1_001, 25_000]
    assert "call_type 'sometimes'" in table[2] and "+86 abc" in table[3]
    assert "... and 2 more" in table[5]
    # The progress bar ran to the end on stderr, with the bytes sent, their rate, an ETA and the elapsed time.
    assert "MB/s" in result.stderr or "kB/s" in result.stderr
    assert "imported" in result.stderr and "eta" in result.stderr

    await until_verdict(clients, number(2), pb.VERDICT_BLOCK, within=5)
    listed = json.loads(ok(await cli("list", "-t", "acme", "--limit", "1", "-o", "json", "--number-prefix", "+1555")))
    assert len(listed) == 1

    # The task center: the job is listed and shows its bad lines with their numbers.
    jobs = json.loads(ok(await cli("jobs", "-t", "acme", "-o", "json")))
    assert len(jobs) == 1 and jobs[0]["state"] == "IMPORT_JOB_STATE_SUCCEEDED"
    job_id = jobs[0]["id"]
    assert job_id in ok(await cli("jobs", "-t", "acme"))
    listed_csv = rows(ok(await cli("jobs", "-t", "acme", "-o", "csv")))
    assert [
        (r["id"], r["state"], r["total_rows"], r["failed_count"], r["actor"], r["file_format"]) for r in listed_csv
    ] == [(job_id, "succeeded", str(ROWS), str(len(BAD_NUMBER) + len(BAD_CELL)), "anonymous", "csv")]
    bad = list(csv.DictReader(io.StringIO(ok(await cli("job", job_id, "-t", "acme", "-o", "csv")))))
    # As any CSV we write: a cell a spreadsheet would run as a formula behind an apostrophe ("'+86 abc").
    assert [(int(r["line"]), r["number"]) for r in bad] == sorted(
        (line, formulas.defused(n))
        for line, n in {**BAD_NUMBER, **{line: number(line - 2) for line in BAD_CELL}}.items()
    )
    assert {r["column"] for r in bad} == {"number", "call_type"}
    shown = ok(await cli("job", job_id, "-t", "acme"))
    assert f"import job {job_id} from numbers.csv: succeeded" in shown and "49,995 created" in shown
    assert json.loads(ok(await cli("job", job_id, "-t", "acme", "-o", "json")))["created_count"] == 49_995
    assert "NOT_FOUND" in failed(await cli("job", "00000000-0000-0000-0000-000000000000", "-t", "acme"))

    # A reader that stops early (`screenctl export | head -n 2`) ends the export quietly.
    def export_into_head() -> tuple[list[bytes], int, bytes]:
        script = Path(sys.executable).parent / "screenctl"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCREENCTL_")}
        proc = subprocess.Popen(
            [str(script), "--server", f"127.0.0.1:{server.port}", "export", "-t", "acme"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None and proc.stderr is not None
        head = [proc.stdout.readline(), proc.stdout.readline()]
        proc.stdout.close()
        return head, proc.wait(60), proc.stderr.read()

    head, code, stderr = await asyncio.to_thread(export_into_head)
    assert head == [
        b"number,call_type,match_kind,enabled,note,expire_time,action\n",
        b"+15550000000,inbound,exact,true,row 0,,block\n",
    ]
    assert (code, stderr) == (0, b"")


async def test_clean_imports_exit_0_and_modes_decide_existing_rows(server: App, tmp_path: Path) -> None:
    cli = runner_for(f"127.0.0.1:{server.port}")
    path = tmp_path / "clean.csv"
    write_file(path, count=100, bad=False)
    first = await cli("import", str(path), "-t", "acme", "-o", "json")
    assert first.exit_code == 0, first.stderr
    job = json.loads(first.stdout)
    assert (job["created_count"], job.get("failed_count", 0), job.get("errors", [])) == (100, 0, [])
    assert "eta" not in first.stderr  # no terminal, no progress bar unless asked

    again = await cli("import", str(path), "-t", "acme")
    assert again.exit_code == 0
    as_csv = await cli("import", str(path), "-t", "acme", "-o", "csv")  # the bad lines: none
    assert (as_csv.exit_code, as_csv.stdout) == (0, "line,number,column,reason\n")
    # The same file again changes nothing: every row is unchanged, no etag moves.
    assert "100 rows: 0 created, 0 updated, 100 unchanged, 0 superseded, 0 failed" in again.stdout
    skip = await cli("import", str(path), "-t", "acme", "--mode", "insert-only")
    assert skip.exit_code == 0
    assert "100 rows: 0 created, 0 updated, 0 unchanged, 100 skipped, 0 superseded, 0 failed" in skip.stdout
    assert [j["state"] for j in json.loads(ok(await cli("jobs", "-t", "acme", "-o", "json")))] == [
        "IMPORT_JOB_STATE_SUCCEEDED"
    ] * 4
    assert len(json.loads(ok(await cli("jobs", "-t", "acme", "--limit", "2", "-o", "json")))) == 2


async def test_a_file_that_is_not_a_template_imports_nothing(server: App, tmp_path: Path) -> None:
    cli = runner_for(f"127.0.0.1:{server.port}")
    path = tmp_path / "broken.csv"
    write_file(path, count=30_000, bad=False)
    with path.open("ab") as out:
        out.write(b"+15559999999,inbound,caf\xe9\n")  # Latin-1, not UTF-8, at the very end
    line = failed(await cli("import", str(path), "-t", "acme"))
    assert line.startswith("error: INVALID_ARGUMENT: file 'broken.csv': line 30002: byte 0xe9"), line
    assert line.endswith("nothing was imported")
    listed = json.loads(ok(await cli("list", "-t", "acme", "-o", "json", "--limit", "1")))
    assert listed == []  # the 30,000 good rows before it were not committed
    # The job stays in the task center, FAILED with the reason.
    jobs = json.loads(ok(await cli("jobs", "-t", "acme", "-o", "json")))
    assert jobs[0]["state"] == "IMPORT_JOB_STATE_FAILED" and "line 30002: byte 0xe9" in jobs[0]["failure_reason"]

    no_header = tmp_path / "no-header.csv"
    no_header.write_text("+15550100,inbound\n")
    assert "missing header" in failed(await cli("import", str(no_header), "-t", "acme"))
    assert "cannot read" in failed(await cli("import", str(tmp_path / "absent.csv"), "-t", "acme"))


async def test_template_round_trip(server: App, tmp_path: Path) -> None:
    cli = runner_for(f"127.0.0.1:{server.port}")
    shown = ok(await cli("template"))
    assert shown.splitlines()[0] == ",".join(COLUMNS)
    assert shown.splitlines()[0].startswith("number,call_type,match_kind,enabled,note,expire_time")
    path = tmp_path / "template.csv"
    written = await cli("template", str(path))
    assert written.exit_code == 0 and path.read_text() == shown
    assert "exists" in failed(await cli("template", str(path)), 2)
    assert ok(await cli("template", str(path), "--force")) == ""

    imported = await cli("import", str(path), "-t", "acme")
    assert imported.exit_code == 0, imported.stdout
    count = len(shown.splitlines()) - 1
    assert f"{count} rows: {count} created" in imported.stdout

    # An export imports again, into another tenant.
    exported = tmp_path / "export.csv"
    ok(await cli("export", "-t", "acme", "--file", str(exported)))
    again = await cli("import", str(exported), "-t", "globex")
    assert again.exit_code == 0, again.stdout
    assert rows(ok(await cli("export", "-t", "globex"))) == rows(exported.read_text())

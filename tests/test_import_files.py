"""Importing files the server reads itself: every bad line kept, every job ends, counts that add up, history.

Against a real server and database, through the gRPC API as screenctl and the console use it.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import grpc
import openpyxl
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from screening.domain.fields import COLUMNS as ALL_COLUMNS
from screening.files import formulas
from screening.v1 import screening_pb2 as pb
from tests.support import Clients, StartServer, code_of, create, until_verdict, wait_until
from tests.support.faultproxy import FaultProxy

TENANT = "acme"
Request = pb.ImportForbiddenNumbersRequest
CSV, XLSX = pb.FILE_FORMAT_CSV, pb.FILE_FORMAT_XLSX

# The files here are written as before entries had an action: a file without
# that column still imports (every entry BLOCK), and its jobs and failed-rows
# files keep the file's own columns.
COLUMNS = tuple(c for c in ALL_COLUMNS if c != "action")


def messages(
    data: bytes,
    file_format: int = CSV,
    *,
    tenant: str = TENANT,
    mode: int = pb.IMPORT_MODE_UPSERT,
    source: str = "numbers.csv",
    time_zone: str = "",
    chunk: int = 64 * 1024,
) -> list[Request]:
    header = pb.ImportHeader(
        tenant_id=tenant,
        mode=mode,  # type: ignore[arg-type]
        source_name=source,
        file_format=file_format,  # type: ignore[arg-type]
        file_size=len(data),
        time_zone=time_zone,
    )
    return [Request(header=header), *(Request(file_chunk=data[i : i + chunk]) for i in range(0, len(data), chunk))]


async def stream(items: Iterable[Request]) -> AsyncIterator[Request]:
    for item in items:
        yield item


async def send(clients: Clients, data: bytes, file_format: int = CSV, **header: object) -> pb.ImportJob:
    return await clients.admin.ImportForbiddenNumbers(stream(messages(data, file_format, **header)))  # type: ignore[arg-type]


def csv_file(rows: Iterable[Iterable[str]], header: Iterable[str] = COLUMNS) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(header))
    writer.writerows([list(r) for r in rows])
    return out.getvalue().encode()


def xlsx_file(rows: Iterable[Iterable[object]], header: Iterable[str] = COLUMNS) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def total(job: pb.ImportJob) -> int:
    """The counts add up to the rows, whatever the mode."""
    counted = (
        job.created_count
        + job.updated_count
        + job.unchanged_count
        + job.skipped_count
        + job.superseded_count
        + job.failed_count
    )
    assert counted == job.total_rows, job
    return counted


async def failed_rows(clients: Clients, job_id: str) -> tuple[str, str, bytes]:
    chunks = [
        c
        async for c in clients.admin.GetImportJobFailedRows(
            pb.GetImportJobFailedRowsRequest(tenant_id=TENANT, id=job_id)
        )
    ]
    return chunks[0].file_name, chunks[0].content_type, b"".join(c.data for c in chunks)


async def export(clients: Clients) -> dict[str, pb.ForbiddenNumber]:
    """Exact entries by number (prefix entries as "number*")."""
    request = pb.ExportForbiddenNumbersRequest(tenant_id=TENANT)
    return {
        e.number + ("*" if e.match_kind == pb.MATCH_KIND_PREFIX else ""): e
        async for e in clients.admin.ExportForbiddenNumbers(request)
    }


def e164(i: int) -> str:
    return f"+1415{5_000_000 + i:07d}"


# Bad lines of every kind a person or a program writes, with the column and what the reason must say.
BAD_KINDS: list[tuple[list[str], str, str]] = [
    (["+1 415 CALL NOW", "both", "", "", "", ""], "number", "contains 'C'"),
    (["+12345678901234567", "both", "", "", "", ""], "number", "has 17 digits"),
    (["", "both", "", "", "", ""], "number", "must contain digits"),
    (["+٤١٥٥٥٥٠١٠٠", "both", "", "", "", ""], "number", "only ASCII digits"),
    (["+1415\x005550100", "both", "", "", "", ""], "number", "contains '\\x00'"),
    (["+14155550000", "sometimes", "", "", "", ""], "call_type", "expected inbound, outbound or both"),
    (["+14155550001", "", "", "", "", ""], "call_type", "is empty"),
    (["+14155550002", "both", "fuzzy", "", "", ""], "match_kind", "expected exact or prefix"),
    (["+14155550003", "both", "", "maybe", "", ""], "enabled", "expected true or false"),
    (["+14155550004", "both", "", "", "n" * 501, ""], "note", "has 501 characters"),
    (["+14155550005", "both", "", "", "", "next week"], "expire_time", "is not a time"),
    (["+14155550006", "both", "", "", "", "2020-01-01"], "expire_time", "is in the past"),
    (["+14155550007", "both", "", "", "", "2027-02-30"], "expire_time", "is not a time"),
    (["+14155550008", "both", "", "", "", "", "extra"], "", "has 7 fields; the header has 6"),
    (["+14155550009", "both"], "", "has 2 fields; the header has 6"),
    (["+1900x", "both", "prefix", "", "", ""], "number", "contains 'x'"),
    (["+1415" + "5" * 2000, "both", "", "", "", ""], "number", "no column takes more than 1000"),
]


async def test_a_20k_line_csv_with_bad_lines_of_17_kinds_keeps_every_one(clients: Clients) -> None:
    rows: list[list[str]] = []
    bad: dict[int, tuple[str, str, list[str]]] = {}
    for i in range(20_000):
        line = i + 2
        if i % 1000 == 999:
            cells, column, why = BAD_KINDS[(i // 1000) % len(BAD_KINDS)]
            rows.append(cells)
            bad[line] = (column, why, cells)
        else:
            rows.append([e164(i), "inbound", "", "", f"row {line}", ""])
    job = await send(clients, csv_file(rows))
    assert job.state == pb.IMPORT_JOB_STATE_SUCCEEDED, job.failure_reason
    assert total(job) == 20_000 and job.failed_count == len(bad) == 20
    assert job.created_count == 20_000 - 20
    assert {kind for kind, _, _ in bad.values()} >= {
        "number",
        "call_type",
        "match_kind",
        "enabled",
        "note",
        "expire_time",
        "",
    }
    assert len({why for _, why, _ in bad.values()}) >= 12
    assert [e.line for e in job.errors] == sorted(bad)
    for error in job.errors:
        column, why, cells = bad[error.line]
        assert error.column == column and why in error.reason, (error.line, error.reason)
        assert len(error.cells) == len(cells)
        # As read; NUL, which PostgreSQL cannot hold, is kept visible as \\x00, and long cells are cut on the wire.
        kept = [cell.replace("\x00", "\\x00")[:100] for cell in cells]
        assert all(shown.startswith(cell) for shown, cell in zip(error.cells, kept, strict=True)), error.cells
    assert job.actor == "anonymous" and job.file_format == CSV and job.bytes_received == job.file_size
    assert list(job.columns) == list(COLUMNS)
    assert job == await clients.admin.GetImportJob(pb.GetImportJobRequest(tenant_id=TENANT, id=job.id))

    # The failed-rows file: every bad line's cells as read, and a reason; fixed, it imports cleanly.
    name, content_type, data = await failed_rows(clients, job.id)
    assert name == "numbers-failed-rows.csv" and content_type.startswith("text/csv")
    back = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert back[0] == [*COLUMNS, "reason"]
    assert len(back) - 1 == 20
    assert [row[-1] for row in back[1:]] == [e.reason for e in job.errors]
    # A cell a spreadsheet would take for a formula comes back behind an apostrophe (a spreadsheet shows
    # it as text), which an import takes off again.
    assert back[1][:-1] == [formulas.defused(cell) for cell in bad[min(bad)][2]]
    assert back[1][0].startswith("'+1 415 CALL")
    fixed = [[e164(100_000 + n), "both", "", "", "fixed", ""] for n in range(len(back) - 1)]
    again = await send(clients, csv_file([[*row, "was bad"] for row in fixed], [*COLUMNS, "reason"]))
    assert (again.created_count, again.failed_count) == (20, 0)


async def test_the_failed_rows_of_a_semicolon_csv_come_back_with_semicolons_and_import_as_they_are(
    clients: Clients,
) -> None:
    """An Excel set up for ';' (German, French) saves ';' and opens a ','-separated file as one column."""
    lines = [
        ";".join(COLUMNS),
        "+4930123456;both;;;fine;",
        "+49 30 CALL;both;;;Zentrale, Berlin;",
        "+4930123457;oft;;;;",
    ]
    job = await send(clients, ("\r\n".join(lines) + "\r\n").encode("utf-8-sig"), source="nummern.csv")
    assert (job.created_count, job.failed_count) == (1, 2)
    name, content_type, data = await failed_rows(clients, job.id)
    assert name == "nummern-failed-rows.csv" and content_type.startswith("text/csv")
    text = data.decode("utf-8-sig")
    back = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert back[0] == [*COLUMNS, "reason"]
    assert [row[:-1] for row in back[1:]] == [
        [formulas.defused(cell) for cell in line.split(";")] for line in (lines[2], lines[3])
    ]
    assert text.splitlines()[0] == ";".join([*COLUMNS, "reason"])
    # Fixed in place, the file imports as it is (the reason column is read past).
    fixed = text.replace("+49 30 CALL", "+4930123458").replace(";oft;", ";inbound;")
    again = await send(clients, fixed.encode("utf-8"), source="nummern-failed-rows.csv")
    assert (again.created_count, again.failed_count) == (2, 0)
    rows_job = await clients.admin.GetImportJob(pb.GetImportJobRequest(tenant_id=TENANT, id=job.id))
    assert rows_job.failed_count == 2


async def test_an_xlsx_with_bad_lines_date_cells_and_a_time_zone(clients: Clients) -> None:
    data = xlsx_file(
        [
            ["+14155550100", "both", None, True, "robocalls", datetime(2030, 3, 1, 18, 0)],
            [8613800138000, "呼入", "精确", "否", None, datetime(2030, 3, 1).date()],
            ["+1 415 CALL", "both", None, None, None, None],
            [None, None, None, None, None, None],
            ["+1900", "outbound", "prefix", "true", None, "2030-03-01 08:00"],
            ["+14155550101", "sometimes", None, None, None, None],
        ]
    )
    job = await send(clients, data, XLSX, source="numbers.xlsx", time_zone="Asia/Shanghai")
    assert job.state == pb.IMPORT_JOB_STATE_SUCCEEDED and total(job) == 5
    assert [(e.line, e.column) for e in job.errors] == [(4, "number"), (7, "call_type")]
    stored = await export(clients)
    assert stored["+14155550100"].expire_time.ToDatetime(tzinfo=UTC) == datetime(2030, 3, 1, 10, tzinfo=UTC)
    chinese = stored["8613800138000"]  # no default region: an xlsx number cell stays its digits
    assert (chinese.call_type, chinese.enabled) == (pb.CALL_TYPE_INBOUND, False)
    assert chinese.expire_time.ToDatetime(tzinfo=UTC) == datetime(2030, 2, 28, 16, tzinfo=UTC)
    assert stored["+1900*"].expire_time.ToDatetime(tzinfo=UTC) == datetime(2030, 3, 1, 0, tzinfo=UTC)

    name, content_type, body = await failed_rows(clients, job.id)
    assert name == "numbers-failed-rows.xlsx" and "spreadsheetml" in content_type
    sheet = openpyxl.load_workbook(io.BytesIO(body)).active
    assert sheet is not None
    cells = [[c.value for c in row] for row in sheet.iter_rows()]
    assert cells[0] == [*COLUMNS, "reason"]
    assert [row[0] for row in cells[1:]] == ["+1 415 CALL", "+14155550101"]
    assert "call_type 'sometimes'" in cells[2][-1]


@pytest.mark.parametrize(
    ("data", "file_format", "reason"),
    [
        (b"", CSV, "line 1: the file is empty"),
        (b"nummer,typ\n+1,both\n", CSV, "line 1: missing header"),
        (b"number,call_type,colour\n", CSV, "unknown column 'colour'"),
        (b"number,call_type\n+14155550100,both\n+1415555\xe90101,both\n", CSV, "line 3: byte 0xe9"),
        (b'number,call_type,note\n+1,both,x\n+2,both,"open\n+3,both,\n', CSV, "line 3: a quoted field opens"),
        (b"number,call_type\n+1,both\n", XLSX, "not an .xlsx workbook"),
        (b"PK\x03\x04 broken zip", CSV, "not an .xlsx workbook"),
    ],
)
async def test_a_file_that_is_not_a_template_fails_its_job_with_the_reason(
    clients: Clients, data: bytes, file_format: int, reason: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await send(clients, data, file_format, source="bad.file")
    assert code_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    assert reason in details and "FAILED, nothing was imported" in details
    jobs = (await clients.admin.ListImportJobs(pb.ListImportJobsRequest(tenant_id=TENANT))).import_jobs
    assert jobs[0].state == pb.IMPORT_JOB_STATE_FAILED and jobs[0].id in details
    assert reason in jobs[0].failure_reason and jobs[0].HasField("finish_time")
    assert await export(clients) == {}


async def test_reimporting_an_unchanged_export_changes_nothing(clients: Clients) -> None:
    first = await send(clients, csv_file([[e164(i), "both", "", "", f"n{i}", ""] for i in range(50)]))
    assert first.created_count == 50
    before = await export(clients)
    audit_before = await clients.admin.ListAuditEvents(pb.ListAuditEventsRequest(tenant_id=TENANT, page_size=1000))

    again = await send(clients, csv_file([[e164(i), "both", "exact", "true", f"n{i}", ""] for i in range(50)]))
    assert (again.unchanged_count, again.updated_count, again.created_count) == (50, 0, 0)
    assert await export(clients) == before  # no etag moved
    audit_after = await clients.admin.ListAuditEvents(pb.ListAuditEventsRequest(tenant_id=TENANT, page_size=1000))
    # Only the job's own event: no entry changed, so none has an event.
    assert len(audit_after.audit_events) == len(audit_before.audit_events) + 1
    assert audit_after.audit_events[0].action == "import"

    # The same for an update that changes nothing.
    entry = before[e164(0)]
    same = await clients.admin.UpdateForbiddenNumber(
        pb.UpdateForbiddenNumberRequest(
            forbidden_number=pb.ForbiddenNumber(tenant_id=TENANT, id=entry.id, note="n0", call_type=pb.CALL_TYPE_BOTH)
        )
    )
    assert same.etag == entry.etag and same.update_time == entry.update_time
    events = await clients.admin.ListAuditEvents(pb.ListAuditEventsRequest(tenant_id=TENANT, resource_id=entry.id))
    assert [e.action for e in events.audit_events] == ["create"]


async def test_duplicate_lines_are_superseded_by_the_later_line(clients: Clients) -> None:
    data = csv_file(
        [
            ["+14155550100", "inbound", "", "", "first", ""],
            ["+14155550101", "both", "", "", "", ""],
            ["+1 415 555 0100", "outbound", "", "", "second", ""],
            ["+14155550100", "both", "", "", "third", ""],
            ["+14155550100", "both", "prefix", "", "another kind: not a duplicate", ""],
        ]
    )
    job = await send(clients, data)
    assert (job.created_count, job.superseded_count, total(job)) == (3, 2, 5)
    assert [(s.line, s.by_line) for s in job.superseded] == [(2, 5), (4, 5)]
    assert (await export(clients))["+14155550100"].note == "third"


async def test_each_entry_history_shows_the_imports_that_created_and_changed_it(clients: Clients) -> None:
    first = await send(clients, csv_file([["+14155550100", "inbound", "", "", "v1", ""]]))
    entry = (await export(clients))["+14155550100"]
    manual = await create(clients, "+14155550199")
    second = await send(clients, csv_file([["+14155550100", "both", "", "false", "v1", ""]]))
    assert second.updated_count == 1

    events = await clients.admin.ListAuditEvents(pb.ListAuditEventsRequest(tenant_id=TENANT, resource_id=entry.id))
    history = [(e.action, e.import_job_id, list(e.changed_fields)) for e in events.audit_events]
    assert history == [
        ("update", second.id, ["call_type", "enabled"]),
        ("create", first.id, ["number", "match_kind", "call_type", "enabled", "note", "expire_time", "action"]),
    ]
    update = events.audit_events[0]
    assert (update.before.call_type, update.after.call_type) == (pb.CALL_TYPE_INBOUND, pb.CALL_TYPE_BOTH)
    assert update.actor == "anonymous"

    by_job = await clients.admin.ListAuditEvents(pb.ListAuditEventsRequest(tenant_id=TENANT, import_job_id=second.id))
    assert [(e.action, e.resource_id) for e in by_job.audit_events] == [("import", second.id), ("update", entry.id)]
    manual_events = await clients.admin.ListAuditEvents(
        pb.ListAuditEventsRequest(tenant_id=TENANT, resource_id=manual.id)
    )
    assert [(e.action, e.import_job_id) for e in manual_events.audit_events] == [("create", "")]
    bad_filter = await clients.admin.ListAuditEvents(
        pb.ListAuditEventsRequest(tenant_id=TENANT, import_job_id="not-a-job")
    )
    assert list(bad_filter.audit_events) == []


async def test_insert_only_skips_what_exists_and_the_counts_add_up(clients: Clients) -> None:
    await send(clients, csv_file([[e164(i), "both", "", "", "", ""] for i in range(3)]))
    job = await send(
        clients,
        csv_file([[e164(i), "inbound", "", "", "", ""] for i in range(5)] + [["bad", "both", "", "", "", ""]]),
        mode=pb.IMPORT_MODE_INSERT_ONLY,
    )
    assert (job.created_count, job.skipped_count, job.failed_count, total(job)) == (2, 3, 1, 6)
    assert job.mode == pb.IMPORT_MODE_INSERT_ONLY
    assert (await export(clients))[e164(0)].call_type == pb.CALL_TYPE_BOTH


async def test_a_bad_header_field_is_refused_before_any_job(clients: Clients) -> None:
    for header, field in (
        ({"time_zone": "Mars/Olympus"}, "header.time_zone"),
        ({"file_format": 7}, "header.file_format"),
        ({"tenant": "no spaces"}, "header.tenant_id"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await send(clients, b"number,call_type\n", **header)
        assert code_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT
        status = rpc_status.from_call(caught.value)
        assert status is not None
        violation = error_details_pb2.BadRequest()
        assert status.details[0].Unpack(violation) and violation.field_violations[0].field == field
    assert list((await clients.admin.ListImportJobs(pb.ListImportJobsRequest(tenant_id=TENANT))).import_jobs) == []


async def test_rows_and_a_file_do_not_mix(clients: Clients) -> None:
    data = csv_file([["+14155550100", "both", "", "", "", ""]])
    mixed = [*messages(data), Request(rows=pb.ImportRowBatch(rows=[pb.ImportRow(number="+1", call_type=1)]))]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.admin.ImportForbiddenNumbers(stream(mixed))
    assert code_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT and "file_chunk" in (caught.value.details() or "")
    rows_then_file = [
        Request(header=pb.ImportHeader(tenant_id=TENANT)),
        Request(file_chunk=b"number,call_type\n"),
    ]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.admin.ImportForbiddenNumbers(stream(rows_then_file))
    assert "named no file_format" in (caught.value.details() or "")


async def test_a_row_whose_number_holds_nul_is_a_bad_line_not_an_internal_error(clients: Clients) -> None:
    rows = [
        pb.ImportRow(line=2, number="+1415\x005550100", call_type=pb.CALL_TYPE_BOTH),
        pb.ImportRow(line=3, number="+14155550101", call_type=pb.CALL_TYPE_BOTH, note="ok\x00no"),
        pb.ImportRow(line=4, number="+14155550102", call_type=pb.CALL_TYPE_BOTH),
    ]
    job = await clients.admin.ImportForbiddenNumbers(
        stream([Request(header=pb.ImportHeader(tenant_id=TENANT)), Request(rows=pb.ImportRowBatch(rows=rows))])
    )
    assert (job.created_count, job.failed_count) == (1, 2)
    assert [e.line for e in job.errors] == [2, 3]
    assert "\\x00" in job.errors[0].number  # stored escaped, shown so
    name, _, data = await failed_rows(clients, job.id)
    assert name == "import-failed-rows.csv" and data.decode("utf-8-sig").count("\n") == 3


async def _stalled(items: list[Request], sent: asyncio.Event) -> AsyncIterator[Request]:
    for item in items:
        yield item
    sent.set()
    await asyncio.Event().wait()  # the stream breaks off here


async def test_a_running_file_import_shows_who_and_its_progress(clients: Clients) -> None:
    data = csv_file([[e164(i), "both", "", "", "", ""] for i in range(5000)])
    items = messages(data, chunk=16 * 1024)
    sent = asyncio.Event()
    call = clients.admin.ImportForbiddenNumbers(_stalled(items[: len(items) // 2], sent))
    await sent.wait()

    async def running() -> pb.ImportJob | None:
        jobs = (await clients.admin.ListImportJobs(pb.ListImportJobsRequest(tenant_id=TENANT))).import_jobs
        job = jobs[0] if jobs else None
        ok = job is not None and job.state == pb.IMPORT_JOB_STATE_RUNNING and job.bytes_received > 0
        return job if ok else None

    await wait_until(running, within=5)
    job = await running()
    assert job is not None
    assert (job.actor, job.file_format, job.file_size) == ("anonymous", CSV, len(data))
    assert 0 < job.bytes_received < job.file_size
    call.cancel()
    with pytest.raises((asyncio.CancelledError, grpc.aio.AioRpcError)):
        await call


async def test_an_import_cut_off_by_shutdown_says_so(start_server: StartServer, connect) -> None:
    app = await start_server()
    clients = connect(app)
    data = csv_file([[e164(i), "both", "", "", "", ""] for i in range(100)])
    sent = asyncio.Event()
    call = clients.admin.ImportForbiddenNumbers(_stalled(messages(data)[:1], sent))
    await sent.wait()
    await asyncio.sleep(0.2)
    witness = connect(await start_server())
    await app.stop(grace=0.2)
    with pytest.raises(grpc.aio.AioRpcError):
        await call

    async def failed() -> pb.ImportJob | None:
        jobs = (await witness.admin.ListImportJobs(pb.ListImportJobsRequest(tenant_id=TENANT))).import_jobs
        return jobs[0] if jobs and jobs[0].state == pb.IMPORT_JOB_STATE_FAILED else None

    await wait_until(failed, within=5)
    job = await failed()
    assert job is not None and "the server shut down" in job.failure_reason


async def test_an_import_that_loses_its_database_fails_with_that_reason_once_it_is_back(
    start_server: StartServer, connect, proxy: FaultProxy, dsn: str
) -> None:
    database = urlsplit(dsn).path.lstrip("/")
    app = await start_server(database_url=proxy.url(database))
    clients = connect(app)
    witness = connect(await start_server())
    data = csv_file([[e164(i), "both", "", "", "", ""] for i in range(3000)])
    items = messages(data, chunk=8 * 1024)
    go_on = asyncio.Event()

    async def held() -> AsyncIterator[Request]:
        yield items[0]
        yield items[1]
        await go_on.wait()
        for item in items[2:]:
            yield item

    call = clients.admin.ImportForbiddenNumbers(held())

    async def running() -> bool:
        jobs = (await witness.admin.ListImportJobs(pb.ListImportJobsRequest(tenant_id=TENANT))).import_jobs
        return bool(jobs) and jobs[0].state == pb.IMPORT_JOB_STATE_RUNNING

    await wait_until(running, within=5)
    proxy.refuse()  # the database goes away under the running import
    go_on.set()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert code_of(caught.value) == grpc.StatusCode.UNAVAILABLE
    await asyncio.sleep(1.0)
    proxy.heal()

    async def failed() -> pb.ImportJob | None:
        jobs = (await witness.admin.ListImportJobs(pb.ListImportJobsRequest(tenant_id=TENANT))).import_jobs
        return jobs[0] if jobs and jobs[0].state == pb.IMPORT_JOB_STATE_FAILED else None

    await wait_until(failed, within=15)
    job = await failed()
    assert job is not None and "the database became unreachable" in job.failure_reason, job.failure_reason
    assert await export(witness) == {}
    await until_verdict(witness, e164(0), pb.VERDICT_ALLOW)


async def test_the_job_is_named_as_soon_as_it_exists_and_in_a_refusal(clients: Clients) -> None:
    data = csv_file([[e164(i), "both", "", "", "", ""] for i in range(10)])
    call = clients.admin.ImportForbiddenNumbers(stream(messages(data)))
    early = dict(await call.initial_metadata())
    job = await call
    assert early["x-import-job-id"] == job.id

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await send(clients, b"colour\nred\n")
    status = rpc_status.from_call(caught.value)
    assert status is not None
    named = error_details_pb2.ResourceInfo()
    assert any(d.Unpack(named) for d in status.details)
    assert named.resource_type == "screening.v1.ImportJob"
    failed = await clients.admin.GetImportJob(pb.GetImportJobRequest(tenant_id=TENANT, id=named.resource_name))
    assert failed.state == pb.IMPORT_JOB_STATE_FAILED and "missing header" in failed.failure_reason

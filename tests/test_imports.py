"""Bulk import, import jobs and export, against a real database and real servers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime

import asyncpg
import grpc
import pytest
from google.protobuf import timestamp_pb2

from screening.app.service import App
from screening.files.template import csv_bytes
from screening.usecases.imports import COPY_ROWS
from screening.v1 import screening_pb2 as pb
from tests.support import Clients, StartServer, wait_until

TENANT = "acme"
Request = pb.ImportForbiddenNumbersRequest


def header(tenant: str = TENANT, mode: int = pb.IMPORT_MODE_UPSERT, source: str = "list.csv") -> Request:
    return Request(header=pb.ImportHeader(tenant_id=tenant, mode=mode, source_name=source))  # type: ignore[arg-type]


def rows(items: Iterable[pb.ImportRow]) -> Request:
    return Request(rows=pb.ImportRowBatch(rows=list(items)))


def row(line: int, number: str, call_type: int = pb.CALL_TYPE_BOTH, **fields: object) -> pb.ImportRow:
    return pb.ImportRow(line=line, number=number, call_type=call_type, **fields)  # type: ignore[arg-type]


def batched(items: Sequence[pb.ImportRow], size: int) -> list[Request]:
    return [rows(items[i : i + size]) for i in range(0, len(items), size)]


async def stream(messages: Iterable[Request]) -> AsyncIterator[Request]:
    for m in messages:
        yield m


async def import_all(clients: Clients, messages: Iterable[Request]) -> pb.ImportJob:
    return await clients.admin.ImportForbiddenNumbers(stream(messages))


async def export(clients: Clients, tenant: str = TENANT, **filters: object) -> list[pb.ForbiddenNumber]:
    request = pb.ExportForbiddenNumbersRequest(tenant_id=tenant, filters=pb.ForbiddenNumberFilters(**filters))  # type: ignore[arg-type]
    return [e async for e in clients.admin.ExportForbiddenNumbers(request)]


async def get_job(clients: Clients, job_id: str, tenant: str = TENANT) -> pb.ImportJob:
    return await clients.admin.GetImportJob(pb.GetImportJobRequest(tenant_id=tenant, id=job_id))


async def list_jobs(clients: Clients, tenant: str = TENANT) -> list[pb.ImportJob]:
    response = await clients.admin.ListImportJobs(pb.ListImportJobsRequest(tenant_id=tenant))
    return list(response.import_jobs)


def e164(i: int) -> str:
    return f"+1415{5_000_000 + i:07d}"


def counts(job: pb.ImportJob) -> tuple[int, int, int, int, int, int, int]:
    """(total, created, updated, unchanged, skipped, superseded, failed); the last six add up to the first."""
    found = (
        job.created_count,
        job.updated_count,
        job.unchanged_count,
        job.skipped_count,
        job.superseded_count,
        job.failed_count,
    )
    assert sum(found) == job.total_rows, (job.total_rows, found)
    return (job.total_rows, *found)


async def test_20k_rows_with_scattered_bad_rows(clients: Clients) -> None:
    items: list[pb.ImportRow] = []
    bad: dict[int, str] = {}  # line -> what the reason must mention
    for i in range(20_000):
        line = i + 2  # line 1 is the CSV header
        if i % 997 == 5:
            items.append(row(line, f"+1415x{i}"))
            bad[line] = "contains 'x'"
        elif i % 1999 == 7:
            items.append(row(line, e164(i), call_type=pb.CALL_TYPE_UNSPECIFIED))
            bad[line] = "call_type 0: is required"
        elif i % 4001 == 11:
            items.append(row(line, e164(i), note="n" * 501))
            bad[line] = "has 501 characters"
        elif i % 5003 == 13:
            items.append(row(line, "+1234567890123456"))
            bad[line] = "has 16 digits"
        else:
            items.append(row(line, e164(i), note=f"row {line}"))
    # Later rows for numbers already in this import replace the earlier ones.
    for j, i in enumerate((0, 1, 2)):
        items.append(row(20_002 + j, f"+1 (415) {5_000_000 + i:07d}"[:9] + f"{5_000_000 + i:07d}", note="later wins"))
    job = await import_all(clients, [header(), *batched(items, 5000)])

    assert job.state == pb.IMPORT_JOB_STATE_SUCCEEDED, job.failure_reason
    good = 20_000 - len(bad)
    assert counts(job) == (20_003, good, 0, 0, 0, 3, len(bad))
    # Each superseded line names the later line that won.
    assert [(s.line, s.by_line) for s in job.superseded] == [(2, 20_002), (3, 20_003), (4, 20_004)]
    assert [e.line for e in job.errors] == sorted(bad)
    for error in job.errors:
        assert bad[error.line] in error.reason, error
        assert error.number == items[error.line - 2].number
    assert job.source_name == "list.csv" and job.mode == pb.IMPORT_MODE_UPSERT
    assert job.finish_time.ToDatetime() >= job.create_time.ToDatetime()

    exported = await export(clients)
    assert len(exported) == good
    by_number = {e.number: e for e in exported}
    assert by_number[e164(0)].note == "later wins" and by_number[e164(3)].note == "row 5"
    assert job == await get_job(clients, job.id)


@pytest.mark.parametrize("mode", [pb.IMPORT_MODE_UPSERT, pb.IMPORT_MODE_INSERT_ONLY])
async def test_entries_written_while_reading_end_as_if_written_at_the_end(
    clients: Clients, dsn: str, mode: int
) -> None:
    """A first batch of new entries is written while the rest is read; later lines for them and for stored entries.

    Whatever was written early, the result is that of the last lines applied at once: an entry whose
    line a later one replaced is still created (revision 1, its first etag, one "create" event).
    """
    await import_all(clients, [header(), rows([row(2, e164(900_000), note="stored")])])
    stored = {e.number: e for e in await export(clients)}[e164(900_000)]
    first = [row(i + 2, e164(i), note="early") for i in range(COPY_ROWS)]
    # The next batch replaces two early entries (one by identical values), changes the stored one, adds one.
    second = [
        row(COPY_ROWS + 2, e164(0), note="late"),
        row(COPY_ROWS + 3, e164(1), note="early"),
        row(COPY_ROWS + 4, e164(900_000), note="changed"),
        row(COPY_ROWS + 5, e164(COPY_ROWS), note="late"),
    ]
    job = await import_all(clients, [header(mode=mode), *batched([*first, *second], 5000)])
    assert job.state == pb.IMPORT_JOB_STATE_SUCCEEDED, job.failure_reason
    total = COPY_ROWS + 4
    if mode == pb.IMPORT_MODE_UPSERT:
        assert counts(job) == (total, COPY_ROWS + 1, 1, 0, 0, 2, 0)
    else:
        assert counts(job) == (total, COPY_ROWS + 1, 0, 0, 1, 2, 0)
    assert [(s.line, s.by_line) for s in job.superseded] == [(2, COPY_ROWS + 2), (3, COPY_ROWS + 3)]
    exported = {e.number: e for e in await export(clients)}
    assert len(exported) == COPY_ROWS + 2
    late, same, fresh = exported[e164(0)], exported[e164(1)], exported[e164(COPY_ROWS)]
    assert (late.note, same.note, fresh.note) == ("late", "early", "late")
    assert exported[e164(2)].note == "early"
    assert late.etag == same.etag == fresh.etag == exported[e164(2)].etag  # each at its first revision
    kept = exported[e164(900_000)]
    if mode == pb.IMPORT_MODE_UPSERT:
        assert kept.note == "changed" and kept.etag != stored.etag
    else:
        assert kept.note == "stored" and kept.etag == stored.etag
    for entry in (late, same, fresh):
        events = await clients.admin.ListAuditEvents(pb.ListAuditEventsRequest(tenant_id=TENANT, resource_id=entry.id))
        assert [(e.action, e.import_job_id) for e in events.audit_events] == [("create", job.id)]
    conn = await asyncpg.connect(dsn)
    try:
        revisions = await conn.fetch(
            "SELECT revision, count(*) AS n FROM forbidden_numbers WHERE tenant_id = $1 GROUP BY 1 ORDER BY 1", TENANT
        )
    finally:
        await conn.close()
    wanted = [(1, COPY_ROWS + 1), (2, 1)] if mode == pb.IMPORT_MODE_UPSERT else [(1, COPY_ROWS + 2)]
    assert [(r["revision"], r["n"]) for r in revisions] == wanted


async def test_upsert_updates_and_insert_only_skips(clients: Clients) -> None:
    first = await import_all(clients, [header(), rows(row(i + 2, e164(i), note="v1") for i in range(10))])
    assert counts(first) == (10, 10, 0, 0, 0, 0, 0)
    before = {e.number: e for e in await export(clients)}

    # Rows 0-4 exist, 10-14 are new; row 0 is identical to what is stored.
    later = [row(2, e164(0), note="v1"), *(row(i + 2, e164(i), note="v2") for i in (*range(1, 5), *range(10, 15)))]
    insert_only = await import_all(clients, [header(mode=pb.IMPORT_MODE_INSERT_ONLY), rows(later)])
    assert counts(insert_only) == (10, 5, 0, 0, 5, 0, 0)
    after_insert_only = {e.number: e for e in await export(clients)}
    assert all(after_insert_only[e164(i)] == before[e164(i)] for i in range(10))
    assert {after_insert_only[e164(i)].note for i in range(10, 15)} == {"v2"}

    changed = [
        row(2, e164(0), note="v1"),
        row(3, e164(1), call_type=pb.CALL_TYPE_INBOUND, enabled=False, note="v3"),
        row(4, e164(20), note="v3"),
    ]
    upsert = await import_all(clients, [header(mode=pb.IMPORT_MODE_UNSPECIFIED), rows(changed)])
    assert upsert.mode == pb.IMPORT_MODE_UPSERT
    assert counts(upsert) == (3, 1, 1, 1, 0, 0, 0)
    final = {e.number: e for e in await export(clients)}
    assert final[e164(0)].etag == before[e164(0)].etag  # unchanged attributes: entry untouched
    updated = final[e164(1)]
    assert (updated.call_type, updated.enabled, updated.note) == (pb.CALL_TYPE_INBOUND, False, "v3")
    assert updated.id == before[e164(1)].id and updated.etag != before[e164(1)].etag
    assert len(final) == 16


async def _blocked(dsn: str, call: grpc.aio.StreamUnaryCall[Request, pb.ImportJob]) -> None:
    """Wait until the import's apply waits for another transaction's uncommitted write."""
    # Watched from a connection of its own: within a transaction, pg_stat_activity keeps its first reading.
    observer = await asyncpg.connect(dsn)
    try:

        async def waiting() -> bool:
            assert not call.done(), call
            return bool(
                await observer.fetchval(
                    """SELECT count(*) FROM pg_stat_activity
                       WHERE datname = current_database() AND wait_event_type = 'Lock'"""
                )
            )

        await wait_until(waiting, within=30)
    finally:
        await observer.close()


async def test_an_entry_another_writer_creates_during_the_apply_counts_as_updated(clients: Clients, dsn: str) -> None:
    """The apply's fast path (plain INSERTs) meets a key created meanwhile: the import still succeeds, whole."""
    numbers = [e164(i) for i in range(200)]
    writer = await asyncpg.connect(dsn)
    try:
        async with writer.transaction():
            await writer.execute(
                """INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type, note)
                   VALUES ($1, $2, 1, 1, 'w')""",
                TENANT,
                numbers[150],
            )
            job = clients.admin.ImportForbiddenNumbers(
                stream([header(), rows(row(i + 2, n, note="i") for i, n in enumerate(numbers))])
            )
            await _blocked(dsn, job)
        done = await job
    finally:
        await writer.close()
    assert done.state == pb.IMPORT_JOB_STATE_SUCCEEDED
    assert counts(done) == (200, 199, 1, 0, 0, 0, 0)
    exported = {e.number: e for e in await export(clients)}
    assert len(exported) == 200 and {e.note for e in exported.values()} == {"i"}
    raced = exported[numbers[150]]
    assert raced.call_type == pb.CALL_TYPE_BOTH
    events = await clients.admin.ListAuditEvents(pb.ListAuditEventsRequest(tenant_id=TENANT, resource_id=raced.id))
    assert [(e.action, e.import_job_id) for e in events.audit_events] == [("update", done.id)]
    by_job = await clients.admin.ListAuditEvents(
        pb.ListAuditEventsRequest(tenant_id=TENANT, import_job_id=done.id, page_size=1000)
    )
    assert sorted(e.action for e in by_job.audit_events) == ["create"] * 199 + ["import", "update"]


async def test_an_entry_deleted_while_the_import_changes_it_is_created_again(clients: Clients, dsn: str) -> None:
    """The fast path's UPDATE misses an entry tombstoned meanwhile: the import falls back and creates it anew."""
    first = await import_all(clients, [header(), rows(row(i + 2, e164(i), note="v1") for i in range(50))])
    assert counts(first) == (50, 50, 0, 0, 0, 0, 0)
    gone = {e.number: e for e in await export(clients)}[e164(10)]
    writer = await asyncpg.connect(dsn)
    try:
        async with writer.transaction():
            await writer.execute("UPDATE forbidden_numbers SET deleted = true WHERE id = $1", uuid.UUID(gone.id))
            job = clients.admin.ImportForbiddenNumbers(
                stream([header(), rows(row(i + 2, e164(i), note="v2") for i in range(50))])
            )
            await _blocked(dsn, job)
        done = await job
    finally:
        await writer.close()
    assert done.state == pb.IMPORT_JOB_STATE_SUCCEEDED
    assert counts(done) == (50, 1, 49, 0, 0, 0, 0)
    exported = {e.number: e for e in await export(clients)}
    assert len(exported) == 50 and {e.note for e in exported.values()} == {"v2"}
    assert exported[e164(10)].id != gone.id


async def _stalled(messages: Sequence[Request], sent: asyncio.Event) -> AsyncIterator[Request]:
    for m in messages:
        yield m
    sent.set()
    await asyncio.Event().wait()  # the stream breaks off here


@pytest.mark.parametrize("how", ["cancel", "deadline"])
async def test_stream_broken_off_commits_nothing_and_fails_the_job(server: App, clients: Clients, how: str) -> None:
    await import_all(clients, [header(), rows([row(2, e164(999), note="before")])])
    messages = [header(source="broken.csv"), *batched([row(i + 2, e164(i), note="new") for i in range(3000)], 1000)]
    messages.append(rows([row(9999, e164(999), note="changed")]))
    sent = asyncio.Event()
    call = clients.admin.ImportForbiddenNumbers(_stalled(messages, sent), timeout=None if how == "cancel" else 3.0)
    await sent.wait()

    async def running() -> pb.ImportJob | None:
        jobs = [j for j in await list_jobs(clients) if j.source_name == "broken.csv"]
        ok = jobs and jobs[0].state == pb.IMPORT_JOB_STATE_RUNNING and jobs[0].total_rows == 3001
        return jobs[0] if ok else None

    await wait_until(running, within=5)
    job = await running()
    assert job is not None and not job.HasField("finish_time")
    if how == "cancel":
        call.cancel()
    with pytest.raises((asyncio.CancelledError, grpc.aio.AioRpcError)) as caught:
        await call
    ended = datetime.now(UTC)
    if how == "deadline":
        assert isinstance(caught.value, grpc.aio.AioRpcError)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    async def failed() -> bool:
        return (await get_job(clients, job.id)).state == pb.IMPORT_JOB_STATE_FAILED

    await wait_until(failed, within=5)
    final = await get_job(clients, job.id)
    why = {"cancel": "the client cancelled the import", "deadline": "the import passed its deadline"}[how]
    assert why in final.failure_reason
    assert final.total_rows == 3001 and final.created_count == 0 and final.HasField("finish_time")
    # The job ends within a second of the stream.
    assert abs((final.finish_time.ToDatetime(tzinfo=UTC) - ended).total_seconds()) < 1.0
    # A client's cancel or deadline is counted as such, never as the database's UNAVAILABLE.
    code = {"cancel": "CANCELLED", "deadline": "DEADLINE_EXCEEDED"}[how]

    def counted() -> float:
        labels = {"method": "ImportForbiddenNumbers", "code": code}
        return server.metrics.registry.get_sample_value("screening_admin_calls_total", labels) or 0.0

    await wait_until(counted, within=2)
    exported = await export(clients)
    assert [(e.number, e.note) for e in exported] == [(e164(999), "before")]


async def test_rows_before_a_header_write_nothing(clients: Clients) -> None:
    for messages in ([rows([row(2, e164(1))]), header()], [], [header(tenant="")]):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await import_all(clients, messages)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "header" in (caught.value.details() or "")
    assert await list_jobs(clients) == []
    assert await export(clients) == []


async def test_header_twice_fails_the_job(clients: Clients) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await import_all(clients, [header(), rows([row(2, e164(1))]), header()])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [job] = await list_jobs(clients)
    assert job.id in (caught.value.details() or "")
    assert job.state == pb.IMPORT_JOB_STATE_FAILED and "only the first message" in job.failure_reason
    assert await export(clients) == []


async def test_row_limits(start_server: StartServer, connect: object) -> None:
    app = await start_server(max_import_rows=1500)
    clients = connect(app)  # type: ignore[operator]
    too_many_in_one = [row(i + 2, e164(i)) for i in range(10_001)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await import_all(clients, [header(), rows(too_many_in_one)])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "rows.rows '10001 rows': at most 10000 a message" in (caught.value.details() or "")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await import_all(clients, [header(), *batched([row(i + 2, e164(i)) for i in range(2000)], 1000)])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 1500 rows (the server's --max-import-rows)" in (caught.value.details() or "")
    jobs = await list_jobs(clients)
    assert [j.state for j in jobs] == [pb.IMPORT_JOB_STATE_FAILED] * 2
    assert "--max-import-rows" in jobs[0].failure_reason and "a message" in jobs[1].failure_reason
    assert await export(clients) == []

    within = await import_all(clients, [header(), *batched([row(i + 2, e164(i)) for i in range(1500)], 1000)])
    assert within.created_count == 1500


async def test_a_full_message_with_long_notes_fits(clients: Clients) -> None:
    # 10,000 rows with 450-character notes: about 5 MB, over gRPC's default 4 MB.
    items = [row(i + 2, e164(i), note="é" * 450) for i in range(10_000)]
    job = await import_all(clients, [header(), rows(items)])
    assert job.created_count == 10_000


async def test_a_job_whose_replica_died_reads_as_failed(clients: Clients, dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        job_id = await conn.fetchval(
            """INSERT INTO import_jobs (tenant_id, state, mode, total_rows, heartbeat_time)
               VALUES ($1, 1, 1, 42, now() - interval '1 minute') RETURNING id::text""",
            TENANT,
        )
        alive_id = await conn.fetchval(
            "INSERT INTO import_jobs (tenant_id, state, mode) VALUES ($1, 1, 1) RETURNING id::text", TENANT
        )
    finally:
        await conn.close()
    job = await get_job(clients, job_id)
    assert job.state == pb.IMPORT_JOB_STATE_FAILED and job.total_rows == 42
    assert "stopped, or lost its database, before the import finished" in job.failure_reason
    assert (await get_job(clients, alive_id)).state == pb.IMPORT_JOB_STATE_RUNNING
    assert [j.state for j in await list_jobs(clients)] == [pb.IMPORT_JOB_STATE_RUNNING, pb.IMPORT_JOB_STATE_FAILED]


async def test_two_imports_into_one_tenant_at_once(clients: Clients) -> None:
    both_open = asyncio.Event()
    opened = 0

    async def messages(numbers: range, note: str) -> AsyncIterator[Request]:
        nonlocal opened
        yield header(source=note)
        items = [row(i + 2, e164(n), note=note) for i, n in enumerate(numbers)]
        yield rows(items[: len(items) // 2])
        opened += 1
        if opened == 2:
            both_open.set()
        await both_open.wait()
        yield rows(items[len(items) // 2 :])

    a, b = await asyncio.gather(
        clients.admin.ImportForbiddenNumbers(messages(range(0, 3000), "a")),
        clients.admin.ImportForbiddenNumbers(messages(range(2000, 5000), "b")),
    )
    assert a.state == b.state == pb.IMPORT_JOB_STATE_SUCCEEDED
    assert a.created_count + b.created_count == 5000
    assert a.updated_count + b.updated_count == 1000  # the 1000 numbers both imported
    exported = await export(clients)
    assert len(exported) == 5000
    notes = {e.number: e.note for e in exported}
    assert {notes[e164(n)] for n in range(0, 2000)} == {"a"}
    assert {notes[e164(n)] for n in range(3000, 5000)} == {"b"}
    assert len({notes[e164(n)] for n in range(2000, 3000)}) == 1  # whichever committed last, wholly


async def test_jobs_newest_first_with_paging(clients: Clients) -> None:
    ids = []
    for k in range(5):
        job = await import_all(clients, [header(source=f"file{k}.csv"), rows([row(2, e164(k)), row(3, "nope")])])
        ids.append(job.id)
    await import_all(clients, [header(tenant="other"), rows([row(2, e164(1))])])

    seen: list[pb.ImportJob] = []
    token = ""
    pages = 0
    while True:
        page = await clients.admin.ListImportJobs(
            pb.ListImportJobsRequest(tenant_id=TENANT, page_size=2, page_token=token)
        )
        seen.extend(page.import_jobs)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert [j.id for j in seen] == ids[::-1]
    assert [j.source_name for j in seen] == [f"file{k}.csv" for k in range(4, -1, -1)]
    assert all(j.failed_count == 1 and [e.line for e in j.errors] == [3] for j in seen)
    assert seen[0] == await get_job(clients, ids[-1])

    for tenant, job_id in ((TENANT, "00000000-0000-0000-0000-000000000000"), (TENANT, "not-an-id"), ("other", ids[0])):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await get_job(clients, job_id, tenant)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.admin.ListImportJobs(pb.ListImportJobsRequest(tenant_id="other", page_token=token or "x"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _ts(text: str) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(datetime.fromisoformat(text).astimezone(UTC))
    return ts


async def test_export_returns_exactly_what_was_imported(clients: Clients) -> None:
    items = []
    for i in range(2500):
        kind = pb.MATCH_KIND_PREFIX if i % 5 == 0 else pb.MATCH_KIND_EXACT
        number = f"+86{1380000 + i}" if kind == pb.MATCH_KIND_PREFIX else f"+86 138 {i:04d} 8000"
        fields: dict[str, object] = {"match_kind": kind, "note": f"n{i}"}
        if i % 3 == 0:
            fields["enabled"] = False
        if i % 7 == 0:
            fields["expire_time"] = _ts("2030-01-02T03:04:05.123456+00:00")
        items.append(
            row(
                i + 2,
                number,
                call_type=(pb.CALL_TYPE_INBOUND, pb.CALL_TYPE_OUTBOUND, pb.CALL_TYPE_BOTH)[i % 3],
                **fields,
            )
        )
    job = await import_all(clients, [header(), *batched(items, 1000)])
    assert job.created_count == 2500

    def key(r: pb.ImportRow) -> tuple[str, int, int, bool, str, str]:
        number = r.number.replace(" ", "")
        expire = r.expire_time.ToJsonString() if r.HasField("expire_time") else ""
        return number, r.match_kind, r.call_type, r.enabled if r.HasField("enabled") else True, r.note, expire

    def exported_key(e: pb.ForbiddenNumber) -> tuple[str, int, int, bool, str, str]:
        expire = e.expire_time.ToJsonString() if e.HasField("expire_time") else ""
        return e.number, e.match_kind, e.call_type, e.enabled, e.note, expire

    everything = await export(clients)
    assert sorted(key(r) for r in items) == sorted(exported_key(e) for e in everything)
    assert [(e.number, e.match_kind) for e in everything] == sorted((e.number, e.match_kind) for e in everything)
    assert all(e.tenant_id == TENANT and e.id and e.etag for e in everything)

    def expected(predicate: object) -> list[tuple[str, int, int, bool, str, str]]:
        return sorted(k for k in map(key, items) if predicate(k))  # type: ignore[operator]

    async def got(**filters: object) -> list[tuple[str, int, int, bool, str, str]]:
        return sorted(exported_key(e) for e in await export(clients, **filters))

    assert await got(enabled=False) == expected(lambda k: k[3] is False)
    assert await got(call_type=pb.CALL_TYPE_OUTBOUND) == expected(lambda k: k[2] == pb.CALL_TYPE_OUTBOUND)
    assert await got(match_kind=pb.MATCH_KIND_PREFIX) == expected(lambda k: k[1] == pb.MATCH_KIND_PREFIX)
    assert await got(number_prefix="+86138001") == expected(lambda k: k[0].startswith("+86138001"))
    assert await export(clients, tenant="other") == []


async def test_import_reaches_every_replica_with_one_notification(
    start_server: StartServer, connect: object, dsn: str
) -> None:
    a = connect(await start_server())  # type: ignore[operator]
    b = connect(await start_server())  # type: ignore[operator]
    notifications: list[str] = []
    listener = await asyncpg.connect(dsn)
    await listener.add_listener("screening_changes", lambda *args: notifications.append(args[-1]))
    try:
        items = [row(i + 2, e164(i), call_type=pb.CALL_TYPE_INBOUND) for i in range(5000)]
        job = await import_all(a, [header(), *batched(items, 1000)])
        assert job.created_count == 5000

        async def answered() -> bool:
            for n in (e164(0), e164(2500), e164(4999)):
                r = await b.screening.ScreenCall(
                    pb.ScreenCallRequest(tenant_id=TENANT, number=n, direction=pb.DIRECTION_INBOUND)
                )
                if r.verdict != pb.VERDICT_BLOCK:
                    return False
            return True

        await wait_until(answered, within=1)
        await asyncio.sleep(0.3)
        assert len(notifications) == 1
    finally:
        await listener.close()

    audit = await a.admin.ListAuditEvents(pb.ListAuditEventsRequest(tenant_id=TENANT, action="import"))
    assert [(e.action, e.resource_id) for e in audit.audit_events] == [("import", job.id)]


async def test_a_replica_runs_at_most_four_imports_at_once(clients: Clients) -> None:
    events = [asyncio.Event() for _ in range(4)]
    calls = [
        clients.admin.ImportForbiddenNumbers(_stalled([header(source=f"s{k}"), rows([row(2, e164(k))])], events[k]))
        for k in range(4)
    ]
    for event in events:
        await event.wait()

    async def four_running() -> bool:
        return [j.state for j in await list_jobs(clients)] == [pb.IMPORT_JOB_STATE_RUNNING] * 4

    await wait_until(four_running, within=5)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await import_all(clients, [header(source="fifth"), rows([row(2, e164(9))])])
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "retry later" in (caught.value.details() or "")
    for call in calls:
        call.cancel()

    async def all_failed() -> bool:
        states = [j.state for j in await list_jobs(clients)]
        return states == [pb.IMPORT_JOB_STATE_FAILED] * 4

    await wait_until(all_failed, within=5)  # the fifth was refused before it had a job
    done: list[pb.ImportJob] = []

    async def imported() -> bool:
        # A slot frees a moment after its job reads FAILED.
        try:
            done.append(await import_all(clients, [header(source="after"), rows([row(2, e164(9))])]))
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
        return bool(done)

    await wait_until(imported, within=5, interval=0.05)
    assert done[0].state == pb.IMPORT_JOB_STATE_SUCCEEDED
    assert [(e.number) for e in await export(clients)] == [e164(9)]


async def test_a_template_file_imported_end_to_end(clients: Clients) -> None:
    data = csv_bytes() + b"+1 415 555 0199,both,,,From the help desk,,allow\n12ab,inbound,,,,,\n"
    messages = [
        Request(header=pb.ImportHeader(tenant_id=TENANT, source_name="template.csv", file_format=pb.FILE_FORMAT_CSV)),
        *(Request(file_chunk=data[i : i + 50]) for i in range(0, len(data), 50)),
    ]
    job = await import_all(clients, messages)
    assert counts(job) == (6, 5, 0, 0, 0, 0, 1)
    assert [(e.line, e.number, e.column) for e in job.errors] == [(7, "12ab", "number")]
    assert job.columns == ["number", "call_type", "match_kind", "enabled", "note", "expire_time", "action"]
    exported = {(e.number, e.match_kind, e.call_type, e.enabled, e.action) for e in await export(clients)}
    assert exported == {
        ("+14155550100", pb.MATCH_KIND_EXACT, pb.CALL_TYPE_BOTH, True, pb.ACTION_BLOCK),
        ("+1900", pb.MATCH_KIND_PREFIX, pb.CALL_TYPE_OUTBOUND, True, pb.ACTION_BLOCK),
        ("+1900555", pb.MATCH_KIND_PREFIX, pb.CALL_TYPE_OUTBOUND, True, pb.ACTION_ALLOW),
        ("+8613800138000", pb.MATCH_KIND_EXACT, pb.CALL_TYPE_INBOUND, False, pb.ACTION_BLOCK),
        ("+14155550199", pb.MATCH_KIND_EXACT, pb.CALL_TYPE_BOTH, True, pb.ACTION_ALLOW),
    }

"""Bulk import: a file (CSV or xlsx) or a stream of rows, applied in one transaction, recorded as a job.

Two forms arrive the same way, a header first. A file's bytes are kept
(in memory, on disk beyond a few MiB) until the stream ends normally, then
read here, so that every client gets the same reading of every cell. Rows
sent by a program are checked as they arrive. Either way the lines are
checked in bounded chunks with the event loop free between them (ScreenCall
shares the loop), the valid ones are COPYed into a staging table (a batch of
new entries is written at once, so PostgreSQL writes while the next lines are
read), and when all is read the rest are applied with set-based statements
and committed together with the job's result and each entry's history.

Every bad line is kept with the job, with its cells as read, the column and
the reason, even when the import fails. Every job ends: whatever stops an
import (the client cancels, the deadline passes, the file is not a
template, a limit is passed, the database goes away, the server shuts
down) rolls it back and leaves the job FAILED with that reason.

Counts add up: every line received is exactly one of created, updated,
unchanged (identical to the stored entry: nothing written), skipped (INSERT_ONLY
mode, the entry exists), superseded (a later line for the same number and
match kind won) or failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import islice
from typing import IO, NamedTuple

from screening.domain import validation as check
from screening.domain.errors import ImportFailed, InvalidArgument, ResourceExhausted
from screening.domain.fields import COLUMNS
from screening.domain.model import Action, Actor, CallType, FileFormat, ImportJob, ImportMode, MatchKind
from screening.domain.numbers import normalize
from screening.domain.paging import scope
from screening.domain.times import TimeError, zone
from screening.files import sheet
from screening.files.cells import CellError, Reader, Values
from screening.files.writing import content_type, csv_chunks, xlsx_bytes
from screening.usecases.pages import Pages
from screening.usecases.records import job_of, translated, who
from storage.errors import RETRYABLE, UNREACHABLE
from storage.import_jobs import ImportJobStore, ImportTransaction, Outcome, StagedRow
from storage.rows import FAILED, JobLine

log = logging.getLogger(__name__)

MAX_ROWS_PER_MESSAGE = 10_000
# Imports one replica runs at once (each holds a connection of the import pool).
MAX_CONCURRENT_IMPORTS = 4
DEFAULT_MAX_ROWS = 10_000_000
DEFAULT_MAX_BYTES = 1024**3
MAX_SOURCE_NAME = 1000
# A hostile line's number is kept only this long with its error.
MAX_NUMBER_IN_ERROR = 100
# Lines checked between two turns of the event loop: a few milliseconds.
CHUNK_ROWS = 2000
# Valid lines go to the staging table in COPYs of about this many (one in flight while the next are checked).
COPY_ROWS = 20_000
# Bad lines are written to the job in batches of this many.
KEEP_BATCH = 1000
PROGRESS_INTERVAL = 0.5
HEARTBEAT_INTERVAL = 5.0
# A file stays in memory up to this size, then goes to a temporary file.
SPOOL_IN_MEMORY = 32 * 1024 * 1024
# Lines of each kind a job page carries in all (a ListImportJobs response stays a few MB).
MAX_LINES_PER_PAGE = 5000
# How long a job whose end cannot be written (the database is away) keeps being retried.
FAIL_RETRY_FOR = 60.0

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST_US = int((datetime(9999, 12, 31, tzinfo=UTC) - _EPOCH).total_seconds()) * 1_000_000
# Unspecified means EXACT.
_KINDS = {0: MatchKind.EXACT, **{int(k): k for k in MatchKind}}
_CALL_TYPES = {int(c): c for c in CallType}
_ACTIONS = {0: Action.BLOCK, **{int(a): a for a in Action}}
_FORMATS = {int(f): f for f in FileFormat}
_WORD = {MatchKind.EXACT: "exact", MatchKind.PREFIX: "prefix"}

# Why a cancelled import stopped, as the caller's side tells it.
CANCELLED, DEADLINE, SHUTDOWN = "cancelled", "deadline", "shutdown"
_STOPPED = {
    CANCELLED: "the client cancelled the import before it ended; nothing was imported",
    DEADLINE: "the import passed its deadline before it ended; nothing was imported",
    SHUTDOWN: "the server shut down before the import ended; nothing was imported",
}


class ImportRow(NamedTuple):
    """One row as a program sent it; enum fields are raw API values."""

    line: int  # 0: not given; the row's position in the stream stands in
    number: str
    call_type: int
    match_kind: int
    enabled: bool | None
    note: str
    expire_us: int | None  # microseconds since the epoch; None: never
    action: int = 0  # 0: BLOCK


@dataclass(frozen=True, slots=True)
class ImportHeader:
    tenant_id: str
    mode: int
    source_name: str
    file_format: int = 0  # 0: rows follow; else the file's bytes
    file_size: int = 0
    time_zone: str = ""


@dataclass(frozen=True, slots=True)
class RowBatch:
    """One message's rows: their count up front, the rows converted lazily."""

    size: int
    rows: Iterable[ImportRow]


@dataclass(frozen=True, slots=True)
class FileChunk:
    data: bytes


# One message of the stream; None is a message that carries nothing.
ImportMessage = ImportHeader | RowBatch | FileChunk | None


@dataclass(frozen=True, slots=True)
class FailedRowsFile:
    file_name: str
    content_type: str
    chunks: AsyncIterator[bytes]


@dataclass
class _Run:
    """The counters of one import while it runs."""

    received: int = 0
    staged: int = 0
    failed: int = 0
    bytes_received: int = 0
    pending: list[JobLine] = field(default_factory=list)
    # The region that reads this tenant's national numbers.
    region: str | None = None

    def reject(self, line: int, number: str, cells: list[str], reason: str, column: str = "") -> None:
        self.failed += 1
        self.pending.append(JobLine(FAILED, line, number[:MAX_NUMBER_IN_ERROR], cells, reason, column))


# A line to check: where it is, its number as written and its cells (for the job), its values or why not.
# A plain tuple: a million of them are made for a big file.
_Line = tuple[int, str, list[str], Values | None, CellError | None]


def _row_cells(row: ImportRow) -> list[str]:
    """A program's row as the template's cells, for the failed-rows file."""
    call_type = _CALL_TYPES.get(row.call_type)
    kind = _KINDS.get(row.match_kind)
    expire = "" if row.expire_us is None else f"{row.expire_us // 1_000_000}s after 1970"
    action = _ACTIONS.get(row.action)
    values = {
        "number": row.number,
        "call_type": call_type.name.lower() if call_type else str(row.call_type),
        "match_kind": _WORD[kind] if kind else str(row.match_kind),
        "enabled": "" if row.enabled is None else str(row.enabled).lower(),
        "note": row.note,
        "expire_time": expire,
        "action": action.name.lower() if action else str(row.action),
    }
    return [values[c] for c in COLUMNS]


class Imports:
    def __init__(
        self,
        store: ImportJobStore,
        region: str | None,
        pages: Pages,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        progress_interval: float = PROGRESS_INTERVAL,
        region_of: Callable[[str], str | None] | None = None,
    ) -> None:
        self._store = store
        # The region that reads a tenant's national numbers: its own setting, else the server's.
        self._region_of: Callable[[str], str | None] = (lambda _tenant: region) if region_of is None else region_of
        self._pages = pages
        self._max_rows = max_rows
        self._max_bytes = max_bytes
        self._progress_interval = progress_interval
        self._running = 0
        # Set when the server starts shutting down: a cancelled import then says so.
        self.stopping = False
        self._retries: set[asyncio.Task[None]] = set()
        # Set while no import runs.
        self._idle = asyncio.Event()
        self._idle.set()
        # Failed imports whose end is being written.
        self._ending: set[asyncio.Future[None]] = set()

    async def run(
        self,
        actor: Actor,
        messages: AsyncIterator[ImportMessage],
        why_cancelled: Callable[[], str] = lambda: CANCELLED,
        started: Callable[[str], Awaitable[None]] | None = None,
    ) -> ImportJob:
        """Import one stream: a header, then row batches or file chunks. Returns the finished job.

        `started` hears the job's id as soon as the job exists (a client can follow it while it runs).
        """
        first = await anext(messages, None)
        if not isinstance(first, ImportHeader):
            raise InvalidArgument(
                "header",
                None,
                "the first message must be the header {tenant_id, mode, source_name}; nothing was imported",
            )
        tenant = check.tenant_id(first.tenant_id, "header.tenant_id")
        mode = check.import_mode(first.mode, "header.mode")
        source = first.source_name
        if len(source) > MAX_SOURCE_NAME or "\x00" in source:
            raise InvalidArgument(
                "header.source_name", source, f"must be at most {MAX_SOURCE_NAME} characters, without NUL"
            )
        file_format = _FORMATS.get(first.file_format) if first.file_format else None
        if first.file_format and file_format is None:
            raise InvalidArgument(
                "header.file_format", first.file_format, "is not a known format; FILE_FORMAT_CSV or FILE_FORMAT_XLSX"
            )
        if first.file_size < 0:
            raise InvalidArgument("header.file_size", first.file_size, "must not be negative")
        try:
            in_zone = zone(first.time_zone)
        except TimeError as exc:
            raise InvalidArgument("header.time_zone", first.time_zone, str(exc)) from None
        if self._running >= MAX_CONCURRENT_IMPORTS:
            raise ResourceExhausted(
                f"{self._running} imports are running on this server, the most it runs at once; retry later"
            )
        self._running += 1
        self._idle.clear()
        try:
            return await self._run(actor, messages, first, tenant, mode, file_format, in_zone, why_cancelled, started)
        finally:
            self._running -= 1
            if not self._running:
                self._idle.set()

    async def _run(
        self,
        actor: Actor,
        messages: AsyncIterator[ImportMessage],
        header: ImportHeader,
        tenant: str,
        mode: ImportMode,
        file_format: FileFormat | None,
        in_zone: tzinfo,
        why_cancelled: Callable[[], str],
        started: Callable[[str], Awaitable[None]] | None,
    ) -> ImportJob:
        job = await self._store.create(
            who(actor), tenant, int(mode), header.source_name, int(file_format or 0), header.file_size
        )
        if started is not None:
            await started(job.id)
        run = _Run(region=self._region_of(tenant))
        stop = asyncio.Event()
        reporter = asyncio.create_task(self._report(job.id, run, stop), name=f"import {job.id} progress")
        clock = asyncio.get_running_loop().time
        began = clock()
        try:
            async with self._store.transaction(who(actor), tenant, job.id) as tx:
                if file_format is None:
                    async for message in messages:
                        first = run.received + 1
                        batch = self._batch(message, run)
                        await self._stage(tx, run, job.id, self._row_lines(batch, first))
                else:
                    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
                        async for message in messages:
                            self._receive(message, spool, run)
                        spool.seek(0)
                        await self._stage_file(tx, run, job.id, spool, file_format, in_zone, header.source_name)
                await self._keep(job.id, run)
                streamed = clock()
                applied = await tx.apply(who(actor), tenant, job.id, mode is ImportMode.UPSERT, run.staged)
                outcome = self._outcome(run, mode, applied.entries, applied.created, applied.updated)
                await tx.succeed(who(actor), tenant, job.id, outcome, run.bytes_received)
            stop.set()
            await reporter
            finished = await self.get(tenant, job.id)
            log.info(
                "import %s into %s: %d rows, %d created, %d updated, %d unchanged, %d skipped, %d superseded,"
                " %d failed; read in %.2fs, applied and committed in %.2fs",
                job.id,
                tenant,
                finished.total_rows,
                finished.created_count,
                finished.updated_count,
                finished.unchanged_count,
                finished.skipped_count,
                finished.superseded_count,
                finished.failed_count,
                streamed - began,
                clock() - streamed,
            )
            return finished
        except BaseException as exc:
            stop.set()
            reason = self._reason(exc, why_cancelled)
            # Shielded: the job must say FAILED even when the call is cancelled again; close() waits for it.
            ending = asyncio.ensure_future(self._fail(job.id, run, reporter, reason))
            self._ending.add(ending)
            ending.add_done_callback(self._ending.discard)
            await asyncio.shield(ending)
            if isinstance(exc, InvalidArgument):
                raise ImportFailed(
                    exc.field, exc.value, f"{exc.reason}; import job {job.id} FAILED, nothing was imported", job.id
                ) from exc
            if _was_cancelled(exc) and not isinstance(exc, asyncio.CancelledError):
                # The rollback of a cancelled import fails on its closed connection: the call was
                # still cancelled, and must end so (not UNAVAILABLE, which means the database).
                raise asyncio.CancelledError from exc
            raise

    def _reason(self, exc: BaseException, why_cancelled: Callable[[], str]) -> str:
        if _was_cancelled(exc):
            return _STOPPED[SHUTDOWN if self.stopping else why_cancelled()]
        if isinstance(exc, InvalidArgument):
            return f"{exc.message}; nothing was imported"
        if isinstance(exc, UNREACHABLE):
            return f"the database became unreachable ({type(exc).__name__}); nothing was imported"
        log.error("import failed unexpectedly", exc_info=exc)
        return f"internal error ({type(exc).__name__}); nothing was imported"

    @staticmethod
    def _outcome(run: _Run, mode: ImportMode, entries: int, created: int, updated: int) -> Outcome:
        upsert = mode is ImportMode.UPSERT
        return Outcome(
            total_rows=run.received,
            created=created,
            updated=updated,
            unchanged=entries - created - updated if upsert else 0,
            skipped=0 if upsert else entries - created,
            superseded=run.staged - entries,
            failed=run.failed,
        )

    # ------------------------------------------------------------ the stream

    def _batch(self, message: ImportMessage, run: _Run) -> RowBatch:
        if isinstance(message, ImportHeader):
            raise InvalidArgument("header", message.tenant_id, "only the first message of an import may be a header")
        if isinstance(message, FileChunk):
            raise InvalidArgument("file_chunk", f"{len(message.data)} bytes", "the header named no file_format")
        if message is None:
            raise InvalidArgument("payload", None, "each message after the header must carry rows")
        if message.size > MAX_ROWS_PER_MESSAGE:
            raise InvalidArgument("rows.rows", f"{message.size} rows", f"at most {MAX_ROWS_PER_MESSAGE} a message")
        self._count(run, message.size)
        run.received += message.size
        return message

    def _count(self, run: _Run, more: int) -> None:
        """Refuses rows past --max-import-rows."""
        if run.received + more > self._max_rows:
            raise InvalidArgument(
                "rows",
                f"{run.received + more} rows",
                f"an import holds at most {self._max_rows} rows (the server's --max-import-rows)",
            )

    def _receive(self, message: ImportMessage, spool: IO[bytes], run: _Run) -> None:
        if isinstance(message, ImportHeader):
            raise InvalidArgument("header", message.tenant_id, "only the first message of an import may be a header")
        if isinstance(message, RowBatch):
            raise InvalidArgument("rows", f"{message.size} rows", "the header named a file: send file_chunk messages")
        if message is None:
            raise InvalidArgument("payload", None, "each message after the header must carry a file_chunk")
        run.bytes_received += len(message.data)
        if run.bytes_received > self._max_bytes:
            raise InvalidArgument(
                "file_chunk",
                f"{run.bytes_received} bytes",
                f"a file holds at most {self._max_bytes} bytes (the server's --max-import-bytes)",
            )
        spool.write(message.data)

    def _row_lines(self, batch: RowBatch, first: int) -> Iterator[_Line]:
        """A program's rows; a row without a line is numbered by its place in the stream."""
        for ordinal, row in enumerate(batch.rows, start=first):
            line = row.line or ordinal
            try:
                values = self._row_values(row)
            except CellError as exc:
                yield (line, row.number, _row_cells(row), None, exc)
                continue
            yield (line, row.number, [], values, None)

    @staticmethod
    def _row_values(row: ImportRow) -> Values:
        kind = _KINDS.get(row.match_kind)
        if kind is None:
            raise CellError(
                "match_kind", f"{row.match_kind}: not a known match kind; one of MATCH_KIND_EXACT, MATCH_KIND_PREFIX"
            )
        call_type = _CALL_TYPES.get(row.call_type)
        if call_type is None:
            what = "0: is required" if row.call_type == 0 else f"{row.call_type}: not a known call type"
            raise CellError("call_type", f"{what}; one of CALL_TYPE_INBOUND, CALL_TYPE_OUTBOUND, CALL_TYPE_BOTH")
        expire = None
        if row.expire_us is not None:
            if not 0 <= row.expire_us <= _LATEST_US:
                raise CellError(
                    "expire_time", f"{row.expire_us // 1_000_000}s after 1970: must be between 1970 and 9999"
                )
            expire = _EPOCH + timedelta(microseconds=row.expire_us)
        action = _ACTIONS.get(row.action)
        if action is None:
            raise CellError("action", f"{row.action}: not a known action; one of ACTION_BLOCK, ACTION_ALLOW")
        return Values(row.number, call_type, kind, row.enabled, row.note, expire, action)

    async def _stage_file(
        self,
        tx: ImportTransaction,
        run: _Run,
        job_id: str,
        spool: IO[bytes],
        file_format: FileFormat,
        in_zone: tzinfo,
        source_name: str,
    ) -> None:
        declared = sheet.XLSX if file_format is FileFormat.XLSX else sheet.CSV
        try:
            # Reading a workbook is one step (a zip archive); off the event loop.
            if file_format is FileFormat.XLSX or spool.read(4) == sheet.XLSX_MAGIC:
                spool.seek(0)
                table = await asyncio.to_thread(sheet.read, spool, declared)
            else:
                spool.seek(0)
                table = sheet.read(spool, declared)
            await self._store.started(job_id, table.columns, table.delimiter)
            reader = Reader(table.columns, in_zone)
            await self._stage(tx, run, job_id, self._file_lines(table.lines, reader, run))
        except sheet.FileFault as exc:
            raise InvalidArgument("file", source_name, f"line {exc.line}: {exc.reason}") from None

    def _file_lines(self, lines: Iterator[sheet.Line], reader: Reader, run: _Run) -> Iterator[_Line]:
        values = reader.values
        limit = self._max_rows
        for line in lines:
            run.received += 1
            if run.received > limit:
                self._count(run, 0)
            try:
                yield (line.number, "", line.cells, values(line), None)
            except CellError as exc:
                yield (line.number, reader.number_of(line.cells), line.cells, None, exc)

    async def _stage(self, tx: ImportTransaction, run: _Run, job_id: str, lines: Iterator[_Line]) -> None:
        """Check the lines a chunk at a time; COPY the valid ones in bigger batches while the next are checked."""
        now = datetime.now(UTC)
        batch: list[StagedRow] = []
        copying: asyncio.Task[None] | None = None
        try:
            while chunk := list(islice(lines, CHUNK_ROWS)):
                batch += self._check(chunk, run, now)
                if len(batch) >= COPY_ROWS:
                    if copying is not None:
                        await copying
                    copying = asyncio.ensure_future(tx.stage(batch))
                    batch = []
                await asyncio.sleep(0)  # a chunk's checks are a few ms: calls are answered between them
                if len(run.pending) >= KEEP_BATCH:
                    await self._keep(job_id, run)
            if copying is not None:
                await copying
                copying = None
            if batch:
                await tx.stage(batch)
        finally:
            if copying is not None and not copying.done():
                copying.cancel()
                with contextlib.suppress(BaseException):
                    await copying

    def _check(self, chunk: list[_Line], run: _Run, now: datetime) -> list[StagedRow]:
        """The valid lines in staging form; the bad ones go to `run`. Hot: ~1M calls a big import."""
        region = run.region
        staged: list[StagedRow] = []
        append = staged.append
        ordinal = run.staged
        for line, written, cells, values, error in chunk:
            if values is None:
                assert error is not None
                run.reject(line, written, cells, str(error), error.column)
                continue
            try:
                kind = values.match_kind
                number = normalize(values.number, field="number", region=region, prefix=kind is MatchKind.PREFIX)
                note = values.note
                if note:
                    check.note(note, "note")
                expire = values.expire_time
                if expire is not None:
                    check.expire_time(expire, "expire_time")
                    if expire <= now:
                        raise InvalidArgument("expire_time", expire.isoformat(), "is in the past")
            except InvalidArgument as exc:
                run.reject(line, values.number, cells or _value_cells(values), _short(exc.message), exc.field)
                continue
            ordinal += 1
            append(
                (
                    ordinal,
                    line,
                    number,
                    int(kind),
                    int(values.call_type),
                    values.enabled is not False,
                    note,
                    expire,
                    int(values.action),
                )
            )
        run.staged = ordinal
        return staged

    async def _keep(self, job_id: str, run: _Run) -> None:
        if run.pending:
            lines, run.pending = run.pending, []
            await self._store.keep_lines(job_id, lines)

    # -------------------------------------------------------------- the job

    async def _report(self, job_id: str, run: _Run, stop: asyncio.Event) -> None:
        """Write the job's progress while it runs; the write is also its heartbeat."""
        loop = asyncio.get_running_loop()
        reported = (0, 0, 0)
        last = loop.time()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._progress_interval):
                    await stop.wait()
            if stop.is_set():
                return
            now = (run.received, run.failed, run.bytes_received)
            if now == reported and loop.time() - last < HEARTBEAT_INTERVAL:
                continue
            try:
                await self._store.progress(job_id, *now)
                reported, last = now, loop.time()
            except RETRYABLE as exc:
                log.warning("import %s: cannot record progress: %s: %s", job_id, type(exc).__name__, exc)

    async def _fail(self, job_id: str, run: _Run, reporter: asyncio.Task[None], reason: str) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        log.warning("import %s failed: %s", job_id, reason)
        try:
            await self._end_failed(job_id, run, reason)
        except RETRYABLE as exc:
            log.error("import %s: cannot mark it FAILED yet (%s: %s); retrying", job_id, type(exc).__name__, exc)
            task = asyncio.create_task(self._retry_fail(job_id, run, reason), name=f"import {job_id} fail")
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)

    async def _end_failed(self, job_id: str, run: _Run, reason: str) -> None:
        await self._keep(job_id, run)
        await self._store.fail(job_id, run.received, run.failed, run.bytes_received, reason)

    async def _retry_fail(self, job_id: str, run: _Run, reason: str) -> None:
        """The database was away when the import failed: write its end once it is back."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + FAIL_RETRY_FOR
        delay = 0.5
        while loop.time() < give_up:
            await asyncio.sleep(delay)
            try:
                await self._end_failed(job_id, run, reason)
                log.info("import %s marked FAILED after the database came back", job_id)
                return
            except RETRYABLE:
                delay = min(delay * 2, 5.0)
        log.error("import %s: gave up marking it FAILED; readers will see it abandoned", job_id)

    async def close(self, wait: float = 5.0) -> None:
        """Let cancelled imports write their end (for `wait` seconds at most), then stop retrying."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + wait
        # A handler the server has just cancelled runs its ending only on its next turn.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._idle.wait()
        if self._ending:
            await asyncio.wait(list(self._ending), timeout=max(give_up - loop.time(), 0.1))
        for task in list(self._retries):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------ the reads

    async def get(self, tenant_id: str, job_id: str) -> ImportJob:
        tenant, job_id = check.tenant_id(tenant_id), check.required_id(job_id)
        with translated():
            return job_of(await self._store.get(tenant, job_id))

    async def list_jobs(self, tenant_id: str, page_size: int, page_token: str) -> tuple[list[ImportJob], str]:
        """Newest first."""
        tenant = check.tenant_id(tenant_id)
        size = check.page_size(page_size)
        query = scope(tenant, "import_jobs")
        tokens = await self._pages.tokens()
        before = tokens.decode(page_token, query, (int,))[0] if page_token else None
        # Each job on a page carries its first lines, fewer when the page holds many jobs.
        per_job = max(10, min(1000, MAX_LINES_PER_PAGE // size))
        page = await self._store.page(tenant, size, before, per_job)
        return [job_of(job) for job in page.jobs], tokens.encode(query, [page.last_seq]) if page.more else ""

    async def failed_rows(self, tenant_id: str, job_id: str) -> FailedRowsFile:
        """Every bad line of a job with its reason, in the format of the file it came in (rows: CSV),
        a CSV with the separator of the file (so that the spreadsheet that wrote it reads it back)."""
        job = await self.get(tenant_id, job_id)
        file_format = sheet.XLSX if job.file_format is FileFormat.XLSX else sheet.CSV
        header = [*(job.columns or COLUMNS), "reason"]
        stem = (job.source_name.rsplit(".", 1)[0] or "import").replace("/", "_")[:100] or "import"

        async def batches() -> AsyncIterator[list[list[str]]]:
            with translated():
                async for lines in self._store.lines(job.tenant_id, job.id, FAILED):
                    yield [[*line.cells, line.reason] if line.cells else [line.number, line.reason] for line in lines]

        async def chunks() -> AsyncIterator[bytes]:
            if file_format == sheet.XLSX:
                # A workbook is one zip archive: written whole, off the event loop.
                collected = [row async for batch in batches() for row in batch]
                yield await asyncio.to_thread(xlsx_bytes, header, collected, "failed rows")
                return
            delimiter = job.delimiter or ","
            yield next(csv_chunks(header, [], delimiter=delimiter))
            async for batch in batches():
                for chunk in csv_chunks([], batch, bom=False, delimiter=delimiter):
                    yield chunk

        return FailedRowsFile(f"{stem}-failed-rows.{file_format}", content_type(file_format), chunks())


def _value_cells(values: Values) -> list[str]:
    expire = "" if values.expire_time is None else values.expire_time.isoformat()
    enabled = "" if values.enabled is None else str(values.enabled).lower()
    cells = {
        "number": values.number,
        "call_type": values.call_type.name.lower(),
        "match_kind": _WORD[values.match_kind],
        "enabled": enabled,
        "note": values.note,
        "expire_time": expire,
        "action": values.action.name.lower(),
    }
    return [cells[c] for c in COLUMNS]


def _short(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[:limit] + f"... ({len(message)} characters)"


def _was_cancelled(exc: BaseException) -> bool:
    # A rollback that fails after a cancellation hides it in __context__.
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, asyncio.CancelledError):
            return True
        seen = seen.__context__
    return False

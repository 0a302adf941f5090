"""Bulk import: a stream of rows applied in one transaction, recorded as a job.

Rows are checked as they arrive, in bounded chunks with the event loop
free between them (ScreenCall shares the loop), and the valid ones are
COPYed into a staging table; when the stream ends normally they are applied
with one set-based statement and committed together with the job's result.
Bad rows are counted and the first MAX_KEPT_ERRORS kept with their line, the
number as given and the reason. Anything else (a broken-off, cancelled or
late stream, a limit passed) rolls the import back and leaves the job
FAILED with the reason; the job itself always persists.

Counts: every row received is exactly one of created, updated, skipped or
failed. A row superseded by a later row for the same number and match kind
(the later one wins) counts as skipped, as does, in INSERT_ONLY mode, a row
whose entry already exists. In UPSERT mode a row for an existing entry
counts as updated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import NamedTuple

from screening.domain import validation as check
from screening.domain.errors import InvalidArgument, ResourceExhausted
from screening.domain.model import Actor, CallType, ImportJob, ImportMode, MatchKind
from screening.domain.numbers import normalize
from screening.domain.paging import decode_token, encode_token, scope
from screening.usecases.records import job_of, translated, who
from storage.errors import RETRYABLE
from storage.import_jobs import Applied, ImportJobStore, ImportTransaction, Outcome, StagedRow
from storage.rows import RowErrorRow

log = logging.getLogger(__name__)

MAX_ROWS_PER_MESSAGE = 10_000
# Imports one replica runs at once (each holds a connection of the import pool).
MAX_CONCURRENT_IMPORTS = 4
DEFAULT_MAX_ROWS = 10_000_000
MAX_KEPT_ERRORS = 1000
MAX_SOURCE_NAME = 1000
# A hostile row's number is kept only this long in its error.
MAX_NUMBER_IN_ERROR = 100
# Rows checked between two turns of the event loop: a few milliseconds.
CHUNK_ROWS = 2000
PROGRESS_INTERVAL = 0.5
HEARTBEAT_INTERVAL = 5.0
# Row errors a ListImportJobs page carries at most (a few MB of response).
MAX_ERRORS_PER_PAGE = 5 * MAX_KEPT_ERRORS

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST_US = int((datetime(9999, 12, 31, tzinfo=UTC) - _EPOCH).total_seconds()) * 1_000_000
# Unspecified means EXACT.
_KINDS = {0: int(MatchKind.EXACT), **{int(k): int(k) for k in MatchKind}}
_CALL_TYPES = frozenset(int(c) for c in CallType)
_PREFIX = int(MatchKind.PREFIX)
_CANCELLED = "the import stream was cancelled or passed its deadline before it ended; nothing was imported"


class ImportRow(NamedTuple):
    """One row as the client sent it; enum fields are raw API values."""

    line: int  # 0: not given; the row's position in the stream stands in
    number: str
    call_type: int
    match_kind: int
    enabled: bool | None
    note: str
    expire_us: int | None  # microseconds since the epoch; None: never


@dataclass(frozen=True, slots=True)
class ImportHeader:
    tenant_id: str
    mode: int
    source_name: str


@dataclass(frozen=True, slots=True)
class RowBatch:
    """One message's rows: their count up front, the rows converted lazily."""

    size: int
    rows: Iterable[ImportRow]


# One message of the stream; None is a message that carries neither.
ImportMessage = ImportHeader | RowBatch | None


@dataclass
class _Run:
    """The counters of one import while it runs."""

    received: int = 0
    valid: int = 0
    failed: int = 0
    errors: list[RowErrorRow] = field(default_factory=list)

    def reject(self, line: int, number: str, reason: str) -> None:
        self.failed += 1
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append(RowErrorRow(line, number[:MAX_NUMBER_IN_ERROR], reason))

    def sorted_errors(self) -> list[RowErrorRow]:
        return sorted(self.errors, key=lambda e: e.line)

    def outcome(self, mode: ImportMode, applied: Applied) -> Outcome:
        if mode is ImportMode.UPSERT:
            updated = applied.entries - applied.created
            skipped = self.valid - applied.entries
        else:
            updated = 0
            skipped = self.valid - applied.created
        return Outcome(
            total_rows=self.received,
            created=applied.created,
            updated=updated,
            skipped=skipped,
            failed=self.failed,
            errors=self.sorted_errors(),
        )


def _was_cancelled(exc: BaseException) -> bool:
    # A rollback that fails after a cancellation hides it in __context__.
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, asyncio.CancelledError):
            return True
        seen = seen.__context__
    return False


class Imports:
    def __init__(
        self,
        store: ImportJobStore,
        region: str | None,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        progress_interval: float = PROGRESS_INTERVAL,
    ) -> None:
        self._store = store
        self._region = region
        self._max_rows = max_rows
        self._progress_interval = progress_interval
        self._running = 0

    async def run(self, actor: Actor, messages: AsyncIterator[ImportMessage]) -> ImportJob:
        """Import one stream: a header, then row batches. Returns the finished job."""
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
        if self._running >= MAX_CONCURRENT_IMPORTS:
            raise ResourceExhausted(
                f"{self._running} imports are running on this server, the most it runs at once; retry later"
            )
        self._running += 1
        try:
            return await self._run(actor, messages, tenant, mode, source)
        finally:
            self._running -= 1

    async def _run(
        self, actor: Actor, messages: AsyncIterator[ImportMessage], tenant: str, mode: ImportMode, source: str
    ) -> ImportJob:
        job = await self._store.create(who(actor), tenant, int(mode), source)
        run = _Run()
        stop = asyncio.Event()
        reporter = asyncio.create_task(self._report(job.id, run, stop), name=f"import {job.id} progress")
        clock = asyncio.get_running_loop().time
        started = clock()
        try:
            async with self._store.transaction() as tx:
                async for message in messages:
                    await self._stage(tx, self._batch(message, run), run)
                stop.set()
                await reporter
                streamed = clock()
                applied = await tx.apply(tenant, upsert=mode is ImportMode.UPSERT)
                finished = job_of(await tx.succeed(who(actor), tenant, job.id, run.outcome(mode, applied)))
            log.info(
                "import %s into %s: %d rows, %d created, %d updated, %d skipped, %d failed; "
                "streamed in %.2fs, applied and committed in %.2fs",
                job.id,
                tenant,
                finished.total_rows,
                finished.created_count,
                finished.updated_count,
                finished.skipped_count,
                finished.failed_count,
                streamed - started,
                clock() - streamed,
            )
            return finished
        except BaseException as exc:
            stop.set()
            if _was_cancelled(exc):
                reason = _CANCELLED
            elif isinstance(exc, InvalidArgument):
                reason = f"{exc.message}; nothing was imported"
            else:
                reason = f"{type(exc).__name__}: {exc}; nothing was imported"
            # Shielded: the job must say FAILED even when the call is cancelled again.
            await asyncio.shield(self._fail(job.id, run, reporter, reason))
            if isinstance(exc, InvalidArgument):
                raise InvalidArgument(
                    exc.field, exc.value, f"{exc.reason}; import job {job.id} FAILED, nothing was imported"
                ) from exc
            raise

    def _batch(self, message: ImportMessage, run: _Run) -> RowBatch:
        if isinstance(message, ImportHeader):
            raise InvalidArgument("header", message.tenant_id, "only the first message of an import may be a header")
        if message is None:
            raise InvalidArgument("payload", None, "each message after the header must carry rows")
        if message.size > MAX_ROWS_PER_MESSAGE:
            raise InvalidArgument("rows.rows", f"{message.size} rows", f"at most {MAX_ROWS_PER_MESSAGE} a message")
        if run.received + message.size > self._max_rows:
            raise InvalidArgument(
                "rows",
                f"{run.received + message.size} rows",
                f"an import holds at most {self._max_rows} rows (the server's --max-import-rows)",
            )
        return message

    async def _stage(self, tx: ImportTransaction, batch: RowBatch, run: _Run) -> None:
        rows = iter(batch.rows)
        while chunk := list(islice(rows, CHUNK_ROWS)):
            staged = self._check_rows(chunk, run)
            if staged:
                await tx.stage(staged)
            else:
                await asyncio.sleep(0)

    def _check_rows(self, chunk: list[ImportRow], run: _Run) -> list[StagedRow]:
        """The valid rows in staging form; the bad ones go to `run`. Hot: ~1M calls a big import."""
        region = self._region
        staged: list[StagedRow] = []
        append = staged.append
        ordinal = run.received
        for row in chunk:
            ordinal += 1
            try:
                kind = _KINDS.get(row.match_kind) or check.match_kind(row.match_kind, "match_kind")
                call_type = row.call_type
                if call_type not in _CALL_TYPES:
                    check.call_type(call_type, "call_type")
                number = normalize(row.number, field="number", region=region, prefix=kind == _PREFIX)
                note = row.note
                if note:
                    check.note(note, "note")
                expire = None if row.expire_us is None else _expire_time(row.expire_us)
            except InvalidArgument as exc:
                run.reject(row.line or ordinal, row.number, exc.message)
                continue
            append((ordinal, number, kind, call_type, row.enabled is not False, note, expire))
        run.received = ordinal
        run.valid += len(staged)
        return staged

    async def _report(self, job_id: str, run: _Run, stop: asyncio.Event) -> None:
        """Write the job's progress while it runs; the write is also its heartbeat."""
        loop = asyncio.get_running_loop()
        reported = (0, 0)
        last = loop.time()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._progress_interval):
                    await stop.wait()
            if stop.is_set():
                return
            now = (run.received, run.failed)
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
        try:
            await self._store.fail(job_id, run.received, run.failed, run.sorted_errors(), reason)
        except RETRYABLE as exc:
            log.error("import %s failed (%s) and cannot be marked FAILED: %s: %s", job_id, reason, type(exc), exc)
        log.warning("import %s failed: %s", job_id, reason)

    async def get(self, tenant_id: str, job_id: str) -> ImportJob:
        tenant, job_id = check.tenant_id(tenant_id), check.required_id(job_id)
        with translated():
            return job_of(await self._store.get(tenant, job_id))

    async def list_jobs(self, tenant_id: str, page_size: int, page_token: str) -> tuple[list[ImportJob], str]:
        """Newest first."""
        tenant = check.tenant_id(tenant_id)
        size = check.page_size(page_size)
        query = scope(tenant, "import_jobs")
        before = decode_token(page_token, query, (int,))[0] if page_token else None
        page = await self._store.page(tenant, size, before, MAX_ERRORS_PER_PAGE)
        return [job_of(job) for job in page.jobs], encode_token(query, [page.last_seq]) if page.more else ""


def _expire_time(us: int) -> datetime:
    if not 0 <= us <= _LATEST_US:
        raise InvalidArgument("expire_time", f"{us // 1_000_000}s after 1970", "must be between 1970 and 9999")
    return _EPOCH + timedelta(microseconds=us)

"""Import jobs and the import transaction: COPY into staging, new entries written early, one set-based apply.

The job row lives outside the import's transaction (created, progressed and
failed on connections of their own), so it persists whatever the import
does, and so do the bad lines it records. Only the final SUCCEEDED update,
the superseded lines and the entries' history are written inside the
import's transaction: the job says SUCCEEDED exactly when the entries are
committed.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from storage.db import Conn, borrow
from storage.errors import RowNotFound
from storage.forbidden_numbers import AUDITED
from storage.rows import FAILED, SUPERSEDED, EntryValues, JobLine, JobRow, Who, columns
from storage.tenancy import Tenancy

# A RUNNING job whose replica has not touched it for this long died with it.
ABANDONED_AFTER_SECONDS = 30
ABANDONED_REASON = (
    "the server running this import stopped, or lost its database, before the import finished; nothing was imported"
)
# Statements of one import may run long (a 10M-row apply); the pool's
# command_timeout is meant for interactive calls.
IMPORT_STATEMENT_TIMEOUT = 3600.0
# How many lines of each kind a job carries when it is read (every one stays stored).
LINES_PER_JOB = 1000
# Text PostgreSQL cannot hold: recorded escaped, so that recording a failure never fails.
_NUL = "\x00"

_ABANDONED = f"(state = 1 AND heartbeat_time < now() - interval '{ABANDONED_AFTER_SECONDS} seconds')"
_JOB_COLUMNS = f"""id::text AS id, seq, tenant_id,
    CASE WHEN {_ABANDONED} THEN 3 ELSE state END AS state,
    CASE WHEN {_ABANDONED} THEN '{ABANDONED_REASON}' ELSE failure_reason END AS failure_reason,
    mode, source_name, actor, file_format, file_size, bytes_received, columns, delimiter,
    total_rows, created_count, updated_count, unchanged_count, skipped_count, superseded_count, failed_count,
    create_time, finish_time"""

_STAGING = "import_staging"
_BATCH = "import_batch"
_SOURCE = "import_source"
# What an import writes of an entry: the columns of EntryValues, keyed by (number, match_kind).
_WRITTEN = columns(EntryValues)
_VALUES = tuple(c for c in _WRITTEN if c not in ("number", "match_kind"))
STAGING_COLUMNS = ("ord", "line", *_WRITTEN)
# (arrival order, line, number, match_kind, call_type, enabled, note, expire_time, action)
StagedRow = tuple[int, int, str, int, int, bool, str, datetime | None, int]


def _json(alias: str) -> str:
    """An entry described as the audit trail describes it (storage.forbidden_numbers)."""
    return "jsonb_build_object(" + ", ".join(f"'{c}', {alias}.{c}" for c in AUDITED) + ")"


# The rows that win: the last line for each (number, match_kind); `pre`: its line was written while reading.
_MAKE_SOURCE = f"""CREATE TEMP TABLE {_SOURCE} ON COMMIT DROP AS
    SELECT DISTINCT ON (number, match_kind) ord, line, {", ".join(_WRITTEN)}, pre
    FROM {_STAGING} ORDER BY number, match_kind, ord DESC"""

# An update that would change nothing is left out: the entry keeps its etag,
# replicas have nothing to re-read and the history no event. Each entry the
# import creates or changes gets its own audit event, naming the job and the
# fields it changed; an update's event also holds the entry before and after
# (a creation's "after" is the entry itself, and a million of them would cost
# the import seconds). `before` is read in the statement's snapshot, before
# the upsert; an entry created by a concurrent transaction meanwhile counts
# as updated, with every field named.
_CHANGED = (
    "array_remove(ARRAY["
    + ", ".join(f"CASE WHEN b.{c} IS DISTINCT FROM w.{c} THEN '{c}' END" for c in _VALUES)
    + "], NULL)"
)
_APPLY_UPSERT = f"""WITH before AS MATERIALIZED (
    SELECT f.* FROM forbidden_numbers f JOIN {_SOURCE} s USING (number, match_kind)
    WHERE f.tenant_id = $1 AND NOT f.deleted AND NOT s.pre
),
written AS (
    INSERT INTO forbidden_numbers AS f (tenant_id, {", ".join(_WRITTEN)})
    SELECT $1, {", ".join(_WRITTEN)} FROM {_SOURCE} WHERE NOT pre
    ON CONFLICT (tenant_id, number, match_kind) WHERE NOT deleted DO UPDATE
    SET {", ".join(f"{c} = EXCLUDED.{c}" for c in _VALUES)}
    WHERE ({", ".join(f"f.{c}" for c in _VALUES)}) IS DISTINCT FROM ({", ".join(f"EXCLUDED.{c}" for c in _VALUES)})
    RETURNING f.*
),
audited AS (
    INSERT INTO audit_events
        (tenant_id, actor, action, resource_id, request_id, import_job_id, changed_fields, before, after)
    SELECT $1, $2, CASE WHEN w.revision = 1 THEN 'create' ELSE 'update' END, w.id::text, $3, $4::uuid,
           CASE WHEN w.revision = 1 OR b.id IS NULL THEN $5::text[] ELSE {_CHANGED} END,
           CASE WHEN b.id IS NULL THEN NULL ELSE {_json("b")} END,
           CASE WHEN w.revision = 1 THEN NULL ELSE {_json("w")} END
    FROM written w LEFT JOIN before b ON b.id = w.id
    RETURNING 1
)
SELECT (SELECT count(*) FROM {_SOURCE}) AS entries,
       (SELECT count(*) FILTER (WHERE revision = 1) FROM written) AS created,
       (SELECT count(*) FILTER (WHERE revision > 1) FROM written) AS updated,
       (SELECT count(*) FROM audited) AS audited"""

_APPLY_INSERT_ONLY = f"""WITH written AS (
    INSERT INTO forbidden_numbers AS f (tenant_id, {", ".join(_WRITTEN)})
    SELECT $1, {", ".join(_WRITTEN)} FROM {_SOURCE} WHERE NOT pre
    ON CONFLICT (tenant_id, number, match_kind) WHERE NOT deleted DO NOTHING
    RETURNING f.*
),
audited AS (
    INSERT INTO audit_events
        (tenant_id, actor, action, resource_id, request_id, import_job_id, changed_fields, after)
    SELECT $1, $2, 'create', w.id::text, $3, $4::uuid, $5::text[], NULL FROM written w
    RETURNING 1
)
SELECT (SELECT count(*) FROM {_SOURCE}) AS entries, (SELECT count(*) FROM written) AS created, 0 AS updated,
       (SELECT count(*) FROM audited) AS audited"""

# The fast path of an apply, taken unless another writer gets in its way.
# The entries the source names as they stand now, and whether the source
# changes them; then the changed ones are updated and the others inserted
# with plain INSERTs (no ON CONFLICT: its speculative insertion costs a
# second WAL record and a look-up per row), each statement writing its rows'
# history from its own RETURNING. A writer that creates one of the new keys
# meanwhile makes the INSERT fail, one that deletes or changes a stored one
# makes the UPDATE miss it; either way the fast path rolls back to its
# savepoint and the one-statement apply above runs instead.
_BEFORE = "import_before"
_KEY = "(number, match_kind)"
_MAKE_BEFORE = f"""CREATE TEMP TABLE {_BEFORE} ON COMMIT DROP AS
    SELECT {", ".join(AUDITED)}, true AS changed FROM forbidden_numbers WITH NO DATA"""
_FILL_BEFORE = f"""INSERT INTO {_BEFORE}
    SELECT {", ".join(f"f.{c}" for c in AUDITED)},
           ({", ".join(f"f.{c}" for c in _VALUES)}) IS DISTINCT FROM ({", ".join(f"s.{c}" for c in _VALUES)})
    FROM forbidden_numbers f JOIN {_SOURCE} s USING {_KEY}
    WHERE f.tenant_id = $1 AND NOT f.deleted AND NOT s.pre"""
_COUNT_BEFORE = f"SELECT count(*) AS stored, count(*) FILTER (WHERE changed) AS changed FROM {_BEFORE}"
_CHANGED_FROM_BEFORE = (
    "array_remove(ARRAY["
    + ", ".join(f"CASE WHEN b.{c} IS DISTINCT FROM f.{c} THEN '{c}' END" for c in _VALUES)
    + "], NULL)"
)
_FAST_UPDATE = f"""WITH written AS (
    UPDATE forbidden_numbers f SET {", ".join(f"{c} = s.{c}" for c in _VALUES)}
    FROM {_SOURCE} s JOIN {_BEFORE} b USING {_KEY}
    WHERE f.id = b.id AND b.changed AND NOT f.deleted
    RETURNING f.id, {_CHANGED_FROM_BEFORE} AS changed, {_json("b")} AS before, {_json("f")} AS after
)
INSERT INTO audit_events
    (tenant_id, actor, action, resource_id, request_id, import_job_id, changed_fields, before, after)
SELECT $1, $2, 'update', id::text, $3, $4::uuid, changed, before, after FROM written"""
_FAST_INSERT = f"""WITH written AS (
    INSERT INTO forbidden_numbers (tenant_id, {", ".join(_WRITTEN)})
    SELECT $1, {", ".join(_WRITTEN)} FROM {_SOURCE} s
    WHERE NOT s.pre AND NOT EXISTS (SELECT FROM {_BEFORE} b WHERE b.number = s.number AND b.match_kind = s.match_kind)
    RETURNING id
)
INSERT INTO audit_events (tenant_id, actor, action, resource_id, request_id, import_job_id, changed_fields)
SELECT $1, $2, 'create', id::text, $3, $4::uuid, $5::text[] FROM written"""


# While the file is read, each batch of lines is written at once while every
# one of them is a new entry, so that PostgreSQL writes while the next lines
# are read: plain INSERTs with their history, as the fast path's. A batch
# holding a key already stored (or twice) fails on the unique index, which
# rolls back its savepoint, as does meeting another writer's new key; that
# ends this for the import and the rest goes through the apply. Entries so
# written are this transaction's (their xid); a later line for one of them
# is applied to it by _FIX_EARLY, which the stamp trigger lets keep its first
# revision (migration 0015): it is still created.
_EARLY_INSERT = f"""WITH written AS (
    INSERT INTO forbidden_numbers (tenant_id, {", ".join(_WRITTEN)})
    SELECT $1, {", ".join(_WRITTEN)} FROM {_BATCH}
    RETURNING id
)
INSERT INTO audit_events (tenant_id, actor, action, resource_id, request_id, import_job_id, changed_fields)
SELECT $1, $2, 'create', id::text, $3, $4::uuid, $5::text[] FROM written"""
_MOVE_BATCH = f"INSERT INTO {_STAGING} SELECT *, $1::boolean FROM {_BATCH}"
_FIX_EARLY = f"""WITH early AS MATERIALIZED (
    SELECT s.ord, f.id,
           ({", ".join(f"f.{c}" for c in _VALUES)}) IS DISTINCT FROM ({", ".join(f"s.{c}" for c in _VALUES)}) AS changed
    FROM {_SOURCE} s JOIN forbidden_numbers f USING {_KEY}
    WHERE NOT s.pre AND f.tenant_id = $1 AND NOT f.deleted AND f.xid = pg_current_xact_id()
),
fixed AS (
    UPDATE forbidden_numbers f SET {", ".join(f"{c} = s.{c}" for c in _VALUES)}
    FROM early e JOIN {_SOURCE} s USING (ord)
    WHERE f.id = e.id AND e.changed
    RETURNING 1
),
marked AS (
    UPDATE {_SOURCE} s SET pre = true FROM early e WHERE s.ord = e.ord RETURNING 1
)
SELECT (SELECT count(*) FROM marked) AS early, (SELECT count(*) FROM fixed) AS fixed"""


class _Raced(Exception):
    """Another writer changed or deleted an entry between the fast path's statements."""


def _count(status: str) -> int:
    """The row count of a command's status ("INSERT 0 12", "SELECT 12")."""
    return int(status.rsplit(" ", 1)[1])


# Lines a later line of the same import replaced, with the line that won.
_SUPERSEDED = f"""INSERT INTO import_job_rows (job_id, kind, line, number, by_line)
    SELECT $1, {SUPERSEDED}, s.line, s.number, w.line
    FROM {_STAGING} s JOIN {_SOURCE} w USING (number, match_kind)
    WHERE s.ord <> w.ord"""


def storable(text: str) -> str:
    """Text PostgreSQL can hold (it refuses NUL), with what was there still visible."""
    return text.replace(_NUL, "\\x00") if _NUL in text else text


@dataclass(frozen=True, slots=True)
class Applied:
    entries: int  # distinct (number, match_kind) keys staged
    created: int
    updated: int
    superseded: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a finished import did; counts as the ImportJob reports them."""

    total_rows: int
    created: int
    updated: int
    unchanged: int
    skipped: int
    superseded: int
    failed: int


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[JobRow]
    more: bool
    last_seq: int


def _job(record: asyncpg.Record, lines: Sequence[JobLine] = ()) -> JobRow:
    values = {name: record[name] for name in columns(JobRow) if name not in ("errors", "superseded")}
    return JobRow(
        **values,
        errors=[line for line in lines if line.kind == FAILED],
        superseded=[line for line in lines if line.kind == SUPERSEDED],
    )


def _line_record(job_id: uuid.UUID, line: JobLine) -> tuple[Any, ...]:
    return (
        job_id,
        line.kind,
        line.line,
        storable(line.number),
        [storable(cell) for cell in line.cells],
        storable(line.reason),
        storable(line.column),
        line.by_line,
    )


_LINE_COLUMNS = ("job_id", "kind", "line", "number", "cells", "reason", "column_name", "by_line")
_LINES = """SELECT job_id::text AS job_id, kind, line, number, cells, reason, column_name, by_line
    FROM (SELECT *, row_number() OVER (PARTITION BY job_id, kind ORDER BY line) AS n
          FROM import_job_rows WHERE job_id = ANY($1::uuid[])) r
    WHERE n <= $2 ORDER BY job_id, kind, line"""


def _to_line(record: asyncpg.Record) -> JobLine:
    return JobLine(
        kind=record["kind"],
        line=record["line"],
        number=record["number"],
        cells=list(record["cells"]),
        reason=record["reason"],
        column=record["column_name"],
        by_line=record["by_line"],
    )


class ImportTransaction:
    """One import's transaction: rows are staged with COPY, new entries written early, the rest applied at once."""

    def __init__(self, conn: Conn, who: Who, tenant_id: str, job_id: str) -> None:
        self._conn = conn
        self._args = (tenant_id, who.actor, who.request_id, uuid.UUID(job_id))
        # Entries written while reading (_EARLY_INSERT), and whether the next batch may be.
        self._early = 0
        self._writing_early = True

    async def stage(self, rows: Sequence[StagedRow]) -> None:
        conn = self._conn
        if not self._writing_early:
            # Early writes have ended: straight into staging, not through the batch table.
            await conn.copy_records_to_table(
                _STAGING, records=rows, columns=STAGING_COLUMNS, timeout=IMPORT_STATEMENT_TIMEOUT
            )
            return
        await conn.copy_records_to_table(
            _BATCH, records=rows, columns=STAGING_COLUMNS, timeout=IMPORT_STATEMENT_TIMEOUT
        )
        early = False
        try:
            async with conn.transaction():  # a savepoint: a key stored already, or by another writer, undoes the batch
                written = _count(
                    await conn.execute(_EARLY_INSERT, *self._args, list(_WRITTEN), timeout=IMPORT_STATEMENT_TIMEOUT)
                )
            assert written == len(rows), (written, len(rows))
            self._early += written
            early = True
        except asyncpg.UniqueViolationError:
            self._writing_early = False
        await conn.execute(_MOVE_BATCH, early, timeout=IMPORT_STATEMENT_TIMEOUT)
        await conn.execute(f"TRUNCATE {_BATCH}")

    async def apply(self, who: Who, tenant_id: str, job_id: str, upsert: bool, staged: int) -> Applied:
        """Write the winning rows and their history; record the superseded ones. `staged`: rows staged."""
        if self._writing_early:
            # Every line was written early: each one a new entry, no two for the same (a unique violation
            # would have ended that), so nothing is left to apply and no line was superseded.
            assert self._early == staged, (self._early, staged)
            return Applied(entries=staged, created=staged, updated=0, superseded=0)
        conn = self._conn
        entries = _count(await conn.execute(_MAKE_SOURCE, timeout=IMPORT_STATEMENT_TIMEOUT))
        args = (tenant_id, who.actor, who.request_id, uuid.UUID(job_id))
        early = await conn.fetchval(f"SELECT count(*) FROM {_SOURCE} WHERE pre")
        if early < entries and self._early:
            # Lines for entries written early by earlier lines: applied to them, which stay created.
            fixed = await conn.fetchrow(_FIX_EARLY, tenant_id, timeout=IMPORT_STATEMENT_TIMEOUT)
            assert fixed is not None
            early += fixed["early"]
        if early == entries:
            created, updated = 0, 0
        else:
            created, updated = await self._rest(args, upsert)
        created += early
        superseded = staged - entries
        if superseded:
            await conn.execute(_SUPERSEDED, uuid.UUID(job_id), timeout=IMPORT_STATEMENT_TIMEOUT)
        return Applied(entries=entries, created=created, updated=updated, superseded=superseded)

    async def _rest(self, args: tuple[Any, ...], upsert: bool) -> tuple[int, int]:
        """(created, updated) of the winning lines not written early."""
        conn = self._conn
        try:
            async with conn.transaction():  # a savepoint: the fast path is undone whole when raced
                created, updated = await self._fast(args, upsert)
        except (_Raced, asyncpg.UniqueViolationError):
            row = await conn.fetchrow(
                _APPLY_UPSERT if upsert else _APPLY_INSERT_ONLY,
                *args,
                list(_WRITTEN),
                timeout=IMPORT_STATEMENT_TIMEOUT,
            )
            assert row is not None
            created, updated = int(row["created"]), int(row["updated"])
        return created, updated

    async def _fast(self, args: tuple[Any, ...], upsert: bool) -> tuple[int, int]:
        """(created, updated), or _Raced / UniqueViolationError when another writer got in the way."""
        conn = self._conn
        await conn.execute(_MAKE_BEFORE)
        await conn.execute(_FILL_BEFORE, args[0], timeout=IMPORT_STATEMENT_TIMEOUT)
        before = await conn.fetchrow(_COUNT_BEFORE)
        assert before is not None
        updated = 0
        if upsert and before["changed"]:
            updated = _count(await conn.execute(_FAST_UPDATE, *args, timeout=IMPORT_STATEMENT_TIMEOUT))
            if updated != before["changed"]:
                raise _Raced
        created = _count(await conn.execute(_FAST_INSERT, *args, list(_WRITTEN), timeout=IMPORT_STATEMENT_TIMEOUT))
        return created, updated

    async def succeed(self, who: Who, tenant_id: str, job_id: str, outcome: Outcome, bytes_received: int) -> None:
        """Record the job's own audit event and its result, both committed with the entries.

        The bytes received too: an import shorter than a progress interval has had no progress written.
        """
        key = uuid.UUID(job_id)
        await self._conn.execute(
            """INSERT INTO audit_events (tenant_id, actor, action, resource_id, request_id, import_job_id)
               VALUES ($1, $2, 'import', $3, $4, $5)""",
            tenant_id,
            who.actor,
            job_id,
            who.request_id,
            key,
        )
        await self._conn.execute(
            """UPDATE import_jobs
               SET state = 2, total_rows = $2, created_count = $3, updated_count = $4, unchanged_count = $5,
                   skipped_count = $6, superseded_count = $7, failed_count = $8, bytes_received = $9,
                   heartbeat_time = clock_timestamp(), finish_time = clock_timestamp()
               WHERE id = $1""",
            key,
            outcome.total_rows,
            outcome.created,
            outcome.updated,
            outcome.unchanged,
            outcome.skipped,
            outcome.superseded,
            outcome.failed,
            bytes_received,
        )


class ImportJobStore:
    """Job rows go through `pool`; import transactions through `import_pool`.

    A pool of their own keeps long imports from taking every connection
    that interactive admin calls need.
    """

    def __init__(self, pool: asyncpg.Pool, import_pool: asyncpg.Pool, tenancy: Tenancy | None = None) -> None:
        self._pool = pool
        self._import_pool = import_pool
        self._tenancy = Tenancy() if tenancy is None else tenancy

    async def create(
        self, who: Who, tenant_id: str, mode: int, source_name: str, file_format: int, file_size: int
    ) -> JobRow:
        async with self._tenancy.scoped(self._pool, tenant_id) as conn:
            row = await conn.fetchrow(
                f"""INSERT INTO import_jobs (tenant_id, state, mode, source_name, actor, file_format, file_size)
                    VALUES ($1, 1, $2, $3, $4, $5, $6) RETURNING {_JOB_COLUMNS}""",
                tenant_id,
                mode,
                storable(source_name),
                storable(who.actor),
                file_format,
                file_size,
            )
        assert row is not None
        return _job(row)

    async def started(self, job_id: str, columns: Sequence[str], delimiter: str) -> None:
        """The file's header and a CSV file's separator, once read."""
        async with borrow(self._pool) as conn:
            await conn.execute(
                "UPDATE import_jobs SET columns = $2, delimiter = $3 WHERE id = $1",
                uuid.UUID(job_id),
                [storable(c) for c in columns],
                delimiter,
            )

    async def progress(self, job_id: str, total_rows: int, failed_count: int, bytes_received: int) -> None:
        """Progress of a running job; also its heartbeat."""
        async with borrow(self._pool) as conn:
            await conn.execute(
                """UPDATE import_jobs SET total_rows = $2, failed_count = $3, bytes_received = $4,
                          heartbeat_time = now()
                   WHERE id = $1 AND state = 1""",
                uuid.UUID(job_id),
                total_rows,
                failed_count,
                bytes_received,
            )

    async def keep_lines(self, job_id: str, lines: Sequence[JobLine]) -> None:
        """Record bad lines, outside the import's transaction: a failed import keeps them too."""
        key = uuid.UUID(job_id)
        async with borrow(self._pool) as conn:
            await conn.copy_records_to_table(
                "import_job_rows",
                records=[_line_record(key, line) for line in lines],
                columns=_LINE_COLUMNS,
                timeout=IMPORT_STATEMENT_TIMEOUT,
            )

    async def fail(self, job_id: str, total_rows: int, failed_count: int, bytes_received: int, reason: str) -> None:
        async with borrow(self._pool) as conn:
            await conn.execute(
                """UPDATE import_jobs
                   SET state = 3, total_rows = $2, failed_count = $3, bytes_received = $4, failure_reason = $5,
                       heartbeat_time = now(), finish_time = now()
                   WHERE id = $1 AND state = 1""",
                uuid.UUID(job_id),
                total_rows,
                failed_count,
                bytes_received,
                storable(reason),
            )

    @asynccontextmanager
    async def transaction(self, who: Who, tenant_id: str, job_id: str) -> AsyncIterator[ImportTransaction]:
        """The import's transaction with an empty staging table; commits when the block ends normally.

        An import that ends any other way drops its connection: it may have
        been cut off in the middle of a COPY, and the server rolls back a
        transaction whose connection is gone.
        """
        async with borrow(self._import_pool) as conn:
            try:
                async with conn.transaction():
                    await self._tenancy.enter(conn, tenant_id)
                    # Sorting a million staged rows for DISTINCT ON stays in memory.
                    await conn.execute("SET LOCAL work_mem = '64MB'")
                    # The entries' own column types, with the line and the arrival order before them.
                    await conn.execute(
                        f"""CREATE TEMP TABLE {_BATCH} ON COMMIT DROP AS
                            SELECT 0::bigint AS ord, 0::bigint AS line, {", ".join(_WRITTEN)}
                            FROM forbidden_numbers WITH NO DATA;
                            CREATE TEMP TABLE {_STAGING} ON COMMIT DROP AS
                            SELECT *, false AS pre FROM {_BATCH} WITH NO DATA;
                            ALTER TABLE {_STAGING} ALTER COLUMN pre SET DEFAULT false"""
                    )
                    yield ImportTransaction(conn, who, tenant_id, job_id)
            except BaseException:
                conn.terminate()
                raise

    async def get(self, tenant_id: str, job_id: str) -> JobRow:
        try:
            key = uuid.UUID(job_id)
        except ValueError:
            raise RowNotFound("import job", job_id, tenant_id) from None
        async with self._tenancy.scoped(self._pool, tenant_id, isolation="repeatable_read", readonly=True) as conn:
            row = await conn.fetchrow(
                f"SELECT {_JOB_COLUMNS} FROM import_jobs WHERE tenant_id = $1 AND id = $2", tenant_id, key
            )
            if row is None:
                raise RowNotFound("import job", job_id, tenant_id)
            lines = [_to_line(r) for r in await conn.fetch(_LINES, [key], LINES_PER_JOB)]
        return _job(row, lines)

    async def lines(self, tenant_id: str, job_id: str, kind: int, chunk: int = 5000) -> AsyncIterator[list[JobLine]]:
        """Every line of one kind, in line order, a chunk at a time."""
        job = await self.get(tenant_id, job_id)
        async with self._tenancy.scoped(self._pool, tenant_id, isolation="repeatable_read", readonly=True) as conn:
            cursor = await conn.cursor(
                """SELECT kind, line, number, cells, reason, column_name, by_line FROM import_job_rows
                   WHERE job_id = $1 AND kind = $2 ORDER BY line""",
                uuid.UUID(job.id),
                kind,
            )
            while batch := await cursor.fetch(chunk):
                yield [_to_line(r) for r in batch]

    async def page(self, tenant_id: str, size: int, before_seq: int | None, lines_per_job: int) -> JobPage:
        """Up to `size` jobs older than `before_seq`, newest first, each with its first lines."""
        async with self._tenancy.scoped(self._pool, tenant_id, isolation="repeatable_read", readonly=True) as conn:
            rows = await conn.fetch(
                f"""SELECT {_JOB_COLUMNS} FROM import_jobs
                    WHERE tenant_id = $1 AND ($2::bigint IS NULL OR seq < $2)
                    ORDER BY seq DESC LIMIT $3""",
                tenant_id,
                before_seq,
                size + 1,
            )
            kept = rows[:size]
            by_job: dict[str, list[JobLine]] = {}
            if kept and lines_per_job:
                for r in await conn.fetch(_LINES, [uuid.UUID(row["id"]) for row in kept], lines_per_job):
                    by_job.setdefault(r["job_id"], []).append(_to_line(r))
        jobs = [_job(row, by_job.get(row["id"], ())) for row in kept]
        return JobPage(jobs=jobs, more=len(rows) > len(kept), last_seq=kept[-1]["seq"] if kept else 0)

"""Import jobs and the import transaction: COPY into staging, one set-based apply.

The job row lives outside the import's transaction (created, progressed and
failed on connections of their own), so it persists whatever the import
does. Only the final SUCCEEDED update is written inside the import's
transaction: the job says SUCCEEDED exactly when the entries are committed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from storage.db import Conn, borrow
from storage.errors import RowNotFound
from storage.forbidden_numbers import write_audit
from storage.rows import JobRow, RowErrorRow, Who

# A RUNNING job whose replica has not touched it for this long died with it.
ABANDONED_AFTER_SECONDS = 30
ABANDONED_REASON = "the server running this import stopped before the import finished; nothing was imported"
# Statements of one import may run long (a 10M-row apply); the pool's
# command_timeout is meant for interactive calls.
IMPORT_STATEMENT_TIMEOUT = 3600.0

_ABANDONED = f"(state = 1 AND heartbeat_time < now() - interval '{ABANDONED_AFTER_SECONDS} seconds')"
_JOB_COLUMNS = f"""id::text AS id, seq, tenant_id,
    CASE WHEN {_ABANDONED} THEN 3 ELSE state END AS state,
    CASE WHEN {_ABANDONED} THEN '{ABANDONED_REASON}' ELSE failure_reason END AS failure_reason,
    mode, source_name, total_rows, created_count, updated_count, skipped_count, failed_count,
    error_count, create_time, finish_time"""

_STAGING = "import_staging"
STAGING_COLUMNS = ("ord", "number", "match_kind", "call_type", "enabled", "note", "expire_time")
# (arrival order, number, match_kind, call_type, enabled, note, expire_time)
StagedRow = tuple[int, str, int, int, bool, str, datetime | None]

_SOURCE = f"""SELECT DISTINCT ON (number, match_kind) number, match_kind, call_type, enabled, note, expire_time
    FROM {_STAGING} ORDER BY number, match_kind, ord DESC"""

# Later rows for the same key win (DISTINCT ON ... ord DESC), so the INSERT
# never meets one key twice. An update that would change nothing is left
# out: the entry keeps its etag and replicas have nothing to re-read.
# Created entries are the ones at revision 1: the stamp trigger bumps the
# revision on every update.
_APPLY_UPSERT = f"""WITH src AS MATERIALIZED ({_SOURCE}),
written AS (
    INSERT INTO forbidden_numbers AS f (tenant_id, number, match_kind, call_type, enabled, note, expire_time)
    SELECT $1, number, match_kind, call_type, enabled, note, expire_time FROM src
    ON CONFLICT (tenant_id, number, match_kind) WHERE NOT deleted DO UPDATE
    SET call_type = EXCLUDED.call_type, enabled = EXCLUDED.enabled,
        note = EXCLUDED.note, expire_time = EXCLUDED.expire_time
    WHERE (f.call_type, f.enabled, f.note, f.expire_time)
          IS DISTINCT FROM (EXCLUDED.call_type, EXCLUDED.enabled, EXCLUDED.note, EXCLUDED.expire_time)
    RETURNING f.revision = 1 AS created
)
SELECT (SELECT count(*) FROM src) AS entries, (SELECT count(*) FROM written WHERE created) AS created"""

_APPLY_INSERT_ONLY = f"""WITH src AS MATERIALIZED ({_SOURCE}),
written AS (
    INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type, enabled, note, expire_time)
    SELECT $1, number, match_kind, call_type, enabled, note, expire_time FROM src
    ON CONFLICT (tenant_id, number, match_kind) WHERE NOT deleted DO NOTHING
    RETURNING true AS created
)
SELECT (SELECT count(*) FROM src) AS entries, (SELECT count(*) FROM written) AS created"""


@dataclass(frozen=True, slots=True)
class Applied:
    entries: int  # distinct (number, match_kind) keys staged
    created: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a finished import did; counts as the ImportJob reports them."""

    total_rows: int
    created: int
    updated: int
    skipped: int
    failed: int
    errors: Sequence[RowErrorRow]


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[JobRow]
    more: bool
    last_seq: int


def _errors_json(errors: Sequence[RowErrorRow]) -> str:
    return json.dumps([[e.line, e.number, e.reason] for e in errors], ensure_ascii=False)


def _row_to_job(row: asyncpg.Record, errors: list[RowErrorRow]) -> JobRow:
    return JobRow(
        id=row["id"],
        tenant_id=row["tenant_id"],
        state=row["state"],
        mode=row["mode"],
        source_name=row["source_name"],
        total_rows=row["total_rows"],
        created_count=row["created_count"],
        updated_count=row["updated_count"],
        skipped_count=row["skipped_count"],
        failed_count=row["failed_count"],
        errors=errors,
        failure_reason=row["failure_reason"],
        create_time=row["create_time"],
        finish_time=row["finish_time"],
    )


def _parse_errors(raw: str | None) -> list[RowErrorRow]:
    if not raw:
        return []
    return [RowErrorRow(int(line), str(number), str(reason)) for line, number, reason in json.loads(raw)]


class ImportTransaction:
    """One import's transaction: rows are staged with COPY, then applied at once."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    async def stage(self, rows: Sequence[StagedRow]) -> None:
        await self._conn.copy_records_to_table(
            _STAGING, records=rows, columns=STAGING_COLUMNS, timeout=IMPORT_STATEMENT_TIMEOUT
        )

    async def apply(self, tenant_id: str, upsert: bool) -> Applied:
        query = _APPLY_UPSERT if upsert else _APPLY_INSERT_ONLY
        row = await self._conn.fetchrow(query, tenant_id, timeout=IMPORT_STATEMENT_TIMEOUT)
        assert row is not None
        return Applied(entries=int(row["entries"]), created=int(row["created"]))

    async def succeed(self, who: Who, tenant_id: str, job_id: str, outcome: Outcome) -> JobRow:
        """Record the audit event and the finished job, both committed with the entries."""
        await write_audit(self._conn, who, tenant_id, "import", job_id)
        row = await self._conn.fetchrow(
            f"""UPDATE import_jobs
                SET state = 2, total_rows = $2, created_count = $3, updated_count = $4, skipped_count = $5,
                    failed_count = $6, errors = $7::jsonb, error_count = $8,
                    heartbeat_time = clock_timestamp(), finish_time = clock_timestamp()
                WHERE id = $1 RETURNING {_JOB_COLUMNS}""",
            uuid.UUID(job_id),
            outcome.total_rows,
            outcome.created,
            outcome.updated,
            outcome.skipped,
            outcome.failed,
            _errors_json(outcome.errors),
            len(outcome.errors),
        )
        assert row is not None
        return _row_to_job(row, list(outcome.errors))


class ImportJobStore:
    """Job rows go through `pool`; import transactions through `import_pool`.

    A pool of their own keeps long imports from taking every connection
    that interactive admin calls need.
    """

    def __init__(self, pool: asyncpg.Pool, import_pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._import_pool = import_pool

    async def _fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with borrow(self._pool) as conn:
            return await conn.fetchrow(query, *args)

    async def _execute(self, query: str, *args: Any) -> None:
        async with borrow(self._pool) as conn:
            await conn.execute(query, *args)

    async def create(self, who: Who, tenant_id: str, mode: int, source_name: str) -> JobRow:
        row = await self._fetchrow(
            f"""INSERT INTO import_jobs (tenant_id, state, mode, source_name, actor)
                VALUES ($1, 1, $2, $3, $4) RETURNING {_JOB_COLUMNS}""",
            tenant_id,
            mode,
            source_name,
            who.actor,
        )
        assert row is not None
        return _row_to_job(row, [])

    async def progress(self, job_id: str, total_rows: int, failed_count: int) -> None:
        """Progress of a running job; also its heartbeat."""
        await self._execute(
            """UPDATE import_jobs SET total_rows = $2, failed_count = $3, heartbeat_time = now()
               WHERE id = $1 AND state = 1""",
            uuid.UUID(job_id),
            total_rows,
            failed_count,
        )

    async def fail(
        self, job_id: str, total_rows: int, failed_count: int, errors: Sequence[RowErrorRow], reason: str
    ) -> None:
        await self._execute(
            """UPDATE import_jobs
               SET state = 3, total_rows = $2, failed_count = $3, errors = $4::jsonb, error_count = $5,
                   failure_reason = $6, heartbeat_time = now(), finish_time = now()
               WHERE id = $1 AND state = 1""",
            uuid.UUID(job_id),
            total_rows,
            failed_count,
            _errors_json(errors),
            len(errors),
            reason,
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[ImportTransaction]:
        """The import's transaction with an empty staging table; commits when the block ends normally.

        An import that ends any other way drops its connection: it may have
        been cut off in the middle of a COPY, and the server rolls back a
        transaction whose connection is gone.
        """
        async with borrow(self._import_pool) as conn:
            try:
                async with conn.transaction():
                    # Sorting a million staged rows for DISTINCT ON stays in memory.
                    await conn.execute("SET LOCAL work_mem = '64MB'")
                    await conn.execute(
                        f"""CREATE TEMP TABLE {_STAGING} (
                                ord bigint NOT NULL, number text NOT NULL, match_kind smallint NOT NULL,
                                call_type smallint NOT NULL, enabled boolean NOT NULL, note text NOT NULL,
                                expire_time timestamptz
                            ) ON COMMIT DROP"""
                    )
                    yield ImportTransaction(conn)
            except BaseException:
                conn.terminate()
                raise

    async def get(self, tenant_id: str, job_id: str) -> JobRow:
        try:
            key = uuid.UUID(job_id)
        except ValueError:
            raise RowNotFound("import job", job_id, tenant_id) from None
        row = await self._fetchrow(
            f"SELECT {_JOB_COLUMNS}, errors::text AS errors FROM import_jobs WHERE tenant_id = $1 AND id = $2",
            tenant_id,
            key,
        )
        if row is None:
            raise RowNotFound("import job", job_id, tenant_id)
        return _row_to_job(row, _parse_errors(row["errors"]))

    async def page(self, tenant_id: str, size: int, before_seq: int | None, max_errors: int) -> JobPage:
        """Up to `size` jobs older than `before_seq`, newest first.

        A page also ends before its jobs carry more than `max_errors` row
        errors in all (it always holds at least one job), which keeps a
        response within gRPC's message size.
        """
        async with borrow(self._pool) as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            rows = await conn.fetch(
                f"""SELECT {_JOB_COLUMNS} FROM import_jobs
                    WHERE tenant_id = $1 AND ($2::bigint IS NULL OR seq < $2)
                    ORDER BY seq DESC LIMIT $3""",
                tenant_id,
                before_seq,
                size + 1,
            )
            kept: list[asyncpg.Record] = []
            carried = 0
            for row in rows[:size]:
                carried += row["error_count"]
                if kept and carried > max_errors:
                    break
                kept.append(row)
            errors: dict[str, list[RowErrorRow]] = {}
            with_errors = [uuid.UUID(row["id"]) for row in kept if row["error_count"]]
            if with_errors:
                for found in await conn.fetch(
                    "SELECT id::text AS id, errors::text AS errors FROM import_jobs WHERE id = ANY($1::uuid[])",
                    with_errors,
                ):
                    errors[found["id"]] = _parse_errors(found["errors"])
        jobs = [_row_to_job(row, errors.get(row["id"], [])) for row in kept]
        return JobPage(jobs=jobs, more=len(rows) > len(kept), last_seq=kept[-1]["seq"] if kept else 0)

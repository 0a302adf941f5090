"""Queries on forbidden numbers and their audit trail.

Every change writes its audit event in its own transaction, so a change
that rolls back leaves no event and a committed one always has one.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from storage.db import Conn, borrow
from storage.errors import DuplicateEntry, RowNotFound, StaleRevision
from storage.rows import (
    AuditFilter,
    AuditRow,
    EntryFilter,
    EntryRow,
    EntryValues,
    Who,
    columns,
)
from storage.tenancy import Tenancy

# What a row of forbidden_numbers reads as an EntryRow: its columns, and its hits (from entry_hits).
_COMPUTED = {
    "hit_count": "coalesce((SELECT h.hits FROM entry_hits h WHERE h.entry_id = forbidden_numbers.id), 0) AS hit_count",
    "last_hit_time": "(SELECT h.last_hit FROM entry_hits h WHERE h.entry_id = forbidden_numbers.id) AS last_hit_time",
}
_COLUMNS = ", ".join(_COMPUTED.get(c, c) for c in columns(EntryRow))
_VALUES = columns(EntryValues)
ENTRY = "forbidden number"
# The audit trail describes an entry by its columns, without the times the event itself carries.
AUDITED = tuple(c for c in columns(EntryRow) if c not in ("create_time", "update_time", *_COMPUTED))

# Status codes, as the API numbers them.
ACTIVE, DISABLED, EXPIRED = 1, 2, 3


def _row(record: asyncpg.Record) -> EntryRow:
    return EntryRow(**{**record, "id": str(record["id"])})


def _described(row: EntryRow | None) -> str | None:
    if row is None:
        return None
    found = {name: getattr(row, name) for name in AUDITED}
    if row.expire_time is not None:
        found["expire_time"] = row.expire_time.isoformat()
    return json.dumps(found, ensure_ascii=False)


def _parse_id(entry_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(entry_id)
    except ValueError:
        return None


def _changed(before: EntryRow | None, after: EntryRow | None) -> list[str]:
    if after is None:
        return []
    if before is None:
        return list(_VALUES)
    return [name for name in _VALUES if getattr(before, name) != getattr(after, name)]


async def write_audit(
    conn: Conn,
    who: Who,
    tenant_id: str,
    action: str,
    resource_id: str,
    before: EntryRow | None = None,
    after: EntryRow | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO audit_events (tenant_id, actor, action, resource_id, request_id, before, after, changed_fields)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8)""",
        tenant_id,
        who.actor,
        action,
        resource_id,
        who.request_id,
        _described(before),
        _described(after),
        _changed(before, after),
    )


class ForbiddenNumberStore:
    """Every query about one tenant runs bound to it (storage/tenancy.py); cross-tenant listings do not."""

    def __init__(self, pool: asyncpg.Pool, tenancy: Tenancy | None = None) -> None:
        self._pool = pool
        self._tenancy = Tenancy() if tenancy is None else tenancy

    async def create(self, who: Who, tenant_id: str, values: EntryValues) -> EntryRow:
        names = ", ".join(_VALUES)
        params = ", ".join(f"${i + 2}" for i in range(len(_VALUES)))
        async with self._tenancy.scoped(self._pool, tenant_id) as conn:
            try:
                record = await conn.fetchrow(
                    f"""INSERT INTO forbidden_numbers (tenant_id, {names})
                        VALUES ($1, {params}) RETURNING {_COLUMNS}""",
                    tenant_id,
                    *dataclasses.astuple(values),
                )
            except asyncpg.exceptions.UniqueViolationError:
                raise DuplicateEntry(tenant_id, values.number, values.match_kind) from None
            assert record is not None
            row = _row(record)
            await write_audit(conn, who, tenant_id, "create", row.id, after=row)
            return row

    async def get(self, tenant_id: str, entry_id: str) -> EntryRow:
        key = _parse_id(entry_id)
        if key is None:
            raise RowNotFound(ENTRY, entry_id, tenant_id)
        async with self._tenancy.scoped(self._pool, tenant_id, readonly=True) as conn:
            record = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM forbidden_numbers WHERE tenant_id = $1 AND id = $2 AND NOT deleted",
                tenant_id,
                key,
            )
        if record is None:
            raise RowNotFound(ENTRY, entry_id, tenant_id)
        return _row(record)

    async def _lock(self, conn: Conn, tenant_id: str, entry_id: str, revision: int | None) -> EntryRow:
        key = _parse_id(entry_id)
        record = None
        if key is not None:
            record = await conn.fetchrow(
                f"""SELECT {_COLUMNS} FROM forbidden_numbers
                    WHERE tenant_id = $1 AND id = $2 AND NOT deleted FOR UPDATE""",
                tenant_id,
                key,
            )
        if record is None:
            raise RowNotFound(ENTRY, entry_id, tenant_id)
        row = _row(record)
        if revision is not None and revision != row.revision:
            raise StaleRevision(entry_id, revision, row.revision)
        return row

    async def update(
        self, who: Who, tenant_id: str, entry_id: str, revision: int | None, changes: dict[str, Any]
    ) -> EntryRow:
        """Set the columns in `changes` (names of EntryValues); an update that changes nothing writes nothing."""
        async with self._tenancy.scoped(self._pool, tenant_id) as conn:
            before = await self._lock(conn, tenant_id, entry_id, revision)
            merged = dataclasses.replace(EntryValues(*(getattr(before, name) for name in _VALUES)), **changes)
            if dataclasses.astuple(merged) == tuple(getattr(before, name) for name in _VALUES):
                # Nothing to change: the etag stays valid, replicas have nothing to re-read, no event.
                return before
            sets = ", ".join(f"{name} = ${i + 3}" for i, name in enumerate(_VALUES))
            try:
                record = await conn.fetchrow(
                    f"""UPDATE forbidden_numbers SET {sets}
                        WHERE tenant_id = $1 AND id = $2 RETURNING {_COLUMNS}""",
                    tenant_id,
                    uuid.UUID(before.id),
                    *dataclasses.astuple(merged),
                )
            except asyncpg.exceptions.UniqueViolationError:
                raise DuplicateEntry(tenant_id, merged.number, merged.match_kind) from None
            assert record is not None
            after = _row(record)
            await write_audit(conn, who, tenant_id, "update", after.id, before=before, after=after)
            return after

    async def delete(self, who: Who, tenant_id: str, entry_id: str, revision: int | None) -> None:
        async with self._tenancy.scoped(self._pool, tenant_id) as conn:
            before = await self._lock(conn, tenant_id, entry_id, revision)
            await conn.execute("UPDATE forbidden_numbers SET deleted = true WHERE id = $1", uuid.UUID(before.id))
            await write_audit(conn, who, tenant_id, "delete", before.id, before=before)

    async def set_enabled(self, who: Who, tenant_id: str, entry_ids: Sequence[str], enabled: bool) -> int:
        keys: list[uuid.UUID] = []
        for entry_id in entry_ids:
            key = _parse_id(entry_id)
            if key is None:
                raise RowNotFound(ENTRY, entry_id, tenant_id)
            keys.append(key)
        async with self._tenancy.scoped(self._pool, tenant_id) as conn:
            records = await conn.fetch(
                f"""SELECT {_COLUMNS} FROM forbidden_numbers
                    WHERE tenant_id = $1 AND id = ANY($2::uuid[]) AND NOT deleted
                    ORDER BY id FOR UPDATE""",
                tenant_id,
                keys,
            )
            found = {record["id"] for record in records}
            missing = [entry_id for entry_id, key in zip(entry_ids, keys, strict=True) if key not in found]
            if missing:
                raise RowNotFound(ENTRY, missing[0], tenant_id)
            # Entries already in the requested state are left untouched, so
            # their etags stay valid and replicas have nothing to re-read.
            changed = await conn.fetch(
                f"""UPDATE forbidden_numbers SET enabled = $3
                    WHERE tenant_id = $1 AND id = ANY($2::uuid[]) AND enabled <> $3
                    RETURNING {_COLUMNS}""",
                tenant_id,
                keys,
                enabled,
            )
            before = {str(record["id"]): _row(record) for record in records}
            for record in changed:
                after = _row(record)
                action = "enable" if enabled else "disable"
                await write_audit(conn, who, tenant_id, action, after.id, before[after.id], after)
            return len(records)

    async def page(
        self, tenant_id: str, where: EntryFilter, page_size: int, after: tuple[str, int] | None
    ) -> tuple[list[EntryRow], int]:
        """Up to `page_size` entries after (number, match_kind) `after`, and how many match in all."""
        clause, args = _filter_sql(tenant_id, where)
        async with self._tenancy.scoped(self._pool, tenant_id, isolation="repeatable_read", readonly=True) as conn:
            total = await conn.fetchval(f"SELECT count(*) FROM forbidden_numbers WHERE {clause}", *args)
            page_args = list(args)
            keyset = ""
            if after is not None:
                page_args += [after[0], after[1]]
                keyset = f" AND (number, match_kind) > (${len(args) + 1}, ${len(args) + 2}::smallint)"
            page_args.append(page_size)
            records = await conn.fetch(
                f"""SELECT {_COLUMNS} FROM forbidden_numbers WHERE {clause}{keyset}
                    ORDER BY number, match_kind LIMIT ${len(page_args)}""",
                *page_args,
            )
        return [_row(record) for record in records], int(total)

    async def export(self, tenant_id: str, where: EntryFilter, chunk: int = 1000) -> AsyncIterator[list[EntryRow]]:
        """Every matching entry ordered by number, through a server-side cursor."""
        clause, args = _filter_sql(tenant_id, where)
        async with self._tenancy.scoped(self._pool, tenant_id, isolation="repeatable_read", readonly=True) as conn:
            cursor = await conn.cursor(
                f"SELECT {_COLUMNS} FROM forbidden_numbers WHERE {clause} ORDER BY number, match_kind", *args
            )
            while True:
                records = await cursor.fetch(chunk)
                if not records:
                    return
                yield [_row(record) for record in records]

    async def candidates(self, tenant_id: str, number: str) -> list[EntryRow]:
        """Entries whose number is `number` (EXACT) or a prefix of it (PREFIX), live ones only."""
        prefixes = [number[:i] for i in range(1, len(number) + 1)]
        async with self._tenancy.scoped(self._pool, tenant_id, readonly=True) as conn:
            records = await conn.fetch(
                f"""SELECT {_COLUMNS} FROM forbidden_numbers
                    WHERE tenant_id = $1 AND NOT deleted
                      AND ((match_kind = 1 AND number = $2) OR (match_kind = 2 AND number = ANY($3::text[])))""",
                tenant_id,
                number,
                prefixes,
            )
        return [_row(record) for record in records]

    async def tenants(self, after: str | None, limit: int, only: Sequence[str] | None) -> list[tuple[str, int]]:
        """Known tenants (with live entries, or with settings), by id, after `after`, with their entry counts;
        `only`: restricted to these ids."""
        async with borrow(self._pool) as conn:
            if only is not None:
                records = await conn.fetch(
                    """SELECT t.tenant_id, (SELECT count(*) FROM forbidden_numbers f
                                            WHERE f.tenant_id = t.tenant_id AND NOT f.deleted)
                       FROM unnest($1::text[]) AS t(tenant_id)
                       WHERE ($2::text IS NULL OR t.tenant_id > $2)
                         AND (EXISTS (SELECT 1 FROM forbidden_numbers f
                                      WHERE f.tenant_id = t.tenant_id AND NOT f.deleted)
                              OR EXISTS (SELECT 1 FROM tenant_settings s WHERE s.tenant_id = t.tenant_id))
                       ORDER BY t.tenant_id LIMIT $3""",
                    sorted(set(only)),
                    after,
                    limit,
                )
            else:
                # A walk down the (tenant_id, number, match_kind) index: one probe a tenant; then the
                # first `limit` tenants with settings, merged.
                records = await conn.fetch(
                    """WITH RECURSIVE t AS (
                           (SELECT tenant_id FROM forbidden_numbers
                            WHERE NOT deleted AND ($1::text IS NULL OR tenant_id > $1)
                            ORDER BY tenant_id LIMIT 1)
                           UNION ALL
                           SELECT (SELECT tenant_id FROM forbidden_numbers
                                   WHERE NOT deleted AND tenant_id > t.tenant_id ORDER BY tenant_id LIMIT 1)
                           FROM t WHERE t.tenant_id IS NOT NULL
                       ),
                       known AS (
                           (SELECT tenant_id FROM t WHERE tenant_id IS NOT NULL LIMIT $2)
                           UNION
                           (SELECT tenant_id FROM tenant_settings
                            WHERE ($1::text IS NULL OR tenant_id > $1) ORDER BY tenant_id LIMIT $2)
                       )
                       SELECT k.tenant_id, (SELECT count(*) FROM forbidden_numbers f
                                            WHERE f.tenant_id = k.tenant_id AND NOT f.deleted)
                       FROM known k ORDER BY k.tenant_id LIMIT $2""",
                    after,
                    limit,
                )
        return [(record[0], int(record[1])) for record in records]

    async def exact_numbers(self, tenant_id: str, numbers: Sequence[str]) -> set[str]:
        """Which of these numbers the tenant's EXACT entries hold."""
        async with self._tenancy.scoped(self._pool, tenant_id, readonly=True) as conn:
            records = await conn.fetch(
                """SELECT number FROM forbidden_numbers
                   WHERE tenant_id = $1 AND NOT deleted AND match_kind = 1 AND number = ANY($2::text[])""",
                tenant_id,
                list(numbers),
            )
        return {r[0] for r in records}

    async def bare_numbers(self, tenant_id: str) -> list[EntryRow]:
        """The tenant's EXACT entries stored as bare digits: the ones a region may read as another number."""
        async with self._tenancy.scoped(self._pool, tenant_id, readonly=True) as conn:
            records = await conn.fetch(
                f"""SELECT {_COLUMNS} FROM forbidden_numbers
                    WHERE tenant_id = $1 AND NOT deleted AND match_kind = 1 AND left(number, 1) <> '+'
                    ORDER BY number""",
                tenant_id,
            )
        return [_row(record) for record in records]

    async def renumber(self, who: Who, tenant_id: str, numbers: dict[str, str], conn: Conn) -> tuple[int, int]:
        """Give entries (id -> number) their new numbers, each with its history event, in the caller's
        transaction; an entry whose new number another entry holds is left. Returns (changed, left)."""
        changed = left = 0
        for entry_id, number in numbers.items():
            before_record = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM forbidden_numbers WHERE tenant_id = $1 AND id = $2 AND NOT deleted FOR UPDATE",
                tenant_id,
                uuid.UUID(entry_id),
            )
            if before_record is None:
                continue
            try:
                async with conn.transaction():  # a savepoint: one conflict does not undo the others
                    after_record = await conn.fetchrow(
                        f"UPDATE forbidden_numbers SET number = $2 WHERE id = $1 RETURNING {_COLUMNS}",
                        uuid.UUID(entry_id),
                        number,
                    )
            except asyncpg.exceptions.UniqueViolationError:
                left += 1
                continue
            assert after_record is not None
            await write_audit(conn, who, tenant_id, "update", entry_id, _row(before_record), _row(after_record))
            changed += 1
        return changed, left

    @property
    def tenancy(self) -> Tenancy:
        return self._tenancy

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def list_audit(
        self, tenant_id: str, page_size: int, before_id: int | None, where: AuditFilter
    ) -> list[AuditRow]:
        job = None
        if where.import_job_id:
            job = _parse_id(where.import_job_id)
            if job is None:
                return []  # no import job has such an id
        async with self._tenancy.scoped(self._pool, tenant_id, readonly=True) as conn:
            records = await conn.fetch(
                """SELECT id, tenant_id, actor, action, resource_id, request_id, before, after, create_time,
                          coalesce(import_job_id::text, '') AS import_job_id, changed_fields
               FROM audit_events
               WHERE tenant_id = $1
                 AND ($2::bigint IS NULL OR id < $2)
                 AND ($3 = '' OR resource_id = $3)
                 AND ($4 = '' OR actor = $4)
                 AND ($5 = '' OR action = $5)
                 AND ($7::uuid IS NULL OR import_job_id = $7)
               ORDER BY id DESC LIMIT $6""",
                tenant_id,
                before_id,
                where.resource_id,
                where.actor,
                where.action,
                page_size,
                job,
            )
        return [
            AuditRow(
                **{
                    **record,
                    "before": _loaded(record["before"]),
                    "after": _loaded(record["after"]),
                    "changed_fields": list(record["changed_fields"]),
                }
            )
            for record in records
        ]


def _loaded(value: str | None) -> dict[str, Any] | None:
    return None if value is None else dict(json.loads(value))


def _filter_sql(tenant_id: str, where: EntryFilter) -> tuple[str, list[Any]]:
    clauses = ["tenant_id = $1", "NOT deleted"]
    args: list[Any] = [tenant_id]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if where.enabled is not None:
        clauses.append(f"enabled = {arg(where.enabled)}")
    if where.call_type is not None:
        clauses.append(f"call_type = {arg(where.call_type)}::smallint")
    if where.match_kind is not None:
        clauses.append(f"match_kind = {arg(where.match_kind)}::smallint")
    if where.number_prefix:
        clauses.append(f"starts_with(number, {arg(where.number_prefix)})")
    if where.status == ACTIVE:
        clauses.append("enabled AND (expire_time IS NULL OR expire_time > now())")
    elif where.status == DISABLED:
        clauses.append("NOT enabled")
    elif where.status == EXPIRED:
        clauses.append("enabled AND expire_time <= now()")
    if where.query:
        note = f"strpos(lower(note), lower({arg(where.query)})) > 0"
        digits = "".join(ch for ch in where.query if "0" <= ch <= "9")
        clauses.append(f"(strpos(number, {arg(digits)}) > 0 OR {note})" if digits else note)
    return " AND ".join(clauses), args

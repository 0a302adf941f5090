"""Queries on forbidden numbers and their audit trail.

Every change writes its audit event in its own transaction, so a change
that rolls back leaves no event and a committed one always has one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from screening.domain.errors import Aborted, AlreadyExists, NotFound
from screening.domain.model import Actor, CallType, EntryStatus, Filters, ForbiddenNumber, MatchKind
from storage.db import Conn, borrow

_COLUMNS = (
    "id, tenant_id, number, match_kind, call_type, enabled, note, expire_time, create_time, update_time, revision"
)

# Fields an update may set, mapped to their columns.
UPDATABLE = ("number", "match_kind", "call_type", "enabled", "note", "expire_time")


def _etag(revision: int) -> str:
    return str(revision)


def _row_to_entry(row: asyncpg.Record) -> ForbiddenNumber:
    return ForbiddenNumber(
        id=str(row["id"]),
        tenant_id=row["tenant_id"],
        number=row["number"],
        match_kind=MatchKind(row["match_kind"]),
        call_type=CallType(row["call_type"]),
        enabled=row["enabled"],
        note=row["note"],
        expire_time=row["expire_time"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        etag=_etag(row["revision"]),
    )


def _audit_json(entry: ForbiddenNumber | None) -> str | None:
    if entry is None:
        return None
    return json.dumps(
        {
            "id": entry.id,
            "number": entry.number,
            "match_kind": entry.match_kind.name,
            "call_type": entry.call_type.name,
            "enabled": entry.enabled,
            "note": entry.note,
            "expire_time": entry.expire_time.isoformat() if entry.expire_time else None,
            "etag": entry.etag,
        }
    )


def _parse_id(entry_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(entry_id)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class NewEntry:
    tenant_id: str
    number: str
    match_kind: MatchKind
    call_type: CallType
    enabled: bool
    note: str
    expire_time: datetime | None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    tenant_id: str
    actor: str
    action: str
    resource_id: str
    request_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    create_time: datetime


async def write_audit(
    conn: Conn,
    actor: Actor,
    tenant_id: str,
    action: str,
    resource_id: str,
    before: ForbiddenNumber | None = None,
    after: ForbiddenNumber | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO audit_events (tenant_id, actor, action, resource_id, request_id, before, after)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)""",
        tenant_id,
        actor.name,
        action,
        resource_id,
        actor.request_id,
        _audit_json(before),
        _audit_json(after),
    )


class ForbiddenNumberStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, actor: Actor, new: NewEntry) -> ForbiddenNumber:
        async with borrow(self._pool) as conn, conn.transaction():
            try:
                row = await conn.fetchrow(
                    f"""INSERT INTO forbidden_numbers
                            (tenant_id, number, match_kind, call_type, enabled, note, expire_time)
                        VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLUMNS}""",
                    new.tenant_id,
                    new.number,
                    new.match_kind,
                    new.call_type,
                    new.enabled,
                    new.note,
                    new.expire_time,
                )
            except asyncpg.exceptions.UniqueViolationError:
                raise _duplicate(new.tenant_id, new.number, new.match_kind) from None
            assert row is not None
            entry = _row_to_entry(row)
            await write_audit(conn, actor, entry.tenant_id, "create", entry.id, after=entry)
            return entry

    async def get(self, tenant_id: str, entry_id: str) -> ForbiddenNumber:
        key = _parse_id(entry_id)
        if key is None:
            raise NotFound("forbidden number", entry_id, tenant_id)
        async with borrow(self._pool) as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM forbidden_numbers WHERE tenant_id = $1 AND id = $2 AND NOT deleted",
                tenant_id,
                key,
            )
        if row is None:
            raise NotFound("forbidden number", entry_id, tenant_id)
        return _row_to_entry(row)

    async def _lock(self, conn: Conn, tenant_id: str, entry_id: str, etag: str) -> ForbiddenNumber:
        key = _parse_id(entry_id)
        row = None
        if key is not None:
            row = await conn.fetchrow(
                f"""SELECT {_COLUMNS} FROM forbidden_numbers
                    WHERE tenant_id = $1 AND id = $2 AND NOT deleted FOR UPDATE""",
                tenant_id,
                key,
            )
        if row is None:
            raise NotFound("forbidden number", entry_id, tenant_id)
        current = _row_to_entry(row)
        if etag and etag != current.etag:
            raise Aborted(
                f"etag {etag!r} of forbidden number {entry_id!r} is stale; the current etag is {current.etag!r}"
            )
        return current

    async def update(
        self, actor: Actor, tenant_id: str, entry_id: str, etag: str, changes: Mapping[str, Any]
    ) -> ForbiddenNumber:
        async with borrow(self._pool) as conn, conn.transaction():
            before = await self._lock(conn, tenant_id, entry_id, etag)
            merged = {field: changes.get(field, getattr(before, field)) for field in UPDATABLE}
            try:
                row = await conn.fetchrow(
                    f"""UPDATE forbidden_numbers
                        SET number = $3, match_kind = $4, call_type = $5, enabled = $6, note = $7, expire_time = $8
                        WHERE tenant_id = $1 AND id = $2 RETURNING {_COLUMNS}""",
                    tenant_id,
                    uuid.UUID(before.id),
                    *(merged[field] for field in UPDATABLE),
                )
            except asyncpg.exceptions.UniqueViolationError:
                raise _duplicate(tenant_id, merged["number"], merged["match_kind"]) from None
            assert row is not None
            after = _row_to_entry(row)
            await write_audit(conn, actor, tenant_id, "update", after.id, before=before, after=after)
            return after

    async def delete(self, actor: Actor, tenant_id: str, entry_id: str, etag: str) -> None:
        async with borrow(self._pool) as conn, conn.transaction():
            before = await self._lock(conn, tenant_id, entry_id, etag)
            await conn.execute(
                "UPDATE forbidden_numbers SET deleted = true WHERE id = $1",
                uuid.UUID(before.id),
            )
            await write_audit(conn, actor, tenant_id, "delete", before.id, before=before)

    async def set_enabled(self, actor: Actor, tenant_id: str, entry_ids: Sequence[str], enabled: bool) -> int:
        keys: list[uuid.UUID] = []
        for entry_id in entry_ids:
            key = _parse_id(entry_id)
            if key is None:
                raise NotFound("forbidden number", entry_id, tenant_id)
            keys.append(key)
        async with borrow(self._pool) as conn, conn.transaction():
            rows = await conn.fetch(
                f"""SELECT {_COLUMNS} FROM forbidden_numbers
                    WHERE tenant_id = $1 AND id = ANY($2::uuid[]) AND NOT deleted
                    ORDER BY id FOR UPDATE""",
                tenant_id,
                keys,
            )
            found = {row["id"] for row in rows}
            missing = [entry_id for entry_id, key in zip(entry_ids, keys, strict=True) if key not in found]
            if missing:
                raise NotFound("forbidden number", missing[0], tenant_id)
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
            by_id = {str(row["id"]): _row_to_entry(row) for row in rows}
            for row in changed:
                after = _row_to_entry(row)
                await write_audit(
                    conn, actor, tenant_id, "enable" if enabled else "disable", after.id, by_id[after.id], after
                )
            return len(rows)

    async def page(
        self, tenant_id: str, filters: Filters, page_size: int, after: tuple[str, int] | None
    ) -> tuple[list[ForbiddenNumber], int]:
        where, args = _filter_sql(tenant_id, filters)
        async with borrow(self._pool) as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            total = await conn.fetchval(f"SELECT count(*) FROM forbidden_numbers WHERE {where}", *args)
            page_args = list(args)
            keyset = ""
            if after is not None:
                page_args += [after[0], after[1]]
                keyset = f" AND (number, match_kind) > (${len(args) + 1}, ${len(args) + 2}::smallint)"
            page_args.append(page_size)
            rows = await conn.fetch(
                f"""SELECT {_COLUMNS} FROM forbidden_numbers WHERE {where}{keyset}
                    ORDER BY number, match_kind LIMIT ${len(page_args)}""",
                *page_args,
            )
        return [_row_to_entry(row) for row in rows], int(total)

    async def export(self, tenant_id: str, filters: Filters, chunk: int = 1000) -> AsyncIterator[list[ForbiddenNumber]]:
        """Every matching entry ordered by number, through a server-side cursor."""
        where, args = _filter_sql(tenant_id, filters)
        async with borrow(self._pool) as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            cursor = await conn.cursor(
                f"SELECT {_COLUMNS} FROM forbidden_numbers WHERE {where} ORDER BY number, match_kind", *args
            )
            while True:
                rows = await cursor.fetch(chunk)
                if not rows:
                    return
                yield [_row_to_entry(row) for row in rows]

    async def candidates(self, tenant_id: str, number: str) -> list[ForbiddenNumber]:
        """Entries whose number is `number` (EXACT) or a prefix of it (PREFIX), live ones only."""
        prefixes = [number[:i] for i in range(1, len(number) + 1)]
        async with borrow(self._pool) as conn:
            rows = await conn.fetch(
                f"""SELECT {_COLUMNS} FROM forbidden_numbers
                    WHERE tenant_id = $1 AND NOT deleted
                      AND ((match_kind = 1 AND number = $2) OR (match_kind = 2 AND number = ANY($3::text[])))""",
                tenant_id,
                number,
                prefixes,
            )
        return [_row_to_entry(row) for row in rows]

    async def tenants(self, after: str | None, limit: int, only: Sequence[str] | None) -> list[tuple[str, int]]:
        """Tenants with live entries, by id, after `after`; `only`: restricted to these ids."""
        async with borrow(self._pool) as conn:
            if only is not None:
                rows = await conn.fetch(
                    """SELECT t.tenant_id, (SELECT count(*) FROM forbidden_numbers f
                                            WHERE f.tenant_id = t.tenant_id AND NOT f.deleted)
                       FROM unnest($1::text[]) AS t(tenant_id)
                       WHERE ($2::text IS NULL OR t.tenant_id > $2)
                         AND EXISTS (SELECT 1 FROM forbidden_numbers f
                                     WHERE f.tenant_id = t.tenant_id AND NOT f.deleted)
                       ORDER BY t.tenant_id LIMIT $3""",
                    sorted(set(only)),
                    after,
                    limit,
                )
            else:
                # A walk down the (tenant_id, number, match_kind) index: one probe a tenant.
                rows = await conn.fetch(
                    """WITH RECURSIVE t AS (
                           (SELECT tenant_id FROM forbidden_numbers
                            WHERE NOT deleted AND ($1::text IS NULL OR tenant_id > $1)
                            ORDER BY tenant_id LIMIT 1)
                           UNION ALL
                           SELECT (SELECT tenant_id FROM forbidden_numbers
                                   WHERE NOT deleted AND tenant_id > t.tenant_id ORDER BY tenant_id LIMIT 1)
                           FROM t WHERE t.tenant_id IS NOT NULL
                       )
                       SELECT t.tenant_id, (SELECT count(*) FROM forbidden_numbers f
                                            WHERE f.tenant_id = t.tenant_id AND NOT f.deleted)
                       FROM (SELECT tenant_id FROM t WHERE tenant_id IS NOT NULL LIMIT $2) t""",
                    after,
                    limit,
                )
        return [(row[0], int(row[1])) for row in rows]

    async def list_audit(
        self, tenant_id: str, page_size: int, before_id: int | None, resource_id: str, actor: str, action: str
    ) -> list[AuditRecord]:
        async with borrow(self._pool) as conn:
            rows = await conn.fetch(
                """SELECT id, tenant_id, actor, action, resource_id, request_id, before, after, create_time
               FROM audit_events
               WHERE tenant_id = $1
                 AND ($2::bigint IS NULL OR id < $2)
                 AND ($3 = '' OR resource_id = $3)
                 AND ($4 = '' OR actor = $4)
                 AND ($5 = '' OR action = $5)
               ORDER BY id DESC LIMIT $6""",
                tenant_id,
                before_id,
                resource_id,
                actor,
                action,
                page_size,
            )
        return [
            AuditRecord(
                id=row["id"],
                tenant_id=row["tenant_id"],
                actor=row["actor"],
                action=row["action"],
                resource_id=row["resource_id"],
                request_id=row["request_id"],
                before=json.loads(row["before"]) if row["before"] is not None else None,
                after=json.loads(row["after"]) if row["after"] is not None else None,
                create_time=row["create_time"],
            )
            for row in rows
        ]


def _filter_sql(tenant_id: str, filters: Filters) -> tuple[str, list[Any]]:
    clauses = ["tenant_id = $1", "NOT deleted"]
    args: list[Any] = [tenant_id]

    def add(template: str, value: Any) -> None:
        args.append(value)
        clauses.append(template.format(f"${len(args)}"))

    if filters.enabled is not None:
        add("enabled = {}", filters.enabled)
    if filters.call_type is not None:
        add("call_type = {}::smallint", int(filters.call_type))
    if filters.match_kind is not None:
        add("match_kind = {}::smallint", int(filters.match_kind))
    if filters.number_prefix:
        add("starts_with(number, {})", filters.number_prefix)
    if filters.status is EntryStatus.ACTIVE:
        clauses.append("enabled AND (expire_time IS NULL OR expire_time > now())")
    elif filters.status is EntryStatus.DISABLED:
        clauses.append("NOT enabled")
    elif filters.status is EntryStatus.EXPIRED:
        clauses.append("enabled AND expire_time <= now()")
    if filters.query:
        digits = "".join(ch for ch in filters.query if "0" <= ch <= "9")
        args.append(filters.query)
        note = f"strpos(lower(note), lower(${len(args)})) > 0"
        if digits:
            args.append(digits)
            clauses.append(f"(strpos(number, ${len(args)}) > 0 OR {note})")
        else:
            clauses.append(note)
    return " AND ".join(clauses), args


def _duplicate(tenant_id: str, number: str, match_kind: MatchKind) -> AlreadyExists:
    return AlreadyExists(f"tenant {tenant_id!r} already has a {MatchKind(match_kind).name} entry for number {number!r}")

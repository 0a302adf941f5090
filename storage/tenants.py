"""Tenant settings: read, written with their audit event, and followed by every replica."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from storage.changes import Position, current_position
from storage.db import Conn, borrow
from storage.errors import StaleRevision
from storage.rows import Who, columns
from storage.tenancy import Tenancy


@dataclass(frozen=True, slots=True)
class SettingsRow:
    tenant_id: str
    display_name: str
    region: str
    withheld_policy: int  # 1 allow, 2 block
    subscribed_lists: list[str]
    revision: int  # 0: never written (the defaults)
    update_time: datetime | None


@dataclass(frozen=True, slots=True)
class SettingsValues:
    display_name: str
    region: str
    withheld_policy: int
    subscribed_lists: list[str]


_COLUMNS = ", ".join(columns(SettingsRow))
_VALUES = columns(SettingsValues)


def defaults(tenant_id: str) -> SettingsRow:
    return SettingsRow(tenant_id, "", "", 1, [], 0, None)


def _row(record: asyncpg.Record) -> SettingsRow:
    return SettingsRow(**{**record, "subscribed_lists": list(record["subscribed_lists"])})


class TenantSettingsStore:
    def __init__(self, pool: asyncpg.Pool, tenancy: Tenancy | None = None) -> None:
        self._pool = pool
        self._tenancy = Tenancy() if tenancy is None else tenancy

    async def get(self, tenant_id: str) -> SettingsRow:
        async with self._tenancy.scoped(self._pool, tenant_id, readonly=True) as conn:
            record = await conn.fetchrow(f"SELECT {_COLUMNS} FROM tenant_settings WHERE tenant_id = $1", tenant_id)
        return defaults(tenant_id) if record is None else _row(record)

    async def update(
        self, who: Who, tenant_id: str, revision: int | None, changes: dict[str, Any], action: str = "settings"
    ) -> SettingsRow:
        """Write the settings in `changes` (names of SettingsValues), with an audit event; nothing when unchanged."""
        async with self._tenancy.scoped(self._pool, tenant_id) as conn:
            return await self.update_in(conn, who, tenant_id, revision, changes, action)

    async def update_in(
        self, conn: Conn, who: Who, tenant_id: str, revision: int | None, changes: dict[str, Any], action: str
    ) -> SettingsRow:
        """`update` inside a transaction the caller holds (bound to the tenant)."""
        record = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM tenant_settings WHERE tenant_id = $1 FOR UPDATE", tenant_id
        )
        before = defaults(tenant_id) if record is None else _row(record)
        if revision is not None and revision != before.revision:
            raise StaleRevision(tenant_id, revision, before.revision)
        current = SettingsValues(*(getattr(before, name) for name in _VALUES))
        merged = dataclasses.replace(current, **changes)
        if merged == current and record is not None:
            return before
        names = ", ".join(_VALUES)
        params = ", ".join(f"${i + 2}" for i in range(len(_VALUES)))
        updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in _VALUES)
        written = await conn.fetchrow(
            f"""INSERT INTO tenant_settings (tenant_id, {names}) VALUES ($1, {params})
                ON CONFLICT (tenant_id) DO UPDATE SET {updates} RETURNING {_COLUMNS}""",
            tenant_id,
            *dataclasses.astuple(merged),
        )
        assert written is not None
        after = _row(written)
        changed = [n for n in _VALUES if getattr(before, n) != getattr(after, n)]
        await conn.execute(
            """INSERT INTO audit_events
                   (tenant_id, actor, action, resource_id, request_id, before, after, changed_fields)
               VALUES ($1, $2, $3, $1, $4, $5::jsonb, $6::jsonb, $7)""",
            tenant_id,
            who.actor,
            action,
            who.request_id,
            _described(before) if record is not None else None,
            _described(after),
            changed,
        )
        return after

    async def named(self, tenant_ids: Sequence[str]) -> dict[str, SettingsRow]:
        """Settings of several tenants (a cross-tenant read: listings the caller is allowed)."""
        async with borrow(self._pool) as conn:
            records = await conn.fetch(
                f"SELECT {_COLUMNS} FROM tenant_settings WHERE tenant_id = ANY($1::text[])", list(tenant_ids)
            )
        return {r["tenant_id"]: _row(r) for r in records}


def _described(row: SettingsRow) -> str:
    return json.dumps({name: getattr(row, name) for name in (*_VALUES, "revision")}, ensure_ascii=False)


# ------------------------------------------------------------- the feed


async def read_since(conn: Conn, since: Position | None) -> tuple[Position, list[SettingsRow]]:
    """The rows stamped at or above the watermark of `since` (None: every row), and the snapshot's position.

    As the entries' feed (storage/changes.py): every transaction below the
    snapshot's xmin has ended, so nothing can appear behind it later.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        position = await current_position(conn)
        records = await conn.fetch(
            f"SELECT {_COLUMNS} FROM tenant_settings WHERE xid >= $1::text::xid8",
            str(0 if since is None else since.watermark),
        )
    return position, [_row(r) for r in records]

"""Transactions bound to one tenant: PostgreSQL's row-level security as a second wall.

Admin queries run inside `scoped(...)`: the transaction switches to the role
screening_tenant and names the tenant (both LOCAL, so they end with it), and
the policies of migration 0009 hide every other tenant's rows. Where the role
could not be made (storage/migrations/0009_row_level_security.sql), the
transaction still names the tenant and the application's checks stand alone.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Literal

import asyncpg

from storage.db import Conn, borrow

log = logging.getLogger(__name__)

ROLE = "screening_tenant"
Isolation = Literal["read_committed", "read_uncommitted", "serializable", "repeatable_read"]


class Tenancy:
    def __init__(self) -> None:
        # Known once the database says whether this login may act as ROLE.
        self.role: str | None = None

    async def check(self, conn: Conn) -> bool:
        """Whether this login may act as the tenant role; logs when it may not."""
        usable = await conn.fetchval(
            """SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) THEN false
                           WHEN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN true
                           ELSE pg_has_role(current_user, $1, 'MEMBER') END""",
            ROLE,
        )
        if usable:
            self.role = ROLE
        else:
            log.warning(
                "row-level security is off: this database user cannot act as %s (create the role and grant it)",
                ROLE,
            )
        return bool(usable)

    @contextlib.asynccontextmanager
    async def scoped(
        self, pool: asyncpg.Pool, tenant_id: str, *, isolation: Isolation | None = None, readonly: bool = False
    ) -> AsyncIterator[Conn]:
        """A pooled connection in a transaction that sees and writes only `tenant_id`'s rows."""
        async with borrow(pool) as conn, conn.transaction(isolation=isolation, readonly=readonly):
            await self.enter(conn, tenant_id)
            yield conn

    async def enter(self, conn: Conn, tenant_id: str) -> None:
        """Bind the transaction `conn` is in to `tenant_id`."""
        if self.role is None:
            await conn.execute("SELECT set_config('screening.tenant', $1, true)", tenant_id)
        else:
            await conn.execute(
                "SELECT set_config('screening.tenant', $1, true), set_config('role', $2, true)", tenant_id, self.role
            )

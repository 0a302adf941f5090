"""Every tenant's settings in memory, followed from PostgreSQL: what screening reads of a tenant besides its entries.

A small table (one row a tenant that has settings), read whole at start and
then by transaction id as the entries' feed is, every `poll_interval`. A
change reaches every replica within that interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import asyncpg

from storage import changes, tenants
from storage.db import borrow
from storage.errors import RETRYABLE

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TenantRules:
    """What screening needs of a tenant's settings, ready to use."""

    region: str | None
    block_withheld: bool
    lists: tuple[str, ...]


class SettingsFollower:
    def __init__(self, pool: asyncpg.Pool, default_region: str | None, poll_interval: float = 0.5) -> None:
        self._pool = pool
        self._default_region = default_region
        self._poll_interval = poll_interval
        self._position: changes.Position | None = None
        self.by_tenant: dict[str, TenantRules] = {}
        self.display_names: dict[str, str] = {}
        self.loaded = asyncio.Event()
        self._wake = asyncio.Event()

    def default(self) -> TenantRules:
        return TenantRules(self._default_region, False, ())

    def rules(self, tenant_id: str) -> TenantRules | None:
        """The tenant's rules; None when it has no settings (the defaults apply)."""
        return self.by_tenant.get(tenant_id)

    def region(self, tenant_id: str) -> str | None:
        found = self.by_tenant.get(tenant_id)
        return self._default_region if found is None else found.region

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                await self.catch_up()
                failures = 0
                self.loaded.set()
            except RETRYABLE as exc:
                failures += 1
                log.warning("cannot read tenant settings (%d in a row): %s: %s", failures, type(exc).__name__, exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval if not failures else min(0.05 * 2**failures, 1.0)):
                    await self._wake.wait()
            self._wake.clear()

    async def catch_up(self) -> None:
        async with borrow(self._pool) as conn:
            if self._position is not None and not await changes.moved(conn, self._position):
                return
            position, rows = await tenants.read_since(conn, self._position)
        for row in rows:
            self.by_tenant[row.tenant_id] = TenantRules(
                region=row.region or self._default_region,
                block_withheld=row.withheld_policy == 2,
                lists=tuple(row.subscribed_lists),
            )
            self.display_names[row.tenant_id] = row.display_name
        if self._position is None or position.watermark >= self._position.watermark:
            self._position = position

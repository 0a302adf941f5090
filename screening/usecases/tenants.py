"""A tenant's settings, and moving its entries to a region's reading of their numbers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from screening.domain import validation as check
from screening.domain.errors import InvalidArgument
from screening.domain.model import Actor, RegionChange, TenantSettings, WithheldPolicy
from screening.domain.numbers import is_valid_region, national_to_e164
from screening.usecases.records import entry_of, etag_of, revision_of, translated, who
from storage.forbidden_numbers import ForbiddenNumberStore
from storage.tenants import SettingsRow, TenantSettingsStore

MAX_DISPLAY_NAME = 200
MAX_LISTS = 20
MAX_CHANGES_SHOWN = 1000
UPDATABLE = ("display_name", "region", "withheld_policy", "subscribed_lists")


def settings_of(row: SettingsRow) -> TenantSettings:
    return TenantSettings(
        tenant_id=row.tenant_id,
        display_name=row.display_name,
        region=row.region,
        withheld_policy=WithheldPolicy(row.withheld_policy),
        subscribed_lists=list(row.subscribed_lists),
        etag=etag_of(row.revision) if row.revision else "",
        update_time=row.update_time,
    )


def _region(value: str, field: str) -> str:
    region = value.strip().upper()
    if region and not is_valid_region(region):
        raise InvalidArgument(field, value, "is not a region libphonenumber knows (e.g. US, CN, GB)")
    return region


class Tenants:
    def __init__(
        self,
        store: TenantSettingsStore,
        numbers: ForbiddenNumberStore,
        default_region: str | None,
        region_of: Callable[[str], str | None],
    ) -> None:
        self._store = store
        self._numbers = numbers
        self._default_region = default_region
        self._region_of = region_of

    async def display_names(self, tenant_ids: list[str]) -> dict[str, str]:
        return {t: row.display_name for t, row in (await self._store.named(tenant_ids)).items()}

    async def get(self, tenant_id: str) -> TenantSettings:
        return settings_of(await self._store.get(check.tenant_id(tenant_id)))

    async def update(self, actor: Actor, *, tenant_id: str, etag: str, changes: Mapping[str, Any]) -> TenantSettings:
        prefix = "settings."
        tenant = check.tenant_id(tenant_id, prefix + "tenant_id")
        unknown = set(changes) - set(UPDATABLE)
        if unknown:
            raise InvalidArgument("update_mask", sorted(unknown)[0], f"is not updatable; one of {', '.join(UPDATABLE)}")
        clean: dict[str, Any] = {}
        if "display_name" in changes:
            name = str(changes["display_name"])
            if len(name) > MAX_DISPLAY_NAME or "\x00" in name:
                raise InvalidArgument(
                    prefix + "display_name", name, f"must be at most {MAX_DISPLAY_NAME} characters, without NUL"
                )
            clean["display_name"] = name
        if "region" in changes:
            clean["region"] = _region(str(changes["region"]), prefix + "region")
        if "withheld_policy" in changes:
            value = int(changes["withheld_policy"])
            if value not in (0, 1, 2):
                raise InvalidArgument(
                    prefix + "withheld_policy", value, "one of WITHHELD_POLICY_ALLOW, WITHHELD_POLICY_BLOCK"
                )
            clean["withheld_policy"] = value or 1
        if "subscribed_lists" in changes:
            lists = list(dict.fromkeys(changes["subscribed_lists"]))
            if len(lists) > MAX_LISTS:
                raise InvalidArgument(prefix + "subscribed_lists", f"{len(lists)} lists", f"at most {MAX_LISTS}")
            for i, name in enumerate(lists):
                check.tenant_id(name, f"{prefix}subscribed_lists[{i}]")
                if not name.startswith(check.LIST_PREFIX) or name == tenant:
                    raise InvalidArgument(
                        f"{prefix}subscribed_lists[{i}]", name, "is not a shared list (its id starts with '@')"
                    )
            clean["subscribed_lists"] = lists
        revision = revision_of(etag, tenant)
        with translated():
            return settings_of(await self._store.update(who(actor), tenant, revision, clean))

    async def review(self, tenant_id: str, region: str) -> tuple[list[RegionChange], int, int]:
        """The entries `region` reads as other numbers: (the first ones, how many in all, how many would clash)."""
        tenant = check.tenant_id(tenant_id)
        changes, conflicts = await self._changes(tenant, self._chosen(tenant, region))
        return changes[:MAX_CHANGES_SHOWN], len(changes), conflicts

    async def convert(self, actor: Actor, tenant_id: str, region: str) -> tuple[int, int, TenantSettings]:
        """Renumber those entries and make `region` the tenant's, in one transaction; clashing entries stay."""
        tenant = check.tenant_id(tenant_id)
        chosen = self._chosen(tenant, region)
        if not chosen:
            raise InvalidArgument("region", region, "is required: the region to read the numbers in")
        changes, _ = await self._changes(tenant, chosen)
        numbers = {c.entry.id: c.number_in_region for c in changes}
        store = self._numbers
        with translated():
            async with store.tenancy.scoped(store.pool, tenant) as conn:
                converted, left = await store.renumber(who(actor), tenant, numbers, conn)
                row = await self._store.update_in(conn, who(actor), tenant, None, {"region": chosen}, "convert_region")
        return converted, left, settings_of(row)

    def _chosen(self, tenant: str, region: str) -> str:
        return _region(region, "region") or (self._region_of(tenant) or "")

    async def _changes(self, tenant: str, region: str) -> tuple[list[RegionChange], int]:
        if not region:
            return [], 0
        rows = await self._numbers.bare_numbers(tenant)
        stored = {row.number for row in rows}
        changes: list[RegionChange] = []
        for row in rows:
            read = national_to_e164(row.number, region)
            if read is not None and read != row.number:
                changes.append(RegionChange(entry_of(row), read))
        # A converted number another of the tenant's entries already holds would clash.
        taken = await self._numbers.exact_numbers(tenant, [c.number_in_region for c in changes])
        conflicts = sum(1 for c in changes if c.number_in_region in taken or c.number_in_region in stored)
        return changes, conflicts

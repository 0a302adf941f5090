"""Managing forbidden numbers: validation and paging over the store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from screening.domain import validation as check
from screening.domain.errors import InvalidArgument
from screening.domain.fields import UPDATABLE
from screening.domain.model import Actor, AuditEvent, Direction, Filters, ForbiddenNumber, MatchKind
from screening.domain.numbers import normalize
from screening.domain.paging import scope
from screening.usecases.pages import Pages
from screening.usecases.records import (
    audit_event_of,
    entry_filter,
    entry_of,
    revision_of,
    stored_changes,
    translated,
    values_of,
    who,
)
from storage.forbidden_numbers import ForbiddenNumberStore
from storage.rows import AuditFilter

MAX_BULK_IDS = 1000
RegionOf = Callable[[str], str | None]


def _specificity(entry: ForbiddenNumber) -> tuple[bool, int]:
    """Sorts the entry that decides over another first: an exact entry before any prefix, then longer prefixes."""
    return entry.match_kind is not MatchKind.EXACT, -len(entry.number)


def _as_seen_by_a_subscriber(entry: ForbiddenNumber) -> ForbiddenNumber:
    """A shared list's entry without what is the list keeper's own: its note, and its hits (every tenant's calls)."""
    return replace(entry, note="", hit_count=0, last_hit_time=None)


@dataclass(frozen=True, slots=True)
class Candidate:
    """An entry considered for a screened number, and what it made of the call."""

    entry: ForbiddenNumber
    qualifies: bool
    decided: bool
    explanation: str


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[ForbiddenNumber]
    next_page_token: str
    total_size: int


class ForbiddenNumbers:
    """The admin use cases. Field names in errors are the API's field paths."""

    def __init__(
        self, store: ForbiddenNumberStore, region: str | None, pages: Pages, region_of: RegionOf | None = None
    ) -> None:
        self._store = store
        # The region that reads a tenant's national numbers: its own setting, else the server's.
        self._region_of: RegionOf = (lambda _tenant: region) if region_of is None else region_of
        self._pages = pages

    async def create(
        self,
        actor: Actor,
        *,
        tenant_id: str,
        number: str,
        match_kind: int,
        call_type: int,
        enabled: bool | None,
        note: str,
        expire_time: datetime | None,
        action: int = 0,
    ) -> ForbiddenNumber:
        prefix = "forbidden_number."
        kind = check.match_kind(match_kind, prefix + "match_kind")
        tenant = check.tenant_id(tenant_id, prefix + "tenant_id")
        values = values_of(
            {
                "number": check.number(number, kind, self._region_of(tenant), prefix + "number"),
                "match_kind": kind,
                "call_type": check.call_type(call_type, prefix + "call_type"),
                "enabled": True if enabled is None else enabled,
                "note": check.note(note, prefix + "note"),
                "expire_time": check.future_expire_time(expire_time, prefix + "expire_time"),
                "action": check.action(action, prefix + "action"),
            }
        )
        with translated():
            return entry_of(await self._store.create(who(actor), tenant, values))

    async def get(self, tenant_id: str, entry_id: str) -> ForbiddenNumber:
        with translated():
            return entry_of(await self._store.get(check.tenant_id(tenant_id), check.required_id(entry_id)))

    async def update(
        self, actor: Actor, *, tenant_id: str, entry_id: str, etag: str, changes: Mapping[str, Any]
    ) -> ForbiddenNumber:
        """Apply `changes` (a subset of UPDATABLE with raw API values)."""
        prefix = "forbidden_number."
        tenant = check.tenant_id(tenant_id, prefix + "tenant_id")
        entry_id = check.required_id(entry_id, prefix + "id")
        unknown = set(changes) - set(UPDATABLE)
        if unknown:
            raise InvalidArgument(
                "update_mask", sorted(unknown)[0], f"is not updatable; updatable: {', '.join(UPDATABLE)}"
            )
        clean: dict[str, Any] = {}
        if "match_kind" in changes:
            clean["match_kind"] = check.match_kind(changes["match_kind"], prefix + "match_kind")
        if "call_type" in changes:
            clean["call_type"] = check.call_type(changes["call_type"], prefix + "call_type")
        if "enabled" in changes:
            clean["enabled"] = True if changes["enabled"] is None else bool(changes["enabled"])
        if "note" in changes:
            clean["note"] = check.note(changes["note"], prefix + "note")
        if "expire_time" in changes:
            clean["expire_time"] = check.expire_time(changes["expire_time"], prefix + "expire_time")
        if "action" in changes:
            clean["action"] = check.action(changes["action"], prefix + "action")
        if "number" in changes or "match_kind" in changes:
            # The number's form depends on the kind; either may come from the stored entry.
            kind: MatchKind | None = clean.get("match_kind")
            raw: str | None = changes.get("number")
            if kind is None or raw is None:
                current = await self.get(tenant, entry_id)
                kind = kind or current.match_kind
                raw = current.number if raw is None else raw
            clean["number"] = check.number(raw, kind, self._region_of(tenant), prefix + "number")
        revision = revision_of(etag, entry_id)
        with translated():
            return entry_of(await self._store.update(who(actor), tenant, entry_id, revision, stored_changes(clean)))

    async def delete(self, actor: Actor, *, tenant_id: str, entry_id: str, etag: str) -> None:
        tenant, entry_id = check.tenant_id(tenant_id), check.required_id(entry_id)
        with translated():
            await self._store.delete(who(actor), tenant, entry_id, revision_of(etag, entry_id))

    async def set_enabled(self, actor: Actor, *, tenant_id: str, entry_ids: Sequence[str], enabled: bool) -> int:
        tenant = check.tenant_id(tenant_id)
        if not entry_ids:
            raise InvalidArgument("ids", [], "must name at least one entry")
        if len(entry_ids) > MAX_BULK_IDS:
            raise InvalidArgument("ids", f"{len(entry_ids)} ids", f"at most {MAX_BULK_IDS} a call")
        unique = list(dict.fromkeys(check.required_id(i, "ids") for i in entry_ids))
        with translated():
            return await self._store.set_enabled(who(actor), tenant, unique, enabled)

    def filters(
        self, *, enabled: bool | None, call_type: int, match_kind: int, number_prefix: str, status: int, query: str
    ) -> Filters:
        prefix = "filters."
        return Filters(
            enabled=enabled,
            call_type=check.optional_call_type(call_type, prefix + "call_type"),
            match_kind=check.optional_match_kind(match_kind, prefix + "match_kind"),
            number_prefix=normalize(number_prefix, field=prefix + "number_prefix", prefix=True, allow_empty=True),
            status=check.optional_status(status, prefix + "status"),
            query=check.query(query, prefix + "query"),
        )

    async def list_entries(self, *, tenant_id: str, filters: Filters, page_size: int, page_token: str) -> Page:
        tenant = check.tenant_id(tenant_id)
        size = check.page_size(page_size)
        query = scope(tenant, filters)
        tokens = await self._pages.tokens()
        after = None
        if page_token:
            number, kind = tokens.decode(page_token, query, (str, int))
            after = (number, kind)
        rows, total = await self._store.page(tenant, entry_filter(filters), size + 1, after)
        entries = [entry_of(row) for row in rows]
        token = ""
        if len(entries) > size:
            entries = entries[:size]
            last = entries[-1]
            token = tokens.encode(query, [last.number, int(last.match_kind)])
        return Page(entries, token, total)

    async def export(self, *, tenant_id: str, filters: Filters) -> AsyncIterator[list[ForbiddenNumber]]:
        async for chunk in self._store.export(check.tenant_id(tenant_id), entry_filter(filters)):
            yield [entry_of(row) for row in chunk]

    async def explain(
        self, tenant_id: str, number: str, direction: Direction, decided_id: str, lists: Sequence[str] = ()
    ) -> list[Candidate]:
        """The stored entries that could decide a screen of `number` (normalized), in the order they decide.

        They are the tenant's and those of the shared lists it subscribes to
        (`lists`, in subscription order): the most specific first, and among
        entries as specific the tenant's own, then each list's in turn.
        `decided_id` is the entry the replica's answer named ("" when none
        did): the database may be a moment ahead of the replica's memory.
        """
        if not number:
            return []
        owners = [check.tenant_id(tenant_id), *lists]
        found = [
            (rank, entry_of(row) if rank == 0 else _as_seen_by_a_subscriber(entry_of(row)))
            for rank, owner in enumerate(owners)
            for row in await self._store.candidates(owner, number)
        ]
        found.sort(key=lambda ranked: (_specificity(ranked[1]), ranked[0]))
        decider = next((entry for _, entry in found if entry.id == decided_id), None)
        now = datetime.now(UTC)
        explained = []
        for _, entry in found:
            expired = entry.expire_time is not None and entry.expire_time <= now
            covers = entry.call_type.covers(direction)
            qualifies = entry.enabled and not expired and covers
            decided = entry.id == decided_id
            if decided:
                why = (
                    "decided: exact match"
                    if entry.match_kind is MatchKind.EXACT
                    else "decided: longest qualifying prefix"
                )
            elif not entry.enabled:
                why = "disabled"
            elif expired:
                why = f"expired at {entry.expire_time.isoformat() if entry.expire_time else ''}"
            elif not covers:
                why = f"forbids {entry.call_type.name.lower()} calls only"
            elif decider is not None and _specificity(decider) == _specificity(entry):
                why = "an entry as specific decided first: the tenant's own, then the lists in subscription order"
            elif decided_id:
                why = "a more specific entry decided"
            else:
                why = "not applied on this replica yet"
            explained.append(Candidate(entry, qualifies, decided, why))
        return explained

    async def tenants(
        self, *, page_size: int, page_token: str, only: Sequence[str] | None
    ) -> tuple[list[tuple[str, int]], str]:
        """Known tenants (with entries or with settings), by id; `only`: the caller's tenants (None: all)."""
        size = check.page_size(page_size)
        query = scope("", ("tenants", None if only is None else sorted(only)))
        tokens = await self._pages.tokens()
        after = tokens.decode(page_token, query, (str,))[0] if page_token else None
        found = await self._store.tenants(after, size + 1, only)
        token = ""
        if len(found) > size:
            found = found[:size]
            token = tokens.encode(query, [found[-1][0]])
        return found, token

    async def entry_count(self, tenants: Sequence[str]) -> int:
        """How many entries these tenants hold in all."""
        return sum(count for _, count in await self._store.tenants(None, len(tenants) + 1, tenants))

    async def audit_events(
        self,
        *,
        tenant_id: str,
        page_size: int,
        page_token: str,
        resource_id: str,
        actor: str,
        action: str,
        import_job_id: str = "",
    ) -> tuple[list[AuditEvent], str]:
        tenant = check.tenant_id(tenant_id)
        size = check.page_size(page_size)
        where = AuditFilter(
            check.text_filter(resource_id, "resource_id"),
            check.text_filter(actor, "actor"),
            check.text_filter(action, "action"),
            check.text_filter(import_job_id, "import_job_id"),
        )
        query = scope(tenant, (where.resource_id, where.actor, where.action, where.import_job_id))
        tokens = await self._pages.tokens()
        before = tokens.decode(page_token, query, (int,))[0] if page_token else None
        rows = await self._store.list_audit(tenant, size + 1, before, where)
        events = [audit_event_of(row) for row in rows]
        token = ""
        if len(events) > size:
            events = events[:size]
            token = tokens.encode(query, [events[-1].id])
        return events, token

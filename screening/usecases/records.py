"""Storage rows to domain objects and back, derived from the declaration of an entry's fields.

Storage errors become domain errors here, in one place, with the words the
API's callers see.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from screening.domain.errors import Aborted, AlreadyExists, NotFound, quoted
from screening.domain.fields import BY_NAME, ENTRY_FIELDS, Kind
from screening.domain.model import (
    Actor,
    AuditEvent,
    FileFormat,
    Filters,
    ForbiddenNumber,
    ImportJob,
    ImportJobState,
    ImportMode,
    MatchKind,
    RowError,
    Superseded,
)
from storage.errors import DuplicateEntry, RowNotFound, StaleRevision
from storage.rows import AuditRow, EntryFilter, EntryRow, EntryValues, JobRow, Who, columns

_VALUES = columns(EntryValues)


def entry_of(row: EntryRow) -> ForbiddenNumber:
    values: dict[str, Any] = {}
    for field in ENTRY_FIELDS:
        if field.name == "etag":
            values["etag"] = etag_of(row.revision)
            continue
        value = getattr(row, field.name)
        values[field.name] = field.enum(value) if field.enum is not None else value
    return ForbiddenNumber(**values)


def etag_of(revision: int) -> str:
    return str(revision)


def revision_of(etag: str, entry_id: str) -> int | None:
    """The revision an etag names; None for no etag. An etag we never issued can only be stale."""
    if not etag:
        return None
    if etag.isascii() and etag.isdigit() and len(etag) < 19:
        return int(etag)
    raise Aborted(f"etag {quoted(etag)} of forbidden number {quoted(entry_id)} is stale")


def values_of(changes: Mapping[str, Any]) -> EntryValues:
    return EntryValues(**{name: _stored(changes[name]) for name in _VALUES})


def stored_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _stored(value) for name, value in changes.items()}


def _stored(value: Any) -> Any:
    return int(value) if isinstance(value, enum.IntEnum) else value


def job_of(row: JobRow) -> ImportJob:
    values = {f.name: getattr(row, f.name) for f in dataclasses.fields(JobRow)}
    return ImportJob(
        **{
            **values,
            "state": ImportJobState(row.state),
            "mode": ImportMode(row.mode),
            "file_format": FileFormat(row.file_format) if row.file_format else None,
            "errors": [RowError(e.line, e.number, e.reason, e.cells, e.column) for e in row.errors],
            "superseded": [Superseded(s.line, s.number, s.by_line) for s in row.superseded],
        }
    )


def who(actor: Actor) -> Who:
    return Who(actor=actor.name, request_id=actor.request_id)


def entry_filter(filters: Filters) -> EntryFilter:
    return EntryFilter(**{name: _stored(value) for name, value in dataclasses.asdict(filters).items()})


def audit_event_of(row: AuditRow) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        tenant_id=row.tenant_id,
        actor=row.actor,
        action=row.action,
        resource_id=row.resource_id,
        request_id=row.request_id,
        before=_state(row.before),
        after=_state(row.after),
        create_time=row.create_time,
        import_job_id=row.import_job_id,
        changed_fields=row.changed_fields,
    )


def _state(described: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """An entry as the audit trail described it, in domain values.

    Events written before storage described rows by their own columns name
    enums ("EXACT") and carry an etag; later ones carry codes and a revision.
    """
    if described is None:
        return None
    state: dict[str, Any] = {}
    for name, value in described.items():
        if name == "revision":
            state["etag"] = etag_of(int(value))
            continue
        field = BY_NAME.get(name)
        if field is None or value is None:
            continue
        if field.enum is not None:
            state[name] = field.enum[value] if isinstance(value, str) else field.enum(value)
        elif field.kind is Kind.TIME:
            state[name] = datetime.fromisoformat(value)
        else:
            state[name] = value
    return state


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Storage's errors as the domain's."""
    try:
        yield
    except RowNotFound as exc:
        raise NotFound(exc.kind, exc.key, exc.tenant_id) from None
    except DuplicateEntry as exc:
        kind = MatchKind(exc.match_kind).name
        raise AlreadyExists(
            f"tenant {quoted(exc.tenant_id)} already has a {kind} entry for number {quoted(exc.number)}"
        ) from None
    except StaleRevision as exc:
        raise Aborted(
            f"etag {etag_of(exc.expected)!r} of forbidden number {quoted(exc.entry_id)} is stale;"
            f" the current etag is {etag_of(exc.current)!r}"
        ) from None

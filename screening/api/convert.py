"""Translation between protobuf messages and domain objects."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf import timestamp_pb2

from screening.domain.errors import InvalidArgument
from screening.domain.fields import ENTRY_FIELDS, Kind
from screening.domain.model import AuditEvent, ForbiddenNumber, ImportJob, TenantSettings
from screening.usecases.imports import ImportRow
from screening.v1 import screening_pb2 as pb


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def from_timestamp(message: Any, field: str, path: str) -> datetime | None:
    if not message.HasField(field):
        return None
    ts = getattr(message, field)
    try:
        return ts.ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]
    except (ValueError, OverflowError):
        raise InvalidArgument(path, f"{ts.seconds}s", "is not a valid timestamp") from None


def entry(value: ForbiddenNumber, now: datetime | None = None) -> pb.ForbiddenNumber:
    message = _entry_fields(_as_dict(value))
    message.status = value.status(datetime.now(UTC) if now is None else now)  # type: ignore[assignment]
    return message


def _as_dict(value: ForbiddenNumber) -> dict[str, Any]:
    return {field.name: getattr(value, field.name) for field in ENTRY_FIELDS}


def _entry_fields(values: Mapping[str, Any], tenant_id: str = "") -> pb.ForbiddenNumber:
    """The message holding these fields (by their declared names); absent or None ones stay unset."""
    message = pb.ForbiddenNumber(tenant_id=tenant_id)
    for field in ENTRY_FIELDS:
        value = values.get(field.name)
        if value is None:
            continue
        if field.kind is Kind.TIME:
            getattr(message, field.name).FromDatetime(value)
        elif field.kind is Kind.ENUM:
            setattr(message, field.name, int(value))
        else:
            setattr(message, field.name, value)
    return message


def audit_event(event: AuditEvent) -> pb.AuditEvent:
    message = pb.AuditEvent(
        id=str(event.id),
        tenant_id=event.tenant_id,
        actor=event.actor,
        action=event.action,
        resource_id=event.resource_id,
        create_time=timestamp(event.create_time),
        request_id=event.request_id,
        import_job_id=event.import_job_id,
        changed_fields=event.changed_fields,
    )
    if event.before is not None:
        message.before.CopyFrom(_entry_fields(event.before, event.tenant_id))
    if event.after is not None:
        message.after.CopyFrom(_entry_fields(event.after, event.tenant_id))
    return message


def import_rows(rows: Iterable[pb.ImportRow]) -> Iterator[ImportRow]:
    """Lazily, so that the importer converts a big message chunk by chunk."""
    for r in rows:
        ts = r.expire_time if r.HasField("expire_time") else None
        yield ImportRow(
            r.line,
            r.number,
            r.call_type,
            r.match_kind,
            r.enabled if r.HasField("enabled") else None,
            r.note,
            None if ts is None else ts.seconds * 1_000_000 + ts.nanos // 1000,
            r.action,
        )


# Cells of a bad line are cut to this length on the wire (the failed-rows file has them whole).
MAX_CELL_SHOWN = 100


def _cell(text: str) -> str:
    return text if len(text) <= MAX_CELL_SHOWN else text[:MAX_CELL_SHOWN] + f"... ({len(text)} characters)"


def import_job(job: ImportJob) -> pb.ImportJob:
    return pb.ImportJob(
        id=job.id,
        tenant_id=job.tenant_id,
        state=int(job.state),  # type: ignore[arg-type]
        mode=int(job.mode),  # type: ignore[arg-type]
        source_name=job.source_name,
        actor=job.actor,
        file_format=0 if job.file_format is None else int(job.file_format),  # type: ignore[arg-type]
        file_size=job.file_size,
        bytes_received=job.bytes_received,
        columns=job.columns,
        total_rows=job.total_rows,
        created_count=job.created_count,
        updated_count=job.updated_count,
        unchanged_count=job.unchanged_count,
        skipped_count=job.skipped_count,
        superseded_count=job.superseded_count,
        failed_count=job.failed_count,
        errors=[
            pb.ImportRowError(
                line=e.line, number=_cell(e.number), reason=e.reason, cells=[_cell(c) for c in e.cells], column=e.column
            )
            for e in job.errors
        ],
        superseded=[
            pb.ImportRowSuperseded(line=s.line, number=_cell(s.number), by_line=s.by_line) for s in job.superseded
        ],
        create_time=timestamp(job.create_time),
        finish_time=timestamp(job.finish_time),
        failure_reason=job.failure_reason,
    )


def tenant_settings(settings: TenantSettings) -> pb.TenantSettings:
    return pb.TenantSettings(
        tenant_id=settings.tenant_id,
        display_name=settings.display_name,
        region=settings.region,
        withheld_policy=int(settings.withheld_policy),  # type: ignore[arg-type]
        subscribed_lists=settings.subscribed_lists,
        etag=settings.etag,
        update_time=timestamp(settings.update_time),
    )

"""Translation between protobuf messages and domain objects."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from google.protobuf import timestamp_pb2

from screening.domain.errors import InvalidArgument
from screening.domain.model import ForbiddenNumber, ImportJob
from screening.usecases.imports import ImportRow
from screening.v1 import screening_pb2 as pb
from storage.forbidden_numbers import AuditRecord


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
    return pb.ForbiddenNumber(
        id=value.id,
        tenant_id=value.tenant_id,
        number=value.number,
        match_kind=int(value.match_kind),  # type: ignore[arg-type]
        call_type=int(value.call_type),  # type: ignore[arg-type]
        enabled=value.enabled,
        note=value.note,
        expire_time=timestamp(value.expire_time),
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
        etag=value.etag,
        status=int(value.status(datetime.now(UTC) if now is None else now)),  # type: ignore[arg-type]
    )


_KIND = {"EXACT": pb.MATCH_KIND_EXACT, "PREFIX": pb.MATCH_KIND_PREFIX}
_CALL = {"INBOUND": pb.CALL_TYPE_INBOUND, "OUTBOUND": pb.CALL_TYPE_OUTBOUND, "BOTH": pb.CALL_TYPE_BOTH}


def _audit_entry(data: dict[str, Any] | None, tenant_id: str) -> pb.ForbiddenNumber | None:
    if data is None:
        return None
    expire = data.get("expire_time")
    return pb.ForbiddenNumber(
        id=data["id"],
        tenant_id=tenant_id,
        number=data["number"],
        match_kind=_KIND[data["match_kind"]],
        call_type=_CALL[data["call_type"]],
        enabled=data["enabled"],
        note=data["note"],
        expire_time=timestamp(datetime.fromisoformat(expire)) if expire else None,
        etag=data["etag"],
    )


def audit_event(record: AuditRecord) -> pb.AuditEvent:
    return pb.AuditEvent(
        id=str(record.id),
        tenant_id=record.tenant_id,
        actor=record.actor,
        action=record.action,
        resource_id=record.resource_id,
        create_time=timestamp(record.create_time),
        request_id=record.request_id,
        before=_audit_entry(record.before, record.tenant_id),
        after=_audit_entry(record.after, record.tenant_id),
    )


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
        )


def import_job(job: ImportJob) -> pb.ImportJob:
    return pb.ImportJob(
        id=job.id,
        tenant_id=job.tenant_id,
        state=int(job.state),  # type: ignore[arg-type]
        mode=int(job.mode),  # type: ignore[arg-type]
        source_name=job.source_name,
        total_rows=job.total_rows,
        created_count=job.created_count,
        updated_count=job.updated_count,
        skipped_count=job.skipped_count,
        failed_count=job.failed_count,
        errors=[pb.ImportRowError(line=e.line, number=e.number, reason=e.reason) for e in job.errors],
        create_time=timestamp(job.create_time),
        finish_time=timestamp(job.finish_time),
        failure_reason=job.failure_reason,
    )

"""gRPC servicers: proto in, a domain call, proto out. Nothing else."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

import grpc
from google.protobuf import empty_pb2

from screening.api import convert
from screening.api.auth import caller, caller_name
from screening.api.metrics import Metrics
from screening.api.tokens import ALL_TENANTS, ROLES
from screening.api.wire import Request, Screen, fast_path_calls, quick, respond, screen_response
from screening.domain.errors import InvalidArgument
from screening.domain.fields import UPDATABLE
from screening.domain.model import Action as DomainAction
from screening.domain.model import Actor, Direction
from screening.sync.replica import Replica
from screening.usecases.admin import ForbiddenNumbers
from screening.usecases.imports import (
    CANCELLED,
    DEADLINE,
    FileChunk,
    ImportHeader,
    ImportMessage,
    Imports,
    RowBatch,
)
from screening.usecases.screener import Screener
from screening.usecases.tenants import UPDATABLE as SETTINGS
from screening.usecases.tenants import Tenants
from screening.v1 import screening_pb2 as pb
from screening.v1 import screening_pb2_grpc as pb_grpc

Context = grpc.aio.ServicerContext[Any, Any]
_BLOCK = pb.VERDICT_BLOCK
_ALLOW = pb.VERDICT_ALLOW
_ALLOW_ACTION = DomainAction.ALLOW
_ALLOW_ENTRY = pb.SCREEN_REASON_ALLOW_ENTRY
_BLOCK_ENTRY = pb.SCREEN_REASON_BLOCK_ENTRY


class ScreeningServicer(pb_grpc.ScreeningServicer):
    def __init__(self, screener: Screener, metrics: Metrics) -> None:
        self._screener = screener
        self._metrics = metrics
        self._tally = metrics.screen_tally
        # The hot path, also what the switch socket answers with (screening/api/switch.py): the common
        # answers made in C, every other call by _screen (screening/api/wire.py, quick). A plain callable,
        # not a coroutine: the wrapper grpc awaits is then the call's only coroutine. It answers with the
        # response's bytes: the method is ENCODED (screening.api.methods). Served from the instance, set
        # before generated code reads servicer.ScreenCall (once, when the service is added).
        self.screen: Screen = quick(self._screen, screener, self._tally)
        self.ScreenCall = self.screen  # type: ignore[method-assign]
        metrics.watch_fast_path(lambda: fast_path_calls(self.screen))

    def ScreenCall(self, request: Request, context: Context) -> bytes:  # type: ignore[override]
        return self.screen(request, context)

    async def ScreenNumbers(self, request: pb.ScreenNumbersRequest, context: Context) -> pb.ScreenNumbersResponse:
        numbers, hits, version = self._screener.screen_many(request.tenant_id, list(request.numbers), request.direction)
        response = pb.ScreenNumbersResponse(data_version=version)
        # Filled in place: building each result apart and then copying it in costs twice.
        add = response.results.add
        blocked = 0
        for normalized, hit in zip(numbers, hits, strict=True):
            if hit is None:
                add(verdict=_ALLOW, normalized_number=normalized, data_version=version)
            elif hit.action is _ALLOW_ACTION:
                add(
                    verdict=_ALLOW,
                    normalized_number=normalized,
                    data_version=version,
                    reason=_ALLOW_ENTRY,
                    decided_id=hit.id,
                    decided_number=hit.number,
                    decided_kind=hit.match_kind,
                    decided_action=hit.action,
                )
            else:
                blocked += 1
                add(
                    verdict=_BLOCK,
                    normalized_number=normalized,
                    matched_id=hit.id,
                    matched_number=hit.number,
                    matched_kind=hit.match_kind,
                    data_version=version,
                    reason=_BLOCK_ENTRY,
                    decided_id=hit.id,
                    decided_number=hit.number,
                    decided_kind=hit.match_kind,
                    decided_action=hit.action,
                )
        counters = self._metrics.batch_numbers
        counters[_BLOCK].inc(blocked)
        counters[_ALLOW].inc(len(hits) - blocked)
        return response

    async def ScreenCallStream(  # type: ignore[override]
        self, request_iterator: AsyncIterator[Request], context: Context
    ) -> AsyncIterator[bytes]:
        screen = self.screen
        async for request in request_iterator:
            yield screen(request)

    # Every call the C path passes on: a plain function, no awaits, one tally (screening/api/metrics.py).
    def _screen(self, request: Request, context: Context | None = None) -> bytes:
        started = perf_counter()
        direction = request.direction
        try:
            decision = self._screener.screen(request.tenant_id, request.number, direction, request.caller_withheld)
        except Exception:
            self._tally.add(0, direction, perf_counter() - started)
            raise
        response = screen_response(decision, request.call_id)
        self._tally.add(decision.verdict, direction, perf_counter() - started)
        return response


def actor(context: Context) -> Actor:
    """Who is calling, for the audit trail: the token's name and the caller's x-request-id (or a new one)."""
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and value:
            return Actor(name=caller_name(), request_id=str(value)[:128])
    # Every event still has a request id, shared by the events of one call.
    return Actor(name=caller_name(), request_id=uuid.uuid4().hex)


def _changes(message: pb.ForbiddenNumber, paths: list[str]) -> dict[str, Any]:
    """The fields an update sets, from its mask (AIP-134)."""
    if not paths:
        # No mask: every field the caller populated.
        paths = [f.name for f, _ in message.ListFields() if f.name in UPDATABLE]
    elif paths == ["*"]:
        paths = list(UPDATABLE)
    changes: dict[str, Any] = {}
    for path in paths:
        if path not in UPDATABLE:
            raise InvalidArgument("update_mask", path, f"is not an updatable field; one of {', '.join(UPDATABLE)}")
        if path == "expire_time":
            changes[path] = convert.from_timestamp(message, "expire_time", "forbidden_number.expire_time")
        elif path == "enabled":
            changes[path] = message.enabled if message.HasField("enabled") else None
        else:
            changes[path] = getattr(message, path)
    return changes


# gRPC ends a request stream the same way whether the client finished it or
# the call was cancelled (or passed its deadline): the cancellation itself
# lands a moment later. An import waits this long before it may commit, so
# that a cancelled stream is never taken for a complete one.
STREAM_END_SETTLE = 0.05
# Initial metadata of ImportForbiddenNumbers: the job's id, sent as soon as the job exists.
IMPORT_JOB_ID = "x-import-job-id"
# A call cancelled this close to its deadline was cancelled by it.
DEADLINE_SLACK = 0.05


async def _import_messages(
    requests: AsyncIterator[pb.ImportForbiddenNumbersRequest], context: Context
) -> AsyncIterator[ImportMessage]:
    async for request in requests:
        payload = request.WhichOneof("payload")
        if payload == "file_chunk":
            yield FileChunk(request.file_chunk)
        elif payload == "rows":
            rows = request.rows.rows
            yield RowBatch(len(rows), convert.import_rows(rows))
        elif payload == "header":
            h = request.header
            yield ImportHeader(h.tenant_id, h.mode, h.source_name, h.file_format, h.file_size, h.time_zone)
        else:
            yield None
    await asyncio.sleep(STREAM_END_SETTLE)
    if context.cancelled():
        raise asyncio.CancelledError


def _why_cancelled(context: Context) -> Callable[[], str]:
    """Whether a cancelled call was cancelled by its client or by its deadline (read when the call starts)."""
    remaining = context.time_remaining()
    deadline = None if remaining is None else time.monotonic() + remaining

    def why() -> str:
        return DEADLINE if deadline is not None and time.monotonic() >= deadline - DEADLINE_SLACK else CANCELLED

    return why


class AdminServicer(pb_grpc.ForbiddenNumberAdminServicer):
    def __init__(
        self,
        numbers: ForbiddenNumbers,
        imports: Imports,
        replica: Replica,
        screener: Screener,
        metrics: Metrics,
        tenants: Tenants,
    ) -> None:
        self._tenants = tenants
        self._numbers = numbers
        self._imports = imports
        self._replica = replica
        self._screener = screener
        self._metrics = metrics

    async def CreateForbiddenNumber(
        self, request: pb.CreateForbiddenNumberRequest, context: Context
    ) -> pb.ForbiddenNumber:
        fn = request.forbidden_number
        created = await self._numbers.create(
            actor(context),
            tenant_id=fn.tenant_id,
            number=fn.number,
            match_kind=fn.match_kind,
            call_type=fn.call_type,
            enabled=fn.enabled if fn.HasField("enabled") else None,
            note=fn.note,
            expire_time=convert.from_timestamp(fn, "expire_time", "forbidden_number.expire_time"),
            action=fn.action,
        )
        return convert.entry(created)

    async def GetForbiddenNumber(self, request: pb.GetForbiddenNumberRequest, context: Context) -> pb.ForbiddenNumber:
        return convert.entry(await self._numbers.get(request.tenant_id, request.id))

    async def UpdateForbiddenNumber(
        self, request: pb.UpdateForbiddenNumberRequest, context: Context
    ) -> pb.ForbiddenNumber:
        fn = request.forbidden_number
        updated = await self._numbers.update(
            actor(context),
            tenant_id=fn.tenant_id,
            entry_id=fn.id,
            etag=fn.etag,
            changes=_changes(fn, list(request.update_mask.paths)),
        )
        return convert.entry(updated)

    async def DeleteForbiddenNumber(
        self, request: pb.DeleteForbiddenNumberRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._numbers.delete(actor(context), tenant_id=request.tenant_id, entry_id=request.id, etag=request.etag)
        return empty_pb2.Empty()

    def _filters(self, request: pb.ListForbiddenNumbersRequest | pb.ExportForbiddenNumbersRequest) -> Any:
        f = request.filters
        return self._numbers.filters(
            enabled=f.enabled if f.HasField("enabled") else None,
            call_type=f.call_type,
            match_kind=f.match_kind,
            number_prefix=f.number_prefix,
            status=f.status,
            query=f.query,
        )

    async def ListForbiddenNumbers(
        self, request: pb.ListForbiddenNumbersRequest, context: Context
    ) -> pb.ListForbiddenNumbersResponse:
        page = await self._numbers.list_entries(
            tenant_id=request.tenant_id,
            filters=self._filters(request),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListForbiddenNumbersResponse(
            forbidden_numbers=[convert.entry(e) for e in page.entries],
            next_page_token=page.next_page_token,
            total_size=page.total_size,
        )

    async def SetForbiddenNumbersEnabled(
        self, request: pb.SetForbiddenNumbersEnabledRequest, context: Context
    ) -> pb.SetForbiddenNumbersEnabledResponse:
        count = await self._numbers.set_enabled(
            actor(context), tenant_id=request.tenant_id, entry_ids=list(request.ids), enabled=request.enabled
        )
        return pb.SetForbiddenNumbersEnabledResponse(updated_count=count)

    async def ImportForbiddenNumbers(
        self, request_iterator: AsyncIterator[pb.ImportForbiddenNumbersRequest], context: Context
    ) -> pb.ImportJob:
        async def started(job_id: str) -> None:
            # The job's id before the import ends, so that a client can follow its progress.
            await context.send_initial_metadata(((IMPORT_JOB_ID, job_id),))

        job = await self._imports.run(
            actor(context), _import_messages(request_iterator, context), _why_cancelled(context), started
        )
        self._metrics.imported(job)
        return convert.import_job(job)

    async def GetImportJob(self, request: pb.GetImportJobRequest, context: Context) -> pb.ImportJob:
        return convert.import_job(await self._imports.get(request.tenant_id, request.id))

    async def GetImportJobFailedRows(
        self, request: pb.GetImportJobFailedRowsRequest, context: Context
    ) -> AsyncIterator[pb.FileChunk]:
        found = await self._imports.failed_rows(request.tenant_id, request.id)
        first = True
        async for data in found.chunks:
            if first:
                yield pb.FileChunk(file_name=found.file_name, content_type=found.content_type, data=data)
                first = False
            else:
                yield pb.FileChunk(data=data)

    async def ListImportJobs(self, request: pb.ListImportJobsRequest, context: Context) -> pb.ListImportJobsResponse:
        jobs, token = await self._imports.list_jobs(request.tenant_id, request.page_size, request.page_token)
        return pb.ListImportJobsResponse(import_jobs=[convert.import_job(j) for j in jobs], next_page_token=token)

    async def ExportForbiddenNumbers(
        self, request: pb.ExportForbiddenNumbersRequest, context: Context
    ) -> AsyncIterator[pb.ForbiddenNumber]:
        async for chunk in self._numbers.export(tenant_id=request.tenant_id, filters=self._filters(request)):
            for e in chunk:
                yield convert.entry(e)

    async def ListAuditEvents(self, request: pb.ListAuditEventsRequest, context: Context) -> pb.ListAuditEventsResponse:
        events, token = await self._numbers.audit_events(
            tenant_id=request.tenant_id,
            page_size=request.page_size,
            page_token=request.page_token,
            resource_id=request.resource_id,
            actor=request.actor,
            action=request.action,
            import_job_id=request.import_job_id,
        )
        return pb.ListAuditEventsResponse(audit_events=[convert.audit_event(e) for e in events], next_page_token=token)

    async def GetTenantSettings(self, request: pb.GetTenantSettingsRequest, context: Context) -> pb.TenantSettings:
        return convert.tenant_settings(await self._tenants.get(request.tenant_id))

    async def UpdateTenantSettings(
        self, request: pb.UpdateTenantSettingsRequest, context: Context
    ) -> pb.TenantSettings:
        given = request.settings
        paths = list(request.update_mask.paths) or [f.name for f, _ in given.ListFields() if f.name in SETTINGS]
        changes: dict[str, Any] = {}
        for path in paths:
            if path not in SETTINGS:
                raise InvalidArgument("update_mask", path, f"is not an updatable field; one of {', '.join(SETTINGS)}")
            value = getattr(given, path)
            changes[path] = list(value) if path == "subscribed_lists" else value
        updated = await self._tenants.update(
            actor(context), tenant_id=given.tenant_id, etag=given.etag, changes=changes
        )
        return convert.tenant_settings(updated)

    async def ReviewRegionChange(
        self, request: pb.ReviewRegionChangeRequest, context: Context
    ) -> pb.ReviewRegionChangeResponse:
        changes, total, conflicts = await self._tenants.review(request.tenant_id, request.region)
        return pb.ReviewRegionChangeResponse(
            changes=[
                pb.RegionChange(entry=convert.entry(c.entry), number_in_region=c.number_in_region) for c in changes
            ],
            total_size=total,
            conflicts=conflicts,
        )

    async def ConvertNumbersToRegion(
        self, request: pb.ConvertNumbersToRegionRequest, context: Context
    ) -> pb.ConvertNumbersToRegionResponse:
        converted, conflicts, settings = await self._tenants.convert(actor(context), request.tenant_id, request.region)
        return pb.ConvertNumbersToRegionResponse(
            converted_count=converted, conflicts=conflicts, settings=convert.tenant_settings(settings)
        )

    async def GetCallerIdentity(self, request: pb.GetCallerIdentityRequest, context: Context) -> pb.CallerIdentity:
        token = caller()
        if token is None:
            return pb.CallerIdentity(name=caller_name(), roles=list(ROLES), tenants=[ALL_TENANTS])
        tenants = [ALL_TENANTS] if token.all_tenants else sorted(token.tenants)
        return pb.CallerIdentity(name=token.name, roles=sorted(token.roles), tenants=tenants)

    async def ListTenants(self, request: pb.ListTenantsRequest, context: Context) -> pb.ListTenantsResponse:
        token = caller()
        only = None if token is None or token.all_tenants else sorted(token.tenants)
        found, next_token = await self._numbers.tenants(
            page_size=request.page_size, page_token=request.page_token, only=only
        )
        names = await self._tenants.display_names([t for t, _ in found])
        return pb.ListTenantsResponse(
            tenants=[pb.TenantSummary(tenant_id=t, entry_count=n, display_name=names.get(t, "")) for t, n in found],
            next_page_token=next_token,
        )

    async def ExplainScreenCall(self, request: pb.ScreenCallRequest, context: Context) -> pb.ExplainScreenCallResponse:
        decision = self._screener.screen(
            request.tenant_id, request.number, request.direction, request.caller_withheld, count=False
        )
        result = respond(decision, request.call_id)
        hit = decision.entry
        # The lists the replica screened with: the ones its answer may name.
        rules = self._screener.rules.get(request.tenant_id)
        candidates = await self._numbers.explain(
            request.tenant_id,
            decision.normalized,
            Direction(request.direction),
            "" if hit is None else hit.id,
            () if rules is None else rules.lists,
        )
        return pb.ExplainScreenCallResponse(
            result=result,
            candidates=[
                pb.ScreenCandidate(
                    entry=convert.entry(c.entry), qualifies=c.qualifies, decided=c.decided, explanation=c.explanation
                )
                for c in candidates
            ],
        )

    async def GetReplicaStatus(self, request: pb.GetReplicaStatusRequest, context: Context) -> pb.ReplicaStatus:
        state = self._replica.state()
        token = caller()
        entries = state.entries
        if token is not None and not token.all_tenants:
            # A token scoped to some tenants learns their size, never the whole list's.
            entries = await self._numbers.entry_count(sorted(token.tenants))
        return pb.ReplicaStatus(
            serving=state.serving,
            data_version=state.data_version,
            entries=entries,
            connected=state.connected,
            last_sync_time=convert.timestamp(
                None if state.last_sync_time is None else datetime.fromtimestamp(state.last_sync_time, UTC)
            ),
            seconds_behind=state.seconds_behind,
            listener_reconnects=state.listener_reconnects,
            has_primary=self._replica.listener is not None,
            feed_standby=state.feed_standby,
            hot_standby_feedback=state.hot_standby_feedback,
            feed_behind=state.feed_behind,
        )

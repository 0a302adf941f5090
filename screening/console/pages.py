"""The console's pages and actions, each a thin layer over one or two admin API calls."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import grpc
from google.protobuf import field_mask_pb2, timestamp_pb2
from starlette.datastructures import UploadFile
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from screening.console import exports
from screening.console.backend import ApiError
from screening.console.uploads import Upload
from screening.console.web import LANG_COOKIE, Ctx, api_message, endpoint, local_path
from screening.domain.fields import COLUMNS
from screening.files import template as import_template
from screening.files.writing import CSV_TYPE, XLSX_TYPE, csv_chunks
from screening.v1 import screening_pb2 as pb

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
# The previous pages' tokens ride in the URL; this many are remembered.
MAX_TRAIL = 50
TENANT = re.compile(r"[A-Za-z0-9._-]{1,64}")
STATUSES = {"active": pb.ENTRY_STATUS_ACTIVE, "disabled": pb.ENTRY_STATUS_DISABLED, "expired": pb.ENTRY_STATUS_EXPIRED}
CALL_TYPES = {"inbound": pb.CALL_TYPE_INBOUND, "outbound": pb.CALL_TYPE_OUTBOUND, "both": pb.CALL_TYPE_BOTH}
MATCH_KINDS = {"exact": pb.MATCH_KIND_EXACT, "prefix": pb.MATCH_KIND_PREFIX}
ACTIONS = {"block": pb.ACTION_BLOCK, "allow": pb.ACTION_ALLOW}
DIRECTIONS = {"inbound": pb.DIRECTION_INBOUND, "outbound": pb.DIRECTION_OUTBOUND}
MODES = {"upsert": pb.IMPORT_MODE_UPSERT, "insert_only": pb.IMPORT_MODE_INSERT_ONLY}
FORMATS = {".csv": pb.FILE_FORMAT_CSV, ".xlsx": pb.FILE_FORMAT_XLSX}
EXPORT_TIMEOUT = 3600.0
UPDATABLE = ["number", "match_kind", "call_type", "enabled", "note", "expire_time", "action"]


def _word(table: dict[str, int], value: str) -> int:
    return table.get(value, 0)


# ------------------------------------------------------------ forbidden numbers


@dataclass
class ListQuery:
    """The list's search, filters and position, as they appear in the URL."""

    q: str = ""
    status: str = ""
    call_type: str = ""
    match_kind: str = ""
    size: int = DEFAULT_PAGE_SIZE
    page: str = ""
    trail: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, params: Any) -> ListQuery:
        size = params.get("size", "")
        trail = [t for t in params.get("trail", "").split(",") if t][-MAX_TRAIL:]
        return cls(
            q=params.get("q", "").strip(),
            status=params.get("status", "") if params.get("status", "") in STATUSES else "",
            call_type=params.get("call_type", "") if params.get("call_type", "") in CALL_TYPES else "",
            match_kind=params.get("match_kind", "") if params.get("match_kind", "") in MATCH_KINDS else "",
            size=int(size) if size.isdigit() and int(size) in PAGE_SIZES else DEFAULT_PAGE_SIZE,
            page=params.get("page", ""),
            trail=trail,
        )

    def filters(self) -> pb.ForbiddenNumberFilters:
        return pb.ForbiddenNumberFilters(
            query=self.q,
            status=_word(STATUSES, self.status),  # type: ignore[arg-type]
            call_type=_word(CALL_TYPES, self.call_type),  # type: ignore[arg-type]
            match_kind=_word(MATCH_KINDS, self.match_kind),  # type: ignore[arg-type]
        )

    def params(self, **changes: Any) -> str:
        values = {
            "q": self.q,
            "status": self.status,
            "call_type": self.call_type,
            "match_kind": self.match_kind,
            "size": "" if self.size == DEFAULT_PAGE_SIZE else str(self.size),
            "page": self.page,
            "trail": ",".join(self.trail),
        }
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v})

    @property
    def filtered(self) -> bool:
        return bool(self.q or self.status or self.call_type or self.match_kind)


@endpoint()
async def numbers(ctx: Ctx) -> Response:
    query = ListQuery.of(ctx.request.query_params)
    page = await ctx.call(
        "ListForbiddenNumbers",
        pb.ListForbiddenNumbersRequest(
            tenant_id=ctx.tenant, page_size=query.size, page_token=query.page, filters=query.filters()
        ),
    )
    base = ctx.url("numbers")
    next_url = previous_url = ""
    if page.next_page_token:
        trail = [*query.trail, query.page or "-"][-MAX_TRAIL:]
        next_url = f"{base}?{query.params(page=page.next_page_token, trail=','.join(trail))}"
    if query.page:
        earlier = query.trail[:-1]
        back = query.trail[-1] if query.trail else ""
        previous_url = f"{base}?{query.params(page='' if back == '-' else back, trail=','.join(earlier))}"
    first = len(query.trail) * query.size + 1 if query.trail else (1 if not query.page else 0)
    return ctx.render(
        "numbers.html",
        query=query,
        entries=list(page.forbidden_numbers),
        total=page.total_size,
        first=first,
        next_url=next_url,
        previous_url=previous_url,
        first_url=f"{base}?{query.params(page='', trail='')}" if query.page else "",
        here=f"{base}?{query.params()}",
        export_query=query.params(page="", trail="", size=""),
        page_sizes=PAGE_SIZES,
    )


@dataclass
class EntryForm:
    """The Add/Edit dialog's fields as the person typed them; kept whole across errors."""

    number: str = ""
    call_type: str = ""
    match_kind: str = "exact"
    enabled: bool = True
    note: str = ""
    # <input type=datetime-local>: YYYY-MM-DDTHH:MM in the viewer's time zone.
    expire: str = ""
    etag: str = ""
    action: str = "block"

    @classmethod
    def of_entry(cls, ctx: Ctx, entry: pb.ForbiddenNumber) -> EntryForm:
        expire = ""
        if entry.HasField("expire_time"):
            expire = entry.expire_time.ToDatetime(tzinfo=UTC).astimezone(ctx.tz).strftime("%Y-%m-%dT%H:%M")
        return cls(
            number=entry.number,
            call_type={v: k for k, v in CALL_TYPES.items()}.get(entry.call_type, ""),
            match_kind="prefix" if entry.match_kind == pb.MATCH_KIND_PREFIX else "exact",
            enabled=entry.enabled,
            note=entry.note,
            expire=expire,
            etag=entry.etag,
            action="allow" if entry.action == pb.ACTION_ALLOW else "block",
        )

    @classmethod
    async def of_request(cls, ctx: Ctx) -> EntryForm:
        form = await ctx.form()

        def text(name: str) -> str:
            value = form.get(name, "")
            return value if isinstance(value, str) else ""

        return cls(
            number=text("number").strip(),
            call_type=text("call_type"),
            match_kind=text("match_kind") or "exact",
            enabled=text("enabled") == "true",
            note=text("note"),
            expire=text("expire").strip(),
            etag=text("etag"),
            action=text("action") or "block",
        )

    def message(self, ctx: Ctx, entry_id: str = "") -> tuple[pb.ForbiddenNumber, dict[str, str]]:
        """The entry to send, and the errors the console finds before the server sees it."""
        errors: dict[str, str] = {}
        entry = pb.ForbiddenNumber(
            id=entry_id,
            tenant_id=ctx.tenant,
            number=self.number,
            call_type=_word(CALL_TYPES, self.call_type),  # type: ignore[arg-type]
            match_kind=_word(MATCH_KINDS, self.match_kind),  # type: ignore[arg-type]
            enabled=self.enabled,
            note=self.note,
            etag=self.etag,
            action=_word(ACTIONS, self.action),  # type: ignore[arg-type]
        )
        if not self.call_type:
            errors["call_type"] = ctx._("Choose which calls this number forbids.")
        if self.expire:
            try:
                local = datetime.fromisoformat(self.expire)
            except ValueError:
                errors["expire"] = ctx._("Not a date and time, e.g. 2027-01-01 00:00.")
            else:
                ts = timestamp_pb2.Timestamp()
                ts.FromDatetime((local if local.tzinfo else local.replace(tzinfo=ctx.tz)).astimezone(UTC))
                entry.expire_time.CopyFrom(ts)
        return entry, errors


# API field paths -> the dialog's fields.
_FORM_FIELDS = {
    "forbidden_number.number": "number",
    "forbidden_number.call_type": "call_type",
    "forbidden_number.match_kind": "match_kind",
    "forbidden_number.note": "note",
    "forbidden_number.expire_time": "expire",
    "forbidden_number.enabled": "enabled",
    "forbidden_number.action": "action",
}


def _field_errors(ctx: Ctx, error: ApiError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for path, description in error.fields.items():
        # The server writes "forbidden_number.number '+1 415 CALL': contains 'C'...": beside
        # the field, its path says nothing a person needs.
        errors[_FORM_FIELDS.get(path, "")] = description.removeprefix(path + " ")
    if not errors:
        # An entry for the same number and match kind: about the number field.
        errors["number" if error.code == grpc.StatusCode.ALREADY_EXISTS else ""] = api_message(ctx, error)
    return errors


def _entry_dialog(
    ctx: Ctx,
    form: EntryForm,
    *,
    entry_id: str = "",
    errors: dict[str, str] | None = None,
    stale: pb.ForbiddenNumber | None = None,
    back: str = "",
    status: int = 200,
) -> Response:
    return ctx.render(
        "entry_dialog.html",
        status=status,
        form=form,
        entry_id=entry_id,
        errors=errors or {},
        stale=stale,
        back=local_path(back, ctx.url("numbers")),
    )


@endpoint()
async def new_entry(ctx: Ctx) -> Response:
    return _entry_dialog(ctx, EntryForm(), back=ctx.request.query_params.get("back", ""))


@endpoint()
async def edit_entry(ctx: Ctx) -> Response:
    entry_id = ctx.request.path_params["entry_id"]
    entry = await ctx.call("GetForbiddenNumber", pb.GetForbiddenNumberRequest(tenant_id=ctx.tenant, id=entry_id))
    return _entry_dialog(
        ctx, EntryForm.of_entry(ctx, entry), entry_id=entry_id, back=ctx.request.query_params.get("back", "")
    )


async def _back(ctx: Ctx) -> str:
    value = (await ctx.form()).get("back", "")
    return local_path(value if isinstance(value, str) else "", ctx.url("numbers"))


@endpoint(change=True)
async def create_entry(ctx: Ctx) -> Response:
    form = await EntryForm.of_request(ctx)
    back = await _back(ctx)
    entry, errors = form.message(ctx)
    if errors:
        return _entry_dialog(ctx, form, errors=errors, back=back, status=422)
    try:
        created = await ctx.call("CreateForbiddenNumber", pb.CreateForbiddenNumberRequest(forbidden_number=entry))
    except ApiError as error:
        if error.code not in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS):
            raise
        return _entry_dialog(ctx, form, errors=_field_errors(ctx, error), back=back, status=422)
    ctx.session.flash("success", ctx._("Added %(number)s.") % {"number": created.number})
    return ctx.redirect(back)


@endpoint(change=True)
async def update_entry(ctx: Ctx) -> Response:
    entry_id = ctx.request.path_params["entry_id"]
    form = await EntryForm.of_request(ctx)
    back = await _back(ctx)
    entry, errors = form.message(ctx, entry_id)
    if errors:
        return _entry_dialog(ctx, form, entry_id=entry_id, errors=errors, back=back, status=422)
    request = pb.UpdateForbiddenNumberRequest(
        forbidden_number=entry, update_mask=field_mask_pb2.FieldMask(paths=UPDATABLE)
    )
    try:
        updated = await ctx.call("UpdateForbiddenNumber", request)
    except ApiError as error:
        if error.code == grpc.StatusCode.ABORTED:
            # Someone saved first: show what they saved beside what this person typed,
            # and take their etag, so that saving again knowingly replaces it.
            current = await ctx.call(
                "GetForbiddenNumber", pb.GetForbiddenNumberRequest(tenant_id=ctx.tenant, id=entry_id)
            )
            form.etag = current.etag
            return _entry_dialog(ctx, form, entry_id=entry_id, stale=current, back=back, status=409)
        if error.code == grpc.StatusCode.NOT_FOUND:
            message = ctx._(
                "Someone deleted this entry after you opened it. "
                "Your input is still here: copy it to add the entry again."
            )
            return _entry_dialog(ctx, form, entry_id=entry_id, errors={"": message}, back=back, status=404)
        if error.code not in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS):
            raise
        return _entry_dialog(ctx, form, entry_id=entry_id, errors=_field_errors(ctx, error), back=back, status=422)
    ctx.session.flash("success", ctx._("Saved %(number)s.") % {"number": updated.number})
    return ctx.redirect(back)


@endpoint(change=True)
async def set_enabled(ctx: Ctx) -> Response:
    entry_id = ctx.request.path_params["entry_id"]
    enabled = (await ctx.form()).get("enabled") == "true"
    await ctx.call(
        "SetForbiddenNumbersEnabled",
        pb.SetForbiddenNumbersEnabledRequest(tenant_id=ctx.tenant, ids=[entry_id], enabled=enabled),
    )
    entry = await ctx.call("GetForbiddenNumber", pb.GetForbiddenNumberRequest(tenant_id=ctx.tenant, id=entry_id))
    return ctx.render("row_alone.html", entry=entry, here=await _back(ctx))


@dataclass
class Selected:
    id: str
    etag: str
    number: str


def _selected(values: list[Any]) -> list[Selected]:
    chosen = []
    for value in values:
        if isinstance(value, str) and value.count(" ") >= 2:
            entry_id, etag, number = value.split(" ", 2)
            chosen.append(Selected(entry_id, etag, number))
    return chosen


@endpoint(change=True)
async def bulk(ctx: Ctx) -> Response:
    form = await ctx.form()
    back = await _back(ctx)
    action = form.get("action")
    chosen = _selected(form.getlist("ids"))
    _ = ctx._
    if not chosen:
        return ctx.render(
            "message.html",
            headers={"HX-Retarget": "#messages", "HX-Reswap": "innerHTML"},
            kind="error",
            message=_("Select one or more entries first."),
        )
    if action in ("enable", "disable"):
        response = await ctx.call(
            "SetForbiddenNumbersEnabled",
            pb.SetForbiddenNumbersEnabledRequest(
                tenant_id=ctx.tenant, ids=[c.id for c in chosen], enabled=action == "enable"
            ),
        )
        n = response.updated_count
        text = (
            ctx.ngettext("%(n)d entry enabled.", "%(n)d entries enabled.", n)
            if action == "enable"
            else ctx.ngettext("%(n)d entry disabled.", "%(n)d entries disabled.", n)
        )
        ctx.session.flash("success", text % {"n": n})
        return ctx.redirect(back)
    if action != "delete":
        return ctx.render("problem.html", status=400, message=_("Unknown action."))
    if form.get("confirm") != "yes":
        return ctx.render("confirm_delete.html", chosen=chosen, back=back)
    deleted, changed = 0, []
    for entry in chosen:
        try:
            await ctx.call(
                "DeleteForbiddenNumber",
                pb.DeleteForbiddenNumberRequest(tenant_id=ctx.tenant, id=entry.id, etag=entry.etag),
            )
            deleted += 1
        except ApiError as error:
            if error.code == grpc.StatusCode.NOT_FOUND:
                deleted += 1
            elif error.code in (grpc.StatusCode.ABORTED, grpc.StatusCode.FAILED_PRECONDITION):
                changed.append(entry.number)
            else:
                raise
    ctx.session.flash(
        "success", ctx.ngettext("%(n)d entry deleted.", "%(n)d entries deleted.", deleted) % {"n": deleted}
    )
    if changed:
        ctx.session.flash(
            "error",
            _(
                "Not deleted, because someone changed them after the list was loaded: %(numbers)s. "
                "Check them and try again."
            )
            % {"numbers": ", ".join(changed)},
        )
    return ctx.redirect(back)


@endpoint()
async def normalize(ctx: Ctx) -> Response:
    """The number as the server will store it, from the server's own normalization (ExplainScreenCall)."""
    number = ctx.request.query_params.get("number", "").strip()
    prefix = ctx.request.query_params.get("match_kind") == "prefix"
    if not number:
        return ctx.render("normalized.html", normalized="", error="", prefix=prefix)
    if prefix and not number.lstrip().lower().removeprefix("tel:").startswith("+"):
        # A prefix written without + is stored as its digits, never read through a
        # region's dialling rules as a whole number would be; ExplainScreenCall
        # normalizes whole numbers, so it cannot preview this one.
        return ctx.render("normalized.html", normalized="", error="", prefix=prefix)
    try:
        explained = await ctx.call(
            "ExplainScreenCall",
            pb.ScreenCallRequest(tenant_id=ctx.tenant, number=number, direction=pb.DIRECTION_INBOUND),
        )
    except ApiError as error:
        if error.code != grpc.StatusCode.INVALID_ARGUMENT:
            raise
        return ctx.render(
            "normalized.html", normalized="", error=next(iter(error.fields.values()), error.message), prefix=prefix
        )
    return ctx.render("normalized.html", normalized=explained.result.normalized_number, error="", prefix=prefix)


# --------------------------------------------------------------------- files


def _download(data: bytes | AsyncIterator[bytes], name: str, content_type: str) -> Response:
    # The name in ASCII for old clients, and whole (e.g. Chinese) as RFC 6266's filename*.
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "download"
    disposition = f'attachment; filename="{fallback}"'
    if fallback != name:
        disposition += f"; filename*=UTF-8''{quote(name, safe='')}"
    headers = {"Content-Disposition": disposition}
    if isinstance(data, bytes):
        return Response(data, media_type=content_type, headers=headers)
    return StreamingResponse(data, media_type=content_type, headers=headers)


@endpoint(tenant=False)
async def template(ctx: Ctx) -> Response:
    """The import template, the same file screenctl writes (screening.files.template)."""
    if ctx.request.path_params["fmt"] == "xlsx":
        data = await asyncio.to_thread(import_template.xlsx_bytes)
        return _download(data, "forbidden-numbers-template.xlsx", XLSX_TYPE)
    return _download(import_template.csv_bytes(), "forbidden-numbers-template.csv", CSV_TYPE)


@endpoint()
async def export(ctx: Ctx) -> Response:
    fmt = ctx.request.path_params["fmt"]
    if fmt not in ("csv", "xlsx"):
        return ctx.render("problem.html", status=404, message=ctx._("Exports are .csv or .xlsx files."))
    query = ListQuery.of(ctx.request.query_params)
    request = pb.ExportForbiddenNumbersRequest(tenant_id=ctx.tenant, filters=query.filters())
    stream = ctx.console.backend.stream("ExportForbiddenNumbers", request, ctx.token, EXPORT_TIMEOUT)
    stamp = datetime.now(ctx.tz).strftime("%Y%m%d-%H%M")
    name = f"forbidden-numbers-{ctx.tenant}-{stamp}.{fmt}"
    # The first message proves the call is allowed before the response starts;
    # an error after that can only cut the download short.
    first: list[pb.ForbiddenNumber] = []
    async for entry in stream:
        first.append(entry)
        break
    if fmt == "xlsx":
        spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the response's last chunk
        writer = exports.XlsxWriter(spool)
        writer.rows([COLUMNS, *(exports.entry_row(e) for e in first)])
        batch: list[list[str]] = []
        async for entry in stream:
            batch.append(exports.entry_row(entry))
            if len(batch) >= 5000:
                writer.rows(batch)
                batch = []
        writer.rows(batch)
        writer.close()
        spool.seek(0)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while data := await asyncio.to_thread(spool.read, 1024 * 1024):
                    yield data
            finally:
                spool.close()

        return _download(chunks(), name, XLSX_TYPE)

    async def csv_body() -> AsyncIterator[bytes]:
        # UTF-8 with a byte order mark (Excel reads Chinese notes right), then batches without one.
        for data in csv_chunks(COLUMNS, [exports.entry_row(e) for e in first]):
            yield data
        batch: list[list[str]] = []
        async for entry in stream:
            batch.append(exports.entry_row(entry))
            if len(batch) >= 5000:
                for data in csv_chunks([], batch, bom=False):
                    yield data
                batch = []
        for data in csv_chunks([], batch, bom=False):
            yield data

    return _download(csv_body(), name, CSV_TYPE)


# -------------------------------------------------------------------- imports


@endpoint()
async def import_dialog(ctx: Ctx) -> Response:
    return ctx.render("import_dialog.html", errors={}, mode="upsert")


@endpoint(change=True)
async def start_import(ctx: Ctx) -> Response:
    form = await ctx.form()
    upload = form.get("file")
    mode = form.get("mode", "upsert")
    mode = mode if isinstance(mode, str) and mode in MODES else "upsert"
    time_zone = form.get("time_zone", "")
    _ = ctx._
    errors: dict[str, str] = {}
    file_format = 0
    if not isinstance(upload, UploadFile) or not upload.filename:
        errors["file"] = _("Choose a file to import.")
    else:
        suffix = "." + upload.filename.rsplit(".", 1)[-1].lower() if "." in upload.filename else ""
        file_format = FORMATS.get(suffix, 0)
        if not file_format:
            errors["file"] = _("Import a .csv or .xlsx file (the template's formats).")
        elif not upload.size:
            errors["file"] = _("This file is empty.")
    if errors or not isinstance(upload, UploadFile):
        # The whole dialog again, in place of the open one (not inside its result area).
        headers = {"HX-Retarget": "#dialog-host", "HX-Reswap": "innerHTML"}
        return ctx.render("import_dialog.html", status=422, headers=headers, errors=errors, mode=mode)
    # The request's own copy goes when the request ends; the import outlives it.
    own = tempfile.TemporaryFile()  # noqa: SIM115 - the upload task closes it
    await upload.seek(0)
    await asyncio.to_thread(shutil.copyfileobj, upload.file, own)
    size = own.tell()
    own.seek(0)
    header = pb.ImportHeader(
        tenant_id=ctx.tenant,
        mode=MODES[mode],
        source_name=upload.filename or "",
        file_format=file_format,  # type: ignore[arg-type]
        file_size=size,
        time_zone=time_zone if isinstance(time_zone, str) else "",
    )
    started = ctx.console.uploads.start(session_id=ctx.session.id, token=ctx.token, header=header, file=own)
    return ctx.render("upload.html", upload=started, running_job=None)


async def _running_job(ctx: Ctx, upload: Upload) -> pb.ImportJob | None:
    """The server's job of an upload under way, for its progress: the server names it as soon as it exists."""
    if not upload.job_id:
        return None
    known: pb.ImportJob = await ctx.call("GetImportJob", pb.GetImportJobRequest(tenant_id=ctx.tenant, id=upload.job_id))
    return known


@endpoint()
async def upload_progress(ctx: Ctx) -> Response:
    upload = ctx.console.uploads.get(ctx.request.path_params["upload_id"], ctx.session.id, ctx.tenant)
    if upload is None:
        return ctx.render(
            "message.html",
            kind="error",
            message=ctx._("This upload is no longer known to the console; see the Task Center."),
        )
    running = None
    if not upload.done:
        with contextlib.suppress(ApiError):  # progress is a nicety: the next poll asks again
            running = await _running_job(ctx, upload)
    return ctx.render("upload.html", upload=upload, running_job=running)


@endpoint()
async def jobs(ctx: Ctx) -> Response:
    token = ctx.request.query_params.get("page", "")
    found = await ctx.call(
        "ListImportJobs", pb.ListImportJobsRequest(tenant_id=ctx.tenant, page_size=50, page_token=token)
    )
    job_list = list(found.import_jobs)
    running = any(j.state == pb.IMPORT_JOB_STATE_RUNNING for j in job_list)
    template_name = "jobs_table.html" if ctx.request.query_params.get("partial") else "jobs.html"
    return ctx.render(
        template_name,
        jobs=job_list,
        running=running,
        page=token,
        next_url=f"{ctx.url('jobs')}?page={found.next_page_token}" if found.next_page_token else "",
    )


@endpoint()
async def job(ctx: Ctx) -> Response:
    job_id = ctx.request.path_params["job_id"]
    found = await ctx.call("GetImportJob", pb.GetImportJobRequest(tenant_id=ctx.tenant, id=job_id))
    template_name = "job_body.html" if ctx.request.query_params.get("partial") else "job.html"
    return ctx.render(template_name, job=found, columns=COLUMNS)


@endpoint()
async def failed_rows(ctx: Ctx) -> Response:
    job_id = ctx.request.path_params["job_id"]
    stream = ctx.console.backend.stream(
        "GetImportJobFailedRows", pb.GetImportJobFailedRowsRequest(tenant_id=ctx.tenant, id=job_id), ctx.token, 600
    )
    first: pb.FileChunk | None = None
    async for chunk in stream:
        first = chunk
        break
    if first is None:
        return ctx.render("problem.html", status=404, message=ctx._("This job has no failed rows."))
    head = first

    async def body() -> AsyncIterator[bytes]:
        yield head.data
        async for chunk in stream:
            yield chunk.data

    # The server's name and type: the imported file's name and format.
    name = head.file_name.replace("/", "_").replace("\\", "_") or f"import-{job_id}-failed-rows"
    return _download(body(), name, head.content_type or "application/octet-stream")


# ------------------------------------------------------------ test, audit, status


@endpoint()
async def test_number(ctx: Ctx) -> Response:
    number = ctx.request.query_params.get("number", "").strip()
    direction = ctx.request.query_params.get("direction", "inbound")
    direction = direction if direction in DIRECTIONS else "inbound"
    explained = None
    error = ""
    if number:
        try:
            explained = await ctx.call(
                "ExplainScreenCall",
                pb.ScreenCallRequest(tenant_id=ctx.tenant, number=number, direction=DIRECTIONS[direction]),
            )
        except ApiError as failure:
            if failure.code != grpc.StatusCode.INVALID_ARGUMENT:
                raise
            error = next(iter(failure.fields.values()), failure.message)
    return ctx.render("test.html", number=number, direction=direction, explained=explained, error=error)


AUDIT_FILTERS = ("resource_id", "actor", "action", "import_job_id")


@endpoint()
async def audit(ctx: Ctx) -> Response:
    params = ctx.request.query_params
    filters = {name: params.get(name, "").strip() for name in AUDIT_FILTERS}
    token = params.get("page", "")
    found = await ctx.call(
        "ListAuditEvents",
        pb.ListAuditEventsRequest(tenant_id=ctx.tenant, page_size=50, page_token=token, **filters),
    )
    kept = {k: v for k, v in filters.items() if v}
    next_url = ""
    if found.next_page_token:
        next_url = f"{ctx.url('audit')}?{urlencode({**kept, 'page': found.next_page_token})}"
    return ctx.render(
        "audit.html",
        events=list(found.audit_events),
        filters=filters,
        next_url=next_url,
        first_url=f"{ctx.url('audit')}?{urlencode(kept)}" if token else "",
    )


@endpoint()
async def status(ctx: Ctx) -> Response:
    replica = await ctx.call("GetReplicaStatus", pb.GetReplicaStatusRequest())
    return ctx.render("status.html", replica=replica)


# ------------------------------------------------------- tenants, sign-in, language


async def _tenant_choices(ctx: Ctx) -> list[tuple[str, int | None]]:
    """The caller's tenants: ListTenants (only theirs, with entry counts) plus those without entries yet."""
    counts: dict[str, int | None] = {}
    token = ""
    for _page in range(20):
        found = await ctx.call("ListTenants", pb.ListTenantsRequest(page_size=1000, page_token=token))
        counts.update({t.tenant_id: t.entry_count for t in found.tenants})
        token = found.next_page_token
        if not token:
            break
    assert ctx.identity is not None
    for tenant in ctx.identity.tenants:
        if tenant != "*":
            counts.setdefault(tenant, None)
    return sorted(counts.items())


@endpoint(tenant=False)
async def tenants(ctx: Ctx) -> Response:
    assert ctx.identity is not None
    wanted = ctx.request.query_params.get("tenant", "").strip()
    error = ""
    if wanted:
        if not TENANT.fullmatch(wanted):
            error = ctx._("A tenant id is 1 to 64 letters, digits, dots, dashes or underscores.")
        elif not ctx.identity.may_act_for(wanted):
            error = ctx._("Your token may not act for tenant %(tenant)s.") % {"tenant": wanted}
        else:
            return ctx.redirect(str(ctx.request.app.url_path_for("numbers", tenant=wanted)))
    return ctx.render("tenants.html", choices=await _tenant_choices(ctx), error=error, wanted=wanted)


@endpoint(tenant=False)
async def home(ctx: Ctx) -> Response:
    assert ctx.identity is not None
    mine = [t for t in ctx.identity.tenants if t != "*"]
    if len(mine) == 1 and not ctx.identity.all_tenants:
        return ctx.redirect(str(ctx.request.app.url_path_for("numbers", tenant=mine[0])))
    return ctx.redirect(str(ctx.request.app.url_path_for("tenants")))


@endpoint(tenant=False, signed_in=False)
async def signin(ctx: Ctx) -> Response:
    next_url = local_path(ctx.request.query_params.get("next"), "/")
    if not ctx.console.config.server_auth:
        return ctx.redirect(next_url)
    if ctx.request.method == "GET":
        return ctx.render("signin.html", error="", next_url=next_url)
    form = await ctx.form()
    token = form.get("token", "")
    token = token.strip() if isinstance(token, str) else ""
    next_url = local_path(str(form.get("next", "")), "/")
    _ = ctx._
    if not token:
        return ctx.render("signin.html", status=422, error=_("Paste your token."), next_url=next_url)
    try:
        identity = await ctx.console.backend.identity(token)
    except ApiError as error:
        if error.code != grpc.StatusCode.UNAUTHENTICATED:
            raise
        return ctx.render("signin.html", status=401, error=_("The server does not know this token."), next_url=next_url)
    if not identity.may_view:
        message = _("The token %(name)s has the roles %(roles)s; the console needs viewer or admin.") % {
            "name": identity.name,
            "roles": ", ".join(identity.roles) or "-",
        }
        return ctx.render("signin.html", status=403, error=message, next_url=next_url)
    session = ctx.console.sessions.renew(ctx.session)
    session.token, session.identity = token, identity
    ctx.session, ctx.set_cookie = session, True
    return ctx.redirect(next_url)


@endpoint(tenant=False, signed_in=False, change=True)
async def signout(ctx: Ctx) -> Response:
    ctx.console.sessions.drop(ctx.session)
    ctx.session, ctx.set_cookie = ctx.console.sessions.new(), True
    ctx.session.flash("success", ctx._("Signed out."))
    return ctx.redirect(str(ctx.request.app.url_path_for("signin")))


@endpoint(tenant=False, signed_in=False, change=True)
async def language(ctx: Ctx) -> Response:
    form = await ctx.form()
    chosen = form.get("lang", "")
    back = local_path(str(form.get("back", "")), "/")
    response = ctx.redirect(back)
    if isinstance(chosen, str) and chosen in ctx.console.translations:
        response.set_cookie(
            LANG_COOKIE,
            chosen,
            max_age=365 * 86400,
            httponly=True,
            samesite="strict",
            secure=ctx.request.url.scheme == "https",
        )
    return response


def routes() -> list[Route]:
    t = "/t/{tenant}"
    return [
        Route("/", home, name="home"),
        Route("/signin", signin, methods=["GET", "POST"], name="signin"),
        Route("/signout", signout, methods=["POST"], name="signout"),
        Route("/language", language, methods=["POST"], name="language"),
        Route("/tenants", tenants, name="tenants"),
        Route("/template.{fmt}", template, name="template"),
        Route(f"{t}/numbers", numbers, name="numbers"),
        Route(f"{t}/numbers", create_entry, methods=["POST"], name="create_entry"),
        Route(f"{t}/numbers/new", new_entry, name="new_entry"),
        Route(f"{t}/numbers/bulk", bulk, methods=["POST"], name="bulk"),
        Route(f"{t}/normalize", normalize, name="normalize"),
        Route(f"{t}/numbers/{{entry_id}}/edit", edit_entry, name="edit_entry"),
        Route(f"{t}/numbers/{{entry_id}}", update_entry, methods=["POST"], name="update_entry"),
        Route(f"{t}/numbers/{{entry_id}}/enabled", set_enabled, methods=["POST"], name="set_enabled"),
        Route(f"{t}/export.{{fmt}}", export, name="export"),
        Route(f"{t}/import", import_dialog, name="import_dialog"),
        Route(f"{t}/imports", start_import, methods=["POST"], name="start_import"),
        Route(f"{t}/uploads/{{upload_id}}", upload_progress, name="upload_progress"),
        Route(f"{t}/jobs", jobs, name="jobs"),
        Route(f"{t}/jobs/{{job_id}}", job, name="job"),
        Route(f"{t}/jobs/{{job_id}}/failed-rows", failed_rows, name="failed_rows"),
        Route(f"{t}/test", test_number, name="test_number"),
        Route(f"{t}/audit", audit, name="audit"),
        Route(f"{t}/status", status, name="status"),
    ]

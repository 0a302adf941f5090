"""screenctl: manage forbidden numbers and screen calls from a terminal.

Every command is one or a few gRPC calls. A failure prints one line on
stderr (the server's own message where it sent one) and exits non-zero:
1 for a failed call, 2 for a command line that cannot be run.
"""

from __future__ import annotations

import contextlib
import enum
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from google.protobuf import field_mask_pb2
from rich.console import Console

from screening.cli import render
from screening.cli.connection import CliError, Session, Target, connect
from screening.cli.importing import download_failed_rows, import_file
from screening.cli.values import (
    ACTIONS,
    CALL_TYPES,
    DIRECTIONS,
    JOB_STATE_NAMES,
    MATCH_KINDS,
    STATUSES,
    ActionName,
    CallTypeName,
    DirectionName,
    MatchKindName,
    OutputFormat,
    to_timestamp,
)
from screening.domain.fields import COLUMNS as TEMPLATE_COLUMNS
from screening.domain.times import TimeError, parse_time, zone
from screening.files.template import template_bytes
from screening.v1 import screening_pb2 as pb

app = typer.Typer(
    name="screenctl",
    help="Manage forbidden numbers and screen calls on a call-screening server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# ----------------------------------------------------------------- options

Tenant = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        "-t",
        help="The enterprise (tenant id) to act on; may also come before the command, or from SCREENCTL_TENANT.",
        show_default=False,
    ),
]
Output = Annotated[OutputFormat, typer.Option("--output", "-o", case_sensitive=False, help="How to print the result.")]
EntryId = Annotated[str, typer.Argument(help="The entry's id (see `screenctl list`).", show_default=False)]
CallTypeOption = Annotated[
    CallTypeName | None,
    typer.Option("--call-type", case_sensitive=False, help="Which calls the entry forbids.", show_default=False),
]
MatchKindOption = Annotated[
    MatchKindName | None,
    typer.Option("--match-kind", case_sensitive=False, help="exact (default) or prefix.", show_default=False),
]
ActionOption = Annotated[
    ActionName | None,
    typer.Option(
        "--action",
        case_sensitive=False,
        help="block (default), or allow: an exception that lets through what a broader entry would block.",
        show_default=False,
    ),
]
NoteOption = Annotated[
    str | None, typer.Option("--note", help="Free text, at most 500 characters.", show_default=False)
]
ExpireOption = Annotated[
    str | None,
    typer.Option(
        "--expire-time",
        help="When the entry stops blocking: 2027-03-01, 2027-03-01 18:00, 2027-03-01T18:00:00+08:00 or +30d"
        " (without an offset: UTC).",
        show_default=False,
    ),
]
EnabledFilter = Annotated[
    bool | None,
    typer.Option("--enabled/--disabled", help="Only enabled (or only disabled) entries.", show_default=False),
]
CallTypeFilter = Annotated[
    CallTypeName | None,
    typer.Option("--call-type", case_sensitive=False, help="Only entries of this call type.", show_default=False),
]
MatchKindFilter = Annotated[
    MatchKindName | None,
    typer.Option("--match-kind", case_sensitive=False, help="Only exact or only prefix entries.", show_default=False),
]
NumberPrefixFilter = Annotated[
    str | None,
    typer.Option("--number-prefix", help="Only entries whose stored number starts with this.", show_default=False),
]


class StatusName(enum.StrEnum):
    active = "active"
    disabled = "disabled"
    expired = "expired"


StatusFilter = Annotated[
    StatusName | None,
    typer.Option(
        "--status",
        case_sensitive=False,
        help="Only active (enabled, not expired), disabled or expired entries.",
        show_default=False,
    ),
]
SearchFilter = Annotated[
    str | None,
    typer.Option(
        "--search", help="Only entries whose number has these digits or whose note has this text.", show_default=False
    ),
]
Limit = Annotated[int, typer.Option("--limit", min=0, help="Print at most this many; 0: all.")]


def _err() -> Console:
    # soft_wrap: an error stays on one line whatever the terminal's width.
    return Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, exit_code: int = 1) -> NoReturn:
    _err().print(f"error: {' '.join(message.split())}", markup=False)
    raise typer.Exit(exit_code)


def note(message: str) -> None:
    _err().print(message, markup=False)


@dataclass(frozen=True)
class Root:
    """What the options before the command say."""

    target: Target
    tenant: str | None


def target(ctx: typer.Context) -> Target:
    root = ctx.find_root().obj
    assert isinstance(root, Root)
    return root.target


def _tenant(ctx: typer.Context, given: str | None) -> str:
    """--tenant after the command, else before it, else SCREENCTL_TENANT."""
    root = ctx.find_root().obj
    assert isinstance(root, Root)
    tenant = given if given is not None else root.tenant
    if tenant is None:
        fail("missing --tenant: name the enterprise to act on (or set SCREENCTL_TENANT)", 2)
    return tenant


class Call:
    """Runs a command's gRPC work; any failure becomes one line and an exit code."""

    def __init__(self, ctx: typer.Context) -> None:
        self._target = target(ctx)

    def __call__(self, work: Callable[[Session], None]) -> None:
        try:
            with connect(self._target) as session:
                work(session)
        except CliError as exc:
            fail(exc.message, exc.exit_code)
        except BrokenPipeError:
            # `screenctl export | head`: the reader left; that is not an error.
            _reader_left()
            raise typer.Exit(0) from None
        except OSError as exc:
            fail(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))


def _time(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except TimeError as exc:
        fail(f"{option} {exc}", 2)


def _filters(
    enabled: bool | None,
    call_type: CallTypeName | None,
    match_kind: MatchKindName | None,
    number_prefix: str | None,
    status: StatusName | None = None,
    search: str | None = None,
) -> pb.ForbiddenNumberFilters:
    filters = pb.ForbiddenNumberFilters(number_prefix=number_prefix or "", query=search or "")
    if status is not None:
        filters.status = STATUSES[status.value]
    if enabled is not None:
        filters.enabled = enabled
    if call_type is not None:
        filters.call_type = CALL_TYPES[call_type.value]
    if match_kind is not None:
        filters.match_kind = MATCH_KINDS[match_kind.value]
    return filters


def _pages(fetch: Callable[[str, int], tuple[list[Any], str]], limit: int, page_size: int = 1000) -> Iterator[Any]:
    """Items across pages until `limit` (0: all)."""
    token, seen = "", 0
    while True:
        size = page_size if limit == 0 else min(page_size, limit - seen)
        items, token = fetch(token, size)
        for item in items:
            yield item
            seen += 1
            if seen == limit:
                return
        if not token:
            return


# ----------------------------------------------------------------- the root


@app.callback()
def root(
    ctx: typer.Context,
    server: Annotated[
        str, typer.Option("--server", "-s", envvar="SCREENCTL_SERVER", help="The server's HOST:PORT.")
    ] = "127.0.0.1:50051",
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="SCREENCTL_TOKEN", help="Bearer token sent with every call.", show_default=False
        ),
    ] = None,
    tls_ca: Annotated[
        Path | None,
        typer.Option(
            "--tls-ca",
            envvar="SCREENCTL_TLS_CA",
            help="CA certificate (PEM) that signed the server's: connect with TLS.",
            show_default=False,
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert", envvar="SCREENCTL_TLS_CERT", help="Client certificate (PEM) for mTLS.", show_default=False
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(
            "--tls-key", envvar="SCREENCTL_TLS_KEY", help="Client certificate's key (PEM).", show_default=False
        ),
    ] = None,
    tls_server_name: Annotated[
        str | None,
        typer.Option(
            "--tls-server-name",
            envvar="SCREENCTL_TLS_SERVER_NAME",
            help="Name the server's certificate must carry, when it differs from the --server host.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", envvar="SCREENCTL_TIMEOUT", min=0.1, help="Seconds to wait for an answer.")
    ] = 30.0,
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant",
            "-t",
            envvar="SCREENCTL_TENANT",
            help="The enterprise (tenant id) the commands act on.",
            show_default=False,
        ),
    ] = None,
) -> None:
    connection = Target(
        server=server,
        token=token or None,
        tls_ca=tls_ca,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_server_name=tls_server_name,
        timeout=timeout,
    )
    ctx.obj = Root(connection, tenant or None)


# ------------------------------------------------------------ one entry


@app.command()
def add(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="The number, in any common written form.", show_default=False)],
    call_type: Annotated[
        CallTypeName,
        typer.Option("--call-type", case_sensitive=False, help="Which calls it forbids.", show_default=False),
    ],
    tenant: Tenant = None,
    prefix: Annotated[bool, typer.Option("--prefix", help="Forbid every number starting with NUMBER.")] = False,
    match_kind: MatchKindOption = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Add it disabled (it blocks nothing yet).")] = False,
    note_: Annotated[str, typer.Option("--note", help="Free text, at most 500 characters.")] = "",
    expire_time: ExpireOption = None,
    action: ActionOption = None,
    output: Output = OutputFormat.table,
) -> None:
    """Add a forbidden number (or, with --action allow, an exception to a broader one)."""
    tenant_id = _tenant(ctx, tenant)
    if prefix and match_kind is MatchKindName.exact:
        fail("--prefix and --match-kind exact contradict each other", 2)
    kind = MatchKindName.prefix if prefix else (match_kind or MatchKindName.exact)
    entry = pb.ForbiddenNumber(
        tenant_id=tenant_id,
        number=number,
        call_type=CALL_TYPES[call_type.value],
        match_kind=MATCH_KINDS[kind.value],
        enabled=not disabled,
        note=note_,
        action=ACTIONS[(action or ActionName.block).value],
    )
    expires = _time(expire_time, "--expire-time")
    if expires is not None:
        entry.expire_time.CopyFrom(to_timestamp(expires))

    def work(s: Session) -> None:
        created = s.admin.CreateForbiddenNumber(
            pb.CreateForbiddenNumberRequest(forbidden_number=entry), metadata=s.metadata, timeout=s.timeout
        )
        render.single(created, render.ENTRY, output)

    Call(ctx)(work)


@app.command()
def get(ctx: typer.Context, entry_id: EntryId, tenant: Tenant = None, output: Output = OutputFormat.table) -> None:
    """Show one forbidden number."""
    tenant_id = _tenant(ctx, tenant)

    def work(s: Session) -> None:
        entry = s.admin.GetForbiddenNumber(
            pb.GetForbiddenNumberRequest(tenant_id=tenant_id, id=entry_id), metadata=s.metadata, timeout=s.timeout
        )
        render.single(entry, render.ENTRY, output)

    Call(ctx)(work)


@app.command()
def update(
    ctx: typer.Context,
    entry_id: EntryId,
    tenant: Tenant = None,
    number: Annotated[str | None, typer.Option("--number", help="A new number.", show_default=False)] = None,
    call_type: CallTypeOption = None,
    match_kind: MatchKindOption = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Enable or disable it.", show_default=False)
    ] = None,
    note_: NoteOption = None,
    expire_time: ExpireOption = None,
    no_expire: Annotated[bool, typer.Option("--no-expire", help="Remove the expiry time.")] = False,
    action: ActionOption = None,
    etag: Annotated[
        str | None,
        typer.Option("--etag", help="Only if the entry still has this etag (from get).", show_default=False),
    ] = None,
    output: Output = OutputFormat.table,
) -> None:
    """Change some fields of a forbidden number; the others keep their values."""
    tenant_id = _tenant(ctx, tenant)
    if expire_time is not None and no_expire:
        fail("--expire-time and --no-expire contradict each other", 2)
    entry = pb.ForbiddenNumber(tenant_id=tenant_id, id=entry_id, etag=etag or "")
    changes: dict[str, Any] = {
        "number": number,
        "call_type": None if call_type is None else CALL_TYPES[call_type.value],
        "match_kind": None if match_kind is None else MATCH_KINDS[match_kind.value],
        "enabled": enabled,
        "note": note_,
        "action": None if action is None else ACTIONS[action.value],
    }
    # The mask names exactly the fields given; the others keep their values.
    paths = [path for path, value in changes.items() if value is not None]
    for path in paths:
        setattr(entry, path, changes[path])
    expires = _time(expire_time, "--expire-time")
    if expires is not None:
        entry.expire_time.CopyFrom(to_timestamp(expires))
    if expires is not None or no_expire:
        paths.append("expire_time")
    if not paths:
        fail(
            "nothing to update: give at least one of --number, --call-type, --match-kind, --enable/--disable, "
            "--note, --expire-time, --no-expire, --action",
            2,
        )

    def work(s: Session) -> None:
        updated = s.admin.UpdateForbiddenNumber(
            pb.UpdateForbiddenNumberRequest(forbidden_number=entry, update_mask=field_mask_pb2.FieldMask(paths=paths)),
            metadata=s.metadata,
            timeout=s.timeout,
        )
        render.single(updated, render.ENTRY, output)

    Call(ctx)(work)


def _set_enabled(ctx: typer.Context, tenant_id: str, entry_ids: list[str], enabled: bool) -> None:
    def work(s: Session) -> None:
        response = s.admin.SetForbiddenNumbersEnabled(
            pb.SetForbiddenNumbersEnabledRequest(tenant_id=tenant_id, ids=entry_ids, enabled=enabled),
            metadata=s.metadata,
            timeout=s.timeout,
        )
        count = response.updated_count
        print(f"{'enabled' if enabled else 'disabled'} {count} entr{'y' if count == 1 else 'ies'}")

    Call(ctx)(work)


EntryIds = Annotated[list[str], typer.Argument(help="Ids of the entries (at most 1000).", show_default=False)]


@app.command()
def enable(ctx: typer.Context, entry_ids: EntryIds, tenant: Tenant = None) -> None:
    """Enable forbidden numbers: they block again. All or nothing."""
    tenant_id = _tenant(ctx, tenant)
    _set_enabled(ctx, tenant_id, entry_ids, True)


@app.command()
def disable(ctx: typer.Context, entry_ids: EntryIds, tenant: Tenant = None) -> None:
    """Disable forbidden numbers: they stay listed but block nothing. All or nothing."""
    tenant_id = _tenant(ctx, tenant)
    _set_enabled(ctx, tenant_id, entry_ids, False)


@app.command()
def delete(
    ctx: typer.Context,
    entry_id: EntryId,
    tenant: Tenant = None,
    etag: Annotated[
        str | None,
        typer.Option("--etag", help="Only if the entry still has this etag (from get).", show_default=False),
    ] = None,
) -> None:
    """Delete a forbidden number."""
    tenant_id = _tenant(ctx, tenant)

    def work(s: Session) -> None:
        s.admin.DeleteForbiddenNumber(
            pb.DeleteForbiddenNumberRequest(tenant_id=tenant_id, id=entry_id, etag=etag or ""),
            metadata=s.metadata,
            timeout=s.timeout,
        )
        print(f"deleted {entry_id}")

    Call(ctx)(work)


# ------------------------------------------------------------ listings


@app.command("list")
def list_entries(
    ctx: typer.Context,
    tenant: Tenant = None,
    enabled: EnabledFilter = None,
    call_type: CallTypeFilter = None,
    match_kind: MatchKindFilter = None,
    number_prefix: NumberPrefixFilter = None,
    status: StatusFilter = None,
    search: SearchFilter = None,
    limit: Limit = 100,
    page_size: Annotated[int, typer.Option("--page-size", min=1, max=1000, help="Entries per request.")] = 1000,
    output: Output = OutputFormat.table,
) -> None:
    """List forbidden numbers, ordered by number, with their status (active, disabled, expired)."""
    tenant_id = _tenant(ctx, tenant)
    filters = _filters(enabled, call_type, match_kind, number_prefix, status, search)

    def work(s: Session) -> None:
        total: list[int] = []

        def fetch(token: str, size: int) -> tuple[list[pb.ForbiddenNumber], str]:
            page = s.admin.ListForbiddenNumbers(
                pb.ListForbiddenNumbersRequest(tenant_id=tenant_id, page_size=size, page_token=token, filters=filters),
                metadata=s.metadata,
                timeout=s.timeout,
            )
            total[:] = [page.total_size]
            return list(page.forbidden_numbers), page.next_page_token

        entries = list(_pages(fetch, limit, page_size))
        shown = len(entries)
        caption = None
        if output is OutputFormat.table:
            caption = f"{shown} of {total[0]} entries" + (" (--limit 0 shows all)" if shown < total[0] else "")
        render.listing(entries, render.ENTRY, output, caption=caption)

    Call(ctx)(work)


@app.command()
def export(
    ctx: typer.Context,
    tenant: Tenant = None,
    enabled: EnabledFilter = None,
    call_type: CallTypeFilter = None,
    match_kind: MatchKindFilter = None,
    number_prefix: NumberPrefixFilter = None,
    status: StatusFilter = None,
    search: SearchFilter = None,
    output: Annotated[
        OutputFormat,
        typer.Option(
            "--output",
            "-o",
            case_sensitive=False,
            help="csv: the import template's columns, to import again; json: every field.",
        ),
    ] = OutputFormat.csv,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Write to this file instead of stdout.", show_default=False)
    ] = None,
) -> None:
    """Export every matching forbidden number (streamed; CSV by default)."""
    tenant_id = _tenant(ctx, tenant)
    request = pb.ExportForbiddenNumbersRequest(
        tenant_id=tenant_id, filters=_filters(enabled, call_type, match_kind, number_prefix, status, search)
    )

    def work(s: Session) -> None:
        # No deadline: an export of millions takes as long as it takes.
        stream = s.admin.ExportForbiddenNumbers(request, metadata=s.metadata)
        kind = render.TEMPLATE_ROW if output is OutputFormat.csv else render.ENTRY
        if file is None:
            render.listing(stream, kind, output)
            return
        with file.open("w", newline="", encoding="utf-8") as out:
            count = render.listing(stream, kind, output, file=out)
        note(f"exported {count} entries to {file}")

    Call(ctx)(work)


@app.command()
def audit(
    ctx: typer.Context,
    tenant: Tenant = None,
    resource_id: Annotated[
        str | None, typer.Option("--resource-id", help="Only events of this entry or job.", show_default=False)
    ] = None,
    actor: Annotated[
        str | None, typer.Option("--actor", help="Only events by this token name.", show_default=False)
    ] = None,
    action: Annotated[
        str | None,
        typer.Option(
            "--action", help="Only this action: create, update, delete, set_enabled, import.", show_default=False
        ),
    ] = None,
    limit: Limit = 50,
    output: Output = OutputFormat.table,
) -> None:
    """Show who changed what, newest first."""
    tenant_id = _tenant(ctx, tenant)

    def work(s: Session) -> None:
        def fetch(token: str, size: int) -> tuple[list[pb.AuditEvent], str]:
            page = s.admin.ListAuditEvents(
                pb.ListAuditEventsRequest(
                    tenant_id=tenant_id,
                    page_size=size,
                    page_token=token,
                    resource_id=resource_id or "",
                    actor=actor or "",
                    action=action or "",
                ),
                metadata=s.metadata,
                timeout=s.timeout,
            )
            return list(page.audit_events), page.next_page_token

        render.listing(list(_pages(fetch, limit, page_size=500)), render.AUDIT_EVENT, output)

    Call(ctx)(work)


# ------------------------------------------------------------ screening


@app.command()
def screen(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="The customer's number.", show_default=False)],
    tenant: Tenant = None,
    direction: Annotated[
        DirectionName,
        typer.Option(
            "--direction", "-d", case_sensitive=False, help="inbound: the customer calls; outbound: we call them."
        ),
    ] = DirectionName.inbound,
    call_id: Annotated[str, typer.Option("--call-id", help="Echoed back, as a switch would send it.")] = "",
    withheld: Annotated[
        bool, typer.Option("--withheld", help="The caller withheld the number (the tenant's withheld policy).")
    ] = False,
    output: Output = OutputFormat.table,
) -> None:
    """Ask what a switch asks: may this call go through?"""
    tenant_id = _tenant(ctx, tenant)

    def work(s: Session) -> None:
        verdict = s.screening.ScreenCall(
            pb.ScreenCallRequest(
                tenant_id=tenant_id,
                number=number,
                direction=DIRECTIONS[direction.value],
                call_id=call_id,
                caller_withheld=withheld,
            ),
            metadata=s.metadata,
            timeout=s.timeout,
        )
        render.single(verdict, render.VERDICT, output)

    Call(ctx)(work)


@app.command()
def status(ctx: typer.Context, output: Output = OutputFormat.table) -> None:
    """The answering replica's freshness: data version, entries, listener."""

    def work(s: Session) -> None:
        state = s.admin.GetReplicaStatus(pb.GetReplicaStatusRequest(), metadata=s.metadata, timeout=s.timeout)
        render.single(state, render.REPLICA_STATUS, output)

    Call(ctx)(work)


# ------------------------------------------------------------ tenants


class WithheldName(enum.StrEnum):
    allow = "allow"
    block = "block"


WITHHELD = {"allow": pb.WITHHELD_POLICY_ALLOW, "block": pb.WITHHELD_POLICY_BLOCK}


@app.command()
def settings(
    ctx: typer.Context,
    tenant: Tenant = None,
    display_name: Annotated[str | None, typer.Option("--display-name", help="The tenant's name in listings.")] = None,
    region: Annotated[
        str | None,
        typer.Option(
            "--region", help="Region reading the tenant's national numbers (US, CN); '' : the server's default."
        ),
    ] = None,
    withheld: Annotated[
        WithheldName | None,
        typer.Option("--withheld", case_sensitive=False, help="Inbound calls whose caller withheld the number."),
    ] = None,
    lists: Annotated[
        str | None,
        typer.Option("--lists", help="Shared lists to subscribe to, comma-separated (@dnc,@fraud); '' : none."),
    ] = None,
    etag: Annotated[str, typer.Option("--etag", help="Change only if the settings are still at this etag.")] = "",
    output: Output = OutputFormat.table,
) -> None:
    """Show a tenant's settings, or change the ones given (a tenant whose id starts with @ is a shared list)."""
    tenant_id = _tenant(ctx, tenant)

    def work(s: Session) -> None:
        given = pb.TenantSettings(tenant_id=tenant_id, etag=etag)
        paths: list[str] = []
        if display_name is not None:
            given.display_name, paths = display_name, [*paths, "display_name"]
        if region is not None:
            given.region, paths = region, [*paths, "region"]
        if withheld is not None:
            given.withheld_policy, paths = WITHHELD[withheld.value], [*paths, "withheld_policy"]
        if lists is not None:
            given.subscribed_lists.extend(n.strip() for n in lists.split(",") if n.strip())
            paths = [*paths, "subscribed_lists"]
        if paths:
            request = pb.UpdateTenantSettingsRequest(settings=given)
            request.update_mask.paths.extend(paths)
            found = s.admin.UpdateTenantSettings(request, metadata=s.metadata, timeout=s.timeout)
        else:
            found = s.admin.GetTenantSettings(
                pb.GetTenantSettingsRequest(tenant_id=tenant_id), metadata=s.metadata, timeout=s.timeout
            )
        render.single(found, render.TENANT_SETTINGS, output)

    Call(ctx)(work)


@app.command("region")
def region_change(
    ctx: typer.Context,
    region: Annotated[str, typer.Argument(help="The region to read the tenant's national numbers in (US, CN).")],
    tenant: Tenant = None,
    convert: Annotated[
        bool, typer.Option("--convert", help="Renumber those entries and make REGION the tenant's, in one step.")
    ] = False,
    output: Output = OutputFormat.table,
) -> None:
    """The entries REGION reads as other numbers; --convert renumbers them so that nothing stops blocking."""
    tenant_id = _tenant(ctx, tenant)

    def work(s: Session) -> None:
        if convert:
            done = s.admin.ConvertNumbersToRegion(
                pb.ConvertNumbersToRegionRequest(tenant_id=tenant_id, region=region),
                metadata=s.metadata,
                timeout=s.timeout,
            )
            note(f"converted {done.converted_count} entries; {done.conflicts} left as they were (the number exists)")
            render.single(done.settings, render.TENANT_SETTINGS, output)
            return
        review = s.admin.ReviewRegionChange(
            pb.ReviewRegionChangeRequest(tenant_id=tenant_id, region=region), metadata=s.metadata, timeout=s.timeout
        )
        render.listing(list(review.changes), render.REGION_CHANGE, output)
        note(f"{review.total_size} entries read differently in {region.upper()}; {review.conflicts} would clash")

    Call(ctx)(work)


# ------------------------------------------------------------ imports


class ImportModeName(enum.StrEnum):
    upsert = "upsert"
    insert_only = "insert-only"


IMPORT_MODES = {"upsert": pb.IMPORT_MODE_UPSERT, "insert-only": pb.IMPORT_MODE_INSERT_ONLY}
ShowErrors = Annotated[int, typer.Option("--show-errors", min=0, help="Print at most this many bad lines; 0: all.")]


class TemplateFormat(enum.StrEnum):
    csv = "csv"
    xlsx = "xlsx"


@app.command()
def template(
    file: Annotated[
        Path | None, typer.Argument(help="Where to write it; stdout when left out (CSV only).", show_default=False)
    ] = None,
    file_format: Annotated[
        TemplateFormat | None,
        typer.Option(
            "--format",
            case_sensitive=False,
            help="csv or xlsx (a workbook with drop-down lists and instructions); default: FILE's extension, else csv.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite FILE if it exists.")] = False,
) -> None:
    """Write the import template: the header and example rows to replace with yours."""
    chosen = file_format or (TemplateFormat.xlsx if file and file.suffix.lower() == ".xlsx" else TemplateFormat.csv)
    data = template_bytes(chosen.value)
    if file is None:
        if chosen is TemplateFormat.xlsx:
            if sys.stdout.isatty():
                fail("an .xlsx template is a binary file: give FILE, or redirect stdout to a file", 2)
            sys.stdout.buffer.write(data)
            return
        sys.stdout.write(data.decode())
        return
    try:
        with file.open("wb" if force else "xb") as out:
            out.write(data)
    except FileExistsError:
        fail(f"{file} exists; pass --force to overwrite it", 2)
    except OSError as exc:
        fail(f"cannot write {str(file)!r}: {exc.strerror or exc}")
    columns = ",".join(TEMPLATE_COLUMNS)
    note(f"wrote the {chosen.value} import template to {file}: columns {columns}; the header is line 1")


def _job_summary(job: pb.ImportJob, show: int) -> None:
    out = render.console()
    state = JOB_STATE_NAMES.get(job.state, "unknown")
    source = f" from {job.source_name}" if job.source_name else ""
    out.print(f"import job {job.id}{source}: {state}", markup=False, highlight=False)
    if job.failure_reason:
        out.print(f"reason: {job.failure_reason}", markup=False, highlight=False)
    counts = [
        f"{job.created_count:,} created",
        f"{job.updated_count:,} updated",
        f"{job.unchanged_count:,} unchanged",
        f"{job.superseded_count:,} superseded",
        f"{job.failed_count:,} failed",
    ]
    if job.mode == pb.IMPORT_MODE_INSERT_ONLY:
        counts.insert(3, f"{job.skipped_count:,} skipped")
    out.print(f"{job.total_rows:,} rows: " + ", ".join(counts), markup=False, highlight=False)
    bad = list(job.errors)
    if bad:
        shown = bad if show == 0 else bad[:show]
        more = job.failed_count - len(shown)
        caption = (
            f"... and {more:,} more (screenctl job {job.id} --failed-rows FILE writes them all)" if more > 0 else None
        )
        first = f" (first {len(shown)})" if len(shown) < job.failed_count else ""
        out.print(f"bad lines{first}:", markup=False)
        render.listing(shown, render.ROW_ERROR, OutputFormat.table, caption=caption)
    if job.superseded:
        later = ", ".join(f"line {s.line} by line {s.by_line}" for s in job.superseded[:5])
        rest = f" and {job.superseded_count - 5:,} more" if job.superseded_count > 5 else ""
        out.print(f"superseded by a later line for the same number: {later}{rest}", markup=False, highlight=False)


TimeZoneOption = Annotated[
    str,
    typer.Option(
        "--time-zone",
        envvar="SCREENCTL_TIME_ZONE",
        help="IANA time zone (Asia/Shanghai) for the file's times written without an offset; default UTC.",
    ),
]


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="A .csv or .xlsx file in the template's form (see `screenctl template`).")
    ],
    tenant: Tenant = None,
    mode: Annotated[
        ImportModeName,
        typer.Option(
            "--mode",
            case_sensitive=False,
            help="upsert: a row for an existing number replaces it; insert-only: such a row is skipped.",
        ),
    ] = ImportModeName.upsert,
    time_zone: TimeZoneOption = "",
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Show a progress bar (default: when stderr is a terminal).",
            show_default=False,
        ),
    ] = None,
    show_errors: ShowErrors = 20,
    output: Output = OutputFormat.table,
) -> None:
    """Import forbidden numbers from a CSV or Excel file, as one job: all valid rows or none.

    The server reads the file and keeps every bad line with the job (see
    `screenctl job ID`). Exits 0 when every row was imported, 1 when some
    rows failed or nothing could be imported.
    """
    tenant_id = _tenant(ctx, tenant)
    try:
        zone(time_zone)
    except TimeError as exc:
        fail(f"--time-zone {exc}", 2)
    # The progress bar gets room even when stderr is a file (--progress).
    err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 120)

    def work(s: Session) -> None:
        shown = err.is_terminal if progress is None else progress
        found = import_file(s, tenant_id, file, IMPORT_MODES[mode.value], time_zone, err, shown)
        if output is OutputFormat.json:
            render.single(found, render.IMPORT_JOB, output)
        elif output is OutputFormat.csv:
            render.listing(found.errors, render.ROW_ERROR, output)
        else:
            _job_summary(found, show_errors)
        if found.state != pb.IMPORT_JOB_STATE_SUCCEEDED or found.failed_count:
            raise typer.Exit(1)

    Call(ctx)(work)


@app.command()
def jobs(ctx: typer.Context, tenant: Tenant = None, limit: Limit = 20, output: Output = OutputFormat.table) -> None:
    """List import jobs, newest first, with who ran them and their progress: the task center."""
    tenant_id = _tenant(ctx, tenant)

    def work(s: Session) -> None:
        def fetch(token: str, size: int) -> tuple[list[pb.ImportJob], str]:
            page = s.admin.ListImportJobs(
                pb.ListImportJobsRequest(tenant_id=tenant_id, page_size=size, page_token=token),
                metadata=s.metadata,
                timeout=s.timeout,
            )
            return list(page.import_jobs), page.next_page_token

        render.listing(list(_pages(fetch, limit, page_size=100)), render.IMPORT_JOB, output)

    Call(ctx)(work)


@app.command()
def job(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="The job's id (see `screenctl jobs`).", show_default=False)],
    tenant: Tenant = None,
    show_errors: ShowErrors = 20,
    failed_rows: Annotated[
        Path | None,
        typer.Option(
            "--failed-rows",
            help="Write every bad line with a reason column, in the imported file's format: fix it, import it again.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the --failed-rows file if it exists.")] = False,
    output: Annotated[
        OutputFormat,
        typer.Option(
            "--output",
            "-o",
            case_sensitive=False,
            help="table: summary and bad lines; json: the job; csv: its first bad lines (line,number,reason).",
        ),
    ] = OutputFormat.table,
) -> None:
    """Show one import job: its counts and its bad lines."""
    tenant_id = _tenant(ctx, tenant)

    def work(s: Session) -> None:
        found = s.admin.GetImportJob(
            pb.GetImportJobRequest(tenant_id=tenant_id, id=job_id), metadata=s.metadata, timeout=s.timeout
        )
        if failed_rows is not None:
            try:
                download_failed_rows(s, tenant_id, job_id, failed_rows, force)
            except FileExistsError:
                fail(f"{failed_rows} exists; pass --force to overwrite it", 2)
            note(f"wrote {found.failed_count:,} failed rows of job {job_id} to {failed_rows}")
            return
        if output is OutputFormat.json:
            render.single(found, render.IMPORT_JOB, output)
        elif output is OutputFormat.csv:
            render.listing(found.errors, render.ROW_ERROR, output)
        else:
            _job_summary(found, show_errors)

    Call(ctx)(work)


def _reader_left() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not fail again."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main() -> None:
    """The console script."""
    try:
        app()
    except KeyboardInterrupt:
        _err().print("interrupted", markup=False)
        sys.exit(130)
    finally:
        # Output still buffered when the command ends is written now, where a
        # reader that left (`| head`) would otherwise earn a traceback.
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _reader_left()

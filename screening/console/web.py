"""Request plumbing shared by the pages: sessions, language, time zone, CSRF, rights, rendering.

Every endpoint is wrapped by `endpoint()`, which resolves who is asking
before the page runs and turns API errors into pages (or, for htmx
requests, into a message in the page's message area).
"""

from __future__ import annotations

import functools
import gettext
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
from google.protobuf import timestamp_pb2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from screening.console import i18n
from screening.console.backend import ApiError, Identity
from screening.console.sessions import COOKIE, Session
from screening.v1 import screening_pb2 as pb

if TYPE_CHECKING:
    from screening.console.app import Console

log = logging.getLogger(__name__)

LANG_COOKIE = "screening_console_lang"
TZ_COOKIE = "screening_console_tz"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
ACTIONS = ("create", "update", "delete", "enable", "disable", "import")


@dataclass
class Ctx:
    """One request as a page sees it."""

    console: Console
    request: Request
    session: Session
    set_cookie: bool
    lang: str
    tr: gettext.NullTranslations
    tz: ZoneInfo
    identity: Identity | None = None
    tenant: str = ""
    _form: FormData | None = field(default=None, repr=False)

    def _(self, message: str) -> str:
        return self.tr.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.tr.ngettext(singular, plural, n)

    @property
    def token(self) -> str | None:
        return self.session.token

    @property
    def htmx(self) -> bool:
        return self.request.headers.get("hx-request") == "true"

    async def form(self) -> FormData:
        if self._form is None:
            self._form = await self.request.form()
        return self._form

    async def call(self, method: str, request: Any) -> Any:
        return await self.console.backend.call(method, request, self.token)

    def url(self, name: str, **params: Any) -> str:
        if "tenant" not in params and self.tenant:
            params["tenant"] = self.tenant
        return str(self.request.app.url_path_for(name, **params))

    def time(self, ts: timestamp_pb2.Timestamp | None, seconds: bool = True) -> str:
        """A timestamp in the viewer's time zone, or "" when unset."""
        if ts is None or (ts.seconds == 0 and ts.nanos == 0):
            return ""
        local = ts.ToDatetime(tzinfo=UTC).astimezone(self.tz)
        return local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")

    def explanation(self, text: str) -> str:
        """The server's reason a candidate entry did or did not decide, in the viewer's language."""
        _ = self._
        known = {
            "decided: exact match": _("decided: exact match"),
            "decided: longest qualifying prefix": _("decided: the longest prefix that applies"),
            "disabled": _("disabled"),
            "forbids inbound calls only": _("forbids inbound calls only"),
            "forbids outbound calls only": _("forbids outbound calls only"),
            "forbids both calls only": _("forbids both directions"),
            "a more specific entry decided": _("a more specific entry decided"),
            "an entry as specific decided first: the tenant's own, then the lists in subscription order": _(
                "an entry as specific decided first: this tenant's own, then the shared lists in the order subscribed"
            ),
            "not applied on this replica yet": _("not applied on this replica yet"),
        }
        if text in known:
            return known[text]
        if text.startswith("expired at "):
            return _("expired at %(time)s") % {"time": text.removeprefix("expired at ")}
        return text

    def action_label(self, action: str) -> str:
        _ = self._
        labels = {
            "create": _("Added"),
            "update": _("Edited"),
            "delete": _("Deleted"),
            "enable": _("Switched on"),
            "disable": _("Switched off"),
            "import": _("Imported"),
        }
        return labels.get(action, action)

    def render(
        self, template: str, status: int = 200, headers: dict[str, str] | None = None, **values: Any
    ) -> Response:
        env = self.console.environments[self.lang]
        values.setdefault("flashes", self.session.take_flashes() if not self.htmx else [])
        app = self.request.app
        html = env.get_template(template).render(
            ctx=self,
            pb=pb,
            url_for=lambda name, **params: str(app.url_path_for(name, **params)),
            explanation=self.explanation,
            api_message=lambda error: api_message(self, error),
            failure=failure,
            action_label=self.action_label,
            actions=[(a, self.action_label(a)) for a in ACTIONS],
            lang=i18n.LANGUAGES[self.lang],
            languages=i18n.LANGUAGES.values(),
            identity=self.identity,
            tenant=self.tenant,
            config=self.console.config,
            **values,
        )
        return self.finish(HTMLResponse(html, status_code=status, headers=headers))

    def redirect(self, url: str) -> Response:
        """To `url`: an htmx request follows HX-Redirect (a whole page load), others a 303."""
        if self.htmx:
            return self.finish(Response(status_code=200, headers={"HX-Redirect": url}))
        return self.finish(RedirectResponse(url, status_code=303))

    def finish(self, response: Response) -> Response:
        if self.set_cookie:
            response.set_cookie(
                COOKIE,
                self.session.id,
                httponly=True,
                samesite="strict",
                secure=self.request.url.scheme == "https",
                path="/",
            )
        return response


def local_path(url: str | None, default: str) -> str:
    """`url` if it is a path on this site, else `default` (no open redirects)."""
    if not url:
        return default
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return default
    return url


def _time_zone(request: Request) -> ZoneInfo:
    # console.js writes it with encodeURIComponent (Asia%2FShanghai).
    name = unquote(request.cookies.get(TZ_COOKIE, ""))
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _language(request: Request) -> str:
    chosen = request.cookies.get(LANG_COOKIE, "")
    if chosen in i18n.LANGUAGES:
        return chosen
    return i18n.negotiate(request.headers.get("accept-language", ""))


Handler = Callable[["Ctx"], Awaitable[Response]]


def endpoint(
    *, change: bool = False, tenant: bool = True, signed_in: bool = True
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wraps a page: `change` checks the CSRF token and the admin role, `tenant` the token's tenants."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def run(request: Request) -> Response:
            console: Console = request.app.state.console
            ctx = console.context(request)
            _ = ctx._
            if (change or request.method == "POST") and not await _csrf_ok(ctx):
                return _problem(ctx, 403, _("This form has expired. Reload the page and try again."))
            if signed_in:
                if ctx.session.identity is None:
                    if console.config.server_auth:
                        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                        return ctx.redirect(console.app.url_path_for("signin") + "?next=" + quote(target))
                    try:
                        ctx.session.identity = await console.backend.identity(None)
                    except ApiError as error:
                        return _api_problem(ctx, error)
                ctx.identity = ctx.session.identity
            if tenant:
                ctx.tenant = request.path_params["tenant"]
                assert ctx.identity is not None
                if not ctx.identity.may_act_for(ctx.tenant):
                    return _problem(
                        ctx, 403, _("Your token may not act for tenant %(tenant)s.") % {"tenant": ctx.tenant}
                    )
                if not ctx.identity.may_view:
                    return _problem(ctx, 403, _("Your token may not read forbidden numbers."))
            if change and ctx.identity is not None and not ctx.identity.may_change:
                return _problem(ctx, 403, _("Your token may only read: changes need the admin role."))
            try:
                return await handler(ctx)
            except ApiError as error:
                return _api_problem(ctx, error)

        return run

    return wrap


async def _csrf_ok(ctx: Ctx) -> bool:
    origin = ctx.request.headers.get("origin")
    if origin and origin != "null":
        own = f"{ctx.request.url.scheme}://{ctx.request.url.netloc}"
        if origin != own:
            return False
    presented = ctx.request.headers.get(CSRF_HEADER)
    if presented is None:
        content_type = ctx.request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            value = (await ctx.form()).get(CSRF_FIELD)
            presented = value if isinstance(value, str) else None
    return ctx.session.csrf_ok(presented)


def _problem(ctx: Ctx, status: int, message: str) -> Response:
    if ctx.htmx:
        # Into the page's message area, whatever the request targeted.
        return ctx.render(
            "message.html",
            status=status,
            headers={"HX-Retarget": "#messages", "HX-Reswap": "innerHTML"},
            kind="error",
            message=message,
        )
    return ctx.render("problem.html", status=status, message=message)


_STATUS = {
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.ALREADY_EXISTS: 409,
}


def api_message(ctx: Ctx, error: ApiError) -> str:
    _ = ctx._
    if error.code == grpc.StatusCode.UNAVAILABLE:
        return _("The screening server cannot be reached right now (%(detail)s). Try again in a moment.") % {
            "detail": error.message
        }
    if error.code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return _("The screening server did not answer in time. Try again in a moment.")
    if error.code == grpc.StatusCode.PERMISSION_DENIED:
        return _("The server refused: %(detail)s") % {"detail": error.message}
    if error.code == grpc.StatusCode.NOT_FOUND:
        return _("Not found: %(detail)s") % {"detail": error.message}
    return error.message


def _api_problem(ctx: Ctx, error: ApiError) -> Response:
    _ = ctx._
    if error.code == grpc.StatusCode.UNAUTHENTICATED:
        if ctx.console.config.server_auth:
            # The token left the auth file (or the server restarted with another one).
            ctx.console.sessions.drop(ctx.session)
            fresh = ctx.console.sessions.new()
            fresh.flash("error", _("Your token is no longer accepted; sign in again."))
            ctx.session, ctx.set_cookie = fresh, True
            return ctx.redirect(str(ctx.console.app.url_path_for("signin")))
        return _problem(
            ctx,
            503,
            _(
                "The server checks tokens, but this console was started without --server-auth: "
                "restart it with --server-auth so that people sign in."
            ),
        )
    if error.code not in _STATUS:
        log.warning("admin API call failed: %s", error)
    return _problem(ctx, _STATUS.get(error.code, 502), api_message(ctx, error))


def failure(reason: str) -> str:
    """A FAILED job's reason, for after "The import failed and changed nothing:" (which says the rest)."""
    return reason.removesuffix("; nothing was imported")


def now_utc() -> datetime:
    return datetime.now(UTC)

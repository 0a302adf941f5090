"""The console's ASGI application: the Console object that holds its parts, and its routes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from screening.console import i18n, pages
from screening.console.backend import Backend
from screening.console.config import ConsoleConfig
from screening.console.sessions import COOKIE, Sessions
from screening.console.uploads import Uploads
from screening.console.web import Ctx, _language, _time_zone

HERE = Path(__file__).parent
# htmx's inline indicator styles are off (htmx-config), so styles need no 'unsafe-inline'.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                ]
                if not scope["path"].startswith("/static/"):
                    # Pages show one tenant's data: never from a shared cache.
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Console:
    def __init__(self, config: ConsoleConfig) -> None:
        self.config = config
        self.backend = Backend(config)
        self.sessions = Sessions(config.session_idle_seconds)
        self.uploads = Uploads(self.backend)
        self.translations = i18n.load()
        loader = jinja2.FileSystemLoader(HERE / "templates")
        self.environments: dict[str, jinja2.Environment] = {}
        for code, translation in self.translations.items():
            env = jinja2.Environment(
                loader=loader,
                autoescape=True,
                extensions=["jinja2.ext.i18n"],
                undefined=jinja2.StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
            )
            env.install_gettext_translations(translation, newstyle=True)  # type: ignore[attr-defined]
            self.environments[code] = env
        self.app = Starlette(
            routes=[*pages.routes(), Mount("/static", StaticFiles(directory=HERE / "static"), name="static")],
            middleware=[Middleware(SecurityHeaders)],
            lifespan=self._lifespan,
        )
        self.app.state.console = self

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        await self.uploads.close()
        await self.backend.close()

    def context(self, request: Request) -> Ctx:
        session = self.sessions.get(request.cookies.get(COOKIE))
        fresh = session is None
        if session is None:
            session = self.sessions.new()
        lang = _language(request)
        return Ctx(
            console=self,
            request=request,
            session=session,
            set_cookie=fresh,
            lang=lang,
            tr=self.translations[lang],
            tz=_time_zone(request),
        )

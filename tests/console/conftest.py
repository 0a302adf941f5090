"""The console under test: a real server (tests/conftest.py), the console in this event loop, real Chromium.

Chromium is Debian's (`make console-packages`), driven through Playwright's
Python API at its executable path: nothing is downloaded. Each test gets a
fresh browser context (its own cookies and storage); the browser itself is
started once, with a fresh profile directory.
"""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from screening.app.service import App
from screening.console.app import Console
from screening.console.config import ConsoleConfig

CHROMIUM = "/usr/bin/chromium"
# The machine's network is closed: without these Chromium keeps trying to reach
# Google's services and floods the log with refused connections.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"


@dataclass
class RunningConsole:
    url: str
    console: Console
    server: App

    def at(self, path: str) -> str:
        return self.url + path


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        # launch() gives Chromium a new temporary profile (--user-data-dir) every time.
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


StartConsole = Callable[..., Awaitable[RunningConsole]]


@pytest.fixture
async def start_console() -> AsyncIterator[StartConsole]:
    """Start a console for a server, in this event loop, on a port of its own; all stop after the test."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(app: App, **overrides: Any) -> RunningConsole:
        sock = socket.create_server(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = ConsoleConfig(listen=f"127.0.0.1:{port}", server=f"127.0.0.1:{app.port}", **overrides)
        console = Console(config)
        server = uvicorn.Server(uvicorn.Config(console.app, log_level="warning", access_log=False))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        servers.append((server, task))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        return RunningConsole(f"http://127.0.0.1:{port}", console, app)

    yield start
    for server, task in servers:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def console(server: App, start_console: StartConsole) -> RunningConsole:
    return await start_console(server)


@pytest.fixture
async def new_page(browser: Browser) -> AsyncIterator[Callable[..., Awaitable[Page]]]:
    """Pages in fresh browser contexts (English and UTC unless told otherwise)."""
    contexts: list[BrowserContext] = []

    async def make(locale: str = "en-US", timezone_id: str = "UTC") -> Page:
        context = await browser.new_context(
            locale=locale, timezone_id=timezone_id, accept_downloads=True, viewport={"width": 1280, "height": 900}
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        return await context.new_page()

    yield make
    for context in contexts:
        await context.close()


@pytest.fixture
async def page(new_page: Callable[..., Awaitable[Page]]) -> Page:
    return await new_page()


Shot = Callable[[Page, str], Awaitable[None]]


@pytest.fixture
def shot() -> Shot:
    """Saves a screenshot for people to look at (git-ignored): tests/console/screenshots/NAME.png."""

    async def take(page: Page, name: str) -> None:
        SCREENSHOTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    return take


Download = Callable[[Page, str], Awaitable[tuple[str, bytes]]]


@pytest.fixture
def download() -> Download:
    """Clicks the link named so (exactly) and returns the file's suggested name and its bytes."""

    async def take(page: Page, link_name: str) -> tuple[str, bytes]:
        async with page.expect_download() as info:
            await page.get_by_role("link", name=link_name, exact=True).click()
        done = await info.value
        path = await done.path()
        return done.suggested_filename, path.read_bytes()

    return take


@pytest.fixture
def xlsx_rows() -> Callable[[bytes], list[list[str]]]:
    """A workbook's first sheet as rows of text, each as wide as the widest (empty cells are not written)."""

    def read(data: bytes) -> list[list[str]]:
        sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True).worksheets[0]
        rows = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
        width = max(len(r) for r in rows)
        return [r + [""] * (width - len(r)) for r in rows]

    return read

"""Sign-in with tokens of the server's auth file, the session cookie, CSRF, and what a token may not do."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from screening.app.service import App
from screening.v1 import screening_pb2 as pb
from tests.support import Clients, bearer, create, write_auth_file

TOKENS = {
    "ada": ("ada-secret-token", ["admin"], ["acme"]),
    "vic": ("vic-secret-token", ["viewer"], ["acme"]),
    "switch": ("switch-secret-token", ["screen"], ["*"]),
    "root": ("root-secret-token", ["admin"], ["*"]),
}


@pytest.fixture
async def secured(start_server, tmp_path: Path) -> App:
    return await start_server(auth_file=write_auth_file(tmp_path / "auth.toml", TOKENS))


@pytest.fixture
async def secured_console(secured: App, start_console):
    return await start_console(secured, server_auth=True)


async def sign_in(page: Page, url: str, token: str) -> None:
    await page.goto(url)
    await page.get_by_label("Token").fill(token)
    await page.get_by_role("button", name="Sign in").click()


async def test_sign_in_and_out(secured_console, secured: App, connect, page: Page, shot) -> None:
    clients: Clients = connect(secured)
    await clients.admin.CreateForbiddenNumber(
        pb.CreateForbiddenNumberRequest(
            forbidden_number=pb.ForbiddenNumber(tenant_id="acme", number="+14155550100", call_type=pb.CALL_TYPE_BOTH)
        ),
        metadata=bearer("ada-secret-token"),
    )
    await page.goto(secured_console.at("/t/acme/numbers"))
    # Not signed in: the sign-in page, which returns to where the person was going.
    await expect(page).to_have_url(secured_console.at("/signin?next=/t/acme/numbers"))
    await shot(page, "signin")
    await page.get_by_label("Token").fill("not-a-token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#token-error")).to_have_text("The server does not know this token.")
    await expect(page.get_by_label("Token")).to_have_attribute("aria-invalid", "true")

    await page.get_by_label("Token").fill("ada-secret-token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(secured_console.at("/t/acme/numbers"))
    await expect(page.get_by_test_id("identity")).to_have_text("ada")
    await expect(page.locator("tbody")).to_contain_text("+14155550100")

    cookies = {c["name"]: c for c in await page.context.cookies()}
    session = cookies["screening_console"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert "ada-secret-token" not in session["value"]

    # Changes made through the console carry the person's token: the audit trail names them.
    await page.get_by_role("switch", name="Enabled: +14155550100").click()
    await expect(page.locator("tr", has_text="+14155550100").get_by_text("Disabled", exact=True)).to_be_visible()
    events = await clients.admin.ListAuditEvents(
        pb.ListAuditEventsRequest(tenant_id="acme", action="disable"), metadata=bearer("ada-secret-token")
    )
    assert [e.actor for e in events.audit_events] == ["ada"]

    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(secured_console.at("/signin"))
    await expect(page.locator("#messages")).to_contain_text("Signed out.")
    # The old session is gone on the console's side too.
    old = await page.context.request.get(
        secured_console.at("/t/acme/numbers"),
        headers={"Cookie": f"screening_console={session['value']}"},
        max_redirects=0,
    )
    assert old.status == 303 and old.headers["location"].startswith("/signin")


async def test_a_token_without_console_roles_is_refused(secured_console, page: Page) -> None:
    await sign_in(page, secured_console.at("/signin"), "switch-secret-token")
    await expect(page.locator("#token-error")).to_contain_text("the console needs viewer or admin")
    await expect(page).to_have_url(secured_console.at("/signin"))


async def test_a_viewer_reads_but_cannot_change(secured_console, secured: App, connect, page: Page, shot) -> None:
    clients: Clients = connect(secured)
    created = await clients.admin.CreateForbiddenNumber(
        pb.CreateForbiddenNumberRequest(
            forbidden_number=pb.ForbiddenNumber(tenant_id="acme", number="+14155550100", call_type=pb.CALL_TYPE_BOTH)
        ),
        metadata=bearer("ada-secret-token"),
    )
    await sign_in(page, secured_console.at("/signin?next=/t/acme/numbers"), "vic-secret-token")
    await expect(page.locator("tbody")).to_contain_text("+14155550100")
    await expect(page.get_by_test_id("identity")).to_have_text("vic")
    await expect(page.get_by_role("button", name="Add")).to_have_count(0)
    await expect(page.get_by_role("switch")).to_have_count(0)
    await shot(page, "numbers-viewer")
    # A change sent anyway (with a valid CSRF token) is refused, and nothing changes.
    csrf = await page.evaluate("JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']")
    refused = await page.context.request.post(
        secured_console.at(f"/t/acme/numbers/{created.id}/enabled"),
        headers={"X-CSRF-Token": csrf},
        form={"enabled": "false"},
    )
    assert refused.status == 403
    assert "admin role" in await refused.text()
    stored = await clients.admin.GetForbiddenNumber(
        pb.GetForbiddenNumberRequest(tenant_id="acme", id=created.id), metadata=bearer("vic-secret-token")
    )
    assert stored.enabled

    # Another tenant's pages are closed to this token.
    other = await page.goto(secured_console.at("/t/beta/numbers"))
    assert other is not None and other.status == 403
    await expect(page.get_by_test_id("problem")).to_have_text("Your token may not act for tenant beta.")


async def test_the_tenant_picker_lists_only_the_tokens_tenants(secured_console, secured: App, connect, page) -> None:
    clients: Clients = connect(secured)
    for tenant in ("acme", "beta", "gamma"):
        await clients.admin.CreateForbiddenNumber(
            pb.CreateForbiddenNumberRequest(
                forbidden_number=pb.ForbiddenNumber(tenant_id=tenant, number="+14155550100", call_type=1)
            ),
            metadata=bearer("root-secret-token"),
        )
    await sign_in(page, secured_console.at("/tenants"), "vic-secret-token")
    await expect(page.get_by_test_id("tenants").get_by_role("link")).to_have_text(["acme"])
    await page.get_by_role("button", name="Sign out").click()
    await sign_in(page, secured_console.at("/tenants"), "root-secret-token")
    await expect(page.get_by_test_id("tenants").get_by_role("link")).to_have_text(["acme", "beta", "gamma"])
    # A token for every tenant may open one that has no entries yet.
    await page.get_by_label("Another tenant id").fill("delta")
    await page.get_by_role("button", name="Open").click()
    await expect(page).to_have_url(secured_console.at("/t/delta/numbers"))


async def test_changes_need_the_csrf_token(console, clients: Clients, page: Page) -> None:
    created = await create(clients, "+14155550100")
    await page.goto(console.at("/t/acme/numbers"))
    url = console.at(f"/t/acme/numbers/{created.id}/enabled")
    for headers in ({}, {"X-CSRF-Token": "guessed"}):
        refused = await page.context.request.post(url, headers=headers, form={"enabled": "false"})
        assert refused.status == 403
    # A page of another origin cannot post even with the right token.
    csrf = await page.evaluate("JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']")
    cross = await page.context.request.post(
        url, headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"}, form={"enabled": "false"}
    )
    assert cross.status == 403
    assert (
        await clients.admin.GetForbiddenNumber(pb.GetForbiddenNumberRequest(tenant_id="acme", id=created.id))
    ).enabled
    allowed = await page.context.request.post(url, headers={"X-CSRF-Token": csrf}, form={"enabled": "false"})
    assert allowed.status == 200
    stored = await clients.admin.GetForbiddenNumber(pb.GetForbiddenNumberRequest(tenant_id="acme", id=created.id))
    assert not stored.enabled


async def test_without_server_auth_a_token_checking_server_is_explained(secured: App, start_console, page) -> None:
    console = await start_console(secured)
    response = await page.goto(console.at("/t/acme/numbers"))
    assert response is not None and response.status == 503
    await expect(page.get_by_test_id("problem")).to_contain_text("--server-auth")


def test_without_server_auth_the_console_listens_on_loopback_only() -> None:
    from screening.console.config import ConsoleConfig, ConsoleConfigError

    with pytest.raises(ConsoleConfigError, match="loopback only"):
        ConsoleConfig(listen="0.0.0.0:8080")
    assert ConsoleConfig(listen="0.0.0.0:8080", server_auth=True).listen == "0.0.0.0:8080"


def test_sessions_are_bounded_and_forget_the_least_recently_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    from screening.console import sessions

    monkeypatch.setattr(sessions, "MAX_SESSIONS", 3)
    table = sessions.Sessions(idle_seconds=3600)
    first, second, third = table.new(), table.new(), table.new()
    assert table.get(first.id) is first  # seen again: now the most recent
    table.new()
    assert table.get(second.id) is None
    assert table.get(first.id) is first and table.get(third.id) is third

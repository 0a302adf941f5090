"""Allow-exceptions, hit counts and the reasons of "test a number", in Chromium."""

from __future__ import annotations

from playwright.async_api import Page, expect

from screening.v1 import screening_pb2 as pb
from tests.support import Clients, StartServer, create, screen, until_verdict


async def test_an_allow_exception_added_and_edited_in_the_dialog(console, clients: Clients, page: Page, shot) -> None:
    await page.goto(console.at("/t/acme/numbers"))
    await page.get_by_role("button", name="Add").click()
    dialog = page.get_by_role("dialog", name="Add forbidden number")
    await dialog.get_by_label("Number", exact=True).fill("+1 900 555")
    await dialog.get_by_label("Prefix: every number that starts with it").check()
    await dialog.get_by_label("Call type").select_option("both")
    await dialog.get_by_label("Allow: an exception to a broader entry", exact=False).check()
    await shot(page, "add-allow-exception")
    await dialog.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("dialog")).to_have_count(0)
    row = page.locator("tr", has_text="+1900555")
    await expect(row.get_by_test_id("action")).to_have_text("Allow")
    listed = await clients.admin.ListForbiddenNumbers(pb.ListForbiddenNumbersRequest(tenant_id="acme"))
    (stored,) = listed.forbidden_numbers
    assert (stored.number, stored.match_kind, stored.action) == ("+1900555", pb.MATCH_KIND_PREFIX, pb.ACTION_ALLOW)

    await row.get_by_role("button", name="Edit +1900555").click()
    edit = page.get_by_role("dialog", name="Edit forbidden number")
    await expect(edit.get_by_label("Allow: an exception to a broader entry", exact=False)).to_be_checked()
    await edit.get_by_label("Block the calls it matches").check()
    await edit.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("dialog")).to_have_count(0)
    await expect(page.locator("tr", has_text="+1900555").get_by_test_id("action")).to_have_text("Block")
    got = await clients.admin.GetForbiddenNumber(pb.GetForbiddenNumberRequest(tenant_id="acme", id=stored.id))
    assert got.action == pb.ACTION_BLOCK


async def test_test_a_number_names_the_reason_the_deciding_entry_and_its_list(
    console, clients: Clients, page: Page, shot
) -> None:
    await create(clients, "+1900", tenant="@dnc", match_kind=pb.MATCH_KIND_PREFIX)
    await clients.admin.UpdateTenantSettings(
        pb.UpdateTenantSettingsRequest(settings=pb.TenantSettings(tenant_id="acme", subscribed_lists=["@dnc"]))
    )
    await create(clients, "+1900555", match_kind=pb.MATCH_KIND_PREFIX, action=pb.ACTION_ALLOW, note="partner")
    await create(clients, "+1800", match_kind=pb.MATCH_KIND_PREFIX, call_type=pb.CALL_TYPE_OUTBOUND)
    await until_verdict(clients, "+19001230000", pb.VERDICT_BLOCK)
    await until_verdict(clients, "+18001230000", pb.VERDICT_BLOCK, direction=pb.DIRECTION_OUTBOUND)

    await page.goto(console.at("/t/acme/test"))
    number = page.get_by_label("Number", exact=True)
    test = page.get_by_role("button", name="Test")
    await number.fill("+1 900 555 0123")
    await test.click()
    await expect(page.get_by_test_id("verdict")).to_contain_text("Allowed")
    await expect(page.get_by_test_id("reason")).to_contain_text("An allow-exception decided.")
    decided = page.get_by_test_id("decided")
    await expect(decided).to_contain_text("+1900555")
    await expect(decided).to_contain_text("Allow")
    await expect(decided).to_contain_text("this tenant's own")
    await expect(page.get_by_test_id("matched")).to_have_count(0)  # nothing blocked
    # The entries considered include the subscribed list's, named as such.
    listed = page.locator("tr", has=page.get_by_test_id("candidate-list"))
    await expect(listed).to_have_count(1)
    await expect(listed.locator("td.number")).to_contain_text("+1900")
    await expect(listed.get_by_test_id("candidate-list")).to_have_text("on the shared list @dnc")
    await expect(listed.get_by_test_id("explanation")).to_have_text("a more specific entry decided")
    await shot(page, "test-number-allow-exception")

    await number.fill("+1 900 123 0000")
    await test.click()
    await expect(page.get_by_test_id("verdict")).to_contain_text("Blocked")
    await expect(page.get_by_test_id("reason")).to_contain_text("An entry that blocks decided.")
    await expect(page.get_by_test_id("decided")).to_contain_text("on the shared list @dnc")

    await number.fill("+1 800 123 0000")
    await test.click()  # inbound: the +1800 entry forbids outbound calls only
    await expect(page.get_by_test_id("verdict")).to_contain_text("Allowed")
    await expect(page.get_by_test_id("reason")).to_contain_text("Entries match, for the other direction only.")
    await expect(page.get_by_test_id("decided")).to_have_count(0)


async def test_the_list_shows_calls_decided_and_the_last_one(
    start_server: StartServer, start_console, connect, page: Page, shot
) -> None:
    app = await start_server(hit_flush_interval=0.2)
    clients: Clients = connect(app)
    console = await start_console(app)
    await create(clients, "+14155550100")
    await create(clients, "+14155550101")
    await until_verdict(clients, "+14155550100", pb.VERDICT_BLOCK)
    for _ in range(3):
        await screen(clients, "+14155550100")
    await page.goto(console.at("/t/acme/numbers"))
    busy = page.locator("tr", has_text="+14155550100")
    quiet = page.locator("tr", has_text="+14155550101")
    # Counts reach the database in batches: reload until this one is there (until_verdict's own calls count too).
    for _ in range(50):
        if int((await busy.get_by_test_id("hits").inner_text()).replace(",", "")) >= 4:
            break
        await page.wait_for_timeout(200)
        await page.reload()
    assert int((await busy.get_by_test_id("hits").inner_text()).replace(",", "")) >= 4
    await expect(busy.get_by_test_id("last-hit")).not_to_have_text("")
    await expect(quiet.get_by_test_id("hits")).to_have_text("0")
    await expect(quiet.get_by_test_id("last-hit")).to_have_text("")
    await shot(page, "numbers-with-hits")

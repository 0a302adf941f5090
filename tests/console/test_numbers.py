"""The Forbidden numbers page in Chromium: add, edit (and a stale edit), toggle, bulk actions, search, pages."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from screening.v1 import screening_pb2 as pb
from tests.support import Clients, create


async def entries(clients: Clients, tenant: str = "acme") -> dict[str, pb.ForbiddenNumber]:
    listed = await clients.admin.ListForbiddenNumbers(pb.ListForbiddenNumbersRequest(tenant_id=tenant, page_size=1000))
    return {e.number: e for e in listed.forbidden_numbers}


async def test_add_shows_the_normalized_number_and_errors_beside_their_field(
    console, clients, page: Page, shot
) -> None:
    await page.goto(console.at("/t/acme/numbers"))
    await expect(page.get_by_text("No forbidden numbers yet.")).to_be_visible()
    await page.get_by_role("button", name="Add").click()
    dialog = page.get_by_role("dialog", name="Add forbidden number")
    await expect(dialog).to_be_visible()
    # The server's own normalization, as the person types.
    await dialog.get_by_label("Number", exact=True).fill("+1 (415) 555-0100")
    await expect(dialog.get_by_test_id("normalized")).to_have_text("+14155550100")
    # A number the server refuses: its reason beside the number field, the rest of the input kept.
    await dialog.get_by_label("Number", exact=True).fill("+1 415 CALL-NOW")
    await dialog.get_by_label("Call type").select_option("inbound")
    await dialog.get_by_label("Note").fill("Reported twice")
    await dialog.get_by_role("button", name="Save").click()
    number = page.get_by_role("dialog").get_by_label("Number", exact=True)
    await expect(number).to_have_attribute("aria-invalid", "true")
    error = page.locator("#entry-number-error")
    await expect(error).to_contain_text("contains 'C'")
    await shot(page, "add-dialog-error")
    await expect(page.get_by_role("dialog").get_by_label("Note")).to_have_value("Reported twice")
    await expect(page.get_by_role("dialog").get_by_label("Call type")).to_have_value("inbound")

    await number.fill("+1 415 555 0100")
    await page.get_by_role("dialog").get_by_label("Prefix: every number that starts with it").check()
    await page.get_by_role("dialog").get_by_label("Expires").fill("2030-06-30T18:00")
    await page.get_by_role("dialog").get_by_role("button", name="Save").click()
    await expect(page.get_by_role("dialog")).to_have_count(0)
    await expect(page.locator("#messages")).to_contain_text("Added +14155550100.")
    row = page.locator("tr", has_text="+14155550100")
    await expect(row).to_contain_text("Inbound")
    await expect(row).to_contain_text("Prefix")
    await expect(row).to_contain_text("2030-06-30 18:00")
    await shot(page, "numbers-after-add")

    stored = (await entries(clients))["+14155550100"]
    assert stored.call_type == pb.CALL_TYPE_INBOUND
    assert stored.match_kind == pb.MATCH_KIND_PREFIX
    assert stored.note == "Reported twice"
    assert stored.expire_time.ToJsonString() == "2030-06-30T18:00:00Z"


async def test_a_missing_call_type_is_named_beside_its_field(console, page: Page) -> None:
    await page.goto(console.at("/t/acme/numbers"))
    await page.get_by_role("button", name="Add").click()
    await page.get_by_role("dialog").get_by_label("Number", exact=True).fill("+14155550100")
    await page.get_by_role("dialog").get_by_role("button", name="Save").click()
    await expect(page.locator("#entry-call_type-error")).to_have_text("Choose which calls this number forbids.")
    await expect(page.get_by_role("dialog").get_by_label("Number", exact=True)).to_have_value("+14155550100")


async def test_a_stale_edit_is_explained_and_the_input_kept(console, clients, page: Page, shot) -> None:
    entry = await create(clients, "+14155550100", note="first")
    await page.goto(console.at("/t/acme/numbers"))
    await page.get_by_role("button", name="Edit +14155550100").click()
    dialog = page.get_by_role("dialog", name="Edit forbidden number")
    await expect(dialog.get_by_label("Note")).to_have_value("first")
    # Someone else saves while the dialog is open.
    await clients.admin.UpdateForbiddenNumber(
        pb.UpdateForbiddenNumberRequest(
            forbidden_number=pb.ForbiddenNumber(tenant_id="acme", id=entry.id, note="theirs", etag=entry.etag)
        )
    )
    await dialog.get_by_label("Note").fill("mine")
    await dialog.get_by_label("Call type").select_option("outbound")
    await dialog.get_by_role("button", name="Save").click()
    stale = page.get_by_test_id("stale")
    await expect(stale).to_contain_text("Someone else saved this entry after you opened it.")
    await expect(stale).to_contain_text("theirs")
    await expect(page.get_by_role("dialog").get_by_label("Note")).to_have_value("mine")
    await expect(page.get_by_role("dialog").get_by_label("Call type")).to_have_value("outbound")
    await shot(page, "edit-stale")
    assert (await entries(clients))["+14155550100"].note == "theirs"

    await page.get_by_role("dialog").get_by_role("button", name="Save mine anyway").click()
    await expect(page.locator("#messages")).to_contain_text("Saved +14155550100.")
    saved = (await entries(clients))["+14155550100"]
    assert (saved.note, saved.call_type) == ("mine", pb.CALL_TYPE_OUTBOUND)


async def test_the_switch_turns_an_entry_off_and_on(console, clients, page: Page) -> None:
    await create(clients, "+14155550100")
    await page.goto(console.at("/t/acme/numbers"))
    switch = page.get_by_role("switch", name="Enabled: +14155550100")
    await expect(switch).to_be_checked()
    # From the keyboard, as a person without a mouse would.
    await switch.focus()
    await page.keyboard.press("Space")
    row = page.locator("tr", has_text="+14155550100")
    await expect(row.get_by_text("Disabled", exact=True)).to_be_visible()
    assert not (await entries(clients))["+14155550100"].enabled
    await page.get_by_role("switch", name="Enabled: +14155550100").click()
    await expect(row.get_by_text("Active", exact=True)).to_be_visible()
    assert (await entries(clients))["+14155550100"].enabled


async def test_bulk_disable_and_delete_with_confirmation(console, clients, page: Page, shot) -> None:
    for number in ("+14155550100", "+14155550101", "+14155550102"):
        await create(clients, number)
    await page.goto(console.at("/t/acme/numbers"))
    disable = page.get_by_role("button", name="Disable selected")
    await expect(disable).to_be_disabled()
    await page.get_by_label("Select +14155550100").check()
    await page.get_by_label("Select +14155550102").check()
    await expect(page.locator("#selected-count")).to_have_text("2 selected")
    await disable.click()
    await expect(page.locator("#messages")).to_contain_text("2 entries disabled.")
    stored = await entries(clients)
    assert [n for n, e in sorted(stored.items()) if not e.enabled] == ["+14155550100", "+14155550102"]

    await page.get_by_label("Select all on this page").check()
    await page.get_by_role("button", name="Delete selected").click()
    confirm = page.get_by_role("dialog", name="Delete 3 entries?")
    await expect(confirm).to_contain_text("+14155550101")
    await shot(page, "bulk-delete-confirm")
    # Cancel leaves everything in place.
    await confirm.get_by_role("button", name="Cancel").click()
    await expect(page.get_by_role("dialog")).to_have_count(0)
    assert len(await entries(clients)) == 3
    await page.get_by_role("button", name="Delete selected").click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete 3 entries").click()
    await expect(page.locator("#messages")).to_contain_text("3 entries deleted.")
    assert await entries(clients) == {}


async def test_search_filters_and_keyset_pages(console, clients, page: Page, shot) -> None:
    for i in range(30):
        await create(clients, f"+1415555{i:04d}", note="robocall" if i % 10 == 0 else "", enabled=i % 3 != 0)
    await create(clients, "+1900", match_kind=pb.MATCH_KIND_PREFIX, call_type=pb.CALL_TYPE_OUTBOUND)
    await page.goto(console.at("/t/acme/numbers?size=25"))
    await expect(page.get_by_test_id("total")).to_have_text("1–25 of 31")
    await page.get_by_role("link", name="Next page").click()
    await expect(page.get_by_test_id("total")).to_have_text("26–31 of 31")
    await page.get_by_role("link", name="Previous page").click()
    await expect(page.get_by_test_id("total")).to_have_text("1–25 of 31")

    await page.get_by_label("Match", exact=True).select_option("prefix")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("tbody tr")).to_have_count(1)
    await expect(page.locator("tbody tr")).to_contain_text("Outbound")


async def test_search_by_number_or_note_and_filter_by_status(console, clients, page: Page, shot) -> None:
    for i in range(30):
        await create(clients, f"+1415555{i:04d}", note="robocall" if i % 10 == 0 else "", enabled=i % 3 != 0)
    await page.goto(console.at("/t/acme/numbers"))
    await page.get_by_label("Search number or note").fill("5550012")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("tbody tr")).to_have_count(1)
    await expect(page.locator("tbody tr")).to_contain_text("+14155550012")
    await page.get_by_label("Search number or note").fill("robocall")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("tbody tr")).to_have_count(3)
    await page.get_by_label("Status").select_option("disabled")
    await page.get_by_role("button", name="Search").click()
    # Of the robocall notes (0, 10, 20) only 0 is disabled (i % 3 == 0).
    await expect(page.locator("tbody tr")).to_have_count(1)
    await expect(page.locator("tbody tr")).to_contain_text("+14155550000")
    await page.get_by_label("Status").select_option("active")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("tbody tr")).to_have_count(2)
    await shot(page, "numbers-search")
    assert re.search(r"q=robocall", page.url)


async def test_the_dialog_works_from_the_keyboard(console, clients, page: Page) -> None:
    await page.goto(console.at("/t/acme/numbers"))
    add = page.get_by_role("button", name="Add")
    await add.focus()
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Add forbidden number")
    await expect(dialog).to_be_visible()
    # Focus starts in the first field; Escape closes and gives focus back to Add.
    await expect(dialog.get_by_label("Number", exact=True)).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("dialog")).to_have_count(0)
    await expect(add).to_be_focused()

    await page.keyboard.press("Enter")
    await expect(dialog.get_by_label("Number", exact=True)).to_be_focused()
    await page.keyboard.type("+14155550100")
    await page.keyboard.press("Tab")  # to Exact
    await page.keyboard.press("Tab")  # to Call type (a radio group is one tab stop)
    await expect(dialog.get_by_label("Call type")).to_be_focused()
    await dialog.get_by_label("Call type").select_option("both")
    await dialog.get_by_label("Note").focus()
    await page.keyboard.type("typed")
    await dialog.get_by_role("button", name="Save").press("Enter")
    await expect(page.locator("#messages")).to_contain_text("Added +14155550100.")
    assert (await entries(clients))["+14155550100"].note == "typed"

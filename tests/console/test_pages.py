"""Export, the template, test a number, the audit log and the replica status, in Chromium."""

from __future__ import annotations

import csv
import io

import openpyxl
from playwright.async_api import Page, expect

from screening.domain.fields import COLUMNS
from screening.files import template
from screening.v1 import screening_pb2 as pb
from tests.support import Clients, create, until_verdict


async def test_export_csv_and_xlsx_with_the_lists_filters(
    console, clients: Clients, page: Page, download, xlsx_rows
) -> None:
    await create(clients, "+14155550100", note="机器人电话, robocall", call_type=pb.CALL_TYPE_INBOUND)
    await create(
        clients,
        "+1900",
        match_kind=pb.MATCH_KIND_PREFIX,
        call_type=pb.CALL_TYPE_OUTBOUND,
        enabled=False,
        action=pb.ACTION_ALLOW,
    )
    await page.goto(console.at("/t/acme/numbers"))
    name, data = await download(page, "Export CSV")
    assert name.startswith("forbidden-numbers-acme-") and name.endswith(".csv")
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows == [
        ["number", "call_type", "match_kind", "enabled", "note", "expire_time", "action"],
        ["+14155550100", "inbound", "exact", "true", "机器人电话, robocall", "", "block"],
        ["+1900", "outbound", "prefix", "false", "", "", "allow"],
    ]
    name, data = await download(page, "Export XLSX")
    assert name.endswith(".xlsx")
    assert xlsx_rows(data) == [
        ["number", "call_type", "match_kind", "enabled", "note", "expire_time", "action"],
        ["+14155550100", "inbound", "exact", "true", "机器人电话, robocall", "", "block"],
        ["+1900", "outbound", "prefix", "false", "", "", "allow"],
    ]
    # The export follows the list's filters.
    await page.get_by_label("Match", exact=True).select_option("prefix")
    await page.get_by_role("button", name="Search").click()
    _, data = await download(page, "Export CSV")
    assert [r[0] for r in csv.reader(io.StringIO(data.decode("utf-8-sig")))] == ["number", "+1900"]


async def test_the_import_templates(console, page: Page, shot, download) -> None:
    await page.goto(console.at("/t/acme/numbers"))
    await page.get_by_role("button", name="Import").click()
    dialog = page.get_by_role("dialog", name="Import forbidden numbers")
    await expect(dialog).to_be_visible()
    await shot(page, "import-dialog")
    # The files screenctl writes (screening.files.template): the example rows, drop-down lists, instructions.
    name, data = await download(page, "Excel (.xlsx)")
    assert name == "forbidden-numbers-template.xlsx"
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["numbers", "instructions"]
    numbers = book["numbers"]
    rows = [[c.value or "" for c in row] for row in numbers.iter_rows()]
    assert rows == [list(COLUMNS), *(list(r) for r in template.example_rows())]
    assert {v.formula1 for v in numbers.data_validations.dataValidation} == {
        '"inbound,outbound,both"',
        '"exact,prefix"',
        '"true,false"',
        '"block,allow"',
    }
    assert book["instructions"]["B1"].value == "如何填写本模板"
    name, data = await download(page, "CSV (.csv)")
    assert name == "forbidden-numbers-template.csv"
    assert data == template.csv_bytes()


async def test_test_a_number_shows_the_verdict_the_match_and_why(console, clients: Clients, page: Page, shot) -> None:
    await create(clients, "+1415", match_kind=pb.MATCH_KIND_PREFIX, call_type=pb.CALL_TYPE_INBOUND, note="Bay Area")
    await create(clients, "+14155550100", call_type=pb.CALL_TYPE_OUTBOUND)
    # The answer comes from the replica's memory, which the changes reach a moment later.
    await until_verdict(clients, "+14155550100", pb.VERDICT_BLOCK, direction=pb.DIRECTION_OUTBOUND)
    await page.goto(console.at("/t/acme/numbers"))
    await page.get_by_role("link", name="Test a number").click()
    await page.get_by_label("Number", exact=True).fill("+1 415 555 0100")
    await page.get_by_label("Direction").select_option("inbound")
    await page.get_by_role("button", name="Test").click()
    verdict = page.get_by_test_id("verdict")
    await expect(verdict).to_contain_text("Blocked")
    await expect(page.get_by_test_id("test-normalized")).to_have_text("+14155550100")
    await expect(page.get_by_test_id("matched")).to_contain_text("+1415")
    await expect(page.get_by_test_id("explanation")).to_have_text(
        ["forbids outbound calls only", "decided: the longest prefix that applies"]
    )
    await shot(page, "test-number")
    await page.get_by_label("Direction").select_option("outbound")
    await page.get_by_role("button", name="Test").click()
    await expect(verdict).to_contain_text("Blocked")
    await expect(page.get_by_test_id("matched")).to_contain_text("+14155550100")
    await page.get_by_label("Number", exact=True).fill("+1 415 CALL")
    await page.get_by_role("button", name="Test").click()
    await expect(page.locator("#number-error")).to_contain_text("contains 'C'")


async def test_the_audit_log_with_filters(console, clients: Clients, page: Page, shot) -> None:
    first = await create(clients, "+14155550100", note="one")
    await create(clients, "+14155550101")
    await clients.admin.UpdateForbiddenNumber(
        pb.UpdateForbiddenNumberRequest(forbidden_number=pb.ForbiddenNumber(tenant_id="acme", id=first.id, note="two"))
    )
    await page.goto(console.at("/t/acme/audit"))
    rows = page.locator("table.audit tbody tr")
    await expect(rows).to_have_count(3)
    await expect(rows.first).to_contain_text("Edited")
    await expect(rows.first).to_contain_text("“one” → “two”")
    await shot(page, "audit")
    await page.get_by_label("Action").select_option("create")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(2)
    await page.get_by_label("Action").select_option("")
    await page.get_by_label("Entry or job id").fill(first.id)
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(2)


async def test_the_replica_status(console, clients: Clients, page: Page, shot) -> None:
    await create(clients, "+14155550100")
    await until_verdict(clients, "+14155550100", pb.VERDICT_BLOCK)
    await page.goto(console.at("/t/acme/status"))
    await expect(page.get_by_test_id("serving")).to_have_text("Yes")
    await expect(page.get_by_test_id("entries")).to_have_text("1")
    await shot(page, "status")

"""Import an xlsx with bad lines through the dialog, then find every bad line in the Task Center."""

from __future__ import annotations

from pathlib import Path

import openpyxl
from playwright.async_api import Page, expect

from screening.v1 import screening_pb2 as pb

GOOD = [
    ("+14155550100", "inbound", "exact", "true", "robocalls", ""),
    ("+1900", "outbound", "prefix", "", "premium rate", ""),
    ("+8613800138000", "both", "", "false", "骚扰电话", "2030-01-01T00:00:00Z"),
]
# line -> (row, the column the reason is about)
BAD = {
    3: (("+1 415 CALL-NOW", "inbound", "exact", "true", "letters", ""), "number"),
    5: (("+14155550199", "sometimes", "exact", "true", "", ""), "call_type"),
    7: (("+14155550198", "both", "fuzzy", "true", "", ""), "match_kind"),
}


def workbook(path: Path) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["number", "call_type", "match_kind", "enabled", "note", "expire_time"])
    good = iter(GOOD)
    for line in range(2, 8):
        sheet.append(list(BAD[line][0] if line in BAD else next(good)))
    book.save(path)
    return path


async def test_a_file_of_another_kind_is_refused_beside_the_file_field(console, page: Page, tmp_path: Path) -> None:
    text = tmp_path / "numbers.txt"
    text.write_text("number,call_type\n+14155550100,both\n")
    await page.goto(console.at("/t/acme/numbers"))
    await page.get_by_role("button", name="Import").click()
    dialog = page.get_by_role("dialog", name="Import forbidden numbers")
    await dialog.get_by_label("File (.xlsx or .csv)").set_input_files(text)
    await dialog.get_by_role("button", name="Upload and import").click()
    await expect(page.locator("#import-file-error")).to_have_text(
        "Import a .csv or .xlsx file (the template's formats)."
    )


async def rows_import(clients, rows: list[tuple[int, str, int]], source: str) -> None:
    async def requests():  # type: ignore[no-untyped-def]
        yield pb.ImportForbiddenNumbersRequest(header=pb.ImportHeader(tenant_id="acme", source_name=source))
        yield pb.ImportForbiddenNumbersRequest(
            rows=pb.ImportRowBatch(
                rows=[pb.ImportRow(line=line, number=number, call_type=call_type) for line, number, call_type in rows]
            )
        )

    await clients.admin.ImportForbiddenNumbers(requests())


async def test_the_task_center_lists_jobs_and_a_jobs_bad_lines(console, clients, page: Page, shot) -> None:
    await rows_import(
        clients, [(2, "+14155550100", pb.CALL_TYPE_BOTH), (3, "+1 415 CALL", pb.CALL_TYPE_BOTH)], "first.csv"
    )
    await rows_import(clients, [(2, "+14155550101", pb.CALL_TYPE_INBOUND), (3, "+14155550102", 0)], "second.csv")
    await page.goto(console.at("/t/acme/numbers"))
    await page.get_by_role("link", name="Task Center").click()
    rows = page.locator("table.jobs tbody tr")
    await expect(rows).to_have_count(2)
    # Newest first, with who ran it, the mode, the state and the counts.
    await expect(rows.nth(0)).to_contain_text("second.csv")
    await expect(rows.nth(1)).to_contain_text("first.csv")
    for i in range(2):
        await expect(rows.nth(i)).to_contain_text("Add and update")
        await expect(rows.nth(i)).to_contain_text("Succeeded")
    await expect(rows.nth(1).locator("td.bad")).to_have_text("1")
    await shot(page, "task-center")
    await page.get_by_role("link", name="first.csv").click()
    await expect(page.get_by_role("heading", name="Import first.csv")).to_be_visible()
    await expect(page.get_by_test_id("job-created")).to_have_text("1")
    bad = page.locator("tr[data-line='3']")
    await expect(bad).to_contain_text("+1 415 CALL")
    await expect(bad).to_contain_text("contains 'C'")
    await shot(page, "job")
    # The job's changes, in the audit log.
    await page.get_by_role("link", name="Changes this import made, in the audit log").click()
    await expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    await expect(page.get_by_label("Import job id")).not_to_have_value("")

"""Import an xlsx with bad lines through the dialog, then find every bad line in the Task Center."""

from __future__ import annotations

from pathlib import Path

import openpyxl
from playwright.async_api import Page, expect

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

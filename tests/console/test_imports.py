"""Imports through the dialog (xlsx and csv, read by the server), the Task Center and a job's page, in Chromium."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path

import openpyxl
from playwright.async_api import Locator, Page, expect

from screening.console.app import Console
from screening.console.config import ConsoleConfig
from screening.domain.fields import COLUMNS as ALL_COLUMNS
from screening.v1 import screening_pb2 as pb
from tests.support import Clients, create, wait_until

GOOD = [
    ("+14155550100", "inbound", "exact", "true", "robocalls", ""),
    ("+1900", "outbound", "prefix", "", "premium rate", ""),
    ("+8613800138000", "both", "", "false", "骚扰电话", "2030-01-01T00:00:00Z"),
]
# line -> (its cells, the column the reason is about, a piece of the reason)
BAD = {
    3: (("+1 415 CALL-NOW", "inbound", "exact", "true", "letters", ""), "number", "contains 'C'"),
    5: (("+14155550199", "sometimes", "exact", "true", "", ""), "call_type", "expected inbound, outbound or both"),
    7: (("+14155550198", "both", "fuzzy", "true", "", ""), "match_kind", "expected exact or prefix"),
}
# The bad lines put right, in the order of the failed-rows file.
FIXED = {
    "number": ("A", "+14155550197"),
    "call_type": ("B", "inbound"),
    "match_kind": ("C", "prefix"),
}

# Files written as before entries had an action: without that column, they import as they did.
COLUMNS = tuple(c for c in ALL_COLUMNS if c != "action")


def workbook(path: Path) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(list(COLUMNS))
    good = iter(GOOD)
    for line in range(2, 8):
        sheet.append(list(BAD[line][0] if line in BAD else next(good)))
    book.save(path)
    return path


async def open_import_dialog(page: Page) -> Locator:
    await page.get_by_role("button", name="Import").click()
    dialog = page.get_by_role("dialog", name="Import forbidden numbers")
    await expect(dialog).to_be_visible()
    return dialog


async def upload(dialog: Locator, path: Path, mode: str = "") -> None:
    await dialog.get_by_label("File (.xlsx or .csv)").set_input_files(path)
    if mode:
        await dialog.get_by_label("Numbers already in the list").select_option(label=mode)
    await dialog.get_by_role("button", name="Upload and import").click()


async def expect_counts(where: Locator, prefix: str, *, applied: bool = True, **counts: int) -> None:
    """Every count of a job; those not named are 0. A job not applied (failed) shows its rows and failed lines only."""
    names = ("total", "created", "updated", "unchanged", "skipped", "superseded", "failed")
    assert set(counts) <= set(names)
    for name in names:
        if applied or name in ("total", "failed"):
            await expect(where.get_by_test_id(prefix + name)).to_have_text(f"{counts.get(name, 0):,}")
        else:
            await expect(where.get_by_test_id(prefix + name)).to_have_count(0)


async def test_a_file_of_another_kind_is_refused_beside_the_file_field(console, page: Page, tmp_path: Path) -> None:
    text = tmp_path / "numbers.txt"
    text.write_text("number,call_type\n+14155550100,both\n")
    await page.goto(console.at("/t/acme/numbers"))
    dialog = await open_import_dialog(page)
    await upload(dialog, text)
    await expect(page.locator("#import-file-error")).to_have_text(
        "Import a .csv or .xlsx file (the template's formats)."
    )


async def test_an_xlsx_with_bad_lines_then_its_failed_rows_fixed_and_imported_again(
    console, clients: Clients, page: Page, shot, download, xlsx_rows, tmp_path: Path
) -> None:
    await page.goto(console.at("/t/acme/numbers"))
    dialog = await open_import_dialog(page)
    await shot(page, "import-dialog")
    await upload(dialog, workbook(tmp_path / "numbers.xlsx"))
    summary = page.get_by_test_id("import-summary")
    await expect(summary).to_be_visible()
    await expect(page.locator("#upload-progress")).to_have_attribute("value", "100")
    await expect(summary).to_contain_text("XLSX · Add and update")
    await expect_counts(summary, "sum-", total=6, created=3, failed=3)
    await expect(summary).to_contain_text("3 lines were not imported")
    await shot(page, "import-summary")
    # Closed, the dialog leaves the list showing what the import added.
    await dialog.get_by_role("button", name="Close").click()
    await expect(page.locator("table.entries tbody tr")).to_have_count(3)

    await page.get_by_role("link", name="Task Center", exact=True).click()
    job_row = page.locator("table.jobs tbody tr")
    await expect(job_row).to_have_count(1)
    await expect(job_row.get_by_test_id("format")).to_have_text("XLSX")
    await expect(job_row.get_by_test_id("actor")).to_have_text("anonymous")
    await expect(job_row.get_by_test_id("mode")).to_have_text("Add and update")
    await expect(job_row.get_by_test_id("state")).to_have_text("Succeeded")
    await expect(job_row.locator("td.bad")).to_have_text("3")
    await shot(page, "task-center")

    await job_row.get_by_role("link", name="numbers.xlsx").click()
    await expect(page.get_by_role("heading", name="Import numbers.xlsx")).to_be_visible()
    await expect_counts(page.locator("main"), "job-", total=6, created=3, failed=3)
    await expect(page.get_by_test_id("job-columns")).to_have_text(", ".join(COLUMNS))
    await expect(page.locator("table.errors tbody tr")).to_have_count(len(BAD))
    for line, (cells, column, reason) in BAD.items():
        bad = page.locator(f"table.errors tr[data-line='{line}']")
        await expect(bad.get_by_test_id("bad-column")).to_have_text(column)
        await expect(bad.get_by_test_id("bad-reason")).to_contain_text(reason)
        await expect(bad.locator("td.cell")).to_have_text(list(cells))
        # The cell the reason is about stands out.
        await expect(bad.locator("td.bad-cell")).to_have_attribute("data-column", column)
    await shot(page, "job")

    # The failed rows: the same workbook's bad lines, as they were, with a reason column.
    response = await page.request.get(console.at(await page.get_by_test_id("failed-rows").get_attribute("href") or ""))
    assert response.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    name, data = await download(page, "Download failed rows")
    assert name == "numbers-failed-rows.xlsx"
    rows = xlsx_rows(data)
    assert rows[0] == [*COLUMNS, "reason"]
    assert [row[:-1] for row in rows[1:]] == [list(BAD[line][0]) for line in sorted(BAD)]
    for row, line in zip(rows[1:], sorted(BAD), strict=True):
        assert BAD[line][2] in row[-1]

    # Put right and imported again as it is: the server reads past the reason column.
    book = openpyxl.load_workbook(io.BytesIO(data))
    sheet = book.worksheets[0]
    for index, line in enumerate(sorted(BAD), start=2):
        letter, value = FIXED[BAD[line][1]]
        sheet[f"{letter}{index}"] = value
    fixed = tmp_path / "numbers-failed-rows-fixed.xlsx"
    book.save(fixed)
    await page.get_by_role("link", name="Forbidden numbers").click()
    dialog = await open_import_dialog(page)
    await upload(dialog, fixed)
    summary = page.get_by_test_id("import-summary")
    await expect_counts(summary, "sum-", total=3, created=3)
    await expect(summary).not_to_contain_text("not imported")
    await dialog.get_by_role("button", name="Close").click()
    await expect(page.locator("table.entries tbody tr")).to_have_count(6)
    for number in ("+14155550197", "+14155550199", "+14155550198"):
        await expect(page.locator("table.entries")).to_contain_text(number)


async def test_a_csv_in_insert_only_mode_keeps_listed_numbers_and_names_replaced_lines(
    console, clients: Clients, new_page, shot, download, tmp_path: Path
) -> None:
    await create(clients, "+14155550100", note="kept")
    path = tmp_path / "numbers.csv"
    path.write_text(
        "number,call_type,match_kind,enabled,note,expire_time\n"
        "+14155550100,both,exact,true,changed,\n"  # 2: listed already: skipped
        "+14155550101,inbound,,,first,\n"  # 3: replaced by line 5
        "+1 415 CALL,both,,,,\n"  # 4: bad number
        "+14155550101,outbound,,,second,\n"  # 5
        "+14155550102,inbound,,,骚扰电话,2030-01-01 08:00\n",  # 6: a time in the browser's zone
        encoding="utf-8",
    )
    # The browser's time zone reads times without an offset.
    page: Page = await new_page(timezone_id="Asia/Shanghai")
    await page.goto(console.at("/t/acme/numbers"))
    dialog = await open_import_dialog(page)
    await upload(dialog, path, mode="Keep them as they are (add new numbers only)")
    summary = page.get_by_test_id("import-summary")
    await expect(summary).to_contain_text("CSV · Add new only")
    await expect_counts(summary, "sum-", total=5, created=2, skipped=1, superseded=1, failed=1)
    await shot(page, "import-summary-csv")

    listed = await clients.admin.ListForbiddenNumbers(pb.ListForbiddenNumbersRequest(tenant_id="acme"))
    stored = {e.number: e for e in listed.forbidden_numbers}
    assert stored["+14155550100"].note == "kept"
    assert stored["+14155550101"].note == "second"
    assert stored["+14155550101"].call_type == pb.CALL_TYPE_OUTBOUND
    assert stored["+14155550102"].expire_time.ToJsonString() == "2030-01-01T00:00:00Z"

    await summary.get_by_test_id("job-link").click()
    await expect(page.get_by_test_id("job-format")).to_contain_text("CSV")
    await expect(page.get_by_test_id("job-mode")).to_have_text("Add new only")
    bad = page.locator("table.errors tr[data-line='4']")
    await expect(bad.get_by_test_id("bad-column")).to_have_text("number")
    await expect(bad.locator("td.bad-cell")).to_have_text("+1 415 CALL")
    replaced = page.locator("table.superseded tbody tr")
    await expect(replaced).to_have_count(1)
    await expect(replaced).to_have_attribute("data-line", "3")
    await expect(replaced.get_by_test_id("by-line")).to_have_text("5")
    await shot(page, "job-csv")

    response = await page.request.get(console.at(await page.get_by_test_id("failed-rows").get_attribute("href") or ""))
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    name, data = await download(page, "Download failed rows")
    assert name == "numbers-failed-rows.csv"
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == [*COLUMNS, "reason"]
    assert len(rows) == 2
    # Behind an apostrophe: Excel would take "+1 415 CALL" for a formula (screening.files.formulas).
    assert rows[1][:-1] == ["'+1 415 CALL", "both", "", "", "", ""]
    assert "contains 'C'" in rows[1][-1]

    await page.get_by_role("link", name="Task Center", exact=True).click()
    job_row = page.locator("table.jobs tbody tr").first
    await expect(job_row.get_by_test_id("format")).to_have_text("CSV")
    await expect(job_row.get_by_test_id("mode")).to_have_text("Add new only")


async def test_a_file_the_server_cannot_read_shows_why_and_its_failed_job(
    console, page: Page, shot, tmp_path: Path
) -> None:
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("number,call_type,note\n+14155550100,both,café\n".encode("latin-1"))
    await page.goto(console.at("/t/acme/numbers"))
    dialog = await open_import_dialog(page)
    await upload(dialog, latin1)
    error = page.get_by_test_id("upload-error")
    await expect(error).to_contain_text("The import failed and changed nothing")
    await expect(error).to_contain_text("line 2")
    await expect(error).to_contain_text("UTF-8")
    # Said once, in the console's words.
    await expect(error).not_to_contain_text("nothing was imported")
    await shot(page, "import-file-fault")
    await error.get_by_role("link", name="See the failed job in the Task Center").click()
    await expect(page.get_by_role("heading", name="Import latin1.csv")).to_be_visible()
    await expect(page.get_by_test_id("job-state")).to_have_text("Failed")
    await expect(page.get_by_test_id("job-failure")).to_contain_text("UTF-8")
    await expect_counts(page.locator("main"), "job-", applied=False)
    await expect(page.get_by_role("link", name="Changes this import made, in the audit log")).to_have_count(0)
    await shot(page, "job-file-fault")
    await page.get_by_role("link", name="Task Center", exact=True).click()
    job_row = page.locator("table.jobs tbody tr").first
    await expect(job_row.get_by_test_id("state")).to_have_text("Failed")
    await expect(job_row).to_contain_text("nothing imported")


async def test_the_chinese_dialog_task_center_and_job_page(
    console, new_page, shot, download, xlsx_rows, tmp_path: Path
) -> None:
    page: Page = await new_page(locale="zh-CN", timezone_id="Asia/Shanghai")
    await page.goto(console.at("/t/acme/jobs"))
    await expect(page.get_by_role("heading", name="任务中心")).to_be_visible()
    await expect(page.get_by_text("还没有导入任务。")).to_be_visible()
    await page.get_by_role("button", name="导入").click()
    dialog = page.get_by_role("dialog", name="导入禁止号码")
    await expect(dialog).to_be_visible()
    await shot(page, "zh-import-dialog")
    await dialog.get_by_label("文件（.xlsx 或 .csv）").set_input_files(workbook(tmp_path / "禁止号码.xlsx"))
    await dialog.get_by_label("已在列表中的号码").select_option(label="保持不变（仅新增号码）")
    await dialog.get_by_role("button", name="上传并导入").click()
    summary = page.get_by_test_id("import-summary")
    await expect(summary).to_contain_text("成功")
    await expect(summary).to_contain_text("XLSX · 仅新增")
    await expect_counts(summary, "sum-", total=6, created=3, failed=3)
    await expect(summary).to_contain_text("3 行未导入：请修正后重新导入。")
    # A count of rows, not the time of an update (one English word, two Chinese ones).
    await expect(summary.locator("dt")).to_contain_text(["行数", "新增", "已更新", "未变化"])
    await shot(page, "zh-import-summary")
    # Closed, the dialog leaves the Task Center showing the job.
    await dialog.get_by_role("button", name="关闭").click()
    job_row = page.locator("table.jobs tbody tr")
    await expect(job_row).to_have_count(1)
    await expect(job_row.get_by_test_id("mode")).to_have_text("仅新增")
    await expect(job_row.get_by_test_id("state")).to_have_text("成功")
    await expect(page.get_by_role("columnheader")).to_contain_text(["开始时间", "文件", "格式", "操作人", "模式"])
    await shot(page, "zh-task-center")

    await job_row.get_by_role("link", name="禁止号码.xlsx").click()
    await expect(page.get_by_role("heading", name="导入 禁止号码.xlsx")).to_be_visible()
    await expect(page.get_by_role("heading", name="未导入的行 (3)")).to_be_visible()
    for line, (_cells, column, reason) in BAD.items():
        bad = page.locator(f"table.errors tr[data-line='{line}']")
        await expect(bad.get_by_test_id("bad-column")).to_have_text(column)
        await expect(bad.get_by_test_id("bad-reason")).to_contain_text(reason)
    await shot(page, "zh-job")
    # The file keeps its Chinese name.
    name, data = await download(page, "下载失败行")
    assert name == "禁止号码-failed-rows.xlsx"
    assert len(xlsx_rows(data)) == 1 + len(BAD)


async def test_a_running_import_shows_its_progress_in_the_task_center(
    console, clients: Clients, page: Page, shot
) -> None:
    """A file import sent from here in two halves: between them it runs, half received."""
    data = ("number,call_type\n" + "".join(f"+1415555{i:04d},both\n" for i in range(200))).encode()
    half = len(data) // 2
    go_on = asyncio.Event()

    async def requests() -> AsyncIterator[pb.ImportForbiddenNumbersRequest]:
        yield pb.ImportForbiddenNumbersRequest(
            header=pb.ImportHeader(
                tenant_id="acme", source_name="slow.csv", file_format=pb.FILE_FORMAT_CSV, file_size=len(data)
            )
        )
        yield pb.ImportForbiddenNumbersRequest(file_chunk=data[:half])
        await go_on.wait()
        yield pb.ImportForbiddenNumbersRequest(file_chunk=data[half:])

    async def running() -> bool:
        found = await clients.admin.ListImportJobs(pb.ListImportJobsRequest(tenant_id="acme"))
        return any(j.state == pb.IMPORT_JOB_STATE_RUNNING for j in found.import_jobs)

    call = asyncio.ensure_future(clients.admin.ImportForbiddenNumbers(requests()))
    try:
        await wait_until(running)
        await page.goto(console.at("/t/acme/jobs"))
        job_row = page.locator("table.jobs tbody tr")
        # The table asks again while a job runs; the server records progress twice a second.
        await expect(job_row.get_by_test_id("state")).to_contain_text("Running")
        await expect(job_row.get_by_test_id("job-progress")).to_contain_text("Receiving the file")
        await expect(job_row.locator("progress")).to_have_attribute("value", str(half * 100 // len(data)))
        await shot(page, "task-center-running")
        await job_row.get_by_role("link", name="slow.csv").click()
        await expect(page.get_by_test_id("job-state")).to_contain_text("Running")
        await expect(page.get_by_test_id("job-state").locator("progress")).to_have_attribute(
            "value", str(half * 100 // len(data))
        )
        await shot(page, "job-running")
        go_on.set()
        job = await call
    finally:
        go_on.set()
        call.cancel()
    # The page follows the job to its end.
    await expect(page.get_by_test_id("job-state")).to_have_text("Succeeded")
    await expect(page.get_by_test_id("job-created")).to_have_text("200")
    assert job.created_count == 200


def test_a_running_jobs_progress_reads_the_bytes_then_the_rows() -> None:
    console = Console(ConsoleConfig())
    render = (
        console.environments["en"]
        .from_string('{% import "macros.html" as m with context %}{{ m.job_progress(job) }}')
        .render
    )
    running = pb.IMPORT_JOB_STATE_RUNNING
    receiving = pb.ImportJob(state=running, source_name="a.csv", file_size=1000, bytes_received=250)
    assert "Receiving the file" in render(pb=pb, job=receiving)
    assert 'value="25"' in render(pb=pb, job=receiving)
    received = pb.ImportJob(state=running, source_name="a.csv", file_size=1000, bytes_received=1000)
    assert "File received; reading it" in render(pb=pb, job=received)
    reading = pb.ImportJob(state=running, file_size=1000, bytes_received=1000, total_rows=12345)
    assert "12,345 rows read" in render(pb=pb, job=reading)
    rows = pb.ImportJob(state=running, total_rows=1)
    assert "1 row read" in render(pb=pb, job=rows)
    assert render(pb=pb, job=pb.ImportJob(state=pb.IMPORT_JOB_STATE_SUCCEEDED, total_rows=5)).strip() == ""


async def rows_import(clients: Clients, rows: list[tuple[int, str, int]], source: str) -> None:
    async def requests() -> AsyncIterator[pb.ImportForbiddenNumbersRequest]:
        yield pb.ImportForbiddenNumbersRequest(header=pb.ImportHeader(tenant_id="acme", source_name=source))
        yield pb.ImportForbiddenNumbersRequest(
            rows=pb.ImportRowBatch(
                rows=[pb.ImportRow(line=line, number=number, call_type=call_type) for line, number, call_type in rows]
            )
        )

    await clients.admin.ImportForbiddenNumbers(requests())


async def test_the_task_center_lists_row_imports_newest_first(console, clients: Clients, page: Page) -> None:
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
        await expect(rows.nth(i).get_by_test_id("format")).to_have_text("rows through the API")
        await expect(rows.nth(i).get_by_test_id("mode")).to_have_text("Add and update")
        await expect(rows.nth(i).get_by_test_id("state")).to_have_text("Succeeded")
    await expect(rows.nth(1).locator("td.bad")).to_have_text("1")
    await page.get_by_role("link", name="first.csv").click()
    await expect(page.get_by_role("heading", name="Import first.csv")).to_be_visible()
    await expect(page.get_by_test_id("job-created")).to_have_text("1")
    # A row import's bad line, in the template's columns.
    bad = page.locator("tr[data-line='3']")
    await expect(bad.locator("td[data-column=number]")).to_have_text("+1 415 CALL")
    await expect(bad.locator("td[data-column=call_type]")).to_have_text("both")
    await expect(bad.get_by_test_id("bad-reason")).to_contain_text("contains 'C'")
    # The job's changes, in the audit log.
    await page.get_by_role("link", name="Changes this import made, in the audit log").click()
    await expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    await expect(page.get_by_label("Import job id")).not_to_have_value("")

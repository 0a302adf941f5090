"""The import template to download, as CSV or as an Excel workbook with drop-down lists and instructions."""

from __future__ import annotations

import csv
import io
from datetime import date

from screening.domain.fields import COLUMNS
from screening.files.sheet import CSV, XLSX


def example_rows(today: date | None = None) -> tuple[tuple[str, ...], ...]:
    """The template's example rows; the expiry is the end of next year, so that it is never in the past."""
    year = (today or date.today()).year + 1
    return (
        ("+14155550100", "both", "exact", "true", "Reported for robocalls, ticket 1234", "", "block"),
        ("+1900", "outbound", "prefix", "true", "Premium-rate numbers", "", "block"),
        ("+1900555", "outbound", "prefix", "true", "Our partner's line: allowed despite +1900", "", "allow"),
        ("+8613800138000", "inbound", "", "false", "Paused, review by year end", f"{year}-12-31T00:00:00Z", ""),
    )


# Rows of the workbook that get the drop-down lists.
_VALIDATED_ROWS = 100_000

INSTRUCTIONS = (
    ("How to fill in this template", "如何填写本模板"),
    ("", ""),
    (
        "One forbidden number per row, on the sheet 'numbers'. Row 1 is the header: keep it.",
        "每行一个禁用号码，填写在“numbers”工作表中。第 1 行是表头，请保留。",
    ),
    (
        "number (required): any common written form: +86 138 0013 8000, (415) 555-0100, 10086.",
        "number（必填）：常见写法均可，如 +86 138 0013 8000、(415) 555-0100、10086。",
    ),
    (
        "call_type (required): inbound, outbound or both: which calls the number is forbidden for.",
        "call_type（必填）：inbound（呼入）、outbound（呼出）或 both（全部）。",
    ),
    (
        "match_kind: exact (default) or prefix: prefix forbids every number starting with it.",
        "match_kind：exact（精确，默认）或 prefix（前缀）：前缀匹配以该号码开头的所有号码。",
    ),
    (
        "enabled: true (default) or false: a disabled number stays listed but blocks nothing.",
        "enabled：true（启用，默认）或 false（禁用）：禁用的号码保留但不拦截。",
    ),
    ("note: free text, at most 500 characters.", "note：备注，最多 500 个字符。"),
    (
        "expire_time: when the entry stops blocking: 2027-03-01, 2027-03-01 18:00 or 2027-03-01T18:00:00+08:00.",
        "expire_time：失效时间，如 2027-03-01、2027-03-01 18:00 或 2027-03-01T18:00:00+08:00。",
    ),
    (
        "action: block (default) or allow: allow lets through what a broader entry (a shorter prefix) would block.",
        "action：block（拦截，默认）或 allow（放行）：放行可让更宽泛的条目（更短的前缀）本会拦截的号码通过。",
    ),
    (
        "Times without an offset are read in the time zone chosen when importing (UTC unless you pick one).",
        "未注明时区的时间按导入时选择的时区解读（未选择时为 UTC）。",
    ),
    (
        "A number already listed is updated with the row's values (upsert), or skipped in insert-only mode.",
        "已存在的号码会按该行更新（upsert），在 insert-only 模式下则跳过。",
    ),
    (
        "Bad rows are reported one by one in the Task Center; the good rows are imported together.",
        "错误的行会在任务中心逐行列出，正确的行一并导入。",
    ),
)


def csv_bytes() -> bytes:
    """The template as UTF-8 CSV: the header and example rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(example_rows())
    return out.getvalue().encode()


def xlsx_bytes() -> bytes:
    """The template as a workbook: the header, example rows, drop-down lists and a sheet of instructions."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "numbers"
    sheet.append(list(COLUMNS))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    examples = example_rows()
    for row in examples:
        sheet.append(list(row))
    widths = {
        "number": 22,
        "call_type": 12,
        "match_kind": 12,
        "enabled": 10,
        "note": 40,
        "expire_time": 26,
        "action": 10,
    }
    lists = {
        "call_type": "inbound,outbound,both",
        "match_kind": "exact,prefix",
        "enabled": "true,false",
        "action": "block,allow",
    }
    for i, name in enumerate(COLUMNS, start=1):
        letter = get_column_letter(i)
        sheet.column_dimensions[letter].width = widths.get(name, 14)
        if name == "number":
            # Text, so that Excel keeps a leading + or 0 and never writes 8.6E+12.
            for row_cells in sheet.iter_rows(min_row=2, max_row=len(examples) + 1, min_col=i, max_col=i):
                for cell in row_cells:
                    cell.number_format = "@"
            sheet.column_dimensions[letter].number_format = "@"
        if name in lists:
            check = DataValidation(type="list", formula1=f'"{lists[name]}"', allow_blank=name != "call_type")
            check.error = f"{name}: one of {lists[name].replace(',', ', ')}"
            check.errorTitle = f"Not a {name}"
            check.prompt = f"{lists[name].replace(',', ', ')}"
            check.promptTitle = name
            sheet.add_data_validation(check)
            check.add(f"{letter}2:{letter}{_VALIDATED_ROWS}")
    sheet.freeze_panes = "A2"
    guide = book.create_sheet("instructions")
    for english, chinese in INSTRUCTIONS:
        guide.append([english, chinese])
    guide["A1"].font = Font(bold=True)
    guide["B1"].font = Font(bold=True)
    guide.column_dimensions["A"].width = 100
    guide.column_dimensions["B"].width = 80
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def template_bytes(file_format: str) -> bytes:
    if file_format == XLSX:
        return xlsx_bytes()
    if file_format == CSV:
        return csv_bytes()
    raise ValueError(f"unknown template format {file_format!r}; expected csv or xlsx")

"""Reading and writing spreadsheet files: CSV and xlsx, good and malformed, by example and by property."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, datetime, timedelta, timezone

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from screening.domain.fields import COLUMNS
from screening.domain.model import Action, CallType, MatchKind
from screening.domain.times import TimeError, parse_time, zone
from screening.files import formulas, sheet
from screening.files.cells import CellError, Reader
from screening.files.template import csv_bytes, xlsx_bytes
from screening.files.writing import csv_chunks
from screening.files.writing import xlsx_bytes as write_xlsx

SHANGHAI = zone("Asia/Shanghai")


def lines(data: bytes, declared: str = sheet.CSV) -> tuple[list[str], list[sheet.Line]]:
    table = sheet.from_bytes(data, declared)
    return table.columns, list(table.lines)


def read(data: bytes, declared: str = sheet.CSV, in_zone=UTC) -> list[tuple[int, object]]:
    """(line, Values or CellError) for each line."""
    columns, found = lines(data, declared)
    reader = Reader(columns, in_zone)
    out: list[tuple[int, object]] = []
    for line in found:
        try:
            out.append((line.number, reader.values(line)))
        except CellError as exc:
            out.append((line.number, exc))
    return out


def test_the_csv_template_reads_back_as_its_example_rows() -> None:
    data = csv_bytes()
    assert data.decode().splitlines()[0] == ",".join(COLUMNS)
    found = read(data)
    assert [n for n, _ in found] == [2, 3, 4, 5]
    first, prefix, exception, paused = (v for _, v in found)
    assert (exception.number, exception.match_kind, exception.action) == ("+1900555", MatchKind.PREFIX, Action.ALLOW)
    assert first.action is Action.BLOCK and paused.action is Action.BLOCK  # "" reads as BLOCK
    assert (first.number, first.call_type, first.match_kind, first.enabled) == (
        "+14155550100",
        CallType.BOTH,
        MatchKind.EXACT,
        True,
    )
    assert (prefix.match_kind, prefix.call_type) == (MatchKind.PREFIX, CallType.OUTBOUND)
    assert paused.enabled is False and paused.expire_time is not None and paused.expire_time > datetime.now(UTC)


def test_the_xlsx_template_has_drop_down_lists_instructions_and_reads_back() -> None:
    data = xlsx_bytes()
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["numbers", "instructions"]
    numbers = book["numbers"]
    assert [c.value for c in numbers[1]] == list(COLUMNS)
    lists = {str(v.sqref)[0]: v.formula1 for v in numbers.data_validations.dataValidation}
    assert lists == {
        "B": '"inbound,outbound,both"',
        "C": '"exact,prefix"',
        "D": '"true,false"',
        "G": '"block,allow"',
    }
    guide = [row[0].value for row in book["instructions"].iter_rows()]
    assert any("call_type" in (text or "") for text in guide)
    assert any("呼入" in (row[1].value or "") for row in book["instructions"].iter_rows())
    assert [v.number for _, v in read(data, sheet.XLSX)] == ["+14155550100", "+1900", "+1900555", "+8613800138000"]


def test_bom_crlf_quotes_blank_lines_semicolons_and_defaults() -> None:
    data = (
        "\ufeffnumber;call_type;match_kind;enabled;note;expire_time\r\n"
        '"+1 (415) 555-0100";Inbound;;;"Acme; Inc. ""VIP"" line";2027-06-01T08:00:00+08:00\r\n'
        "\r\n"
        '10086;both;prefix;FALSE;"two\r\nlines";\r\n'
        "+14155550199;呼出;前缀;否;;2027/6/1 18:00\r\n"
    ).encode()
    found = read(data, in_zone=SHANGHAI)
    assert [n for n, _ in found] == [2, 4, 6]
    (_, first), (_, second), (_, chinese) = found
    assert first.number == "+1 (415) 555-0100" and first.note == 'Acme; Inc. "VIP" line'
    assert first.call_type is CallType.INBOUND and first.match_kind is MatchKind.EXACT and first.enabled is None
    assert first.expire_time == datetime(2027, 6, 1, tzinfo=UTC)
    assert second.note == "two\r\nlines" and second.enabled is False and second.match_kind is MatchKind.PREFIX
    assert (chinese.call_type, chinese.match_kind, chinese.enabled) == (CallType.OUTBOUND, MatchKind.PREFIX, False)
    assert chinese.expire_time == datetime(2027, 6, 1, 10, tzinfo=UTC)  # 18:00 in Shanghai


def test_header_may_leave_out_optional_columns_in_any_order_and_pass_a_reason_column() -> None:
    found = read(b"call_type,number,reason\nboth,+14155550100,was bad\n")
    assert [(n, v.number) for n, v in found] == [(2, "+14155550100")]


def test_bad_cells_name_their_column() -> None:
    data = (
        b"number,call_type,match_kind,enabled,note,expire_time\n"
        b"+14155550100,sometimes,,,,\n"
        b"+14155550101,both,fuzzy,,,\n"
        b"+14155550102,both,,maybe,,\n"
        b"+14155550103,,,,,\n"
        b"+14155550104,both,,,,next week\n"
        b"+14155550105,both,,,,\n"
        b"+14155550106,both,,,,,extra\n"
        b"+14155550107,both\n"
    )
    found = read(data)
    errors = [(n, e.column, str(e)) for n, e in found if isinstance(e, CellError)]
    assert [(n, c) for n, c, _ in errors] == [
        (2, "call_type"),
        (3, "match_kind"),
        (4, "enabled"),
        (5, "call_type"),
        (6, "expire_time"),
        (8, ""),
        (9, ""),
    ]
    assert "call_type 'sometimes'" in errors[0][2] and "call_type is empty" in errors[3][2]
    assert "expire_time 'next week' is not a time" in errors[4][2]
    assert "has 7 fields; the header has 6" in errors[5][2] and "has 2 fields" in errors[6][2]


@pytest.mark.parametrize(
    ("data", "line", "message"),
    [
        (b"", 1, "the file is empty"),
        (b"\n\n", 1, "only empty lines"),
        (b"+14155550100,both\n", 1, "missing header"),
        (b"number,call_type,colour\n", 1, "unknown column 'colour'"),
        (b"number,call_type,number\n", 1, "column 'number' appears more than once"),
        (b"number,note\n", 1, "missing column 'call_type'"),
        (b"number,call_type\n+1415555\xff0100,both\n", 2, "byte 0xff at column 9 is not UTF-8"),
        # A quote that opens on line 3 and never closes is reported where it opens, not at the end.
        (b'number,call_type,note\n+14155550100,both,x\n+14155550101,both,"open\n+1,both,\n+2,both,\n', 3, "quoted"),
        (b"PK\x03\x04 not really a workbook", 1, "not an .xlsx workbook"),
    ],
)
def test_malformed_files_name_the_line_where_the_fault_starts(data: bytes, line: int, message: str) -> None:
    with pytest.raises(sheet.FileFault) as caught:
        lines(data)
    assert caught.value.line == line
    assert message in caught.value.reason


def test_xlsx_cells_keep_numbers_as_written_and_dates_as_dates() -> None:
    book = openpyxl.Workbook()
    page = book.active
    assert page is not None
    page.append(list(COLUMNS))
    page.append([8613800138000, "both", None, True, "x", datetime(2027, 3, 1, 18, 0)])
    page.append(["+1900", "Outbound", "prefix", "FALSE", None, datetime(2027, 3, 1).date()])
    page.append([None] * 6)
    page.append(["+1 555", "inbound", "", 1, 12.5, "2027-03-01"])
    out = io.BytesIO()
    book.save(out)
    found = read(out.getvalue(), sheet.XLSX, in_zone=SHANGHAI)
    assert [n for n, _ in found] == [2, 3, 5]
    (_, a), (_, b), (_, c) = found
    assert a.number == "8613800138000" and a.enabled is True
    assert a.expire_time == datetime(2027, 3, 1, 10, tzinfo=UTC)  # 18:00 in Shanghai
    assert b.call_type is CallType.OUTBOUND and b.enabled is False
    assert b.expire_time == datetime(2027, 2, 28, 16, tzinfo=UTC)  # midnight in Shanghai
    assert c.enabled is True and c.note == "12.5"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-03-01", datetime(2027, 3, 1, tzinfo=UTC)),
        ("2027/3/1", datetime(2027, 3, 1, tzinfo=UTC)),
        ("2027-03-01 18:00", datetime(2027, 3, 1, 18, tzinfo=UTC)),
        ("2027/03/01 18:00:30.5", datetime(2027, 3, 1, 18, 0, 30, 500000, tzinfo=UTC)),
        ("2027-03-01T18:00:00+08:00", datetime(2027, 3, 1, 10, tzinfo=UTC)),
        ("2027-03-01T10:00Z", datetime(2027, 3, 1, 10, tzinfo=UTC)),
    ],
)
def test_one_time_reader_for_every_spelling(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


def test_times_without_an_offset_are_read_in_the_zone_and_relative_times_from_now() -> None:
    assert parse_time("2027-03-01 18:00", SHANGHAI) == datetime(2027, 3, 1, 10, tzinfo=UTC)
    now = datetime(2026, 12, 6, tzinfo=UTC)
    assert parse_time("+30d", now=now) == now + timedelta(days=30)
    assert parse_time("+2w", now=now) == now + timedelta(weeks=2)
    for bad in ("tomorrow", "2027-02-30", "2027-13-01 10:00", "+3y"):
        with pytest.raises(TimeError):
            parse_time(bad)
    with pytest.raises(TimeError, match="unknown time zone"):
        zone("Mars/Olympus")


# ------------------------------------------------------------- properties

_cell = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_cell, st.sampled_from(["inbound", "outbound", "both"]), _cell), min_size=1, max_size=20))
def test_any_cells_written_as_csv_read_back_the_same(rows: list[tuple[str, str, str]]) -> None:
    data = b"".join(csv_chunks(["number", "call_type", "note"], [list(r) for r in rows]))
    columns, found = lines(data)
    assert columns == ["number", "call_type", "note"]
    written = [list(r) for r in rows if any(c.strip() for c in r)]
    assert [line.cells for line in found] == written
    # Line numbers count physical lines: a record spanning several starts where it starts.
    assert all(a.number < b.number for a, b in itertools.pairwise(found))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(_cell, st.sampled_from(["inbound", "both"]), _cell), min_size=1, max_size=10))
def test_any_cells_written_as_xlsx_read_back_the_same(rows: list[tuple[str, str, str]]) -> None:
    printable = [r for r in rows if all(c.isprintable() for c in r)]
    data = write_xlsx(["number", "call_type", "note"], [list(r) for r in printable])
    _, found = lines(data, sheet.XLSX)
    assert [line.cells for line in found] == [list(r) for r in printable if any(c.strip() for c in r)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_either_read_or_fault_with_a_line(data: bytes) -> None:
    try:
        _, found = lines(b"number,call_type\n" + data)
    except sheet.FileFault as fault:
        assert fault.line >= 1 and fault.reason
        return
    reader = Reader(["number", "call_type"], UTC)
    for line in found:
        assert line.number >= 2
        try:
            reader.values(line)
        except CellError as exc:
            assert str(exc)


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 1, 1)),
    st.integers(min_value=-12 * 60, max_value=14 * 60),
)
def test_any_iso_time_reads_back_as_itself(value: datetime, minutes: int) -> None:
    aware = value.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    assert parse_time(aware.isoformat()) == aware
    assert parse_time(value.isoformat(sep=" "), UTC) == value.replace(tzinfo=UTC)


def test_csv_written_for_excel_has_a_bom_and_crlf() -> None:
    data = b"".join(csv_chunks(["a", "b"], [["1", "x,y"]]))
    assert data.startswith("\ufeff".encode()) and data.endswith(b"\r\n")
    assert list(csv.reader(io.StringIO(data.decode("utf-8-sig")))) == [["a", "b"], ["1", "x,y"]]


def test_a_cell_that_looks_like_a_formula_stays_text_in_a_workbook() -> None:
    cells = ['=HYPERLINK("http://evil","x")', "=0", "+14155550100", "@SUM(1)", "007"]
    _, found = lines(write_xlsx(["number", "call_type", "note", "match_kind", "reason"], [cells]), sheet.XLSX)
    assert [line.cells for line in found] == [cells]


def test_a_cell_that_looks_like_a_formula_goes_out_as_text_in_csv_and_reads_back_as_written() -> None:
    cells = ['=HYPERLINK("http://evil","x")', "+14155550100", "@SUM(1)", "-2+3", "=cmd|' /C calc'!A0", "'=quoted"]
    data = b"".join(csv_chunks(["a", "b", "c", "d", "e", "f"], [cells]))
    written = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))[1]
    # What a spreadsheet sees: the formulas behind an apostrophe (text); a phone number and sums as they were.
    assert written == ["'" + cells[0], "+14155550100", "'@SUM(1)", "-2+3", "'" + cells[4], "''=quoted"]
    _, found = lines(b"".join(csv_chunks(["number", "call_type", "note"], [cells[:3], cells[3:]])))
    assert [line.cells for line in found] == [cells[:3], cells[3:]]


_risky_cell = st.builds(
    lambda head, rest: head + rest,
    st.sampled_from(["", "'", "''", "=", "+", "-", "@", "\t", "'=", "'+", "+1", "-1 (2)"]),
    _cell,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_risky_cell, _risky_cell, _risky_cell), min_size=1, max_size=10))
def test_no_csv_cell_written_starts_a_formula_and_every_one_reads_back_as_written(
    rows: list[tuple[str, str, str]],
) -> None:
    data = b"".join(csv_chunks(["number", "call_type", "note"], [list(r) for r in rows]))
    written = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))[1:]
    for cell in itertools.chain.from_iterable(written):
        assert cell[:1] not in formulas.TRIGGERS or set(cell) <= set("0123456789 ()./+-")
    _, found = lines(data)
    assert [line.cells for line in found] == [list(r) for r in rows if any(c.strip() for c in r)]


_SIX = ["number", "call_type", "match_kind", "enabled", "note", "expire_time"]


@settings(max_examples=500, deadline=None)
@given(
    st.tuples(
        st.sampled_from(["+14155550100", " 0755 1234 5678 ", "", "abc", "+1" + "9" * 1200]),
        st.sampled_from(["both", "inbound", "out", "呼入", " Both ", "x", ""]),
        st.sampled_from(["", "exact", "prefix", "PREFIX", "x"]),
        st.sampled_from(["", "true", "no", "1", " TRUE ", "x"]),
        st.text(max_size=20),
        st.sampled_from(["", "", "", "2030-01-01", "soon", " "]),
    ),
    st.sampled_from([None, "", "allow", "block", " Allow ", "放行", "deny"]),
)
def test_a_line_of_the_six_columns_reads_as_any_other_line(cells: tuple[str, ...], action: str | None) -> None:
    """The one-call reading of a line of the template's columns gives what the general reading gives."""

    def read(columns: list[str], line: list[str]) -> object:
        try:
            return Reader(columns, UTC).values(sheet.Line(2, line))
        except CellError as exc:
            return (exc.column, str(exc))

    columns, line = (_SIX, list(cells)) if action is None else ([*_SIX, "action"], [*cells, action])
    assert Reader(columns, UTC)._all is not None  # the one-call reading, which a column it does not read turns off
    assert read(columns, line) == read([*columns, "reason"], [*line, "why"])

"""The CSV import template reader and writer, on good and malformed files."""

from __future__ import annotations

import io

import pytest

from screening.cli.template import COLUMNS, TemplateError, read_template, write_template
from screening.v1 import screening_pb2 as pb


def read(data: bytes, batch_size: int = 1000) -> list[pb.ImportRow | pb.ImportRowError]:
    out: list[pb.ImportRow | pb.ImportRowError] = []
    for batch in read_template(io.BytesIO(data), batch_size):
        out.extend(batch.rows)
        out.extend(batch.errors)
    return sorted(out, key=lambda r: r.line)


def test_template_round_trips() -> None:
    text = io.StringIO()
    write_template(text)
    assert text.getvalue().splitlines()[0] == ",".join(COLUMNS)
    items = read(text.getvalue().encode())
    assert [type(i) for i in items] == [pb.ImportRow] * 3
    first, prefix, paused = items
    assert (first.line, first.number, first.call_type, first.match_kind) == (
        2,
        "+14155550100",
        pb.CALL_TYPE_BOTH,
        pb.MATCH_KIND_EXACT,
    )
    assert first.enabled is True and not first.HasField("expire_time")
    assert (prefix.match_kind, prefix.call_type) == (pb.MATCH_KIND_PREFIX, pb.CALL_TYPE_OUTBOUND)
    assert paused.HasField("enabled") and paused.enabled is False
    assert paused.expire_time.ToJsonString() == "2027-01-01T00:00:00Z"


def test_bom_quoted_commas_blank_lines_and_defaults() -> None:
    data = (
        "\ufeffnumber,call_type,match_kind,enabled,note,expire_time\r\n"
        '"+1 (415) 555-0100",Inbound,,,"Acme, Inc. ""VIP"" line",2027-06-01T08:00:00+08:00\r\n'
        "\r\n"
        '10086,both,prefix,FALSE,"two\nlines",\r\n'
        "+14155550199,outbound\r\n"
    ).encode()
    items = read(data)
    assert [i.line for i in items] == [2, 4, 6]
    first, second, short = items
    assert isinstance(first, pb.ImportRow)
    assert first.number == "+1 (415) 555-0100" and first.note == 'Acme, Inc. "VIP" line'
    assert first.call_type == pb.CALL_TYPE_INBOUND and first.match_kind == pb.MATCH_KIND_EXACT
    assert not first.HasField("enabled")
    assert first.expire_time.ToJsonString() == "2027-06-01T00:00:00Z"
    assert isinstance(second, pb.ImportRow)
    assert second.note == "two\nlines" and second.enabled is False and second.match_kind == pb.MATCH_KIND_PREFIX
    assert isinstance(short, pb.ImportRowError)
    assert short.number == "+14155550199" and "has 2 fields; the header has 6" in short.reason


def test_header_may_leave_out_optional_columns_in_any_order() -> None:
    items = read(b"call_type,number\nboth,+14155550100\n")
    assert len(items) == 1
    assert isinstance(items[0], pb.ImportRow) and items[0].number == "+14155550100"


def test_bad_cells_become_row_errors_with_lines() -> None:
    data = (
        b"number,call_type,match_kind,enabled,note,expire_time\n"
        b"+14155550100,sometimes,,,,\n"
        b"+14155550101,both,fuzzy,,,\n"
        b"+14155550102,both,,maybe,,\n"
        b"+14155550103,both,,,,2027-01-01 00:00\n"
        b"+14155550104,both,,,,next week\n"
        b"+14155550105,both,,,,\n"
    )
    items = read(data)
    errors = [i for i in items if isinstance(i, pb.ImportRowError)]
    assert [(e.line, e.number) for e in errors] == [
        (2, "+14155550100"),
        (3, "+14155550101"),
        (4, "+14155550102"),
        (5, "+14155550103"),
        (6, "+14155550104"),
    ]
    assert "call_type 'sometimes'" in errors[0].reason
    assert "match_kind 'fuzzy'" in errors[1].reason
    assert "enabled 'maybe'" in errors[2].reason
    assert "time zone offset" in errors[3].reason
    assert "RFC 3339" in errors[4].reason
    assert [i.line for i in items if isinstance(i, pb.ImportRow)] == [7]


def test_batches_are_bounded() -> None:
    data = b"number,call_type\n" + b"".join(b"+1415555%04d,both\n" % i for i in range(25))
    sizes = [len(b) for b in read_template(io.BytesIO(data), batch_size=10)]
    assert sizes == [10, 10, 5]


@pytest.mark.parametrize(
    ("data", "line", "message"),
    [
        (b"", 1, "missing header: the file is empty"),
        (b"\n+14155550100,both\n", 1, "missing header: line 1 is empty"),
        (b"+14155550100,both\n", 1, "missing header"),
        (b"number,call_type,colour\n", 1, "unknown column 'colour'"),
        (b"number,call_type,number\n", 1, "column 'number' appears more than once"),
        (b"number,note\n", 1, "missing column 'call_type'"),
        (b"number,call_type\n+1415555\xff0100,both\n", 2, "byte 0xff at column 9 is not UTF-8"),
        (b'number,call_type\n+14155550100,both\n"+1415"x,both\n', 3, "not valid CSV"),
    ],
)
def test_malformed_files(data: bytes, line: int, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        read(data)
    assert caught.value.line == line
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"line {line}: ")

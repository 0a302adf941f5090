"""CSV cells that a spreadsheet would run as formulas: written behind an apostrophe, read back without it.

Excel and LibreOffice take a CSV cell that starts with = + - @ (or a tab or
carriage return) for a formula, and run it when the file is opened: a note
written `=HYPERLINK(...)` or `=cmd|...` in an export is an attack on whoever
opens it (CSV injection). Such a cell goes out as `'=...`, which both show as
text. A cell of digits, spaces and ( ) . - / + only cannot call anything
(a phone number, written `+4930123456`): it goes out as it is.

Read back, an apostrophe before one of those characters (or before another
apostrophe) is dropped, as Excel itself drops its text prefix, so a file we
wrote imports as it was exported; a cell that really starts with such an
apostrophe is written with one more. (Workbooks need none of this: their
cells are written as text, screening.files.writing.)
"""

from __future__ import annotations

TRIGGERS = frozenset("=+-@\t\r")
# A first character `defused` may act on, and so what may follow an apostrophe it added.
ESCAPED = TRIGGERS | {"'"}
_HARMLESS = frozenset("0123456789 ()./+-")


def defused(cell: str) -> str:
    """The cell as written to CSV."""
    first = cell[:1]
    if first in TRIGGERS:
        return cell if _HARMLESS.issuperset(cell) else "'" + cell
    if first == "'" and cell[1:2] in ESCAPED:
        return "'" + cell
    return cell


def restored(cell: str) -> str:
    """A CSV cell as read: the apostrophe `defused` put there taken off."""
    return cell[1:] if cell[:1] == "'" and cell[1:2] in ESCAPED else cell

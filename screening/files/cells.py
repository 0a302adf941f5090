"""A template line's cells to typed values, or the column and reason that refuse it.

The words a cell may hold, in English and in Chinese (the template's own
words first): call_type inbound / outbound / both, match_kind exact / prefix
(empty: exact), enabled true / false (empty: true), expire_time any time
screening.domain.times reads, or a date cell of the workbook, action block /
allow (empty: block).
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from operator import itemgetter
from typing import NamedTuple

from screening.domain.model import Action, CallType, MatchKind
from screening.domain.times import EXAMPLES, TimeError, parse_time
from screening.files.sheet import MAX_CELL, Line

CALL_TYPE_WORDS: dict[str, CallType] = {
    "inbound": CallType.INBOUND,
    "outbound": CallType.OUTBOUND,
    "both": CallType.BOTH,
    "in": CallType.INBOUND,
    "out": CallType.OUTBOUND,
    "呼入": CallType.INBOUND,
    "呼出": CallType.OUTBOUND,
    "全部": CallType.BOTH,
    "双向": CallType.BOTH,
    "呼入呼出": CallType.BOTH,
}
MATCH_KIND_WORDS: dict[str, MatchKind] = {
    "": MatchKind.EXACT,
    "exact": MatchKind.EXACT,
    "prefix": MatchKind.PREFIX,
    "精确": MatchKind.EXACT,
    "前缀": MatchKind.PREFIX,
}
ACTION_WORDS: dict[str, Action] = {
    "": Action.BLOCK,
    "block": Action.BLOCK,
    "allow": Action.ALLOW,
    "拦截": Action.BLOCK,
    "放行": Action.ALLOW,
    "允许": Action.ALLOW,
}
ENABLED_WORDS: dict[str, bool | None] = {
    "": None,
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "1": True,
    "0": False,
    "enabled": True,
    "disabled": False,
    "是": True,
    "否": False,
    "启用": True,
    "禁用": False,
}


_UNKNOWN = object()


class Values(NamedTuple):
    """A line's values, read but not yet checked (the number is as written)."""

    number: str
    call_type: CallType
    match_kind: MatchKind
    enabled: bool | None
    note: str
    expire_time: datetime | None
    action: Action = Action.BLOCK


class CellError(ValueError):
    """A cell that cannot be read: the message names the column and quotes the cell."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"{column} {reason}" if column else reason)
        self.column = column
        self.reason = reason


def shown(text: str, limit: int = 80) -> str:
    """A cell quoted back: cut short, with its size, when long."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


class Reader:
    """Reads the lines of one file, whose header named `columns`. Hot: a million calls for a big file."""

    def __init__(self, columns: list[str], zone: tzinfo) -> None:
        self._columns = columns
        self._width = len(columns)
        at = {name: i for i, name in enumerate(columns)}
        # -1: the file has no such column (an empty cell).
        self._number = at.get("number", -1)
        self._call_type = at.get("call_type", -1)
        self._match_kind = at.get("match_kind", -1)
        self._enabled = at.get("enabled", -1)
        self._note = at.get("note", -1)
        self._expire = at.get("expire_time", -1)
        self._action = at.get("action", -1)
        self._zone = zone
        # These columns (action optional) and no other: a line of exactly that many cells is read with one
        # C call (see values).
        found: tuple[int, ...] = (self._number, self._call_type, self._match_kind, self._enabled, self._note)
        found += (self._expire,)
        self._with_action = self._action >= 0
        found += (self._action,) if self._with_action else ()
        self._all = itemgetter(*found) if min(found) >= 0 and len(columns) == len(found) else None

    def number_of(self, cells: list[str]) -> str:
        """The number as written, for the job's record of a bad line."""
        i = self._number
        return cells[i] if 0 <= i < len(cells) else ""

    def values(self, line: Line) -> Values:
        """The line's values, or CellError naming the column."""
        cells = line.cells
        if self._all is not None and len(cells) == self._width and line.typed is None:
            # The common CSV line, in canonical words and without an expire_time; anything else goes the long way.
            read = self._all(cells)
            number, call_text, kind_text, enabled_text, note, expire_text = read[:6]
            if not expire_text and max(map(len, cells)) <= MAX_CELL:
                call_type = CALL_TYPE_WORDS.get(call_text)
                kind = MATCH_KIND_WORDS.get(kind_text)
                enabled = ENABLED_WORDS.get(enabled_text, _UNKNOWN)
                action = ACTION_WORDS.get(read[6]) if self._with_action else Action.BLOCK
                if call_type is not None and kind is not None and enabled is not _UNKNOWN and action is not None:
                    return Values(number.strip(), call_type, kind, enabled, note, None, action)  # type: ignore[arg-type]
        width = self._width
        count = len(cells)
        if count != width and ((count < width and line.typed is None) or any(c.strip() for c in cells[width:])):
            raise CellError("", f"has {count} fields; the header has {width}")
        if max(map(len, cells), default=0) > MAX_CELL:
            for i, text in enumerate(cells):
                if len(text) > MAX_CELL:
                    column = self._columns[i] if i < width else ""
                    raise CellError(column, f"{shown(text)}: no column takes more than {MAX_CELL} characters")
        i = self._call_type
        call_text = cells[i] if 0 <= i < count else ""
        call_type = CALL_TYPE_WORDS.get(call_text) or CALL_TYPE_WORDS.get(call_text.strip().lower())
        if call_type is None:
            if not call_text.strip():
                raise CellError("call_type", "is empty; expected inbound, outbound or both")
            raise CellError("call_type", f"{shown(call_text)}: expected inbound, outbound or both")
        i = self._match_kind
        kind_text = cells[i] if 0 <= i < count else ""
        kind = MATCH_KIND_WORDS.get(kind_text)
        if kind is None:
            kind = MATCH_KIND_WORDS.get(kind_text.strip().lower())
            if kind is None:
                raise CellError("match_kind", f"{shown(kind_text)}: expected exact or prefix (empty: exact)")
        i = self._enabled
        enabled_text = cells[i] if 0 <= i < count else ""
        if enabled_text in ENABLED_WORDS:
            enabled = ENABLED_WORDS[enabled_text]
        else:
            key = enabled_text.strip().lower()
            if key not in ENABLED_WORDS:
                raise CellError("enabled", f"{shown(enabled_text)}: expected true or false (empty: true)")
            enabled = ENABLED_WORDS[key]
        i = self._number
        number = cells[i].strip() if 0 <= i < count else ""
        i = self._note
        note = cells[i] if 0 <= i < count else ""
        i = self._expire
        expire = None
        if 0 <= i < count and (cells[i] or line.typed is not None):
            expire = self._expire_time(line, i)
        i = self._action
        action_text = cells[i] if 0 <= i < count else ""
        action = ACTION_WORDS.get(action_text)
        if action is None:
            action = ACTION_WORDS.get(action_text.strip().lower())
            if action is None:
                raise CellError("action", f"{shown(action_text)}: expected block or allow (empty: block)")
        return Values(number, call_type, kind, enabled, note, expire, action)

    def _expire_time(self, line: Line, i: int) -> datetime | None:
        typed = line.typed[i] if line.typed is not None and i < len(line.typed) else None
        if isinstance(typed, datetime | date):
            return parse_time(typed, self._zone)
        text = line.cells[i].strip()
        if not text:
            return None
        try:
            return parse_time(text, self._zone)
        except TimeError:
            raise CellError("expire_time", f"{shown(text)} is not a time; write e.g. {EXAMPLES}") from None

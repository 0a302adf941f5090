"""The one reader of the times people write: screenctl's --expire-time, import files, the console.

Accepted, in this order:
- a time from now: `+30d`, `+12h`, `+90m`, `+2w`;
- ISO 8601 / RFC 3339 with an offset: `2027-03-01T18:00:00+08:00`, `2027-03-01T10:00Z`;
- a date and time without an offset, as spreadsheets write them: `2027-03-01 18:00`,
  `2027/3/1 18:00:30`, `2027-03-01T18:00` — read in `zone`;
- a date alone: `2027-03-01`, `2027/3/1` — midnight at the start of that day in `zone`;
- spreadsheet date cells (datetime or date objects, which carry no zone) — read in `zone`.

`zone` is an IANA name (Asia/Shanghai); when none is given, UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_RELATIVE = re.compile(r"\+(\d{1,6})([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# Spreadsheet spellings: 2027/3/1, 2027-3-1, with an optional h:mm[:ss[.ffffff]].
_LOOSE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?")
EXAMPLES = "2027-03-01, 2027-03-01 18:00, 2027-03-01T18:00:00+08:00 or +30d"


class TimeError(ValueError):
    """Not a time this reader understands; the message says what would be."""


def zone(name: str) -> tzinfo:
    """The zone of an IANA name; "" is UTC. Raises TimeError for an unknown name."""
    if not name or name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeError(f"unknown time zone {name!r}; expected an IANA name such as Asia/Shanghai or UTC") from None


def parse_time(value: object, in_zone: tzinfo = UTC, now: datetime | None = None) -> datetime:
    """An aware datetime, or TimeError."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=in_zone)
    if isinstance(value, date):
        return datetime.combine(value, time(), in_zone)
    if not isinstance(value, str):
        raise TimeError(f"{value!r} is not a time; write e.g. {EXAMPLES}")
    text = value.strip()
    relative = _RELATIVE.fullmatch(text)
    if relative:
        amount, unit = relative.groups()
        return (now or datetime.now(UTC)) + timedelta(**{_UNITS[unit]: int(amount)})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = _loose(text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=in_zone)


def _loose(text: str) -> datetime:
    match = _LOOSE.fullmatch(text)
    if match is None:
        raise TimeError(f"{text!r} is not a time; write e.g. {EXAMPLES}")
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
        )
    except ValueError as exc:
        raise TimeError(f"{text!r} is not a valid date or time ({exc})") from None

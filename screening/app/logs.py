"""Logging: one line per event, as text or JSON, with bearer tokens redacted.

Tracebacks stay on the event's line (newlines escaped in text, a field in
JSON), so a log shipper never splits one event into several. Phone numbers
are the callers' business: log them only through `screening.domain.numbers.mask`
(DEBUG may carry more).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

# Defence in depth: nothing should log a token, but a stray repr of request
# metadata or an exception quoting a header must not leak one either.
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\",;]+")
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def redact(text: str) -> str:
    return _BEARER.sub(r"\1[redacted]", text)


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += " | " + self.formatException(record.exc_info)
        line = f"{_time(record)} {record.levelname} {record.name}: {message}"
        return redact(line).replace("\r", "\\r").replace("\n", "\\n")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        # Fields passed with `extra=` become fields of the event.
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                event[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            event["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(event, default=str, ensure_ascii=False)


def configure(level: str, log_format: str, stream: TextIO | None = None) -> None:
    """Replace the root handlers with one that writes `log_format` lines to `stream` (stderr)."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Python warnings become events of the same shape instead of raw stderr lines.
    logging.captureWarnings(True)

"""Page tokens (AIP-158): opaque, and bound to the query they continue."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from screening.errors import InvalidArgument


def scope(tenant_id: str, query: object) -> str:
    """Binds a page token to the query it continues."""
    return hashlib.sha256(repr((tenant_id, query)).encode()).hexdigest()[:16]


def encode_token(scope: str, position: list[Any]) -> str:
    raw = json.dumps({"s": scope, "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, scope: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        position = data["p"]
        matches = data["s"] == scope and isinstance(position, list)
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("page_token", token, "is not a page token this service issued") from None
    if not matches:
        raise InvalidArgument("page_token", token, "belongs to another tenant or other filters")
    return list(position)

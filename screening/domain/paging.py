"""Page tokens (AIP-158): opaque, and bound to the query they continue."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from screening.domain.errors import InvalidArgument


def scope(tenant_id: str, query: object) -> str:
    """Binds a page token to the query it continues."""
    return hashlib.sha256(repr((tenant_id, query)).encode()).hexdigest()[:16]


def encode_token(scope: str, position: list[Any]) -> str:
    raw = json.dumps({"s": scope, "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, scope: str, shape: tuple[type, ...]) -> list[Any]:
    """The position a token carries, checked against the types its query expects.

    The scope is a plain hash, so a token can be forged: its position must be
    checked like any other input before it reaches a query.
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        position = data["p"]
        matches = data["s"] == scope
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("page_token", token, "is not a page token this service issued") from None
    if not matches:
        raise InvalidArgument("page_token", token, "belongs to another tenant or other filters")
    if not (
        isinstance(position, list)
        and len(position) == len(shape)
        and all(type(value) is kind and _storable(value) for value, kind in zip(position, shape, strict=True))
    ):
        raise InvalidArgument("page_token", token, "is not a page token this service issued")
    return position


def _storable(value: object) -> bool:
    """Fits the query's parameter: a bigint, or text PostgreSQL accepts."""
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, str) and "\x00" not in value

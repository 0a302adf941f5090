"""Page tokens (AIP-158): opaque, bound to the query they continue, and signed.

A token is the position a query stopped at, signed with a key every replica
shares (HMAC-SHA-256). A token a client changed, or made up, is refused as
INVALID_ARGUMENT before any of it reaches a query; a token of another query
(another tenant, other filters) likewise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from screening.domain.errors import InvalidArgument

_MAC = 16
_MAX_TOKEN = 4096


def scope(tenant_id: str, query: object) -> str:
    """Binds a page token to the query it continues."""
    return hashlib.sha256(repr((tenant_id, query)).encode()).hexdigest()[:16]


class PageTokens:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, raw: bytes) -> bytes:
        return hmac.new(self._key, raw, hashlib.sha256).digest()[:_MAC]

    def encode(self, scope: str, position: list[Any]) -> str:
        raw = json.dumps({"s": scope, "p": position}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(self._mac(raw) + raw).decode().rstrip("=")

    def decode(self, token: str, scope: str, shape: tuple[type, ...]) -> list[Any]:
        """The position a token carries, once its signature and its query are checked."""
        refused = InvalidArgument("page_token", token, "is not a page token this service issued for this query")
        if len(token) > _MAX_TOKEN:
            raise refused
        try:
            data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except ValueError:
            raise refused from None
        mac, raw = data[:_MAC], data[_MAC:]
        if len(mac) != _MAC or not hmac.compare_digest(mac, self._mac(raw)):
            raise refused
        try:
            found = json.loads(raw)
            position, matches = found["p"], found["s"] == scope
        except (ValueError, KeyError, TypeError):
            raise refused from None
        if not matches:
            raise InvalidArgument("page_token", token, "belongs to another tenant or other filters")
        # Signed by us, so well formed; checked all the same before it reaches a query.
        if not (
            isinstance(position, list)
            and len(position) == len(shape)
            and all(type(v) is kind and _storable(v) for v, kind in zip(position, shape, strict=True))
        ):
            raise refused
        return position


def _storable(value: object) -> bool:
    """Fits the query's parameter: a bigint, or text PostgreSQL accepts."""
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, str) and "\x00" not in value

"""Page tokens signed with the key every replica shares, read from the database once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from screening.domain.errors import Unavailable
from screening.domain.paging import PageTokens


class Pages:
    def __init__(self, load_key: Callable[[], Awaitable[bytes]]) -> None:
        self._load_key = load_key
        self._tokens: PageTokens | None = None

    async def tokens(self) -> PageTokens:
        if self._tokens is None:
            try:
                key = await self._load_key()
            except LookupError:
                raise Unavailable("the database is still being prepared; retry shortly") from None
            self._tokens = PageTokens(key)
        return self._tokens

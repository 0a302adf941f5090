"""Secrets every replica shares, kept in the database."""

from __future__ import annotations

import asyncpg

from storage.db import borrow

PAGE_TOKENS = "page_tokens"


async def key(pool: asyncpg.Pool, name: str) -> bytes:
    async with borrow(pool) as conn:
        found = await conn.fetchval("SELECT key FROM service_keys WHERE name = $1", name)
    if found is None:
        raise LookupError(f"no key {name!r}: the migrations have not run")
    return bytes(found)

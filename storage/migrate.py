"""Versioned SQL migrations, applied at start-up under an advisory lock."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from storage.db import Conn
from storage.errors import SchemaNotReady

log = logging.getLogger(__name__)

# Any fixed number will do; it only has to be the same for every replica.
_LOCK_KEY = 0x5C8EE41D
_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    found = []
    for item in resources.files("storage.migrations").iterdir():
        match = _NAME.fullmatch(item.name)
        if match:
            found.append(Migration(int(match.group(1)), item.name, item.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version number: {[m.name for m in found]}")
    return found


async def migrate(conn: Conn) -> list[str]:
    """Apply the migrations this database lacks; return their names.

    Replicas starting together serialize on a session advisory lock, and
    each migration commits together with its record, so a crash in the
    middle leaves the schema at a known version.
    """
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in available():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            log.info("applied migration %s", migration.name)
            applied.append(migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied


async def check(conn: Conn) -> int:
    """The schema version of a database this replica may not migrate (a standby); SchemaNotReady if it is behind.

    A replica without a primary only reads: the migrations are applied by a
    replica (or any `screening serve`) that has --database-url.
    """
    needed = available()[-1]
    try:
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    except asyncpg.UndefinedTableError:
        raise SchemaNotReady(
            "the feed database has no schema yet: start one replica with --database-url (the primary)"
            " to apply the migrations, then this one reads them from its standby"
        ) from None
    missing = [m.name for m in available() if m.version not in done]
    if missing:
        raise SchemaNotReady(
            f"the feed database's schema is older than this release's (version {max(done, default=0)},"
            f" needs {needed.version}; missing {', '.join(missing)}): start one replica of this release"
            " with --database-url (the primary) to apply the migrations"
        )
    return int(max(done))

"""Bench data, written straight into PostgreSQL (not through the API): millions of rows in seconds.

Entry i of a data set has the number +1 followed by ten digits that are a
bijection of i (a multiplier coprime to the range), so numbers are unique
and spread over the range, and a client can name a present or an absent
number without asking the database.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg

from storage.migrate import migrate

SPAN = 8_000_000_000  # ten-digit numbers from 2000000000
STEP = 2_654_435_761  # prime, coprime to SPAN: i -> number is one-to-one
TENANT = "acme"


def number_of(i: int) -> str:
    return f"+1{2_000_000_000 + (i * STEP) % SPAN}"


async def create_database(admin_url: str, name: str) -> str:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


LIST = "@dnc"


async def add_rules(dsn: str, entries: int, listed: int, exceptions: int) -> None:
    """On a database `fill`ed with `entries`: a shared list of `listed` EXACT entries (half of them numbers
    the tenant lists too, half beyond its range) that TENANT subscribes to, and `exceptions` ALLOW entries of
    TENANT for numbers only the list has: the screening rules a busy tenant has besides its own list."""
    conn = await asyncpg.connect(dsn, command_timeout=3600)
    try:
        first = entries - listed // 2
        await conn.execute(
            f"""INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type)
                SELECT $1, '+1' || (2000000000 + (i * {STEP}::int8) % {SPAN})::text, 1, 3
                FROM generate_series($2::int8, $2::int8 + $3::int8 - 1) AS i""",
            LIST,
            first,
            listed,
        )
        await conn.execute(
            f"""INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type, action)
                SELECT $1, '+1' || (2000000000 + (i * {STEP}::int8) % {SPAN})::text, 1, 3, 2
                FROM generate_series($2::int8, $2::int8 + $3::int8 - 1) AS i""",
            TENANT,
            entries,
            exceptions,
        )
        await conn.execute(
            """INSERT INTO tenant_settings (tenant_id, subscribed_lists) VALUES ($1, $2)
               ON CONFLICT (tenant_id) DO UPDATE SET subscribed_lists = EXCLUDED.subscribed_lists""",
            TENANT,
            [LIST],
        )
        await conn.execute("VACUUM (ANALYZE) forbidden_numbers")
    finally:
        await conn.close()


async def fill(dsn: str, entries: int) -> None:
    """Migrate, then insert `entries` EXACT entries for TENANT with random UUIDs.

    Indexes are dropped for the bulk insert and rebuilt from their own
    definitions afterwards (a sort each, far faster than 10M index
    insertions); the row trigger is off meanwhile since on INSERT it sets
    only what the column defaults already set.
    """
    conn = await asyncpg.connect(dsn, command_timeout=3600)
    try:
        await migrate(conn)
        if not entries:
            return
        await conn.execute("SET maintenance_work_mem = '512MB'")
        indexes = await conn.fetch(
            """SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition,
                      c.conname AS constraint_name, pg_get_constraintdef(c.oid) AS constraint_definition
               FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid
               WHERE i.indrelid = 'forbidden_numbers'::regclass"""
        )
        async with conn.transaction():
            await conn.execute("ALTER TABLE forbidden_numbers DISABLE TRIGGER forbidden_numbers_stamp")
            for ix in indexes:
                if ix["constraint_name"]:
                    await conn.execute(f'ALTER TABLE forbidden_numbers DROP CONSTRAINT "{ix["constraint_name"]}"')
                else:
                    await conn.execute(f"DROP INDEX {ix['name']}")
            await conn.execute(
                f"""INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type)
                    SELECT $1, '+1' || (2000000000 + (i * {STEP}::int8) % {SPAN})::text, 1, 3
                    FROM generate_series(0, $2::int8 - 1) AS i""",
                TENANT,
                entries,
            )
            for ix in indexes:
                if ix["constraint_name"]:
                    await conn.execute(
                        f'ALTER TABLE forbidden_numbers ADD CONSTRAINT "{ix["constraint_name"]}" '
                        f"{ix['constraint_definition']}"
                    )
                else:
                    await conn.execute(ix["definition"])
            await conn.execute("ALTER TABLE forbidden_numbers ENABLE TRIGGER forbidden_numbers_stamp")
        await conn.execute("VACUUM (ANALYZE) forbidden_numbers")
    finally:
        await conn.close()

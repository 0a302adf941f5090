"""Starting from a snapshot file (`screening snapshot`, --snapshot-url), then catching up from its position."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from screening.app.main import main
from screening.app.service import App
from screening.sync import snapshots
from screening.v1 import screening_pb2 as pb
from storage import changes
from tests.support import Clients, StartServer, create, screen, until_verdict, wait_until

BLOCK, ALLOW = pb.VERDICT_BLOCK, pb.VERDICT_ALLOW
IN = pb.DIRECTION_INBOUND


async def take_snapshot(dsn: str, to: Path) -> None:
    """`screening snapshot --from DSN --to PATH`, as an operator runs it."""
    assert await asyncio.to_thread(main, ["snapshot", "--from", dsn, "--to", str(to)]) == 0


async def answers(clients: Clients, numbers: list[str], tenant: str = "acme") -> list[tuple[int, str]]:
    got = await clients.screening.ScreenNumbers(
        pb.ScreenNumbersRequest(tenant_id=tenant, direction=IN, numbers=numbers)
    )
    return [(r.verdict, r.matched_id) for r in got.results]


async def test_a_replica_starts_from_a_snapshot_catches_up_and_answers_as_one_loaded_from_the_database(
    start_server: StartServer, connect: Callable[[App], Clients], dsn: str, tmp_path: Path
) -> None:
    writer = connect(await start_server())
    exact = [await create(writer, f"+4420710{i:02d}") for i in range(20)]
    prefix = await create(writer, "+4420799", match_kind=pb.MATCH_KIND_PREFIX)
    await create(writer, "+4420711", match_kind=pb.MATCH_KIND_EXACT, tenant="other")
    gone = exact.pop()
    await writer.admin.DeleteForbiddenNumber(pb.DeleteForbiddenNumberRequest(tenant_id="acme", id=gone.id))
    snapshot = tmp_path / "screening.snapshot"
    await take_snapshot(dsn, snapshot)
    # Changes after the snapshot reach the new replica through the feed, before it serves.
    later = await create(writer, "+4420720")
    await writer.admin.DeleteForbiddenNumber(pb.DeleteForbiddenNumberRequest(tenant_id="acme", id=exact[0].id))

    from_file = await start_server(snapshot_url=f"file://{snapshot}")
    from_database = await start_server()
    assert from_file.replica.loaded_from == "snapshot" and from_database.replica.loaded_from == "database"
    numbers = [e.number for e in exact] + [gone.number, later.number, "+442079912345", "+15550000"]
    file_answers = await answers(connect(from_file), numbers)
    assert file_answers == await answers(connect(from_database), numbers)
    assert file_answers[0] == (ALLOW, "")  # deleted after the snapshot
    assert file_answers[1] == (BLOCK, exact[1].id)
    assert file_answers[len(exact)] == (ALLOW, "")  # deleted before it
    assert file_answers[len(exact) + 1] == (BLOCK, later.id)
    assert file_answers[len(exact) + 2] == (BLOCK, prefix.id)
    assert (await screen(connect(from_file), "+4420711", tenant="other")).verdict == BLOCK
    # And it follows on as any replica does.
    newest = await create(writer, "+4420730")
    await until_verdict(connect(from_file), newest.number, BLOCK)


async def test_a_snapshot_older_than_the_purged_tombstones_or_unreadable_means_a_load_from_the_database(
    start_server: StartServer,
    connect: Callable[[App], Clients],
    dsn: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    writer = connect(await start_server())
    kept = await create(writer, "+4420740")
    snapshot = tmp_path / "old.snapshot"
    await take_snapshot(dsn, snapshot)
    conn = await asyncpg.connect(dsn)
    try:
        # What a tombstone purge past the snapshot's position leaves behind (after --tombstone-retention).
        await conn.execute("UPDATE sync_meta SET purged_xid = pg_current_xact_id()")
    finally:
        await conn.close()
    stale = await start_server(snapshot_url=str(snapshot))
    assert stale.replica.loaded_from == "database"
    assert "purged" in caplog.text
    assert (await screen(connect(stale), kept.number)).verdict == BLOCK

    junk = tmp_path / "junk.snapshot"
    junk.write_bytes(b"not a snapshot at all")
    unreadable = await start_server(snapshot_url=str(junk))
    assert unreadable.replica.loaded_from == "database"
    assert "not a snapshot" in caplog.text
    missing = await start_server(snapshot_url=str(tmp_path / "nothing-here"))
    assert missing.replica.loaded_from == "database"


async def test_a_snapshot_round_trips_every_column(dsn: str, start_server: StartServer, tmp_path: Path) -> None:
    app = await start_server()
    await create_many(app, dsn)
    path = tmp_path / "s.snapshot"
    await take_snapshot(dsn, path)
    conn = await asyncpg.connect(dsn)
    try:
        direct = await changes.load_snapshot(conn)
    finally:
        await conn.close()
    read = await asyncio.to_thread(snapshots.read, str(path))
    assert read is not None
    assert read.position.cluster == direct.position.cluster
    assert read.tenants == direct.tenants and read.others == direct.others
    for name in ("tenant", "keys", "hi", "lo", "expires"):
        assert (getattr(read, name) == getattr(direct, name)).all(), name
        assert getattr(read, name).dtype == getattr(direct, name).dtype, name


async def create_many(app: App, dsn: str) -> None:
    """A few thousand entries straight into the table, some expiring, some disabled."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type, enabled, expire_time)
               SELECT 't' || (i % 7), '+1555' || lpad(i::text, 7, '0'), 1, 1 + i % 3, i % 5 <> 0,
                      CASE WHEN i % 4 = 0 THEN now() + interval '1 day' END
               FROM generate_series(1, 3000) AS i"""
        )
    finally:
        await conn.close()
    await wait_until(lambda: len(app.replica.index) >= 3000, within=10)

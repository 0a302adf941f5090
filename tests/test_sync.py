"""Replicas follow the database: across servers, and across out-of-order commits."""

import asyncio
import math
import statistics
import time

import asyncpg

from screening.v1 import screening_pb2 as pb
from tests.support import StartServer, create, screen, until_verdict, wait_until

BLOCK, ALLOW = pb.VERDICT_BLOCK, pb.VERDICT_ALLOW
INSERT = "INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type) VALUES ('acme', $1, 1, 3)"


async def test_change_through_one_replica_is_answered_by_another_within_a_second(
    start_server: StartServer, connect
) -> None:
    writer, reader = connect(await start_server()), connect(await start_server())
    delays = []
    for i in range(30):
        number = f"+1202555{i:04d}"
        started = time.monotonic()
        entry = await create(writer, number)
        await until_verdict(reader, number, BLOCK, within=1.0, matched_id=entry.id)
        delays.append(time.monotonic() - started)
    print(
        f"\npropagation over {len(delays)} changes: median {statistics.median(delays) * 1000:.1f} ms,"
        f" max {max(delays) * 1000:.1f} ms"
    )
    assert max(delays) < 1.0


async def test_delete_and_disable_propagate(start_server: StartServer, connect) -> None:
    writer, reader = connect(await start_server()), connect(await start_server())
    a = await create(writer, "+1300")
    b = await create(writer, "+1301")
    await until_verdict(reader, "+1301", BLOCK)
    await writer.admin.DeleteForbiddenNumber(pb.DeleteForbiddenNumberRequest(tenant_id="acme", id=a.id))
    await writer.admin.SetForbiddenNumbersEnabled(
        pb.SetForbiddenNumbersEnabledRequest(tenant_id="acme", ids=[b.id], enabled=False)
    )
    await until_verdict(reader, "+1300", ALLOW)
    await until_verdict(reader, "+1301", ALLOW)


async def test_commit_out_of_xid_order_is_not_skipped(start_server: StartServer, connect, dsn: str) -> None:
    """A begins (and takes its xid) before B, B commits first, A commits later: both are answered."""
    app = await start_server()
    clients = connect(app)
    a = await asyncpg.connect(dsn)
    b = await asyncpg.connect(dsn)
    try:
        tx_a = a.transaction()
        await tx_a.start()
        await a.execute(INSERT, "+1401")
        async with b.transaction():
            await b.execute(INSERT, "+1402")
        await until_verdict(clients, "+1402", BLOCK)
        # The replica has read past B while A is open; A's row must still be read once A commits.
        polls = app.replica.data_version
        await asyncio.sleep(2 * app.config.poll_interval + 0.2)
        assert (await screen(clients, "+1401")).verdict == ALLOW
        await tx_a.commit()
        await until_verdict(clients, "+1401", BLOCK)
        assert app.replica.data_version > polls
    finally:
        await a.close()
        await b.close()


async def test_same_row_written_twice_ends_with_the_database_value(start_server: StartServer, connect) -> None:
    writer, reader = connect(await start_server()), connect(await start_server())
    entry = await create(writer, "+1500")
    for enabled in (False, True, False, True, False):
        await writer.admin.SetForbiddenNumbersEnabled(
            pb.SetForbiddenNumbersEnabledRequest(tenant_id="acme", ids=[entry.id], enabled=enabled)
        )
    await until_verdict(reader, "+1500", ALLOW)
    await asyncio.sleep(0.6)
    assert (await screen(reader, "+1500")).verdict == ALLOW


async def test_a_transaction_held_open_causes_no_re_reads(start_server: StartServer, connect, dsn: str) -> None:
    """Changes flow for 20 s beside a transaction left open: each changed row is read once.

    A watermark at the oldest running transaction would re-read everything
    stamped since it on every poll: here 2,000 backlog rows 5 times a second.
    """
    app = await start_server(poll_interval=0.2)
    clients = connect(app)
    held = await asyncpg.connect(dsn)
    writer = await asyncpg.connect(dsn)
    try:
        tx = held.transaction()
        await tx.start()
        await held.execute(INSERT, "+1600")  # takes an xid and keeps it for the whole test
        await writer.execute(
            "INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type)"
            " SELECT 'acme', '+1601' || lpad(i::text, 6, '0'), 1, 3 FROM generate_series(1, 2000) AS i"
        )
        await until_verdict(clients, "+1601002000", BLOCK)
        before, written = app.replica.rows_read, 0
        started = time.monotonic()
        while time.monotonic() - started < 20:
            await writer.execute(INSERT, f"+1602{written:06d}")
            await until_verdict(clients, f"+1602{written:06d}", BLOCK, within=2)
            written += 1
            await asyncio.sleep(0.05)
        read = app.replica.rows_read - before
        print(f"\n{written} changes in 20 s beside an open transaction: {read} rows read")
        assert written <= read <= written + 10
        assert (await screen(clients, "+1600")).verdict == ALLOW
        await tx.commit()
        await until_verdict(clients, "+1600", BLOCK)
        assert (await screen(clients, f"+1602{written - 1:06d}")).verdict == BLOCK
    finally:
        await held.close()
        await writer.close()


async def test_a_big_import_is_answered_all_or_nothing_under_each_data_version(
    start_server: StartServer, connect, dsn: str
) -> None:
    """A 200,000-row transaction: a replica answers from before it or after it, never from a part of it."""
    app = await start_server()
    clients = connect(app)
    rows = 200_000
    sample = [f"+1703{i:07d}" for i in range(0, rows, rows // 400)]
    verdicts: dict[int, set[int]] = {}  # data_version -> the verdicts given under it
    done = asyncio.Event()

    async def batches() -> None:
        while not done.is_set():
            r = await clients.screening.ScreenNumbers(
                pb.ScreenNumbersRequest(tenant_id="acme", direction=pb.DIRECTION_OUTBOUND, numbers=sample)
            )
            for x in r.results:
                verdicts.setdefault(x.data_version, set()).add(x.verdict)

    async def calls() -> None:
        i = 0
        while not done.is_set():
            r = await screen(clients, sample[i % len(sample)])
            verdicts.setdefault(r.data_version, set()).add(r.verdict)
            i += 7

    watchers = [asyncio.create_task(batches()), asyncio.create_task(calls()), asyncio.create_task(calls())]
    writer = await asyncpg.connect(dsn)
    try:
        await asyncio.sleep(0.3)
        await writer.execute(
            "INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type)"
            " SELECT 'acme', '+1703' || lpad(i::text, 7, '0'), 1, 3 FROM generate_series(0, $1 - 1) AS i",
            rows,
        )
        await until_verdict(clients, sample[-1], BLOCK, within=30)
        await until_verdict(clients, sample[0], BLOCK, within=5)
        await asyncio.sleep(0.3)
    finally:
        done.set()
        await asyncio.gather(*watchers)
        await writer.close()
    mixed = {version: v for version, v in verdicts.items() if len(v) > 1}
    assert not mixed, f"a part of the import answered under data_version {sorted(mixed)}"
    assert {ALLOW} in verdicts.values() and {BLOCK} in verdicts.values()  # both sides were seen
    assert len(app.replica.index) == rows


async def test_big_change_sets_of_every_kind_leave_the_index_equal_to_the_database(
    start_server: StartServer, dsn: str
) -> None:
    """Change sets over the in-place limit (built into a new index): inserts, prefixes, updates, deletes."""
    app = await start_server()
    db = await asyncpg.connect(dsn)
    try:
        await db.execute(
            "INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type, expire_time)"
            " SELECT 't' || (i % 7), '+1704' || lpad(i::text, 7, '0'), 1 + (i % 5 = 0)::int, 1 + i % 3,"
            " CASE WHEN i % 11 = 0 THEN now() + interval '1 day' END FROM generate_series(0, 4999) AS i"
        )
        await db.execute(
            "INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type) VALUES ('t1', '12a', 1, 3)"
        )
        await wait_until(lambda: len(app.replica.index) == 5001, within=20)
        async with db.transaction():  # one change set: renumbered, disabled, deleted, re-kinded, new
            await db.execute("UPDATE forbidden_numbers SET number = number || '9' WHERE number LIKE '+1704%1'")
            await db.execute("UPDATE forbidden_numbers SET enabled = false WHERE number LIKE '+1704%2'")
            await db.execute("UPDATE forbidden_numbers SET deleted = true WHERE number LIKE '+1704%3'")
            await db.execute("UPDATE forbidden_numbers SET match_kind = 3 - match_kind WHERE number LIKE '+1704%4'")
            await db.execute("UPDATE forbidden_numbers SET action = 2 WHERE number LIKE '+1704%5'")  # ALLOW
            await db.execute(
                "INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type)"
                " SELECT 't' || (i % 3), '+1705' || lpad(i::text, 7, '0'), 1, 3 FROM generate_series(0, 2999) AS i"
            )
        version = app.replica.data_version
        await wait_until(lambda: app.replica.data_version > version, within=20)
        rows = await db.fetch(
            "SELECT id::text, tenant_id, number, match_kind, call_type, enabled, expire_time, action"
            " FROM forbidden_numbers WHERE NOT deleted"
        )
    finally:
        await db.close()
    expected = {(r[0], r[1], r[2], r[3], r[4], r[5], r[6].timestamp() if r[6] else math.inf, r[7]) for r in rows}
    got = {
        (e.id, e.tenant_id, e.number, int(e.match_kind), int(e.call_type), e.enabled, e.expires_at, int(e.action))
        for e in app.replica.index.entries()
    }
    assert got == expected
    assert app.replica.index.base_bytes > 0  # the big change sets went into the base


async def test_a_new_feed_connection_reads_without_asking_the_catalog_for_types(
    start_server: StartServer, connect, dsn: str
) -> None:
    """A load and a change set with a prefix, a tenant new to the reader and a transaction still running.

    asyncpg looks up any type it has no codec for (uuid[], bigint[]) with a
    catalog query, once per connection: seconds on a database short of CPU,
    inside a read's stall limit, and again on each reconnection.
    """
    from storage import changes

    clients = connect(await start_server())
    held = await asyncpg.connect(dsn)
    feed = await asyncpg.connect(dsn)
    queries: list[str] = []
    feed.add_query_logger(lambda record: queries.append(record.query))
    try:
        tx = held.transaction()
        await tx.start()
        await held.execute(INSERT, "+1204556")  # running while the load takes its snapshot
        await create(clients, "+1204555", match_kind=pb.MATCH_KIND_PREFIX)  # a later one that commits
        loaded = await changes.load_snapshot(feed)
        assert len(loaded.others) == 1 and loaded.position.running
        await create(clients, "+1204557", tenant="globex")
        await create(clients, "+1204558", match_kind=pb.MATCH_KIND_PREFIX, tenant="initech")
        await tx.commit()
        change = await changes.read_changes(feed, loaded.position, {})
        assert sorted(change.tenants) == ["acme", "globex"]  # the held transaction's row, read once it committed
        assert [row.tenant_id for row in change.others] == ["initech"]
    finally:
        await held.close()
        await feed.close()
    assert queries and not [q for q in queries if "typeinfo" in q]


async def test_a_poll_reads_on_only_once_a_transaction_has_ended_since_its_position(dsn: str) -> None:
    """The idle poll's one-statement check: no transaction ended since -> nothing to read; any ended -> read."""
    from storage import changes, migrate

    conn = await asyncpg.connect(dsn)
    await migrate.migrate(conn)
    held = await asyncpg.connect(dsn)
    try:

        async def position() -> changes.Position:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return await changes.current_position(conn)

        async def settled() -> changes.Position:
            # Another transaction of the cluster (autovacuum's, another test's server) may end meanwhile.
            for _ in range(50):
                at = await position()
                if not await changes.moved(conn, at):
                    return at
                await asyncio.sleep(0.02)
            raise AssertionError("the cluster never stayed still for one statement")

        tx = held.transaction()
        await tx.start()
        await held.execute(INSERT, "+1205000")
        at = await settled()
        await conn.execute("SELECT count(*) FROM forbidden_numbers")  # a read ends no transaction with an id
        assert not await changes.moved(conn, at)
        await tx.rollback()  # a transaction running at the position ends, rolled back: read on
        assert await changes.moved(conn, at)
        at = await settled()
        await conn.execute(INSERT, "+1205001")  # a newer one commits: read on
        assert await changes.moved(conn, at)
        at = await settled()
        assert await changes.moved(conn, changes.Position(at.watermark, at.cluster + 1, at.xmax, at.running))
    finally:
        await conn.close()
        await held.close()


async def test_an_idle_replica_polls_without_resetting_its_feed_connections(start_server: StartServer) -> None:
    """asyncpg's default release runs a reset statement: a second round trip after every idle poll."""
    app = await start_server(poll_interval=0.2)
    queries: list[str] = []
    # asyncpg has no public way to reach a pool's connections.
    for holder in app.replica._pool._holders:  # type: ignore[attr-defined]
        if holder._con is not None:
            holder._con.add_query_logger(lambda record: queries.append(record.query))
    await asyncio.sleep(1.5)
    assert queries  # the backstop poll and the settings poll
    assert not [q for q in queries if "RESET ALL" in q or "pg_advisory_unlock_all" in q]

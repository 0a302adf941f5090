"""Convergence under churn: 3 replicas, 8 writers, thousands of operations, connections cut.

Afterwards every replica's index must equal the database's live rows exactly.
"""

import asyncio
import random
import time
from urllib.parse import urlsplit

import asyncpg
import grpc
from google.protobuf import field_mask_pb2

from screening.app.service import App
from screening.sync.replica import to_index_entry
from screening.v1 import screening_pb2 as pb
from storage.changes import ChangedRow
from tests.support import Clients, StartServer, wait_until
from tests.support.faultproxy import FaultProxy

OPERATIONS = 5000
WRITERS = 8
TENANTS = ("acme", "globex")


def digest_of_index(app: App) -> set[tuple]:
    return {
        (e.id, e.tenant_id, e.number, int(e.match_kind), int(e.call_type), e.enabled, e.expires_at)
        for e in app.replica.index.entries()
    }


async def digest_of_database(dsn: str) -> set[tuple]:
    db = await asyncpg.connect(dsn)
    try:
        rows = await db.fetch(
            "SELECT id::text, tenant_id, number, match_kind, call_type, enabled, expire_time, action, deleted"
            " FROM forbidden_numbers WHERE NOT deleted"
        )
    finally:
        await db.close()
    entries = [to_index_entry(ChangedRow(*r)) for r in rows]
    return {
        (e.id, e.tenant_id, e.number, int(e.match_kind), int(e.call_type), e.enabled, e.expires_at) for e in entries
    }


async def test_replicas_converge_under_churn_and_cut_connections(
    start_server: StartServer, connect, cluster_url: str, dsn: str
) -> None:
    name = urlsplit(dsn).path.lstrip("/")
    proxies = [await FaultProxy(cluster_url).start() for _ in range(3)]
    try:
        apps = [await start_server(database_url=p.url(name)) for p in proxies]
        clients = [connect(app) for app in apps]
        rng = random.Random(20261128)
        known: list[tuple[str, str]] = []  # (tenant, id)
        outcomes: dict[str, int] = {}
        done = 0

        async def operation(c: Clients, r: random.Random) -> None:
            kind = r.choices(["create", "update", "delete", "enable"], weights=[5, 3, 1, 2])[0]
            tenant = r.choice(TENANTS)
            if kind == "create" or not known:
                created = await c.admin.CreateForbiddenNumber(
                    pb.CreateForbiddenNumberRequest(
                        forbidden_number=pb.ForbiddenNumber(
                            tenant_id=tenant,
                            number=f"+1555{r.randrange(400):04d}",
                            match_kind=r.choice([pb.MATCH_KIND_EXACT, pb.MATCH_KIND_PREFIX]),
                            call_type=r.choice([pb.CALL_TYPE_INBOUND, pb.CALL_TYPE_OUTBOUND, pb.CALL_TYPE_BOTH]),
                        )
                    ),
                    timeout=3,
                )
                known.append((created.tenant_id, created.id))
            elif kind == "update":
                tenant, entry_id = r.choice(known)
                await c.admin.UpdateForbiddenNumber(
                    pb.UpdateForbiddenNumberRequest(
                        forbidden_number=pb.ForbiddenNumber(
                            tenant_id=tenant,
                            id=entry_id,
                            number=f"+1555{r.randrange(400):04d}",
                            call_type=r.choice([pb.CALL_TYPE_INBOUND, pb.CALL_TYPE_OUTBOUND, pb.CALL_TYPE_BOTH]),
                        ),
                        update_mask=field_mask_pb2.FieldMask(
                            paths=r.sample(["number", "call_type"], k=r.randint(1, 2))
                        ),
                    ),
                    timeout=3,
                )
            elif kind == "delete":
                tenant, entry_id = r.choice(known)
                await c.admin.DeleteForbiddenNumber(
                    pb.DeleteForbiddenNumberRequest(tenant_id=tenant, id=entry_id), timeout=3
                )
            else:
                tenant = r.choice(TENANTS)
                ids = [i for t, i in r.sample(known, k=min(5, len(known))) if t == tenant] or ["none"]
                await c.admin.SetForbiddenNumbersEnabled(
                    pb.SetForbiddenNumbersEnabledRequest(tenant_id=tenant, ids=ids, enabled=r.random() < 0.5),
                    timeout=3,
                )

        async def writer(seed: int) -> None:
            nonlocal done
            r = random.Random(seed)
            while done < OPERATIONS:
                done += 1
                try:
                    await operation(r.choice(clients), r)
                    outcome = "OK"
                except grpc.aio.AioRpcError as error:
                    outcome = error.code().name
                outcomes[outcome] = outcomes.get(outcome, 0) + 1

        async def cutter() -> None:
            while True:
                await asyncio.sleep(rng.uniform(1.0, 2.5))
                rng.choice(proxies).cut()

        started = time.monotonic()
        cutting = asyncio.create_task(cutter())
        try:
            await asyncio.gather(*(writer(seed) for seed in range(WRITERS)))
        finally:
            cutting.cancel()
        took = time.monotonic() - started
        # Faults must not be able to explain away wrong answers: only these outcomes are legitimate.
        assert set(outcomes) <= {"OK", "ALREADY_EXISTS", "NOT_FOUND", "UNAVAILABLE"}, outcomes
        assert outcomes["OK"] > OPERATIONS // 2, outcomes

        expected = await digest_of_database(dsn)
        settled = time.monotonic()
        await wait_until(lambda: all(digest_of_index(app) == expected for app in apps), within=10, interval=0.1)
        print(
            f"\n[convergence] {OPERATIONS} operations by {WRITERS} writers in {took:.1f}s {outcomes};"
            f" {len(expected)} live entries; replicas equal to the database {time.monotonic() - settled:.2f}s later;"
            f" listener reconnects {[app.replica.listener.reconnects for app in apps]}"
        )
    finally:
        for p in proxies:
            await p.close()

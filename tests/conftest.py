"""Real parts for every test: a PostgreSQL cluster and servers on port 0.

The cluster is the one named by SCREENING_TEST_DATABASE_URL (its database is
only used to create and drop per-test databases), otherwise an embedded one
started for the session. Each test that asks for `dsn` gets a fresh database.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest

import tests.support.profiles  # noqa: F401 - registers and loads the Hypothesis profiles
from screening.app import embedded
from screening.app.config import Config
from screening.app.service import App
from tests.support import Clients, Process, StartServer, wait_until, with_database
from tests.support.clusters import OwnCluster, Standby
from tests.support.faultproxy import FaultProxy


@pytest.fixture(scope="session")
def cluster_url() -> Iterator[str]:
    url = os.environ.get("SCREENING_TEST_DATABASE_URL")
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="screening-test-pg-") as tmp:
        url, stop = embedded.start(Path(tmp))
        try:
            yield url
        finally:
            stop()


@pytest.fixture
async def dsn(cluster_url: str) -> AsyncIterator[str]:
    name = "t_" + uuid.uuid4().hex[:16]
    admin = await asyncpg.connect(cluster_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(cluster_url, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def start_server(dsn: str) -> AsyncIterator[StartServer]:
    """Start a server (a replica) on port 0; all are stopped after the test."""
    apps: list[App] = []

    async def start(
        *, database_url: str | None = None, wait_ready: bool = True, primary: bool = True, **overrides: Any
    ) -> App:
        """primary=False: a replica without --database-url (give it feed_url)."""
        config = Config(**{"listen": "127.0.0.1:0", **overrides}, database_url=database_url or dsn if primary else None)
        app = await App(config, config.database_url).start()
        apps.append(app)
        if wait_ready:
            await wait_until(lambda: app.replica.ready, within=20)
        return app

    yield start
    for app in apps:
        await app.stop(grace=0)


@pytest.fixture
async def server(start_server: StartServer) -> App:
    return await start_server()


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[App], Clients]]:
    channels: list[grpc.aio.Channel] = []

    def make(app: App) -> Clients:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
        channels.append(channel)
        return Clients(channel)

    yield make
    for channel in channels:
        await channel.close()


@pytest.fixture
def clients(server: App, connect: Callable[[App], Clients]) -> Clients:
    return connect(server)


@pytest.fixture
async def proxy(cluster_url: str) -> AsyncIterator[FaultProxy]:
    """A fault-injecting proxy in front of the test cluster."""
    p = await FaultProxy(cluster_url).start()
    yield p
    await p.close()


@pytest.fixture
def run_server() -> Iterator:
    procs: list[Process] = []

    def start(*args: str, **env: str) -> Process:
        p = Process(list(args), env)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()


@pytest.fixture
def pg_home() -> Iterator[Path]:
    """A directory for an embedded cluster. Not under pytest's tmp_path: pytest
    makes its root private (0700) at every session start, and PostgreSQL runs
    as another user that must keep reaching its data directory."""
    with tempfile.TemporaryDirectory(prefix="screening-test-") as home:
        yield Path(home)


@pytest.fixture
def own_cluster(pg_home: Path) -> Iterator[OwnCluster]:
    cluster = OwnCluster(pg_home / "own")
    yield cluster
    cluster.close()


@pytest.fixture
def standby(own_cluster: OwnCluster, pg_home: Path) -> Iterator[Standby]:
    """A hot standby streaming from `own_cluster` (pg_basebackup -R), hot_standby_feedback on."""
    replica = Standby(own_cluster, pg_home / "standby")
    yield replica
    replica.close()

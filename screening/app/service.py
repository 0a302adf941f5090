"""Assembles the service: pools, replica, servicers, health and reflection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from screening.api import tls, tokens, wire
from screening.api.access import AccessLog
from screening.api.auth import Auth
from screening.api.methods import Kind, methods
from screening.api.metrics import Metrics, MetricsServer
from screening.api.metrics import serve as serve_metrics
from screening.api.registration import Handler, add_generic_only, add_registered
from screening.api.servicers import AdminServicer, ScreeningServicer
from screening.api.switch import SwitchServer
from screening.api.throttle import FailedAuthThrottle
from screening.api.wrapping import Translation, wrap
from screening.app.config import Config, is_loopback
from screening.domain.errors import ConfigError
from screening.index import compact
from screening.sync import snapshots
from screening.sync.feed import FeedWatch
from screening.sync.replica import Replica
from screening.sync.settings import SettingsFollower
from screening.usecases.admin import ForbiddenNumbers
from screening.usecases.hits import HitFlusher
from screening.usecases.imports import MAX_CONCURRENT_IMPORTS, Imports
from screening.usecases.pages import Pages
from screening.usecases.screener import Screener
from screening.usecases.tenants import Tenants
from screening.v1 import screening_pb2 as pb
from screening.v1 import screening_pb2_grpc as pb_grpc
from storage import keys, migrate
from storage.db import borrow
from storage.errors import RETRYABLE, NoPrimary, SchemaNotReady
from storage.forbidden_numbers import ForbiddenNumberStore
from storage.import_jobs import ImportJobStore
from storage.tenancy import Tenancy
from storage.tenants import TenantSettingsStore

log = logging.getLogger(__name__)

SERVICES = tuple(s.full_name for s in pb.DESCRIPTOR.services_by_name.values())
CONNECT_TIMEOUT = 5.0
# A standby may replay a commit a moment after the primary notified it: read it again after these.
STANDBY_ECHOES = (0.01, 0.05, 0.2)
# A replica fed by a standby keeps no idle admin connection on the primary for long.
STANDBY_FED_IDLE = 30.0
NO_PRIMARY = (
    "this replica has no primary database: it only reads --feed-url (a standby); give it --database-url"
    " (the primary) to serve admin RPCs, or send them to a replica that has one"
)


def _named(purpose: str, settings: dict[str, str] | None = None) -> dict[str, str]:
    """Each connection says what it is for in pg_stat_activity (application_name): screening-listener, ...-feed."""
    return {**(settings or {}), "application_name": f"screening-{purpose}"}


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel a background task and wait for it to end, however its unwinding goes.

    A task cut off in the middle of a query can fail while it unwinds: asyncpg
    refuses the ROLLBACK of a transaction whose COPY was cancelled mid-stream
    ("cannot switch to state 15; another operation (19) is in progress").
    Stopping goes on: that connection is closed with its pool next.
    """
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception as exc:  # noqa: BLE001 - whatever it was, the task has ended and stopping goes on
        log.info("%s ended while stopping: %s: %s", task.get_name(), type(exc).__name__, exc)


async def _feed_reset(conn: asyncpg.Connection) -> None:
    """A feed connection's release: nothing to undo. Its reads set only transaction-local state, and asyncpg
    rolls back a transaction left open before this; its default reset statement (advisory locks, cursors,
    LISTEN, settings) would be a round trip after every poll, half of an idle replica's."""


async def _no_primary(*_args: object, **_kwargs: object) -> asyncpg.Connection:
    raise NoPrimary(NO_PRIMARY)


@dataclass
class App:
    config: Config
    # The primary: migrations, writes, tombstone purges, LISTEN. None: a read-only replica of --feed-url.
    dsn: str | None
    # Bind the port only once the data is loaded: a worker restarted next to
    # others that are serving takes no calls it would have to refuse.
    listen_when_loaded: bool = False
    server: grpc.aio.Server = field(init=False)
    health: health.aio.HealthServicer = field(init=False)
    replica: Replica = field(init=False)
    port: int = field(init=False, default=0)
    # None: no auth file, every caller is "anonymous".
    auth: Auth | None = field(init=False, default=None)
    metrics: Metrics = field(init=False)
    metrics_server: MetricsServer | None = field(init=False, default=None)
    # --switch-listen: ScreenCall on a Unix socket without gRPC.
    switch: SwitchServer | None = field(init=False, default=None)
    imports: Imports = field(init=False)
    settings: SettingsFollower = field(init=False)
    _hits: HitFlusher = field(init=False)
    _pools: list[asyncpg.Pool] = field(init=False, default_factory=list)
    _task: asyncio.Task[None] | None = field(init=False, default=None)
    _tls: tls.ServerTLS | None = field(init=False, default=None)
    # Row-level security for admin queries, once the migrations say it is there.
    _tenancy: Tenancy = field(init=False, default_factory=Tenancy)

    @property
    def listening(self) -> bool:
        return self.port != 0

    async def start(self) -> App:
        """Raises ConfigError for an unusable auth file or TLS file, before touching the database."""
        self.metrics = Metrics()
        access = AccessLog(self.metrics)
        if self.config.auth_file is not None:
            throttle = FailedAuthThrottle(self.config.auth_failures_burst, self.config.auth_failures_per_second)
            self.auth = Auth(tokens.load(self.config.auth_file), throttle=throttle)
            self.metrics.watch_failures(self.auth.failures)
        server_tls = tls.server_tls(self.config.tls_cert, self.config.tls_key, self.config.tls_client_ca)
        feed_url = self.config.feed_url or self.dsn
        if feed_url is None:
            raise ConfigError("--database-url or --feed-url: give at least one")
        standby_fed = self.config.feed_url is not None
        # Lazy (min_size=0) on the primary: a replica fed by a standby holds one connection there, its listener's.
        admin_pool = await self._pool("admin", self.dsn, max_size=10, command_timeout=30, standby_fed=standby_fed)
        # An import's staging tables are temporary: room for them in memory keeps a big import off the disk.
        import_pool = await self._pool(
            "import",
            self.dsn,
            max_size=MAX_CONCURRENT_IMPORTS,
            command_timeout=30,
            settings={"temp_buffers": "256MB"},
            standby_fed=standby_fed,
        )
        feed = FeedWatch()
        # Two: the replica's reads, and the tenant settings' (a full load holds its connection for long).
        feed_pool = await self._pool(
            "feed", feed_url, max_size=2, command_timeout=30, init=feed.on_connect, reset=_feed_reset
        )
        primary = self.dsn
        self.replica = Replica(
            feed_pool,
            None
            if primary is None
            else lambda: asyncpg.connect(
                primary, timeout=CONNECT_TIMEOUT, command_timeout=30, server_settings=_named("listener")
            ),
            poll_interval=self.config.poll_interval,
            tombstone_retention=self.config.tombstone_retention,
            on_ready=self._serving,
            echo_wakeups=STANDBY_ECHOES if standby_fed else (),
            feed=feed,
            snapshot=self._snapshot_reader(),
        )
        if primary is None:
            log.warning("no --database-url: %s", NO_PRIMARY)
        self.metrics.watch(self.replica)
        limit = self.config.max_metadata_bytes
        # No interceptor: grpc.aio runs each one on every call. Handlers are
        # wrapped instead, once, as services are added (screening.api.wrapping).
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self.config.max_receive_message_bytes),
                # Soft and hard limit alike, so the refusal does not depend on chance.
                ("grpc.max_metadata_size", limit),
                ("grpc.absolute_max_metadata_size", limit),
                # `--workers N` runs N processes on one port (gRPC's default
                # on Linux, made explicit here).
                ("grpc.so_reuseport", 1),
            ],
        )
        auth = self.auth
        rpcs = methods()

        def serve(path: str, handler: Handler) -> Handler:
            """Each handler wrapped once, where it is added: the access log outermost, then auth, then errors."""
            method = rpcs.get(path)
            if method is None:
                return handler if auth is None else auth.closed(path, handler)
            concerns = [c for c in (access.concern(method), auth and auth.concern(path)) if c]
            # Unary calls other than screening wait on the database: they get a budget.
            if method.encoded:
                handler = wire.encoded(handler)
            return wrap(handler, concerns, Translation(budget=method.kind is not Kind.SCREEN and not method.streaming))

        region = self.config.default_region
        self.settings = SettingsFollower(feed_pool, region, self.config.poll_interval)
        screener = Screener(self.replica, region, self.settings)
        self.metrics.watch_unknown_tenants(screener.unknown_tenant_calls)
        listener = self.replica.listener
        self._hits = HitFlusher(
            screener.hits, None if listener is None else listener.borrow, self.config.hit_flush_interval
        )
        pages = Pages(lambda: keys.key(admin_pool, keys.PAGE_TOKENS))
        self.imports = Imports(
            ImportJobStore(admin_pool, import_pool, self._tenancy),
            region,
            pages,
            max_rows=self.config.max_import_rows,
            max_bytes=self.config.max_import_bytes,
            region_of=self.settings.region,
        )
        numbers_store = ForbiddenNumberStore(admin_pool, self._tenancy)
        self.screening = screening = ScreeningServicer(screener, self.metrics)
        add_registered(pb_grpc.add_ScreeningServicer_to_server, screening, self.server, wrap=serve)
        switch_path = self.config.switch_socket_path
        if switch_path is not None:
            self.switch = SwitchServer(switch_path, screening.screen, self.auth)
        # Only Screening is registered method by method (screening/registration.py).
        add_generic_only(
            pb_grpc.add_ForbiddenNumberAdminServicer_to_server,
            AdminServicer(
                ForbiddenNumbers(numbers_store, region, pages, self.settings.region),
                self.imports,
                self.replica,
                screener,
                self.metrics,
                Tenants(TenantSettingsStore(admin_pool, self._tenancy), numbers_store, region, self.settings.region),
            ),
            self.server,
            wrap=serve,
        )
        self.health = health.aio.HealthServicer()
        add_generic_only(health_pb2_grpc.add_HealthServicer_to_server, self.health, self.server)
        for name in ("", *SERVICES):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        add_generic_only(
            reflection_pb2_grpc.add_ServerReflectionServicer_to_server,
            reflection.aio.ReflectionServicer((*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME)),
            self.server,
        )
        self._tls = server_tls
        if not self.listen_when_loaded:
            await self._listen()
        host, _ = self.config.listen_host_port
        if self.auth is not None and server_tls is None and not is_loopback(host):
            log.warning("tokens travel in clear text: serving %s without --tls-cert", self.config.listen)
        if self.auth is None:
            log.info("no --auth-file: every call is allowed and audited as 'anonymous'")
        if not compact.USE_NATIVE:
            log.warning(
                "screening/_native.c is not compiled: the index is searched in Python, more slowly"
                " (reinstall where a C compiler is present)"
            )
        self._task = asyncio.create_task(self._sync(feed_pool), name="replica")
        metrics_address = self.config.metrics_host_port
        if metrics_address is not None:
            self.metrics_server = serve_metrics(self.metrics.registry, *metrics_address)
            log.info("metrics at http://%s:%d/metrics", metrics_address[0], self.metrics_server.port)
        return self

    async def _listen(self) -> None:
        try:
            if self._tls is None:
                self.port = self.server.add_insecure_port(self.config.listen)
            else:
                self.port = self.server.add_secure_port(self.config.listen, self._tls.credentials)
        except RuntimeError as exc:
            raise ConfigError(f"--listen {self.config.listen!r}: cannot listen: {exc}") from None
        await self.server.start()
        if self.switch is not None:
            try:
                await self.switch.start()
            except OSError as exc:
                raise ConfigError(f"--switch-listen {self.config.switch_listen!r}: cannot listen: {exc}") from None
            log.info("switch socket on %s", self.config.switch_listen)
        if self.config.listens_on_unix:
            log.info("listening on %s", self.config.listen)
        else:
            log.info("listening on %s (port %d)", self.config.listen, self.port)

    def reload_auth(self) -> bool:
        """Re-read the auth file (on SIGHUP); a bad file keeps the tokens in force."""
        if self.auth is None or self.config.auth_file is None:
            log.info("nothing to reload: the server runs without --auth-file")
            return False
        try:
            table = tokens.load(self.config.auth_file)
        except ConfigError as exc:
            log.error("auth file not reloaded, the previous tokens stay in force: %s", exc)
            return False
        self.auth.tokens = table
        log.info("auth file reloaded: %d tokens", len(table))
        return True

    def reload_tls(self) -> bool:
        """Re-read the TLS files (on SIGHUP) for new connections; unusable ones keep the certificate in force."""
        if self._tls is None:
            log.info("no TLS files to reload: the server runs without --tls-cert")
            return False
        try:
            self._tls.reload()
        except ConfigError as exc:
            log.error("TLS files not reloaded, the previous certificate stays in force: %s", exc)
            return False
        log.info("TLS files reloaded: new connections get the new certificate")
        return True

    def reload(self) -> None:
        """SIGHUP: the auth file and the TLS files, each kept as it was if its new version is unusable."""
        self.reload_auth()
        self.reload_tls()

    async def _pool(
        self,
        purpose: str,
        dsn: str | None,
        *,
        max_size: int,
        command_timeout: float,
        settings: dict[str, str] | None = None,
        standby_fed: bool = False,
        init: Callable[[asyncpg.Connection], Coroutine[Any, Any, None]] | None = None,
        reset: Callable[[asyncpg.Connection], Coroutine[Any, Any, None]] | None = None,
    ) -> asyncpg.Pool:
        # min_size=0: creating the pool does not connect, so a replica whose
        # database is down still starts, answers UNAVAILABLE and retries.
        # Without a primary, every connection is refused with what to configure.
        pool = await asyncpg.create_pool(
            dsn,
            connect=_no_primary if dsn is None else None,
            min_size=0,
            max_size=max_size,
            timeout=CONNECT_TIMEOUT,
            command_timeout=command_timeout,
            server_settings=_named(purpose, settings),
            init=init,
            reset=reset,
            max_inactive_connection_lifetime=STANDBY_FED_IDLE if standby_fed else 300.0,
        )
        self._pools.append(pool)
        return pool

    def _snapshot_reader(self) -> Callable[[], Coroutine[Any, Any, snapshots.Stored | None]] | None:
        url = self.config.snapshot_url
        if url is None:
            return None
        return lambda: asyncio.to_thread(snapshots.read, url)

    async def _prepare(self, feed_pool: asyncpg.Pool) -> None:
        """Migrate the primary; without one, check that the feed's schema is this release's."""
        if self.dsn is None:
            async with borrow(feed_pool) as conn:
                await migrate.check(conn)
            return
        # Its own connection, closed after: a replica fed by a standby keeps none idle on the primary.
        primary = await asyncpg.connect(
            self.dsn, timeout=CONNECT_TIMEOUT, command_timeout=60, server_settings=_named("migrate")
        )
        try:
            await migrate.migrate(primary)
            await self._tenancy.check(primary)
        finally:
            await primary.close(timeout=5)

    async def _sync(self, feed_pool: asyncpg.Pool) -> None:
        while True:
            try:
                await self._prepare(feed_pool)
                # Tenants' settings are in memory before the first call is answered (the replica is ready after).
                await self.settings.catch_up()
                break
            except SchemaNotReady as exc:
                log.error("cannot serve yet, retrying in 5s: %s", exc)
                await asyncio.sleep(5.0)
            except RETRYABLE as exc:
                log.warning("cannot prepare the database yet, retrying: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(1.0)
        following = asyncio.create_task(self.settings.run(), name="tenant settings")
        counting = asyncio.create_task(self._hits.run(), name="hit counts")
        replica = asyncio.create_task(self.replica.run(), name="replica follower")
        try:
            # Shielded: on shutdown the hit counts' last write goes out over the
            # listener's connection, so the replica (and its listener) stops last.
            await asyncio.shield(replica)
        finally:
            for task in (counting, following, replica):
                await _cancel(task)

    def _serving(self) -> None:
        async def mark() -> None:
            for name in ("", *SERVICES):
                await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
            if self.listen_when_loaded and not self.listening:
                try:
                    await self._listen()
                except ConfigError as exc:
                    # Nothing to serve without the port: stop, and let the supervisor start another.
                    log.error("%s", exc)
                    os.kill(os.getpid(), signal.SIGTERM)

        # Health's set() is a coroutine; the replica's callback is plain.
        asyncio.get_running_loop().create_task(mark())

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING first, then let in-flight calls finish for up to `grace` seconds."""
        await self.health.enter_graceful_shutdown()
        # An import cut off by the end of the grace period says the server stopped, not that its client left.
        self.imports.stopping = True
        if self.switch is not None:
            # Its calls are answered as they arrive: nothing is in flight to wait for.
            await self.switch.stop()
        await self.server.stop(self.config.shutdown_grace if grace is None else grace)
        await self.imports.close()
        if self.metrics_server is not None:
            await asyncio.to_thread(self.metrics_server.stop)
        if self._task is not None:
            await _cancel(self._task)
        for pool in self._pools:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.close(), 5)

"""Prometheus metrics: defined once per App on its own registry, served at /metrics.

Each App has its own registry so that several replicas can live in one
process (the tests do that). Labels never carry a tenant or a number: their
cardinality would be unbounded.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING, TypeAlias
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from screening.domain.model import Direction, ImportJob, Verdict
from screening.sync.replica import Replica

try:
    from screening._native import Tally as NativeTally
except ImportError:  # not compiled (setup.py): ScreenTally below does the same in Python
    NativeTally = None  # type: ignore[assignment,misc]

# Indexed by the proto enum values; 0 stands for a call that got an error
# (verdict) or named no valid direction.
VERDICTS = ("error", *(v.name.lower() for v in sorted(Verdict)))
DIRECTIONS = ("unspecified", *(d.name.lower() for d in sorted(Direction)))
IMPORT_OUTCOMES = ("created", "updated", "unchanged", "skipped", "superseded", "failed")

# ScreenCall is answered from memory in tens of microseconds; the buckets
# resolve that range and still show a stalled event loop.
SCREEN_LATENCY_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.05,
    0.25,
)


class ScreenTally:
    """Screened calls by verdict and direction, and their latency, in plain lists.

    prometheus_client's Counter and Histogram take a lock for every
    increment, which costs a loaded server's ScreenCall a measurable share
    (docs/performance.md, "Metrics lock"). Here the hot path pays an index
    and an add; the numbers become metric families only when scraped. Only
    the event loop thread writes; a scrape from the metrics thread may see
    a count and the latency sum one call apart, never a torn value.
    """

    __slots__ = ("buckets", "calls", "seconds")

    def __init__(self) -> None:
        # calls[verdict][direction], indexed as VERDICTS and DIRECTIONS.
        self.calls = [[0] * len(DIRECTIONS) for _ in VERDICTS]
        # buckets[i]: calls that took at most SCREEN_LATENCY_BUCKETS[i] and more than the bound before (last: more).
        self.buckets = [0] * (len(SCREEN_LATENCY_BUCKETS) + 1)
        self.seconds = 0.0

    def add(self, verdict: int, direction: int, seconds: float) -> None:
        self.calls[verdict][direction if 0 < direction < 3 else 0] += 1
        self.buckets[bisect_left(SCREEN_LATENCY_BUCKETS, seconds)] += 1
        self.seconds += seconds


if TYPE_CHECKING:
    # The same counts either way; the C one's add() is the cheaper (docs/performance.md, "Tally in C").
    Tally: TypeAlias = ScreenTally | NativeTally


def new_tally() -> Tally:
    return ScreenTally() if NativeTally is None else NativeTally(SCREEN_LATENCY_BUCKETS)


class ScreenTallyCollector(Collector):
    def __init__(self, tally: Tally) -> None:
        self._tally = tally

    def collect(self) -> Iterable[Metric]:
        t = self._tally
        calls = CounterMetricFamily(
            "screening_screen_calls",
            "Screened calls (ScreenCall and ScreenCallStream messages) by verdict and direction",
            labels=["verdict", "direction"],
        )
        for verdict, row in zip(VERDICTS, t.calls, strict=True):
            for direction, count in zip(DIRECTIONS, row, strict=True):
                calls.add_metric([verdict, direction], count)
        yield calls
        cumulative = list(accumulate(t.buckets))
        bounds = [*map(floatToGoString, SCREEN_LATENCY_BUCKETS), "+Inf"]
        yield HistogramMetricFamily(
            "screening_screen_latency_seconds",
            "Time to answer one screened call inside the server",
            buckets=list(zip(bounds, cumulative, strict=True)),
            sum_value=t.seconds,
        )


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # `*_created` series double every counter for a value no dashboard reads.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry() if registry is None else registry
        r = self.registry
        self.screen_tally = new_tally()
        r.register(ScreenTallyCollector(self.screen_tally))
        batch = Counter(
            "screening_batch_screened_numbers",
            "Numbers screened through ScreenNumbers, by verdict",
            ["verdict"],
            registry=r,
        )
        self.batch_numbers = {verdict: batch.labels(VERDICTS[verdict]) for verdict in (1, 2)}
        rows = Counter(
            "screening_import_rows",
            "Imported rows by outcome (created, updated, unchanged, skipped, superseded, failed)",
            ["outcome"],
            registry=r,
        )
        self.import_rows = {outcome: rows.labels(outcome) for outcome in IMPORT_OUTCOMES}
        self.admin_calls = Counter(
            "screening_admin_calls", "Admin RPCs by method and status code", ["method", "code"], registry=r
        )
        self.admin_latency = Histogram(
            "screening_admin_call_duration_seconds", "Admin RPC duration by method", ["method"], registry=r
        )
        # The process collectors describe the process, which every App in it shares.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            r.register(collector)

    def imported(self, job: ImportJob) -> None:
        """Count the rows of a finished import job."""
        for outcome in IMPORT_OUTCOMES:
            count = getattr(job, f"{outcome}_count")
            if count:
                self.import_rows[outcome].inc(count)

    def watch_failures(self, failures: dict[str, int]) -> None:
        """Export failed authentications by reason (a dict the auth checks count into)."""
        self.registry.register(_FailureCollector(failures))

    def watch_unknown_tenants(self, calls: list[int]) -> None:
        """Export screened calls for unknown tenants (a list by direction that the screener counts into)."""
        self.registry.register(_UnknownTenantCollector(calls))

    def watch_fast_path(self, answered: Callable[[], int]) -> None:
        """Export how many screened calls the C path answered whole (screening/api/wire.py, quick)."""
        self.registry.register(_FastPathCollector(answered))

    def watch(self, replica: Replica) -> None:
        """Export the replica's freshness, read at scrape time."""
        self.registry.register(ReplicaCollector(replica))


class _FailureCollector(Collector):
    def __init__(self, failures: dict[str, int]) -> None:
        self._failures = failures

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "screening_auth_failures",
            "Failed authentications by reason: missing, malformed or unknown token, or throttled (too many from one"
            " address)",
            labels=["reason"],
        )
        for reason, count in self._failures.items():
            family.add_metric([reason], count)
        yield family


class _UnknownTenantCollector(Collector):
    def __init__(self, calls: list[int]) -> None:
        self._calls = calls

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "screening_unknown_tenant_calls",
            "Screened calls for a tenant with neither entries nor settings (a misspelt tenant id?), by direction;"
            " the tenant is in the log, never in a label",
            labels=["direction"],
        )
        for direction, count in zip(DIRECTIONS[1:], self._calls[1:], strict=True):
            family.add_metric([direction], count)
        yield family


class _FastPathCollector(Collector):
    def __init__(self, answered: Callable[[], int]) -> None:
        self._answered = answered

    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily(
            "screening_screen_fast_path_calls",
            "Screened calls answered whole in C (no entry has the number, or a compact-base entry decides); the"
            " others of screening_screen_calls_total took the Python path",
            self._answered(),
        )


class ReplicaCollector(Collector):
    def __init__(self, replica: Replica) -> None:
        self._replica = replica

    def collect(self) -> Iterable[Metric]:
        s = self._replica.state()
        yield GaugeMetricFamily("screening_entries_loaded", "Entries in this replica's in-memory index", s.entries)
        yield GaugeMetricFamily(
            "screening_data_version", "The change sequence this replica's answers are complete up to", s.data_version
        )
        yield GaugeMetricFamily(
            "screening_seconds_behind", "Seconds since this replica last read the change feed", s.seconds_behind
        )
        yield GaugeMetricFamily(
            "screening_last_sync_timestamp_seconds",
            "POSIX time of the last successful read of the change feed (0: never)",
            s.last_sync_time or 0.0,
        )
        yield GaugeMetricFamily("screening_serving", "1 once the first full load completed", int(s.serving))
        yield GaugeMetricFamily(
            "screening_listener_connected", "1 while LISTEN for changes is connected", int(s.connected)
        )
        yield CounterMetricFamily(
            "screening_listener_reconnects", "Times the change listener reconnected", s.listener_reconnects
        )
        yield GaugeMetricFamily(
            "screening_feed_standby", "1 when the feed this replica reads is a hot standby", int(s.feed_standby)
        )
        yield GaugeMetricFamily(
            "screening_feed_hot_standby_feedback",
            "0 when the feed is a standby with hot_standby_feedback off (its reads may be cancelled: set it on)",
            int(s.hot_standby_feedback),
        )
        yield GaugeMetricFamily(
            "screening_feed_behind_transactions",
            "Transaction ids the feed (a lagging standby) is behind data_version; 0 when not waiting for it",
            s.feed_behind,
        )
        yield CounterMetricFamily(
            "screening_feed_waits",
            "Reads that found the feed behind data_version and waited for it rather than go back",
            s.feed_waits,
        )
        yield CounterMetricFamily(
            "screening_full_loads",
            "Times this replica loaded every entry (the first load, and reloads when the feed broke continuity)",
            s.full_loads,
        )


@dataclass
class MetricsServer:
    """The /metrics HTTP endpoint, served from its own thread."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def serve(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server, thread)

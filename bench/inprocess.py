"""Figure b: what one screen costs inside the server process, without gRPC.

Times Screener.screen (checks, normalize, index look-up) over an index of
`entries` EXACT entries built straight from arrays; and the servicer's whole
call from a decoded request to the response's bytes, as ScreenCall makes
it (the common answers in C, _native.QuickScreen), beside the Python path
every other call takes, in alternating rounds. Run as its own process
(`python -m bench.inprocess N`), pinned to one core; prints JSON.
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import dataclass

import numpy as np

from bench.data import SPAN, STEP, TENANT, number_of
from screening.api.metrics import Metrics
from screening.api.servicers import ScreeningServicer
from screening.api.wire import Request, parse_request
from screening.index.compact import Columns, number_key
from screening.index.rules import ScreeningIndex
from screening.usecases.screener import Screener
from screening.v1 import screening_pb2 as pb


@dataclass
class LoadedReplica:
    """What Screener reads from a Replica."""

    index: ScreeningIndex
    ready: bool = True
    data_version: int = 1


def build(entries: int) -> ScreeningIndex:
    i = np.arange(entries, dtype=np.int64)
    values = 12_000_000_000 + (i * STEP) % SPAN  # int("+1" + ten digits)
    # number_key of "+1" and ten digits (12 characters), flags BOTH | ENABLED.
    keys = (values << 13) | ((12 << 9) - 256) | 7
    rng = np.random.default_rng(1)
    hi = rng.integers(0, 2**63, entries, dtype=np.uint64)
    lo = rng.integers(0, 2**63, entries, dtype=np.uint64)
    columns = Columns([TENANT], np.zeros(entries, np.int32), keys, hi, lo, np.zeros(entries))
    return ScreeningIndex.from_columns(columns)


def cost_ns(screener: Screener, inputs: list[str], rounds: int = 5) -> float:
    screen = screener.screen
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for number in inputs:
            screen(TENANT, number, 1)
        best = min(best, time.process_time() - started)
    return best / len(inputs) * 1e9


def call_costs_ns(servicer: ScreeningServicer, requests: list[Request], rounds: int = 5) -> tuple[float, float]:
    """(the servicer's call, its Python path) for the same requests, rounds alternating: best per call."""
    paths = [servicer.screen, servicer._screen]
    best = [float("inf"), float("inf")]
    for r in range(rounds):
        for which in (0, 1) if r % 2 == 0 else (1, 0):
            screen = paths[which]
            started = time.process_time()
            for request in requests:
                screen(request)
            best[which] = min(best[which], time.process_time() - started)
    return best[0] / len(requests) * 1e9, best[1] / len(requests) * 1e9


def requests_of(numbers: list[str]) -> list[Request]:
    return [
        parse_request(
            pb.ScreenCallRequest(tenant_id=TENANT, number=n, direction=pb.DIRECTION_INBOUND).SerializeToString()
        )
        for n in numbers
    ]


def main() -> None:
    entries = int(sys.argv[1])
    started = time.process_time()
    index = build(entries)
    build_s = time.process_time() - started
    rng = random.Random(5)
    present = [number_of(rng.randrange(entries)) for _ in range(20_000)]
    absent = [number_of(entries + rng.randrange(SPAN - entries)) for _ in range(20_000)]
    assert number_key(present[0]) | 7 in index._runs[0].base.keys  # the packing above is number_key's
    assert index.screen(TENANT, present[0], 1, 0.0) is not None and index.screen(TENANT, absent[0], 1, 0.0) is None
    e164 = Screener(LoadedReplica(index), None)  # type: ignore[arg-type]
    national = Screener(LoadedReplica(index), "US")  # type: ignore[arg-type]

    def formatted(n: str) -> str:
        return f"+1 ({n[2:5]}) {n[5:8]}-{n[8:]}"

    def bare(n: str) -> str:
        return n[2:]

    national.screen(TENANT, "2125550100", 1)  # load libphonenumber's metadata for the region first
    figures = {
        "entries": entries,
        "build_s": build_s,
        "e164_absent_ns": cost_ns(e164, absent),
        "e164_present_ns": cost_ns(e164, present),
        "formatted_absent_ns": cost_ns(e164, [formatted(n) for n in absent]),
        "formatted_present_ns": cost_ns(e164, [formatted(n) for n in present]),
        # 20,000 distinct numbers, one round: each is parsed once, so the parse
        # cache (65,536 numbers, enough to hold them all) never answers them.
        "national_absent_ns": cost_ns(national, [bare(n) for n in absent], rounds=1),
        "national_present_ns": cost_ns(national, [bare(n) for n in present], rounds=1),
        "national_cached_ns": cost_ns(national, [bare(n) for n in absent[:1000]]),
    }
    servicer = ScreeningServicer(e164, Metrics())
    for kind, numbers in (("absent", absent), ("present", present)):
        call, python = call_costs_ns(servicer, requests_of(numbers))
        figures[f"call_{kind}_ns"], figures[f"call_python_{kind}_ns"] = call, python
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

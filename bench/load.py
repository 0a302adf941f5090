"""A load generator, run as its own process so that its CPU is not the server's.

Modes: `unary` (ScreenCall, `--in-flight` calls outstanding), `batch`
(ScreenNumbers of `--batch` numbers), `stream` (ScreenCallStream with
`--in-flight` requests outstanding on each stream). Requests are serialized
once up front and responses are not parsed (only counted), so the client
spends as little CPU per call as grpc allows. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from array import array
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from screening.v1 import screening_pb2 as pb

_IDENTITY = None  # grpc passes bytes through when no (de)serializer is given
_UNARY = "/screening.v1.Screening/ScreenCall"
_BATCH = "/screening.v1.Screening/ScreenNumbers"
_STREAM = "/screening.v1.Screening/ScreenCallStream"


def channels(target: str, count: int) -> list[grpc.aio.Channel]:
    # A local subchannel pool each: separate TCP connections, so SO_REUSEPORT
    # can spread them over worker processes.
    return [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(count)]


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


async def run(
    args: argparse.Namespace, numbers: list[str]
) -> tuple[tuple[array[float], array[float]] | None, dict[str, object]]:
    """The figures, and with --trace each measured call's start and latency, in the order they finished."""
    # A window of its own for each run (--offset), so that runs against the
    # same server do not repeat numbers: the national parse cache would
    # otherwise answer later runs from memory.
    start = args.offset % len(numbers)
    numbers = (numbers[start:] + numbers[:start])[: args.take]
    random.Random(args.seed).shuffle(numbers)
    direction = pb.DIRECTION_INBOUND
    metadata = None if args.token is None else (("authorization", f"Bearer {args.token}"),)
    chans = channels(args.target, args.channels)
    for ch in chans:
        await asyncio.wait_for(ch.channel_ready(), 10)
    latencies: list[float] = []
    starts: list[float] = []  # with --trace: each measured call's start, beside its latency
    trace = args.trace is not None
    done = 0
    total = 0  # warm-up calls included
    screened = 0
    stop_at = 0.0
    warm_until = 0.0

    if args.mode in ("unary", "batch"):
        if args.mode == "unary":
            payloads = [
                pb.ScreenCallRequest(
                    tenant_id=args.tenant, number=n, direction=direction, call_id=f"c{i}"
                ).SerializeToString()
                for i, n in enumerate(numbers)
            ]
            path, per_call, step, timeout = _UNARY, 1, args.in_flight, 10
        else:
            size = args.batch
            payloads = [
                pb.ScreenNumbersRequest(
                    tenant_id=args.tenant, direction=direction, numbers=numbers[i : i + size]
                ).SerializeToString()
                for i in range(0, len(numbers) - size + 1, size)
            ]
            path, per_call, step, timeout = _BATCH, size, 1, 30
        calls: list[grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = [ch.unary_unary(path) for ch in chans]

        async def worker(k: int) -> None:
            nonlocal done, total
            call = calls[k % len(calls)]
            i = k
            perf = time.perf_counter
            while (start := perf()) < stop_at:
                await call(payloads[i % len(payloads)], timeout=timeout, metadata=metadata)
                end = perf()
                total += 1
                if start >= warm_until:
                    latencies.append(end - start)
                    if trace:
                        starts.append(start)
                    done += 1
                i += step

        workers = [worker(k) for k in range(args.in_flight)]
    else:
        requests = [
            pb.ScreenCallRequest(
                tenant_id=args.tenant, number=n, direction=direction, call_id=f"c{i}"
            ).SerializeToString()
            for i, n in enumerate(numbers)
        ]

        async def worker(k: int) -> None:
            # One stream; `in_flight` requests outstanding on it (a switch pipelining calls).
            nonlocal done, total
            call: grpc.aio.StreamStreamMultiCallable[bytes, bytes] = chans[k % len(chans)].stream_stream(_STREAM)
            window = asyncio.Semaphore(args.in_flight)
            sent: asyncio.Queue[float] = asyncio.Queue()
            perf = time.perf_counter

            async def source() -> AsyncIterator[bytes]:
                i = k
                while perf() < stop_at:
                    await window.acquire()
                    sent.put_nowait(perf())
                    yield requests[i % len(requests)]
                    i += 1

            stream = call(source(), metadata=metadata)
            async for _ in stream:
                total += 1
                start = sent.get_nowait()
                if start >= warm_until:
                    latencies.append(perf() - start)
                    done += 1
                window.release()

        per_call = 1
        workers = [worker(k) for k in range(args.streams)]

    seen: dict[str, float] = {}

    async def watch() -> None:
        """Screen the --watch numbers every --watch-every s; note when all first get --watch-for (and stop then)."""
        nonlocal stop_at
        wanted = pb.VERDICT_BLOCK if args.watch_for == "block" else pb.VERDICT_ALLOW
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, pb.ScreenNumbersResponse] = chans[0].unary_unary(
            _BATCH, response_deserializer=pb.ScreenNumbersResponse.FromString
        )
        request = pb.ScreenNumbersRequest(
            tenant_id=args.tenant, direction=direction, numbers=args.watch.split(",")
        ).SerializeToString()
        perf = time.perf_counter
        while perf() < stop_at:
            answer = await call(request, timeout=10, metadata=metadata)
            seen.setdefault("first_data_version", answer.data_version)
            if "at" not in seen and all(r.verdict == wanted for r in answer.results):
                seen["at"], seen["data_version"] = perf(), answer.data_version
                if args.stop_when_seen:
                    stop_at = seen["at"]
            await asyncio.sleep(args.watch_every)

    async def announce() -> None:
        # The caller starts what it measures once the warm-up is over (bench figure j commits then).
        await asyncio.sleep(max(0.0, warm_until - time.perf_counter()))
        print("measuring", file=sys.stderr, flush=True)

    if args.watch:
        workers.append(watch())
    workers.append(announce())
    cpu0 = time.process_time()
    began = time.perf_counter()
    warm_until = began + args.warmup
    stop_at = warm_until + args.duration
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - warm_until
    cpu = time.process_time() - cpu0
    for ch in chans:
        await ch.close()
    screened = done * per_call
    traced = (array("d", starts), array("d", latencies)) if trace else None
    latencies.sort()
    return traced, {
        "mode": args.mode,
        "in_flight": args.in_flight,
        "calls": done,
        "all_numbers": total * per_call,
        "numbers": screened,
        "seconds": elapsed,
        "calls_per_s": done / elapsed,
        "numbers_per_s": screened / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "client_cpu_s": cpu,
        "client_cpu": os.sched_getaffinity(0).__len__(),
        # perf_counter (CLOCK_MONOTONIC, the same in every process): where measuring began.
        "measured_from": warm_until,
        "seen_at": seen.get("at", float("nan")),
        "seen_data_version": seen.get("data_version", 0),
        "first_data_version": seen.get("first_data_version", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.load")
    parser.add_argument("--target", required=True)
    parser.add_argument("--mode", choices=("unary", "batch", "stream"), default="unary")
    parser.add_argument("--numbers", required=True, help="file of numbers, whitespace separated")
    parser.add_argument("--tenant", default="acme")
    parser.add_argument("--in-flight", type=int, default=16)
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--token", help="bearer token sent with every call (a server with --auth-file)")
    parser.add_argument("--offset", type=int, default=0, help="first number of this run's window")
    parser.add_argument("--take", type=int, default=100_000, help="numbers in this run's window")
    parser.add_argument(
        "--trace", help="file to write each measured call's start (perf_counter) and latency to, unary mode"
    )
    parser.add_argument("--watch", help="comma-separated numbers screened with ScreenNumbers every --watch-every s")
    parser.add_argument("--watch-for", choices=("block", "allow"), default="block")
    parser.add_argument("--watch-every", type=float, default=0.02)
    parser.add_argument(
        "--stop-when-seen", action="store_true", help="stop when every --watch number first gets --watch-for"
    )
    args = parser.parse_args()
    numbers = Path(args.numbers).read_text().split()
    traced, result = asyncio.run(run(args, numbers))
    if traced is not None:
        with open(args.trace, "wb") as out:
            for column in traced:
                column.tofile(out)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

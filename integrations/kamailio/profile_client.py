"""What one screening call costs a switch worker and the service, by client, side by side.

One `screening serve` (embedded PostgreSQL, empty list), and one call at a
time from this process, as a Kamailio worker makes them:
  unary    grpcio, ScreenCall (what the router used before)
  stream   grpcio, ScreenCallStream fed from a queue (grpcio's sync streams
           read the requests on a thread of their own)
  h2       sipscreen.h2: ScreenCallStream on a blocking socket (the router, over gRPC)
  switch   sipscreen.wire: the service's switch socket (`serve --switch-listen`), no
           gRPC, the messages written and read by hand (the router, on the same host)
Rounds alternate the order (a b c, c b a, ...). CPU: this process's
(time.process_time, all its threads) and the service's (/proc), per call.

  PYTHONPATH=integrations/kamailio .venv/bin/python integrations/kamailio/profile_client.py
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
from sipscreen import wire
from sipscreen.h2 import Stream
from sipscreen.wire import SwitchSocket
from testbed import Service

from screening.v1 import screening_pb2 as pb
from screening.v1 import screening_pb2_grpc as pb_grpc

TICK = os.sysconf("SC_CLK_TCK")


def service_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=5000, help="calls per client per round")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    requests = [
        pb.ScreenCallRequest(
            tenant_id="acme", number=f"+4930{2_000_000 + i}", direction=pb.DIRECTION_INBOUND, call_id=f"call-{i}"
        )
        for i in range(args.calls)
    ]
    with tempfile.TemporaryDirectory(prefix="profile-client-") as tmp:
        service = Service(Path(tmp), switch_socket=True).start()
        assert service.proc is not None
        channel = grpc.insecure_channel(service.target, options=[("grpc.enable_retries", 0)])
        stub = pb_grpc.ScreeningStub(channel)
        feed: queue.SimpleQueue[pb.ScreenCallRequest | None] = queue.SimpleQueue()
        answers: Iterator[pb.ScreenCallResponse] = stub.ScreenCallStream(iter(feed.get, None))
        h2 = Stream(service.target)
        h2.connect(1)
        switch = SwitchSocket(service.switch_socket)
        switch.connect(1)

        def unary(request: pb.ScreenCallRequest) -> None:
            stub.ScreenCall(request, timeout=0.2)

        def stream(request: pb.ScreenCallRequest) -> None:
            feed.put(request)
            next(answers)

        def raw(request: pb.ScreenCallRequest) -> None:
            pb.ScreenCallResponse.FromString(h2.call(request.SerializeToString(), time.monotonic() + 0.2))

        def local(request: pb.ScreenCallRequest) -> None:
            message = wire.encode_request(request.tenant_id, request.number, request.direction, request.call_id)
            wire.decode_response(switch.call(message, time.monotonic() + 0.2))

        clients: dict[str, Callable[[pb.ScreenCallRequest], None]] = {
            "unary": unary,
            "stream": stream,
            "h2": raw,
            "switch": local,
        }
        figures: dict[str, dict[str, list[float]]] = {n: {"client": [], "service": [], "wall": []} for n in clients}
        for call in clients.values():
            for request in requests[:500]:
                call(request)
        for index in range(args.rounds):
            names = list(clients) if index % 2 == 0 else list(clients)[::-1]
            for name in names:
                call = clients[name]
                c0, s0, w0 = time.process_time(), service_cpu(service.proc.pid), time.perf_counter()
                for request in requests:
                    call(request)
                c1, s1, w1 = time.process_time(), service_cpu(service.proc.pid), time.perf_counter()
                figures[name]["client"].append((c1 - c0) / args.calls * 1e6)
                figures[name]["service"].append((s1 - s0) / args.calls * 1e6)
                figures[name]["wall"].append((w1 - w0) / args.calls * 1e6)
        feed.put(None)
        h2.close()
        switch.close()
        channel.close()
        service.stop()
    print(f"{args.rounds} rounds x {args.calls} calls, one at a time; median of rounds (min-max), us per call")
    print(f"{'client':8} {'client CPU':>20} {'service CPU':>20} {'wall':>20}")
    for name, figure in figures.items():
        cells = [
            f"{statistics.median(v):6.0f} ({min(v):.0f}-{max(v):.0f})"
            for v in (figure["client"], figure["service"], figure["wall"])
        ]
        print(f"{name:8} {cells[0]:>20} {cells[1]:>20} {cells[2]:>20}")
    base = figures["unary"]
    for name in ("stream", "h2", "switch"):
        ratios = [
            (a + b) / (c + d)
            for a, b, c, d in zip(
                figures[name]["client"], figures[name]["service"], base["client"], base["service"], strict=True
            )
        ]
        print(f"{name} / unary, client+service CPU per call, by round: {min(ratios):.2f}-{max(ratios):.2f}")


if __name__ == "__main__":
    main()

"""The floor: a Screening server for the same proto on the same grpc runtime that does nothing.

It answers every ScreenCall with ALLOW, echoing the number and call id, so the
response has the shape and about the size of a real one. The difference
between it and the real server is what screening costs over gRPC itself.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
import phonenumbers

from screening.v1 import screening_pb2 as pb
from screening.v1 import screening_pb2_grpc as pb_grpc

_ALLOW = pb.VERDICT_ALLOW


class NoopScreening(pb_grpc.ScreeningServicer):
    def __init__(self, busy_loops: int = 0) -> None:
        # Work of a known cost added to every ScreenCall (bench figure a2): what
        # a microsecond of handler CPU costs a call in a loaded server.
        self._busy = range(busy_loops)

    async def ScreenCall(self, request: pb.ScreenCallRequest, context: Any) -> pb.ScreenCallResponse:
        for _ in self._busy:
            pass
        return pb.ScreenCallResponse(verdict=_ALLOW, normalized_number=request.number, call_id=request.call_id)

    async def ScreenNumbers(self, request: pb.ScreenNumbersRequest, context: Any) -> pb.ScreenNumbersResponse:
        return pb.ScreenNumbersResponse(
            results=[pb.ScreenCallResponse(verdict=_ALLOW, normalized_number=n) for n in request.numbers]
        )

    async def ScreenCallStream(
        self, request_iterator: AsyncIterator[pb.ScreenCallRequest], context: Any
    ) -> AsyncIterator[pb.ScreenCallResponse]:
        async for request in request_iterator:
            yield pb.ScreenCallResponse(verdict=_ALLOW, normalized_number=request.number, call_id=request.call_id)


class ParsingNoopScreening(NoopScreening):
    """The floor plus the one step the contract fixes for national input, and nothing else.

    libphonenumber's parse for the region, the possible-number check, E.164
    out (CONTRACT.md, Normalization): what any server honouring the contract
    spends on a national number before it can look anything up (figure a).
    """

    def __init__(self, region: str) -> None:
        super().__init__()
        self._region = region

    async def ScreenCall(self, request: pb.ScreenCallRequest, context: Any) -> pb.ScreenCallResponse:
        number = request.number
        try:
            parsed = phonenumbers.parse(number, self._region)
        except phonenumbers.NumberParseException:
            pass
        else:
            if phonenumbers.is_possible_number_with_reason(parsed) == phonenumbers.ValidationResult.IS_POSSIBLE:
                number = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        return pb.ScreenCallResponse(verdict=_ALLOW, normalized_number=number, call_id=request.call_id)


async def serve(listen: str, busy_loops: int = 0, parse_region: str | None = None) -> None:
    # The same options as screening.app.service.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
    servicer = NoopScreening(busy_loops) if parse_region is None else ParsingNoopScreening(parse_region)
    pb_grpc.add_ScreeningServicer_to_server(servicer, server)
    server.add_insecure_port(listen)
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    print("ready", flush=True)
    await stopping.wait()
    await server.stop(1)


def supervise(listen: str, busy_loops: int, processes: int) -> None:
    """N no-op servers sharing the port (SO_REUSEPORT), as `serve --workers N` runs ours: the floor of figure g."""
    children = [
        subprocess.Popen([sys.executable, "-m", "bench.noop", "--listen", listen, "--busy-loops", str(busy_loops)])
        for _ in range(processes)
    ]

    def stop(signum: int, frame: object) -> None:
        for child in children:
            child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.noop")
    parser.add_argument("--listen", required=True)
    parser.add_argument("--busy-loops", type=int, default=0, help="empty loop iterations added to each ScreenCall")
    parser.add_argument(
        "--processes", type=int, default=0, help="run this many servers on the port under a supervising parent"
    )
    parser.add_argument("--parse-region", help="parse each ScreenCall's number as national input of this region")
    args = parser.parse_args()
    if args.processes:
        supervise(args.listen, args.busy_loops, args.processes)
    else:
        asyncio.run(serve(args.listen, args.busy_loops, args.parse_region))


if __name__ == "__main__":
    main()

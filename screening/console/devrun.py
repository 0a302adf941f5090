"""`make run`: the gRPC server and the console beside it, started and stopped together.

    python -m screening.console.devrun [serve flags...]

The flags go to `screening serve`. The console starts once the server's
health check answers SERVING (the embedded PostgreSQL and the first load can
take a while), talks to the server's --listen address (SCREENING_LISTEN),
and asks people to sign in when the server has an auth file. Ctrl-C or
SIGTERM stops both; if either ends, the other is stopped too.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

# The first run makes an embedded PostgreSQL cluster; a big table loads for a while.
SERVING_WITHIN = 600.0


def _server_address(serve_args: Sequence[str]) -> tuple[str, bool]:
    """Where the server will listen (as a client reaches it), and whether it has an auth file."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--listen", default=os.environ.get("SCREENING_LISTEN") or "127.0.0.1:50051")
    parser.add_argument("--auth-file", default=os.environ.get("SCREENING_AUTH_FILE") or None)
    known, _ = parser.parse_known_args(list(serve_args))
    host, _, port = known.listen.rpartition(":")
    # A server on every address is reached on loopback from here.
    if host in ("0.0.0.0", "::", "[::]", ""):
        host = "127.0.0.1"
    return f"{host}:{port}", known.auth_file is not None


def _wait_serving(address: str, server: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + SERVING_WITHIN
    with grpc.insecure_channel(address) as channel:
        # The stubs' types declare the async variant's methods only.
        health: Any = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline and server.poll() is None:
            try:
                answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
            time.sleep(0.3)
    return False


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main(argv: Sequence[str] | None = None) -> int:
    serve_args = list(sys.argv[1:] if argv is None else argv)
    address, auth = _server_address(serve_args)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server = subprocess.Popen([sys.executable, "-m", "screening", "serve", *serve_args])
    console: subprocess.Popen[bytes] | None = None
    try:
        print(f"make run: waiting for the server at {address} to be SERVING...", file=sys.stderr, flush=True)
        if not _wait_serving(address, server) or stopping:
            return server.poll() or (0 if stopping else 1)
        console_args = ["--server", address] + (["--server-auth"] if auth else [])
        console = subprocess.Popen([sys.executable, "-m", "screening", "console", *console_args])
        while not stopping and server.poll() is None and console.poll() is None:
            time.sleep(0.2)
        return 0 if stopping else (server.poll() or console.poll() or 0)
    finally:
        # The console first: it has nothing to drain, the server has calls in flight.
        _stop(console)
        _stop(server)


if __name__ == "__main__":
    sys.exit(main())

"""`screening console`: the admin web console, a client of the ForbiddenNumberAdmin gRPC API."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
from collections.abc import Mapping

from screening.console.config import ConsoleConfig, ConsoleConfigError, add_arguments, from_namespace

__all__ = ["ConsoleConfig", "ConsoleConfigError", "add_arguments", "main", "serve"]

log = logging.getLogger("screening.console")


async def serve(config: ConsoleConfig, sock: socket.socket | None = None) -> None:
    """Serve until cancelled or signalled (SIGINT, SIGTERM)."""
    import uvicorn

    from screening.console.app import Console

    console = Console(config)
    host, port = config.listen_host_port
    server = uvicorn.Server(
        uvicorn.Config(
            console.app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            ssl_certfile=None if config.tls_cert is None else str(config.tls_cert),
            ssl_keyfile=None if config.tls_key is None else str(config.tls_key),
            # Big uploads arrive as one request; they are the point of the import dialog.
            h11_max_incomplete_event_size=None,
        )
    )
    if sock is None:
        sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    bound = sock.getsockname()[1]
    scheme = "https" if config.tls_cert else "http"
    log.info(
        "console listening on %s://%s:%d (port %d), for the server at %s", scheme, host, bound, bound, config.server
    )
    await server.serve(sockets=[sock])


def run(args: argparse.Namespace) -> int:
    """`screening console ARGS`, after argparse."""
    try:
        config = from_namespace(args)
    except ConsoleConfigError as exc:
        raise SystemExit(f"screening console: {exc}") from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(config))
    return 0


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(prog="screening console", description="The admin web console")
    add_arguments(parser, os.environ if environ is None else environ)
    return run(parser.parse_args(argv))

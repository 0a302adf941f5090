"""`python -m screening serve` and the `screening` console script."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from screening import embedded
from screening.app import App
from screening.config import Config, ConfigError, add_serve_arguments, from_namespace

log = logging.getLogger("screening")


async def serve(config: Config) -> int:
    stop_embedded = None
    dsn = config.database_url
    if dsn is None:
        dsn, stop_embedded = await asyncio.to_thread(embedded.start, config.data_dir)
    try:
        assert dsn is not None
        app = await App(config, dsn).start()
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await stopping.wait()
        log.info("stopping: draining in-flight calls for up to %.1fs", config.shutdown_grace)
        await app.stop()
    finally:
        if stop_embedded is not None:
            await asyncio.to_thread(stop_embedded)
    log.info("stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="screening", description="Call-screening service")
    commands = parser.add_subparsers(dest="command", required=True)
    add_serve_arguments(commands.add_parser("serve", help="serve gRPC"), os.environ)
    args = parser.parse_args(argv)
    try:
        config = from_namespace(args)
    except ConfigError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return asyncio.run(serve(config))


if __name__ == "__main__":
    sys.exit(main())

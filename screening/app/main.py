"""The `screening` command: `serve`, `token`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence

import asyncpg

# gRPC core writes its own INFO lines (e.g. about fork handlers) straight to
# stderr, between our one-line events; set before grpc is first imported.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from screening import console
from screening.api import tokens
from screening.app import embedded, logs
from screening.app.config import Config, add_serve_arguments, from_namespace
from screening.app.service import App
from screening.app.workers import Supervisor, die_with_supervisor, restarted_worker
from screening.domain.errors import ConfigError
from screening.sync import snapshots
from storage import changes

log = logging.getLogger("screening")


async def serve(config: Config, argv: Sequence[str] = ()) -> int:
    stop_embedded = None
    dsn = config.database_url
    if dsn is None and config.feed_url is None:
        dsn, stop_embedded = await asyncio.to_thread(embedded.start, config.data_dir)
    try:
        if config.workers > 1:
            return await Supervisor(config, dsn, argv).run()
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        die_with_supervisor()
        app = await App(config, dsn, listen_when_loaded=restarted_worker()).start()
        loop.add_signal_handler(signal.SIGHUP, app.reload)
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
    token = commands.add_parser("token", help="print a new random token and its [[tokens]] entry for --auth-file")
    token.add_argument("--name", required=True)
    token.add_argument("--role", action="append", choices=tokens.ROLES, required=True, help="repeat for several")
    token.add_argument("--tenant", action="append", required=True, help='a tenant id, or "*"; repeat for several')
    console.add_arguments(commands.add_parser("console", help="serve the admin web console"), os.environ)
    snapshot = commands.add_parser(
        "snapshot", help="write every entry and its position to a snapshot file, for replicas' --snapshot-url"
    )
    snapshot.add_argument(
        "--from",
        dest="source",
        metavar="URL",
        default=os.environ.get("SCREENING_FEED_URL") or os.environ.get("SCREENING_DATABASE_URL"),
        help="the database to read, best a standby (default: $SCREENING_FEED_URL, else $SCREENING_DATABASE_URL)",
    )
    snapshot.add_argument(
        "--to",
        metavar="URL",
        default=os.environ.get("SCREENING_SNAPSHOT_URL"),
        help="a path or an fsspec URL (file://, s3://...) (default: $SCREENING_SNAPSHOT_URL)",
    )
    args = parser.parse_args(argv)
    if args.command == "console":
        return console.run(args)
    if args.command == "snapshot":
        if not args.source or not args.to:
            snapshot.error("give --from (a postgresql:// URL) and --to (where to write)")
        return asyncio.run(_write_snapshot(args.source, args.to))
    if args.command == "token":
        return _print_token(args.name, args.role, args.tenant)
    try:
        config = from_namespace(args)
    except ConfigError as exc:
        parser.error(str(exc))
    logs.configure(config.log_level, config.log_format)
    try:
        return asyncio.run(serve(config, _serve_args(argv)))
    except ConfigError as exc:
        parser.error(str(exc))


async def _write_snapshot(source: str, to: str) -> int:
    started = time.monotonic()
    conn = await asyncpg.connect(source, server_settings={"application_name": "screening-snapshot"})
    try:
        snapshot = await changes.load_snapshot(conn)
    finally:
        await conn.close()
    size = await asyncio.to_thread(snapshots.write, to, snapshot)
    print(
        f"{len(snapshot.keys) + len(snapshot.others)} entries at data_version {snapshot.position.watermark}"
        f" of cluster {snapshot.position.cluster} written to {to} ({size} bytes) in {time.monotonic() - started:.1f}s"
    )
    return 0


def _print_token(name: str, roles: list[str], tenants: list[str]) -> int:
    secret = tokens.new_token()
    entry = {"name": name, "token_sha256": tokens.digest_of(secret), "roles": roles, "tenants": tenants}
    try:
        tokens.parse({"tokens": [entry]}, "<new token>")
    except ConfigError as exc:
        print(f"screening token: {exc}", file=sys.stderr)
        return 2
    quoted = ", ".join(f'"{t}"' for t in tenants)
    print(f"# Give this token to the client; the auth file keeps only its digest.\n# token: {secret}")
    print("[[tokens]]")
    print(f'name = "{name}"')
    print(f'token_sha256 = "{entry["token_sha256"]}"')
    print("roles = [" + ", ".join(f'"{r}"' for r in roles) + "]")
    print(f"tenants = [{quoted}]")
    return 0


def _serve_args(argv: Sequence[str] | None) -> list[str]:
    """The flags given to `serve`, for the workers' command line."""
    args = list(sys.argv[1:] if argv is None else argv)
    return args[args.index("serve") + 1 :]

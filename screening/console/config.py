"""The console's settings: flags that fall back to SCREENING_CONSOLE_* variables."""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_SERVER = "127.0.0.1:50051"
_TRUE = ("1", "true", "yes", "on")


class ConsoleConfigError(ValueError):
    pass


def split_host_port(address: str, flag: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConsoleConfigError(f"{flag} {address!r}: expected HOST:PORT, e.g. {DEFAULT_LISTEN}")
    return host.strip("[]"), int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        # Any other name may resolve to a public address.
        return False


@dataclass(frozen=True)
class ConsoleConfig:
    listen: str = DEFAULT_LISTEN
    # The gRPC server whose ForbiddenNumberAdmin API the console is a client of.
    server: str = DEFAULT_SERVER
    # Set: the channel to the server is TLS, checked against this CA (None: plaintext).
    server_tls_ca: Path | None = None
    # The name the server's certificate carries, when --server does not say it.
    server_tls_name: str | None = None
    # The server checks tokens (it has --auth-file): people sign in with one of its tokens.
    server_auth: bool = False
    # Set: the console itself serves HTTPS (and its cookies are Secure).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Idle time after which a signed-in session is forgotten.
    session_idle_seconds: float = 8 * 3600.0

    def __post_init__(self) -> None:
        host, _ = split_host_port(self.listen, "--listen")
        split_host_port(self.server, "--server")
        if not self.server_auth and not _is_loopback(host):
            # Without tokens every visitor acts as the server's anonymous caller:
            # only people on this machine may reach that.
            raise ConsoleConfigError(
                f"--listen {self.listen!r}: a console for a server without an auth file listens on loopback only; "
                "give the server --auth-file and the console --server-auth, so that people sign in with a token"
            )
        for flag, path in (
            ("--server-tls-ca", self.server_tls_ca),
            ("--tls-cert", self.tls_cert),
            ("--tls-key", self.tls_key),
        ):
            if path is not None and not path.is_file():
                raise ConsoleConfigError(f"{flag} {str(path)!r}: no such file")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConsoleConfigError("--tls-cert and --tls-key: give both or neither")
        if self.session_idle_seconds <= 0:
            raise ConsoleConfigError(f"--session-idle {self.session_idle_seconds}: must be more than 0 seconds")

    @property
    def listen_host_port(self) -> tuple[str, int]:
        return split_host_port(self.listen, "--listen")


def add_arguments(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    def env(name: str, default: str | None = None) -> str | None:
        return environ.get(name) or default

    parser.add_argument(
        "--listen",
        default=env("SCREENING_CONSOLE_LISTEN", DEFAULT_LISTEN),
        help=f"HOST:PORT to serve the web console on (default {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--server",
        default=env("SCREENING_CONSOLE_SERVER", DEFAULT_SERVER),
        help=f"HOST:PORT of the screening gRPC server (default {DEFAULT_SERVER})",
    )
    parser.add_argument(
        "--server-tls-ca",
        default=env("SCREENING_CONSOLE_SERVER_TLS_CA"),
        help="PEM CA that signed the server's certificate: talk TLS to the server",
    )
    parser.add_argument(
        "--server-tls-name",
        default=env("SCREENING_CONSOLE_SERVER_TLS_NAME"),
        help="the host name in the server's certificate, when --server names it otherwise",
    )
    parser.add_argument(
        "--server-auth",
        action="store_true",
        default=(env("SCREENING_CONSOLE_SERVER_AUTH", "") or "").lower() in _TRUE,
        help="the server has an auth file: people sign in with one of its tokens",
    )
    parser.add_argument("--tls-cert", default=env("SCREENING_CONSOLE_TLS_CERT"), help="PEM certificate: serve HTTPS")
    parser.add_argument("--tls-key", default=env("SCREENING_CONSOLE_TLS_KEY"), help="PEM private key of --tls-cert")
    parser.add_argument(
        "--session-idle",
        type=float,
        default=float(env("SCREENING_CONSOLE_SESSION_IDLE", "28800") or 28800),
        help="seconds of inactivity after which a session signs out (default 8 hours)",
    )


def from_namespace(args: argparse.Namespace) -> ConsoleConfig:
    def path(value: str | None) -> Path | None:
        return None if not value else Path(value)

    return ConsoleConfig(
        listen=args.listen,
        server=args.server,
        server_tls_ca=path(args.server_tls_ca),
        server_tls_name=args.server_tls_name or None,
        server_auth=bool(args.server_auth),
        tls_cert=path(args.tls_cert),
        tls_key=path(args.tls_key),
        session_idle_seconds=args.session_idle,
    )

"""Server configuration: one frozen dataclass that validates itself, each flag declared once.

A field with `flag(...)` metadata is a `screening serve` flag: its name is
the field's (`--max-import-rows`), its environment variable SCREENING_ and
the field's name in capitals, its default the field's; `help`, how the
text is read and what values it refuses are declared with it. The argument
parser, the environment, the checks and the flag table in
docs/operations.md all come from these declarations (a test compares the
table with `flag_table()`).
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from screening.domain.errors import ConfigError
from screening.domain.numbers import is_valid_region

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
ENV_PREFIX = "SCREENING_"
_TRUE = ("1", "true", "yes", "on")


def split_host_port(address: str, name: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{name} {address!r}: expected HOST:PORT, e.g. 127.0.0.1:50051")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        # A name other than localhost may resolve anywhere.
        return False


@dataclass(frozen=True, slots=True)
class Flag:
    help: str
    # Text (the command line, the environment) to the field's value; ValueError: refused.
    parse: Callable[[str], Any] = str
    # Why a value is refused, or None. Checks across flags are Config.__post_init__'s.
    check: Callable[[Any], str | None] | None = None
    metavar: str | None = None
    # A flag without a value (--insecure); its variable is true for 1, true, yes or on.
    switch: bool = False
    # The default as the docs show it, where the value itself says it poorly.
    shown_default: str | None = None
    # What a value that cannot be parsed should have been.
    expected: str = "a number"


def flag(default: Any, help: str, **how: Any) -> Any:
    return field(default=default, metadata={"flag": Flag(help=help, **how)})


UNIX = "unix:"


def _listen(value: str) -> str | None:
    """HOST:PORT, or unix:PATH (a Unix domain socket: for a switch on the same host, no TCP on the way)."""
    if value.startswith(UNIX):
        return None if len(value) > len(UNIX) else "expected unix:PATH, e.g. unix:/run/screening.sock"
    return _host_port(value)


def _unix(value: str) -> str | None:
    if value.startswith(UNIX) and len(value) > len(UNIX):
        return None
    return "expected unix:PATH, e.g. unix:/run/screening-switch.sock"


def _host_port(value: str) -> str | None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return "expected HOST:PORT, e.g. 127.0.0.1:50051"
    return None


def _optional(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    return lambda value: None if value is None else check(value)


def _is_file(path: Path) -> str | None:
    return None if path.is_file() else "no such file"


def _within(low: float, high: float, what: str) -> Callable[[float], str | None]:
    return lambda value: None if low <= value <= high else f"must be {what}"


def _region(value: str) -> str | None:
    return None if is_valid_region(value) else "not a region libphonenumber knows (e.g. US, CN, GB)"


def _postgres_url(url: str) -> str | None:
    return None if url.startswith(("postgres://", "postgresql://")) else "expected postgresql://..."


def _workers(text: str) -> int:
    return len(os.sched_getaffinity(0)) if text.strip().lower() == "auto" else int(text)


@dataclass(frozen=True)
class Config:
    listen: str = flag(
        "127.0.0.1:50051",
        "where gRPC is served: HOST:PORT, or unix:PATH for switches on the same host; a non-loopback address"
        " (0.0.0.0:50051) needs --auth-file (or --insecure)",
        check=_listen,
        metavar="HOST:PORT",
    )
    database_url: str | None = flag(
        None,
        "the primary, postgresql://user:pass@host:5432/db: migrations, admin writes, tombstone purges and LISTEN;"
        " unset: start an embedded PostgreSQL in --data-dir, or with --feed-url a read-only replica (it polls"
        " the feed and admin RPCs answer UNAVAILABLE)",
        check=_optional(_postgres_url),
        metavar="URL",
    )
    feed_url: str | None = flag(
        None,
        "where the first load and the change feed are read: a streaming hot standby of --database-url (set"
        " hot_standby_feedback = on there); unset: the primary itself",
        check=_optional(_postgres_url),
        metavar="URL",
    )
    snapshot_url: str | None = flag(
        None,
        "a snapshot written by `screening snapshot` (a path, or an fsspec URL: file://, s3://...): start from it"
        " and catch up from its position; missing, unreadable or older than --tombstone-retention: a full load",
        metavar="URL",
    )
    data_dir: Path = flag(
        Path(".screening"), "the embedded PostgreSQL's home (kept across restarts)", parse=Path, metavar="DIR"
    )
    default_region: str | None = flag(
        None,
        "region for numbers written without +country (US, CN, GB); unset: such numbers stay bare digits",
        parse=lambda text: text.upper(),
        check=_optional(_region),
        metavar="CC",
    )
    shutdown_grace: float = flag(
        10.0,
        "on SIGTERM, health turns NOT_SERVING and in-flight calls (streams too) get this long to finish",
        parse=float,
        check=_within(0, float("inf"), "0 or more seconds"),
        metavar="SECONDS",
    )
    poll_interval: float = flag(
        0.5,
        "backstop read of the change feed when no notification arrives",
        parse=float,
        check=lambda v: None if 0 < v <= 2 else "must be more than 0 and at most 2 seconds",
        metavar="SECONDS",
    )
    tombstone_retention: float = flag(
        7 * 86400.0,
        "how long deleted entries are kept for replicas that were away; one away longer reloads fully",
        parse=float,
        check=lambda v: None if v > 0 else "must be more than 0 seconds",
        metavar="SECONDS",
        shown_default="604800 (7 days)",
    )
    auth_file: Path | None = flag(
        None,
        "TOML of [[tokens]] (name, token_sha256, roles, tenants); re-read on SIGHUP; unset: no authentication",
        parse=Path,
        check=_optional(_is_file),
        metavar="PATH",
    )
    auth_failures_burst: int = flag(
        20,
        "failed authentications one address may make before it is throttled to --auth-failures-per-second",
        parse=int,
        check=lambda v: None if v >= 1 else "must be at least 1",
        metavar="N",
    )
    auth_failures_per_second: float = flag(
        1.0,
        "failed authentications a throttled address may make per second; a token seen valid before is never throttled",
        parse=float,
        check=lambda v: None if v > 0 else "must be more than 0",
        metavar="RATE",
    )
    insecure: bool = flag(
        False, "without --auth-file, serve unauthenticated on a non-loopback address anyway", switch=True
    )
    tls_cert: Path | None = flag(
        None,
        "serve TLS only, with this PEM certificate chain; re-read on SIGHUP",
        parse=Path,
        check=_optional(_is_file),
        metavar="PEM",
    )
    tls_key: Path | None = flag(
        None,
        "the (unencrypted) PEM private key of --tls-cert; re-read on SIGHUP",
        parse=Path,
        check=_optional(_is_file),
        metavar="PEM",
    )
    tls_client_ca: Path | None = flag(
        None,
        "also require client certificates signed by this PEM CA (mTLS); re-read on SIGHUP",
        parse=Path,
        check=_optional(_is_file),
        metavar="PEM",
    )
    # An import batch of 10,000 rows with long notes needs several MiB.
    max_receive_message_bytes: int = flag(
        16 * 1024 * 1024,
        "largest request message; larger ones get RESOURCE_EXHAUSTED",
        parse=int,
        check=_within(1024, 1024**3, "between 1 KiB and 1 GiB"),
        metavar="N",
        shown_default="16 MiB",
    )
    max_metadata_bytes: int = flag(
        16 * 1024,
        "largest request metadata (headers)",
        parse=int,
        check=_within(1024, 1024**2, "between 1 KiB and 1 MiB"),
        metavar="N",
        shown_default="16 KiB",
    )
    max_import_rows: int = flag(
        10_000_000,
        "rows one import may hold; a bigger import fails with nothing committed",
        parse=int,
        check=lambda v: None if v >= 1 else "must be at least 1",
        metavar="N",
    )
    max_import_bytes: int = flag(
        1024**3,
        "bytes one imported file may hold; a bigger file fails with nothing committed",
        parse=int,
        check=lambda v: None if v >= 1024 else "must be at least 1024",
        metavar="N",
        shown_default="1 GiB",
    )
    hit_flush_interval: float = flag(
        10.0,
        "seconds between writes of the calls each entry decided (counted in memory) to the database",
        parse=float,
        check=lambda v: None if 0 < v <= 10 else "must be more than 0 and at most 10 seconds",
        metavar="SECONDS",
    )
    log_level: str = flag(
        "INFO",
        "DEBUG, INFO, WARNING or ERROR",
        parse=lambda text: text.upper(),
        check=lambda v: None if v in LOG_LEVELS else f"one of {', '.join(LOG_LEVELS)}",
        metavar="LEVEL",
    )
    log_format: str = flag(
        "text",
        "text or json, one line per event either way",
        parse=lambda text: text.lower(),
        check=lambda v: None if v in LOG_FORMATS else f"one of {', '.join(LOG_FORMATS)}",
        metavar="FORMAT",
    )
    metrics_listen: str | None = flag(
        None,
        "serve Prometheus metrics at http://HOST:PORT/metrics; worker i of --workers uses PORT + i; unset: off",
        check=_optional(_host_port),
        metavar="HOST:PORT",
    )
    switch_listen: str | None = flag(
        None,
        "also serve ScreenCall on a Unix socket without gRPC, for switches on this host (a lighter protocol:"
        " screening/api/switch.py); the socket file's permissions (0660) say who may connect; unset: off",
        check=_optional(_unix),
        metavar="unix:PATH",
    )
    workers: int = flag(
        1,
        "server processes sharing the port (SO_REUSEPORT); auto: one per core",
        parse=_workers,
        check=_within(1, 256, "1 to 256, or auto"),
        metavar="N",
        expected="a number or auto",
    )

    def __post_init__(self) -> None:
        for name, spec in flags().items():
            value = getattr(self, name)
            reason = spec.check(value) if spec.check is not None else None
            if reason is not None:
                raise ConfigError(f"{option(name)} {_shown(value)}: {reason}")
        host, port = self.listen_host_port
        if self.auth_file is None and not self.insecure and not is_loopback(host):
            raise ConfigError(
                f"--listen {self.listen!r}: without --auth-file the server only listens on loopback; "
                "give --auth-file, or --insecure to serve every caller unauthenticated"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key: give both or neither")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError("--tls-client-ca: needs --tls-cert and --tls-key (client certificates need TLS)")
        if self.workers > 1 and self.switch_listen is not None:
            raise ConfigError(
                f"--switch-listen {self.switch_listen}: one process serves a Unix socket, not --workers {self.workers}"
            )
        if self.workers > 1 and (port == 0 or self.listens_on_unix):
            raise ConfigError(
                f"--listen {self.listen}: --workers {self.workers} share one TCP port, so it must be a port (not 0)"
            )

    @property
    def switch_socket_path(self) -> str | None:
        return None if self.switch_listen is None else self.switch_listen.removeprefix(UNIX)

    @property
    def listen_host_port(self) -> tuple[str, int]:
        """The host and port; a Unix socket is ("localhost", 0): local, and no port."""
        if self.listen.startswith(UNIX):
            return "localhost", 0
        return split_host_port(self.listen, "--listen")

    @property
    def listens_on_unix(self) -> bool:
        return self.listen.startswith(UNIX)

    @property
    def metrics_host_port(self) -> tuple[str, int] | None:
        return None if self.metrics_listen is None else split_host_port(self.metrics_listen, "--metrics-listen")


def flags() -> dict[str, Flag]:
    """Every flag, by its field's name, in declaration order."""
    return {f.name: f.metadata["flag"] for f in dataclasses.fields(Config) if "flag" in f.metadata}


def option(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_var(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _shown(value: Any) -> str:
    return repr(str(value)) if isinstance(value, Path | str) else str(value)


def _default(name: str) -> Any:
    return next(f.default for f in dataclasses.fields(Config) if f.name == name)


def add_serve_arguments(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    """The flags of `serve`, as text; each falls back to its environment variable (read in from_namespace)."""
    for name, spec in flags().items():
        text = environ.get(env_var(name)) or None
        if spec.switch:
            on = text is not None and text.strip().lower() in _TRUE
            parser.add_argument(option(name), action="store_true", default=on, help=spec.help)
        else:
            parser.add_argument(option(name), default=text, metavar=spec.metavar, help=spec.help)


def from_namespace(args: argparse.Namespace) -> Config:
    values: dict[str, Any] = {}
    for name, spec in flags().items():
        text = getattr(args, name)
        if spec.switch:
            values[name] = bool(text)
        elif text is not None:
            try:
                values[name] = spec.parse(text)
            except ValueError:
                raise ConfigError(f"{option(name)} {text!r}: expected {spec.expected}") from None
    return Config(**values)


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Config:
    parser = argparse.ArgumentParser(prog="screening serve")
    add_serve_arguments(parser, os.environ if environ is None else environ)
    return from_namespace(parser.parse_args(argv))


def flag_table() -> str:
    """The flag table of docs/operations.md, in Markdown."""
    lines = ["| flag | env | default | meaning |", "| --- | --- | --- | --- |"]
    for name, spec in flags().items():
        default = _default(name)
        if spec.shown_default is not None:
            shown = spec.shown_default
        elif spec.switch:
            shown = "off"
        elif default is None:
            shown = "unset"
        else:
            shown = f"`{default}`"
        metavar = f" {spec.metavar}" if spec.metavar else ""
        meaning = spec.help.replace("|", "\\|")
        lines.append(f"| `{option(name)}{metavar}` | `{env_var(name)}` | {shown} | {meaning} |")
    return "\n".join(lines) + "\n"

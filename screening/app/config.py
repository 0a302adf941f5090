"""Server configuration: one frozen dataclass that validates itself."""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from screening.domain.numbers import is_valid_region


class ConfigError(ValueError):
    pass


LOG_FORMATS = ("text", "json")


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


DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_METADATA_BYTES = 16 * 1024


@dataclass(frozen=True)
class Config:
    listen: str = "127.0.0.1:50051"
    # None: start an embedded PostgreSQL in data_dir.
    database_url: str | None = None
    data_dir: Path = field(default_factory=lambda: Path(".screening"))
    default_region: str | None = None
    shutdown_grace: float = 10.0
    # Backstop for lost notifications; bounds staleness when LISTEN is down.
    poll_interval: float = 0.5
    # How long deleted entries are kept for replicas that were away.
    tombstone_retention: float = 7 * 86400.0
    log_level: str = "INFO"
    # TOML of named tokens; None: no authentication (loopback or --insecure only).
    auth_file: Path | None = None
    insecure: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Set: clients must present a certificate this CA signed.
    tls_client_ca: Path | None = None
    # An import batch of 10,000 rows with long notes needs several MiB.
    max_receive_message_bytes: int = DEFAULT_MAX_RECEIVE_MESSAGE_BYTES
    max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES
    # Rows one import may hold; more fails the import with nothing committed.
    max_import_rows: int = 10_000_000

    log_format: str = "text"
    # None: no metrics endpoint.
    metrics_listen: str | None = None
    # Server processes sharing the port (SO_REUSEPORT); 1 serves in this process.
    workers: int = 1

    def __post_init__(self) -> None:
        host, _ = split_host_port(self.listen, "--listen")
        if self.metrics_listen is not None:
            split_host_port(self.metrics_listen, "--metrics-listen")
        if self.auth_file is None and not self.insecure and not is_loopback(host):
            raise ConfigError(
                f"--listen {self.listen!r}: without --auth-file the server only listens on loopback; "
                "give --auth-file, or --insecure to serve every caller unauthenticated"
            )
        for flag, path in (
            ("--auth-file", self.auth_file),
            ("--tls-cert", self.tls_cert),
            ("--tls-key", self.tls_key),
            ("--tls-client-ca", self.tls_client_ca),
        ):
            if path is not None and not path.is_file():
                raise ConfigError(f"{flag} {str(path)!r}: no such file")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key: give both or neither")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError("--tls-client-ca: needs --tls-cert and --tls-key (client certificates need TLS)")
        if not 1024 <= self.max_receive_message_bytes <= 1024**3:
            raise ConfigError(
                f"--max-receive-message-bytes {self.max_receive_message_bytes}: must be between 1 KiB and 1 GiB"
            )
        if not 1024 <= self.max_metadata_bytes <= 1024**2:
            raise ConfigError(f"--max-metadata-bytes {self.max_metadata_bytes}: must be between 1 KiB and 1 MiB")
        if self.default_region is not None:
            region = self.default_region.upper()
            if not is_valid_region(region):
                raise ConfigError(
                    f"--default-region {self.default_region!r}: not a region libphonenumber knows (e.g. US, CN, GB)"
                )
            object.__setattr__(self, "default_region", region)
        if self.database_url is not None and not self.database_url.startswith(("postgres://", "postgresql://")):
            raise ConfigError(f"--database-url {self.database_url!r}: expected postgresql://...")
        if self.shutdown_grace < 0:
            raise ConfigError(f"--shutdown-grace {self.shutdown_grace}: must be 0 or more seconds")
        if not 0 < self.poll_interval <= 2:
            raise ConfigError(f"--poll-interval {self.poll_interval}: must be more than 0 and at most 2 seconds")
        if self.tombstone_retention <= 0:
            raise ConfigError(f"--tombstone-retention {self.tombstone_retention}: must be more than 0 seconds")
        if self.max_import_rows < 1:
            raise ConfigError(f"--max-import-rows {self.max_import_rows}: must be at least 1")
        if not 1 <= self.workers <= 256:
            raise ConfigError(f"--workers {self.workers}: must be 1 to 256, or auto")
        if self.workers > 1 and self.listen_host_port[1] == 0:
            raise ConfigError(f"--listen {self.listen}: --workers {self.workers} share one port, so it cannot be 0")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"--log-level {self.log_level!r}: one of DEBUG, INFO, WARNING, ERROR")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"--log-format {self.log_format!r}: one of {', '.join(LOG_FORMATS)}")

    @property
    def listen_host_port(self) -> tuple[str, int]:
        return split_host_port(self.listen, "--listen")

    @property
    def metrics_host_port(self) -> tuple[str, int] | None:
        return None if self.metrics_listen is None else split_host_port(self.metrics_listen, "--metrics-listen")


def add_serve_arguments(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    """Flags of `serve`; each falls back to its SCREENING_* environment variable."""

    def env(name: str, default: str | None = None) -> str | None:
        value = environ.get(name)
        return value if value else default

    parser.add_argument("--listen", default=env("SCREENING_LISTEN", Config.listen), help="HOST:PORT to serve gRPC on")
    parser.add_argument(
        "--database-url",
        default=env("SCREENING_DATABASE_URL"),
        help="PostgreSQL URL; unset: an embedded PostgreSQL in --data-dir",
    )
    parser.add_argument(
        "--data-dir", default=env("SCREENING_DATA_DIR", ".screening"), help="embedded PostgreSQL's home"
    )
    parser.add_argument(
        "--default-region",
        default=env("SCREENING_DEFAULT_REGION"),
        help="region for numbers written without +country code, e.g. US",
    )
    parser.add_argument(
        "--shutdown-grace",
        type=float,
        default=float(env("SCREENING_SHUTDOWN_GRACE", "10") or 10),
        help="seconds in-flight calls get to finish on SIGTERM",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=float(env("SCREENING_POLL_INTERVAL", "0.5") or 0.5),
        help="seconds between backstop reads of the change feed",
    )
    parser.add_argument(
        "--tombstone-retention",
        type=float,
        default=float(env("SCREENING_TOMBSTONE_RETENTION", str(Config.tombstone_retention)) or 0),
        help="seconds deleted entries are kept so that replicas that were away learn of them",
    )
    parser.add_argument(
        "--max-import-rows",
        type=int,
        default=int(env("SCREENING_MAX_IMPORT_ROWS", "10000000") or 10_000_000),
        help="rows one import may hold",
    )
    parser.add_argument(
        "--auth-file",
        default=env("SCREENING_AUTH_FILE"),
        help="TOML of [[tokens]] (name, token_sha256, roles, tenants); reloaded on SIGHUP",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        default=(env("SCREENING_INSECURE", "") or "").lower() in ("1", "true", "yes"),
        help="without --auth-file, serve unauthenticated on a non-loopback address anyway",
    )
    parser.add_argument(
        "--tls-cert",
        default=env("SCREENING_TLS_CERT"),
        help="PEM certificate chain: serve TLS only; reloaded on SIGHUP",
    )
    parser.add_argument("--tls-key", default=env("SCREENING_TLS_KEY"), help="PEM private key of --tls-cert")
    parser.add_argument(
        "--tls-client-ca",
        default=env("SCREENING_TLS_CLIENT_CA"),
        help="PEM CA: require client certificates it signed (mTLS)",
    )
    parser.add_argument(
        "--max-receive-message-bytes",
        type=int,
        default=env("SCREENING_MAX_RECEIVE_MESSAGE_BYTES", str(DEFAULT_MAX_RECEIVE_MESSAGE_BYTES)),
        help="largest request message accepted; larger ones get RESOURCE_EXHAUSTED",
    )
    parser.add_argument(
        "--max-metadata-bytes",
        type=int,
        default=env("SCREENING_MAX_METADATA_BYTES", str(DEFAULT_MAX_METADATA_BYTES)),
        help="largest request metadata (headers) accepted",
    )
    parser.add_argument("--log-level", default=env("SCREENING_LOG_LEVEL", "INFO"), help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument(
        "--log-format",
        default=env("SCREENING_LOG_FORMAT", "text"),
        help="text (one line per event) or json (one object per line)",
    )
    parser.add_argument(
        "--metrics-listen",
        default=env("SCREENING_METRICS_LISTEN"),
        help="HOST:PORT to serve Prometheus metrics at /metrics; unset: off; worker i of --workers uses PORT + i",
    )
    parser.add_argument(
        "--workers",
        default=env("SCREENING_WORKERS", "1"),
        help="server processes sharing the port; auto: one per core",
    )


def parse_workers(value: str) -> int:
    if value.strip().lower() == "auto":
        return len(os.sched_getaffinity(0))
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"--workers {value!r}: expected a number or auto") from None


def from_namespace(args: argparse.Namespace) -> Config:
    return Config(
        listen=args.listen,
        database_url=args.database_url,
        data_dir=Path(args.data_dir),
        default_region=args.default_region,
        shutdown_grace=args.shutdown_grace,
        poll_interval=args.poll_interval,
        tombstone_retention=args.tombstone_retention,
        log_level=args.log_level.upper(),
        auth_file=_path(args.auth_file),
        insecure=args.insecure,
        tls_cert=_path(args.tls_cert),
        tls_key=_path(args.tls_key),
        tls_client_ca=_path(args.tls_client_ca),
        max_receive_message_bytes=args.max_receive_message_bytes,
        max_metadata_bytes=args.max_metadata_bytes,
        max_import_rows=args.max_import_rows,
        log_format=args.log_format.lower(),
        metrics_listen=args.metrics_listen,
        workers=parse_workers(str(args.workers)),
    )


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value)


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Config:
    parser = argparse.ArgumentParser(prog="screening serve")
    add_serve_arguments(parser, os.environ if environ is None else environ)
    return from_namespace(parser.parse_args(argv))

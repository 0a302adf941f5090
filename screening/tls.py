"""Server credentials from --tls-cert, --tls-key and --tls-client-ca."""

from __future__ import annotations

from pathlib import Path

import grpc

from screening.config import Config, ConfigError


def _pem(flag: str, path: Path, kind: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{flag} {str(path)!r}: cannot read: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise ConfigError(f"{flag} {str(path)!r}: expected a PEM {kind}")
    return data


def server_credentials(config: Config) -> grpc.ServerCredentials | None:
    """None: serve plaintext."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    cert = _pem("--tls-cert", config.tls_cert, "certificate")
    key = _pem("--tls-key", config.tls_key, "private key")
    ca = None if config.tls_client_ca is None else _pem("--tls-client-ca", config.tls_client_ca, "CA certificate")
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)

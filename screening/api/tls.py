"""Server credentials from --tls-cert, --tls-key and --tls-client-ca, re-read on reload (SIGHUP)."""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from screening.domain.errors import ConfigError


def _pem(flag: str, path: Path, kind: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{flag} {str(path)!r}: cannot read: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise ConfigError(f"{flag} {str(path)!r}: expected a PEM {kind}")
    return data


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key.
    raise ConfigError("--tls-key: an encrypted private key is not supported; give it unencrypted")


def _check(cert: bytes, key: bytes, ca: bytes | None, paths: tuple[Path, Path, Path | None]) -> None:
    """Refuse what grpc would accept here only to fail every handshake later: a key that is not the certificate's.

    The bytes checked are the bytes grpc is given: reading the files again
    by path could meet a renewal half written between the two reads.
    """
    cert_path, key_path, ca_path = paths
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        with _in_memory(cert) as cert_file, _in_memory(key) as key_file:
            context.load_cert_chain(cert_file, key_file, password=_no_password)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"--tls-cert {str(cert_path)!r} and --tls-key {str(key_path)!r}:"
            f" not a certificate chain and its private key ({exc.reason or exc})"
        ) from None
    if ca is not None:
        try:
            context.load_verify_locations(cadata=ca.decode("ascii", "replace"))
        except ssl.SSLError as exc:
            raise ConfigError(f"--tls-client-ca {str(ca_path)!r}: not a CA certificate ({exc.reason or exc})") from None


@contextlib.contextmanager
def _in_memory(data: bytes) -> Iterator[str]:
    """A path to `data` for ssl, which loads a chain only from paths; a private key never goes to disk for it."""
    if not hasattr(os, "memfd_create"):  # not Linux: a file only we can read, removed at once
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "pem"
            path.touch(mode=0o600)
            path.write_bytes(data)
            yield str(path)
        return
    fd = os.memfd_create("screening-tls", os.MFD_CLOEXEC)
    try:
        with os.fdopen(os.dup(fd), "wb") as out:
            out.write(data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class TLSFiles:
    cert: Path
    key: Path
    # Set: clients must present a certificate this CA signed.
    client_ca: Path | None


class ServerTLS:
    """The server's certificate, key and client CA; `reload()` puts new ones in force for new connections.

    grpc asks `_fetch` at every TLS handshake, on a thread of its own; it
    answers None (no change) unless a reload has left a new configuration.
    Connections already open keep the certificate they were made with.
    """

    def __init__(self, files: TLSFiles) -> None:
        self._files = files
        self._lock = threading.Lock()
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self.credentials = grpc.dynamic_ssl_server_credentials(
            self._read(),
            self._fetch,  # type: ignore[arg-type]  # grpc documents None (keep the current one); the stubs omit it
            require_client_authentication=files.client_ca is not None,
        )

    def _read(self) -> grpc.ServerCertificateConfiguration:
        files = self._files
        cert = _pem("--tls-cert", files.cert, "certificate")
        key = _pem("--tls-key", files.key, "private key")
        ca = None if files.client_ca is None else _pem("--tls-client-ca", files.client_ca, "CA certificate")
        _check(cert, key, ca, (files.cert, files.key, files.client_ca))
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def reload(self) -> None:
        """Re-read the files; unusable ones raise ConfigError and leave the certificate in force as it is."""
        configuration = self._read()
        with self._lock:
            self._pending = configuration

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            pending, self._pending = self._pending, None
        return pending


def server_tls(cert: Path | None, key: Path | None, client_ca: Path | None) -> ServerTLS | None:
    """None: serve plaintext. Raises ConfigError for unusable files."""
    if cert is None or key is None:
        return None
    return ServerTLS(TLSFiles(cert, key, client_ca))

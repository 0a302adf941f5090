"""The gRPC connection of screenctl, and failed calls turned into one-line errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from screening.v1 import screening_pb2_grpc as pb_grpc


class CliError(Exception):
    """A failure screenctl reports in one line and exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass(frozen=True)
class Target:
    server: str
    token: str | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_server_name: str | None = None
    timeout: float = 30.0

    @property
    def secure(self) -> bool:
        return any(v is not None for v in (self.tls_ca, self.tls_cert, self.tls_key))


@dataclass(frozen=True)
class Session:
    channel: grpc.Channel
    admin: pb_grpc.ForbiddenNumberAdminStub
    screening: pb_grpc.ScreeningStub
    # Sent with every call: the token travels as `authorization: Bearer ...`.
    metadata: tuple[tuple[str, str], ...]
    timeout: float


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from None


def _channel(target: Target) -> grpc.Channel:
    if not target.secure:
        return grpc.insecure_channel(target.server)
    if (target.tls_cert is None) != (target.tls_key is None):
        raise CliError("--tls-cert and --tls-key go together (a client certificate and its key, for mTLS)", 2)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=None if target.tls_ca is None else _read(target.tls_ca, "--tls-ca"),
        private_key=None if target.tls_key is None else _read(target.tls_key, "--tls-key"),
        certificate_chain=None if target.tls_cert is None else _read(target.tls_cert, "--tls-cert"),
    )
    options = []
    if target.tls_server_name:
        options.append(("grpc.ssl_target_name_override", target.tls_server_name))
    return grpc.secure_channel(target.server, credentials, options=options)


def describe(error: grpc.RpcError, target: Target) -> str:
    """One line naming what failed: the server's own message where it sent one."""
    code: grpc.StatusCode = error.code()
    details = " ".join(str(error.details() or "").split())
    if code is grpc.StatusCode.UNAVAILABLE and ("failed to connect" in details.lower() or not details):
        hint = "is it running? set --server or SCREENCTL_SERVER"
        if not target.secure and "ssl" in details.lower():
            hint = "does it serve TLS? pass --tls-ca"
        return f"cannot reach the server at {target.server} ({hint}): {details}"
    if code is grpc.StatusCode.DEADLINE_EXCEEDED and not details.startswith("the database"):
        return f"DEADLINE_EXCEEDED: no answer from {target.server} within {target.timeout:g}s (see --timeout)"
    return f"{code.name}: {details}"


@contextlib.contextmanager
def connect(target: Target) -> Iterator[Session]:
    """A session whose failed calls leave as CliError, whatever the call."""
    metadata = (("authorization", f"Bearer {target.token}"),) if target.token else ()
    try:
        with _channel(target) as channel:
            yield Session(
                channel=channel,
                admin=pb_grpc.ForbiddenNumberAdminStub(channel),
                screening=pb_grpc.ScreeningStub(channel),
                metadata=metadata,
                timeout=target.timeout,
            )
    except grpc.RpcError as exc:
        raise CliError(describe(exc, target)) from None

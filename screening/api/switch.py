"""The switch socket: ScreenCall for switches on the same host, on a Unix domain socket, without gRPC.

Why: a ScreenCallStream message through grpc.aio costs the service about
0.3 ms of CPU (grpc's completion queue is polled on a thread of its own that
wakes the event loop for every message read and every message sent); here a
message is one read and one write on the event loop, and the same screening
(ScreeningServicer's hot path: the screener, its metrics, its hit counts).
The measurements: docs/performance.md, integrations/kamailio/docs/switch-cost.md.

Frames, both ways: one byte `kind`, a 4-byte big-endian length, that many bytes.

  client -> service   kind 0  a ScreenCallRequest (protobuf)
                      kind 1  a bearer token (UTF-8), before the first request,
                              when the service has --auth-file
  service -> client   kind 0  a ScreenCallResponse
                      kind N  the call failed with gRPC status code N (3 INVALID_ARGUMENT,
                              16 UNAUTHENTICATED, 7 PERMISSION_DENIED, ...); the body is
                              the status message (UTF-8)

Each request gets one answer, in request order. The token is checked as a
gRPC call to ScreenCallStream would be (the `screen` role, the tenant of
every request); a refused token is the answer to every request after it, and
the connection is closed after the first such answer. A frame the service
cannot read (an unknown kind, longer than MAX_FRAME) closes the connection.
Who may connect at all is the socket file's permissions (0660: the service's
user and group).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import struct
from collections.abc import Callable
from typing import Any

import grpc

from screening.api.auth import Auth
from screening.api.status import to_status
from screening.api.tokens import Token
from screening.api.wire import Request, parse_request
from screening.api.wrapping import Refusal

log = logging.getLogger(__name__)

REQUEST, TOKEN = 0, 1
OK = 0
HEADER = struct.Struct(">BI")
# Far above any ScreenCallRequest: a longer frame is not from a switch speaking this protocol.
MAX_FRAME = 64 * 1024
PATH = "/screening.v1.Screening/ScreenCallStream"
SOCKET_MODE = 0o660
_DECODE_ERROR = grpc.StatusCode.INVALID_ARGUMENT.value[0]
_UNAUTHENTICATED = Refusal(
    grpc.StatusCode.UNAUTHENTICATED,
    f"missing token: the service checks tokens, send one (kind {TOKEN}) before the first request",
)

Screen = Callable[[Request], bytes]  # ScreeningServicer.screen: the encoded response


def frame(kind: int, body: bytes) -> bytes:
    return HEADER.pack(kind, len(body)) + body


def _failure(refusal: Refusal) -> bytes:
    return frame(refusal.code.value[0], refusal.message.encode())


class SwitchProtocol(asyncio.Protocol):
    """One switch connection: frames in, answers out, in order."""

    def __init__(self, screen: Screen, auth: Auth | None, connections: set[SwitchProtocol]) -> None:
        self._screen = screen
        self._auth = auth
        self._connections = connections
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._token: Token | None = None
        # With --auth-file: what every request is answered until a token is accepted.
        self._refusal: Refusal | None = _UNAUTHENTICATED if auth is not None else None
        self._tenant_check: Callable[[Any, Any], Refusal | None] | None = None
        if auth is not None:
            concern = auth.concern(PATH)
            assert concern is not None, f"{PATH} has no authorization rule"
            self._tenant_check = concern.request

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._transport = None

    # The switch stops reading: stop reading its requests too, rather than buffer answers without end.
    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        answers: list[bytes] = []
        start = 0
        end = len(buffer)
        close = False
        while end - start >= 5:
            kind, length = HEADER.unpack_from(buffer, start)
            if length > MAX_FRAME or kind > TOKEN:
                log.warning("switch socket: unreadable frame (kind %d, %d bytes): connection closed", kind, length)
                close = True
                break
            if end - start - 5 < length:
                break
            body = bytes(buffer[start + 5 : start + 5 + length])
            start += 5 + length
            if kind == TOKEN:
                self._accept_token(body)
                continue
            if self._refusal is not None:
                answers.append(_failure(self._refusal))
                close = True
                break
            answers.append(self._answer(body))
        del buffer[:start]
        transport = self._transport
        if transport is None:
            return
        if answers:
            transport.write(b"".join(answers) if len(answers) > 1 else answers[0])
        if close:
            transport.close()

    def _accept_token(self, body: bytes) -> None:
        auth = self._auth
        if auth is None:
            return
        # The same rule a gRPC call to ScreenCallStream meets.
        rule = auth.rule(PATH)
        assert rule is not None, f"{PATH} has no authorization rule"
        transport = self._transport
        peer = transport.get_extra_info("peername") if transport is not None else ""
        found = auth.identify(rule, [("authorization", "Bearer " + body.decode(errors="replace"))], lambda: str(peer))
        if type(found) is Token:
            self._token, self._refusal = found, None
        else:
            assert isinstance(found, Refusal)
            self._token, self._refusal = None, found

    def _answer(self, body: bytes) -> bytes:
        try:
            request = parse_request(body)
        except Exception as exc:  # noqa: BLE001  # protobuf's DecodeError and kin
            message = f"request: the message could not be decoded ({type(exc).__name__}: {str(exc)[:200]})"
            return frame(_DECODE_ERROR, message.encode())
        if self._tenant_check is not None:
            refusal = self._tenant_check(self._token, request)
            if refusal is not None:
                return _failure(refusal)
        try:
            response = self._screen(request)
        except Exception as exc:  # noqa: BLE001  # every request gets an answer, a status for what went wrong
            status = to_status(exc)
            return frame(status.code.value[0], status.details.encode())
        return frame(OK, response)


async def _answered(path: str) -> bool:
    """Whether some process accepts connections on the socket at `path` (a file left by a crash refuses them)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), 1.0)
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
        return False
    except OSError as exc:
        # Not a socket, or not ours to open: binding there fails on its own, with its own reason. Anything
        # else (no answer within the second, a full backlog) is a listener, however busy or frozen.
        return exc.errno not in (errno.ENOTSOCK, errno.EACCES, errno.EPERM)
    writer.close()
    return True


class SwitchServer:
    """The listening socket and its connections."""

    def __init__(self, path: str, screen: Screen, auth: Auth | None) -> None:
        self.path = path
        self._screen = screen
        self._auth = auth
        self._connections: set[SwitchProtocol] = set()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if await _answered(self.path):
            # asyncio would replace the socket file of a running service too: its switches would move
            # here silently, and its stop would then remove this service's socket file.
            raise OSError(errno.EADDRINUSE, f"another process is listening on {self.path}")
        loop = asyncio.get_running_loop()
        screen, auth, connections = self._screen, self._auth, self._connections
        # A socket file left by a previous run is replaced (asyncio removes a stale socket at this path).
        self._server = await loop.create_unix_server(
            lambda: SwitchProtocol(screen, auth, connections), path=self.path, backlog=128
        )
        os.chmod(self.path, SOCKET_MODE)

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def stop(self) -> None:
        """Stop listening and close every connection (answers already written are sent first)."""
        if self._server is None:
            return
        self._server.close()
        for connection in list(self._connections):
            connection.close()
        await self._server.wait_closed()
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

"""The switch socket: ScreenCall for switches on the same host, on a Unix domain socket, without gRPC.

Why: a ScreenCallStream message through grpc.aio costs the service about
0.3 ms of CPU (grpc's completion queue is polled on a thread of its own that
wakes the event loop for every message read and every message sent); here a
message is one read and one write on the event loop, on the socket itself
(`loop.add_reader`: asyncio's transports and protocols cost a call about as
much again as the rest), and the same screening (ScreeningServicer's hot
path: the screener, its metrics, its hit counts).
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
import socket
import stat
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
BACKLOG = 128
# A read takes what a switch has sent, up to this (many pipelined requests at most).
RECEIVE = 65_536
ACCEPT_RETRY_S = 1.0
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


class SwitchConnection:
    """One switch's frames in, its answers out, in order. No I/O: SwitchServer reads and writes."""

    __slots__ = ("_auth", "_buffer", "_refusal", "_screen", "_tenant_check", "_token", "finished")

    def __init__(self, screen: Screen, auth: Auth | None) -> None:
        self._screen = screen
        self._auth = auth
        self._buffer = bytearray()
        self._token: Token | None = None
        # With --auth-file: what every request is answered until a token is accepted.
        self._refusal: Refusal | None = _UNAUTHENTICATED if auth is not None else None
        self._tenant_check: Callable[[Any, Any], Refusal | None] | None = None
        if auth is not None:
            concern = auth.concern(PATH)
            assert concern is not None, f"{PATH} has no authorization rule"
            self._tenant_check = concern.request
        # The connection is to be closed once the answers so far are sent.
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        """The answers to the requests `data` completes (b"" for none); sets `finished` when the connection ends."""
        if not self._buffer and self._refusal is None and len(data) >= 5:
            # A switch waits for each answer before it asks again: mostly `data` is one whole request.
            kind, length = HEADER.unpack_from(data)
            if kind == REQUEST and len(data) == 5 + length:
                return self._answer(data[5:])
        buffer = self._buffer
        buffer += data
        answers: list[bytes] = []
        start = 0
        end = len(buffer)
        while end - start >= 5:
            kind, length = HEADER.unpack_from(buffer, start)
            if length > MAX_FRAME or kind > TOKEN:
                log.warning("switch socket: unreadable frame (kind %d, %d bytes): connection closed", kind, length)
                self.finished = True
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
                self.finished = True
                break
            answers.append(self._answer(body))
        if self.finished:
            buffer.clear()
        else:
            del buffer[:start]
        return b"".join(answers)

    def _accept_token(self, body: bytes) -> None:
        auth = self._auth
        if auth is None:
            return
        # The same rule a gRPC call to ScreenCallStream meets.
        rule = auth.rule(PATH)
        assert rule is not None, f"{PATH} has no authorization rule"
        # A Unix socket's peer has no address: the throttle counts failures from every switch together.
        found = auth.identify(rule, [("authorization", "Bearer " + body.decode(errors="replace"))])
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


class _Link:
    """A switch's socket on the event loop: read when readable, answer at once, and stop reading while an
    answer waits to be written (a switch that stops reading gets no more answered)."""

    __slots__ = ("_connection", "_fd", "_links", "_loop", "_pending", "_sock")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, connection: SwitchConnection, links: set[_Link]
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._connection = connection
        self._links = links
        self._pending = bytearray()
        links.add(self)
        loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        try:
            data = self._sock.recv(RECEIVE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not data:
            self.close()
            return
        connection = self._connection
        answers = connection.feed(data)
        if answers:
            self._send(answers)
        if connection.finished and not self._pending:
            self.close()

    def _send(self, data: bytes) -> None:
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.close()
            return
        if sent < len(data):
            self._pending += data[sent:]
            self._loop.remove_reader(self._fd)
            self._loop.add_writer(self._fd, self._writable)

    def _writable(self) -> None:
        try:
            sent = self._sock.send(self._pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        del self._pending[:sent]
        if self._pending:
            return
        self._loop.remove_writer(self._fd)
        if self._connection.finished:
            self.close()
        else:
            self._loop.add_reader(self._fd, self._readable)

    def close(self) -> None:
        if self._fd < 0:
            return
        if self._pending:
            # Stopping: what is owed goes out if the switch's socket takes it now.
            with contextlib.suppress(OSError):
                self._sock.send(self._pending)
            self._loop.remove_writer(self._fd)
        else:
            self._loop.remove_reader(self._fd)
        self._links.discard(self)
        self._fd = -1
        self._sock.close()


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
    """The listening socket and its connections, read and written on the event loop without asyncio's
    transports: a call costs the service about half as much CPU (docs/performance.md)."""

    def __init__(self, path: str, screen: Screen, auth: Auth | None) -> None:
        self.path = path
        self._screen = screen
        self._auth = auth
        self._links: set[_Link] = set()
        self._listener: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._retry: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        if await _answered(self.path):
            # Binding over the socket file of a running service would move its switches here silently,
            # and its stop would then remove this service's socket file.
            raise OSError(errno.EADDRINUSE, f"another process is listening on {self.path}")
        with contextlib.suppress(FileNotFoundError):
            # A socket file left by a previous run: nobody answers on it (checked above).
            if stat.S_ISSOCK(os.stat(self.path).st_mode):
                os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.path)
            os.chmod(self.path, SOCKET_MODE)
            listener.listen(BACKLOG)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(listener.fileno(), self._accept)

    def _accept(self) -> None:
        listener, loop = self._listener, self._loop
        assert listener is not None and loop is not None
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                # Out of file descriptors, say: pause accepting for a second rather than spin on it.
                log.warning("switch socket: cannot accept a connection: %s; trying again in 1 s", exc)
                loop.remove_reader(listener.fileno())
                self._retry = loop.call_later(ACCEPT_RETRY_S, self._resume_accepting)
                return
            sock.setblocking(False)
            _Link(loop, sock, SwitchConnection(self._screen, self._auth), self._links)

    def _resume_accepting(self) -> None:
        self._retry = None
        if self._listener is not None and self._loop is not None:
            self._loop.add_reader(self._listener.fileno(), self._accept)

    @property
    def connections(self) -> int:
        return len(self._links)

    async def stop(self) -> None:
        """Stop listening and close every connection (answers already written are sent first)."""
        listener, loop = self._listener, self._loop
        if listener is None or loop is None:
            return
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        else:
            loop.remove_reader(listener.fileno())
        listener.close()
        self._listener = None
        for link in list(self._links):
            link.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

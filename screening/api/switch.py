"""The switch socket: ScreenCall for switches on the same host, on a Unix domain socket, without gRPC.

Why: a ScreenCallStream message through grpc.aio costs the service about
0.3 ms of CPU (grpc's completion queue is polled on a thread of its own that
wakes the event loop for every message read and every message sent). Here a
thread of the switch socket's own reads a request, screens it (the same
screening: ScreeningServicer's hot path, its metrics and hit counts) and
writes the answer, without waking the event loop: asyncio's turn and its
transports cost a call about as much again as the rest. It screens only
between two turns of the loop (LoopGate), so screening state is never seen
half changed by the loop's own work.
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
import select
import selectors
import socket
import stat
import struct
import threading
import time
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


class LoopGate:
    """A lock the event loop's thread holds except while it waits in select(): another thread that holds it
    runs between two turns of the loop, as a callback on the loop would, but without waking the loop.

    So the switch thread's screening never interleaves with the loop's own work (a change set half
    applied, hit counts being swapped out): screening state stays single-threaded, as it is for gRPC.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # asyncio's selector event loops wait in their selector's select(); the service runs on one.
        selector = getattr(loop, "_selector", None)
        if not isinstance(selector, selectors.BaseSelector):
            raise TypeError(f"the switch socket needs asyncio's selector event loop, not {type(loop).__name__}")
        self._selector = selector
        self._lock = threading.Lock()
        self._active = True
        self._previous = selector.__dict__.get("select")
        waiting = selector.select
        lock = self._lock

        def select(timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            if not self._active:
                return waiting(timeout)
            lock.release()
            try:
                return waiting(timeout)
            finally:
                lock.acquire()

        self._select = select
        self._lock.acquire()
        selector.select = select  # type: ignore[method-assign]

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *_exc: object) -> None:
        self._lock.release()

    def remove(self) -> None:
        """On the loop's thread: the loop waits as before."""
        self._active = False
        self._lock.release()
        if self._selector.__dict__.get("select") is self._select:
            # Not wrapped again since (another server's gate on the same loop): undone; else passed through.
            if self._previous is None:
                del self._selector.select
            else:
                self._selector.select = self._previous  # type: ignore[method-assign]


class _Link:
    """A switch's socket, served by the switch thread: read when readable, answer at once, and stop reading
    while an answer waits to be written (a switch that stops reading gets no more answered)."""

    __slots__ = ("_connection", "_epoll", "_pending", "_sock", "fd")

    def __init__(self, sock: socket.socket, connection: SwitchConnection, epoll: select.epoll) -> None:
        self._sock = sock
        self.fd = sock.fileno()
        self._connection = connection
        self._epoll = epoll
        self._pending = bytearray()
        epoll.register(self.fd, select.EPOLLIN)

    def ready(self, events: int, gate: LoopGate) -> bool:
        """Read or write as the socket allows; False when the connection is over (closed)."""
        if self._pending:
            return self._writable() if events & (select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP) else True
        try:
            data = self._sock.recv(RECEIVE)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return self.close()
        if not data:
            return self.close()
        connection = self._connection
        with gate:
            answers = connection.feed(data)
        if answers and not self._send(answers):
            return False
        if connection.finished and not self._pending:
            return self.close()
        return True

    def _send(self, data: bytes) -> bool:
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            return self.close()
        if sent < len(data):
            self._pending += data[sent:]
            self._epoll.modify(self.fd, select.EPOLLOUT)
        return True

    def _writable(self) -> bool:
        try:
            sent = self._sock.send(self._pending)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return self.close()
        del self._pending[:sent]
        if self._pending:
            return True
        if self._connection.finished:
            return self.close()
        self._epoll.modify(self.fd, select.EPOLLIN)
        return True

    def close(self) -> bool:
        if self._pending:
            # Stopping: what is owed goes out if the switch's socket takes it now.
            with contextlib.suppress(OSError):
                self._sock.send(self._pending)
        with contextlib.suppress(OSError, ValueError):
            self._epoll.unregister(self.fd)
        self._sock.close()
        return False


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
    """The listening socket and its connections, served by a thread of their own that screens between two
    turns of the event loop (LoopGate): a call wakes neither the loop nor asyncio's transports, and costs the
    service about a third less CPU than on the loop (docs/performance.md)."""

    def __init__(self, path: str, screen: Screen, auth: Auth | None) -> None:
        self.path = path
        self._screen = screen
        self._auth = auth
        self._links: dict[int, _Link] = {}
        self._listener: socket.socket | None = None
        self._gate: LoopGate | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._thread: threading.Thread | None = None

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
        self._gate = LoopGate(asyncio.get_running_loop())
        self._wake = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="switch-socket", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            self._serve_until_woken()
        except Exception:
            # Not expected. Said loudly, and every connection closed and none taken, so that switches apply
            # their failure policy at once rather than wait for answers that will not come.
            log.critical("switch socket: its thread failed; switches get no answers until a restart", exc_info=True)
            for link in list(self._links.values()):
                link.close()
            self._links.clear()
            if self._listener is not None:
                self._listener.close()

    def _serve_until_woken(self) -> None:
        listener, gate, wake = self._listener, self._gate, self._wake
        assert listener is not None and gate is not None and wake is not None
        links = self._links
        with select.epoll() as epoll:
            epoll.register(listener.fileno(), select.EPOLLIN)
            epoll.register(wake[0].fileno(), select.EPOLLIN)
            paused_until = 0.0
            while True:
                timeout = max(paused_until - time.monotonic(), 0.0) if paused_until else -1
                if paused_until and not timeout:
                    paused_until = 0.0
                    epoll.register(listener.fileno(), select.EPOLLIN)
                    timeout = -1
                for fd, events in epoll.poll(timeout):
                    if fd == wake[0].fileno():
                        for link in list(links.values()):
                            link.close()
                        links.clear()
                        return
                    if fd == listener.fileno():
                        if not self._accept(listener, epoll):
                            # Out of file descriptors, say: pause accepting a second rather than spin on it.
                            epoll.unregister(listener.fileno())
                            paused_until = time.monotonic() + ACCEPT_RETRY_S
                        continue
                    ready = links.get(fd)
                    if ready is None:
                        continue
                    try:
                        alive = ready.ready(events, gate)
                    except Exception:
                        log.exception("switch socket: a connection failed; closed")
                        alive = ready.close()
                    if not alive:
                        del links[fd]

    def _accept(self, listener: socket.socket, epoll: select.epoll) -> bool:
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return True
            except OSError as exc:
                log.warning("switch socket: cannot accept a connection: %s; trying again in 1 s", exc)
                return False
            sock.setblocking(False)
            link = _Link(sock, SwitchConnection(self._screen, self._auth), epoll)
            self._links[link.fd] = link

    @property
    def connections(self) -> int:
        return len(self._links)

    async def stop(self) -> None:
        """Stop listening and close every connection (answers already written are sent first)."""
        listener, gate, wake, thread = self._listener, self._gate, self._wake, self._thread
        if listener is None or gate is None or wake is None or thread is None:
            return
        wake[1].send(b"x")
        # Joined off the loop's thread: waiting in select, the loop lets a last screening through the gate.
        await asyncio.to_thread(thread.join)
        gate.remove()
        for end in (listener, *wake):
            end.close()
        self._listener = self._gate = self._wake = self._thread = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

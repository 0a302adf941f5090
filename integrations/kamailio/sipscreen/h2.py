"""ScreenCallStream over one HTTP/2 connection, on a blocking socket, with nothing in between.

Why not grpcio in the worker: a unary ScreenCall through grpcio costs a
Kamailio worker several times what this client does, and the service about
twice what a message on a long-lived ScreenCallStream costs it; grpcio also
runs threads of its own in every worker. Here a call is one sendall() of a
ready frame and one recv() of the answer. The measurements:
integrations/kamailio/docs/switch-cost.md.

What it speaks is the small part of HTTP/2 (RFC 9113) and gRPC's framing that a
client of one bidirectional stream needs: the preface and SETTINGS (ACKed),
one HEADERS to open the stream, DATA frames each carrying one gRPC message,
PING answered, WINDOW_UPDATE both ways (it grants the service the largest
windows at once and tops them up), and the end of the stream or connection
(trailers, RST_STREAM, GOAWAY, EOF) turned into an error. HPACK: it sends
literals without indexing and reads the service's header blocks only to find
grpc-status and grpc-message in trailers (Huffman-coded values are reported
as such, not decoded). The stream answers in request order, so a request
whose answer came too late is remembered and its answer skipped.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import time
from dataclasses import dataclass

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_FRAME = struct.Struct(">I B I")  # length(24) and type packed in the first word, flags, stream
_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _PING, _GOAWAY, _WINDOW_UPDATE, _CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
_END_STREAM, _ACK, _END_HEADERS, _PADDED, _PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
_STREAM = 1  # the one stream of a connection
_MAX_WINDOW = 2**31 - 1
_DEFAULT_WINDOW = 65_535
# Grant the service this much more once it has used half of it.
_TOPUP = 2**30
_SETTINGS_INITIAL_WINDOW_SIZE = 4
_SETTINGS_ENABLE_PUSH = 2
# Answers given up on (deadline passed) that a connection may still owe; one more and
# it is replaced: a peer that vanished without a reset would otherwise keep every call waiting.
MAX_STALE = 2

# RFC 7541 Appendix A: the names of the static table, for reading trailers.
_STATIC_NAMES = (
    "",
    ":authority",
    ":method",
    ":method",
    ":path",
    ":path",
    ":scheme",
    ":scheme",
    *([":status"] * 7),
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "accept",
    "access-control-allow-origin",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-range",
    "content-type",
    "cookie",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "link",
    "location",
    "max-forwards",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "refresh",
    "retry-after",
    "server",
    "set-cookie",
    "strict-transport-security",
    "transfer-encoding",
    "user-agent",
    "vary",
    "via",
    "www-authenticate",
)


class StreamError(Exception):
    """The stream or its connection is gone or unusable; `code` is a gRPC status name."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


class Timeout(StreamError):
    def __init__(self) -> None:
        super().__init__("DEADLINE_EXCEEDED", "no answer within the deadline")


@dataclass(frozen=True, slots=True)
class Target:
    """Where the service listens: "HOST:PORT" ("[v6]:PORT")."""

    address: str
    family: int
    host: str
    port: int

    @classmethod
    def parse(cls, target: str) -> Target:
        host, sep, port = target.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{target!r}: expected HOST:PORT")
        host = host.strip("[]")
        return cls(target, socket.AF_INET6 if ":" in host else socket.AF_INET, host, int(port))


def _integer(block: bytes, pos: int, prefix: int) -> tuple[int, int]:
    mask = (1 << prefix) - 1
    value = block[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while True:
        byte = block[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _string(block: bytes, pos: int) -> tuple[str, int]:
    huffman = block[pos] & 0x80
    length, pos = _integer(block, pos, 7)
    raw = block[pos : pos + length]
    return ("<huffman-coded>" if huffman else raw.decode("latin-1")), pos + length


def read_trailers(block: bytes, dynamic: list[tuple[str, str]]) -> dict[str, str]:
    """The headers of one HPACK block, as far as they can be read without Huffman decoding.

    `dynamic` is the connection's dynamic table (newest first), updated in place.
    """
    headers: dict[str, str] = {}
    pos = 0
    while pos < len(block):
        byte = block[pos]
        if byte & 0x80:  # indexed field
            index, pos = _integer(block, pos, 7)
            name, value = _entry(index, dynamic)
            headers[name] = value
            continue
        if byte & 0xE0 == 0x20:  # dynamic table size update
            size, pos = _integer(block, pos, 5)
            if size == 0:
                dynamic.clear()
            continue
        incremental = byte & 0xC0 == 0x40
        index, pos = _integer(block, pos, 6 if incremental else 4)
        if index:
            name = _entry(index, dynamic)[0]
        else:
            name, pos = _string(block, pos)
        value, pos = _string(block, pos)
        headers[name] = value
        if incremental:
            dynamic.insert(0, (name, value))
            # Evicted as the service's encoder does: our table is the default 4096 bytes (RFC 7541 4.1).
            size = 0
            for kept, (n, v) in enumerate(dynamic):
                size += len(n) + len(v) + 32
                if size > 4096:
                    del dynamic[kept:]
                    break
    return headers


def _entry(index: int, dynamic: list[tuple[str, str]]) -> tuple[str, str]:
    if index < len(_STATIC_NAMES):
        return _STATIC_NAMES[index], ""
    offset = index - len(_STATIC_NAMES)
    return dynamic[offset] if offset < len(dynamic) else ("?", "?")


def _literal(name: str | int, value: str) -> bytes:
    """A header field as a literal without indexing (RFC 7541 6.2.2), never Huffman-coded."""
    encoded = value.encode()
    out = bytearray()
    if isinstance(name, int):
        out += _prefixed(name, 4, 0x00)
    else:
        out.append(0x00)
        out += _prefixed(len(name), 7, 0x00) + name.encode()
    out += _prefixed(len(encoded), 7, 0x00) + encoded
    return bytes(out)


def _prefixed(value: int, prefix: int, flags: int) -> bytes:
    mask = (1 << prefix) - 1
    if value < mask:
        return bytes([flags | value])
    out = bytearray([flags | mask])
    value -= mask
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return _FRAME.pack(len(payload) << 8 | kind, flags, stream) + payload


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca: bytes
    cert: bytes | None
    key: bytes | None
    server_name: str


def _tls_context(tls: TlsFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=tls.ca.decode())
    context.set_alpn_protocols(["h2"])
    if tls.cert is not None and tls.key is not None:
        # load_cert_chain reads files: hand it the PEM bytes through memory-only files.
        fds = [os.memfd_create(name, 0) for name in ("cert", "key")]
        try:
            for fd, pem in zip(fds, (tls.cert, tls.key), strict=True):
                os.write(fd, pem)
            context.load_cert_chain(f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}")
        finally:
            for fd in fds:
                os.close(fd)
    return context


class ProcessSocket:
    """A connection owned by the process that opened it: after a fork the child forgets it, never closes it."""

    _sock: socket.socket | None = None
    _pid = 0

    def close(self) -> None:
        if self._sock is not None and self._pid == os.getpid():
            # Inherited across a fork, the socket is the parent's: only forget it.
            self._sock.close()
        self._sock = None

    @property
    def connected(self) -> bool:
        return self._sock is not None and self._pid == os.getpid()


class Stream(ProcessSocket):
    """One connection and its one ScreenCallStream, used by one thread (a Kamailio worker)."""

    def __init__(
        self,
        target: str,
        *,
        path: str = "/screening.v1.Screening/ScreenCallStream",
        token: str = "",
        tls: TlsFiles | None = None,
    ) -> None:
        self.target = Target.parse(target)
        self._tls = _tls_context(tls) if tls is not None else None
        self._server_name = (tls.server_name if tls else "") or self.target.host
        fields = [
            b"\x83",  # :method POST (static 3)
            b"\x87" if tls else b"\x86",  # :scheme https / http (static 7 / 6)
            _literal(4, path),
            _literal(1, self.target.address),
            _literal(31, "application/grpc"),
            _literal("te", "trailers"),
        ]
        if token:
            fields.append(_literal(23, f"Bearer {token}"))
        self._opening = (
            _PREFACE
            + _frame(
                _SETTINGS,
                0,
                0,
                struct.pack(">HI", _SETTINGS_ENABLE_PUSH, 0)
                + struct.pack(">HI", _SETTINGS_INITIAL_WINDOW_SIZE, _MAX_WINDOW),
            )
            + _frame(_WINDOW_UPDATE, 0, 0, struct.pack(">I", _MAX_WINDOW - _DEFAULT_WINDOW))
            + _frame(_HEADERS, _END_HEADERS, _STREAM, b"".join(fields))
        )
        self._sock: socket.socket | None = None
        self._pid = 0
        self._buffer = bytearray()
        self._messages = bytearray()  # gRPC-framed bytes of DATA frames not yet taken apart
        self._stale = 0
        self._send_connection = _DEFAULT_WINDOW
        self._send_stream = _DEFAULT_WINDOW
        self._initial_send = _DEFAULT_WINDOW
        self._received = 0
        self._dynamic: list[tuple[str, str]] = []
        self._header_block = bytearray()
        self._header_end = False
        self._going_away = False

    # -- connection -----------------------------------------------------------------

    def connect(self, within: float) -> None:
        """Open the connection and the stream; raises StreamError."""
        self.close()
        target = self.target
        sock = socket.socket(target.family, socket.SOCK_STREAM)
        try:
            sock.settimeout(within)
            sock.connect((target.host, target.port))
            # One small frame per call: never wait to coalesce it.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self._server_name)
            sock.sendall(self._opening)
        except ssl.SSLError as exc:
            sock.close()
            raise StreamError("UNAVAILABLE", f"TLS with {target.address}: {exc}") from exc
        except OSError as exc:
            sock.close()
            raise StreamError("UNAVAILABLE", f"{target.address}: {exc.strerror or exc}") from exc
        self._sock = sock
        self._pid = os.getpid()
        self._buffer.clear()
        self._messages.clear()
        self._stale = 0
        self._send_connection = self._send_stream = self._initial_send = _DEFAULT_WINDOW
        self._received = 0
        self._dynamic.clear()
        self._header_block.clear()
        self._going_away = False

    # -- one call -------------------------------------------------------------------

    def call(self, request: bytes, deadline: float) -> bytes:
        """Send one serialized request; the serialized answer to it. `deadline` is a monotonic time."""
        if not self.connected:
            self.connect(max(deadline - time.monotonic(), 0.001))
        else:
            # While idle the service may have sent PINGs, SETTINGS, GOAWAY, or closed.
            self._drain()
            if not self.connected:
                self.connect(max(deadline - time.monotonic(), 0.001))
        sock = self._sock
        assert sock is not None
        size = len(request) + 5
        while self._send_connection < size or self._send_stream < size:
            self._read_frames(deadline)
        self._send_connection -= size
        self._send_stream -= size
        try:
            sock.sendall(_frame(_DATA, 0, _STREAM, b"\x00" + struct.pack(">I", len(request)) + request))
        except OSError as exc:
            self.close()
            raise StreamError("UNAVAILABLE", f"{self.target.address}: {exc.strerror or exc}") from exc
        self._stale += 1
        while True:
            message = self._message(deadline)
            self._stale -= 1
            if not self._stale:
                if self._going_away:
                    # Answered after a GOAWAY: the next call opens a new connection.
                    self.close()
                return message

    def _message(self, deadline: float) -> bytes:
        messages = self._messages
        while True:
            if len(messages) >= 5:
                length = int.from_bytes(messages[1:5], "big")
                if len(messages) >= 5 + length:
                    message = bytes(messages[5 : 5 + length])
                    del messages[: 5 + length]
                    return message
            self._read_frames(deadline)

    def abandon(self) -> None:
        """After a timeout: the answer owed is skipped when it comes; too many owed, start over."""
        if self._stale > MAX_STALE:
            self.close()

    # -- frames ---------------------------------------------------------------------

    def _drain(self) -> None:
        """Handle what arrived while idle, without waiting; closes a connection found dead."""
        sock = self._sock
        assert sock is not None
        # Non-blocking: with a timeout set, even MSG_DONTWAIT would wait for data first.
        sock.settimeout(0.0)
        try:
            while True:
                chunk = sock.recv(65_536)
                if not chunk:
                    self.close()
                    return
                self._buffer += chunk
                self._parse()
                if not self.connected:
                    return
        except (BlockingIOError, ssl.SSLWantReadError):
            pass
        except (StreamError, OSError):
            self.close()

    def _read_frames(self, deadline: float) -> None:
        """Wait for more bytes (until `deadline`) and handle every whole frame among them."""
        sock = self._sock
        if sock is None:
            raise StreamError("UNAVAILABLE", "connection closed")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout()
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65_536)
        except TimeoutError:
            raise Timeout() from None
        except OSError as exc:
            self.close()
            raise StreamError("UNAVAILABLE", f"{self.target.address}: {exc.strerror or exc}") from exc
        if not chunk:
            self.close()
            raise StreamError("UNAVAILABLE", f"{self.target.address} closed the connection")
        self._buffer += chunk
        try:
            self._parse()
        except StreamError:
            self.close()
            raise

    def _parse(self) -> None:
        buffer = self._buffer
        sock = self._sock
        assert sock is not None
        replies = bytearray()
        while len(buffer) >= 9:
            word, flags, stream = _FRAME.unpack_from(buffer)
            length, kind = word >> 8, word & 0xFF
            if len(buffer) < 9 + length:
                break
            payload = bytes(buffer[9 : 9 + length])
            del buffer[: 9 + length]
            if kind == _DATA:
                if flags & _PADDED:
                    payload = payload[1 : len(payload) - payload[0]]
                self._messages += payload
                self._received += length
                if self._received >= _TOPUP:
                    increment = struct.pack(">I", self._received)
                    replies += _frame(_WINDOW_UPDATE, 0, 0, increment) + _frame(_WINDOW_UPDATE, 0, _STREAM, increment)
                    self._received = 0
                if flags & _END_STREAM:
                    raise StreamError("UNAVAILABLE", "the service ended the stream")
            elif kind in (_HEADERS, _CONTINUATION):
                if kind == _HEADERS:
                    if flags & _PADDED:
                        payload = payload[1 : len(payload) - payload[0]]
                    if flags & _PRIORITY:
                        payload = payload[5:]
                    self._header_block = bytearray(payload)
                    self._header_end = bool(flags & _END_STREAM)
                else:
                    self._header_block += payload
                if flags & _END_HEADERS:
                    headers = read_trailers(bytes(self._header_block), self._dynamic)
                    if self._header_end or "grpc-status" in headers:
                        raise _ended(headers)
            elif kind == _SETTINGS:
                if not flags & _ACK:
                    for offset in range(0, len(payload) - 5, 6):
                        key, value = struct.unpack_from(">HI", payload, offset)
                        if key == _SETTINGS_INITIAL_WINDOW_SIZE:
                            self._send_stream += value - self._initial_send
                            self._initial_send = value
                    replies += _frame(_SETTINGS, _ACK, 0, b"")
            elif kind == _PING:
                if not flags & _ACK:
                    replies += _frame(_PING, _ACK, 0, payload)
            elif kind == _WINDOW_UPDATE:
                increment = struct.unpack(">I", payload)[0] & 0x7FFFFFFF
                if stream == 0:
                    self._send_connection += increment
                else:
                    self._send_stream += increment
            elif kind == _RST_STREAM:
                raise StreamError("UNAVAILABLE", f"the service reset the stream (error {payload.hex()})")
            elif kind == _GOAWAY:
                if struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF < _STREAM:
                    raise StreamError("UNAVAILABLE", f"the service is going away (GOAWAY {payload[4:8].hex()})")
                # Our stream may still be answered; no new one goes on this connection.
                self._going_away = True
        if replies:
            sock.sendall(replies)


def _ended(headers: dict[str, str]) -> StreamError:
    status = headers.get("grpc-status", "")
    names = {
        "1": "CANCELLED",
        "2": "UNKNOWN",
        "3": "INVALID_ARGUMENT",
        "4": "DEADLINE_EXCEEDED",
        "7": "PERMISSION_DENIED",
        "8": "RESOURCE_EXHAUSTED",
        "12": "UNIMPLEMENTED",
        "13": "INTERNAL",
        "14": "UNAVAILABLE",
        "16": "UNAUTHENTICATED",
    }
    return StreamError(names.get(status, f"status {status or '?'}"), headers.get("grpc-message", ""))

"""ScreenCall's two messages written and read by hand, and the client of the service's switch socket.

The messages: a ScreenCallRequest is four fields, and of a ScreenCallResponse
the router reads four; protobuf's own encoder costs a worker more than these
few lines, and without it Kamailio loads no compiled package of the service's
virtualenv. Field numbers are screening.proto's (checked against protobuf by
e2e/test_wire.py).

The switch socket (`screening serve --switch-listen unix:PATH`, the protocol
in screening/api/switch.py): frames of one byte kind, four bytes length, the
bytes; a request is one send() and its answer one recv(), on a socket to a
service on the same host, with no HTTP/2 or gRPC framing and no thread of
grpc's on the service's side. Answers come in request order, so an answer
that missed its deadline is skipped when it comes, as on the HTTP/2 stream.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from typing import NamedTuple

from sipscreen.h2 import MAX_STALE, ProcessSocket, StreamError, Timeout

DIRECTION_INBOUND, DIRECTION_OUTBOUND = 1, 2
VERDICT_ALLOW, VERDICT_BLOCK = 1, 2
MATCH_KIND_EXACT, MATCH_KIND_PREFIX = 1, 2

REQUEST, TOKEN = 0, 1
_HEADER = struct.Struct(">BI")
# gRPC status codes by number, for the switch socket's failure answers.
CODES = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    16: "UNAUTHENTICATED",
}


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _text(tag: int, value: str) -> bytes:
    if not value:
        return b""  # proto3: an empty string is not sent
    data = value.encode()
    return bytes((tag,)) + _varint(len(data)) + data


def encode_request(tenant_id: str, number: str, direction: int, call_id: str) -> bytes:
    """ScreenCallRequest{tenant_id=1, number=2, direction=3, call_id=4} as protobuf writes it."""
    return (
        _text(0x0A, tenant_id)
        + _text(0x12, number)
        + (bytes((0x18, direction)) if direction else b"")
        + _text(0x22, call_id)
    )


class Answer(NamedTuple):
    verdict: int
    matched_id: str
    matched_number: str
    matched_kind: int


def decode_response(data: bytes) -> Answer:
    """The verdict=1, matched_id=3, matched_number=4 and matched_kind=5 of a ScreenCallResponse; skips the rest."""
    verdict = kind = 0
    matched_id = matched_number = ""
    pos, end = 0, len(data)
    while pos < end:
        # Keys, sizes and enums of one byte are the rule: read inline, without a call.
        key = data[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = _read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            if pos < end and data[pos] < 0x80:
                value = data[pos]
                pos += 1
            else:
                value, pos = _read_varint(data, pos)
            if field == 1:
                verdict = _enum(value)
            elif field == 5:
                kind = _enum(value)
        elif wire == 2:
            if pos < end and data[pos] < 0x80:
                length = data[pos]
                pos += 1
            else:
                length, pos = _read_varint(data, pos)
            if pos + length > end:
                raise ValueError("ScreenCallResponse: a field runs past the end")
            if field == 3:
                matched_id = data[pos : pos + length].decode()
            elif field == 4:
                matched_number = data[pos : pos + length].decode()
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"ScreenCallResponse: wire type {wire}")
    if pos > end:
        raise ValueError("ScreenCallResponse: truncated")
    return Answer(verdict, matched_id, matched_number, kind)


def _enum(value: int) -> int:
    """An enum field's varint as protobuf reads it: its low 32 bits, as a signed int32."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("ScreenCallResponse: a bad varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


class SwitchSocket(ProcessSocket):
    """One connection to the switch socket, used by one thread (a Kamailio worker); the interface of h2.Stream."""

    def __init__(self, path: str, *, token: str = "") -> None:
        self.path = path
        self._hello = _HEADER.pack(TOKEN, len(token.encode())) + token.encode() if token else b""
        self._sock: socket.socket | None = None
        self._poll = select.poll()
        self._pid = 0
        self._buffer = bytearray()
        self._stale = 0

    def connect(self, within: float) -> None:
        self.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(within)
            sock.connect(self.path)
            if self._hello:
                sock.sendall(self._hello)
        except OSError as exc:
            sock.close()
            raise StreamError("UNAVAILABLE", f"{self.path}: {exc.strerror or exc}") from exc
        # Non-blocking from here: poll() waits, with the call's deadline.
        sock.setblocking(False)
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)
        self._sock = sock
        self._pid = os.getpid()
        self._buffer.clear()
        self._stale = 0

    def call(self, request: bytes, deadline: float) -> bytes:
        """Send one serialized request; the serialized answer to it. `deadline` is a monotonic time."""
        frame = _HEADER.pack(REQUEST, len(request)) + request
        if not self.connected:
            self.connect(max(deadline - time.monotonic(), 0.001))
        sock = self._sock
        assert sock is not None
        try:
            sent = sock.send(frame, socket.MSG_NOSIGNAL)
        except OSError:
            # The service went away since the last call (restarted, say): one new connection.
            self.connect(max(deadline - time.monotonic(), 0.001))
            sock = self._sock
            assert sock is not None
            sent = self._send(sock, frame)
        if sent < len(frame):
            self._send(sock, frame[sent:])
        self._stale += 1
        while True:
            kind, body = self._answer(deadline)
            self._stale -= 1
            if not self._stale:
                if kind:
                    code = CODES.get(kind, f"status {kind}")
                    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
                        self.close()
                    raise StreamError(code, body.decode(errors="replace"))
                return body

    def abandon(self) -> None:
        """After a timeout: the answer owed is skipped when it comes; too many owed, start over."""
        if self._stale > MAX_STALE:
            self.close()

    def _send(self, sock: socket.socket, data: bytes) -> int:
        try:
            sock.settimeout(0.05)
            sock.sendall(data, socket.MSG_NOSIGNAL)
            sock.setblocking(False)
        except OSError as exc:
            self.close()
            raise StreamError("UNAVAILABLE", f"{self.path}: {exc.strerror or exc}") from exc
        return len(data)

    def _answer(self, deadline: float) -> tuple[int, bytes]:
        buffer = self._buffer
        while True:
            if len(buffer) >= 5:
                kind, length = _HEADER.unpack_from(buffer)
                if len(buffer) >= 5 + length:
                    body = bytes(buffer[5 : 5 + length])
                    del buffer[: 5 + length]
                    return kind, body
            self._read(deadline)

    def _read(self, deadline: float) -> None:
        sock = self._sock
        if sock is None:
            raise StreamError("UNAVAILABLE", "connection closed")
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not self._poll.poll(remaining * 1000):
            raise Timeout()
        try:
            chunk = sock.recv(65_536)
        except BlockingIOError:
            return
        except OSError as exc:
            self.close()
            raise StreamError("UNAVAILABLE", f"{self.path}: {exc.strerror or exc}") from exc
        if not chunk:
            self.close()
            raise StreamError("UNAVAILABLE", f"{self.path}: the service closed the connection")
        self._buffer += chunk

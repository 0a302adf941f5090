"""A TCP proxy of the tests' own between a server and PostgreSQL, to inject faults.

- cut(): close every open connection abruptly (RST), as a crashed peer or a
  load balancer reset would.
- refuse(): close new connections at once, as an unreachable database does.
- blackhole(): stop forwarding on every open connection without closing it
  (no FIN, no RST: a half-open connection); new connections still work
  unless `new_too` is given.
- heal(): back to normal forwarding for new connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from urllib.parse import parse_qs, urlsplit, urlunsplit


class Link:
    def __init__(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter) -> None:
        self.client = client
        self.server = server
        self.frozen = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def reset(self) -> None:
        for writer in (self.client, self.server):
            sock = writer.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                # Linger 0: close sends RST, not FIN.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
        for task in self.tasks:
            task.cancel()


class FaultProxy:
    def __init__(self, upstream_url: str) -> None:
        self.links: set[Link] = set()
        self.mode = "pass"  # pass | refuse | blackhole
        self.connections = 0
        self._server: asyncio.Server | None = None
        self.port = 0
        self._upstream_url = upstream_url
        self.retarget(upstream_url)

    def retarget(self, upstream_url: str) -> None:
        """Send new connections to another server (a failover); open ones stay."""
        parts = urlsplit(upstream_url)
        query = parse_qs(parts.query)
        port = parts.port or int(query.get("port", ["5432"])[0])
        if "host" in query and query["host"][0].startswith("/"):
            self._unix: str | None = f"{query['host'][0]}/.s.PGSQL.{port}"
            self._tcp: tuple[str, int] | None = None
        else:
            self._unix = None
            self._tcp = (parts.hostname or "127.0.0.1", port)

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, database: str | None = None) -> str:
        """The upstream URL rewritten to go through the proxy."""
        parts = urlsplit(self._upstream_url)
        user = parts.username or "postgres"
        path = "/" + database if database else parts.path
        return urlunsplit(("postgresql", f"{user}@127.0.0.1:{self.port}", path, "", ""))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.mode == "refuse":
            writer.close()
            return
        try:
            if self._unix is not None:
                up_reader, up_writer = await asyncio.open_unix_connection(self._unix)
            else:
                assert self._tcp is not None
                up_reader, up_writer = await asyncio.open_connection(*self._tcp)
        except OSError:
            writer.close()
            return
        link = Link(writer, up_writer)
        if self.mode == "blackhole":
            link.frozen.set()
        self.links.add(link)
        link.tasks = [
            asyncio.create_task(self._pump(reader, up_writer, link)),
            asyncio.create_task(self._pump(up_reader, writer, link)),
        ]

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: Link) -> None:
        try:
            while data := await reader.read(65536):
                if link.frozen.is_set():
                    continue  # swallowed: the peer hears nothing, and no FIN either
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            if not link.frozen.is_set():
                link.reset()
                self.links.discard(link)

    def cut(self) -> None:
        for link in list(self.links):
            link.reset()
        self.links.clear()

    def refuse(self) -> None:
        self.mode = "refuse"
        self.cut()

    def blackhole(self, *, new_too: bool = False) -> None:
        for link in self.links:
            link.frozen.set()
        if new_too:
            self.mode = "blackhole"

    def heal(self) -> None:
        self.mode = "pass"
        # Frozen links stay frozen: their peers must find out and reconnect.

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

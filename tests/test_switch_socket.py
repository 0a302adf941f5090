"""--switch-listen: ScreenCall on a Unix socket without gRPC, for switches on the same host (api/switch.py)."""

import asyncio
import itertools
import os
import resource
import stat
import struct
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screening.api import switch
from screening.api.wire import Request
from screening.app.config import Config
from screening.domain.errors import ConfigError
from screening.v1 import screening_pb2 as pb
from tests.support import (
    Clients,
    StartServer,
    create,
    serve_process,
    until_verdict,
    wait_until,
    write_auth_file,
)

IN = pb.DIRECTION_INBOUND
HEADER = struct.Struct(">BI")


class Switch:
    """A switch's connection: frames out, frames in."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, path: Path) -> "Switch":
        return cls(*await asyncio.open_unix_connection(str(path)))

    def send(self, kind: int, body: bytes) -> None:
        self.writer.write(HEADER.pack(kind, len(body)) + body)

    def ask(self, number: str, tenant: str = "acme", call_id: str = "") -> None:
        request = pb.ScreenCallRequest(tenant_id=tenant, number=number, direction=IN, call_id=call_id)
        self.send(switch.REQUEST, request.SerializeToString())

    async def answer(self) -> tuple[int, bytes]:
        kind, length = HEADER.unpack(await asyncio.wait_for(self.reader.readexactly(5), 5))
        return kind, await asyncio.wait_for(self.reader.readexactly(length), 5)

    async def response(self) -> pb.ScreenCallResponse:
        kind, body = await self.answer()
        assert kind == switch.OK, body.decode()
        return pb.ScreenCallResponse.FromString(body)

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(1), 5) == b""

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def test_a_switch_screens_on_the_socket_as_on_grpc(start_server: StartServer, tmp_path: Path) -> None:
    path = tmp_path / "switch.sock"
    app = await start_server(switch_listen=f"unix:{path}")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    clients = Clients(channel)
    entry = await create(clients, "+4930123456")
    await until_verdict(clients, "+4930123456", pb.VERDICT_BLOCK)
    assert stat.S_IMODE(os.stat(path).st_mode) == switch.SOCKET_MODE
    s = await Switch.connect(path)
    # Several requests in one write: one answer each, in order.
    s.ask("+49 30 123456", call_id="a")
    s.ask("+4930123457", call_id="b")
    s.ask("not a number", call_id="c")
    s.ask("+4930123456", call_id="d")
    await s.writer.drain()
    first = await s.response()
    assert (first.verdict, first.matched_id, first.normalized_number, first.call_id) == (
        pb.VERDICT_BLOCK,
        entry.id,
        "+4930123456",
        "a",
    )
    second = await s.response()
    assert (second.verdict, second.call_id) == (pb.VERDICT_ALLOW, "b")
    code, message = await s.answer()
    assert code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert message.decode().startswith("number 'not a number'")
    assert (await s.response()).call_id == "d"
    await s.close()
    await channel.close()


async def test_a_request_split_across_writes_is_answered_once_whole(start_server: StartServer, tmp_path: Path) -> None:
    path = tmp_path / "switch.sock"
    await start_server(switch_listen=f"unix:{path}")
    s = await Switch.connect(path)
    body = pb.ScreenCallRequest(tenant_id="acme", number="+4930123456", direction=IN, call_id="x").SerializeToString()
    data = HEADER.pack(switch.REQUEST, len(body)) + body
    for i in range(len(data)):
        s.writer.write(data[i : i + 1])
        await s.writer.drain()
        await asyncio.sleep(0)
    assert (await s.response()).call_id == "x"
    await s.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=64))
def test_undecodable_requests_get_invalid_argument_and_the_connection_stays(data: bytes) -> None:
    def screen(request: Request) -> bytes:
        return pb.ScreenCallResponse(verdict=pb.VERDICT_ALLOW, call_id=request.call_id).SerializeToString()

    connection = switch.SwitchConnection(screen, None)
    answer = connection.feed(HEADER.pack(switch.REQUEST, len(data)) + data)
    assert not connection.finished
    kind, length = HEADER.unpack_from(answer)
    assert len(answer) == 5 + length
    # Bytes protobuf accepts are screened; others are refused as undecodable, never dropped.
    if kind != switch.OK:
        assert kind == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert answer[5:].startswith(b"request: the message could not be decoded")


def _echo(request: Request) -> bytes:
    return pb.ScreenCallResponse(verdict=pb.VERDICT_ALLOW, call_id=request.call_id).SerializeToString()


@settings(max_examples=60, deadline=None)
@given(
    call_ids=st.lists(st.text(max_size=12), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_requests_cut_anywhere_get_the_answers_they_get_whole(call_ids: list[str], cuts: list[int]) -> None:
    data = b"".join(
        switch.frame(
            switch.REQUEST,
            pb.ScreenCallRequest(tenant_id="acme", number="+4930123456", direction=IN, call_id=c).SerializeToString(),
        )
        for c in call_ids
    )
    whole = switch.SwitchConnection(_echo, None).feed(data)
    connection = switch.SwitchConnection(_echo, None)
    points = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    answers = b"".join(connection.feed(data[a:b]) for a, b in itertools.pairwise(points))
    assert answers == whole
    got, at = [], 0
    while at < len(answers):
        kind, length = HEADER.unpack_from(answers, at)
        assert kind == switch.OK
        got.append(pb.ScreenCallResponse.FromString(answers[at + 5 : at + 5 + length]).call_id)
        at += 5 + length
    assert got == call_ids and not connection.finished


async def test_a_switch_that_stops_reading_is_not_read_until_it_reads_again(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Answers are not buffered without end: the service stops reading while one waits to be written."""
    path = tmp_path / "switch.sock"
    app = await start_server(switch_listen=f"unix:{path}")
    s = await Switch.connect(path)
    count = 20_000  # about 3 MB of answers (the call ids come back): more than the socket's buffers hold
    for i in range(count):
        s.ask("+4930123456", call_id=f"{i:0100d}")
    writing = asyncio.ensure_future(s.writer.drain())
    await asyncio.sleep(0.5)
    # The answers filled the socket; the service stopped reading, so the requests back up too.
    assert not writing.done()
    assert app.switch is not None and app.switch.connections == 1
    for i in range(count):
        assert (await s.response()).call_id == f"{i:0100d}"
    await writing
    s.ask("+4930123456", call_id="after")
    assert (await s.response()).call_id == "after"
    await s.close()


async def test_an_unreadable_frame_closes_the_connection(start_server: StartServer, tmp_path: Path) -> None:
    path = tmp_path / "switch.sock"
    await start_server(switch_listen=f"unix:{path}")
    s = await Switch.connect(path)
    s.send(7, b"what")
    assert await s.closed()
    big = await Switch.connect(path)
    big.writer.write(HEADER.pack(switch.REQUEST, switch.MAX_FRAME + 1))
    assert await big.closed()


async def test_with_tokens_the_switch_presents_one_that_may_screen_the_tenant(
    start_server: StartServer, tmp_path: Path
) -> None:
    auth = write_auth_file(
        tmp_path / "tokens.toml",
        {
            "kamailio": ("s3cret-switch", ["screen"], ["acme"]),
            "viewer": ("s3cret-viewer", ["viewer"], ["*"]),
        },
    )
    path = tmp_path / "switch.sock"
    await start_server(switch_listen=f"unix:{path}", auth_file=auth)
    # No token: UNAUTHENTICATED, then the connection ends.
    s = await Switch.connect(path)
    s.ask("+4930123456")
    code, message = await s.answer()
    assert code == grpc.StatusCode.UNAUTHENTICATED.value[0] and b"token" in message
    assert await s.closed()
    # A token without the screen role.
    s = await Switch.connect(path)
    s.send(switch.TOKEN, b"s3cret-viewer")
    s.ask("+4930123456")
    code, message = await s.answer()
    assert code == grpc.StatusCode.PERMISSION_DENIED.value[0] and b"screen" in message
    assert await s.closed()
    # The switch's token: its tenant screens, another tenant is refused and the connection stays.
    s = await Switch.connect(path)
    s.send(switch.TOKEN, b"s3cret-switch")
    s.ask("+4930123456", call_id="mine")
    s.ask("+4930123456", tenant="globex")
    s.ask("+4930123456", call_id="again")
    assert (await s.response()).call_id == "mine"
    code, message = await s.answer()
    assert code == grpc.StatusCode.PERMISSION_DENIED.value[0] and b"globex" in message
    assert (await s.response()).call_id == "again"
    await s.close()


async def test_stopping_closes_the_connections_and_removes_the_socket(
    start_server: StartServer, tmp_path: Path
) -> None:
    path = tmp_path / "switch.sock"
    app = await start_server(switch_listen=f"unix:{path}")
    s = await Switch.connect(path)
    s.ask("+4930123456")
    await s.response()
    await app.stop(grace=0)
    assert await s.closed()
    assert not path.exists()


def test_the_switch_socket_is_served_by_one_process() -> None:
    with pytest.raises(ConfigError, match="--switch-listen"):
        Config(switch_listen="unix:/tmp/x.sock", workers=2, listen="127.0.0.1:50051")
    with pytest.raises(ConfigError, match="unix:PATH"):
        Config(switch_listen="/tmp/x.sock")


async def test_a_second_service_on_the_same_switch_socket_refuses_to_start_and_takes_nothing(
    start_server: StartServer, dsn: str, tmp_path: Path
) -> None:
    """asyncio replaces a socket file: without the check the first service lost its switches silently."""
    from screening.app.service import App

    path = tmp_path / "switch.sock"
    first = await start_server(switch_listen=f"unix:{path}")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{first.port}")
    await create(Clients(channel), "+4930123456")
    await until_verdict(Clients(channel), "+4930123456", pb.VERDICT_BLOCK)
    await channel.close()
    config = Config(listen="127.0.0.1:0", switch_listen=f"unix:{path}", database_url=dsn)
    second = App(config, dsn)
    try:
        with pytest.raises(ConfigError, match=f"--switch-listen .*another process is listening on {path}"):
            await second.start()
    finally:
        await second.stop(grace=0)
    s = await Switch.connect(path)  # still the first's: its file was neither replaced nor removed
    s.ask("+4930123456")
    assert (await s.response()).verdict == pb.VERDICT_BLOCK
    assert first.switch is not None and first.switch.connections == 1
    await s.close()


async def test_a_socket_file_left_by_a_service_that_died_is_replaced(start_server: StartServer, tmp_path: Path) -> None:
    import socket

    path = tmp_path / "switch.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))  # bound, never listening: what a killed process leaves
    app = await start_server(switch_listen=f"unix:{path}")
    s = await Switch.connect(path)
    s.ask("+4930123456")
    assert (await s.response()).verdict == pb.VERDICT_ALLOW
    assert app.switch is not None and app.switch.connections == 1
    await s.close()


async def test_the_switch_thread_screens_only_between_turns_of_the_event_loop(tmp_path: Path) -> None:
    """Screening state stays single-threaded: a request that comes while the loop runs its own code is
    screened after that code, not in the middle of it (a change set half applied, say)."""
    import socket
    import threading
    import time

    screened: list[float] = []

    def screen(request: Request) -> bytes:
        screened.append(time.monotonic())
        return _echo(request)

    path = tmp_path / "switch.sock"
    server = switch.SwitchServer(str(path), screen, None)
    await server.start()
    loop = asyncio.get_running_loop()
    request = switch.frame(
        switch.REQUEST, pb.ScreenCallRequest(tenant_id="acme", number="+4930123456", direction=IN).SerializeToString()
    )
    answers: list[float] = []

    def ask(after: float) -> None:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(path))
            time.sleep(after)
            s.sendall(request)
            s.recv(4096)
            answers.append(time.monotonic())

    try:
        # The loop idle: answered at once.
        await asyncio.to_thread(ask, 0.0)
        assert len(screened) == 1
        # The loop busy for 0.3 s (no await): the request waits for its end.
        asker = threading.Thread(target=ask, args=(0.05,))
        asker.start()
        busy_from = time.monotonic()
        time.sleep(0.3)  # noqa: ASYNC251  # the point: the loop busy, not awaiting
        busy_until = time.monotonic()
        await asyncio.sleep(0)
        await asyncio.to_thread(asker.join)
        assert len(screened) == 2 and screened[1] >= busy_until > busy_from + 0.05
    finally:
        await server.stop()
    assert "select" not in vars(loop._selector)  # type: ignore[attr-defined]  # the loop waits as before


async def test_a_failing_screen_is_answered_internal_and_a_failed_thread_ends_every_connection_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(request: Request) -> bytes:
        raise AssertionError("a bug")  # to_status answers it: the connection stays

    path = tmp_path / "switch.sock"
    server = switch.SwitchServer(str(path), broken, None)
    await server.start()
    try:
        s = await Switch.connect(path)
        s.ask("+4930123456")
        kind, _ = await s.answer()
        assert kind == grpc.StatusCode.INTERNAL.value[0]
        assert server.connections == 1

        def accept(*_args: object) -> bool:
            raise RuntimeError("epoll gone")

        monkeypatch.setattr(server, "_accept", accept)
        await Switch.connect(path)
        await wait_until(lambda: "its thread failed" in caplog.text)
        assert any(r.levelname == "CRITICAL" for r in caplog.records)
        # The switches find out at once: their connections end, and no new one is taken.
        assert await s.closed() and server.connections == 0
        with pytest.raises(ConnectionRefusedError):
            await Switch.connect(path)
    finally:
        await server.stop()


def _limit_leaving(pid: int, free: int) -> int:
    """The descriptor limit under which the process has exactly `free` numbers left (new ones take the lowest)."""
    used = {int(name) for name in os.listdir(f"/proc/{pid}/fd")}
    limit, left = 0, 0
    while left < free:
        left += limit not in used
        limit += 1
    return limit


async def test_out_of_descriptors_it_pauses_accepting_and_then_serves_the_switches_that_waited(
    dsn: str, tmp_path: Path
) -> None:
    path = tmp_path / "switch.sock"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    async with serve_process(f"--database-url={dsn}", f"--switch-listen=unix:{path}") as served:
        pid = served.process.pid
        await wait_until(path.exists, within=10)
        first = await Switch.connect(path)

        async def loaded() -> bool:
            first.ask("+4930123456")
            return (await first.answer())[0] == switch.OK

        await wait_until(loaded, within=20, interval=0.1)
        # Two new connections' worth of descriptors left: the third accept fails (EMFILE), for real.
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (_limit_leaving(pid, 2), hard))
        switches = [await Switch.connect(path) for _ in range(5)]
        for i, s in enumerate(switches):
            s.ask("+4930123456", call_id=str(i))
            await s.writer.drain()
        for s in switches[:2]:
            assert (await s.response()).verdict == pb.VERDICT_ALLOW
        # The others wait, connected, while the service cannot take them.
        waiting = [asyncio.ensure_future(s.response()) for s in switches[2:]]
        done, _ = await asyncio.wait(waiting, timeout=1.5)
        assert not done
        # Descriptors free again: within the pause (a second), every waiting switch is answered, in order.
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        answers = await asyncio.gather(*waiting)
        assert [a.call_id for a in answers] == ["2", "3", "4"]
        for s in [first, *switches]:
            await s.close()
    # Logged once a pause, not once a spin of the loop: about one warning a second while it lasted.
    warnings = served.text.count("switch socket: cannot accept a connection")
    assert 1 <= warnings <= 4, served.text

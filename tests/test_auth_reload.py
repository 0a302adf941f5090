"""The auth file is re-read on SIGHUP; a broken file keeps the tokens in force."""

from __future__ import annotations

import asyncio
import secrets
import signal
import sys
from pathlib import Path

import grpc
import pytest

from screening.v1 import screening_pb2 as pb
from screening.v1 import screening_pb2_grpc as pb_grpc
from tests.support import StartServer, bearer, serve_process, wait_until, write_auth_file

REQUEST = pb.ScreenCallRequest(tenant_id="acme", number="+14155550100", direction=pb.DIRECTION_INBOUND)


async def code_of(stub: pb_grpc.ScreeningStub, token: str) -> grpc.StatusCode:
    try:
        await stub.ScreenCall(REQUEST, metadata=bearer(token), timeout=5)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_reload_swaps_tokens_and_a_broken_file_keeps_them(start_server: StartServer, tmp_path: Path) -> None:
    old, new = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    path = write_auth_file(tmp_path / "auth.toml", {"old": (old, ["screen"], ["acme"])})
    app = await start_server(auth_file=path)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.ScreeningStub(channel)
        assert await code_of(stub, old) == grpc.StatusCode.OK
        write_auth_file(path, {"new": (new, ["screen"], ["acme"])})
        assert app.reload_auth()
        assert await code_of(stub, old) == grpc.StatusCode.UNAUTHENTICATED
        assert await code_of(stub, new) == grpc.StatusCode.OK
        path.write_text("[[tokens]]\nname = 'x'\n")
        assert not app.reload_auth()
        assert await code_of(stub, new) == grpc.StatusCode.OK


async def test_sighup_reloads_a_running_server_and_logs_no_token(dsn: str, tmp_path: Path) -> None:
    old, new = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    path = write_auth_file(tmp_path / "auth.toml", {"old": (old, ["screen"], ["acme"])})
    async with (
        serve_process(f"--database-url={dsn}", f"--auth-file={path}", "--log-level=DEBUG") as served,
        grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel,
    ):
        stub = pb_grpc.ScreeningStub(channel)

        async def answers(token: str) -> bool:
            # UNAVAILABLE until the first load finished.
            return await code_of(stub, token) == grpc.StatusCode.OK

        await wait_until(lambda: answers(old), within=20)
        write_auth_file(path, {"new": (new, ["screen"], ["acme"])})
        served.process.send_signal(signal.SIGHUP)
        await wait_until(lambda: answers(new), within=10)
        assert await code_of(stub, old) == grpc.StatusCode.UNAUTHENTICATED
    text = served.text
    assert "auth file reloaded: 1 tokens" in text
    assert old not in text and new not in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen=0.0.0.0:0"], "without --auth-file"),
        (["--listen=127.0.0.1:0", "--tls-cert=/nonexistent.pem", "--tls-key=/nonexistent.key"], "no such file"),
    ],
)
async def test_refuses_to_start(args: list[str], message: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "screening", "serve", *args, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert message in err.decode()

"""`make run`'s launcher: the server and the console together, both stopped by one SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import urllib.request

from tests.support import wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def test_make_run_starts_the_server_and_the_console_and_stops_both(dsn: str) -> None:
    grpc_port, http_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "screening.console.devrun",
        "--database-url",
        dsn,
        env={
            **os.environ,
            "SCREENING_LISTEN": f"127.0.0.1:{grpc_port}",
            "SCREENING_CONSOLE_LISTEN": f"127.0.0.1:{http_port}",
        },
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_until(lambda: answers(http_port) or process.returncode is not None, within=60, interval=0.2)
        assert process.returncode is None
        assert answers(grpc_port)

        def page() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/t/acme/numbers", timeout=10) as response:
                return str(response.read().decode())

        assert "No forbidden numbers yet." in await asyncio.to_thread(page)
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, stderr.decode()
        assert not answers(grpc_port) and not answers(http_port)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

"""TLS and mTLS with certificates made in the test, over real secure channels."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from screening.app import App
from screening.config import Config, ConfigError
from screening.v1 import screening_pb2 as pb
from screening.v1 import screening_pb2_grpc as pb_grpc
from tests.certs import Authority, Issued
from tests.conftest import StartServer
from tests.support import bearer, write_auth_file

REQUEST = pb.ScreenCallRequest(tenant_id="acme", number="+14155550100", direction=pb.DIRECTION_INBOUND)


@pytest.fixture(scope="module")
def ca() -> Authority:
    return Authority("screening test CA")


@pytest.fixture
def server_files(ca: Authority, tmp_path: Path) -> dict[str, Path]:
    cert, key = ca.issue("localhost", server=True).write(tmp_path, "server")
    ca_path = tmp_path / "ca.pem"
    ca_path.write_bytes(ca.pem)
    return {"cert": cert, "key": key, "ca": ca_path}


async def screen(channel: grpc.aio.Channel, token: str | None = None) -> grpc.StatusCode:
    try:
        await pb_grpc.ScreeningStub(channel).ScreenCall(REQUEST, metadata=bearer(token) if token else None, timeout=5)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@pytest.fixture
async def channels() -> AsyncIterator[list[grpc.aio.Channel]]:
    made: list[grpc.aio.Channel] = []
    yield made
    for channel in made:
        await channel.close()


def secure(made: list[grpc.aio.Channel], port: int, ca: Authority, client: Issued | None = None) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.pem,
        private_key=None if client is None else client.key,
        certificate_chain=None if client is None else client.cert,
    )
    channel = grpc.aio.secure_channel(f"localhost:{port}", credentials)
    made.append(channel)
    return channel


def plain(made: list[grpc.aio.Channel], port: int) -> grpc.aio.Channel:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    made.append(channel)
    return channel


async def test_tls_serves_tls_only(
    start_server: StartServer, server_files: dict[str, Path], ca: Authority, channels: list[grpc.aio.Channel]
) -> None:
    app = await start_server(tls_cert=server_files["cert"], tls_key=server_files["key"])
    assert await screen(secure(channels, app.port, ca)) == grpc.StatusCode.OK
    assert await screen(plain(channels, app.port)) == grpc.StatusCode.UNAVAILABLE
    # A client that trusts another CA refuses the server.
    assert await screen(secure(channels, app.port, Authority("stranger"))) == grpc.StatusCode.UNAVAILABLE


async def test_mtls_requires_a_client_certificate_from_the_ca(
    start_server: StartServer,
    server_files: dict[str, Path],
    ca: Authority,
    channels: list[grpc.aio.Channel],
    tmp_path: Path,
) -> None:
    token = secrets.token_urlsafe(24)
    auth = write_auth_file(tmp_path / "auth.toml", {"switch": (token, ["screen"], ["acme"])})
    app = await start_server(
        tls_cert=server_files["cert"], tls_key=server_files["key"], tls_client_ca=server_files["ca"], auth_file=auth
    )
    client = ca.issue("switch-1", server=False)
    assert await screen(secure(channels, app.port, ca, client), token) == grpc.StatusCode.OK
    # The certificate admits the connection; the token still decides the call.
    assert await screen(secure(channels, app.port, ca, client)) == grpc.StatusCode.UNAUTHENTICATED
    assert await screen(secure(channels, app.port, ca), token) == grpc.StatusCode.UNAVAILABLE
    rogue = Authority("rogue CA").issue("switch-1", server=False)
    assert await screen(secure(channels, app.port, ca, rogue), token) == grpc.StatusCode.UNAVAILABLE
    assert await screen(plain(channels, app.port), token) == grpc.StatusCode.UNAVAILABLE


async def test_a_file_that_is_not_pem_is_a_config_error(dsn: str, server_files: dict[str, Path]) -> None:
    server_files["key"].write_text("not a key")
    config = Config(listen="127.0.0.1:0", database_url=dsn, tls_cert=server_files["cert"], tls_key=server_files["key"])
    with pytest.raises(ConfigError, match="--tls-key"):
        await App(config, dsn).start()

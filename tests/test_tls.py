"""TLS and mTLS with certificates made in the test, over real secure channels."""

from __future__ import annotations

import os
import secrets
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization

from screening.api import tls
from screening.app.config import Config
from screening.app.service import App
from screening.domain.errors import ConfigError
from screening.v1 import screening_pb2 as pb
from screening.v1 import screening_pb2_grpc as pb_grpc
from tests.support import StartServer, bearer, serve_process, wait_until, write_auth_file
from tests.support.certs import Authority, Issued

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


async def test_a_key_that_is_not_the_certificates_is_a_config_error(dsn: str, ca: Authority, tmp_path: Path) -> None:
    cert, _ = ca.issue("localhost", server=True).write(tmp_path, "one")
    _, other_key = ca.issue("localhost", server=True).write(tmp_path, "two")
    config = Config(listen="127.0.0.1:0", database_url=dsn, tls_cert=cert, tls_key=other_key)
    with pytest.raises(ConfigError, match="not a certificate chain and its private key"):
        await App(config, dsn).start()


@pytest.mark.parametrize("memfd", [True, False], ids=["memfd", "temporary file"])
def test_the_key_check_judges_the_bytes_read_not_the_files_again(
    ca: Authority, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memfd: bool
) -> None:
    """A renewal written between two reads of the files must not pass the check with bytes grpc never gets."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    if not memfd:  # as on a platform without memfd_create
        monkeypatch.delattr(os, "memfd_create")
    one, two = ca.issue("localhost", server=True), ca.issue("localhost", server=True)
    paths = (*one.write(tmp_path, "one"), None)  # on disk: a matching pair
    with pytest.raises(ConfigError, match="not a certificate chain and its private key"):
        tls._check(one.cert, two.key, None, paths)
    tls._check(one.cert, one.key, ca.pem, paths)
    assert list(scratch.iterdir()) == []  # no copy of a key is left behind


async def test_an_encrypted_key_is_a_config_error_not_a_prompt(dsn: str, ca: Authority, tmp_path: Path) -> None:
    cert, key = ca.issue("localhost", server=True).write(tmp_path, "server")
    loaded = serialization.load_pem_private_key(key.read_bytes(), password=None)
    key.write_bytes(
        loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    config = Config(listen="127.0.0.1:0", database_url=dsn, tls_cert=cert, tls_key=key)
    with pytest.raises(ConfigError, match="encrypted private key"):
        await App(config, dsn).start()


async def test_reload_puts_a_new_certificate_in_force_for_new_connections(
    start_server: StartServer, server_files: dict[str, Path], ca: Authority, channels: list[grpc.aio.Channel]
) -> None:
    app = await start_server(tls_cert=server_files["cert"], tls_key=server_files["key"])
    before = secure(channels, app.port, ca)
    assert await screen(before) == grpc.StatusCode.OK

    renewed = Authority("renewed CA")
    renewed.issue("localhost", server=True).write(server_files["cert"].parent, "server")  # the same paths
    assert app.reload_tls()
    assert await screen(secure(channels, app.port, renewed)) == grpc.StatusCode.OK
    assert await screen(secure(channels, app.port, ca)) == grpc.StatusCode.UNAVAILABLE
    assert await screen(before) == grpc.StatusCode.OK  # an open connection keeps its certificate

    # Unusable files change nothing: a key from another certificate, then no PEM at all.
    _, stray_key = renewed.issue("localhost", server=True).write(server_files["cert"].parent, "stray")
    server_files["key"].write_bytes(stray_key.read_bytes())
    assert not app.reload_tls()
    server_files["cert"].write_text("not a certificate")
    assert not app.reload_tls()
    assert await screen(secure(channels, app.port, renewed)) == grpc.StatusCode.OK


async def test_reload_puts_a_new_client_ca_in_force(
    start_server: StartServer, server_files: dict[str, Path], ca: Authority, channels: list[grpc.aio.Channel]
) -> None:
    app = await start_server(
        tls_cert=server_files["cert"], tls_key=server_files["key"], tls_client_ca=server_files["ca"]
    )
    old_client = ca.issue("switch-1", server=False)
    assert await screen(secure(channels, app.port, ca, old_client)) == grpc.StatusCode.OK

    clients_ca = Authority("new client CA")
    server_files["ca"].write_bytes(clients_ca.pem)
    assert app.reload_tls()
    assert (
        await screen(secure(channels, app.port, ca, clients_ca.issue("switch-2", server=False))) == grpc.StatusCode.OK
    )
    assert await screen(secure(channels, app.port, ca, old_client)) == grpc.StatusCode.UNAVAILABLE


async def test_a_server_without_tls_has_nothing_to_reload(start_server: StartServer) -> None:
    app = await start_server()
    assert not app.reload_tls()


async def test_sighup_reloads_the_certificate_of_a_running_server(
    dsn: str, server_files: dict[str, Path], ca: Authority, channels: list[grpc.aio.Channel]
) -> None:
    async with serve_process(
        f"--database-url={dsn}", f"--tls-cert={server_files['cert']}", f"--tls-key={server_files['key']}"
    ) as served:

        async def answers(authority: Authority) -> bool:
            # A new channel each time: a new connection, so a new handshake.
            return await screen(secure(channels, served.port, authority)) == grpc.StatusCode.OK

        await wait_until(lambda: answers(ca), within=20)  # UNAVAILABLE until the first load
        renewed = Authority("renewed CA")
        renewed.issue("localhost", server=True).write(server_files["cert"].parent, "server")
        served.process.send_signal(signal.SIGHUP)
        await wait_until(lambda: answers(renewed), within=10)
        assert not await answers(ca)
    assert "TLS files reloaded" in served.text

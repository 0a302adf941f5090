"""Kamailio against a service that requires TLS with client certificates and a token."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TENANT, Admin, Phone, Ports, sources
from testbed import ClientTls, Kamailio, Service, Uas

from screening.v1 import screening_pb2 as pb
from tests.support import bearer, write_auth_file
from tests.support.certs import Authority

CALLER = "+49309876543"


@pytest.fixture(scope="module")
def secured(workdir: Path) -> Iterator[tuple[Service, dict[str, str], Path]]:
    """The service with mTLS and tokens; the token secrets; the directory of the PEM files."""
    home = workdir / "secured"
    home.mkdir()
    ca = Authority("kamailio e2e CA")
    server_cert, server_key = ca.issue("localhost", server=True).write(home, "server")
    client = ca.issue("kamailio", server=False)
    client.write(home, "client")
    (home / "ca.pem").write_bytes(ca.pem)
    tokens = {"switch": secrets.token_urlsafe(32), "tool": secrets.token_urlsafe(32)}
    auth = write_auth_file(
        home / "tokens.toml",
        {"switch": (tokens["switch"], ["screen"], [TENANT]), "tool": (tokens["tool"], ["admin", "screen"], [TENANT])},
    )
    args = ["--auth-file", str(auth), "--tls-cert", str(server_cert), "--tls-key", str(server_key)]
    args += ["--tls-client-ca", str(home / "ca.pem")]
    service = Service(home, args=args, tls=ClientTls(ca.pem, client.cert, client.key, "localhost")).start()
    yield service, tokens, home
    service.stop()


def switch(home: Path, name: str, token: str, target: str, uas: Uas, ports: Ports) -> Kamailio:
    (home / f"{name}.token").write_text(token + "\n")
    tls = [f'tls_ca = "{home / "ca.pem"}"', f'tls_cert = "{home / "client.crt"}"', f'tls_key = "{home / "client.key"}"']
    return Kamailio(
        home / name,
        target=target,
        next_hop_port=uas.port,
        sources=sources(ports),
        service=[f'token_file = "{home / name}.token"', *tls, 'tls_server_name = "localhost"'],
    ).start()


def test_kamailio_screens_over_mtls_with_its_token_and_a_bad_token_fails_open(
    secured: tuple[Service, dict[str, str], Path], uas: Uas, phone: Phone, ports: Ports
) -> None:
    service, tokens, home = secured
    admin = Admin(service.target, channel=service.channel(), metadata=bearer(tokens["tool"]))
    entry = admin.create(CALLER, pb.CALL_TYPE_INBOUND)
    admin.wait_verdict(CALLER, pb.DIRECTION_INBOUND, pb.VERDICT_BLOCK)
    good = switch(home, "good", tokens["switch"], service.target, uas, ports)
    bad = switch(home, "bad", secrets.token_urlsafe(32), service.target, uas, ports)
    try:
        declined = phone.call(good, ports.carrier, caller=CALLER, callee="+4940300100")
        # Refused by the service (UNAUTHENTICATED): no verdict, so the policy (open) decides.
        through = phone.call(bad, ports.carrier, caller=CALLER, callee="+4940300100")

        assert declined.status == 603 and entry.id in declined.reason
        assert through.status == 200
        assert bad.statistics()["fail_open"] == 1
        assert "UNAUTHENTICATED" in bad.log.read_text()
    finally:
        good.stop()
        bad.stop()
        admin.channel.close()

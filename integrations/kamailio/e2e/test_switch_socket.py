"""Kamailio asking on the service's switch socket (`serve --switch-listen unix:PATH`, `switch_socket`).

A service of its own, with tokens: the switch presents its token on the
socket; a wrong one is refused (UNAUTHENTICATED) and the policy decides. The
service frozen opens the breaker as over gRPC; a CANCEL during screening gets
487 and nothing after; a restarted service is found again on the next call.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TENANT, Admin, Phone, Ports, sources
from testbed import HERE, Call, Kamailio, Service, Uas, run_uac

from screening.v1 import screening_pb2 as pb
from tests.support import bearer, write_auth_file

OFFICE = "+4940300100"
FORBIDDEN = "+4930555123"


@pytest.fixture(scope="module")
def local(workdir: Path) -> Iterator[tuple[Service, dict[str, str]]]:
    """A service with a switch socket and tokens; the tokens' secrets."""
    home = workdir / "switch-socket"
    home.mkdir()
    tokens = {"switch": secrets.token_urlsafe(32), "tool": secrets.token_urlsafe(32)}
    auth = write_auth_file(
        home / "tokens.toml",
        {"switch": (tokens["switch"], ["screen"], [TENANT]), "tool": (tokens["tool"], ["admin", "screen"], [TENANT])},
    )
    service = Service(home, args=["--auth-file", str(auth)], switch_socket=True).start()
    yield service, tokens
    service.stop()


def switch(
    workdir: Path, name: str, service: Service, token: str, uas: Uas, ports: Ports, **options: object
) -> Kamailio:
    home = workdir / "switch-socket" / name
    home.mkdir(parents=True, exist_ok=True)
    (home / "token").write_text(token + "\n")
    return Kamailio(
        home,
        # Never used: the switch socket is.
        target="127.0.0.1:9",
        next_hop_port=uas.port,
        sources=sources(ports),
        service=[f'switch_socket = "{service.switch_socket}"', f'token_file = "{home / "token"}"'],
        **options,  # type: ignore[arg-type]
    ).start()


@pytest.fixture(scope="module")
def admin(local: tuple[Service, dict[str, str]]) -> Iterator[Admin]:
    service, tokens = local
    admin = Admin(service.target, metadata=bearer(tokens["tool"]))
    admin.create(FORBIDDEN, pb.CALL_TYPE_BOTH)
    admin.wait_verdict(FORBIDDEN, pb.DIRECTION_INBOUND, pb.VERDICT_BLOCK)
    yield admin
    admin.channel.close()


def test_calls_are_screened_on_the_switch_socket_with_the_switchs_token(
    workdir: Path, local: tuple[Service, dict[str, str]], admin: Admin, uas: Uas, phone: Phone, ports: Ports
) -> None:
    service, tokens = local
    good = switch(workdir, "good", service, tokens["switch"], uas, ports)
    bad = switch(workdir, "bad", service, secrets.token_urlsafe(32), uas, ports)
    try:
        declined = phone.call(good, ports.carrier, caller=FORBIDDEN, callee=OFFICE)
        allowed = phone.call(good, ports.carrier, caller="+4930555124", callee=OFFICE)
        outbound = phone.call(good, ports.pbx, caller=OFFICE, callee=FORBIDDEN)
        anonymous = phone.call(good, ports.carrier, caller="anonymous", callee=OFFICE)
        # Refused by the service (UNAUTHENTICATED): no verdict, so the policy (open) decides.
        through = phone.call(bad, ports.carrier, caller=FORBIDDEN, callee=OFFICE)

        assert declined.status == 603 and "forbidden number +4930555123 (exact, entry" in declined.reason
        assert (allowed.status, outbound.status, anonymous.status) == (200, 603, 200)
        stats = good.statistics()
        assert (stats["block"], stats["allow"], stats["unscreenable"], stats["fail_open"]) == (2, 1, 1, 0)
        assert through.status == 200
        assert bad.statistics()["fail_open"] == 1
        assert "UNAUTHENTICATED" in bad.log.read_text()
    finally:
        good.stop()
        bad.stop()


def test_frozen_service_opens_the_breaker_and_a_cancel_during_screening_gets_487_only(
    workdir: Path, local: tuple[Service, dict[str, str]], admin: Admin, uas: Uas, phone: Phone, ports: Ports
) -> None:
    service, tokens = local
    # The default deadline (200 ms) for the load; a longer one for the CANCEL, sent 300 ms into screening.
    kamailio = switch(workdir, "frozen", service, tokens["switch"], uas, ports, children=8)
    slow = switch(workdir, "frozen-cancel", service, tokens["switch"], uas, ports, deadline_ms=1000)
    try:
        assert phone.call(kamailio, ports.carrier, caller=FORBIDDEN, callee=OFFICE).status == 603
        assert service.proc is not None
        os.kill(service.proc.pid, signal.SIGSTOP)
        try:
            cancelled = phone.call(
                slow, ports.carrier, "+4930555125", OFFICE, scenario=HERE / "sipp" / "uac_cancel.xml"
            )
            calls = [Call(f"+4930{4_000_000 + i}", OFFICE) for i in range(300)]
            run = run_uac(workdir / "switch-frozen-uac", kamailio.port, ports.carrier, calls, rate=200, timeout=120)
        finally:
            os.kill(service.proc.pid, signal.SIGCONT)

        assert cancelled.status == 487
        assert slow.statistics()["cancelled"] == 1
        assert "failed to reply" not in slow.log.read_text()
        assert run.returncode == 0, run.log
        assert [r.status for r in run.results] == [200] * len(calls)
        stats = kamailio.statistics()
        assert stats["breaker"] + stats["busy"] >= 0.9 * len(calls), stats
        assert "circuit open" in kamailio.log.read_text()
        # The cool-down over, a call probes, the service answers, the circuit closes.
        deadline = time.monotonic() + 15
        while (status := phone.call(kamailio, ports.carrier, caller=FORBIDDEN, callee=OFFICE).status) != 603:
            assert status == 200 and time.monotonic() < deadline
            time.sleep(0.2)
        assert "circuit closed" in kamailio.log.read_text()
    finally:
        kamailio.stop()
        slow.stop()


def test_a_restarted_service_is_found_again_on_the_next_call(
    workdir: Path, local: tuple[Service, dict[str, str]], admin: Admin, uas: Uas, phone: Phone, ports: Ports
) -> None:
    service, tokens = local
    kamailio = switch(workdir, "restart", service, tokens["switch"], uas, ports, children=2)
    try:
        # Both workers connected and used.
        for _ in range(4):
            assert phone.call(kamailio, ports.carrier, caller=FORBIDDEN, callee=OFFICE).status == 603
        service.stop()
        service.start()
        admin.wait_verdict(FORBIDDEN, pb.DIRECTION_INBOUND, pb.VERDICT_BLOCK)
        statuses = [phone.call(kamailio, ports.carrier, caller=FORBIDDEN, callee=OFFICE).status for _ in range(4)]

        # Each worker's old connection is gone: it connects again and the call is screened, none fails open.
        assert statuses == [603] * 4
        assert kamailio.statistics()["fail_open"] == 0
    finally:
        kamailio.stop()

"""The service frozen (SIGSTOP): the circuit breaker, and a late answer after a CANCEL.

These stop and continue the session's service, so they run before test_calls
(which stops it for good).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from conftest import Admin, Phone, Ports, sources
from testbed import HERE, Call, Kamailio, Result, Service, Uas, run_uac, wait_for

from screening.v1 import screening_pb2 as pb

OFFICE = "+4940300100"
FORBIDDEN = "+4930777123"


def test_with_the_service_frozen_calls_fail_open_at_once_then_screening_resumes(
    workdir: Path, service: Service, admin: Admin, uas: Uas, phone: Phone, ports: Ports
) -> None:
    admin.create(FORBIDDEN, pb.CALL_TYPE_INBOUND)
    admin.wait_verdict(FORBIDDEN, pb.DIRECTION_INBOUND, pb.VERDICT_BLOCK)
    # The default children (8) and deadline (200 ms), at 200 calls/s for 3 s.
    kamailio = Kamailio(
        workdir / "frozen", target=service.target, next_hop_port=uas.port, sources=sources(ports), children=8
    ).start()
    try:
        assert phone.call(kamailio, ports.carrier, caller=FORBIDDEN, callee=OFFICE).status == 603
        calls = [Call(f"+4930{3_000_000 + i}", OFFICE) for i in range(600)]
        assert service.proc is not None
        os.kill(service.proc.pid, signal.SIGSTOP)
        try:
            run = run_uac(workdir / "frozen-uac", kamailio.port, ports.carrier, calls, rate=200, timeout=120)
        finally:
            os.kill(service.proc.pid, signal.SIGCONT)

        # Every call completed, BYE included (SIPp waits for the BYE's 200).
        assert run.returncode == 0, run.log
        assert [r.status for r in run.results] == [200] * len(calls)
        stats = kamailio.statistics()
        assert stats["fail_open"] == len(calls)
        # Nearly all were answered by the open breaker without waiting for the deadline.
        assert stats["breaker"] + stats["busy"] >= 0.9 * len(calls), stats
        assert "circuit open" in kamailio.log.read_text()

        # After the cool-down a call probes, finds the service back and closes the circuit.
        deadline = time.monotonic() + 15
        while (status := phone.call(kamailio, ports.carrier, caller=FORBIDDEN, callee=OFFICE).status) != 603:
            assert status == 200 and time.monotonic() < deadline
            time.sleep(0.2)
        assert "circuit closed" in kamailio.log.read_text()
    finally:
        kamailio.stop()


def test_a_late_allow_after_a_cancel_neither_relays_nor_answers(
    workdir: Path, service: Service, uas: Uas, phone: Phone, ports: Ports
) -> None:
    kamailio = Kamailio(
        workdir / "late-allow",
        target=service.target,
        next_hop_port=uas.port,
        sources=sources(ports),
        deadline_ms=3000,
    ).start()
    try:
        assert service.proc is not None
        results: list[Result] = []
        os.kill(service.proc.pid, signal.SIGSTOP)
        try:
            caller = threading.Thread(
                target=lambda: results.append(
                    phone.call(
                        kamailio, ports.carrier, "+49307654321", OFFICE, scenario=HERE / "sipp" / "uac_cancel.xml"
                    )
                )
            )
            caller.start()
            wait_for(lambda: kamailio.transactions() > 0, "the INVITE in Kamailio", 10)
            # The CANCEL leaves 300 ms after the INVITE; the service wakes and answers ALLOW after it.
            time.sleep(1.0)
        finally:
            os.kill(service.proc.pid, signal.SIGCONT)
        caller.join(30)

        assert [r.status for r in results] == [487]
        stats = kamailio.statistics()
        assert stats["cancelled"] == 1 and stats["allow"] == 0
        assert "failed to reply" not in kamailio.log.read_text()
    finally:
        kamailio.stop()

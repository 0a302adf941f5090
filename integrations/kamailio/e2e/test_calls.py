"""Real SIP calls from SIPp through Kamailio, screened by the running service.

The tests run in file order: the last ones stop the screening service.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Admin, Phone, Ports, sources
from testbed import Kamailio, Service, SourceSpec, Uas

from screening.v1 import screening_pb2 as pb

INBOUND, OUTBOUND = pb.DIRECTION_INBOUND, pb.DIRECTION_OUTBOUND
ALLOW, BLOCK = pb.VERDICT_ALLOW, pb.VERDICT_BLOCK
OFFICE = "+4940300100"  # a callee on inbound calls, a caller on outbound ones


def test_forbidden_inbound_caller_is_declined_with_603_naming_the_entry(
    admin: Admin, phone: Phone, fail_open: Kamailio, ports: Ports
) -> None:
    entry = admin.create("+49 30 1234567", pb.CALL_TYPE_INBOUND)
    admin.wait_verdict("+49301234567", INBOUND, BLOCK)
    before = fail_open.statistics()

    result = phone.call(fail_open, ports.carrier, caller="+49301234567", callee=OFFICE)

    assert result.status == 603
    assert "SIP;cause=603" in result.reason
    assert entry.id in result.reason and "+49301234567" in result.reason
    assert fail_open.statistics()["block"] == before["block"] + 1


def test_allowed_caller_reaches_the_uas_and_gets_200(
    admin: Admin, phone: Phone, fail_open: Kamailio, ports: Ports
) -> None:
    before = fail_open.statistics()

    # Only the SIPp UAS answers 200: Kamailio relayed the call to the next hop.
    result = phone.call(fail_open, ports.carrier, caller="+49307654321", callee=OFFICE)

    assert result.status == 200
    assert fail_open.statistics()["allow"] == before["allow"] + 1


def test_forbidden_outbound_callee_is_declined_and_only_outbound(
    admin: Admin, phone: Phone, fail_open: Kamailio, ports: Ports
) -> None:
    entry = admin.create("+1 415 555 0199", pb.CALL_TYPE_OUTBOUND)
    admin.wait_verdict("+14155550199", OUTBOUND, BLOCK)

    declined = phone.call(fail_open, ports.pbx, caller=OFFICE, callee="+14155550199")
    # The same number calling in is not forbidden: the entry covers outbound calls only.
    inbound = phone.call(fail_open, ports.carrier, caller="+14155550199", callee=OFFICE)
    # Another tenant, named by the PBX's X-Tenant header, has no such entry.
    other_tenant = phone.call(fail_open, ports.pbx, caller=OFFICE, callee="+14155550199", tenant="globex")

    assert declined.status == 603 and entry.id in declined.reason
    assert inbound.status == 200
    assert other_tenant.status == 200


def test_disabled_entry_lets_the_call_through(admin: Admin, phone: Phone, fail_open: Kamailio, ports: Ports) -> None:
    entry = admin.create("+44 20 7946 0321", pb.CALL_TYPE_BOTH)
    admin.wait_verdict("+442079460321", INBOUND, BLOCK)
    assert phone.call(fail_open, ports.carrier, caller="+442079460321", callee=OFFICE).status == 603

    admin.set_enabled(entry, False)
    admin.wait_verdict("+442079460321", INBOUND, ALLOW)

    assert phone.call(fail_open, ports.carrier, caller="+442079460321", callee=OFFICE).status == 200


def test_number_added_through_the_admin_api_is_blocked_on_the_next_call(
    admin: Admin, phone: Phone, fail_open: Kamailio, ports: Ports
) -> None:
    assert phone.call(fail_open, ports.pbx, caller=OFFICE, callee="+33142685300").status == 200

    entry = admin.create("+33 1 42 68 53 00", pb.CALL_TYPE_BOTH)
    admin.wait_verdict("+33142685300", OUTBOUND, BLOCK)

    result = phone.call(fail_open, ports.pbx, caller=OFFICE, callee="+33142685300")
    assert result.status == 603 and entry.id in result.reason


def test_withheld_caller_is_not_screened_away(phone: Phone, fail_open: Kamailio, ports: Ports) -> None:
    before = fail_open.statistics()

    result = phone.call(fail_open, ports.carrier, caller="anonymous", callee=OFFICE)

    assert result.status == 200
    assert fail_open.statistics()["unscreenable"] == before["unscreenable"] + 1


def test_unknown_source_is_refused(phone: Phone, fail_open: Kamailio, ports: Ports) -> None:
    assert phone.call(fail_open, ports.stranger, caller="+49307654321", callee=OFFICE).status == 403


def test_fail_closed_kamailio_screens_like_the_other_while_the_service_is_up(
    admin: Admin, phone: Phone, fail_closed: Kamailio, ports: Ports
) -> None:
    admin.wait_verdict("+49301234567", INBOUND, BLOCK)
    assert phone.call(fail_closed, ports.carrier, caller="+49301234567", callee=OFFICE).status == 603
    assert phone.call(fail_closed, ports.carrier, caller="+49307654321", callee=OFFICE).status == 200


def test_kamailio_refuses_to_start_on_bad_settings_and_says_why(workdir: Path, uas: Uas, ports: Ports) -> None:
    kamailio = Kamailio(
        workdir / "bad-settings",
        target="127.0.0.1:1",
        next_hop_port=uas.port,
        sources=[SourceSpec("carrier", "sideways", ports.carrier, "acme")],
    )
    with pytest.raises(RuntimeError, match="exited"):
        kamailio.start()
    assert "sources[0].direction 'sideways': one of inbound, outbound" in kamailio.log.read_text()


def test_a_hung_service_costs_one_deadline_then_the_call_fails_open(
    workdir: Path, silent_service: str, uas: Uas, phone: Phone, ports: Ports
) -> None:
    kamailio = Kamailio(
        workdir / "hung", target=silent_service, next_hop_port=uas.port, sources=sources(ports), deadline_ms=200
    ).start()
    try:
        result = phone.call(kamailio, ports.carrier, caller="+49301234567", callee=OFFICE)
        assert result.status == 200
        # Waited for the 200 ms deadline, not for SIPp's or tm's timers.
        assert 0.2 <= result.setup < 2.0
        assert kamailio.statistics()["fail_open"] == 1
    finally:
        kamailio.stop()


def test_service_stopped_calls_complete_when_failing_open_and_get_503_when_failing_closed(
    service: Service, phone: Phone, fail_open: Kamailio, fail_closed: Kamailio, ports: Ports
) -> None:
    service.stop()
    open_before, closed_before = fail_open.statistics(), fail_closed.statistics()

    # Even a forbidden caller gets through: no answer is not a verdict.
    through = phone.call(fail_open, ports.carrier, caller="+49301234567", callee=OFFICE)
    refused = phone.call(fail_closed, ports.carrier, caller="+49307654321", callee=OFFICE)

    assert through.status == 200
    assert refused.status == 503 and "SIP;cause=503" in refused.reason
    assert fail_open.statistics()["fail_open"] == open_before["fail_open"] + 1
    assert fail_closed.statistics()["fail_closed"] == closed_before["fail_closed"] + 1

"""A caller who cancels while the call is screened gets 487 and nothing more.

tm answers the CANCEL (200) and the INVITE (487) at once; when screening then
ends, by the deadline here, the router must neither relay the call nor answer
the INVITE again. SIPp's scenario (sipp/uac_cancel.xml) fails on any message
after the 487.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Phone, Ports, sources
from testbed import HERE, Kamailio, Uas

CANCEL = HERE / "sipp" / "uac_cancel.xml"


@pytest.mark.parametrize("on_failure", ["open", "closed"])
def test_a_call_cancelled_while_screened_is_neither_relayed_nor_answered_again(
    workdir: Path, silent_service: str, uas: Uas, phone: Phone, ports: Ports, on_failure: str
) -> None:
    # The deadline ends screening 700 ms after the CANCEL: failing open would relay
    # the call, failing closed would answer 503.
    kamailio = Kamailio(
        workdir / f"cancel-{on_failure}",
        target=silent_service,
        next_hop_port=uas.port,
        sources=sources(ports),
        on_failure=on_failure,
        deadline_ms=1000,
    ).start()
    try:
        result = phone.call(kamailio, ports.carrier, caller="+49301234567", callee="+4940300100", scenario=CANCEL)

        assert result.status == 487
        stats = kamailio.statistics()
        assert stats["cancelled"] == 1
        assert stats["fail_open"] == stats["fail_closed"] == 0
        assert "failed to reply" not in kamailio.log.read_text()
    finally:
        kamailio.stop()

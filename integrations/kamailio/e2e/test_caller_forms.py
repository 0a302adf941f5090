"""Every form a carrier may write a forbidden number in gets 603; the trunk's settings say which.

The sources (conftest.sources): `carrier` sends E.164 with or without `+`,
`de-carrier` German national numbers (0 30..., 00 49...), `us-carrier` NANP
(415..., 1 415..., 011 49...), and `trusted` asserts the caller in
P-Asserted-Identity. Runs before test_calls, which stops the service.
"""

from __future__ import annotations

import pytest
from conftest import Admin, Phone, Ports
from testbed import HOST, Kamailio

from screening.v1 import screening_pb2 as pb

FORBIDDEN = "+4930555123"
FORBIDDEN_US = "+14155550142"
OFFICE = "+4940300100"
# Each: (source, From user as the -inf field, or a whole From URI, extra INVITE headers).
FORMS = [
    ("carrier", "+4930555123", "", ()),
    ("carrier", "4930555123", "", ()),
    ("carrier", "004930555123", "", ()),
    # A user parameter without user=phone used to make it "not a phone number".
    ("carrier", "", f"sip:+4930555123;npdi@{HOST}", ()),
    ("carrier", "", f"sip:+4930555123;rn=+4930999000;npdi@{HOST};user=phone", ()),
    ("carrier", "", f"sip:%2B4930555123@{HOST}", ()),
    ("carrier", "", f"sip:%34%39%33%30555123@{HOST}", ()),
    ("carrier", "", f"sip:+49-30-555-123@{HOST};user=phone", ()),
    ("carrier", "", "tel:+49(30)555123", ()),
    ("de-carrier", "030555123", "", ()),
    ("de-carrier", "004930555123", "", ()),
    ("de-carrier", "+4930555123", "", ()),
    ("us-carrier", "0114930555123", "", ()),
    ("us-carrier", "4155550142", "", ()),
    ("us-carrier", "14155550142", "", ()),
    ("us-carrier", "+14155550142", "", ()),
    ("us-carrier", "", f"sip:%2B1-415-555-0142;npdi@{HOST}", ()),
    # Withheld From (Privacy: id): on the trusted trunk the asserted identity is the caller.
    (
        "trusted",
        "",
        "sip:anonymous@anonymous.invalid",
        (f"P-Asserted-Identity: <sip:+4930555123@{HOST};user=phone>", "Privacy: id"),
    ),
    (
        "trusted",
        "",
        "sip:anonymous@anonymous.invalid",
        ('P-Asserted-Identity: "Caller" <sip:anonymous@anonymous.invalid>, <tel:+4930555123>', "Privacy: id"),
    ),
    # No P-Asserted-Identity: the From.
    ("trusted", "+4930555123", "", ()),
    # An untrusted trunk's P-Asserted-Identity cannot stand in for a forbidden From.
    ("carrier", "+4930555123", "", (f"P-Asserted-Identity: <sip:+4930999888@{HOST}>",)),
]


@pytest.fixture(scope="module")
def forbidden(admin: Admin) -> str:
    entry = admin.create(FORBIDDEN, pb.CALL_TYPE_INBOUND)
    admin.create(FORBIDDEN_US, pb.CALL_TYPE_INBOUND)
    admin.wait_verdict(FORBIDDEN, pb.DIRECTION_INBOUND, pb.VERDICT_BLOCK)
    admin.wait_verdict(FORBIDDEN_US, pb.DIRECTION_INBOUND, pb.VERDICT_BLOCK)
    return str(entry.id)


@pytest.mark.parametrize(("source", "caller", "from_uri", "headers"), FORMS)
def test_every_form_of_a_forbidden_number_gets_603(
    forbidden: str,
    phone: Phone,
    fail_open: Kamailio,
    ports: Ports,
    source: str,
    caller: str,
    from_uri: str,
    headers: tuple[str, ...],
) -> None:
    port = getattr(ports, source.replace("-", "_"))

    result = phone.call(fail_open, port, caller=caller or "unused", callee=OFFICE, from_uri=from_uri, headers=headers)

    assert result.status == 603, result
    assert "SIP;cause=603" in result.reason


@pytest.mark.parametrize(
    ("source", "from_uri", "headers"),
    [
        # The untrusted trunk screens the From, which is withheld.
        ("carrier", "sip:anonymous@anonymous.invalid", (f"P-Asserted-Identity: <sip:+4930555123@{HOST}>",)),
        # The trusted trunk screens the caller it asserts, not the From.
        ("trusted", f"sip:+4930555123@{HOST}", (f"P-Asserted-Identity: <sip:+4930999888@{HOST}>",)),
        # National digits from the E.164 trunk are another number (+030555123).
        ("carrier", f"sip:030555123@{HOST}", ()),
    ],
)
def test_the_identity_and_number_form_are_the_trunks(
    forbidden: str,
    phone: Phone,
    fail_open: Kamailio,
    ports: Ports,
    source: str,
    from_uri: str,
    headers: tuple[str, ...],
) -> None:
    port = getattr(ports, source)

    assert phone.call(fail_open, port, "unused", OFFICE, from_uri=from_uri, headers=headers).status == 200


def test_numbers_are_masked_in_the_log(forbidden: str, phone: Phone, fail_open: Kamailio, ports: Ports) -> None:
    result = phone.call(fail_open, ports.carrier, caller=FORBIDDEN, callee=OFFICE)

    assert result.status == 603
    log = fail_open.log.read_text()
    assert f"number +49******23 blocked by forbidden number +49******23 (exact, entry {forbidden})" in log
    assert "4930555123" not in log and "4155550142" not in log

"""The customer's number out of a SIP or tel URI, as E.164, by the rules of the trunk it came from.

Switch-side, so that the service only ever sees `+digits`: a user part with
parameters (`+4930123456;npdi`), percent-escapes (`%2B4930123456`), visual
separators (`+49-30-123456`), E.164 digits without `+`, national numbers and
the `00`/`011` international prefixes all reach the same entry. Only the
standard library: this runs on every initial INVITE.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

MAX_DIGITS = 15
# RFC 3966 visual separators, and the space an escape may decode to.
_SEPARATORS = str.maketrans("", "", "-.() ")
_DIGITS = frozenset("0123456789")


@dataclass(frozen=True, slots=True)
class NumberPlan:
    """How a trunk writes numbers that do not start with `+`.

    `national` False: digits are E.164 without `+` (4930123456). True: digits
    are national numbers of `country_code` (030123456 with national_prefix "0",
    or 4155550199 / 14155550199 for country code 1 with national_prefix "1").
    Either way a number that starts with `international_prefix` ("00", "011";
    "" for none) is international: the prefix is replaced with `+`.
    """

    national: bool = False
    country_code: str = ""
    national_prefix: str = ""
    international_prefix: str = "00"

    def e164(self, user: str) -> str | None:
        """`+digits`, or None when the user part is no phone number (anonymous, withheld, too long)."""
        # The common case first: already E.164, nothing to undo.
        if user[:1] == "+" and 2 <= len(user) <= MAX_DIGITS + 1 and _DIGITS.issuperset(user[1:]):
            return user
        # User parameters (RFC 3966, or any a carrier adds) end the number, with or without user=phone.
        number = user.partition(";")[0]
        if "%" in number:
            number = unquote(number)
        number = number.translate(_SEPARATORS)
        if number[:1] == "+":
            digits = number[1:]
        elif not number or not _DIGITS.issuperset(number):
            return None
        elif self.international_prefix and number.startswith(self.international_prefix):
            digits = number[len(self.international_prefix) :]
        elif not self.national:
            digits = number
        elif self.national_prefix and number.startswith(self.national_prefix):
            digits = self.country_code + number[len(self.national_prefix) :]
        else:
            digits = self.country_code + number
        if not 1 <= len(digits) <= MAX_DIGITS or not _DIGITS.issuperset(digits):
            return None
        return "+" + digits


def uri_user(uri: str) -> str:
    """The user part of a sip:, sips: or tel: URI (its parameters kept); "" when it has none."""
    scheme, _, rest = uri.partition(":")
    scheme = scheme.strip().lower()
    if scheme == "tel":
        # tel:+4930123456;phone-context=... : the number is the whole of it up to '?'.
        return rest.partition("?")[0]
    if scheme not in ("sip", "sips"):
        return ""
    userinfo, at, _ = rest.rpartition("@")
    if not at:
        return ""
    # user:password@host: the password is not part of the number.
    return userinfo.partition(":")[0]


def name_addr_uris(header: str) -> list[str]:
    """The URIs of a header body of one or more name-addrs (P-Asserted-Identity), in order."""
    uris = []
    rest = header
    while True:
        start = rest.find("<")
        if start < 0:
            break
        end = rest.find(">", start)
        if end < 0:
            break
        uris.append(rest[start + 1 : end].strip())
        rest = rest[end + 1 :]
    if not uris and header.strip():
        # addr-spec without angle brackets: no header parameters can follow it.
        uris = [part.strip() for part in header.split(",") if part.strip()]
    return uris


def mask(number: str) -> str:
    """A number fit for logs: the first three and last two characters, the rest starred."""
    if len(number) <= 5:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 5) + number[-2:]

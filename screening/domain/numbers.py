"""The one normalization function of the contract, for every write and every screen."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

from screening.domain.errors import InvalidArgument

MAX_DIGITS = 15

# Fast path: most switches already send E.164, and a regex is far cheaper than a
# phonenumbers parse (docs/performance.md, "E.164 fast path"). ASCII digits only:
# `\d` would admit other scripts.
_E164 = re.compile(r"\+[0-9]{1,15}")
try:  # the same test in C, cheaper again
    from screening._native import is_e164 as is_e164
except ImportError:  # not compiled
    is_e164 = _E164.fullmatch  # type: ignore[assignment]
_DIGITS = re.compile(r"[0-9]{1,15}")
# Separators people write between digit groups.
_SEPARATORS = str.maketrans("", "", " \t\u00a0-.()")


def normalize(
    raw: str,
    *,
    field: str = "number",
    region: str | None = None,
    prefix: bool = False,
    allow_empty: bool = False,
) -> str:
    """Return the stored form of a phone number or raise InvalidArgument.

    `prefix` normalizes the number of a PREFIX entry: `+` and digits or plain
    digits, never reinterpreted through the region's dialling rules (a prefix
    is not a whole number). `allow_empty` admits "" (a withheld caller ID).
    """
    if is_e164(raw):
        return raw
    cleaned = raw.strip()
    if cleaned[:4].lower() == "tel:":
        cleaned = cleaned[4:]
    cleaned = cleaned.translate(_SEPARATORS)
    if not cleaned:
        if allow_empty and not raw.strip():
            return ""
        raise InvalidArgument(field, raw, "must contain digits")
    if cleaned[0] == "+":
        digits = cleaned[1:]
        if _DIGITS.fullmatch(digits):
            return cleaned
        raise InvalidArgument(field, raw, _why_not_digits(digits))
    if not _DIGITS.fullmatch(cleaned):
        raise InvalidArgument(field, raw, _why_not_digits(cleaned))
    if region is not None and not prefix:
        national = _national_to_e164(cleaned, region)
        if national is not None:
            return national
    return cleaned


def national_to_e164(digits: str, region: str) -> str | None:
    """The E.164 number `region` reads national `digits` as, or None when they are no whole number there."""
    return _national_to_e164(digits, region)


@lru_cache(maxsize=65536)
def _national_to_e164(digits: str, region: str) -> str | None:
    try:
        parsed = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        return None
    # Local-only numbers (a subscriber number without its area code, and
    # short codes such as 10086 that happen to have such a length) are not
    # whole national numbers, so they stay bare digits.
    if phonenumbers.is_possible_number_with_reason(parsed) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _why_not_digits(text: str) -> str:
    if not text:
        return "must have digits after '+'"
    for ch in text:
        if not ("0" <= ch <= "9"):
            if ch.isdigit():
                return f"only ASCII digits 0-9 are accepted, not {ch!r}"
            return f"contains {ch!r}; only digits, '+', spaces, '-', '.', '(' and ')' are accepted"
    return f"has {len(text)} digits; at most {MAX_DIGITS} are allowed"


def is_valid_region(region: str) -> bool:
    return region in phonenumbers.SUPPORTED_REGIONS


def mask(number: str) -> str:
    """A number fit for logs: keep the country code and the last two digits."""
    if len(number) <= 5:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 5) + number[-2:]


# Emergency numbers are short codes, dialled as they are: nothing longer is looked up.
_EMERGENCY_DIGITS = 6


def is_emergency(normalized: str, region: str | None) -> bool:
    """Whether a call to this (normalized) number reaches emergency services in the region.

    libphonenumber's ShortNumberInfo decides, for the region; without a
    region, a short code that is an emergency number in any region counts
    (a tenant whose region nobody set must not be able to block 112).
    """
    if not normalized or len(normalized) > _EMERGENCY_DIGITS or normalized[0] == "+":
        return False
    return _emergency(normalized, region)


@lru_cache(maxsize=4096)
def _emergency(digits: str, region: str | None) -> bool:
    if region is not None:
        return bool(phonenumbers.is_emergency_number(digits, region))
    return any(phonenumbers.is_emergency_number(digits, r) for r in phonenumbers.SUPPORTED_SHORT_REGIONS)

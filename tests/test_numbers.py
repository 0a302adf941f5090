"""Normalization, every sentence of the contract's section."""

import random
import re

import pytest

from screening.domain.errors import InvalidArgument
from screening.domain.numbers import mask, normalize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+8613800138000", "+8613800138000"),
        ("+86 138 0013 8000", "+8613800138000"),
        ("+1 (415) 555-0100", "+14155550100"),
        ("+1.415.555.0100", "+14155550100"),
        ("tel:+14155550100", "+14155550100"),
        ("TEL:+1-415-555-0100", "+14155550100"),
        ("  +44 20 7946 0958 ", "+442079460958"),
        ("10086", "10086"),
        ("4155550100", "4155550100"),  # no region: bare digits stay
        ("+123456789012345", "+123456789012345"),  # 15 digits
    ],
)
def test_accepted_forms(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(415) 555-0100", "US", "+14155550100"),
        ("415 555 0100", "US", "+14155550100"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("138 0013 8000", "CN", "+8613800138000"),
        ("10086", "CN", "10086"),  # a short code is not a possible number: kept
        ("911", "US", "911"),
        ("+8613800138000", "US", "+8613800138000"),  # E.164 ignores the region
    ],
)
def test_default_region(raw: str, region: str, expected: str) -> None:
    assert normalize(raw, region=region) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("+٨٦١٣٨", "ASCII"),  # Arabic-Indic digits
        ("１２３４５", "ASCII"),  # fullwidth digits
        ("+1 415 CALL NOW", "'C'"),
        ("12\x0034", "'\\x00'"),
        ("1234567890123456", "16 digits"),
        ("+1234567890123456", "16 digits"),
        ("+", "digits after '+'"),
        ("++14155550100", "'+'"),
        ("*67 4155550100", "'*'"),
        ("", "must contain digits"),
        ("  ", "must contain digits"),
        ("--", "must contain digits"),
    ],
)
def test_rejected_forms_name_field_and_value(raw: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        normalize(raw, field="forbidden_number.number")
    assert caught.value.field == "forbidden_number.number"
    assert caught.value.value == raw
    assert reason in caught.value.message
    assert caught.value.message.startswith(f"forbidden_number.number {raw!r}")


def test_empty_allowed_for_withheld_caller_id() -> None:
    assert normalize("", allow_empty=True) == ""
    with pytest.raises(InvalidArgument):
        normalize("abc", allow_empty=True)


def test_prefix_is_never_reinterpreted_by_region() -> None:
    assert normalize("0755", region="CN", prefix=True) == "0755"
    assert normalize("+86 755", region="CN", prefix=True) == "+86755"


def test_mask_hides_the_middle() -> None:
    assert mask("+14155550100") == "+14*******00"
    assert "555" not in mask("+14155550100")


def test_output_is_what_the_index_keys_encode() -> None:
    """The index looks numbers up as integers, trusting normalize's output to be "" or digits after an optional '+'."""
    rng = random.Random(7)
    shapes = ["{}", "+{}", "0{}", "00{}", "({}) {}", "tel:+{}", "1-{}"]
    for region in (None, "US", "GB", "DE", "CN", "IN", "BR", "IT", "AR", "JP"):
        for _ in range(400):
            digits = [str(rng.randrange(10**k)) for k in (rng.randrange(1, 8), rng.randrange(1, 9))]
            raw = rng.choice(shapes).format(*digits)
            try:
                out = normalize(raw, region=region, allow_empty=True)
            except InvalidArgument:
                continue
            assert out == "" or re.fullmatch(r"\+?[0-9]+", out), (raw, region, out)


def test_the_e164_check_in_c_is_the_regex_it_replaces() -> None:
    from screening import _native
    from screening.domain.numbers import _E164

    rng = random.Random(9)
    alphabet = "+0123456789 -()a١\u00a0\u0660"
    inputs = ["", "+", "+1", "+123456789012345", "+1234567890123456", "1", "++1", "+1\n", "\n+1", "+١٢٣"]
    inputs += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 19))) for _ in range(20_000)]
    inputs += ["+" + str(rng.randrange(10**14)) for _ in range(2_000)]
    agreed = [bool(_native.is_e164(raw)) == (_E164.fullmatch(raw) is not None) for raw in inputs]
    assert all(agreed), [raw for raw, ok in zip(inputs, agreed, strict=True) if not ok][:5]
    assert sum(_E164.fullmatch(raw) is not None for raw in inputs) > 2_000

"""The router's settings file: the example loads, and each mistake is named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sipscreen.numbers import NumberPlan
from sipscreen.settings import SettingsError, load, parse
from testbed import HERE

SOURCE = {"name": "carrier", "direction": "inbound", "addresses": ["127.0.0.1:5071"], "tenant": "acme"}


def settings(**service: Any) -> dict[str, Any]:
    return {"service": service, "routing": {"next_hop": "sip:127.0.0.1:5080"}, "sources": [dict(SOURCE)]}


def test_the_example_file_loads_with_the_documented_defaults() -> None:
    example = load(HERE / "screening.toml")
    assert example.deadline == 0.2 and example.on_failure == "open" and example.enabled
    assert [(s.name, s.direction) for s in example.sources] == [("carrier", "inbound"), ("acme-pbx", "outbound")]
    assert example.site_packages == ((HERE.parent.parent / ".venv/lib/python3.11/site-packages").resolve(),)
    assert example.token == "" and example.tls is None


def test_defaults_when_the_service_table_is_empty() -> None:
    parsed = parse(settings(), Path("/"))
    assert (parsed.target, parsed.deadline, parsed.on_failure) == ("127.0.0.1:50051", 0.2, "open")
    assert (parsed.breaker_failures, parsed.breaker_cooldown, parsed.max_waiting) == (3, 2.0, 0)
    assert parsed.mask_numbers
    source = parsed.sources[0]
    assert source.identity == "from" and source.numbers == NumberPlan(national=False, international_prefix="00")


def test_the_switch_socket_is_a_path_relative_to_the_file_and_takes_no_tls(tmp_path: Path) -> None:
    assert parse(settings(), Path("/")).switch_socket == ""
    assert parse(settings(switch_socket="run/switch.sock"), tmp_path).switch_socket == str(tmp_path / "run/switch.sock")
    assert parse(settings(switch_socket="/run/s.sock"), tmp_path).switch_socket == "/run/s.sock"
    with pytest.raises(SettingsError, match="a Unix socket has no TLS"):
        parse(settings(switch_socket="/run/s.sock", tls_ca="ca.pem"), tmp_path)


def test_a_national_trunk_defaults_to_the_trunk_prefix_0_and_international_00() -> None:
    parsed = parse({**settings(), "sources": [{**SOURCE, "numbers": "national", "country_code": "44"}]}, Path("/"))
    assert parsed.sources[0].numbers == NumberPlan(True, "44", "0", "00")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (settings(deadline_ms=0), "service.deadline_ms 0: must be 1 to 10000"),
        (settings(deadline_ms="200"), "service.deadline_ms '200': expected int"),
        (settings(on_failure="maybe"), "service.on_failure 'maybe': one of open, closed"),
        (settings(target="localhost"), "service.target 'localhost': expected HOST:PORT"),
        (settings(enabled=1), "service.enabled 1: expected bool"),
        (settings(tls_cert="c.pem"), "need service.tls_ca"),
        (settings(token_file="missing.token"), "service.token_file '/missing.token': No such file"),
        ({**settings(), "routing": {"next_hop": "127.0.0.1:5080"}}, "routing.next_hop '127.0.0.1:5080'"),
        ({**settings(), "sources": []}, "at least one source"),
        ({**settings(), "sources": [{**SOURCE, "direction": "both"}]}, "sources[0].direction 'both'"),
        ({**settings(), "sources": [{**SOURCE, "tenant": ""}]}, "sources[0]: set tenant, tenant_header or both"),
        ({**settings(), "sources": [SOURCE, {**SOURCE, "name": "b"}]}, "'127.0.0.1:5071' is in both 'carrier' and 'b'"),
        ({**settings(), "sources": [{**SOURCE, "identity": "to"}]}, "sources[0].identity 'to': one of from, pai"),
        (
            {**settings(), "sources": [{**SOURCE, "direction": "outbound", "identity": "pai"}]},
            "sources[0].identity 'pai': only for inbound sources",
        ),
        ({**settings(), "sources": [{**SOURCE, "numbers": "local"}]}, "sources[0].numbers 'local': one of e164"),
        ({**settings(), "sources": [{**SOURCE, "numbers": "national"}]}, "sources[0].country_code '': numbers"),
        ({**settings(), "sources": [{**SOURCE, "country_code": "49"}]}, "sources[0].country_code: only with numbers"),
        (
            {
                **settings(),
                "sources": [{**SOURCE, "numbers": "national", "country_code": "49", "national_prefix": "o"}],
            },
            "sources[0].national_prefix 'o': expected at most 2 digits",
        ),
        ({**settings(), "sources": [{**SOURCE, "international_prefix": "+"}]}, "international_prefix '+'"),
        (settings(breaker_failures=0), "service.breaker_failures 0"),
        (settings(breaker_cooldown_ms=5), "service.breaker_cooldown_ms 5"),
        (settings(max_waiting=-1), "service.max_waiting -1"),
        ({**settings(), "logging": {"mask_numbers": "no"}}, "logging.mask_numbers 'no': expected bool"),
    ],
)
def test_each_mistake_is_refused_naming_field_and_value(data: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        parse(data, Path("/"))
    assert message in str(raised.value)


def test_an_unreadable_or_broken_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"nothing\.toml"):
        load(tmp_path / "nothing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[service\n")
    with pytest.raises(SettingsError, match=r"broken\.toml"):
        load(broken)

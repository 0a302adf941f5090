"""The integration's config file: a small TOML file read with the standard library.

Only the standard library is imported here: this module runs before the
configured site-packages (grpcio, the generated stubs) are on sys.path.
"""

from __future__ import annotations

import site
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sipscreen.h2 import Target
from sipscreen.numbers import NumberPlan

DIRECTIONS = ("inbound", "outbound")
POLICIES = ("open", "closed")
IDENTITIES = ("from", "pai")
E164 = NumberPlan()
NUMBER_FORMS = ("e164", "national")


class SettingsError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Source:
    """Where calls come from: a carrier trunk (inbound) or the enterprise's side (outbound)."""

    name: str
    direction: str
    # "HOST" (any port) or "HOST:PORT", as Kamailio reports $si and $sp.
    addresses: tuple[str, ...]
    # Fixed tenant, or the name of a header carrying it (the header wins when present).
    tenant: str
    tenant_header: str
    # Inbound: "pai" screens the P-Asserted-Identity when there is one (a trusted
    # trunk asserts it), else the From; "from" always the From.
    identity: str = "from"
    numbers: NumberPlan = E164


@dataclass(frozen=True, slots=True)
class Tls:
    """PEM bytes, read at start: the workers never touch the files."""

    ca: bytes
    # Both or neither: a client certificate for a service that requires mTLS.
    cert: bytes | None
    key: bytes | None
    # The name the service's certificate is checked against, when not the target's host.
    server_name: str


@dataclass(frozen=True, slots=True)
class Settings:
    target: str
    deadline: float
    on_failure: str
    enabled: bool
    # Sent as `authorization: Bearer <token>` (a token with the `screen` role); "" sends none.
    token: str
    tls: Tls | None
    next_hop: str
    sources: tuple[Source, ...]
    site_packages: tuple[Path, ...]
    # The service's switch socket (`serve --switch-listen unix:PATH`); "": `target`, over gRPC.
    switch_socket: str = ""
    # Circuit breaker: after this many failures in a row the policy answers at
    # once for `breaker_cooldown` s; then one call probes the service again.
    breaker_failures: int = 3
    breaker_cooldown: float = 2.0
    # Workers that may wait on the service at once; 0: one fewer than CHILDREN.
    max_waiting: int = 0
    # Numbers in the log as +49*****67.
    mask_numbers: bool = True

    def sources_by_address(self) -> dict[str, Source]:
        """ "HOST:PORT" and "HOST" keys; the router tries the first, then the second."""
        return {address: source for source in self.sources for address in source.addresses}

    def activate_site_packages(self) -> None:
        """Put the configured site-packages (with their .pth files) first on sys.path.

        Kamailio embeds the system Python; the router itself needs only its
        standard library, but a changed router may import from a virtualenv,
        which must be built for the same minor version.
        """
        tag = f"python{sys.version_info.major}.{sys.version_info.minor}"
        before = list(sys.path)
        for path in self.site_packages:
            if not path.is_dir():
                raise SettingsError(f"python.site_packages {str(path)!r}: no such directory")
            if "python3." in str(path) and tag not in str(path):
                raise SettingsError(
                    f"python.site_packages {str(path)!r}: Kamailio embeds {tag}; the packages must be built for it"
                )
            site.addsitedir(str(path))
        added = [p for p in sys.path if p not in before]
        sys.path[:] = added + before


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise SettingsError(f"[{key}]: expected a table")
    return value


def _get(table: Mapping[str, Any], where: str, key: str, kind: type, default: Any = None) -> Any:
    value = table.get(key, default)
    if value is None:
        raise SettingsError(f"{where}.{key}: required")
    # bool is an int subclass: keep them apart.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SettingsError(f"{where}.{key} {value!r}: expected {kind.__name__}")
    return value


def _source(raw: Any, index: int) -> Source:
    where = f"sources[{index}]"
    if not isinstance(raw, dict):
        raise SettingsError(f"{where}: expected a table")
    name = _get(raw, where, "name", str)
    direction = _get(raw, where, "direction", str)
    if direction not in DIRECTIONS:
        raise SettingsError(f"{where}.direction {direction!r}: one of {', '.join(DIRECTIONS)}")
    addresses = _get(raw, where, "addresses", list)
    if not addresses or not all(isinstance(a, str) and a for a in addresses):
        raise SettingsError(f"{where}.addresses {addresses!r}: expected a non-empty list of HOST or HOST:PORT")
    tenant = _get(raw, where, "tenant", str, "")
    tenant_header = _get(raw, where, "tenant_header", str, "")
    if not tenant and not tenant_header:
        raise SettingsError(f"{where}: set tenant, tenant_header or both")
    identity = _get(raw, where, "identity", str, "from")
    if identity not in IDENTITIES:
        raise SettingsError(f"{where}.identity {identity!r}: one of {', '.join(IDENTITIES)}")
    if identity == "pai" and direction != "inbound":
        raise SettingsError(f"{where}.identity 'pai': only for inbound sources (outbound screens the Request-URI)")
    return Source(name, direction, tuple(addresses), tenant, tenant_header, identity, _plan(raw, where))


def _digits(raw: Mapping[str, Any], where: str, key: str, default: str, most: int) -> str:
    value: str = _get(raw, where, key, str, default)
    if len(value) > most or not all("0" <= c <= "9" for c in value):
        raise SettingsError(f"{where}.{key} {value!r}: expected at most {most} digits")
    return value


def _plan(raw: Mapping[str, Any], where: str) -> NumberPlan:
    numbers = _get(raw, where, "numbers", str, "e164")
    if numbers not in NUMBER_FORMS:
        raise SettingsError(f"{where}.numbers {numbers!r}: one of {', '.join(NUMBER_FORMS)}")
    international_prefix = _digits(raw, where, "international_prefix", "00", 4)
    if numbers == "e164":
        for key in ("country_code", "national_prefix"):
            if key in raw:
                raise SettingsError(f'{where}.{key}: only with numbers = "national"')
        return NumberPlan(international_prefix=international_prefix)
    country_code = _digits(raw, where, "country_code", "", 3)
    if not country_code or country_code[0] == "0":
        raise SettingsError(f'{where}.country_code {country_code!r}: numbers = "national" needs one, e.g. "49"')
    national_prefix = _digits(raw, where, "national_prefix", "0", 2)
    return NumberPlan(True, country_code, national_prefix, international_prefix)


def _read(base: Path, where: str, value: str) -> bytes:
    path = base / value
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"{where} {str(path)!r}: {exc.strerror}") from exc


def _token(service: Mapping[str, Any], base: Path) -> str:
    name = _get(service, "service", "token_file", str, "")
    if not name:
        return ""
    token = _read(base, "service.token_file", name).decode(errors="replace").strip()
    if not token or any(c.isspace() for c in token):
        raise SettingsError(f"service.token_file {str(base / name)!r}: expected one token on one line")
    return token


def _tls(service: Mapping[str, Any], base: Path) -> Tls | None:
    ca = _get(service, "service", "tls_ca", str, "")
    cert = _get(service, "service", "tls_cert", str, "")
    key = _get(service, "service", "tls_key", str, "")
    if not ca:
        if cert or key:
            raise SettingsError("service.tls_cert, service.tls_key: need service.tls_ca (the service's CA)")
        return None
    if bool(cert) != bool(key):
        raise SettingsError("service.tls_cert, service.tls_key: give both or neither")
    return Tls(
        ca=_read(base, "service.tls_ca", ca),
        cert=_read(base, "service.tls_cert", cert) if cert else None,
        key=_read(base, "service.tls_key", key) if key else None,
        server_name=_get(service, "service", "tls_server_name", str, ""),
    )


def _target(service: Mapping[str, Any]) -> str:
    target: str = _get(service, "service", "target", str, "127.0.0.1:50051")
    try:
        Target.parse(target)
    except ValueError as exc:
        raise SettingsError(f"service.target {exc}") from None
    return target


def parse(data: Mapping[str, Any], base: Path) -> Settings:
    service = _table(data, "service")
    routing = _table(data, "routing")
    python = _table(data, "python")
    deadline_ms = _get(service, "service", "deadline_ms", int, 200)
    if not 1 <= deadline_ms <= 10_000:
        raise SettingsError(f"service.deadline_ms {deadline_ms}: must be 1 to 10000")
    on_failure = _get(service, "service", "on_failure", str, "open")
    if on_failure not in POLICIES:
        raise SettingsError(f"service.on_failure {on_failure!r}: one of {', '.join(POLICIES)}")
    breaker_failures = _get(service, "service", "breaker_failures", int, 3)
    breaker_cooldown_ms = _get(service, "service", "breaker_cooldown_ms", int, 2000)
    if breaker_failures < 1 or not 10 <= breaker_cooldown_ms <= 600_000:
        raise SettingsError(
            f"service.breaker_failures {breaker_failures}, service.breaker_cooldown_ms {breaker_cooldown_ms}:"
            " at least 1, and 10 to 600000"
        )
    max_waiting = _get(service, "service", "max_waiting", int, 0)
    if max_waiting < 0:
        raise SettingsError(f"service.max_waiting {max_waiting}: 0 (one fewer than CHILDREN) or more")
    logging = _table(data, "logging")
    next_hop = _get(routing, "routing", "next_hop", str)
    if not next_hop.startswith("sip:"):
        raise SettingsError(f"routing.next_hop {next_hop!r}: expected a SIP URI such as sip:127.0.0.1:5080")
    raw_sources = data.get("sources", [])
    if not isinstance(raw_sources, list) or not raw_sources:
        raise SettingsError("[[sources]]: at least one source is required")
    sources = tuple(_source(raw, i) for i, raw in enumerate(raw_sources))
    seen: dict[str, str] = {}
    for source in sources:
        for address in source.addresses:
            if address in seen:
                raise SettingsError(f"sources: address {address!r} is in both {seen[address]!r} and {source.name!r}")
            seen[address] = source.name
    switch_socket = _get(service, "service", "switch_socket", str, "")
    if switch_socket:
        switch_socket = str((base / switch_socket).resolve())
        if any(key in service for key in ("tls_ca", "tls_cert", "tls_key")):
            raise SettingsError(
                f"service.switch_socket {switch_socket!r}: a Unix socket has no TLS; remove service.tls_*"
            )
    return Settings(
        target=_target(service),
        switch_socket=switch_socket,
        deadline=deadline_ms / 1000,
        on_failure=on_failure,
        enabled=_get(service, "service", "enabled", bool, True),
        token=_token(service, base),
        tls=_tls(service, base),
        next_hop=next_hop,
        sources=sources,
        site_packages=tuple((base / p).resolve() for p in _get(python, "python", "site_packages", list, [])),
        breaker_failures=breaker_failures,
        breaker_cooldown=breaker_cooldown_ms / 1000,
        max_waiting=max_waiting,
        mask_numbers=_get(logging, "logging", "mask_numbers", bool, True),
    )


def load(path: Path) -> Settings:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise SettingsError(f"{path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: {exc}") from exc
    return parse(data, path.parent)

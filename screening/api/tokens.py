"""The auth file: named bearer tokens with roles and tenant scopes.

```toml
[[tokens]]
name = "switch-eu"
token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
roles = ["screen"]
tenants = ["acme", "globex"]   # or ["*"]: every tenant
```

Only the SHA-256 of a token is stored, so the file itself grants nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from screening.domain.errors import ConfigError
from screening.domain.validation import TENANT_PATTERN

# platform: writes shared lists (tenant ids starting with "@"); admin writes every other tenant.
ROLES = ("screen", "viewer", "admin", "platform")
ALL_TENANTS = "*"
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9._@:-]{1,64}")


@dataclass(frozen=True, slots=True, eq=False)
class Token:
    name: str
    digest: bytes
    roles: frozenset[str]
    tenants: frozenset[str]
    all_tenants: bool

    def may_act_for(self, tenant_id: str) -> bool:
        return self.all_tenants or tenant_id in self.tenants


class TokenTable:
    """The tokens of one auth file, looked up in time independent of where a match is."""

    def __init__(self, tokens: Sequence[Token]) -> None:
        self._tokens = tuple(tokens)
        # Tokens presented and found, so that a switch's every call does not
        # pay for a digest. Only valid tokens enter (at most one entry per
        # token), and str hashing is keyed per process, so a guess learns
        # nothing from how long this look-up takes.
        self._seen: dict[str, Token] = {}

    def __len__(self) -> int:
        return len(self._tokens)

    def known(self, presented: str) -> Token | None:
        """A token presented and found valid before: no digest, no throttle."""
        return self._seen.get(presented)

    def find(self, presented: str) -> Token | None:
        seen = self._seen.get(presented)
        if seen is not None:
            return seen
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        # No early exit: every stored digest is compared, whichever matches.
        for token in self._tokens:
            if hmac.compare_digest(digest, token.digest):
                found = token
        if found is not None:
            self._seen[presented] = found
        return found


def digest_of(token: str) -> str:
    """The token_sha256 an auth file holds for `token`."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def load(path: Path) -> TokenTable:
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"--auth-file {str(path)!r}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--auth-file {str(path)!r}: not valid TOML: {exc}") from None
    return parse(data, str(path))


def parse(data: Mapping[str, Any], source: str) -> TokenTable:
    def fail(where: str, reason: str) -> ConfigError:
        return ConfigError(f"--auth-file {source!r}: {where}: {reason}")

    unknown = set(data) - {"tokens"}
    if unknown:
        raise fail(sorted(unknown)[0], "unknown key; the file holds [[tokens]] tables only")
    entries = data.get("tokens", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise fail("tokens", "must be an array of tables ([[tokens]])")
    tokens: list[Token] = []
    names: set[str] = set()
    digests: set[bytes] = set()
    for i, entry in enumerate(entries):
        where = f"tokens[{i}]"
        extra = set(entry) - {"name", "token_sha256", "roles", "tenants"}
        if extra:
            raise fail(where, f"unknown key {sorted(extra)[0]!r}; keys are name, token_sha256, roles, tenants")
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise fail(where + ".name", "required: 1-64 characters of A-Z, a-z, 0-9, '.', '_', '@', ':' or '-'")
        where = f"token {name!r}"
        if name in names:
            raise fail(where, "the name is used twice; the audit trail needs unique names")
        digest = entry.get("token_sha256")
        if not isinstance(digest, str) or not _HEX_DIGEST.fullmatch(digest.lower()):
            raise fail(where + ".token_sha256", "required: the SHA-256 of the token as 64 hex digits")
        raw_digest = bytes.fromhex(digest)
        if raw_digest in digests:
            raise fail(where + ".token_sha256", "another token has the same digest")
        roles = entry.get("roles")
        if not isinstance(roles, list) or not roles or not all(r in ROLES for r in roles):
            raise fail(where + ".roles", f"required: a non-empty list of {', '.join(ROLES)}")
        tenants = entry.get("tenants")
        if not isinstance(tenants, list) or not tenants or not all(isinstance(t, str) for t in tenants):
            raise fail(where + ".tenants", 'required: a non-empty list of tenant ids, or ["*"]')
        for tenant in tenants:
            if tenant != ALL_TENANTS and not TENANT_PATTERN.fullmatch(tenant):
                raise fail(where + ".tenants", f"{tenant!r} is not a tenant id (1-64 of A-Z, a-z, 0-9, '.', '_', '-')")
        names.add(name)
        digests.add(raw_digest)
        tokens.append(
            Token(
                name=name,
                digest=raw_digest,
                roles=frozenset(roles),
                tenants=frozenset(t for t in tenants if t != ALL_TENANTS),
                all_tenants=ALL_TENANTS in tenants,
            )
        )
    return TokenTable(tokens)

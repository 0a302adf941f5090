"""Security flags and their SCREENING_* variables; Config refuses what cannot work."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from screening.api import tokens
from screening.app import config as cfg
from screening.app.config import Config
from screening.app.main import main
from screening.domain.errors import ConfigError


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name in ("auth.toml", "cert.pem", "key.pem", "ca.pem"):
        out[name] = tmp_path / name
        out[name].write_text("x")
    return out


def test_flags_and_environment(files: dict[str, Path]) -> None:
    parsed = cfg.parse(
        [f"--auth-file={files['auth.toml']}", "--listen=0.0.0.0:50051", "--max-metadata-bytes=4096"],
        environ={
            "SCREENING_TLS_CERT": str(files["cert.pem"]),
            "SCREENING_TLS_KEY": str(files["key.pem"]),
            "SCREENING_TLS_CLIENT_CA": str(files["ca.pem"]),
            "SCREENING_MAX_RECEIVE_MESSAGE_BYTES": "2048",
        },
    )
    assert parsed.auth_file == files["auth.toml"]
    assert (parsed.tls_cert, parsed.tls_key, parsed.tls_client_ca) == (
        files["cert.pem"],
        files["key.pem"],
        files["ca.pem"],
    )
    assert (parsed.max_receive_message_bytes, parsed.max_metadata_bytes) == (2048, 4096)
    from_env = cfg.parse(["--listen=0.0.0.0:1"], environ={"SCREENING_AUTH_FILE": str(files["auth.toml"])})
    assert from_env.auth_file == files["auth.toml"]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "[::1]", "localhost"])
def test_loopback_runs_without_auth(host: str) -> None:
    assert Config(listen=f"{host}:50051").auth_file is None


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]", "10.1.2.3", "screening.example.com"])
def test_other_addresses_need_auth_or_insecure(host: str) -> None:
    with pytest.raises(ConfigError, match="--insecure"):
        Config(listen=f"{host}:50051")
    assert Config(listen=f"{host}:50051", insecure=True).insecure
    assert cfg.parse([f"--listen={host}:50051"], environ={"SCREENING_INSECURE": "true"}).insecure


def test_tls_files_come_in_pairs(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="both or neither"):
        Config(tls_cert=files["cert.pem"])
    with pytest.raises(ConfigError, match="both or neither"):
        Config(tls_key=files["key.pem"])
    with pytest.raises(ConfigError, match="--tls-client-ca"):
        Config(tls_client_ca=files["ca.pem"])
    with pytest.raises(ConfigError, match="no such file"):
        Config(tls_cert=tmp_path / "missing.pem", tls_key=files["key.pem"])


def test_limits_have_bounds() -> None:
    with pytest.raises(ConfigError, match="--max-receive-message-bytes"):
        Config(max_receive_message_bytes=10)
    with pytest.raises(ConfigError, match="--max-metadata-bytes"):
        Config(max_metadata_bytes=10**9)


def entry(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "ops",
        "token_sha256": tokens.digest_of("secret"),
        "roles": ["viewer"],
        "tenants": ["acme"],
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (entry(name=""), "name"),
        (entry(token_sha256="abc"), "token_sha256"),
        (entry(roles=["root"]), "roles"),
        (entry(roles=[]), "roles"),
        (entry(tenants=[]), "tenants"),
        (entry(tenants=["a b"]), "not a tenant id"),
        (entry(extra=1), "unknown key"),
    ],
)
def test_auth_file_entries_are_checked(bad: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tokens.parse({"tokens": [bad]}, "auth.toml")


def test_auth_file_names_and_digests_are_unique() -> None:
    with pytest.raises(ConfigError, match="used twice"):
        tokens.parse({"tokens": [entry(), entry(token_sha256=tokens.digest_of("other"))]}, "auth.toml")
    with pytest.raises(ConfigError, match="same digest"):
        tokens.parse({"tokens": [entry(), entry(name="ops2")]}, "auth.toml")


def test_token_table_finds_by_digest_only() -> None:
    table = tokens.parse(
        {"tokens": [entry(), entry(name="all", token_sha256=tokens.digest_of("root"), tenants=["*"])]}, "auth.toml"
    )
    found = table.find("secret")
    assert found is not None and found.name == "ops" and found.may_act_for("acme") and not found.may_act_for("b")
    everything = table.find("root")
    assert everything is not None and everything.may_act_for("anyone")
    assert table.find(tokens.digest_of("secret")) is None
    assert table.find("") is None
    # Found again (from the table's memory of valid tokens): the same answers.
    assert table.find("secret") is found and table.find("root") is everything
    assert table.find("secret ") is None and table.find("Secret") is None


def test_a_reloaded_table_forgets_the_tokens_it_no_longer_holds() -> None:
    old = tokens.parse({"tokens": [entry()]}, "auth.toml")
    assert old.find("secret") is not None
    new = tokens.parse({"tokens": [entry(token_sha256=tokens.digest_of("rotated"))]}, "auth.toml")
    assert new.find("secret") is None and new.find("rotated") is not None


def test_auth_file_must_be_toml(tmp_path: Path) -> None:
    path = tmp_path / "auth.toml"
    path.write_text("[[tokens]\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        tokens.load(path)


def test_token_command_prints_a_usable_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--name", "switch-eu", "--role", "screen", "--tenant", "acme", "--tenant", "globex"]) == 0
    out = capsys.readouterr().out
    secret = re.search(r"# token: (\S+)", out)
    assert secret is not None
    table = tokens.parse(tomllib.loads(out), "printed")
    found = table.find(secret.group(1))
    assert found is not None and found.name == "switch-eu" and found.roles == {"screen"}
    assert found.tenants == {"acme", "globex"}

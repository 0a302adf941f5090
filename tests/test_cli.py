"""screenctl against a real server: every command, its output formats and its failures.

The CLI is synchronous; it runs in a thread so that the event loop serving
the gRPC server in this process keeps running.
"""

import asyncio
import io
import json
import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from screening.app.service import App
from screening.cli import render
from screening.cli.values import OutputFormat
from screening.v1 import screening_pb2 as pb
from tests.support import (
    Clients,
    Run,
    StartServer,
    create,
    failed,
    ok,
    rows,
    runner_for,
    until_verdict,
    wait_until,
    write_auth_file,
)
from tests.support.certs import Authority

TEMPLATE_COLUMNS = ["number", "call_type", "match_kind", "enabled", "note", "expire_time", "action"]


@pytest.fixture
def cli(server: App) -> Run:
    return runner_for(f"127.0.0.1:{server.port}")


async def add(cli: Run, number: str, *args: str, tenant: str = "acme") -> dict:
    return json.loads(ok(await cli("add", number, "--tenant", tenant, *args, "-o", "json")))


async def test_add_get_and_list_in_every_format(cli: Run, clients: Clients) -> None:
    exact = await add(cli, "+86 138 0013 8000", "--call-type", "both", "--note", "harasses agents [red]")
    assert exact["number"] == "+8613800138000"
    assert (exact["match_kind"], exact["call_type"], exact["enabled"]) == ("MATCH_KIND_EXACT", "CALL_TYPE_BOTH", True)
    prefix = await add(cli, "+1415", "--prefix", "--call-type", "inbound", "--expire-time", "2099-01-02T03:04:05Z")
    assert (prefix["match_kind"], prefix["expire_time"]) == ("MATCH_KIND_PREFIX", "2099-01-02T03:04:05Z")
    off = await add(cli, "10086", "--call-type", "OUTBOUND", "--match-kind", "exact", "--disabled")
    assert off["enabled"] is False

    table = ok(await cli("add", "+15550100", "-t", "acme", "--call-type", "outbound"))
    assert "+15550100" in table and "outbound" in table and "exact" in table

    shown = ok(await cli("get", exact["id"], "--tenant", "acme"))
    assert "+8613800138000" in shown and "harasses agents [red]" in shown  # a note is data, not markup
    assert json.loads(ok(await cli("get", exact["id"], "-t", "acme", "-o", "json"))) == exact
    single_csv = rows(ok(await cli("get", exact["id"], "-t", "acme", "-o", "csv")))
    assert [r["id"] for r in single_csv] == [exact["id"]]

    listed = json.loads(ok(await cli("list", "-t", "acme", "-o", "json")))
    assert [e["number"] for e in listed] == ["+1415", "+15550100", "+8613800138000", "10086"]

    text = ok(await cli("list", "-t", "acme", "-o", "csv"))
    header = text.splitlines()[0].split(",")
    assert header[:7] == TEMPLATE_COLUMNS  # an export can be imported again
    by_number = {r["number"]: r for r in rows(text)}
    assert by_number["+1415"] | {"id": ""} == {
        "number": "+1415",
        "call_type": "inbound",
        "match_kind": "prefix",
        "enabled": "true",
        "note": "",
        "expire_time": "2099-01-02T03:04:05Z",
        "action": "block",
        "status": "active",
        "id": "",
        "create_time": prefix["create_time"],
        "update_time": prefix["update_time"],
        "etag": prefix["etag"],
        "hit_count": "0",
        "last_hit_time": "",
    }
    assert by_number["10086"]["enabled"] == "false" and by_number["10086"]["status"] == "disabled"
    assert [
        e["number"] for e in json.loads(ok(await cli("list", "-t", "acme", "--status", "disabled", "-o", "json")))
    ] == ["10086"]
    assert [
        e["number"] for e in json.loads(ok(await cli("list", "-t", "acme", "--search", "harasses", "-o", "json")))
    ] == ["+8613800138000"]
    assert by_number["+8613800138000"]["note"] == "harasses agents [red]"

    table = ok(await cli("list", "-t", "acme"))
    assert "4 of 4 entries" in table
    for number in ("+1415", "+15550100", "+8613800138000", "10086"):
        assert number in table

    # Filters and paging.
    disabled = json.loads(ok(await cli("list", "-t", "acme", "--disabled", "-o", "json")))
    assert [e["number"] for e in disabled] == ["10086"]
    inbound = json.loads(ok(await cli("list", "-t", "acme", "--call-type", "inbound", "-o", "json")))
    assert [e["number"] for e in inbound] == ["+1415"]
    starting = json.loads(ok(await cli("list", "-t", "acme", "--number-prefix", "+1", "-o", "json")))
    assert {e["number"] for e in starting} == {"+1415", "+15550100"}
    paged = json.loads(ok(await cli("list", "-t", "acme", "--page-size", "1", "--limit", "0", "-o", "json")))
    assert paged == listed
    limited = ok(await cli("list", "-t", "acme", "--page-size", "1", "--limit", "3"))
    assert "3 of 4 entries (--limit 0 shows all)" in limited
    assert ok(await cli("list", "-t", "other", "-o", "json")).strip() == "[]"


@pytest.mark.parametrize("nanos", [0, 286_000_000, 286_123_000, 286_123_456, 1_000])
def test_csv_and_json_spell_a_time_the_same(nanos: int) -> None:
    # A server time that falls on a whole millisecond once printed .286Z in JSON but .286000Z in CSV.
    entry = pb.ForbiddenNumber(number="+15550100")
    entry.create_time.FromNanoseconds(1_795_862_265 * 10**9 + nanos)
    out = io.StringIO()
    render.listing([entry], render.ENTRY, OutputFormat.csv, out)
    json_form = render.to_dict(entry)["create_time"]
    assert rows(out.getvalue())[0]["create_time"] == json_form
    assert datetime.fromisoformat(json_form) == entry.create_time.ToDatetime(tzinfo=UTC)  # microseconds kept
    assert rows(out.getvalue())[0]["update_time"] == ""  # unset stays empty


async def test_screen_shows_the_verdict(cli: Run, clients: Clients) -> None:
    entry = await add(cli, "+1415", "--prefix", "--call-type", "inbound")
    await until_verdict(clients, "+14155550100", pb.VERDICT_BLOCK)

    blocked = json.loads(ok(await cli("screen", "+1 415 555 0100", "-t", "acme", "--call-id", "c-1", "-o", "json")))
    assert blocked == {
        "verdict": "VERDICT_BLOCK",
        "normalized_number": "+14155550100",
        "matched_id": entry["id"],
        "matched_number": "+1415",
        "matched_kind": "MATCH_KIND_PREFIX",
        "call_id": "c-1",
        "data_version": blocked["data_version"],
        "reason": "SCREEN_REASON_BLOCK_ENTRY",
        "decided_id": entry["id"],
        "decided_number": "+1415",
        "decided_kind": "MATCH_KIND_PREFIX",
        "decided_action": "ACTION_BLOCK",
        "decided_list": "",
    }
    assert blocked["data_version"] > 0
    table = ok(await cli("screen", "+14155550100", "-t", "acme", "--direction", "inbound"))
    assert "BLOCK" in table and "+1415" in table and entry["id"] in table and "a blocking entry" in table
    allowed = ok(await cli("screen", "+14155550100", "-t", "acme", "--direction", "outbound"))
    assert "ALLOW" in allowed and entry["id"] not in allowed
    assert rows(ok(await cli("screen", "+14155550100", "-t", "acme", "-d", "outbound", "-o", "csv")))[0]["verdict"] == (
        "ALLOW"
    )

    assert "INVALID_ARGUMENT" in failed(await cli("screen", "+1415abc", "-t", "acme"))
    assert "--direction" in failed(await cli("screen", "+1415", "-t", "acme", "-d", "sideways"), 2)
    assert "other direction only" in allowed  # the reason of a miss


async def test_an_allow_exception_added_and_screened_with_its_reason_and_list(cli: Run, clients: Clients) -> None:
    listed = await add(cli, "+1900", "--prefix", "--call-type", "both", tenant="@dnc")
    ok(await cli("settings", "-t", "acme", "--lists", "@dnc"))
    exception = await add(cli, "+1900555", "--prefix", "--call-type", "both", "--action", "allow")
    assert exception["action"] == "ACTION_ALLOW"
    assert "allow" in ok(await cli("list", "-t", "acme"))
    await until_verdict(clients, "+19001230000", pb.VERDICT_BLOCK)
    table = ok(await cli("screen", "+19001230000", "-t", "acme"))
    assert "BLOCK" in table and "@dnc" in table and listed["id"] in table and "a blocking entry" in table

    async def excepted() -> bool:
        answer = await clients.screening.ScreenCall(
            pb.ScreenCallRequest(tenant_id="acme", number="+19005550123", direction=pb.DIRECTION_INBOUND)
        )
        return answer.decided_id == exception["id"]

    await wait_until(excepted, within=5)
    allowed = json.loads(ok(await cli("screen", "+19005550123", "-t", "acme", "-o", "json")))
    assert (allowed["verdict"], allowed["reason"], allowed["decided_id"], allowed["decided_action"]) == (
        "VERDICT_ALLOW",
        "SCREEN_REASON_ALLOW_ENTRY",
        exception["id"],
        "ACTION_ALLOW",
    )
    assert allowed.get("matched_id", "") == allowed.get("decided_list", "") == ""  # the tenant's own: no list
    assert "an allow-exception decided" in ok(await cli("screen", "+19005550123", "-t", "acme"))
    changed = json.loads(ok(await cli("update", exception["id"], "-t", "acme", "--action", "block", "-o", "json")))
    assert changed.get("action", "ACTION_BLOCK") == "ACTION_BLOCK"
    assert "--action" in failed(await cli("add", "+1", "--call-type", "both", "--action", "maybe"), 2)


async def test_update_changes_only_the_given_fields(cli: Run) -> None:
    entry = await add(cli, "+8613800138000", "--call-type", "both", "--note", "first", "--expire-time", "2099-01-01")
    assert entry["expire_time"] == "2099-01-01T00:00:00Z"

    updated = json.loads(ok(await cli("update", entry["id"], "-t", "acme", "--call-type", "inbound", "-o", "json")))
    assert (updated["call_type"], updated["note"], updated["expire_time"]) == (
        "CALL_TYPE_INBOUND",
        "first",
        "2099-01-01T00:00:00Z",
    )
    assert updated["etag"] != entry["etag"]

    cleared = json.loads(
        ok(await cli("update", entry["id"], "-t", "acme", "--no-expire", "--note", "", "--disable", "-o", "json"))
    )
    assert "expire_time" not in cleared
    assert (cleared["note"], cleared["enabled"], cleared["call_type"]) == ("", False, "CALL_TYPE_INBOUND")

    renumbered = json.loads(
        ok(
            await cli(
                "update", entry["id"], "-t", "acme", "--number", "+86 139", "--match-kind", "prefix", "-o", "json"
            )
        )
    )
    assert (renumbered["number"], renumbered["match_kind"]) == ("+86139", "MATCH_KIND_PREFIX")

    stale = failed(await cli("update", entry["id"], "-t", "acme", "--enable", "--etag", entry["etag"]))
    assert stale.startswith("error: ABORTED: ") and "stale" in stale
    current = ok(await cli("update", entry["id"], "-t", "acme", "--enable", "--etag", renumbered["etag"]))
    assert "true" in current

    assert "nothing to update" in failed(await cli("update", entry["id"], "-t", "acme"), 2)
    assert "contradict" in failed(
        await cli("update", entry["id"], "-t", "acme", "--no-expire", "--expire-time", "+1d"), 2
    )
    assert "--expire-time 'soon'" in failed(await cli("update", entry["id"], "-t", "acme", "--expire-time", "soon"), 2)
    missing = failed(await cli("update", "nope", "-t", "acme", "--note", "x"))
    assert missing == "error: NOT_FOUND: forbidden number 'nope' not found in tenant 'acme'"


async def test_enable_disable_and_delete(cli: Run, clients: Clients) -> None:
    a = await add(cli, "+15550100", "--call-type", "both")
    b = await add(cli, "+15550101", "--call-type", "both")
    await until_verdict(clients, "+15550101", pb.VERDICT_BLOCK)

    assert ok(await cli("disable", a["id"], b["id"], "-t", "acme")).strip() == "disabled 2 entries"
    await until_verdict(clients, "+15550100", pb.VERDICT_ALLOW)
    await until_verdict(clients, "+15550101", pb.VERDICT_ALLOW)
    assert ok(await cli("enable", a["id"], "-t", "acme")).strip() == "enabled 1 entry"
    await until_verdict(clients, "+15550100", pb.VERDICT_BLOCK)

    # All or nothing: one unknown id and b stays disabled.
    assert "NOT_FOUND" in failed(await cli("enable", b["id"], "nope", "-t", "acme"))
    assert json.loads(ok(await cli("get", b["id"], "-t", "acme", "-o", "json")))["enabled"] is False
    assert failed(await cli("enable", "-t", "acme"), 2)

    assert "ABORTED" in failed(await cli("delete", a["id"], "-t", "acme", "--etag", "stale"))
    assert ok(await cli("delete", a["id"], "-t", "acme")).strip() == f"deleted {a['id']}"
    await until_verdict(clients, "+15550100", pb.VERDICT_ALLOW)
    assert "NOT_FOUND" in failed(await cli("delete", a["id"], "-t", "acme"))
    assert "NOT_FOUND" in failed(await cli("get", a["id"], "-t", "acme"))


async def test_export_streams_every_entry_in_each_format(cli: Run, clients: Clients, tmp_path: Path) -> None:
    for i in range(30):
        await create(clients, f"+1555010{i:02d}", enabled=i % 3 != 0)
    await create(clients, "+15559999", tenant="other")

    exported = rows(ok(await cli("export", "-t", "acme")))  # CSV by default
    assert [r["number"] for r in exported] == [f"+1555010{i:02d}" for i in range(30)]
    assert list(exported[0]) == TEMPLATE_COLUMNS  # exactly the template: it imports again
    disabled = rows(ok(await cli("export", "-t", "acme", "--disabled")))
    assert [r["number"] for r in disabled] == [f"+1555010{i:02d}" for i in range(0, 30, 3)]
    assert {r["enabled"] for r in disabled} == {"false"}

    as_json = json.loads(ok(await cli("export", "-t", "acme", "-o", "json", "--number-prefix", "+15550101")))
    assert [e["number"] for e in as_json] == [f"+1555010{i}" for i in range(10, 20)]
    assert "+1555010" in ok(await cli("export", "-t", "acme", "-o", "table"))

    target = tmp_path / "acme.csv"
    result = await cli("export", "-t", "acme", "--file", str(target))
    assert ok(result) == ""
    assert "exported 30 entries to" in result.stderr
    assert [r["number"] for r in rows(target.read_text())] == [r["number"] for r in exported]
    assert ok(await cli("export", "-t", "nobody")).splitlines() == [",".join(rows(target.read_text())[0])]
    unwritable = failed(await cli("export", "-t", "acme", "--file", str(tmp_path / "no" / "such" / "dir.csv")))
    assert "No such file or directory" in unwritable


async def test_a_note_a_spreadsheet_would_run_is_exported_as_text_and_imports_as_written(
    cli: Run, clients: Clients, tmp_path: Path
) -> None:
    note = '=HYPERLINK("http://evil.example","open me")'
    await create(clients, "+15550100", note=note)
    await create(clients, "+15550101", note="'=quoted by hand")
    target = tmp_path / "acme.csv"
    ok(await cli("export", "-t", "acme", "--file", str(target)))
    assert [r["note"] for r in rows(target.read_text())] == ["'" + note, "''=quoted by hand"]
    ok(await cli("import", str(target), "-t", "globex"))
    imported = json.loads(ok(await cli("export", "-t", "globex", "-o", "json")))
    assert [(e["number"], e["note"]) for e in imported] == [("+15550100", note), ("+15550101", "'=quoted by hand")]


async def test_audit_lists_changes_newest_first(cli: Run) -> None:
    entry = await add(cli, "+15550100", "--call-type", "both")
    ok(await cli("update", entry["id"], "-t", "acme", "--note", "checked"))
    ok(await cli("delete", entry["id"], "-t", "acme"))

    events = json.loads(ok(await cli("audit", "-t", "acme", "-o", "json")))
    assert [e["action"] for e in events] == ["delete", "update", "create"]
    assert {e["resource_id"] for e in events} == {entry["id"]}
    assert {e["actor"] for e in events} == {"anonymous"}
    table = ok(await cli("audit", "-t", "acme"))
    assert "note - -> checked" in table and "delete" in table
    as_csv = rows(ok(await cli("audit", "-t", "acme", "-o", "csv", "--action", "update")))
    assert [r["action"] for r in as_csv] == ["update"]
    # Behind an apostrophe: a spreadsheet would take a cell starting "+1555..: note" for a formula.
    assert as_csv[0]["change"] == "'+15550100: note - -> checked"
    assert len(json.loads(ok(await cli("audit", "-t", "acme", "--limit", "1", "-o", "json")))) == 1
    assert json.loads(ok(await cli("audit", "-t", "other", "-o", "json"))) == []


async def test_status_describes_the_replica(cli: Run, server: App) -> None:
    state = json.loads(ok(await cli("status", "-o", "json")))
    assert state["serving"] is True and state["connected"] is True
    assert 0 < state["data_version"] <= server.replica.data_version
    assert state["entries"] == 0 and state["listener_reconnects"] == 0
    assert "data version" in ok(await cli("status"))


async def test_bad_command_lines_exit_2_without_calling(cli: Run) -> None:
    assert "--tenant" in failed(await cli("list"), 2)
    assert "--call-type" in failed(await cli("add", "+15550100", "-t", "acme"), 2)
    assert "sideways" in failed(await cli("add", "+15550100", "-t", "acme", "--call-type", "sideways"), 2)
    assert "contradict" in failed(
        await cli("add", "+15550100", "-t", "acme", "--call-type", "both", "--prefix", "--match-kind", "exact"), 2
    )
    assert "yaml" in failed(await cli("list", "-t", "acme", "-o", "yaml"), 2)
    assert "--tls-key" in failed(await cli("--tls-cert", __file__, "list", "-t", "acme"), 2)


async def test_server_errors_are_one_line(cli: Run) -> None:
    bad = failed(await cli("add", "+86 abc", "-t", "acme", "--call-type", "both"))
    assert bad == (
        "error: INVALID_ARGUMENT: forbidden_number.number '+86 abc': contains 'a'; "
        "only digits, '+', spaces, '-', '.', '(' and ')' are accepted"
    )
    await add(cli, "+15550100", "--call-type", "both")
    duplicate = failed(await cli("add", "+1 555 0100", "-t", "acme", "--call-type", "inbound"))
    assert duplicate.startswith("error: ALREADY_EXISTS: ") and "+15550100" in duplicate
    long_note = failed(await cli("add", "+15550101", "-t", "acme", "--call-type", "both", "--note", "x" * 501))
    assert long_note.startswith("error: INVALID_ARGUMENT: forbidden_number.note")


async def test_unreachable_server_is_one_clear_line(tmp_path: Path) -> None:
    down = runner_for("127.0.0.1:1")
    template = tmp_path / "numbers.csv"
    template.write_text("number,call_type\n+15550100,both\n")
    for args in (
        ["list", "-t", "acme"],
        ["screen", "+15550100", "-t", "acme"],
        ["export", "-t", "acme"],
        ["status"],
        ["import", str(template), "-t", "acme"],
        ["jobs", "-t", "acme"],
    ):
        line = failed(await down(*args))
        assert line.startswith("error: cannot reach the server at 127.0.0.1:1 (is it running?"), line
        assert "Connection refused" in line
    unreadable = failed(await down("--tls-ca", str(tmp_path / "missing.pem"), "status"))
    assert unreadable == f"error: cannot read --tls-ca '{tmp_path / 'missing.pem'}': No such file or directory"


async def test_tokens_and_mutual_tls_against_an_authenticating_server(
    start_server: StartServer, tmp_path: Path
) -> None:
    """--token (or SCREENCTL_TOKEN) travels as `authorization: Bearer ...`; TLS options reach a TLS-only server."""
    ca = Authority("screenctl test CA")
    server_cert, server_key = ca.issue("localhost", server=True).write(tmp_path, "server")
    client_cert, client_key = ca.issue("admin-laptop", server=False).write(tmp_path, "client")
    ca_path = tmp_path / "ca.pem"
    ca_path.write_bytes(ca.pem)
    admin, viewer = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    auth = write_auth_file(
        tmp_path / "tokens.toml",
        {"ops": (admin, ["admin", "screen"], ["acme"]), "auditor": (viewer, ["viewer"], ["acme"])},
    )
    app = await start_server(tls_cert=server_cert, tls_key=server_key, tls_client_ca=ca_path, auth_file=auth)
    tls = ["--tls-ca", str(ca_path), "--tls-cert", str(client_cert), "--tls-key", str(client_key)]
    run = runner_for(f"localhost:{app.port}")

    added = json.loads(
        ok(await run(*tls, "--token", admin, "add", "+15550100", "-t", "acme", "--call-type", "both", "-o", "json"))
    )
    as_env = await run(*tls, "list", "-t", "acme", "-o", "json", env={"SCREENCTL_TOKEN": viewer})
    assert [e["id"] for e in json.loads(ok(as_env))] == [added["id"]]
    events = json.loads(ok(await run(*tls, "--token", viewer, "audit", "-t", "acme", "-o", "json")))
    assert [(e["action"], e["actor"]) for e in events] == [("create", "ops")]

    assert failed(await run(*tls, "list", "-t", "acme")).startswith("error: UNAUTHENTICATED: ")
    assert failed(await run(*tls, "--token", "wrong", "list", "-t", "acme")).startswith("error: UNAUTHENTICATED: ")
    denied = failed(await run(*tls, "--token", viewer, "delete", added["id"], "-t", "acme"))
    assert denied.startswith("error: PERMISSION_DENIED: ")
    other = failed(await run(*tls, "--token", admin, "list", "-t", "other"))
    assert other.startswith("error: PERMISSION_DENIED: ")

    # Without TLS, or without the client certificate, the connection itself fails: one line still.
    plain = failed(await run("--token", admin, "list", "-t", "acme"))
    assert plain.startswith(f"error: cannot reach the server at localhost:{app.port}")
    no_client_cert = failed(await run("--tls-ca", str(ca_path), "--token", admin, "list", "-t", "acme"))
    assert no_client_cert.startswith(f"error: cannot reach the server at localhost:{app.port}")
    # A server name override: the certificate says localhost, the address is an IP.
    by_ip = runner_for(f"127.0.0.1:{app.port}")
    named = await by_ip(*tls, "--tls-server-name", "localhost", "--token", admin, "get", added["id"], "-t", "acme")
    assert added["id"] in ok(named)


async def test_tenant_before_or_after_the_command_or_from_the_environment(server: App) -> None:
    run = runner_for(f"127.0.0.1:{server.port}")
    ok(await run("--tenant", "acme", "add", "+15550100", "--call-type", "both"))
    await add(run, "+15550101", "--call-type", "both", tenant="globex")
    listed = json.loads(ok(await run("list", "-o", "json", env={"SCREENCTL_TENANT": "acme"})))
    assert [e["number"] for e in listed] == ["+15550100"]
    assert json.loads(ok(await run("-t", "acme", "list", "-o", "json"))) == listed
    # After the command wins over before it, which wins over the environment.
    globex = json.loads(
        ok(await run("-t", "acme", "list", "-t", "globex", "-o", "json", env={"SCREENCTL_TENANT": "x"}))
    )
    assert [e["number"] for e in globex] == ["+15550101"]
    assert json.loads(ok(await run("-t", "acme", "list", "-o", "json", env={"SCREENCTL_TENANT": "globex"}))) == listed
    missing = failed(await run("list"), 2)
    assert missing == "error: missing --tenant: name the enterprise to act on (or set SCREENCTL_TENANT)"


def screenctl_process(*args: str, server: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCREENCTL_")} | {"SCREENCTL_SERVER": server}
    script = Path(sys.executable).parent / "screenctl"
    return subprocess.run([str(script), *args], env=env, capture_output=True, text=True, timeout=60)


async def test_console_script_from_add_to_a_blocked_call(server: App) -> None:
    address = f"127.0.0.1:{server.port}"
    added = await asyncio.to_thread(
        screenctl_process, "add", "+8613800138000", "--tenant", "acme", "--call-type", "inbound", server=address
    )
    assert added.returncode == 0, added.stderr
    assert "+8613800138000" in added.stdout

    async def blocked() -> bool:
        result = await asyncio.to_thread(
            screenctl_process, "screen", "+86 138 0013 8000", "--tenant", "acme", "-o", "json", server=address
        )
        return result.returncode == 0 and json.loads(result.stdout)["verdict"] == "VERDICT_BLOCK"

    await wait_until(blocked, within=10, interval=0.1)

    down = await asyncio.to_thread(screenctl_process, "list", "--tenant", "acme", server="127.0.0.1:1")
    assert down.returncode == 1
    assert down.stdout == ""
    assert down.stderr.count("\n") == 1 and "Traceback" not in down.stderr
    assert down.stderr.startswith("error: cannot reach the server at 127.0.0.1:1")


async def test_settings_and_a_region_change_from_the_command_line(cli: Run, clients: Clients) -> None:
    shown = json.loads(ok(await cli("settings", "-t", "acme", "-o", "json")))
    assert (shown["tenant_id"], shown["region"], shown["etag"]) == ("acme", "", "")
    changed = json.loads(
        ok(
            await cli(
                "settings",
                "-t",
                "acme",
                "--display-name",
                "ACME",
                "--withheld",
                "block",
                "--lists",
                "@dnc",
                "-o",
                "json",
            )
        )
    )
    assert (changed["display_name"], changed["withheld_policy"], changed["subscribed_lists"]) == (
        "ACME",
        "WITHHELD_POLICY_BLOCK",
        ["@dnc"],
    )
    entry = await add(cli, "4155550102", "--call-type", "both")
    review = rows(ok(await cli("region", "us", "-t", "acme", "-o", "csv")))
    assert review == [{"id": entry["id"], "number": "4155550102", "number_in_region": "+14155550102"}]
    converted = await cli("region", "US", "-t", "acme", "--convert")
    assert converted.exit_code == 0 and "converted 1 entries" in converted.stderr
    assert json.loads(ok(await cli("get", entry["id"], "-t", "acme", "-o", "json")))["number"] == "+14155550102"
    assert "INVALID_ARGUMENT" in failed(await cli("settings", "-t", "acme", "--region", "XX"))

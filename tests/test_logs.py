"""Logs: one line per event, text or JSON, never a token, never a whole number at INFO."""

import asyncio
import io
import json
import logging
import signal
import sys
import urllib.request

import grpc
from prometheus_client.parser import text_string_to_metric_families

from screening.app import logs
from screening.v1 import screening_pb2 as pb
from tests.support import Clients, create, free_port, serving, until_verdict

TOKEN = "tok-9f8e7d6c5b4a"


def emit(formatter: logging.Formatter, message: str, *args: object, **extra: object) -> str:
    logger = logging.getLogger("test.logs")
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = logger.makeRecord(
            "test.logs", logging.ERROR, __file__, 1, message, args, exc_info=sys.exc_info(), extra=extra
        )
    return formatter.format(record)


def test_text_keeps_an_event_with_its_traceback_on_one_line() -> None:
    line = emit(logs.TextFormatter(), "failed for %s", f"authorization: Bearer {TOKEN}")
    assert "\n" not in line
    assert line.split(" ")[1:3] == ["ERROR", "test.logs:"]
    assert "ValueError: boom\\nsecond line" in line and "Traceback" in line
    assert TOKEN not in line and "Bearer [redacted]" in line


def test_json_is_one_object_per_line_with_extra_fields() -> None:
    line = emit(logs.JsonFormatter(), "admin %s", "Create", rpc="Create", header=f"bearer {TOKEN}")
    assert "\n" not in line
    event = json.loads(line)
    assert event["level"] == "ERROR" and event["logger"] == "test.logs" and event["message"] == "admin Create"
    assert event["rpc"] == "Create" and event["header"] == "bearer [redacted]"
    assert event["time"].endswith("Z")
    assert "ValueError: boom" in event["exception"]
    assert TOKEN not in line


def test_configure_replaces_handlers() -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        logs.configure("WARNING", "json", stream)
        logging.getLogger("x").info("hidden")
        logging.getLogger("x").warning("shown %d", 1)
        assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["shown 1"]
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


async def test_served_json_logs_and_metrics_from_the_environment(run_server, dsn: str) -> None:
    metrics_port = free_port()
    server = run_server(
        "--database-url",
        dsn,
        "--log-format",
        "json",
        SCREENING_METRICS_LISTEN=f"127.0.0.1:{metrics_port}",
    )
    await serving(server.address)
    bearer = (("authorization", f"Bearer {TOKEN}"),)
    async with grpc.aio.insecure_channel(server.address) as channel:
        clients = Clients(channel)
        entry = await clients.admin.CreateForbiddenNumber(
            pb.CreateForbiddenNumberRequest(
                forbidden_number=pb.ForbiddenNumber(
                    tenant_id="acme", number="+8613800138000", call_type=pb.CALL_TYPE_BOTH
                )
            ),
            metadata=bearer,
        )
        try:
            await create(clients, "+86 138 0013 8000")  # a duplicate: its message quotes the number
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.ALREADY_EXISTS
        await until_verdict(clients, "+8613800138000", pb.VERDICT_BLOCK)

        def scrape() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
                return str(response.read().decode())

        families = {f.name: f for f in text_string_to_metric_families(await asyncio.to_thread(scrape))}
        assert families["screening_entries_loaded"].samples[0].value == 1
        calls = {
            (s.labels["method"], s.labels["code"]): s.value
            for s in families["screening_admin_calls"].samples
            if s.name == "screening_admin_calls_total"
        }
        assert calls == {("CreateForbiddenNumber", "OK"): 1, ("CreateForbiddenNumber", "ALREADY_EXISTS"): 1}

    server.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(server.proc.wait, 20) == 0
    output = server.output()
    events = [json.loads(line) for line in output.splitlines()]  # every line is one JSON event
    messages = [e["message"] for e in events]
    assert any(m.startswith("listening on ") for m in messages)
    assert any(m.startswith("metrics at http://127.0.0.1:") for m in messages)
    admin = [e for e in events if e["logger"] == "screening.api.access"]
    assert [(e["rpc"], e["code"]) for e in admin] == [
        ("CreateForbiddenNumber", "OK"),
        ("CreateForbiddenNumber", "ALREADY_EXISTS"),
    ]
    assert all(e["duration_ms"] >= 0 for e in admin)
    assert TOKEN not in output
    assert "13800138000" not in output and entry.id not in output


def test_bad_log_format_is_refused(run_server) -> None:
    server = run_server("--log-format", "xml")
    assert server.proc.wait(10) == 2
    assert "--log-format 'xml': one of text, json" in server.output()

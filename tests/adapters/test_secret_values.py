"""Secret values are masked wherever they appear, not only under secret-looking keys.

A real HTTP controller on loopback echoes the bearer token it received back in
its JSON (in the very fields the adapter quotes when it rejects a payload) and
in its error bodies. The daemon's JSON logging (``configure_logging``) is
captured from stderr and the telemetry is recorded into a real SQLite store:
the token appears in neither.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from adapter_helpers import FAST_RECONNECT, WallClock
from sqlmodel import select

from adapters import HttpProcessController
from vpp.config.models import FlexibleProcessSpec, HttpAdapter
from vpp.logging import (
    MIN_SECRET_CHARS,
    configure_logging,
    forget_secrets,
    redact_text,
    register_secret,
)
from vpp.runtime.recording import StoreRecorder
from vpp.store import Store, TelemetryRecord
from vpp.types import Health

TOKEN = "tok-4f9a1c77e2b0d35a"
ENV = "VPP_TEST_ECHO_TOKEN"


class EchoController:
    """A controller that puts the Authorization header it got into what it answers."""

    def __init__(self) -> None:
        self.mode = "ok"  # "ok" | "echo_in_power" | "echo_in_time" | "reject"
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                echoed = self.headers.get("Authorization", "")
                now = dt.datetime.now(dt.UTC).isoformat()
                body: dict[str, Any] = {"measured_at": now, "consumption_kw": 400.0}
                body["debug"] = {"you_sent": echoed, "token": echoed.removeprefix("Bearer ")}
                status = 200
                if peer.mode == "echo_in_power":
                    body["consumption_kw"] = f"bad value for {echoed}"
                elif peer.mode == "echo_in_time":
                    body["measured_at"] = echoed.removeprefix("Bearer ")
                elif peer.mode == "reject":
                    status = 403
                    body = {"error": f"token {echoed} is revoked"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.fixture(autouse=True)
def _fresh_secrets() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


@pytest.fixture
def peer() -> Iterator[EchoController]:
    controller = EchoController()
    yield controller
    controller.close()


PROCESS = FlexibleProcessSpec.model_validate(
    {
        "id": "electrolyser",
        "type": "flexible_process",
        "max_power_kw": 1000,
        "shift_up_kw": 300,
        "shift_down_kw": 300,
        "recovery_window_h": 4,
        "baseline": {"path": "x.csv"},
    }
)


def _adapter(peer: EchoController, client: httpx.Client) -> HttpProcessController:
    spec = HttpAdapter.model_validate(
        {
            "type": "http",
            "base_url": peer.base_url,
            "token_env": ENV,
            "timeout_s": 1.0,
            "retries": 0,
            "backoff_s": 0.0,
        }
    )
    return HttpProcessController(
        "p", PROCESS, spec, clock=WallClock(), reconnect=FAST_RECONNECT, client=client
    )


def _stored_rows(store: Store) -> list[str]:
    with store.session() as session:
        return [repr(r.model_dump()) for r in session.exec(select(TelemetryRecord))]


def test_a_controller_echoing_its_token_leaks_it_into_no_log_line_and_no_stored_row(
    peer: EchoController,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV, TOKEN)
    configure_logging(json=True, level="DEBUG")
    store = Store(f"sqlite:///{tmp_path / 'vpp.db'}")
    recorder = StoreRecorder(store)
    readings = []
    details = []
    with httpx.Client(timeout=httpx.Timeout(2.0)) as client:
        adapter = _adapter(peer, client)
        adapter.cycle()  # connect + first poll, in this thread
        readings.append(adapter.read())
        assert readings[-1].health is Health.OK
        for mode in ("echo_in_power", "ok", "echo_in_time", "ok", "reject", "ok"):
            peer.mode = mode
            adapter._next_attempt = 0.0  # reconnect at once after the 403
            adapter.cycle()
            readings.append(adapter.read())
            status = adapter.health()
            details.append((None if status.reason is None else str(status.reason), status.detail))
        adapter.close()
    recorder.record_telemetry(readings)

    # The faults were recorded, with the echoed token masked in their details.
    assert details == [
        ("malformed", "consumption_kw = 'bad value for Bearer ***': must be a number"),
        (None, None),
        ("malformed", "measured_at = '***': not ISO 8601"),
        (None, None),
        ("unauthorized", "GET /telemetry: HTTP 403 (check the token)"),
        (None, None),
    ]
    assert readings[-1].health is Health.OK, "the adapter recovered when the payload was fine"

    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(e["event"] == "asset_unavailable" and "***" in e["detail"] for e in lines)
    assert TOKEN not in err
    rows = _stored_rows(store)
    assert len(rows) == len(readings), "every reading was stored"
    assert all(TOKEN not in row for row in rows)


def test_the_processor_masks_values_in_nested_fields_the_event_and_exceptions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    register_secret(TOKEN)
    configure_logging(json=True)
    log = structlog.get_logger("test")
    log.info(f"event carrying {TOKEN}", body={"items": [TOKEN, {"deep": f"x{TOKEN}y"}]})
    try:
        raise RuntimeError(f"device said {TOKEN}")
    except RuntimeError:
        log.exception("device_failed", error=RuntimeError(f"again {TOKEN}"))
    err = capsys.readouterr().err
    assert TOKEN not in err
    first, second = (json.loads(line) for line in err.splitlines())
    assert first["event"] == "event carrying ***"
    assert first["body"] == {"items": ["***", {"deep": "x***y"}]}
    assert "device said ***" in second["exception"]
    assert second["error"] == "RuntimeError: again ***"


def test_short_values_are_not_registered_so_logs_stay_readable() -> None:
    assert register_secret("1") is False
    assert register_secret("a" * (MIN_SECRET_CHARS - 1)) is False
    assert register_secret(None) is False
    assert redact_text("port 1 aaaaa") == "port 1 aaaaa"
    assert register_secret("abcdef") is True
    assert redact_text("xabcdefx abcdef") == "x***x ***"


def test_config_loading_registers_every_env_secret_and_exchange_tokens(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.vpp.daemon_support import load, make_config

    monkeypatch.setenv("VPP_HOUSTON_PROCESS_TOKEN", "houston-process-token")
    monkeypatch.setenv("VPP_OCPP_PASSWORD", "ocpp-password-42")
    monkeypatch.setenv("VPP_EXCHANGE_TOKENS", "first-exchange-token,second-exchange-token")
    load(make_config(tmp_path))
    text = "houston-process-token ocpp-password-42 first-exchange-token second-exchange-token"
    assert redact_text(text) == "*** *** *** ***"

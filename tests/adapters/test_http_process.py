"""The http adapter against a real stdlib HTTP server on loopback."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from adapter_helpers import FAST_RECONNECT, WallClock, wait_until
from structlog.testing import capture_logs

from adapters import DeviceFaultError, HttpProcessController
from vpp.config.models import FlexibleProcessSpec, HttpAdapter
from vpp.types import Health, Setpoint

TOKEN = "s3cret-token-value"


class Controller:
    """What the process controller serves; tests change it mid-run."""

    def __init__(self) -> None:
        self.consumption_kw: float = 600.0
        self.age_s = 0.0
        self.delay_s = 0.0
        self.body: bytes | None = None  # raw body override (malformed payloads)
        self.fail_next = 0  # answer HTTP 500 this many times
        self.setpoints: list[dict] = []
        self.auth_headers: list[str | None] = []
        self.lock = threading.Lock()


def handler_for(state: Controller) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _reply(self, status: int, body: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _gate(self) -> bool:
            if state.delay_s:
                time.sleep(state.delay_s)
            with state.lock:
                state.auth_headers.append(self.headers.get("Authorization"))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._reply(401, b'{"error": "unauthorized"}')
                    return False
                if state.fail_next:
                    state.fail_next -= 1
                    self._reply(500, b'{"error": "busy"}')
                    return False
            return True

        def do_GET(self) -> None:
            if self.path != "/api/telemetry":
                self._reply(404)
                return
            if not self._gate():
                return
            if state.body is not None:
                self._reply(200, state.body)
                return
            measured = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=state.age_s)
            payload = {
                "measured_at": measured.isoformat(),
                "consumption_kw": state.consumption_kw,
                "setpoint_kw": None,
            }
            self._reply(200, json.dumps(payload).encode())

        def do_PUT(self) -> None:
            if self.path != "/api/setpoint":
                self._reply(404)
                return
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            if not self._gate():
                return
            with state.lock:
                state.setpoints.append(body)
                state.consumption_kw = body["consumption_kw"]
            self._reply(204)

    return Handler


class ControllerServer:
    def __init__(self) -> None:
        self.state = Controller()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler_for(self.state))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(5)
            self._server = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"


@pytest.fixture
def server() -> Iterator[ControllerServer]:
    peer = ControllerServer()
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(1.0)) as c:
        yield c


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


def make(
    server: ControllerServer,
    client: httpx.Client,
    clock: WallClock,
    monkeypatch: pytest.MonkeyPatch,
    poll_interval_s: float = 0.05,
    **spec: object,
) -> HttpProcessController:
    monkeypatch.setenv("VPP_TEST_PROCESS_TOKEN", TOKEN)
    fields: dict[str, object] = {
        "type": "http",
        "base_url": server.base_url,
        "token_env": "VPP_TEST_PROCESS_TOKEN",
        "timeout_s": 0.3,
        "retries": 2,
        "backoff_s": 0.01,
        "stale_after_s": 30,
    }
    fields.update(spec)
    adapter = HttpAdapter.model_validate(fields)
    return HttpProcessController(
        "p",
        PROCESS,
        adapter,
        clock=clock,
        reconnect=FAST_RECONNECT,
        client=client,
        poll_interval_s=poll_interval_s,
    )


def setpoint(power_kw: float, clock: WallClock) -> Setpoint:
    return Setpoint("p", "electrolyser", clock.now(), power_kw)


def test_reads_consumption_as_negative_power_and_writes_setpoint(
    server: ControllerServer,
    client: httpx.Client,
    wall_clock: WallClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with make(server, client, wall_clock, monkeypatch) as device, capture_logs() as logs:
        t = device.read()
        assert t.health is Health.OK
        assert t.power_kw == -600  # 600 kW drawn
        sent = device.write(setpoint(-1500, wall_clock))  # beyond max_power_kw
        assert sent.power_kw == -1000
        assert server.state.setpoints[-1]["consumption_kw"] == 1000
        wait_until(lambda: device.read().power_kw == -1000, what="new consumption")
    assert all(h == f"Bearer {TOKEN}" for h in server.state.auth_headers)
    assert any(e["event"] == "setpoint_clamped" for e in logs)
    assert TOKEN not in repr(logs)  # the secret never reaches a log event


def test_retries_server_errors_with_backoff(
    server: ControllerServer,
    client: httpx.Client,
    wall_clock: WallClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No background polls during the test: only the writes meet the failures.
    with make(server, client, wall_clock, monkeypatch, 3600, retries=2) as device:
        server.state.fail_next = 2  # two 500s, then success within the 2 retries
        device.write(setpoint(-700, wall_clock))
        assert server.state.setpoints[-1]["consumption_kw"] == 700
        server.state.fail_next = 3  # more failures than retries
        with pytest.raises(DeviceFaultError, match="HTTP 500"):
            device.write(setpoint(-650, wall_clock))


def test_missing_token_and_wrong_token(
    server: ControllerServer,
    client: httpx.Client,
    wall_clock: WallClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    device = make(server, client, wall_clock, monkeypatch)
    monkeypatch.delenv("VPP_TEST_PROCESS_TOKEN")
    device.connect()
    try:
        assert device.read().reason == "credentials_missing"
        assert server.state.auth_headers == []  # nothing was sent without a token
    finally:
        device.close()
    monkeypatch.setenv("VPP_TEST_PROCESS_TOKEN", "wrong")
    with capture_logs() as logs:
        device = make(server, client, wall_clock, monkeypatch)
        monkeypatch.setenv("VPP_TEST_PROCESS_TOKEN", "wrong")
        device.connect()
        try:
            assert device.read().reason == "unauthorized"
        finally:
            device.close()
    assert "wrong" not in repr([e for e in logs if e["event"] != "reconnect_scheduled"])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>oops</html>", "malformed"),
        (b'{"measured_at": "2025-01-01T00:00:00", "consumption_kw": 5}', "malformed"),
        (b'{"consumption_kw": 5}', "malformed"),
        (b'{"measured_at": "NOW", "consumption_kw": "5"}', "malformed"),
        (b"[1, 2]", "malformed"),
    ],
)
def test_malformed_payloads(
    server: ControllerServer,
    client: httpx.Client,
    wall_clock: WallClock,
    monkeypatch: pytest.MonkeyPatch,
    body: bytes,
    reason: str,
) -> None:
    with make(server, client, wall_clock, monkeypatch) as device:
        assert device.read().health is Health.OK
        server.state.body = body
        wait_until(lambda: device.read().reason == reason, what=reason)
        server.state.body = None
        wait_until(lambda: device.read().health is Health.OK, what="recovery")


def test_out_of_range_and_stale_telemetry(
    server: ControllerServer,
    client: httpx.Client,
    wall_clock: WallClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with make(server, client, wall_clock, monkeypatch, stale_after_s=10) as device:
        server.state.consumption_kw = -50.0  # a process cannot feed in
        wait_until(lambda: device.read().reason == "out_of_range", what="negative consumption")
        server.state.consumption_kw = 500.0
        wait_until(lambda: device.read().health is Health.OK, what="recovery")
        server.state.consumption_kw = 5000.0  # 5x its maximum
        wait_until(lambda: device.read().reason == "out_of_range", what="too large")
        server.state.consumption_kw = 500.0
        server.state.age_s = 60  # the controller serves an old reading
        with capture_logs() as logs:
            wait_until(lambda: device.read().reason == "stale", what="stale")
        assert any(e["event"] == "asset_unavailable" and e["reason"] == "stale" for e in logs)
        server.state.age_s = 0
        wait_until(lambda: device.read().health is Health.OK, what="recovery")


def test_killed_and_slow_server(
    server: ControllerServer,
    client: httpx.Client,
    wall_clock: WallClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with make(server, client, wall_clock, monkeypatch, retries=0) as device:
        assert device.read().health is Health.OK
        server.stop()
        wait_until(lambda: device.read().reason == "connection_lost", what="connection lost")
        server.start()  # same port
        wait_until(lambda: device.read().health is Health.OK, what="reconnected")
        server.state.delay_s = 0.5  # slower than timeout_s = 0.3
        wait_until(lambda: device.read().reason == "timeout", what="timeout")
        server.state.delay_s = 0.0
        wait_until(lambda: device.read().health is Health.OK, what="recovered")

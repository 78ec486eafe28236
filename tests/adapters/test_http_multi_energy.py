"""The http adapter for heat pumps, electrolysers and stores, against a loopback controller."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from adapter_helpers import FAST_RECONNECT, WallClock, park_with, wait_until

from adapters import HttpController, ReadOnlyError, create
from vpp.types import Health, Setpoint


class Peer:
    """A controller serving ``fields`` (plus a fresh ``measured_at``) and taking setpoints."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields
        self.age_s = 0.0
        self.setpoints: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _reply(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                measured = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=peer.age_s)
                with peer.lock:
                    payload = {"measured_at": measured.isoformat(), **peer.fields}
                self._reply(200, json.dumps(payload).encode())

            def do_PUT(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                with peer.lock:
                    peer.setpoints.append(body)
                    peer.fields["consumption_kw"] = body["consumption_kw"]
                self._reply(204)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(1.0)) as c:
        yield c


def _device(
    peer: Peer, asset: dict[str, Any], clock: WallClock, client: httpx.Client, **spec: object
) -> HttpController:
    adapter = {"type": "http", "base_url": peer.base_url, "timeout_s": 0.3, "retries": 0, **spec}
    park = park_with({**asset, "adapter": adapter})
    device = create(park, asset["id"], clock=clock, reconnect=FAST_RECONNECT, http_client=client)
    assert isinstance(device, HttpController)
    device.poll_interval_s = 0.05
    return device


HEAT_PUMP = {
    "id": "hp",
    "type": "heat_pump",
    "power_kw": 500,
    "level": "hot_water",
    "max_sink_temperature_c": 90,
    "source_temperature_c": 20,
}
TANK = {
    "id": "tank",
    "type": "thermal_storage",
    "level": "hot_water",
    "capacity_kwh": 2000,
    "charge_kw": 500,
    "discharge_kw": 500,
}
ELECTROLYSER = {"id": "ely", "type": "electrolyser", "power_kw": 1000, "kwh_per_kg": 55}


def test_heat_pump_setpoint_and_every_declared_register(
    wall_clock: WallClock, client: httpx.Client
) -> None:
    peer = Peer({"consumption_kw": 120.0, "consumed_kwh": 1000.5, "heat_kwh": 3300.0})
    try:
        with _device(peer, HEAT_PUMP, wall_clock, client) as device:
            t = device.read()
            assert t.health is Health.OK
            assert t.power_kw == -120
            assert t.extra["consumed_kwh"] == 1000.5
            assert t.extra["heat_kwh"] == 3300.0
            sent = device.write(Setpoint("test-park", "hp", wall_clock.now(), -900))
            assert sent.power_kw == -500  # clamped to the rating before it is sent
            assert peer.setpoints[-1]["consumption_kw"] == 500
            wait_until(lambda: device.read().power_kw == -500, what="new draw")
            peer.fields["heat_kwh"] = -3.0  # a counter cannot run below zero
            wait_until(lambda: device.read().reason == "out_of_range", what="bad counter")
            peer.fields["heat_kwh"] = 3400.0
            wait_until(lambda: device.read().health is Health.OK, what="recovery")
            peer.age_s = 120
            wait_until(lambda: device.read().reason == "stale", what="stale")
    finally:
        peer.stop()


def test_electrolyser_reads_hydrogen(wall_clock: WallClock, client: httpx.Client) -> None:
    peer = Peer({"consumption_kw": 600.0, "consumed_kwh": 10.0, "hydrogen_kg": 2.5, "heat_kwh": 1.0})
    try:
        with _device(peer, ELECTROLYSER, wall_clock, client) as device:
            t = device.read()
            assert t.power_kw == -600
            assert t.extra["hydrogen_kg"] == 2.5
            assert device.capabilities.min_kw == -1000
    finally:
        peer.stop()


def test_thermal_storage_is_read_only_with_soc_and_storage_registers(
    wall_clock: WallClock, client: httpx.Client
) -> None:
    peer = Peer({"soc": 0.4, "charged_kwh": 50.0, "discharged_kwh": 20.0})
    try:
        with _device(peer, TANK, wall_clock, client) as device:
            t = device.read()
            assert t.health is Health.OK
            assert t.power_kw == 0  # no consumption_kw: a store draws nothing at the grid
            assert t.soc == 0.4
            assert t.extra == {"charged_kwh": 50.0, "discharged_kwh": 20.0}
            assert device.capabilities.reports_soc
            with pytest.raises(ReadOnlyError):
                device.write(Setpoint("test-park", "tank", wall_clock.now(), 0))
            assert peer.setpoints == []
            peer.fields["soc"] = 1.7
            wait_until(lambda: device.read().reason == "out_of_range", what="soc > 1")
            del peer.fields["soc"]
            wait_until(lambda: device.read().reason == "malformed", what="soc missing")
    finally:
        peer.stop()


def test_unreachable_controller_is_unavailable_not_raised(
    wall_clock: WallClock, client: httpx.Client
) -> None:
    peer = Peer({})
    peer.stop()  # nothing listens any more
    device = _device(peer, HEAT_PUMP, wall_clock, client)
    device.connect()
    try:
        assert device.read().reason == "connection_lost"
    finally:
        device.close()

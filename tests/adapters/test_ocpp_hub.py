"""The OCPP central system against charge point clients from the ``ocpp`` package."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from adapter_helpers import FAST_RECONNECT, WallClock, wait_until
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from structlog.testing import capture_logs
from websockets.asyncio.client import ClientConnection, connect

from adapters import DeviceFaultError, OcppHub
from adapters._loop import LoopThread
from vpp.config.models import EvChargingSpec, OcppAdapter
from vpp.types import Health, Setpoint

USER, PASSWORD = "vpp-cs", "pa55-w0rd-value"


class ChargePointClient(ChargePoint):
    """A charge point that records the charging profiles it is sent."""

    def __init__(self, cp_id: str, connection: ClientConnection) -> None:
        super().__init__(cp_id, connection, response_timeout=5)
        self.limits_w: list[float] = []
        self.profile_delay_s = 0.0

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any]
    ) -> call_result.SetChargingProfile:
        if self.profile_delay_s:
            await asyncio.sleep(self.profile_delay_s)
        assert cs_charging_profiles["charging_profile_purpose"] == "ChargePointMaxProfile"
        schedule = cs_charging_profiles["charging_schedule"]
        assert schedule["charging_rate_unit"] == "W"
        self.limits_w.append(schedule["charging_schedule_period"][0]["limit"])
        return call_result.SetChargingProfile(status="Accepted")


class Station:
    """One charge point on its own event loop thread, driven synchronously by the test."""

    def __init__(self, port: int, cp_id: str, user: str = USER, password: str = PASSWORD) -> None:
        self.loop = LoopThread(f"cp-{cp_id}")
        self.port, self.cp_id, self.user, self.password = port, cp_id, user, password
        self.cp: ChargePointClient | None = None
        self._task: asyncio.Future[None] | None = None

    async def _connect(self) -> None:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        ws = await connect(
            f"ws://127.0.0.1:{self.port}/{self.cp_id}",
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers={"Authorization": f"Basic {token}"},
            open_timeout=5,
        )
        self.cp = ChargePointClient(self.cp_id, ws)
        self._task = asyncio.ensure_future(self.cp.start())

    def connect(self) -> Station:
        self.loop.run(self._connect(), 5)
        return self

    def call(self, payload: Any) -> Any:
        assert self.cp is not None
        return self.loop.run(self.cp.call(payload), 5)

    def send_raw(self, text: str) -> None:
        assert self.cp is not None
        self.loop.run(self.cp._connection.send(text), 5)

    async def _close(self) -> None:
        if self.cp is not None:
            await self.cp._connection.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def disconnect(self) -> None:
        self.loop.run(self._close(), 5)

    def close(self) -> None:
        self.disconnect()
        self.loop.stop()

    # ------------------------------------------------------------------ OCPP messages

    def boot(self, status: str = "Available") -> None:
        result = self.call(call.BootNotification(charge_point_model="T1", charge_point_vendor="V"))
        assert result.status == "Accepted"
        self.call(call.StatusNotification(connector_id=1, error_code="NoError", status=status))

    def start(self, meter_wh: int = 1000) -> int:
        result = self.call(
            call.StartTransaction(
                connector_id=1, id_tag="TAG1", meter_start=meter_wh, timestamp=now_iso()
            )
        )
        return int(result.transaction_id)

    def meter(self, transaction_id: int, power: str, energy_wh: str) -> None:
        self.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=transaction_id,
                meter_value=[
                    {
                        "timestamp": now_iso(),
                        "sampledValue": [
                            {"value": power, "measurand": "Power.Active.Import", "unit": "W"},
                            {"value": energy_wh, "measurand": "Energy.Active.Import.Register"},
                        ],
                    }
                ],
            )
        )

    def stop(self, transaction_id: int, meter_wh: int) -> None:
        self.call(
            call.StopTransaction(
                meter_stop=meter_wh, timestamp=now_iso(), transaction_id=transaction_id
            )
        )


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


HUB = EvChargingSpec.model_validate(
    {
        "id": "depot",
        "type": "ev_charging",
        "chargers": 2,
        "charger_power_kw": 11,
        "sessions": {"path": "x.csv"},
    }
)


@pytest.fixture
def hub(wall_clock: WallClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[OcppHub]:
    monkeypatch.setenv("VPP_TEST_OCPP_USER", USER)
    monkeypatch.setenv("VPP_TEST_OCPP_PASSWORD", PASSWORD)
    spec = OcppAdapter.model_validate(
        {
            "type": "ocpp",
            "listen_port": 9000,
            "charge_point_ids": ["CP-1", "CP-2"],
            "username_env": "VPP_TEST_OCPP_USER",
            "password_env": "VPP_TEST_OCPP_PASSWORD",
            "stale_after_s": 30,
        }
    )
    adapter = OcppHub(
        "p",
        HUB,
        spec,
        clock=wall_clock,
        reconnect=FAST_RECONNECT,
        response_timeout_s=0.5,
        listen_port=0,  # ephemeral
    )
    adapter.connect()
    yield adapter
    adapter.close()


@pytest.fixture
def stations(hub: OcppHub) -> Iterator[list[Station]]:
    made: list[Station] = []
    yield made
    for station in made:
        station.close()


def station(hub: OcppHub, made: list[Station], cp_id: str = "CP-1", **kw: str) -> Station:
    s = Station(hub.port, cp_id, **kw)
    made.append(s)
    return s


def setpoint(power_kw: float) -> Setpoint:
    return Setpoint("p", "depot", dt.datetime.now(dt.UTC), power_kw)


def test_sessions_meter_values_and_cap(hub: OcppHub, stations: list[Station]) -> None:
    assert hub.read().reason == "not_connected"
    one = station(hub, stations).connect()
    one.boot()
    two = station(hub, stations, "CP-2").connect()
    two.boot()
    wait_until(lambda: hub.read().health is Health.OK, what="available")
    tx = one.start(meter_wh=1000)
    one.meter(tx, power="7400", energy_wh="3500")
    t = hub.read()
    assert t.power_kw == pytest.approx(-7.4)  # OCPP import -> negative vpp power
    assert t.extra["active_sessions"] == 1
    assert hub.sessions[tx].energy_kwh == pytest.approx(2.5)
    # Cap the hub at 12 kW: 6 kW each over two connected charge points.
    assert hub.write(setpoint(-12)).power_kw == -12
    assert one.cp is not None
    assert two.cp is not None
    assert one.cp.limits_w[-1] == 6000
    assert two.cp.limits_w[-1] == 6000
    # Beyond nameplate the cap is clamped, and each share never exceeds one charger.
    with capture_logs() as logs:
        assert hub.write(setpoint(-100)).power_kw == -22
    assert any(e["event"] == "setpoint_clamped" for e in logs)
    assert one.cp.limits_w[-1] == 11000
    one.stop(tx, meter_wh=5000)
    assert hub.sessions[tx].energy_kwh == pytest.approx(4.0)
    assert not hub.sessions[tx].active
    assert hub.read().power_kw == 0


def test_new_charge_point_receives_the_current_cap(hub: OcppHub, stations: list[Station]) -> None:
    one = station(hub, stations).connect()
    one.boot()
    hub.write(setpoint(-8))
    assert one.cp is not None
    assert one.cp.limits_w == [8000]
    two = station(hub, stations, "CP-2").connect()
    two.boot()  # the hub re-splits the cap after the boot
    assert two.cp is not None
    wait_until(lambda: two.cp.limits_w == [4000], what="share for CP-2")
    wait_until(lambda: one.cp.limits_w[-1] == 4000, what="CP-1 re-split")


def test_basic_auth_and_unknown_ids_are_rejected(hub: OcppHub, stations: list[Station]) -> None:
    with capture_logs() as logs:
        with pytest.raises(websockets.InvalidStatus) as wrong:
            station(hub, stations, password="guess").connect()
        assert wrong.value.response.status_code == 401
        with pytest.raises(websockets.InvalidStatus) as unknown:
            station(hub, stations, "CP-999").connect()
        assert unknown.value.response.status_code == 404
    assert PASSWORD not in repr(logs)
    assert "guess" not in repr(logs)
    assert hub.read().reason == "not_connected"


def test_missing_credentials_keep_the_central_system_closed(
    wall_clock: WallClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VPP_TEST_OCPP_PASSWORD", raising=False)
    spec = OcppAdapter.model_validate(
        {
            "type": "ocpp",
            "charge_point_ids": ["CP-1"],
            "password_env": "VPP_TEST_OCPP_PASSWORD",
        }
    )
    adapter = OcppHub("p", HUB, spec, clock=wall_clock, reconnect=FAST_RECONNECT, listen_port=0)
    adapter.connect()
    try:
        assert adapter.read().reason == "credentials_missing"
        with pytest.raises(DeviceFaultError):
            adapter.write(setpoint(-5))
    finally:
        adapter.close()


def test_lost_connection_during_a_session_and_recovery(
    hub: OcppHub, stations: list[Station]
) -> None:
    one = station(hub, stations).connect()
    one.boot()
    tx = one.start()
    one.meter(tx, power="3000", energy_wh="1500")
    assert hub.read().health is Health.OK
    with capture_logs() as logs:
        one.disconnect()
        wait_until(lambda: hub.read().reason == "connection_lost", what="connection lost")
    assert any(e["event"] == "asset_unavailable" for e in logs)
    again = station(hub, stations).connect()  # the charge point reconnects
    again.boot(status="Charging")  # the car is still plugged in
    again.meter(tx, power="3100", energy_wh="1600")
    wait_until(lambda: hub.read().health is Health.OK, what="recovered")
    assert hub.read().power_kw == pytest.approx(-3.1)
    # A connector reported Available again ends a transaction the charge point left open.
    again.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
    assert not hub.sessions[tx].active
    assert hub.read().power_kw == 0


def test_malformed_and_out_of_range_meter_values(hub: OcppHub, stations: list[Station]) -> None:
    one = station(hub, stations).connect()
    one.boot()
    tx = one.start()
    one.meter(tx, power="abc", energy_wh="1500")  # schema-valid, not a number
    assert hub.read().reason == "malformed"
    one.meter(tx, power="2000", energy_wh="1600")
    assert hub.read().health is Health.OK
    one.meter(tx, power="90000", energy_wh="1700")  # 90 kW from an 11 kW charger
    assert hub.read().reason == "out_of_range"
    one.meter(tx, power="2000", energy_wh="1800")
    assert hub.read().health is Health.OK
    one.send_raw('[2, "bad-1", "MeterValues", {"connectorId": "one"}]')  # schema violation
    wait_until(lambda: hub.read().reason == "malformed", what="schema violation")
    one.send_raw("this is not OCPP")
    one.meter(tx, power="2100", energy_wh="1900")
    assert hub.read().health is Health.OK


def test_slow_charge_point_times_out_setpoint(hub: OcppHub, stations: list[Station]) -> None:
    one = station(hub, stations).connect()
    one.boot()
    assert one.cp is not None
    one.cp.profile_delay_s = 1.0  # the hub waits 0.5 s
    with pytest.raises(DeviceFaultError) as fault:
        hub.write(setpoint(-5))
    assert fault.value.reason == "timeout"
    assert hub.read().reason == "timeout"
    one.cp.profile_delay_s = 0.0
    wait_until(lambda: len(one.cp.limits_w) == 1, what="the late answer")  # type: ignore[union-attr]
    hub.write(setpoint(-5))
    wait_until(lambda: hub.read().health is Health.OK, what="recovered")


def test_stale_meter_values(hub: OcppHub, stations: list[Station], wall_clock: WallClock) -> None:
    one = station(hub, stations).connect()
    one.boot()
    tx = one.start()
    one.meter(tx, power="3000", energy_wh="1500")
    assert hub.read().health is Health.OK
    wall_clock.offset = dt.timedelta(seconds=31)
    assert hub.read().reason == "stale"
    one.meter(tx, power="3000", energy_wh="1600")
    assert hub.read().health is Health.OK


def test_busy_port_is_retried_with_backoff(wall_clock: WallClock) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    spec = OcppAdapter.model_validate({"type": "ocpp", "charge_point_ids": ["CP-1"]})
    adapter = OcppHub("p", HUB, spec, clock=wall_clock, reconnect=FAST_RECONNECT, listen_port=port)
    made: list[Station] = []
    try:
        adapter.connect()  # does not raise
        assert adapter.read().reason == "connection_lost"
        assert "cannot listen" in (adapter.health().detail or "")
        blocker.close()
        made.append(Station(port, "CP-1"))
        wait_until(lambda: _try_connect(made[0]), what="listener bound after backoff")
        wait_until(lambda: adapter.read().health is Health.OK, what="charge point connected")
    finally:
        for s in made:
            s.close()
        blocker.close()
        adapter.close()


def _try_connect(s: Station) -> bool:
    try:
        s.connect()
    except OSError:
        return False
    return True

"""The plain modbus adapter against a real pymodbus server holding a heat pump's register map."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from adapter_helpers import FAST_RECONNECT, WallClock, park_with, wait_until
from hypothesis import given
from hypothesis import strategies as st
from modbus_map_peer import SETPOINT_AT, ModbusHeatPump
from structlog.testing import capture_logs

from adapters import DeviceFaultError, ModbusDevice, ReadOnlyError, create
from adapters._modbus_map import decode, encode
from vpp.config.models import ModbusRegister
from vpp.types import Health, Setpoint


@pytest.fixture
def peer() -> Iterator[ModbusHeatPump]:
    device = ModbusHeatPump(cop=3.0, revert_s=1.0)
    device.start()
    yield device
    device.close()


def make(peer: ModbusHeatPump, clock: WallClock, **spec: object) -> ModbusDevice:
    adapter: dict[str, object] = {
        "type": "modbus",
        "host": "127.0.0.1",
        "port": peer.port,
        "timeout_s": 0.5,
        "poll_interval_s": 0.05,
        "revert_timeout_s": 1.0,
        "stale_after_s": 30.0,
        "setpoint_register": {"address": SETPOINT_AT, "type": "uint32", "scale": 0.1},
        "registers": {
            "consumption_kw": {"address": 0, "kind": "input", "type": "int32", "scale": 0.1},
            "consumed_kwh": {"address": 2, "type": "uint32", "scale": 0.1},
            "heat_kwh": {"address": 4, "type": "float32"},
        },
    }
    adapter.update(spec)
    asset = {
        "id": "hp",
        "type": "heat_pump",
        "power_kw": 500,
        "level": "hot_water",
        "max_sink_temperature_c": 90,
        "source_temperature_c": 20,
        "adapter": adapter,
    }
    device = create(park_with(asset), "hp", clock=clock, reconnect=FAST_RECONNECT)
    assert isinstance(device, ModbusDevice)
    return device


def setpoint(power_kw: float, clock: WallClock) -> Setpoint:
    return Setpoint("test-park", "hp", clock.now(), power_kw)


def test_writes_setpoint_reads_scaled_telemetry_and_keeps_it_past_the_watchdog(
    peer: ModbusHeatPump, wall_clock: WallClock
) -> None:
    with make(peer, wall_clock) as device, capture_logs() as logs:
        t = device.read()
        assert t.health is Health.OK
        assert t.power_kw == 0
        assert device.capabilities.revert_timeout_s == 1.0
        sent = device.write(setpoint(-612.34, wall_clock))  # beyond the 500 kW rating
        assert sent.power_kw == -500
        assert peer.draw_kw == 500
        wait_until(lambda: device.read().power_kw == pytest.approx(-500), what="drawing")
        wait_until(lambda: device.read().extra["heat_kwh"] > 0, what="heat counted")
        t = device.read()
        assert t.extra["heat_kwh"] == pytest.approx(3 * peer.consumed_kwh, rel=0.2, abs=0.2)
        device.write(setpoint(-123.4, wall_clock))
        wait_until(lambda: device.read().power_kw == pytest.approx(-123.4), what="0.1 kW steps")
        writes = peer.setpoint_writes
        wait_until(lambda: peer.setpoint_writes >= writes + 6, timeout_s=5, what="keepalive")
        assert peer.reverts == 0
    assert any(e["event"] == "setpoint_clamped" for e in logs)
    # Once the adapter is gone, the device's watchdog drops the draw.
    wait_until(lambda: peer.draw_kw == 0, timeout_s=5, what="device reverts")
    assert peer.reverts == 1


def test_lost_connection_is_unavailable_and_the_setpoint_is_restored(
    peer: ModbusHeatPump, wall_clock: WallClock
) -> None:
    with make(peer, wall_clock) as device:
        device.write(setpoint(-300, wall_clock))
        peer.stop()
        wait_until(lambda: device.read().reason == "connection_lost", what="connection lost")
        with pytest.raises(DeviceFaultError):
            device.write(setpoint(-200, wall_clock))  # remembered, sent on reconnection
        peer.start()
        wait_until(lambda: device.read().health is Health.OK, what="recovery")
        wait_until(lambda: peer.draw_kw == pytest.approx(200), what="setpoint restored")


def test_slow_device_times_out_then_recovers(peer: ModbusHeatPump, wall_clock: WallClock) -> None:
    with make(peer, wall_clock, timeout_s=0.2) as device:
        assert device.read().health is Health.OK
        peer.delay_s = 0.6
        wait_until(lambda: device.read().reason == "timeout", what="timeout")
        peer.delay_s = 0.0
        wait_until(lambda: device.read().health is Health.OK, what="recovery")


@pytest.mark.parametrize(
    ("address", "raw", "reason"),
    [
        (0, 0xFFFF, "out_of_range"),  # consumption_kw < 0 (int32 sign bit)
        (0, 0x0100, "out_of_range"),  # 1.7 GW from a 500 kW heat pump
        (4, 0x7FC0, "malformed"),  # heat_kwh NaN
        (4, 0xBF80, "out_of_range"),  # heat_kwh -1.0: a counter never runs below zero
    ],
)
def test_bad_registers_mark_unavailable_with_reason(
    peer: ModbusHeatPump, wall_clock: WallClock, address: int, raw: int, reason: str
) -> None:
    with make(peer, wall_clock) as device:
        assert device.read().health is Health.OK
        peer.pin(address, raw)
        wait_until(lambda: device.read().reason == reason, what=reason)
        peer.heal()
        wait_until(lambda: device.read().health is Health.OK, what="recovery")


def test_stale_reading_is_unavailable(peer: ModbusHeatPump, wall_clock: WallClock) -> None:
    with make(peer, wall_clock, poll_interval_s=3600, stale_after_s=10) as device:
        assert device.read().health is Health.OK
        wall_clock.offset = dt.timedelta(seconds=11)
        assert device.read().reason == "stale"
        device.cycle()
        assert device.read().health is Health.OK


def test_unreachable_device_does_not_raise_on_connect(wall_clock: WallClock) -> None:
    peer = ModbusHeatPump()
    port = peer.start()
    peer.close()
    peer.port = port
    device = make(peer, wall_clock)
    device.connect()
    try:
        assert device.read().reason == "connection_lost"
    finally:
        device.close()


@given(
    kind=st.sampled_from(["int16", "uint16", "int32", "uint32", "float32"]),
    word_order=st.sampled_from(["big", "little"]),
    value=st.floats(min_value=0, max_value=3000, allow_nan=False),
    scale=st.sampled_from([0.1, 1.0, 0.01]),
)
def test_encode_decode_round_trip(kind: str, word_order: str, value: float, scale: float) -> None:
    register = ModbusRegister.model_validate({"address": 0, "type": kind, "scale": scale})
    try:
        raw = encode(value, register, word_order)
    except DeviceFaultError:
        assert kind.endswith("16")  # too large for 16 bits at this scale
        return
    assert len(raw) == register.count
    tolerance = scale / 2 + 1e-9 if kind != "float32" else abs(value) * 1e-6 + 1e-9
    assert decode(raw, register, word_order) == pytest.approx(value, abs=tolerance)


def test_a_store_is_read_only_with_soc_and_storage_registers(
    peer: ModbusHeatPump, wall_clock: WallClock
) -> None:
    tank = {
        "id": "tank",
        "type": "thermal_storage",
        "level": "hot_water",
        "capacity_kwh": 2000,
        "charge_kw": 500,
        "discharge_kw": 500,
        "adapter": {
            "type": "modbus",
            "host": "127.0.0.1",
            "port": peer.port,
            "timeout_s": 0.5,
            "poll_interval_s": 0.05,
            "registers": {
                "soc": {"address": 10, "type": "uint16", "scale": 0.001},
                "charged_kwh": {"address": 2, "type": "uint32", "scale": 0.1},
                "discharged_kwh": {"address": 4, "type": "float32"},
            },
        },
    }
    peer.pin(10, 620)
    device = create(park_with(tank), "tank", clock=wall_clock, reconnect=FAST_RECONNECT)
    with device:
        t = device.read()
        assert t.health is Health.OK
        assert t.power_kw == 0
        assert t.soc == pytest.approx(0.62)
        assert set(t.extra) == {"charged_kwh", "discharged_kwh"}
        assert device.capabilities.revert_timeout_s is None
        with pytest.raises(ReadOnlyError):
            device.write(Setpoint("test-park", "tank", wall_clock.now(), 0))
        peer.pin(10, 1500)  # 150 %
        wait_until(lambda: device.read().reason == "out_of_range", what="soc > 1")
    assert peer.setpoint_writes == 0

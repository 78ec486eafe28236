"""The modbus-sunspec adapter against a real pymodbus server holding a SunSpec map."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from adapter_helpers import FAST_RECONNECT, WallClock, battery, wait_until
from structlog.testing import capture_logs
from sunspec_peer import INV_AT, STOR_AT, SunSpecBattery

from adapters import DeviceFaultError, ModbusSunSpecDevice
from vpp.config.models import ModbusSunSpecAdapter
from vpp.types import Health, Setpoint


@pytest.fixture
def peer() -> Iterator[SunSpecBattery]:
    device = SunSpecBattery(wmax_w=1_000_000, wchamax_w=800_000, energy_wh=2_000_000, soc=0.5)
    device.start()
    yield device
    device.close()


def make(peer: SunSpecBattery, clock: WallClock, **spec: float) -> ModbusSunSpecDevice:
    fields: dict[str, object] = {
        "type": "modbus-sunspec",
        "host": "127.0.0.1",
        "port": peer.port,
        "timeout_s": 0.5,
        "poll_interval_s": 0.05,
        "revert_timeout_s": 1.0,
        "stale_after_s": 30.0,
    }
    fields.update(spec)
    adapter_spec = ModbusSunSpecAdapter.model_validate(fields)
    asset = battery(power_kw=1000, adapter=adapter_spec.model_dump())
    return ModbusSunSpecDevice("p", asset, adapter_spec, clock=clock, reconnect=FAST_RECONNECT)


def setpoint(power_kw: float, clock: WallClock) -> Setpoint:
    return Setpoint("p", "bess", clock.now(), power_kw)


def test_reads_soc_and_power_and_holds_setpoint_past_revert_timer(
    peer: SunSpecBattery, wall_clock: WallClock
) -> None:
    with make(peer, wall_clock) as device:
        t = device.read()
        assert t.health is Health.OK
        assert t.power_kw == 0
        assert t.soc == pytest.approx(0.5)
        assert device.capabilities.min_kw == -800  # narrowed by the device's WChaMax
        device.write(setpoint(-600, wall_clock))  # charge
        wait_until(lambda: device.read().power_kw == pytest.approx(-600), what="charging")
        assert peer.power_w == pytest.approx(-600_000)
        device.write(setpoint(250, wall_clock))  # discharge
        wait_until(lambda: device.read().power_kw == pytest.approx(250), what="discharging")
        writes = peer.control_writes
        # Several revert periods later the device still holds it: the adapter re-wrote in time.
        wait_until(lambda: peer.control_writes >= writes + 8, timeout_s=5, what="keepalive")
        assert peer.reverts == 0
        assert peer.power_w == pytest.approx(250_000)
    # Once the adapter is gone, the device's revert timer drops control.
    wait_until(lambda: peer.power_w == 0, timeout_s=5, what="device reverts")
    assert peer.reverts == 1


def test_setpoint_is_clamped_before_it_is_sent(peer: SunSpecBattery, wall_clock: WallClock) -> None:
    with make(peer, wall_clock) as device, capture_logs() as logs:
        sent = device.write(setpoint(-5000, wall_clock))
        assert sent.power_kw == -800
        wait_until(lambda: peer.power_w == pytest.approx(-800_000), what="clamped charge")
    assert any(e["event"] == "setpoint_clamped" and e["sent_kw"] == -800 for e in logs)


def test_lost_connection_marks_unavailable_and_reconnects(
    peer: SunSpecBattery, wall_clock: WallClock
) -> None:
    with make(peer, wall_clock) as device:
        device.write(setpoint(300, wall_clock))
        with capture_logs() as logs:
            peer.stop()
            wait_until(lambda: device.read().health is Health.UNAVAILABLE, what="unavailable")
            assert device.read().reason == "connection_lost"
            with pytest.raises(DeviceFaultError):
                device.write(setpoint(200, wall_clock))
            peer.start()
            wait_until(lambda: device.read().health is Health.OK, what="recovery")
        events = [e["event"] for e in logs]
        assert "asset_unavailable" in events
        assert "asset_available" in events
        assert "reconnect_scheduled" in events
        # The latest setpoint is re-sent on reconnection.
        wait_until(lambda: peer.power_w == pytest.approx(200_000), what="setpoint restored")


def test_slow_device_times_out_then_recovers(peer: SunSpecBattery, wall_clock: WallClock) -> None:
    with make(peer, wall_clock, timeout_s=0.2) as device:
        assert device.read().health is Health.OK
        peer.delay_s = 0.6
        wait_until(lambda: device.read().reason == "timeout", what="timeout")
        peer.delay_s = 0.0
        wait_until(lambda: device.read().health is Health.OK, what="recovery")


@pytest.mark.parametrize(
    ("offset", "raw", "reason"),
    [
        (INV_AT + 13, 0x8000, "malformed"),  # W_SF not implemented
        (INV_AT + 12, 0x8000, "malformed"),  # W not implemented
        (STOR_AT + 6, 2000, "out_of_range"),  # ChaState 200 %
        (INV_AT + 12, 30000, "out_of_range"),  # 30 MW from a 1 MW battery
    ],
)
def test_bad_registers_mark_unavailable_with_reason(
    peer: SunSpecBattery, wall_clock: WallClock, offset: int, raw: int, reason: str
) -> None:
    with make(peer, wall_clock) as device:
        assert device.read().health is Health.OK
        with capture_logs() as logs:
            peer.corrupt(offset, raw)
            wait_until(lambda: device.read().reason == reason, what=reason)
        assert any(e["event"] == "asset_unavailable" and e["reason"] == reason for e in logs)
        peer.heal()
        wait_until(lambda: device.read().health is Health.OK, what="recovery")


def test_no_sunspec_marker_is_malformed(peer: SunSpecBattery, wall_clock: WallClock) -> None:
    peer.corrupt(0, 0x1234)
    device = make(peer, wall_clock)
    device.connect()
    try:
        assert device.read().reason == "malformed"
        assert "SunS" in (device.health().detail or "")
    finally:
        device.close()


def test_stale_reading_is_unavailable(peer: SunSpecBattery, wall_clock: WallClock) -> None:
    # A poll interval of an hour: only the first reading arrives during the test.
    with make(peer, wall_clock, poll_interval_s=3600, stale_after_s=10) as device:
        assert device.read().health is Health.OK
        wall_clock.offset = dt.timedelta(seconds=11)
        t = device.read()
        assert t.health is Health.UNAVAILABLE
        assert t.reason == "stale"
        device.cycle()  # a fresh poll
        assert device.read().health is Health.OK


def test_unreachable_device_does_not_raise_on_connect(wall_clock: WallClock) -> None:
    peer = SunSpecBattery(wmax_w=1e6, energy_wh=2e6)
    port = peer.start()
    peer.close()  # nothing listens on the port any more
    peer.port = port
    device = make(peer, wall_clock)
    device.connect()
    try:
        assert device.read().reason == "connection_lost"
    finally:
        device.close()

"""Simulated devices: physics, limits, sign, clamping and missing data."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from adapter_helpers import T0, ManualClock, battery
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from adapters import ReadOnlyError, SimulatedBattery, SimulatedEvHub, SimulatedProcess, SimulatedPv
from vpp.config.models import EvChargingSpec, FlexibleProcessSpec, PvSpec, SimulatedAdapter
from vpp.types import Health, Setpoint

SIM = SimulatedAdapter()


def sp(asset: str, power_kw: float, clock: ManualClock) -> Setpoint:
    return Setpoint("p", asset, clock.now(), power_kw)


def series(values: list[float], minutes: int = 15) -> pd.Series:
    index = pd.date_range(T0, periods=len(values), freq=f"{minutes}min", tz="UTC")
    return pd.Series(values, index=index, dtype=float)


# --------------------------------------------------------------------------- battery


def test_battery_discharge_uses_efficiency_and_sign(clock: ManualClock) -> None:
    bess = SimulatedBattery("p", battery(), SIM, clock=clock)
    bess.connect()
    bess.write(sp("bess", 400, clock))  # > 0: into the grid
    clock.advance(hours=1)
    t = bess.read()
    # 400 kWh to the grid costs 400 / 0.8 = 500 kWh of storage: SoC 0.5 -> 0.25.
    assert t.power_kw == pytest.approx(400)
    assert t.soc == pytest.approx(0.25)
    assert t.extra["discharged_kwh"] == pytest.approx(400)


def test_battery_charge_stops_at_soc_max(clock: ManualClock) -> None:
    bess = SimulatedBattery("p", battery(), SIM, clock=clock)
    bess.connect()
    bess.write(sp("bess", -1000, clock))  # < 0: charging
    clock.advance(hours=3)
    t = bess.read()
    # Room 0.4 * 2000 = 800 kWh stored at 0.9 efficiency = 888.9 kWh from the grid.
    assert t.soc == pytest.approx(0.9)
    assert t.power_kw == 0.0
    assert t.extra["charged_kwh"] == pytest.approx(800 / 0.9)


def test_setpoint_is_clamped_to_power_limits_and_logged(clock: ManualClock) -> None:
    bess = SimulatedBattery("p", battery(charge_power_kw=500), SIM, clock=clock)
    bess.connect()
    with capture_logs() as logs:
        sent = bess.write(sp("bess", -900, clock))
    assert sent.power_kw == -500
    clamped = [e for e in logs if e["event"] == "setpoint_clamped"]
    assert clamped
    assert clamped[0]["requested_kw"] == -900
    assert clamped[0]["sent_kw"] == -500
    with capture_logs() as logs:
        assert bess.write(sp("bess", 1500, clock)).power_kw == 1000
        assert bess.write(sp("bess", 300, clock)).power_kw == 300
    assert [e["sent_kw"] for e in logs if e["event"] == "setpoint_clamped"] == [1000]


def test_setpoint_for_another_asset_is_refused(clock: ManualClock) -> None:
    bess = SimulatedBattery("p", battery(), SIM, clock=clock)
    bess.connect()
    with pytest.raises(ValueError, match="sent to adapter of p/bess"):
        bess.write(Setpoint("p", "other", clock.now(), 1.0))


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.floats(min_value=-1500, max_value=1500, allow_nan=False),
            st.floats(min_value=0.0, max_value=3.0, allow_nan=False),
        ),
        min_size=1,
        max_size=25,
    ),
    eta_c=st.floats(min_value=0.5, max_value=1.0),
    eta_d=st.floats(min_value=0.5, max_value=1.0),
)
def test_battery_soc_bounds_and_energy_balance(
    steps: list[tuple[float, float]], eta_c: float, eta_d: float
) -> None:
    spec = battery(charge_efficiency=eta_c, discharge_efficiency=eta_d)
    clock = ManualClock()
    bess = SimulatedBattery("p", spec, SIM, clock=clock)
    bess.connect()
    stored0 = bess.stored_kwh
    for power_kw, hours in steps:
        bess.write(sp("bess", power_kw, clock))
        clock.advance(hours=hours)
        t = bess.read()
        assert spec.soc_min - 1e-9 <= t.soc <= spec.soc_max + 1e-9
        assert t.power_kw * power_kw >= 0  # never runs against the setpoint
        assert abs(t.power_kw) <= 1000 + 1e-9
    balance = eta_c * bess.charged_kwh - bess.discharged_kwh / eta_d
    assert bess.stored_kwh - stored0 == pytest.approx(balance, abs=1e-6)


# --------------------------------------------------------------------------- PV


def pv(curtailable: bool = True) -> PvSpec:
    return PvSpec.model_validate(
        {
            "id": "pv",
            "type": "pv",
            "capacity_kwp": 1000,
            "inverter_kw": 800,
            "curtailable": curtailable,
            "profile": {"path": "x.csv"},
        }
    )


def test_pv_follows_available_power_clipped_and_curtailed(clock: ManualClock) -> None:
    plant = SimulatedPv("p", pv(), SIM, clock=clock, available_kw=series([100, 900, 500, 0]))
    plant.connect()
    assert plant.read().power_kw == 100
    clock.advance(minutes=15)
    assert plant.read().power_kw == 800  # inverter clip
    plant.write(sp("pv", 300, clock))
    assert plant.read().power_kw == 300
    clock.advance(minutes=15)
    t = plant.read()
    assert t.power_kw == 300
    assert t.extra["available_kw"] == 500
    # 15 min at 100 + 15 min at 300 (curtailed from 800).
    assert t.extra["produced_kwh"] == pytest.approx(25 + 75)
    assert t.extra["curtailed_kwh"] == pytest.approx(125)


def test_pv_write_is_clamped_to_zero_floor(clock: ManualClock) -> None:
    plant = SimulatedPv("p", pv(), SIM, clock=clock, available_kw=series([500, 500]))
    plant.connect()
    assert plant.write(sp("pv", -50, clock)).power_kw == 0.0
    assert plant.read().power_kw == 0.0


def test_non_curtailable_pv_is_read_only(clock: ManualClock) -> None:
    plant = SimulatedPv("p", pv(False), SIM, clock=clock, available_kw=series([500, 500]))
    plant.connect()
    assert not plant.capabilities.writable
    with pytest.raises(ReadOnlyError):
        plant.write(sp("pv", 100, clock))
    assert plant.read().power_kw == 500  # nothing was applied


def test_pv_outside_its_data_is_unavailable_not_filled(clock: ManualClock) -> None:
    plant = SimulatedPv("p", pv(), SIM, clock=clock, available_kw=series([500, 500]))
    plant.connect()
    assert plant.read().health is Health.OK
    clock.advance(minutes=30)  # the series covers [T0, T0 + 30 min)
    with capture_logs() as logs:
        t = plant.read()
    assert t.health is Health.UNAVAILABLE
    assert t.reason == "no_data"
    assert t.power_kw is None
    assert any(e["event"] == "asset_unavailable" and e["reason"] == "no_data" for e in logs)


def test_profile_with_gaps_is_rejected(clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="missing"):
        SimulatedPv("p", pv(), SIM, clock=clock, available_kw=series([1.0, float("nan"), 2.0]))
    naive = pd.Series([1.0, 2.0], index=pd.date_range("2025-01-01", periods=2, freq="h"))
    with pytest.raises(TypeError, match="tz-aware"):
        SimulatedPv("p", pv(), SIM, clock=clock, available_kw=naive)


# --------------------------------------------------------------------------- process


def process(ramp: float | None = None) -> FlexibleProcessSpec:
    return FlexibleProcessSpec.model_validate(
        {
            "id": "proc",
            "type": "flexible_process",
            "max_power_kw": 1000,
            "shift_up_kw": 200,
            "shift_down_kw": 300,
            "recovery_window_h": 4,
            "ramp_limit_kw_per_min": ramp,
            "baseline": {"path": "x.csv"},
        }
    )


def test_process_follows_baseline_then_setpoint_within_band(clock: ManualClock) -> None:
    proc = SimulatedProcess("p", process(), SIM, clock=clock, baseline_kw=series([600] * 8))
    proc.connect()
    assert proc.read().power_kw == -600  # consumption is negative power
    assert proc.limits_kw() == (-800, -300)
    sent = proc.write(sp("proc", -100, clock))
    assert sent.power_kw == -300  # clamped to baseline - shift_down
    clock.advance(hours=1)
    t = proc.read()
    assert t.power_kw == -300
    assert t.extra["shifted_kwh"] == pytest.approx(-300)


def test_process_shift_steps_within_the_ramp_since_the_last_setpoint(clock: ManualClock) -> None:
    proc = SimulatedProcess("p", process(ramp=10), SIM, clock=clock, baseline_kw=series([600] * 8))
    proc.connect()
    clock.advance(minutes=15)
    proc.write(sp("proc", -800, clock))  # +200 asked; 15 min x 10 kW/min = 150 allowed
    assert proc.read().power_kw == pytest.approx(-750)
    clock.advance(minutes=15)
    t = proc.read()
    assert t.extra["consumed_kwh"] == pytest.approx(600 * 0.25 + 750 * 0.25)
    proc.write(sp("proc", -800, clock))  # the remaining 50 kW now fits
    assert proc.read().power_kw == pytest.approx(-800)


def test_process_ramp_limits_the_shift_not_the_baseline(clock: ManualClock) -> None:
    # The baseline jumps 600 -> 900 kW at 15 min; the plant follows it at once, while the
    # shift (setpoint - baseline) is limited by the ramp as in the strategy's model.
    proc = SimulatedProcess(
        "p", process(ramp=10), SIM, clock=clock, baseline_kw=series([600, 900, 900, 900])
    )
    proc.connect()
    clock.advance(minutes=15)
    t = proc.read()
    assert t.power_kw == pytest.approx(-900)
    assert t.extra["shift_kw"] == pytest.approx(0)
    proc.write(sp("proc", -500, clock))  # shed 400 kW: 150 allowed after 15 min
    t = proc.read()
    assert t.extra["shift_kw"] == pytest.approx(-150)
    assert t.power_kw == pytest.approx(-750)


# --------------------------------------------------------------------------- EV hub


def hub() -> EvChargingSpec:
    return EvChargingSpec.model_validate(
        {
            "id": "ev",
            "type": "ev_charging",
            "chargers": 2,
            "charger_power_kw": 10,
            "sessions": {"path": "x.csv"},
        }
    )


def sessions(*rows: tuple[float, float, float]) -> pd.DataFrame:
    """(arrival h, departure h, kWh) after T0."""
    return pd.DataFrame(
        {
            "arrival": [T0 + dt.timedelta(hours=a) for a, _, _ in rows],
            "departure": [T0 + dt.timedelta(hours=d) for _, d, _ in rows],
            "requested_energy_kwh": [e for _, _, e in rows],
        }
    )


def test_ev_hub_serves_sessions_and_reports_unserved(clock: ManualClock) -> None:
    frame = sessions((0, 2, 15), (0, 1, 20), (0.5, 3, 5))  # third finds no free charger
    ev = SimulatedEvHub("p", hub(), SIM, clock=clock, sessions=frame)
    ev.connect()
    assert ev.read().power_kw == -20
    clock.advance(hours=1)
    t = ev.read()
    # Car 2 leaves at 1 h with 20 - 10 = 10 kWh unserved; car 1 has 5 kWh left.
    assert t.extra["turned_away"] == 1
    assert t.extra["unserved_kwh"] == pytest.approx(10)
    assert t.extra["delivered_kwh"] == pytest.approx(20)
    clock.advance(hours=1)
    t = ev.read()
    assert t.extra["delivered_kwh"] == pytest.approx(25)
    assert t.power_kw == 0


def test_ev_hub_cap_is_shared(clock: ManualClock) -> None:
    ev = SimulatedEvHub("p", hub(), SIM, clock=clock, sessions=sessions((0, 4, 30), (0, 4, 30)))
    ev.connect()
    assert ev.write(sp("ev", -12, clock)).power_kw == -12
    assert ev.read().power_kw == pytest.approx(-12)
    assert ev.write(sp("ev", 5, clock)).power_kw == 0  # a hub never exports
    assert ev.read().power_kw == 0


def test_ev_hub_reports_plugged_sessions_with_energy_received(clock: ManualClock) -> None:
    frame = sessions((0, 2, 15), (0.5, 3, 30))
    frame["session_id"] = ["a", "b"]
    ev = SimulatedEvHub("p", hub(), SIM, clock=clock, sessions=frame)
    ev.connect()
    clock.advance(hours=1)
    plugged = ev.plugged_sessions().set_index("session_id")["charged_kwh"]
    assert plugged.to_dict() == pytest.approx({"a": 10.0, "b": 5.0})
    clock.advance(hours=1.5)
    assert ev.plugged_sessions()["session_id"].tolist() == ["b"]


def test_ev_hub_tiny_charging_rate_does_not_overflow(clock: ManualClock) -> None:
    # A cap of a few microwatts leaves hours/rate astronomically large; the step must stay bounded.
    ev = SimulatedEvHub("p", hub(), SIM, clock=clock, sessions=sessions((0, 24, 50)))
    ev.connect()
    ev.write(sp("ev", -1e-9, clock))
    clock.advance(hours=2)
    t = ev.read()
    assert t.extra["delivered_kwh"] == pytest.approx(2e-9)


def test_process_resending_the_same_setpoint_changes_nothing(clock: ManualClock) -> None:
    proc = SimulatedProcess("p", process(ramp=10), SIM, clock=clock, baseline_kw=series([600] * 8))
    proc.connect()
    clock.advance(minutes=10)
    first = sp("proc", -900, clock)
    proc.write(first)  # +300 asked, 100 allowed after 10 min
    clock.advance(minutes=1)
    proc.write(first)  # the watchdog re-send of the same interval's setpoint: no extra ramp
    assert proc.read().extra["shift_kw"] == pytest.approx(100)


def test_ev_hub_with_a_vanishing_cap_does_not_overflow(clock: ManualClock) -> None:
    # A real-time plan can leave a cap of a few picowatts: the time to full is then
    # astronomically long and must not overflow a timedelta.
    ev = SimulatedEvHub("p", hub(), SIM, clock=clock, sessions=sessions((0, 4, 30)))
    ev.connect()
    ev.write(Setpoint("p", "ev", T0, -1e-300))
    clock.advance(hours=1)
    reading = ev.read()
    assert reading.health is Health.OK
    assert reading.extra["delivered_kwh"] == pytest.approx(0.0)

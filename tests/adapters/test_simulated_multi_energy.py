"""Simulated multi-energy devices: heat pump, boiler, electrolyser and the passive stores."""

from __future__ import annotations

import pandas as pd
import pytest
from adapter_helpers import T0, ManualClock
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import (
    ReadOnlyError,
    SimulatedBoiler,
    SimulatedDevice,
    SimulatedElectrolyser,
    SimulatedHeatPump,
    SimulatedHydrogenStorage,
    SimulatedThermalStorage,
)
from vpp.config.models import (
    ElectricBoilerSpec,
    ElectrolyserSpec,
    HeatPumpSpec,
    HydrogenStorageSpec,
    SimulatedAdapter,
    ThermalStorageSpec,
)
from vpp.errors import InputError
from vpp.types import Health, Setpoint

SIM = SimulatedAdapter()
LEVEL = "hot_water_60c"


def sp(asset: str, power_kw: float, clock: ManualClock) -> Setpoint:
    return Setpoint("p", asset, clock.now(), power_kw)


def series(values: list[float], minutes: int = 60) -> pd.Series:
    index = pd.date_range(T0, periods=len(values), freq=f"{minutes}min", tz="UTC")
    return pd.Series(values, index=index, dtype=float)


def heat_pump_spec(**overrides: object) -> HeatPumpSpec:
    fields: dict[str, object] = {
        "id": "hp",
        "type": "heat_pump",
        "power_kw": 500,
        "level": LEVEL,
        "max_sink_temperature_c": 90,
        "source_temperature_c": 20,
    }
    fields.update(overrides)
    return HeatPumpSpec.model_validate(fields)


def boiler_spec(**overrides: object) -> ElectricBoilerSpec:
    fields: dict[str, object] = {
        "id": "eb",
        "type": "electric_boiler",
        "power_kw": 1000,
        "level": LEVEL,
        "max_temperature_c": 200,
        "efficiency": 0.95,
    }
    fields.update(overrides)
    return ElectricBoilerSpec.model_validate(fields)


def electrolyser_spec(**overrides: object) -> ElectrolyserSpec:
    fields: dict[str, object] = {
        "id": "ely",
        "type": "electrolyser",
        "power_kw": 1000,
        "kwh_per_kg": 55,
        "min_load_fraction": 0.2,
        "standby_kw": 10,
    }
    fields.update(overrides)
    return ElectrolyserSpec.model_validate(fields)


def thermal_spec(**overrides: object) -> ThermalStorageSpec:
    fields: dict[str, object] = {
        "id": "tank",
        "type": "thermal_storage",
        "level": LEVEL,
        "capacity_kwh": 2000,
        "charge_kw": 600,
        "discharge_kw": 800,
        "standing_loss_pct_per_h": 0,
        "soc_min": 0.0,
        "soc_max": 1.0,
        "soc_initial": 0.5,
    }
    fields.update(overrides)
    return ThermalStorageSpec.model_validate(fields)


def tank_spec(**overrides: object) -> HydrogenStorageSpec:
    fields: dict[str, object] = {
        "id": "h2",
        "type": "hydrogen_storage",
        "capacity_kg": 100,
        "soc_min": 0.0,
        "soc_max": 1.0,
        "soc_initial": 0.5,
        "offtake_kg_per_h": 10,
    }
    fields.update(overrides)
    return HydrogenStorageSpec.model_validate(fields)


def couple(*devices: SimulatedDevice) -> None:
    peers = {d.asset_id: d for d in devices}
    for device in devices:
        device.connect()
    for device in devices:
        device.couple(peers)


# --------------------------------------------------------------------------- heat pump, boiler


def test_heat_pump_follows_setpoint_and_delivers_energy_times_cop(clock: ManualClock) -> None:
    hp = SimulatedHeatPump("p", heat_pump_spec(), SIM, clock=clock, cop=series([3.0, 4.0, 4.0]))
    hp.connect()
    assert hp.capabilities.min_kw == -500
    assert hp.capabilities.max_kw == 0
    assert hp.write(sp("hp", -800, clock)).power_kw == -500  # clipped to the rating
    assert hp.write(sp("hp", 50, clock)).power_kw == 0  # a consumer never feeds in
    hp.write(sp("hp", -400, clock))
    clock.advance(minutes=90)  # 60 min at COP 3, 30 min at COP 4
    t = hp.read()
    assert t.power_kw == -400
    assert t.extra["consumed_kwh"] == pytest.approx(600)
    assert t.extra["heat_kwh"] == pytest.approx(400 * 3 + 200 * 4)  # 2000 kWh_th
    assert t.extra["heat_kw"] == pytest.approx(1600)
    assert t.extra["cop"] == 4.0


def test_heat_pump_outside_its_cop_data_is_unavailable(clock: ManualClock) -> None:
    hp = SimulatedHeatPump("p", heat_pump_spec(), SIM, clock=clock, cop=series([3.0, 3.0]))
    hp.connect()
    clock.advance(hours=3)
    t = hp.read()
    assert t.health is Health.UNAVAILABLE
    assert t.reason == "no_data"


def test_boiler_heat_is_energy_times_efficiency(clock: ManualClock) -> None:
    eb = SimulatedBoiler("p", boiler_spec(), SIM, clock=clock)
    eb.connect()
    eb.write(sp("eb", -800, clock))
    clock.advance(minutes=30)
    t = eb.read()
    assert t.power_kw == -800
    assert t.extra["consumed_kwh"] == pytest.approx(400)
    assert t.extra["heat_kwh"] == pytest.approx(380)
    assert t.extra["heat_kw"] == pytest.approx(760)


# --------------------------------------------------------------------------- electrolyser


def test_electrolyser_hydrogen_heat_and_standby(clock: ManualClock) -> None:
    spec = electrolyser_spec(heat_recovery_fraction=0.2, heat_recovery_level=LEVEL)
    ely = SimulatedElectrolyser("p", spec, SIM, clock=clock)
    ely.connect()
    ely.write(sp("ely", -550, clock))
    clock.advance(hours=2)
    t = ely.read()
    assert t.power_kw == -550
    assert t.extra["on"] == 1.0
    assert t.extra["hydrogen_kg"] == pytest.approx(1100 / 55)  # 20 kg
    assert t.extra["heat_kwh"] == pytest.approx(0.2 * 1100)
    assert t.extra["hydrogen_kg_per_h"] == pytest.approx(10)
    ely.write(sp("ely", -50, clock))  # below half the 200 kW minimum load: off
    clock.advance(hours=1)
    t = ely.read()
    assert t.power_kw == -10  # stand-by only
    assert t.extra["on"] == 0.0
    assert t.extra["consumed_kwh"] == pytest.approx(1100 + 10)
    assert t.extra["hydrogen_kg"] == pytest.approx(20)  # nothing produced while off


def test_electrolyser_rounds_a_low_setpoint_up_to_min_load(clock: ManualClock) -> None:
    ely = SimulatedElectrolyser("p", electrolyser_spec(), SIM, clock=clock)
    ely.connect()
    ely.write(sp("ely", -120, clock))  # >= 100 (half of min load): on, at the 200 kW minimum
    clock.advance(hours=1)
    t = ely.read()
    assert t.power_kw == -200
    assert t.extra["hydrogen_kg"] == pytest.approx(200 / 55)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=-1010, max_value=0, allow_nan=False))
def test_electrolyser_never_runs_between_zero_and_min_load(setpoint_kw: float) -> None:
    clock = ManualClock()
    ely = SimulatedElectrolyser("p", electrolyser_spec(), SIM, clock=clock)
    ely.connect()
    ely.write(sp("ely", setpoint_kw, clock))
    clock.advance(minutes=15)
    t = ely.read()
    stack_kw = t.extra["stack_kw"]
    assert stack_kw == 0 or 200 - 1e-9 <= stack_kw <= 1000 + 1e-9
    drawn_kw = -t.power_kw
    assert drawn_kw == pytest.approx(10 if stack_kw == 0 else stack_kw)
    assert t.extra["hydrogen_kg"] == pytest.approx(stack_kw * 0.25 / 55)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=-1010, max_value=0, allow_nan=False),
            st.integers(min_value=1, max_value=120),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_ramping_electrolyser_stays_off_or_within_its_range(
    steps: list[tuple[float, int]],
) -> None:
    clock = ManualClock()
    ely = SimulatedElectrolyser(
        "p", electrolyser_spec(ramp_limit_kw_per_min=5), SIM, clock=clock
    )
    ely.connect()
    previous_kw = 0.0
    for setpoint_kw, minutes in steps:
        ely.write(sp("ely", setpoint_kw, clock))
        clock.advance(minutes=minutes)
        stack_kw = ely.read().extra["stack_kw"]
        assert stack_kw == 0 or 200 - 1e-9 <= stack_kw <= 1000 + 1e-9
        if stack_kw > 0 and previous_kw > 0:  # running throughout: the ramp limit holds
            assert abs(stack_kw - previous_kw) <= 5 * minutes + 1e-6
        previous_kw = stack_kw


def test_electrolyser_without_min_load_draws_standby_only_at_zero(clock: ManualClock) -> None:
    ely = SimulatedElectrolyser(
        "p", electrolyser_spec(min_load_fraction=0.0), SIM, clock=clock
    )
    ely.connect()
    ely.write(sp("ely", -30, clock))
    clock.advance(hours=1)
    t = ely.read()
    assert t.power_kw == -30
    assert t.extra["stack_kw"] == 30
    ely.write(sp("ely", 0, clock))
    clock.advance(hours=1)
    assert ely.read().power_kw == -10
    assert ely.read().extra["consumed_kwh"] == pytest.approx(40)


def test_electrolyser_ramps_at_its_limit(clock: ManualClock) -> None:
    spec = electrolyser_spec(min_load_fraction=0.0, standby_kw=0, ramp_limit_kw_per_min=10)
    ely = SimulatedElectrolyser("p", spec, SIM, clock=clock)
    ely.connect()
    ely.write(sp("ely", -600, clock))
    clock.advance(minutes=30)  # 0 -> 300 kW in 30 min: 75 kWh
    t = ely.read()
    assert t.extra["stack_kw"] == pytest.approx(300)
    assert t.extra["consumed_kwh"] == pytest.approx(75)
    clock.advance(minutes=60)  # 300 -> 600 in 30 min (225 kWh), then 30 min at 600 (300 kWh)
    t = ely.read()
    assert t.extra["stack_kw"] == pytest.approx(600)
    assert t.extra["consumed_kwh"] == pytest.approx(75 + 225 + 300)
    assert t.extra["hydrogen_kg"] == pytest.approx(600 / 55)


def test_electrolyser_with_min_load_starts_at_min_load_then_ramps(clock: ManualClock) -> None:
    spec = electrolyser_spec(ramp_limit_kw_per_min=10)  # min 200 kW
    ely = SimulatedElectrolyser("p", spec, SIM, clock=clock)
    ely.connect()
    ely.write(sp("ely", -500, clock))
    assert ely.read().extra["stack_kw"] == 200  # switched on: at the minimum load at once
    clock.advance(minutes=60)  # 200 -> 500 in 30 min (175 kWh), 30 min at 500 (250 kWh)
    t = ely.read()
    assert t.extra["consumed_kwh"] == pytest.approx(175 + 250)
    ely.write(sp("ely", 0, clock))  # off: at once, stand-by
    assert ely.read().power_kw == -10


# --------------------------------------------------------------------------- thermal storage


def test_thermal_storage_floats_on_the_level_balance(clock: ManualClock) -> None:
    # Demand 300 kW_th; heat pump at COP 3.
    hp = SimulatedHeatPump("p", heat_pump_spec(), SIM, clock=clock, cop=series([3.0] * 6))
    tank = SimulatedThermalStorage(
        "p", thermal_spec(), SIM, clock=clock, demand_kw=series([300.0] * 6)
    )
    couple(hp, tank)
    assert tank.capabilities.setpoint_kind == "none"
    assert tank.capabilities.reports_soc
    with pytest.raises(ReadOnlyError):
        tank.write(sp("tank", 0, clock))
    hp.write(sp("hp", -200, clock))  # 600 kW_th: 300 surplus
    clock.advance(hours=1)
    t = tank.read()
    assert t.power_kw == 0
    assert t.extra["charged_kwh"] == pytest.approx(300)
    assert t.soc == pytest.approx((1000 + 300) / 2000)
    hp.write(sp("hp", -50, clock))  # 150 kW_th: 150 deficit
    clock.advance(hours=2)
    t = tank.read()
    assert t.extra["discharged_kwh"] == pytest.approx(300)
    assert t.soc == pytest.approx(1000 / 2000)
    assert t.extra["unmet_kwh"] == 0


def test_empty_thermal_storage_leaves_exactly_the_deficit_unmet(clock: ManualClock) -> None:
    hp = SimulatedHeatPump("p", heat_pump_spec(), SIM, clock=clock, cop=series([3.0] * 4))
    tank = SimulatedThermalStorage(
        "p", thermal_spec(soc_min=0.1), SIM, clock=clock, demand_kw=series([500.0] * 4),
        soc=0.2,
    )
    couple(hp, tank)
    hp.write(sp("hp", -100, clock))  # 300 kW_th against 500: 200 kW_th deficit
    clock.advance(hours=1)  # 200 kWh above soc_min: the plan's reserve is reached
    t = tank.read()
    assert t.soc == pytest.approx(0.1)
    assert t.extra["unmet_kwh"] == pytest.approx(0)
    clock.advance(hours=1)  # a heat store's reserve is drained before heat goes unmet
    t = tank.read()
    assert t.soc == pytest.approx(0.0)
    assert t.extra["unmet_kwh"] == pytest.approx(0)
    clock.advance(hours=1)
    t = tank.read()
    assert t.extra["unmet_kwh"] == pytest.approx(200)  # empty: the whole deficit
    assert t.extra["discharged_kwh"] == pytest.approx(400)


def test_thermal_storage_rate_limits_dump_the_surplus(clock: ManualClock) -> None:
    eb = SimulatedBoiler("p", boiler_spec(efficiency=1.0), SIM, clock=clock)
    tank = SimulatedThermalStorage(
        "p", thermal_spec(), SIM, clock=clock, demand_kw=series([100.0] * 3)
    )
    couple(eb, tank)
    eb.write(sp("eb", -1000, clock))  # 900 surplus, 600 chargeable
    clock.advance(hours=1)
    t = tank.read()
    assert t.extra["charged_kwh"] == pytest.approx(600)
    assert t.extra["dumped_kwh"] == pytest.approx(300)


def test_thermal_storage_standing_losses(clock: ManualClock) -> None:
    tank = SimulatedThermalStorage(
        "p", thermal_spec(standing_loss_pct_per_h=2.0), SIM, clock=clock,
        demand_kw=series([0.0] * 4),
    )
    couple(tank)
    clock.advance(hours=2)
    t = tank.read()
    lost = 1000 * (1 - 0.98**2)
    assert t.extra["lost_kwh"] == pytest.approx(lost)
    assert t.extra["stored_kwh"] == pytest.approx(1000 - lost)


def test_a_store_may_start_below_soc_min_where_losses_left_it(clock: ManualClock) -> None:
    spec = thermal_spec(soc_min=0.2, standing_loss_pct_per_h=1.0)
    demand = series([0.0] * 3)
    tank = SimulatedThermalStorage("p", spec, SIM, clock=clock, demand_kw=demand, soc=0.19)
    assert tank.soc == pytest.approx(0.19)
    with pytest.raises(InputError, match="outside"):
        SimulatedThermalStorage("p", spec, SIM, clock=clock, demand_kw=demand, soc=1.2)


def test_a_converter_meter_restart_loses_no_heat_for_the_storage(clock: ManualClock) -> None:
    eb = SimulatedBoiler("p", boiler_spec(efficiency=1.0), SIM, clock=clock)
    tank = SimulatedThermalStorage(
        "p", thermal_spec(), SIM, clock=clock, demand_kw=series([0.0] * 3)
    )
    couple(eb, tank)
    eb.write(sp("eb", -200, clock))
    clock.advance(minutes=30)
    assert eb.restart_meter()["heat_kwh"] == pytest.approx(100)  # the tank has not looked yet
    clock.advance(minutes=30)
    assert eb.read().extra["heat_kwh"] == pytest.approx(100)
    assert tank.read().extra["charged_kwh"] == pytest.approx(200)


def test_thermal_storage_ignores_heat_of_other_levels(clock: ManualClock) -> None:
    eb = SimulatedBoiler("p", boiler_spec(level="steam"), SIM, clock=clock)
    tank = SimulatedThermalStorage(
        "p", thermal_spec(), SIM, clock=clock, demand_kw=series([0.0] * 3)
    )
    couple(eb, tank)
    eb.write(sp("eb", -500, clock))
    clock.advance(hours=1)
    assert tank.read().extra["charged_kwh"] == 0


# --------------------------------------------------------------------------- hydrogen storage


def test_hydrogen_storage_takes_production_and_serves_offtake(clock: ManualClock) -> None:
    ely = SimulatedElectrolyser("p", electrolyser_spec(standby_kw=0), SIM, clock=clock)
    tank = SimulatedHydrogenStorage("p", tank_spec(), SIM, clock=clock)
    couple(ely, tank)
    assert tank.capabilities.reports_soc
    ely.write(sp("ely", -1100 / 1.1, clock))  # 1000 kW: 18.18 kg/h against 10 kg/h offtake
    clock.advance(hours=1)
    t = tank.read()
    assert t.extra["charged_kg"] == pytest.approx(1000 / 55 - 10)
    ely.write(sp("ely", 0, clock))
    clock.advance(hours=6)  # 60 kg offtake from 58.18 kg: 58.18 served, 1.82 unmet
    t = tank.read()
    assert t.soc == pytest.approx(0)
    assert t.extra["unmet_kg"] == pytest.approx(60 - (50 + 1000 / 55 - 10))
    assert t.extra["vented_kg"] == 0


def test_full_hydrogen_storage_vents(clock: ManualClock) -> None:
    ely = SimulatedElectrolyser("p", electrolyser_spec(standby_kw=0), SIM, clock=clock)
    tank = SimulatedHydrogenStorage(
        "p", tank_spec(offtake_kg_per_h=0), SIM, clock=clock, soc=0.95
    )
    couple(ely, tank)
    ely.write(sp("ely", -550, clock))  # 10 kg/h; 5 kg of room
    clock.advance(hours=1)
    t = tank.read()
    assert t.soc == pytest.approx(1.0)
    assert t.extra["vented_kg"] == pytest.approx(5)


# --------------------------------------------------------------------------- conservation


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.floats(min_value=-500, max_value=0, allow_nan=False),  # heat pump setpoint
            st.floats(min_value=-1000, max_value=0, allow_nan=False),  # boiler setpoint
            st.integers(min_value=1, max_value=90),  # minutes to the next step
        ),
        min_size=1,
        max_size=8,
    ),
    demand=st.lists(st.floats(min_value=0, max_value=2000), min_size=14, max_size=14),
    loss_pct=st.floats(min_value=0, max_value=5),
    soc=st.floats(min_value=0.1, max_value=0.9),
)
def test_thermal_balance_is_conserved(
    steps: list[tuple[float, float, int]], demand: list[float], loss_pct: float, soc: float
) -> None:
    clock = ManualClock()
    hp = SimulatedHeatPump("p", heat_pump_spec(), SIM, clock=clock, cop=series([3.2] * 14))
    eb = SimulatedBoiler("p", boiler_spec(), SIM, clock=clock)
    tank = SimulatedThermalStorage(
        "p", thermal_spec(standing_loss_pct_per_h=loss_pct, soc_min=0.1, soc_max=0.9),
        SIM, clock=clock, demand_kw=series(demand), soc=soc,
    )
    couple(hp, eb, tank)
    stored_start = tank.stored
    for hp_kw, eb_kw, minutes in steps:
        hp.write(sp("hp", hp_kw, clock))
        eb.write(sp("eb", eb_kw, clock))
        clock.advance(minutes=minutes)
        t = tank.read()
        # Never charged above soc_max; standing losses may cool it below soc_min.
        assert 0 <= t.soc <= 0.9 + 1e-9
    x = tank.read().extra
    supply = hp.heat_kwh + eb.heat_kwh
    assert supply == pytest.approx(tank.supplied)
    # supply - demand = charged - discharged + dumped - unmet
    assert supply - tank.demanded == pytest.approx(
        x["charged_kwh"] - x["discharged_kwh"] + x["dumped_kwh"] - x["unmet_kwh"], abs=1e-6
    )
    # stored_end = stored_start - lost + charged - discharged
    assert x["stored_kwh"] == pytest.approx(
        stored_start - x["lost_kwh"] + x["charged_kwh"] - x["discharged_kwh"], abs=1e-6
    )
    assert min(x.values()) >= -1e-9


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.floats(min_value=-1010, max_value=0, allow_nan=False),
            st.integers(min_value=1, max_value=180),
        ),
        min_size=1,
        max_size=8,
    ),
    offtake=st.floats(min_value=0, max_value=30),
    soc=st.floats(min_value=0.0, max_value=1.0),
)
def test_hydrogen_balance_is_conserved(
    steps: list[tuple[float, int]], offtake: float, soc: float
) -> None:
    clock = ManualClock()
    ely = SimulatedElectrolyser("p", electrolyser_spec(ramp_limit_kw_per_min=20), SIM, clock=clock)
    tank = SimulatedHydrogenStorage(
        "p", tank_spec(offtake_kg_per_h=offtake), SIM, clock=clock, soc=soc
    )
    couple(ely, tank)
    stored_start = tank.stored
    for kw, minutes in steps:
        ely.write(sp("ely", kw, clock))
        clock.advance(minutes=minutes)
        tank.read()
    x = tank.read().extra
    assert ely.hydrogen_kg == pytest.approx(tank.supplied)
    assert tank.supplied - tank.demanded == pytest.approx(
        x["charged_kg"] - x["discharged_kg"] + x["vented_kg"] - x["unmet_kg"], abs=1e-6
    )
    assert x["stored_kg"] == pytest.approx(
        stored_start + x["charged_kg"] - x["discharged_kg"], abs=1e-6
    )

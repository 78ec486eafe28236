"""Tiny cases with hand-computed optima, one per asset model and policy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strategies.park import interval_hours
from strategies.schedule import solve_park
from strategies.state import AssetState, ParkInputs
from tests.strategies.conftest import battery, ev_hub, make_park, process, pv, sessions, utc_index


def profit(park, prices, inputs=None, state=None, minutes=60, **kwargs):  # type: ignore[no-untyped-def]
    index = utc_index(len(prices), minutes)
    model, stats = solve_park(
        park, inputs or ParkInputs(index), state, interval_hours(index, minutes),
        np.asarray(prices, float), **kwargs,
    )
    return model, stats.objective


def test_battery_arbitrage_buys_cheapest_sells_dearest() -> None:
    # 1 MW / 2 MWh, lossless, empty: buy 1 MWh at 10, sell it at 100 (one hour at 1 MW).
    _, value = profit(make_park(battery()), [10, 50, 100])
    assert value == pytest.approx(90.0, abs=1e-6)


def test_degradation_cost_per_mwh_of_throughput() -> None:
    # Same trade, 2 MWh throughput at 5/MWh.
    _, value = profit(make_park(battery(degradation_cost_per_mwh=5.0)), [10, 50, 100])
    assert value == pytest.approx(80.0, abs=1e-6)


def test_efficiencies_apply_on_both_legs() -> None:
    # Charge 1 MWh -> 0.9 MWh stored -> 0.81 MWh delivered, sold at 100.
    park = make_park(battery(charge_efficiency=0.9, discharge_efficiency=0.9))
    model, value = profit(park, [0, 100])
    assert value == pytest.approx(81.0, abs=1e-6)
    assert model.block("battery").soc_kwh.value[0, -1] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(("policy", "expected"), [("initial", 0.0), ("free", 100.0)])
def test_soc_final_policy(policy: str, expected: float) -> None:
    # Half full (1 MWh) at flat 100: 'free' sells it, 'initial' must end where it began.
    park = make_park(battery(soc_initial=0.5, soc_final=policy))
    _, value = profit(park, [100, 100])
    assert value == pytest.approx(expected, abs=1e-6)


def test_soc_final_valued_at_terminal_price() -> None:
    # Buy 1 MWh at 50 to hold it at a terminal value of 60: +10.
    park = make_park(battery(soc_final="valued", terminal_value_per_mwh=60.0))
    _, value = profit(park, [50])
    assert value == pytest.approx(10.0, abs=1e-6)


def test_measured_soc_overrides_configured_initial() -> None:
    park = make_park(battery(soc_initial=0.0))
    _, value = profit(park, [100], state={"bess": AssetState(soc_kwh=500.0)})
    assert value == pytest.approx(50.0, abs=1e-6)


def test_grid_export_limit_caps_the_sale() -> None:
    park = make_park(battery(), export_kw=400.0)
    _, value = profit(park, [0, 100])
    assert value == pytest.approx(40.0, abs=1e-6)


def test_grid_import_limit_caps_the_purchase() -> None:
    park = make_park(battery(), import_kw=250.0)
    _, value = profit(park, [0, 100])
    assert value == pytest.approx(25.0, abs=1e-6)


@pytest.mark.parametrize(("curtailable", "expected"), [(True, 2.0), (False, 1.0)])
def test_pv_curtails_only_when_allowed(curtailable: bool, expected: float) -> None:
    index = utc_index(2)
    park = make_park(pv(curtailable=curtailable))
    inputs = ParkInputs(index, pv_available_kw={"pv": np.array([100.0, 100.0])})
    _, value = profit(park, [-10, 20], inputs)
    assert value == pytest.approx(expected, abs=1e-9)


def test_process_sheds_at_peaks_and_recovers_in_valleys() -> None:
    # Baseline 1 MW; shift 0.5 MW; prices alternate 100/0 hourly, window 2 h.
    # Baseline cost 200; shedding 0.5 MWh in each peak saves 100 -> -100.
    index = utc_index(4)
    inputs = ParkInputs(index, baseline_kw={"furnace": np.full(4, 1000.0)})
    model, value = profit(make_park(process()), [100, 0, 100, 0], inputs)
    assert value == pytest.approx(-100.0, abs=1e-6)
    assert np.asarray(model.block("process").consumption_kw.value)[0] == pytest.approx(
        [500, 1500, 500, 1500], abs=1e-6
    )


def test_ev_session_charges_in_cheapest_hours_of_its_window() -> None:
    index = utc_index(4)
    known = sessions(("a", 0, "2025-05-20 00:00", "2025-05-20 03:00", 20.0, 0.0))
    park = make_park(ev_hub())
    model, value = profit(park, [50, 10, 30, 0], ParkInputs(index), {"hub": AssetState(sessions=known)})
    # 20 kWh at 10 kW: hours 1 (10) and 2 (30); hour 3 (price 0) is after departure.
    assert value == pytest.approx(-0.4, abs=1e-9)
    assert -np.asarray(model.block("ev").power_kw.value)[0] == pytest.approx([0, 10, 10, 0], abs=1e-6)


def test_ev_session_energy_already_charged_is_not_charged_again() -> None:
    index = utc_index(3)
    known = sessions(("a", 0, "2025-05-20 00:00", "2025-05-20 03:00", 20.0, 15.0))
    _, value = profit(make_park(ev_hub()), [50, 10, 30], ParkInputs(index),
                      {"hub": AssetState(sessions=known)})
    assert value == pytest.approx(-0.05, abs=1e-9)


def test_ev_partial_interval_availability_limits_power() -> None:
    # Arrives at 00:30: in hour 0 it can take at most 5 kWh at 10 kW.
    index = utc_index(2)
    known = sessions(("a", 0, "2025-05-20 00:30", "2025-05-20 02:00", 15.0, 0.0))
    model, _ = profit(make_park(ev_hub()), [0, 100], ParkInputs(index),
                      {"hub": AssetState(sessions=known)})
    assert -np.asarray(model.block("ev").power_kw.value)[0] == pytest.approx([5, 10], abs=1e-6)


def test_parks_are_solved_independently_and_objectives_add() -> None:
    from strategies.schedule import optimise_schedule

    index = utc_index(3)
    parks = [make_park(battery(), park_id="a"), make_park(battery(power_kw=500.0), park_id="b")]
    inputs = {p.id: ParkInputs(index) for p in parks}
    schedule = optimise_schedule(parks, inputs, None, interval_hours(index, 60), [10, 50, 100],
                                 on_failure="raise", parallel=2)
    assert schedule.objective == pytest.approx(90.0 + 45.0, abs=1e-6)
    assert list(schedule.park_power_kw.columns) == ["a", "b"]
    assert isinstance(schedule.asset_power_kw.columns, pd.MultiIndex)


def test_interval_hours_rejects_a_gap() -> None:
    index = utc_index(3).delete(1)
    with pytest.raises(ValueError, match="evenly spaced"):
        interval_hours(index, 60)

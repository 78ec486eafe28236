"""Measured state never makes real time infeasible: soft rows give way, by as little as possible.

Each case is a state the hard model cannot recover from (the day-ahead/plan
model raises :class:`~vpp.InfeasibleError` naming the row); real time solves
it, uses exactly the unavoidable slack, logs ``realtime_recovery_shortfall``
and plans everything else as if nothing had happened.
"""

from __future__ import annotations

import numpy as np
import pytest
from structlog.testing import capture_logs

from strategies import StrategyOptions
from strategies.park import interval_hours
from strategies.real_time import RealTimePark, soft_penalty_per_mwh
from strategies.schedule import solve_park
from strategies.state import AssetState, ParkInputs
from tests.strategies.conftest import battery, ev_hub, make_park, process, sessions, utc_index
from vpp.errors import InfeasibleError

INDEX = utc_index(6)
DT = interval_hours(INDEX, 60)

#: The real-time tests below follow the award with no deviation penalty.
NO_PENALTY = StrategyOptions(deviation_penalty_per_mwh=0.0)


def _hard(park, inputs, state, position, prices):  # type: ignore[no-untyped-def]
    """The plan model (hard rows) over the remaining intervals."""
    return solve_park(park, inputs.window(position), state, DT[position:], prices)


def _shortfall_events(logs: list[dict]) -> list[dict]:
    return [e for e in logs if e["event"] == "realtime_recovery_shortfall"]


# --------------------------------------------------------------------------- process

PROCESS_PARK = make_park(battery(soc_initial=0.5, soc_final="free"),
                         process(recovery_window_h=2.0), import_kw=5000.0, export_kw=5000.0)
PROCESS_INPUTS = ParkInputs(INDEX, baseline_kw={"furnace": np.full(6, 1000.0)})
PROCESS_PRICES = np.array([120.0, 80.0, 20.0, 300.0, 10.0, 250.0])


def _process_state(offset_kwh: float) -> dict[str, AssetState]:
    return {"furnace": AssetState(energy_offset_kwh=offset_kwh, shift_kw=-500.0)}


def test_unrecoverable_process_block_gives_way_by_the_shortfall_only() -> None:
    # 900 kWh shed in hour 0 of a 2-hour block; hour 1 can consume at most 500 kW more.
    state = _process_state(-900.0)
    with pytest.raises(InfeasibleError) as info:
        _hard(PROCESS_PARK, PROCESS_INPUTS, state, 1, PROCESS_PRICES[1:])
    assert info.value.constraint == "furnace-recovery-window"

    rt = RealTimePark(PROCESS_PARK, PROCESS_INPUTS, 60, NO_PENALTY)
    with capture_logs() as logs:
        solution, stats = rt.solve(1, state, np.zeros(5), PROCESS_PRICES[1:])
    assert solution.shortfall_kwh == pytest.approx({"furnace-recovery-window": 400.0})
    [event] = _shortfall_events(logs)
    assert event["total_kwh"] == pytest.approx(400.0)
    assert event["park"] == PROCESS_PARK.id
    shift = -solution.power_kw["furnace"] - 1000.0
    assert shift[0] == pytest.approx(500.0)  # recovers all it can, at once
    # The later blocks are planned as usual: each evens out on its own.
    assert shift[1:3].sum() == pytest.approx(0.0, abs=1e-6)
    assert shift[3:5].sum() == pytest.approx(0.0, abs=1e-6)

    # The rest of the plan is the plan of a state that could just be recovered.
    feasible, reference = RealTimePark(PROCESS_PARK, PROCESS_INPUTS, 60, NO_PENALTY).solve(
        1, _process_state(-500.0), np.zeros(5), PROCESS_PRICES[1:])
    assert not feasible.shortfall_kwh
    np.testing.assert_allclose(solution.power_kw["bess"], feasible.power_kw["bess"], atol=1e-6)
    np.testing.assert_allclose(solution.power_kw["furnace"], feasible.power_kw["furnace"],
                               atol=1e-6)
    penalty = soft_penalty_per_mwh(PROCESS_PRICES[1:], PROCESS_PRICES[1:]) / 1000.0
    assert stats.objective == pytest.approx(reference.objective - 400.0 * penalty, rel=1e-9)


def test_recoverable_process_state_uses_no_slack() -> None:
    with capture_logs() as logs:
        solution, _ = RealTimePark(PROCESS_PARK, PROCESS_INPUTS, 60, NO_PENALTY).solve(
            1, _process_state(-300.0), np.zeros(5), PROCESS_PRICES[1:])
    assert not solution.shortfall_kwh
    assert not _shortfall_events(logs)
    shift = -solution.power_kw["furnace"] - 1000.0
    assert shift[0] == pytest.approx(300.0)  # the block still evens out exactly


# --------------------------------------------------------------------------- EV


def test_car_owed_more_than_the_hub_can_give_gets_all_it_can() -> None:
    park = make_park(ev_hub(hub_power_kw=10.0))
    inputs = ParkInputs(INDEX)
    # Two cars owed 25 (capped at the 20 its charger can give in 2 hours) and 10 kWh within
    # 2 hours, through a 10 kW hub: 10 kWh cannot be had.
    cars = sessions(("a", 0, "2025-05-20 00:00", "2025-05-20 03:00", 30.0, 5.0),
                    ("b", 1, "2025-05-20 00:30", "2025-05-20 03:00", 10.0, 0.0))
    state = {"hub": AssetState(sessions=cars)}
    prices = np.array([50.0, 60.0, 70.0, 80.0, 90.0])
    with pytest.raises(InfeasibleError) as info:
        _hard(park, inputs, state, 1, prices)
    assert info.value.constraint in ("hub/a-energy-required", "hub/b-energy-required")

    with capture_logs() as logs:
        solution, _ = RealTimePark(park, inputs, 60, NO_PENALTY).solve(1, state, np.zeros(5), prices)
    assert sum(solution.shortfall_kwh.values()) == pytest.approx(10.0)
    assert set(solution.shortfall_kwh) <= {"hub/a-energy-required", "hub/b-energy-required"}
    assert _shortfall_events(logs)[0]["total_kwh"] == pytest.approx(10.0)
    assert solution.power_kw["hub"] == pytest.approx([-10.0, -10.0, 0.0, 0.0, 0.0], abs=1e-6)


def test_strict_request_beyond_the_charger_gives_way_in_real_time() -> None:
    park = make_park(ev_hub())
    car = sessions(("greedy", 0, "2025-05-20 00:00", "2025-05-20 03:00", 50.0, 0.0))
    state = {"hub": AssetState(sessions=car)}
    solution, _ = RealTimePark(
        park, ParkInputs(INDEX), 60, NO_PENALTY.replace(energy_policy="strict")
    ).solve(
        1, state, np.zeros(5), np.full(5, 100.0))
    assert solution.shortfall_kwh == pytest.approx({"hub/greedy-energy-required": 30.0})
    assert solution.power_kw["hub"][:2] == pytest.approx([-10.0, -10.0])


# --------------------------------------------------------------------------- battery


def test_unreachable_end_of_day_soc_gets_as_close_as_the_grid_allows() -> None:
    # Back to 1000 kWh by the end, from 100 kWh with 2 hours left -- but only 300 kW import.
    park = make_park(battery(soc_initial=0.5, soc_final="initial"), import_kw=300.0)
    inputs = ParkInputs(INDEX)
    state = {"bess": AssetState(soc_kwh=100.0)}
    prices = np.array([40.0, 30.0])
    with pytest.raises(InfeasibleError) as info:
        _hard(park, inputs, state, 4, prices)
    assert info.value.constraint == "bess-soc-final"
    solution, _ = RealTimePark(park, inputs, 60, NO_PENALTY).solve(4, state, np.zeros(2), prices)
    assert solution.shortfall_kwh == pytest.approx({"bess-soc-final": 300.0})
    assert solution.power_kw["bess"] == pytest.approx([-300.0, -300.0])
    assert solution.soc_kwh["bess"][-1] == pytest.approx(700.0)


# --------------------------------------------------------------------------- penalty


def test_penalty_scales_with_prices_and_has_a_floor() -> None:
    low = np.array([10.0, -20.0])
    assert soft_penalty_per_mwh(low, low) == 10_000.0
    high = np.array([500.0, -1500.0])
    assert soft_penalty_per_mwh(high, high, 5.0) == pytest.approx(100.0 * 1505.0)

"""Real-time re-optimisation: follows awards, reuses the compiled problem, agrees across paths."""

from __future__ import annotations

import numpy as np
import pytest

from strategies import RealTimeDispatcher, StrategyOptions
from strategies.real_time import RealTimePark
from strategies.state import AssetState, ParkInputs
from tests.strategies.conftest import (
    battery,
    ev_hub,
    make_park,
    process,
    pv,
    sessions,
    utc_index,
)
from vpp.awards import IntervalAward

INDEX = utc_index(6)
#: The real-time tests below follow the award with no deviation penalty.
NO_PENALTY = StrategyOptions(deviation_penalty_per_mwh=0.0)


def _park():  # type: ignore[no-untyped-def]
    return make_park(battery(soc_initial=0.5, soc_final="free"), process(recovery_window_h=6.0),
                     ev_hub(), import_kw=5000.0, export_kw=5000.0)


def _inputs() -> ParkInputs:
    return ParkInputs(INDEX, baseline_kw={"furnace": np.full(6, 1000.0)})


CAR = sessions(("car", 0, "2025-05-20 00:00", "2025-05-20 05:00", 30.0, 0.0))


def test_award_is_followed_when_deviation_is_penalised() -> None:
    park = make_park(battery(soc_initial=0.5, soc_final="free"))
    dispatcher = RealTimeDispatcher([park], {park.id: ParkInputs(INDEX)}, 60,
                                    StrategyOptions(deviation_penalty_per_mwh=1000.0))
    award = np.array([500.0, -500.0, 0.0, 300.0, 0.0, 0.0])
    result = dispatcher.dispatch(0, None, IntervalAward.of_parks(INDEX, {park.id: award}), np.full(6, 100.0))
    assert result.deviation_kw[park.id].to_numpy() == pytest.approx(np.zeros(6), abs=1e-6)
    assert result.setpoints[0].power_kw == pytest.approx(500.0)


def test_without_penalty_deviation_follows_the_real_time_price() -> None:
    # Two-settlement: the DA award is sunk. Half-full 1 MW / 2 MWh battery, lossless:
    # fill up in hour 0 (1), sell 1 MW in hour 2 (900), refill in hour 3 (3), sell 1 MW in
    # hours 4 and 5 (4, 5): 900 + 4 + 5 - 1 - 3 = 905.
    park = make_park(battery(soc_initial=0.5, soc_final="free"))
    dispatcher = RealTimeDispatcher([park], {park.id: ParkInputs(INDEX)}, 60, NO_PENALTY)
    award = np.full(6, 200.0)
    result = dispatcher.dispatch(0, None, IntervalAward.of_parks(INDEX, {park.id: award}), np.array([1, 2, 900, 3, 4, 5.0]))
    net = result.schedule.park_power_kw[park.id].to_numpy()
    assert net == pytest.approx([-1000, 0, 1000, -1000, 1000, 1000], abs=1e-6)
    assert result.deviation_mw.to_numpy() == pytest.approx((net - award) / 1000)
    # the deviation profit: 905 minus the award's 0.2 MWh per hour at the RT prices
    assert result.stats.objective == pytest.approx(905.0 - 0.2 * (1 + 2 + 900 + 3 + 4 + 5))


def test_state_and_remaining_horizon_are_used() -> None:
    park = make_park(battery(soc_initial=0.5, soc_final="free"))
    dispatcher = RealTimeDispatcher([park], {park.id: ParkInputs(INDEX)}, 60, NO_PENALTY)
    states = {park.id: {"bess": AssetState(soc_kwh=300.0)}}
    result = dispatcher.dispatch(
        4, states, IntervalAward.zero(INDEX, [park.id]), np.array([0, 0, 0, 0, 60, 50.0])
    )
    assert list(result.schedule.index) == list(INDEX[4:])
    assert result.schedule.park_power_kw[park.id].to_numpy() == pytest.approx([300, 0], abs=1e-6)
    assert result.setpoints[0].interval_start == INDEX[4].to_pydatetime()


def test_resolve_reuses_the_compiled_problem_and_matches_a_fresh_build() -> None:
    park = _park()
    state = {"hub": AssetState(sessions=CAR), "bess": AssetState(soc_kwh=800.0)}
    award = np.array([0.0, -500.0, 0.0, 300.0, 0.0, 0.0])
    warm = RealTimePark(park, _inputs(), 60, NO_PENALTY)
    first_prices = np.array([10, 50, 20, 90, 40, 30.0])
    warm.solve(1, state, award[1:], first_prices[1:])
    # Same interval, new telemetry and forecast: parameters only.
    state2 = {"hub": AssetState(sessions=CAR.assign(charged_kwh=4.0)),
              "bess": AssetState(soc_kwh=650.0),
              "furnace": AssetState(energy_offset_kwh=-100.0, shift_kw=-100.0)}
    second_prices = np.array([70, 10, 60, 20, 80.0])
    model, stats = warm.solve(1, state2, award[1:], second_prices)
    assert warm.compiles == 1
    cold = RealTimePark(park, _inputs(), 60, NO_PENALTY, hot=False)
    cold_model, cold_stats = cold.solve(1, state2, award[1:], second_prices)
    assert stats.objective == pytest.approx(cold_stats.objective, rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(model.net_kw, cold_model.net_kw, atol=1e-6)


def test_new_session_reuses_the_day_model_and_rebuilds_a_window_model() -> None:
    park = _park()
    day = RealTimePark(park, _inputs(), 60, NO_PENALTY)
    window = RealTimePark(park, _inputs(), 60, NO_PENALTY, reuse=False)
    more = sessions(("car", 0, "2025-05-20 00:00", "2025-05-20 05:00", 30.0, 0.0),
                    ("van", 1, "2025-05-20 01:00", "2025-05-20 04:00", 10.0, 0.0))
    for rt in (day, window):
        rt.solve(1, {"hub": AssetState(sessions=CAR)}, np.zeros(5), np.full(5, 10.0))
        rt.solve(1, {"hub": AssetState(sessions=more)}, np.zeros(5), np.full(5, 10.0))
        rt.solve(2, {"hub": AssetState(sessions=more)}, np.zeros(4), np.full(4, 10.0))
    assert day.compiles == 1
    assert window.compiles == 3


# --------------------------------------------------------------------------- day model


DAY = utc_index(12)


def _day_park():  # type: ignore[no-untyped-def]
    return make_park(
        battery(soc_initial=0.5, soc_final="initial", charge_efficiency=0.95,
                discharge_efficiency=0.9, degradation_cost_per_mwh=5.0),
        process(recovery_window_h=2.0, ramp_limit_kw_per_min=5.0),
        pv(curtailable=True),
        ev_hub(hub_power_kw=15.0),
        import_kw=2300.0, export_kw=600.0,
    )


def _day_inputs() -> ParkInputs:
    hours = np.arange(12)
    expected = sessions(("w1/a", 0, "2025-05-20 02:00", "2025-05-20 08:00", 30.0, 0.0),
                        ("w1/b", 1, "2025-05-20 05:30", "2025-05-20 14:00", 40.0, 0.0),
                        ("w1/c", 1, "2025-05-19 22:00", "2025-05-20 01:00", 12.0, 0.0))
    expected["weight"] = 0.5
    return ParkInputs(
        DAY,
        pv_available_kw={"pv": np.clip(np.sin((hours - 3) / 8 * np.pi), 0, None) * 900.0},
        baseline_kw={"furnace": 1000.0 + 300.0 * np.cos(hours / 3.0)},
        expected_sessions={"hub": expected},
    )


A = ("a", 0, "2025-05-20 00:30", "2025-05-20 06:00", 40.0)
B = ("b", 1, "2025-05-20 02:10", "2025-05-20 09:00", 30.0)
C = ("c", 0, "2025-05-20 04:40", "2025-05-20 13:00", 25.0)

#: position -> (battery kWh, process offset kWh, process shift kW, cars (row, charged kWh))
TRAJECTORY = {
    0: (1000.0, 0.0, 0.0, []),
    1: (900.0, -200.0, -200.0, [(A, 5.0)]),
    3: (1300.0, 150.0, 100.0, [(A, 20.0), (B, 0.0)]),
    5: (700.0, -50.0, 200.0, [(B, 12.0), (C, 0.0)]),
    6: (650.0, 0.0, 0.0, [(B, 20.0), (C, 4.0)]),
    9: (1800.0, 900.0, 500.0, [(C, 10.0)]),  # 900 kWh above baseline: no recovering that
    11: (1950.0, 100.0, 0.0, [(C, 15.0)]),
}


def _state(position: int) -> dict[str, AssetState]:
    soc, offset, shift, cars = TRAJECTORY[position]
    known = sessions(*((*row, charged) for row, charged in cars)) if cars else None
    return {"bess": AssetState(soc_kwh=soc),
            "furnace": AssetState(energy_offset_kwh=offset, shift_kw=shift),
            "hub": AssetState(sessions=known)}


def test_day_model_equals_a_fresh_build_at_every_position() -> None:
    park, inputs = _day_park(), _day_inputs()
    rng = np.random.default_rng(3)
    prices = rng.normal(300.0, 250.0, 12)
    award = rng.normal(-800.0, 400.0, 12)
    day = RealTimePark(park, inputs, 60, StrategyOptions(deviation_penalty_per_mwh=2.0))
    gave_way = False
    for position in TRAJECTORY:
        state = _state(position)
        forecast = prices[position:] + rng.normal(0.0, 40.0, 12 - position)
        shortfall_price = forecast + 15.0
        reused, stats = day.solve(position, state, award[position:], forecast, shortfall_price)
        fresh = RealTimePark(park, inputs, 60, StrategyOptions(deviation_penalty_per_mwh=2.0),
                             reuse=False, hot=False)
        built, reference = fresh.solve(position, state, award[position:], forecast,
                                       shortfall_price)
        assert stats.objective == pytest.approx(reference.objective, rel=1e-6, abs=1e-6), position
        assert len(reused.net_kw) == 12 - position
        assert reused.shortfall_kwh.keys() == built.shortfall_kwh.keys()
        assert sum(reused.shortfall_kwh.values()) == pytest.approx(
            sum(built.shortfall_kwh.values()), rel=1e-6, abs=1e-6)
        gave_way |= bool(reused.shortfall_kwh)
    assert day.compiles == 1
    assert day._compiled is not None
    assert day._compiled.hot is not None
    assert day._compiled.hot.fast_path  # re-solves skipped CVXPY's matrix and still agree
    assert gave_way  # the trajectory includes a state only slack can absorb


def test_two_cars_on_one_charger_grow_the_slots_once() -> None:
    park, inputs = _day_park(), _day_inputs()
    day = RealTimePark(park, inputs, 60, NO_PENALTY)
    prices = np.linspace(100.0, 400.0, 12)
    day.solve(1, _state(1), np.zeros(11), prices[1:])
    both = {"hub": AssetState(sessions=sessions((*A, 20.0), (*C, 0.0)))}  # both on charger 0
    solution, stats = day.solve(5, both, np.zeros(7), prices[5:])
    ev = solution.model.block("ev")  # its values hold until the next solve
    cars = [ev.slot_labels.index("hub/a"), ev.slot_labels.index("hub/c")]
    charging = ev.session_power_kw(0)[cars]
    assert charging.sum() > 1.0
    assert (charging.sum(axis=0) <= 10.0 + 1e-6).all()  # one charge point: 10 kW between them
    fresh = RealTimePark(park, inputs, 60, NO_PENALTY, reuse=False, hot=False)
    _, reference = fresh.solve(5, both, np.zeros(7), prices[5:])
    assert stats.objective == pytest.approx(reference.objective, rel=1e-6)
    day.solve(6, both, np.zeros(6), prices[6:])
    assert day.compiles == 2


@pytest.mark.parametrize("solver", ["ECOS", "CLARABEL"])
def test_other_solvers_reuse_through_cvxpy(solver: str) -> None:
    park = _park()
    state = {"hub": AssetState(sessions=CAR)}
    rt = RealTimePark(park, _inputs(), 60, NO_PENALTY.replace(solver=solver))
    hot = RealTimePark(park, _inputs(), 60, NO_PENALTY)
    prices = np.array([10, 50, 20, 90, 40.0])
    _, stats = rt.solve(1, state, np.zeros(5), prices)
    _, reference = hot.solve(1, state, np.zeros(5), prices)
    assert stats.objective == pytest.approx(reference.objective, rel=1e-6)

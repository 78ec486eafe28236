"""Real-time re-optimisation: follows awards, reuses the compiled problem, agrees across paths."""

from __future__ import annotations

import numpy as np
import pytest

from strategies import RealTimeDispatcher
from strategies.real_time import RealTimePark
from strategies.state import AssetState, ParkInputs
from tests.strategies.conftest import battery, ev_hub, make_park, process, sessions, utc_index

INDEX = utc_index(6)


def _park():  # type: ignore[no-untyped-def]
    return make_park(battery(soc_initial=0.5, soc_final="free"), process(recovery_window_h=6.0),
                     ev_hub(), import_kw=5000.0, export_kw=5000.0)


def _inputs() -> ParkInputs:
    return ParkInputs(INDEX, baseline_kw={"furnace": np.full(6, 1000.0)})


CAR = sessions(("car", 0, "2025-05-20 00:00", "2025-05-20 05:00", 30.0, 0.0))


def test_award_is_followed_when_deviation_is_penalised() -> None:
    park = make_park(battery(soc_initial=0.5, soc_final="free"))
    dispatcher = RealTimeDispatcher([park], {park.id: ParkInputs(INDEX)}, 60,
                                    deviation_penalty_per_mwh=1000.0)
    award = np.array([500.0, -500.0, 0.0, 300.0, 0.0, 0.0])
    result = dispatcher.dispatch(0, None, {park.id: award}, np.full(6, 100.0))
    assert result.deviation_kw[park.id].to_numpy() == pytest.approx(np.zeros(6), abs=1e-6)
    assert result.setpoints[0].power_kw == pytest.approx(500.0)


def test_without_penalty_deviation_follows_the_real_time_price() -> None:
    # Two-settlement: the DA award is sunk. Half-full 1 MW / 2 MWh battery, lossless:
    # fill up in hour 0 (1), sell 1 MW in hour 2 (900), refill in hour 3 (3), sell 1 MW in
    # hours 4 and 5 (4, 5): 900 + 4 + 5 - 1 - 3 = 905.
    park = make_park(battery(soc_initial=0.5, soc_final="free"))
    dispatcher = RealTimeDispatcher([park], {park.id: ParkInputs(INDEX)}, 60)
    award = np.full(6, 200.0)
    result = dispatcher.dispatch(0, None, {park.id: award}, np.array([1, 2, 900, 3, 4, 5.0]))
    net = result.schedule.park_power_kw[park.id].to_numpy()
    assert net == pytest.approx([-1000, 0, 1000, -1000, 1000, 1000], abs=1e-6)
    assert result.deviation_mw.to_numpy() == pytest.approx((net - award) / 1000)
    # the deviation profit: 905 minus the award's 0.2 MWh per hour at the RT prices
    assert result.stats.objective == pytest.approx(905.0 - 0.2 * (1 + 2 + 900 + 3 + 4 + 5))


def test_state_and_remaining_horizon_are_used() -> None:
    park = make_park(battery(soc_initial=0.5, soc_final="free"))
    dispatcher = RealTimeDispatcher([park], {park.id: ParkInputs(INDEX)}, 60)
    states = {park.id: {"bess": AssetState(soc_kwh=300.0)}}
    result = dispatcher.dispatch(4, states, {park.id: np.zeros(6)}, np.array([0, 0, 0, 0, 60, 50.0]))
    assert list(result.schedule.index) == list(INDEX[4:])
    assert result.schedule.park_power_kw[park.id].to_numpy() == pytest.approx([300, 0], abs=1e-6)
    assert result.setpoints[0].interval_start == INDEX[4].to_pydatetime()


def test_resolve_reuses_the_compiled_problem_and_matches_a_fresh_build() -> None:
    park = _park()
    state = {"hub": AssetState(sessions=CAR), "bess": AssetState(soc_kwh=800.0)}
    award = np.array([0.0, -500.0, 0.0, 300.0, 0.0, 0.0])
    warm = RealTimePark(park, _inputs(), 60)
    first_prices = np.array([10, 50, 20, 90, 40, 30.0])
    warm.solve(1, state, award[1:], first_prices[1:])
    # Same interval, new telemetry and forecast: parameters only.
    state2 = {"hub": AssetState(sessions=CAR.assign(charged_kwh=4.0)),
              "bess": AssetState(soc_kwh=650.0),
              "furnace": AssetState(energy_offset_kwh=-100.0, shift_kw=-100.0)}
    second_prices = np.array([70, 10, 60, 20, 80.0])
    model, stats = warm.solve(1, state2, award[1:], second_prices)
    assert warm.compiles == 1
    cold = RealTimePark(park, _inputs(), 60, hot=False)
    cold_model, cold_stats = cold.solve(1, state2, award[1:], second_prices)
    assert stats.objective == pytest.approx(cold_stats.objective, rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(np.asarray(model.net_kw.value), np.asarray(cold_model.net_kw.value),
                               atol=1e-6)


def test_new_session_triggers_a_rebuild() -> None:
    park = _park()
    rt = RealTimePark(park, _inputs(), 60)
    rt.solve(1, {"hub": AssetState(sessions=CAR)}, np.zeros(5), np.full(5, 10.0))
    more = sessions(("car", 0, "2025-05-20 00:00", "2025-05-20 05:00", 30.0, 0.0),
                    ("van", 1, "2025-05-20 01:00", "2025-05-20 04:00", 10.0, 0.0))
    rt.solve(1, {"hub": AssetState(sessions=more)}, np.zeros(5), np.full(5, 10.0))
    assert rt.compiles == 2


@pytest.mark.parametrize("solver", ["ECOS", "CLARABEL"])
def test_other_solvers_reuse_through_cvxpy(solver: str) -> None:
    park = _park()
    state = {"hub": AssetState(sessions=CAR)}
    rt = RealTimePark(park, _inputs(), 60, solver=solver)
    hot = RealTimePark(park, _inputs(), 60)
    prices = np.array([10, 50, 20, 90, 40.0])
    _, stats = rt.solve(1, state, np.zeros(5), prices)
    _, reference = hot.solve(1, state, np.zeros(5), prices)
    assert stats.objective == pytest.approx(reference.objective, rel=1e-6)

"""Infeasible inputs raise a typed error naming the constraint; callers get an idle fallback."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from structlog.testing import capture_logs

from strategies import (
    Forecast,
    RealTimeDispatcher,
    StrategyOptions,
    build_day_ahead_bid,
    optimise_schedule,
)
from strategies.park import interval_hours
from strategies.schedule import idle_schedule, solve_park
from strategies.state import AssetState, ParkInputs
from tests.strategies.conftest import battery, ev_hub, make_park, process, pv, sessions, utc_index
from vpp.awards import IntervalAward
from vpp.errors import InfeasibleError

INDEX = utc_index(4)
# 30 kWh before departure at 10 kW over 2 hours is impossible.
GREEDY_CAR = sessions(("greedy", 0, "2025-05-20 00:00", "2025-05-20 02:00", 30.0, 0.0))


def _ev_park():  # type: ignore[no-untyped-def]
    return make_park(battery(), ev_hub(), pv())


def _inputs() -> ParkInputs:
    return ParkInputs(INDEX, pv_available_kw={"pv": np.array([0.0, 50.0, 50.0, 0.0])})


def test_impossible_ev_request_names_the_session() -> None:
    park = _ev_park()
    with capture_logs() as logs, pytest.raises(InfeasibleError) as info:
        solve_park(park, _inputs(), {"hub": AssetState(sessions=GREEDY_CAR)},
                   interval_hours(INDEX, 60), np.array([10.0, 20, 30, 40]), energy_policy="strict")
    assert info.value.constraint == "hub/greedy-energy-required"
    assert "hub/greedy-energy-required" in str(info.value)
    failed = [e for e in logs if e["event"] == "solve_failed"]
    assert failed
    assert failed[0]["constraint"] == "hub/greedy-energy-required"


def test_cap_policy_serves_what_the_charger_can() -> None:
    park = _ev_park()
    with capture_logs() as logs:
        model, _ = solve_park(park, _inputs(), {"hub": AssetState(sessions=GREEDY_CAR)},
                              interval_hours(INDEX, 60), np.array([10.0, 20, 30, 40]))
    assert any(e["event"] == "ev_request_capped" for e in logs)
    assert model.block("ev").session_power_kw(0) @ model.dt_h == pytest.approx([20.0])


def test_grid_too_small_for_the_baseline_names_the_grid() -> None:
    park = make_park(process(shift_down_kw=0.0), import_kw=500.0)
    inputs = ParkInputs(INDEX, baseline_kw={"furnace": np.full(4, 1000.0)})
    with pytest.raises(InfeasibleError) as info:
        solve_park(park, inputs, None, interval_hours(INDEX, 60), np.zeros(4))
    assert info.value.constraint == "park-grid-import-max"


def test_schedule_falls_back_to_idle_without_nan() -> None:
    park = _ev_park()
    states = {park.id: {"hub": AssetState(sessions=GREEDY_CAR)}}
    schedule = optimise_schedule([park], {park.id: _inputs()}, states, interval_hours(INDEX, 60),
                                 np.array([10.0, 20, 30, 40]), energy_policy="strict")
    assert schedule.fallback
    assert "greedy-energy-required" in schedule.errors["portfolio"]
    assert np.isfinite(schedule.asset_power_kw.to_numpy()).all()
    powers = schedule.asset_power_kw[park.id]
    assert (powers["bess"] == 0).all()
    assert powers["pv"].tolist() == [0.0, 50.0, 50.0, 0.0]
    assert powers["hub"].tolist() == [-10.0, -10.0, 0.0, 0.0]  # charges on arrival
    setpoints = schedule.setpoints(0)
    assert {s.asset_id for s in setpoints} == {"bess", "hub", "pv"}


def test_day_ahead_falls_back_to_a_price_taking_idle_bid(cn_rules) -> None:  # type: ignore[no-untyped-def]
    index = utc_index(8, 15)
    park = make_park(battery(), ev_hub())
    car = sessions(("greedy", 0, "2025-05-20 00:00", "2025-05-20 01:00", 50.0, 0.0))
    forecast = Forecast.from_scenarios(np.array([[100.0] * 8, [200.0] * 8]), index)
    result = build_day_ahead_bid(
        [park], {park.id: ParkInputs(index)}, {park.id: {"hub": AssetState(sessions=car)}},
        cn_rules, forecast, portfolio_id="p", created_at=dt.datetime(2025, 5, 19, tzinfo=dt.UTC),
        energy_policy="strict",
    )
    assert result.fallback
    assert result.allocation is None
    assert all(len(c.points) == 1 for c in result.bid.curves)
    assert all(np.isfinite(p.quantity_mw) for c in result.bid.curves for p in c.points)


def test_real_time_falls_back_per_park() -> None:
    # Measured state never makes real time infeasible (soft rows), a grid too small for
    # the plant's baseline still does.
    good = make_park(battery(), park_id="good")
    bad = make_park(process(shift_down_kw=0.0), import_kw=500.0, park_id="bad")
    inputs = {"good": ParkInputs(INDEX),
              "bad": ParkInputs(INDEX, baseline_kw={"furnace": np.full(4, 1000.0)})}
    dispatcher = RealTimeDispatcher(
        [good, bad], inputs, 60, StrategyOptions(deviation_penalty_per_mwh=0.0)
    )
    awards = IntervalAward.zero(INDEX, ["good", "bad"])
    result = dispatcher.dispatch(1, None, awards, np.array([10.0, 20, 30, 40]))
    assert result.fallback
    assert set(result.errors) == {"bad"}
    assert "grid-import-max" in result.errors["bad"]
    assert all(np.isfinite(s.power_kw) for s in result.setpoints)
    assert len(result.setpoints) == 2


def test_idle_schedule_curtails_pv_to_the_export_limit() -> None:
    park = make_park(pv(), export_kw=30.0)
    inputs = ParkInputs(INDEX, pv_available_kw={"pv": np.array([0.0, 50.0, 20.0, 0.0])})
    schedule = idle_schedule([park], {park.id: inputs}, None, interval_hours(INDEX, 60))
    assert schedule.park_power_kw[park.id].tolist() == [0.0, 30.0, 20.0, 0.0]

"""DST days (92/100 intervals), the strategy registry end to end, and the plan output."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from strategies import (
    Forecast,
    StrategyOptions,
    build_day_ahead_bid,
    get_strategy,
    initial_state,
    load_inputs,
    optimise_schedule,
)
from strategies.park import interval_hours
from strategies.plan import plan_day, write_plan
from strategies.state import ParkInputs
from tests.strategies.conftest import battery, make_park, process, pv
from vpp.awards import IntervalAward
from vpp.timeutil import day_intervals_utc

BERLIN = "Europe/Berlin"


@pytest.mark.parametrize(("day", "intervals"), [(dt.date(2025, 3, 30), 92), (dt.date(2025, 10, 26), 100)])
def test_dst_day_schedule_and_bid(cn_rules, day: dt.date, intervals: int) -> None:  # type: ignore[no-untyped-def]
    index = day_intervals_utc(day, BERLIN, 15)
    assert len(index) == intervals
    park = make_park(battery(soc_initial=0.5, soc_final="initial"), process(recovery_window_h=4.0),
                     pv(), timezone=BERLIN, export_kw=800.0)
    hours = index.tz_convert(BERLIN).hour.to_numpy()
    inputs = ParkInputs(
        index,
        pv_available_kw={"pv": np.clip(np.sin((hours - 6) / 12 * np.pi), 0, None) * 900},
        baseline_kw={"furnace": np.full(intervals, 1200.0)},
    )
    price = 50 + 40 * np.cos(hours / 24 * 2 * np.pi)
    schedule = optimise_schedule([park], {park.id: inputs}, None, interval_hours(index, 15), price,
                                 on_failure="raise")
    assert len(schedule.index) == intervals
    assert np.isfinite(schedule.asset_power_kw.to_numpy()).all()
    # every 4-hour local block recovers its shifted energy (blocks follow the wall clock)
    shift = -schedule.asset_power_kw[(park.id, "furnace")].to_numpy() - 1200.0
    local = index.tz_convert(BERLIN)
    block = (local.hour // 4).to_numpy()
    for b in np.unique(block):
        assert abs(float(shift[block == b].sum() * 0.25)) < 1e-5
    rules = cn_rules.model_copy(update={"timezone": BERLIN})
    forecast = Forecast.from_scenarios(np.array([price, price * 1.5, price * 0.5]), index)
    result = build_day_ahead_bid([park], {park.id: inputs}, None, rules, forecast, portfolio_id="p",
                                 created_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC), on_failure="raise")
    assert len(result.bid.curves) == intervals
    assert result.bid.delivery_day == day


def test_strategies_end_to_end_on_the_example(example_config, cn_frame) -> None:  # type: ignore[no-untyped-def]
    day = dt.date(2025, 5, 26)
    rules = example_config.markets["cn-province-a"].rules_on(day)
    index = day_intervals_utc(day, rules.timezone, rules.interval_minutes)
    decision = rules.gate_closure(day)
    parks = example_config.parks_in("cn-province-a")
    inputs = {p.id: load_inputs(p, example_config.park_files[p.id].parent, index,
                                decision_time=decision) for p in parks}
    states = {p.id: initial_state(p) for p in parks}
    history = cn_frame[cn_frame.index < pd.Timestamp(decision)]
    features = cn_frame.loc[index, ["load_forecast_mw", "renewable_forecast_mw", "bidding_space_mw"]]
    results = {}
    for name in ("stochastic", "deterministic", "persistence", "idle"):
        strategy = get_strategy(StrategyOptions(
            name=name, forecaster="regression", scenarios=3, deviation_penalty_per_mwh=0.0
        ))
        da = strategy.day_ahead(parks, inputs, states, rules, history, index=index,
                                portfolio_id="demo", created_at=decision, features=features)
        assert len(da.bid.curves) == 96
        assert not da.fallback
        awards = IntervalAward.of_parks(
            index, {p.id: da.expected_schedule.park_power_kw[p.id].to_numpy() for p in parks}
        )
        dispatcher = strategy.dispatcher(parks, inputs, rules)
        now = index[10]
        rt_history = cn_frame[cn_frame.index < now]  # DA prices of the day are published
        rt_history = pd.concat([rt_history, cn_frame.loc[index[10:], ["da_price"]]])
        rt = strategy.real_time(dispatcher, 10, states, awards, rt_history, rules.timezone)
        assert len(rt.setpoints) == sum(len(p.assets) for p in parks)
        assert all(np.isfinite(s.power_kw) for s in rt.setpoints)
        results[name] = da
    assert max(len(c.points) for c in results["stochastic"].bid.curves) > 1
    assert all(len(c.points) == 1 for c in results["deterministic"].bid.curves)
    with pytest.raises(ValueError, match="stochastic"):
        get_strategy("magic")


def test_plan_writes_schedules_and_summary(example_config, cn_frame, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = plan_day(example_config, cn_frame, dt.date(2025, 5, 20), "cn-province-a")
    assert plan.status == "optimal"
    paths = write_plan(plan, tmp_path)
    assert [p.name for p in paths] == ["assets.csv", "parks.csv", "balances.csv", "plan.json"]
    summary = json.loads((tmp_path / "plan.json").read_text())
    assert summary["status"] == "optimal"
    assert summary["objective"] == pytest.approx(plan.schedule.objective, abs=1e-5)
    for key in ("build_s", "solve_s", "total_s"):
        assert summary[key] >= 0
    assets = pd.read_csv(tmp_path / "assets.csv")
    parks = pd.read_csv(tmp_path / "parks.csv")
    assert len(assets) == 96 * 12  # jinan 3, qingdao 3, the oilfield 6 assets
    assert len(parks) == 96 * 3
    # per-park power is the sum of its assets' power in every interval
    summed = assets.groupby(["interval_start", "park_id"])["power_kw"].sum()
    joined = parks.set_index(["interval_start", "park_id"])["power_kw"]
    assert np.allclose(summed.loc[joined.index].to_numpy(), joined.to_numpy(), atol=1e-3)


def test_plan_refuses_a_day_with_missing_prices(example_config, cn_frame) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="missing"):
        plan_day(example_config, cn_frame, dt.date(2025, 6, 20), "cn-province-a")

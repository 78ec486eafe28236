"""Carbon-aware operation: the carbon price and the daily budget in the objective.

On the shipped Chinese days (whose fundamentals give an interval intensity):
a positive carbon price never raises the plan's emissions and never raises
its carbon-free value (revenue minus wear), over several days and prices; the
budget row binds, and the test proves it matters by removing it.
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import numpy as np
import pytest

from market_replay import import_prices
from strategies.carbon import CarbonSignal, carbon_signal, import_emissions_tco2
from strategies.plan import plan_day
from strategies.schedule import solve_park
from vpp.config import load_config
from vpp.config.models import CarbonBudget
from vpp.errors import InputError

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
SHIPPED = REPO / "data" / "prices" / "cn_province_a_spot_2025-05_2025-06_15min.csv"
DAYS = [dt.date(2025, 5, 12), dt.date(2025, 5, 20), dt.date(2025, 6, 3), dt.date(2025, 6, 17)]
PRICES_PER_T = [0.0, 100.0, 500.0, 3000.0]


@pytest.fixture(scope="module")
def config():  # type: ignore[no-untyped-def]
    return load_config(CONFIG)


@pytest.fixture(scope="module")
def frame(config):  # type: ignore[no-untyped-def]
    market = config.markets["cn-province-a"]
    return import_prices(SHIPPED, "cn-spot-96", market, policy="drop-day").prices.frame


@pytest.fixture(scope="module")
def plans(config, frame):  # type: ignore[no-untyped-def]
    return {
        (day, price): plan_day(config, frame, day, "cn-province-a", carbon_price_per_t=price)
        for day, price in itertools.product(DAYS, PRICES_PER_T)
    }


def _wear(plan) -> float:  # type: ignore[no-untyped-def]
    """Objective = revenue - wear - carbon cost, so wear = revenue - objective - carbon cost."""
    emissions = plan.emissions_location_tco2()
    return plan.energy_revenue() - plan.schedule.objective - plan.carbon_price_per_t * emissions


def test_the_intensity_is_the_interval_estimate(plans) -> None:  # type: ignore[no-untyped-def]
    intensity = plans[(DAYS[0], 0.0)].intensity_tco2_per_mwh
    assert np.isfinite(intensity).all()
    assert intensity.std() > 0.01  # the fundamentals move it; not the flat annual factor
    assert 0.1 < intensity.mean() < 0.9


@pytest.mark.parametrize("day", DAYS)
def test_a_carbon_price_never_raises_emissions_nor_value(plans, day) -> None:  # type: ignore[no-untyped-def]
    emissions = [plans[(day, p)].emissions_location_tco2() for p in PRICES_PER_T]
    value = [plans[(day, p)].energy_revenue() - _wear(plans[(day, p)]) for p in PRICES_PER_T]
    for p in PRICES_PER_T:
        assert plans[(day, p)].status == "optimal"
    for a, b in itertools.pairwise(emissions):
        assert b <= a + 1e-6 * max(1.0, abs(a))
    for a, b in itertools.pairwise(value):
        assert b <= a + 1e-6 * max(1.0, abs(a))
    # and on these days it matters: the highest price cuts emissions
    assert emissions[-1] < emissions[0] - 0.05


def test_the_plan_reports_what_it_charged(plans) -> None:  # type: ignore[no-untyped-def]
    blind, priced = plans[(DAYS[1], 0.0)], plans[(DAYS[1], 500.0)]
    assert blind.carbon_price_per_t == 0.0
    assert priced.carbon_price_per_t == 500.0
    # the objective of the carbon-blind plan holds no carbon cost
    assert priced.schedule.objective < priced.energy_revenue() - _wear(priced) + 1e-6
    by_hand = sum(
        import_emissions_tco2(
            priced.schedule.park_power_kw[p].to_numpy(float), np.full(96, 0.25),
            priced.intensity_tco2_per_mwh,
        ).sum()
        for p in priced.schedule.park_power_kw.columns
    )
    assert priced.emissions_location_tco2() == pytest.approx(by_hand, rel=1e-12)


def _budget_run(config, frame, day: dt.date, budget: float, omit=frozenset()):  # type: ignore[no-untyped-def]
    """One park's plan with a daily budget; returns its emissions [tCO2]."""
    from strategies.foresight import realized_states
    from strategies.park import interval_hours
    from strategies.state import load_inputs
    from vpp.timeutil import day_intervals_utc

    market = config.markets["cn-province-a"]
    rules = market.rules_on(day)
    park = config.parks_in("cn-province-a")[0].model_copy(
        update={"carbon_budget": CarbonBudget(daily_tco2=budget, penalty_per_t=1e5)}
    )
    index = day_intervals_utc(day, rules.timezone, rules.interval_minutes)
    folder = config.park_files[park.id].parent
    signal = carbon_signal(
        park, index, rules.timezone, config.carbon["cn"], price_per_t=0.0,
        fundamentals=frame, market_id=market.id,
    )
    assert signal is not None
    inputs = load_inputs(park, folder, index).with_carbon(signal)
    state = realized_states(park, folder, index)
    dt_h = interval_hours(index, rules.interval_minutes)
    prices = frame["da_price"].reindex(index).to_numpy(float)
    model, stats = solve_park(park, inputs, state, dt_h, prices, omit=omit)
    assert stats.status.value == "optimal"
    net = np.asarray(model.net_kw.value, dtype=float)[0]
    return float(import_emissions_tco2(net, dt_h, signal.intensity_tco2_per_mwh).sum())


def test_a_daily_budget_binds_and_removing_it_breaks_the_test(config, frame) -> None:  # type: ignore[no-untyped-def]
    day = DAYS[2]
    free = _budget_run(config, frame, day, budget=1e6)
    assert free > 0.5
    budget = free * 0.97
    held = _budget_run(config, frame, day, budget=budget)
    assert held <= budget + 1e-6
    # the same problem without the budget row emits what it did without a budget
    dropped = _budget_run(config, frame, day, budget=budget, omit=frozenset({"park:carbon-budget"}))
    assert dropped == pytest.approx(free, rel=1e-6)
    assert dropped > budget + 1e-3


def test_carbon_signal_refuses_bad_values() -> None:
    with pytest.raises(InputError, match="price_per_t = -1"):
        CarbonSignal(np.ones(4), price_per_t=-1.0)
    with pytest.raises(InputError, match="finite and >= 0"):
        CarbonSignal(np.array([0.5, np.nan]), price_per_t=10.0)


def test_a_carbon_price_without_factors_is_refused(config, frame) -> None:  # type: ignore[no-untyped-def]
    market = config.markets["cn-province-a"].model_copy(update={"carbon_region": None})
    markets = {**config.markets, "cn-province-a": market}
    bare = config.__class__(**{**config.__dict__, "markets": markets, "carbon": {}})
    with pytest.raises(InputError, match="carbon_price_per_t = 200 needs a grid intensity"):
        plan_day(bare, frame, DAYS[0], "cn-province-a", carbon_price_per_t=200.0)
    with pytest.raises(InputError, match="carbon_price_per_t = -5"):
        plan_day(config, frame, DAYS[0], "cn-province-a", carbon_price_per_t=-5.0)


def test_the_operator_path_cannot_see_unpublished_fundamentals(config, frame) -> None:  # type: ignore[no-untyped-def]
    """The carbon signal is built from the replay exchange's history: before the
    delivery day's fundamentals are published (D-1 08:00 local) it holds the annual
    factor, after it the interval estimate -- never the estimate early."""
    from market_replay.exchange import ReplayExchange
    from vpp.runtime.clock import ReplayClock
    from vpp.timeutil import day_intervals_utc, zone

    market = config.markets["cn-province-a"]
    park = config.parks_in("cn-province-a")[0]
    day = DAYS[1]
    index = day_intervals_utc(day, market.timezone, 15)
    early = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(7, 59), zone(market.timezone))
    clock = ReplayClock(early)
    exchange = ReplayExchange(frame, market, clock)

    def signal() -> np.ndarray:
        made = carbon_signal(
            park, index, market.timezone, config.carbon["cn"], price_per_t=100.0,
            area=market.carbon_area, fundamentals=exchange.history(), market_id=market.id,
        )
        assert made is not None
        return made.intensity_tco2_per_mwh

    before = signal()
    assert np.ptp(before) == 0.0  # the annual factor, flat
    clock.advance_to(early + dt.timedelta(minutes=2))
    after = signal()
    assert np.ptp(after) > 0.01
    realized = carbon_signal(
        park, index, market.timezone, config.carbon["cn"], price_per_t=100.0,
        area=market.carbon_area, fundamentals=frame, market_id=market.id,
    )
    assert realized is not None
    np.testing.assert_allclose(after, realized.intensity_tco2_per_mwh)

"""Parks solved in worker processes give bit-for-bit the results of one process.

:func:`strategies.schedule.run_parks` is the one code path: one worker runs the
parks' tasks here, several run the same tasks in a pool of processes. The plan
(perfect foresight), the deterministic schedule and a backtest day whose
day-ahead bids are built with ``parallel=2`` are compared exactly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.strategy import make_case
from market_replay import import_prices
from strategies import StrategyOptions
from strategies.plan import plan_day
from strategies.schedule import Schedule, optimise_schedule
from vpp.backtest.run import BacktestOptions, run_backtest
from vpp.config import load_config
from vpp.runtime.operator import MarketPortfolio

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "data" / "prices" / "cn_province_a_spot_2025-05_2025-06_15min.csv"


def _same(a: Schedule, b: Schedule) -> None:
    pd.testing.assert_frame_equal(a.asset_power_kw, b.asset_power_kw, check_exact=True)
    pd.testing.assert_frame_equal(a.park_power_kw, b.park_power_kw, check_exact=True)
    pd.testing.assert_frame_equal(a.soc_kwh, b.soc_kwh, check_exact=True)
    assert a.objective == b.objective


def test_generated_parks_schedule_identically_on_one_and_three_workers() -> None:
    cases = [make_case(10, seed=p, park_id=f"p{p}") for p in range(6)]
    parks = [c.park for c in cases]
    inputs = {c.park.id: c.inputs for c in cases}
    one, three = (
        optimise_schedule(parks, inputs, None, cases[0].dt_h, cases[0].prices, parallel=n)
        for n in (1, 3)
    )
    _same(one, three)
    assert list(one.park_power_kw.columns) == [p.id for p in parks]  # order kept


@pytest.fixture(scope="module")
def cn() -> pd.DataFrame:
    market = load_config(REPO / "config").markets["cn-province-a"]
    return import_prices(SHIPPED, "cn-spot-96", market, policy="drop-day").prices


def test_the_plan_is_identical_whatever_the_number_of_workers(cn) -> None:  # type: ignore[no-untyped-def]
    config = load_config(REPO / "config")
    day = dt.date(2025, 5, 12)
    one = plan_day(config, cn.frame, day, "cn-province-a", parallel=1)
    two = plan_day(config, cn.frame, day, "cn-province-a", parallel=2)
    assert one.status == two.status == "optimal"
    _same(one.schedule, two.schedule)


def test_a_backtest_day_bid_in_parallel_is_identical(cn) -> None:  # type: ignore[no-untyped-def]
    portfolio = MarketPortfolio.from_config(load_config(REPO / "config"), "cn-province-a")
    options = BacktestOptions(
        StrategyOptions(reoptimise_every=96, scenarios=2), baselines=False
    )
    days = [dt.date(2025, 5, 12)]
    one = run_backtest(portfolio, cn, days, options)
    parallel = dataclasses.replace(options, strategy=options.strategy.replace(parallel=2))
    two = run_backtest(portfolio, cn, days, parallel)
    pd.testing.assert_frame_equal(one.main.portfolio, two.main.portfolio, check_exact=True)
    pd.testing.assert_frame_equal(one.main.assets, two.main.assets, check_exact=True)
    assert np.isfinite(one.main.net_revenue)


def test_errors_cross_process_boundaries_whole() -> None:
    """A park's solver error raised in a worker reaches the parent with its fields."""
    import pickle

    from vpp.errors import InfeasibleError, UnmetDemandError

    infeasible = pickle.loads(pickle.dumps(InfeasibleError("park p0", constraint="a0-soc-max")))
    assert infeasible.constraint == "a0-soc-max"
    assert str(infeasible) == "park p0 (constraint a0-soc-max)"
    when = dt.datetime(2025, 5, 12, tzinfo=dt.UTC)
    unmet = pickle.loads(pickle.dumps(UnmetDemandError("no steam", balance="steam", interval=when)))
    assert (unmet.balance, unmet.interval) == ("steam", when)

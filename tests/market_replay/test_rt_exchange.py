"""Real-time bids at the replay exchange: gate, replacement, clearing on real DK1 regulating
prices, awards known from the period's start and paid prices only once published."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market_replay import import_prices
from market_replay.exchange import ReplayExchange
from tests.market_replay._support import NORDPOOL, market
from vpp import LookAheadError, MarketRuleError
from vpp.runtime.clock import ReplayClock
from vpp.runtime.jobs import RT_BID_MARGIN, day_jobs
from vpp.types import BidPoint, RealTimeBid

DK1 = market("nordpool-dk1")
UTC = dt.UTC


@pytest.fixture(scope="module")
def dk1(shared_prices: Path) -> pd.DataFrame:
    frame = import_prices(shared_prices / NORDPOOL, "nordpool-regulating", DK1, zone="DK1").prices.frame
    return frame.loc["2016-01-10":"2016-01-20"]


def _up_hour(frame: pd.DataFrame) -> pd.Timestamp:
    """The first hour of 2016-01-12 on with up-regulation well above spot."""
    later = frame.loc["2016-01-12":]
    return later.index[(later["rt_price_up"] - later["da_price"] > 20).to_numpy()][0]


def _bid(start: pd.Timestamp, points: tuple[tuple[float, float], ...], direction: str,
         created: dt.datetime) -> RealTimeBid:
    return RealTimeBid("nordpool-dk1", "pf", "mfrr-energy", start.to_pydatetime(),
                       tuple(BidPoint(p, q) for p, q in points), direction, created)


def test_up_bid_cleared_at_the_up_price_and_paid_once_published(dk1: pd.DataFrame) -> None:
    hour = _up_hour(dk1)
    row = dk1.loc[hour]
    up, spot = float(row["rt_price_up"]), float(row["da_price"])
    gate = DK1.rules_on(hour.tz_convert("Europe/Copenhagen").date()).rt_gate_closure(
        "mfrr-energy", hour.to_pydatetime())
    assert gate == (hour - pd.Timedelta(minutes=45)).to_pydatetime()  # 45 min before the hour
    clock = ReplayClock(gate - dt.timedelta(minutes=10))
    exchange = ReplayExchange(dk1, DK1, clock)
    # 1 MW at just above spot (activated: the up price is > spot + 20), 3 MW far above up.
    points = ((round(spot + 1.0, 2), 1.0), (round(up + 500.0, 2), 3.0))
    bid = _bid(hour, points, "up", clock.now())
    exchange.submit_real_time(bid)
    with pytest.raises(LookAheadError, match="known from the period's start"):
        exchange.real_time_awards(bid)
    clock.advance_to(hour.to_pydatetime())
    (award,) = exchange.real_time_awards(bid)
    assert award.quantity_mw == 1.0  # the highest point priced at or below the up price
    assert award.price_per_mwh is None  # the regulating price is not published yet
    clock.advance_to((hour + pd.Timedelta(hours=1)).to_pydatetime())
    (award,) = exchange.real_time_awards(bid)
    assert award.price_per_mwh == pytest.approx(up)


def test_down_bid_cleared_at_the_down_price(dk1: pd.DataFrame) -> None:
    later = dk1.loc["2016-01-12":]
    hour = later.index[(later["da_price"] - later["rt_price_down"] > 20).to_numpy()][0]
    row = dk1.loc[hour]
    down, spot = float(row["rt_price_down"]), float(row["da_price"])
    clock = ReplayClock((hour - pd.Timedelta(hours=2)).to_pydatetime())
    exchange = ReplayExchange(dk1, DK1, clock)
    # buy 1 MW more if down-regulated to below spot - 1, 3 MW if below down - 100 (not reached)
    points = ((round(down - 100.0, 2), -3.0), (round(spot - 1.0, 2), -1.0))
    bid = _bid(hour, points, "down", clock.now())
    exchange.submit_real_time(bid)
    clock.advance_to((hour + pd.Timedelta(hours=1)).to_pydatetime())
    (award,) = exchange.real_time_awards(bid)
    # the lowest point priced at or above the down price: spot - 1 >= down, down - 100 < down
    assert award.quantity_mw == -1.0
    assert award.price_per_mwh == pytest.approx(down)


def test_late_bid_names_the_rule_and_an_early_one_can_be_replaced(dk1: pd.DataFrame) -> None:
    hour = _up_hour(dk1)
    gate = hour - pd.Timedelta(minutes=45)
    clock = ReplayClock((gate - pd.Timedelta(minutes=30)).to_pydatetime())
    exchange = ReplayExchange(dk1, DK1, clock)
    first = _bid(hour, ((100.0, 1.0),), "up", clock.now())
    second = _bid(hour, ((100.0, 2.0),), "up", clock.now())
    receipt = exchange.submit_real_time(first)
    assert exchange.submit_real_time(second) == receipt  # updated before the gate
    assert exchange.real_time_bid(first.idempotency_key) == second
    clock.advance_to((gate + pd.Timedelta(seconds=1)).to_pydatetime())
    with pytest.raises(MarketRuleError) as excinfo:
        exchange.submit_real_time(_bid(hour, ((100.0, 3.0),), "up", clock.now()))
    assert excinfo.value.rule == "rt_gate_closure"
    assert exchange.real_time_bid(first.idempotency_key) == second  # nothing lost


def test_wrong_direction_is_refused_by_rule(dk1: pd.DataFrame) -> None:
    hour = _up_hour(dk1)
    clock = ReplayClock((hour - pd.Timedelta(hours=3)).to_pydatetime())
    exchange = ReplayExchange(dk1, DK1, clock)
    with pytest.raises(MarketRuleError) as excinfo:
        exchange.submit_real_time(_bid(hour, ((100.0, -1.0),), "up", clock.now()))
    assert excinfo.value.rule == "rt_direction"


@pytest.mark.parametrize(("day", "periods"), [
    (dt.date(2016, 1, 12), 24), (dt.date(2016, 3, 27), 23), (dt.date(2016, 10, 30), 25),
])
def test_real_time_bid_jobs_follow_the_local_hours(day: dt.date, periods: int) -> None:
    rules = DK1.rules_on(day)
    jobs = [j for j in day_jobs(rules, day, dt.timedelta(minutes=30),
                                real_time_products=("mfrr-energy",)) if j.kind == "rt_bid"]
    assert len(jobs) == periods
    for job in jobs:
        assert job.product_id == "mfrr-energy"
        assert job.run_at == job.interval_start - dt.timedelta(minutes=45) - RT_BID_MARGIN
    # a product not enabled (or not asked for) adds no jobs
    assert not [j for j in day_jobs(rules, day, dt.timedelta(minutes=30)) if j.kind == "rt_bid"]


def test_backtest_bids_real_time_and_settles_the_split(shared_prices: Path, tmp_path: Path) -> None:
    """Two DK1 days with mFRR bids: bids go in before each gate, activations are followed and
    settle at the regulating price, the rest as imbalance; the parts add up."""
    from strategies import StrategyOptions
    from tests.market_replay.test_backtest import _portfolio_on, _slice
    from vpp.backtest.run import BacktestOptions, run_backtest

    result = import_prices(shared_prices / NORDPOOL, "nordpool-regulating", DK1, zone="DK1")
    portfolio = _portfolio_on(tmp_path, "nordpool-dk1", "Europe/Copenhagen")
    days = [dt.date(2016, 1, 12), dt.date(2016, 1, 13)]
    prices = _slice(result.prices, days[0], days[-1], "Europe/Copenhagen")
    options = BacktestOptions(
        StrategyOptions(reoptimise_every=1, scenarios=3, real_time_bids=True), baselines=False
    )
    out = run_backtest(portfolio, prices, days, options)
    summary = out.summary()
    assert summary["rt_bids_submitted"] > 0
    assert summary["rt_awarded_mwh"] > 0
    frame = out.main.portfolio
    assert frame["rt_revenue"].to_numpy() == pytest.approx(
        (frame["rt_bid_revenue"] + frame["imbalance_revenue"]).to_numpy())
    # an activated interval is paid the regulating price of its direction
    regulated = frame[frame["rt_award_mwh"].abs() > 0]
    row = prices.frame.reindex(regulated.index)
    paid = regulated["rt_bid_revenue"] / regulated["rt_award_mwh"]
    assert ((paid - row["rt_price_up"]).abs().lt(1e-6)
            | (paid - row["rt_price_down"]).abs().lt(1e-6)).all()
    off = run_backtest(portfolio, prices, days, BacktestOptions(
        StrategyOptions(reoptimise_every=1, scenarios=3, real_time_bids=False), baselines=False))
    assert off.summary()["rt_bids_submitted"] == 0


# ERCOT 2022-01-09, the 18:00 CST operating hour (00:00 UTC on the 10th): the curve the
# example portfolio bid (three parks moved onto ERCOT, real-time bids on), read from the run.
ERCOT_EVENING = ((-10.53, -18.8), (29.87, -6.9), (32.52, -6.7), (38.56, -3.7), (54.02, -1.7))


def test_energy_offer_award_reveals_its_price_bracket_not_the_first_point(
    shared_prices: Path,
) -> None:
    """The realised Houston prices of that hour (25.90-29.33 $/MWh) lie below the second
    point, so the step curve awards the first point's -18.8 MW (flat below it). What the
    award tells dispatch is the bracket (-inf, 29.87) -- its forecast is clipped into it,
    so the buy costs at most 29.87 -- not the first point's -10.53, at which dispatch
    bought energy it thought nearly free and sold it back later at a loss. An interior
    award gives its step, the last point everything at or above its price."""
    import math

    from strategies import get_strategy
    from tests.market_replay._support import ERCOT_DAM, ERCOT_RTM
    from vpp.market_rules import clear_rt_bid
    from vpp.runtime.operator import offer_bracket

    ercot = market("ercot-houston")
    frame = import_prices(shared_prices / ERCOT_DAM, "ercot-dam", ercot, zone="HB_HOUSTON",
                          policy="drop-day", rt_path=shared_prices / ERCOT_RTM).prices.frame
    hour = pd.Timestamp("2022-01-10T00:00", tz="UTC")
    rows = frame.loc[hour : hour + pd.Timedelta(minutes=45)]
    assert rows["rt_price"].round(2).tolist() == [29.33, 27.68, 26.74, 25.90]
    product = ercot.rules_on(dt.date(2022, 1, 9)).rt_product("rt-energy")
    bid = RealTimeBid("ercot-houston", "pf", "rt-energy", hour.to_pydatetime(),
                      tuple(BidPoint(p, q) for p, q in ERCOT_EVENING), "both",
                      (hour - pd.Timedelta(minutes=65)).to_pydatetime())
    for _, row in rows.iterrows():
        quantity = clear_rt_bid(bid, product, row)
        assert quantity == -18.8
        low, high = offer_bracket(bid, quantity)
        assert (low, high) == (-math.inf, 29.87)
        assert low <= row["rt_price"] < high  # the realised price is in it; -10.53 is far off
    assert offer_bracket(bid, -6.9) == (29.87, 32.52)
    assert offer_bracket(bid, -1.7) == (54.02, math.inf)
    assert offer_bracket(bid, -6.7, (30.0, 40.0)) == (32.52, 38.56)  # intersected
    lone = RealTimeBid("ercot-houston", "pf", "rt-energy", hour.to_pydatetime(),
                       (BidPoint(30.0, -2.0),), "both", bid.created_at)
    assert offer_bracket(lone, -2.0) == (-math.inf, math.inf)  # a flat curve says nothing
    # The strategy clips its forecast into the bracket for both deviation directions: the
    # evening forecast (near the day-ahead 44.20) becomes 29.87, a forecast inside stays.
    seen: dict[str, np.ndarray] = {}

    class _Dispatcher:
        settlement_rule = "two_settlement"
        index = pd.date_range(hour, periods=4, freq="15min")

        def dispatch(self, position, states, award, surplus, price_shortfall):  # type: ignore[no-untyped-def]
            seen["surplus"], seen["shortfall"] = surplus, price_shortfall

    strategy = get_strategy("deterministic")
    strategy.forecast_real_time = lambda history, index, tz: pd.Series(  # type: ignore[method-assign]
        [44.2, 44.2, 31.0, 20.0], index=index)
    brackets = {hour: (-math.inf, 29.87), hour + pd.Timedelta(minutes=30): (29.87, 32.52),
                hour + pd.Timedelta(minutes=45): (54.02, math.inf)}
    strategy.real_time(_Dispatcher(), 0, None, None, pd.DataFrame(), "America/Chicago",  # type: ignore[arg-type]
                       brackets=brackets)
    assert seen["surplus"].tolist() == [29.87, 44.2, 31.0, 54.02]
    assert seen["shortfall"].tolist() == [29.87, 44.2, 31.0, 54.02]

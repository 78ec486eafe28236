"""The one award type (kW per schedule interval), its one expansion and its one MW->kW edge."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from strategies import StrategyOptions, get_strategy
from strategies.day_ahead import BidAllocation
from vpp.awards import IntervalAward, delivery_intervals, portfolio_award_kw
from vpp.config.models import SolverSettings, StrategySettings
from vpp.types import Award

T0 = dt.datetime(2025, 5, 20, tzinfo=dt.UTC)
QUARTERS = pd.date_range(T0, periods=8, freq="15min", tz="UTC")


def test_a_product_delivers_in_its_intervals_only() -> None:
    assert delivery_intervals(QUARTERS, T0, 60).tolist() == [0, 1, 2, 3]
    assert delivery_intervals(QUARTERS, QUARTERS[4], 60).tolist() == [4, 5, 6, 7]
    assert delivery_intervals(QUARTERS, QUARTERS[2], 15).tolist() == [2]
    # a product outside the index delivers in none of its intervals
    assert delivery_intervals(QUARTERS, QUARTERS[-1] + pd.Timedelta(minutes=15), 60).size == 0


def test_the_product_start_must_be_aware() -> None:
    with pytest.raises(TypeError, match="product_start"):
        delivery_intervals(QUARTERS, dt.datetime(2025, 5, 20), 60)


def test_awards_become_kw_on_every_interval_once() -> None:
    awards = [Award(T0, 1.5, 40.0), Award(QUARTERS[4].to_pydatetime(), -0.25, 55.0)]
    kw = portfolio_award_kw(awards, QUARTERS, 60)
    assert kw.tolist() == [1500.0] * 4 + [-250.0] * 4
    # products not awarded hold nothing
    assert portfolio_award_kw(awards[:1], QUARTERS, 60).tolist() == [1500.0] * 4 + [0.0] * 4
    award = IntervalAward(kw, pd.DataFrame({"north": kw}, index=QUARTERS))
    assert award.portfolio_mw == pytest.approx([1.5] * 4 + [-0.25] * 4, rel=1e-12)


def test_an_award_knows_its_parks_and_refuses_a_wrong_shape() -> None:
    award = IntervalAward.of_parks(QUARTERS, {"a": np.full(8, 100.0), "b": np.full(8, -30.0)})
    assert award.park_ids == ["a", "b"]
    assert award.park("b").tolist() == [-30.0] * 8
    assert award.portfolio_kw.tolist() == [70.0] * 8
    assert award.index.equals(QUARTERS)
    zero = IntervalAward.zero(QUARTERS, ["a"])
    assert zero.park("a").tolist() == [0.0] * 8
    assert zero.portfolio_kw.tolist() == [0.0] * 8
    with pytest.raises(KeyError, match="no award share for park 'c'"):
        award.park("c")
    with pytest.raises(ValueError, match="8 values"):
        IntervalAward(np.zeros(3), award.park_kw)
    with pytest.raises(dataclasses.FrozenInstanceError):
        award.portfolio_kw = np.zeros(8)  # type: ignore[misc]


def _allocation() -> BidAllocation:
    """Two hourly products on eight quarter-hours, two scenarios, one park with two assets."""
    starts = pd.DatetimeIndex([QUARTERS[0], QUARTERS[4]])
    product_of = np.repeat([0, 1], 4)
    battery = np.array([np.arange(8.0) * 10, np.arange(8.0) * 20])  # (S, T) [kW]
    pv = np.array([np.full(8, 5.0), np.full(8, 5.0)])
    return BidAllocation(
        index=QUARTERS,
        product_starts=starts,
        product_of=product_of,
        groups=[[np.array([0]), np.array([1])], [np.array([0]), np.array([1])]],
        group_quantity_mw=[np.array([0.0, 1.0]), np.array([0.0, 1.0])],
        asset_power_kw={("p", "bess"): battery, ("p", "pv"): pv},
        park_power_kw={"p": battery + pv},
    )


def test_the_allocation_expands_products_as_delivery_intervals_does() -> None:
    allocation = _allocation()
    assert allocation.product_minutes == 60
    for j, start in enumerate(allocation.product_starts):
        assert (
            delivery_intervals(QUARTERS, start, 60).tolist()
            == np.flatnonzero(allocation.product_of == j).tolist()
        )


def test_the_allocation_splits_an_award_to_parks_and_assets_in_kw() -> None:
    allocation = _allocation()
    awards = [Award(T0, 0.5, 10.0), Award(QUARTERS[4].to_pydatetime(), 1.0, 10.0)]
    award = allocation.award(awards)
    # half-way between the two scenarios in the first product, the second scenario in the next
    bess = np.arange(8.0) * 15
    bess[4:] = np.arange(4.0, 8.0) * 20
    assert award.asset_kw is not None
    assert award.asset_kw[("p", "bess")].to_numpy() == pytest.approx(bess)
    assert award.asset_kw[("p", "pv")].to_numpy() == pytest.approx(np.full(8, 5.0))
    assert award.portfolio_kw.tolist() == [500.0] * 4 + [1000.0] * 4
    # the park follows its schedule; lot rounding's residual is added so each product's
    # mean is the award
    park = award.park("p")
    assert park.reshape(2, 4).mean(axis=1) == pytest.approx([500.0, 1000.0])
    with pytest.raises(ValueError, match="not a product start"):
        allocation.award([Award(QUARTERS[1].to_pydatetime(), 0.0, 0.0)])


def test_strategy_options_are_built_once_from_the_settings_and_passed_down() -> None:
    settings = StrategySettings(
        strategy="deterministic",
        scenarios=7,
        reoptimise_every=4,
        deviation_penalty_per_mwh=2.5,
        rt_forecaster="weekly",
    )
    options = StrategyOptions.from_settings(settings, SolverSettings(name="ECOS", time_limit_s=9))
    assert (options.name, options.scenarios, options.reoptimise_every) == ("deterministic", 7, 4)
    assert (options.deviation_penalty_per_mwh, options.rt_forecaster) == (2.5, "weekly")
    assert (options.solver, options.time_limit_s) == ("ECOS", 9)
    # the defaults are the configuration's defaults
    assert StrategyOptions() == StrategyOptions.from_settings(StrategySettings(), SolverSettings())
    strategy = get_strategy(options)
    # what the strategy keeps is what it uses: one scenario for a deterministic strategy
    assert strategy.options == options.replace(scenarios=1)
    assert get_strategy(options.replace(name="persistence")).options.forecaster == "persistence"
    with pytest.raises(ValueError, match="reoptimise_every"):
        StrategyOptions(reoptimise_every=0)
    with pytest.raises(ValueError, match="unknown strategy 'magic'"):
        get_strategy("magic")

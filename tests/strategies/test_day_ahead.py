"""Day-ahead bids on the example portfolio: rules, merging, allocation back to assets."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from strategies import build_day_ahead_bid, check_bid, get_forecaster
from strategies.day_ahead import _optimal_partition, merge_groups, price_groups
from strategies.state import initial_state, load_inputs
from vpp.errors import MarketRuleError
from vpp.market_rules import check_submission
from vpp.timeutil import day_intervals_utc
from vpp.types import Award, BidCurve, BidPoint, DayAheadBid

DAY = dt.date(2025, 5, 27)
TZ = "Asia/Shanghai"


@pytest.fixture(scope="module")
def setting(example_config, cn_frame):  # type: ignore[no-untyped-def]
    rules = example_config.markets["cn-province-a"].rules_on(DAY)
    index = day_intervals_utc(DAY, TZ, 15)
    decision = rules.gate_closure(DAY)
    parks = example_config.parks_in("cn-province-a")
    inputs = {
        p.id: load_inputs(p, example_config.park_files[p.id].parent, index, decision_time=decision)
        for p in parks
    }
    states = {p.id: initial_state(p) for p in parks}
    history = cn_frame[cn_frame.index < pd.Timestamp(decision)]
    return rules, index, decision, parks, inputs, states, history


def _bid(setting, scenarios=5, **rule_updates):  # type: ignore[no-untyped-def]
    rules, index, decision, parks, inputs, states, history = setting
    if rule_updates:
        rules = rules.model_copy(update={"bidding": rules.bidding.model_copy(update=rule_updates)})
    forecast = get_forecaster("persistence", timezone=TZ, scenarios=scenarios).forecast(history, index)
    result = build_day_ahead_bid(parks, inputs, states, rules, forecast, portfolio_id="demo",
                                 created_at=decision, on_failure="raise")
    return rules, forecast, result


def test_bid_meets_the_market_rules(setting) -> None:  # type: ignore[no-untyped-def]
    rules, _forecast, result = _bid(setting)
    check_bid(result.bid, rules)
    check_submission(result.bid, rules, rules.gate_closure(DAY))  # the exchange takes it too
    assert len(result.bid.curves) == 96
    assert result.bid.delivery_day == DAY
    assert result.bid.idempotency_key == "cn-province-a/2025-05-27/demo/day_ahead"
    lots = np.array([p.quantity_mw / 0.1 for c in result.bid.curves for p in c.points])
    assert np.allclose(lots, np.round(lots))
    assert not result.fallback


def test_too_many_scenarios_are_merged_to_max_segments(setting) -> None:  # type: ignore[no-untyped-def]
    rules, _, result = _bid(setting, scenarios=8, max_segments=3)
    check_bid(result.bid, rules)
    assert max(len(c.points) for c in result.bid.curves) <= 3
    assert max(len(g) for g in result.allocation.groups) <= 3


def test_quantity_only_bids_one_quantity(setting) -> None:  # type: ignore[no-untyped-def]
    rules, _, result = _bid(setting, mode="quantity_only")
    assert all(len(c.points) == 1 for c in result.bid.curves)
    check_bid(result.bid, rules)


def test_linear_curves_span_floor_to_cap(setting) -> None:  # type: ignore[no-untyped-def]
    rules, _, result = _bid(setting, curve="linear", max_segments=8)
    check_bid(result.bid, rules)
    for curve in result.bid.curves:
        assert curve.points[0].price_per_mwh == rules.price_limits.floor_per_mwh
        assert curve.points[-1].price_per_mwh == rules.price_limits.cap_per_mwh


def test_award_is_split_back_to_assets(setting) -> None:  # type: ignore[no-untyped-def]
    _, index, _, parks, _, _, _ = setting
    _, _, result = _bid(setting)
    allocation = result.allocation
    awards = [Award(c.interval_start, c.points[-1].quantity_mw, 400.0) for c in result.bid.curves]
    split = allocation.award(awards)
    assert split.asset_kw is not None
    assert split.asset_kw.size == 96 * sum(len(p.assets) for p in parks)
    assert np.isfinite(split.asset_kw.to_numpy()).all()
    per_park = split.park_kw
    # The parks' shares add up to the award in every interval.
    assert per_park.sum(axis=1).to_numpy() / 1000 == pytest.approx([a.quantity_mw for a in awards])
    # An award at a curve group's quantity reproduces that group's scenario schedule.
    j = 40
    head = int(allocation.groups[j][-1][0])
    award = Award(index[j].to_pydatetime(), float(allocation.group_quantity_mw[j][-1]), 0.0)
    one = allocation.award([award]).asset_kw
    assert one is not None
    for key, values in allocation.asset_power_kw.items():
        assert one.loc[index[j], key] == pytest.approx(values[head, j], abs=1e-6)
    assert len(allocation.frame()) > 0


def test_expected_schedule_is_feasible_for_the_grid(setting) -> None:  # type: ignore[no-untyped-def]
    _, _, _, parks, _, _, _ = setting
    _, _, result = _bid(setting)
    for park in parks:
        net = result.expected_schedule.park_power_kw[park.id].to_numpy()
        assert (net <= park.grid.export_limit_kw + 1e-4).all()
        assert (-net <= park.grid.import_limit_kw + 1e-4).all()


def test_optimal_partition_matches_brute_force() -> None:
    import itertools

    rng = np.random.default_rng(3)
    values = np.sort(rng.normal(size=7))
    weights = rng.uniform(0.1, 1.0, 7)

    def cost(cuts: list[int]) -> float:
        total = 0.0
        for a, b in itertools.pairwise(cuts):
            w, v = weights[a:b], values[a:b]
            total += float(w @ (v - (w @ v) / w.sum()) ** 2)
        return total

    best = min(
        cost([0, *inner, 7]) for inner in itertools.combinations(range(1, 7), 2)
    )
    assert cost(_optimal_partition(values, weights, 3)) == pytest.approx(best)


def test_merge_groups_keeps_price_order() -> None:
    prices = np.array([[10.0], [20.0], [30.0], [40.0], [50.0]])
    groups = price_groups(prices, 0.01, quantity_only=False)
    merged = merge_groups(groups, np.array([[0.0], [0.0], [5.0], [9.0], [9.0]]), np.full(5, 0.2), 2)
    # {0, 0} | {5, 9, 9} has weighted squared error 2.13 < 3.33 for {0, 0, 5} | {9, 9}.
    assert [sorted(g.tolist()) for g in merged[0]] == [[0, 1], [2, 3, 4]]


@pytest.mark.parametrize(
    ("points", "rule"),
    [
        (((-80.0, 1.0), (100.0, 0.5)), "monotonicity"),
        (((-100.0, 0.0),), "price_floor"),
        (((-80.0, 0.05),), "min_lot"),
        (((-80.0, 0.0), (-80.0, 0.1)), "price_order"),
        (tuple((-80.0 + i, 0.1 * i) for i in range(11)), "max_segments"),
    ],
)
def test_check_bid_names_the_broken_rule(cn_rules, points, rule: str) -> None:  # type: ignore[no-untyped-def]
    start = dt.datetime(2025, 5, 19, 16, tzinfo=dt.UTC)
    curve = BidCurve(start, tuple(BidPoint(p, q) for p, q in points))
    bid = DayAheadBid("cn-province-a", "demo", DAY, (curve,), start)
    with pytest.raises(MarketRuleError) as info:
        check_bid(bid, cn_rules)
    assert info.value.rule == rule


def test_hourly_products_over_quarter_hour_schedules(cn_rules) -> None:  # type: ignore[no-untyped-def]
    # ERCOT-style: hourly day-ahead products, 15-minute schedule intervals.
    from strategies import Forecast
    from strategies.state import ParkInputs
    from tests.strategies.conftest import battery, make_park, utc_index

    rules = cn_rules.model_copy(
        update={"day_ahead": cn_rules.day_ahead.model_copy(update={"interval_minutes": 60})}
    )
    index = utc_index(8, 15)
    prices = np.array([[50.0] * 4 + [300.0] * 4, [60.0] * 4 + [100.0] * 4, [40.0] * 8])
    forecast = Forecast.from_scenarios(prices, index)
    park = make_park(battery(soc_initial=0.5))
    result = build_day_ahead_bid([park], {park.id: ParkInputs(index)}, None, rules, forecast,
                                 portfolio_id="p", created_at=dt.datetime(2025, 5, 19, tzinfo=dt.UTC),
                                 on_failure="raise")
    assert [c.interval_start for c in result.bid.curves] == [index[0], index[4]]
    check_bid(result.bid, rules)
    awards = [Award(c.interval_start, c.points[-1].quantity_mw, 0.0) for c in result.bid.curves]
    per_park = result.allocation.award(awards).park_kw
    assert len(per_park) == 8
    # each hour's four quarter-hours deliver the awarded hourly energy on average
    hourly = per_park[park.id].to_numpy().reshape(2, 4).mean(axis=1) / 1000
    assert hourly == pytest.approx([a.quantity_mw for a in awards], abs=1e-6)
    with pytest.raises(ValueError, match="product start"):
        result.allocation.award([Award(index[1].to_pydatetime(), 0.0, 0.0)])

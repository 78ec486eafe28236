"""Real-time bid curves from the re-optimised rest of the day: hand examples and properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from strategies import RealTimeDispatcher, StrategyOptions
from strategies.rt_bids import candidate_prices, curve_points, flexibility_curve
from strategies.state import AssetState, ParkInputs
from tests.strategies.conftest import battery, make_park, utc_index
from vpp.awards import IntervalAward
from vpp.errors import InputError

INDEX = utc_index(2)
OPTIONS = StrategyOptions(deviation_penalty_per_mwh=0.0)


def _dispatcher(**overrides: object) -> tuple[RealTimeDispatcher, str]:
    park = make_park(battery(soc_initial=0.5, power_kw=2000.0, **overrides))
    return RealTimeDispatcher([park], {park.id: ParkInputs(INDEX)}, 60, OPTIONS), park.id


def test_a_half_full_battery_buys_below_and_sells_above_the_rest_of_the_day() -> None:
    # 2 MW / 2 MWh, lossless, half full (1 MWh), awarded nothing; the second hour is worth
    # 100. At 50 in the first hour the plan fills up (buys 1 MW, the room left) to sell
    # 2 MWh at 100 later; at 150 it sells its whole content (1 MW) in the first hour.
    dispatcher, park_id = _dispatcher()
    award = IntervalAward.zero(INDEX, [park_id])
    flat = np.full(2, 100.0)
    both = flexibility_curve(dispatcher, 0, None, award, flat, flat, slice(0, 1), [50.0, 150.0]).quantity_mw
    assert both == pytest.approx([-1.0, 1.0], abs=1e-6)
    up = flexibility_curve(dispatcher, 0, None, award, flat, flat, slice(0, 1), [50.0, 150.0],
                           direction="up").quantity_mw
    assert up == pytest.approx([0.0, 1.0], abs=1e-6)
    down = flexibility_curve(dispatcher, 0, None, award, flat, flat, slice(0, 1), [50.0, 150.0],
                             direction="down").quantity_mw
    assert down == pytest.approx([-1.0, 0.0], abs=1e-6)


def test_the_measured_state_limits_the_curve() -> None:
    # Measured empty: nothing to sell in the first hour whatever the price; at 50 it fills
    # up (2 MW) to sell at 100 in the second hour.
    dispatcher, park_id = _dispatcher()
    award = IntervalAward.zero(INDEX, [park_id])
    states = {park_id: {"bess": AssetState(soc_kwh=0.0)}}
    flat = np.full(2, 100.0)
    curve = flexibility_curve(dispatcher, 0, states, award, flat, flat, slice(0, 1),
                              [50.0, 150.0, 900.0]).quantity_mw
    assert curve == pytest.approx([-2.0, 0.0, 0.0], abs=1e-6)


def test_the_curve_is_around_the_award() -> None:
    # Awarded 1 MW sold in hour 0 (the whole content): at 150 there is nothing more to sell;
    # at 50 the plan buys the award back and fills up (net -1 MW: deviation -2 MW) to sell
    # 2 MWh at 100 in hour 1.
    dispatcher, park_id = _dispatcher()
    award = IntervalAward.of_parks(INDEX, {park_id: np.array([1000.0, 0.0])})
    flat = np.full(2, 100.0)
    curve = flexibility_curve(dispatcher, 0, None, award, flat, flat, slice(0, 1), [50.0, 150.0]).quantity_mw
    assert curve == pytest.approx([-2.0, 0.0], abs=1e-6)


def test_bad_requests() -> None:
    dispatcher, park_id = _dispatcher()
    award = IntervalAward.zero(INDEX, [park_id])
    flat = np.full(2, 100.0)
    with pytest.raises(InputError, match="strictly increase"):
        flexibility_curve(dispatcher, 0, None, award, flat, flat, slice(0, 1), [60.0, 50.0])
    with pytest.raises(InputError, match="within the remaining intervals"):
        flexibility_curve(dispatcher, 1, None, award, flat[1:], flat[1:], slice(0, 1), [50.0])
    with pytest.raises(InputError, match="direction"):
        flexibility_curve(dispatcher, 0, None, award, flat, flat, slice(0, 1), [50.0],
                          direction="sideways")


def _history() -> pd.DataFrame:
    index = utc_index(24 * 14, start="2025-05-01 00:00")
    rng = np.random.default_rng(7)
    da = 100 + 10 * np.sin(np.arange(len(index)) / 24 * 2 * np.pi)
    rt = da + rng.normal(0, 15, len(index))
    return pd.DataFrame({"da_price": da, "rt_price": rt, "rt_price_up": np.maximum(rt, da),
                         "rt_price_down": np.minimum(rt, da)}, index=index)


@pytest.mark.parametrize("direction", ["both", "up", "down"])
def test_candidate_prices_come_from_past_spreads_within_the_limits(direction: str) -> None:
    start = pd.Timestamp("2025-05-15 08:00", tz="UTC")
    prices = candidate_prices(_history(), 100.0, start, "UTC", floor_per_mwh=-50.0,
                              cap_per_mwh=140.0, count=6, direction=direction)
    assert len(prices) == 6
    assert (np.diff(prices) > 0).all()
    assert prices.min() >= -50.0
    assert prices.max() <= 140.0
    if direction == "up":
        assert prices.min() >= 100.0
    if direction == "down":
        assert prices.max() <= 100.0
    # a spy: what happens after the period cannot move the prices
    spy = _history()
    spy.loc[spy.index >= start, ["rt_price", "rt_price_up", "rt_price_down"]] = 1e5
    again = candidate_prices(spy, 100.0, start, "UTC", floor_per_mwh=-50.0, cap_per_mwh=140.0,
                             count=6, direction=direction)
    assert again == pytest.approx(prices)


def test_candidate_prices_without_history() -> None:
    prices = candidate_prices(pd.DataFrame(), 100.0, pd.Timestamp("2025-05-15", tz="UTC"), "UTC",
                              floor_per_mwh=-50.0, cap_per_mwh=500.0, count=4)
    assert len(prices) == 4
    assert (np.diff(prices) > 0).all()
    assert prices.min() >= 80.0 - 1e-9
    assert prices.max() <= 120.0 + 1e-9


@settings(max_examples=200, deadline=None)
@given(
    cents=st.lists(st.integers(-50_000, 500_000), min_size=1, max_size=30, unique=True),
    quantities=st.lists(st.floats(-50, 50, allow_nan=False), min_size=30, max_size=30),
    lot=st.sampled_from([0.1, 0.25, 1.0]),
    segments=st.integers(1, 10),
)
# two prices clipped to the cap: the larger quantity of the one beyond it is not offered
@example(cents=[0, 1, -1, 2, -2, 3, -3, 400_000, 400_001],
         quantities=[0.0] * 6 + [1.0, 0.0, 2.0] + [0.0] * 21, lot=1.0, segments=10)
def test_curve_points_are_monotone_within_floor_cap_and_lots(
    cents: list[int], quantities: list[float], lot: float, segments: int
) -> None:
    p = np.sort(np.array(cents)) / 100.0  # distinct prices on the 0.01 tick
    q = np.array(quantities[: len(p)])
    points = curve_points(p, q, min_lot_mw=lot, price_tick_per_mwh=0.01, floor_per_mwh=-250.0,
                          cap_per_mwh=4000.0, max_segments=segments)
    assert 1 <= len(points) <= segments
    got_p = np.array([x.price_per_mwh for x in points])
    got_q = np.array([x.quantity_mw for x in points])
    assert (np.diff(got_p) > 0).all()
    assert (np.diff(got_q) >= 0).all()
    assert got_p.min() >= -250.0
    assert got_p.max() <= 4000.0
    assert np.allclose(np.round(got_q / lot) * lot, got_q, atol=1e-9)
    # never more than the plan offered at that price (rounded towards zero)
    mono = np.maximum.accumulate(q)
    for price, quantity in zip(got_p, got_q, strict=True):
        planned = mono[int(np.argmin(np.abs(np.clip(p, -250.0, 4000.0) - price)))]
        assert abs(quantity) <= abs(planned) + 1e-9 or np.sign(quantity) != np.sign(planned)

"""The perfect-foresight bound with mFRR (regulating) activations, on a hand-solved example."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies import perfect_foresight
from strategies.state import ParkInputs
from tests.strategies.conftest import battery, make_park, utc_index
from vpp.errors import InputError

# Two hours. Hour 1: down regulation (down 20 < spot 50 = up); hour 2: up regulation
# (up 100 > spot 60 = down).
DA = np.array([50.0, 60.0])
UP = np.array([50.0, 100.0])
DOWN = np.array([20.0, 60.0])


def _one_battery():  # type: ignore[no-untyped-def]
    # 1 MW / 2 MWh, lossless, empty, no wear; grid connection 1 MW each way.
    park = make_park(battery(), import_kw=1000.0, export_kw=1000.0)
    return [park], {park.id: ParkInputs(utc_index(2))}


def test_hand_example_bound() -> None:
    """By hand, in MWh. Activations are allowed only in their direction's regulated hour, and
    from the award only within the 1 MW connection. The physical battery charges 1 MWh in
    hour 1 as a down activation (d1 = -1, pays 20) and discharges it in hour 2. The sold
    schedule buys 1 MWh in hour 2 at 60 (a2 = -1: the award copy may charge), so hour 2's
    up activation is x2 - a2 = 2 MWh at 100 (a2 + u2 = 1 <= 1 MW export). Total
    -20 - 60 + 200 = 120. Any other split is worse: a1 < 0 would buy at 50 what d1 buys at
    20, a2 > -1 gives up 40 per MWh (100 - 60), and the battery cannot charge more than 1 MWh
    in an hour. The day-ahead-only optimum is 60 - 50 = 10."""
    parks, inputs = _one_battery()
    bound = perfect_foresight(parks, inputs, None, 60, DA, rt_price_up=UP, rt_price_down=DOWN)
    assert bound.objective == pytest.approx(120.0, abs=1e-4)
    assert bound.schedule.park_power_kw["park"].to_numpy() == pytest.approx([-1000.0, 1000.0], abs=1e-3)
    assert bound.position_kw is not None
    assert bound.position_kw["park"].to_numpy() == pytest.approx([0.0, -1000.0], abs=1e-3)
    da_only = perfect_foresight(parks, inputs, None, 60, DA)
    assert da_only.objective == pytest.approx(10.0, abs=1e-4)


def test_no_regulation_is_the_day_ahead_optimum() -> None:
    # Regulating prices equal to the spot: no activation is allowed and the imbalance
    # settles at the spot, so the bound is the day-ahead schedule's value.
    parks, inputs = _one_battery()
    bound = perfect_foresight(parks, inputs, None, 60, DA, rt_price_up=DA, rt_price_down=DA)
    assert bound.objective == pytest.approx(10.0, abs=1e-4)


def test_both_directions_in_one_hour_are_bounded_by_the_connection() -> None:
    """One hour regulated both ways (spot 60, up 100, down 30), the battery empty. The
    exchange may activate an up and a down bid of the same hour, netting to nothing
    physical: each MWh of u = -d earns 100 - 30 = 70. From an award a (<= 0: nothing to
    sell), u <= 1 - a and d >= -1 - a; with x = 0 the best is a = 0, u = 1, d = -1: 70
    (a = -1: d >= 0, so u = x - a - d <= 1 and the hour earns -60 + 100 = 40). The
    day-ahead optimum is 0 (an empty battery cannot sell, and charging
    has no later hour)."""
    parks = [make_park(battery(), import_kw=1000.0, export_kw=1000.0)]
    inputs = {"park": ParkInputs(utc_index(1))}
    bound = perfect_foresight(parks, inputs, None, 60, [60.0], rt_price_up=[100.0],
                              rt_price_down=[30.0])
    assert bound.objective == pytest.approx(70.0, abs=1e-4)
    assert perfect_foresight(parks, inputs, None, 60, [60.0]).objective == pytest.approx(
        0.0, abs=1e-4)


def test_regulating_prices_come_in_pairs() -> None:
    parks, inputs = _one_battery()
    with pytest.raises(InputError, match="rt_price_up with rt_price_down"):
        perfect_foresight(parks, inputs, None, 60, DA, rt_price_up=UP)
    with pytest.raises(InputError, match="not a mix"):
        perfect_foresight(parks, inputs, None, 60, DA, DA, rt_price_up=UP, rt_price_down=DOWN)


@settings(max_examples=15, deadline=None)
@given(
    da=st.lists(st.floats(-50.0, 200.0), min_size=3, max_size=3),
    up_spread=st.lists(st.floats(0.0, 100.0), min_size=3, max_size=3),
    down_spread=st.lists(st.floats(0.0, 100.0), min_size=3, max_size=3),
)
def test_bound_is_at_least_delivering_the_day_ahead_optimum(
    da: list[float], up_spread: list[float], down_spread: list[float]
) -> None:
    # Selling the day-ahead optimum and delivering it exactly (no activation, no imbalance)
    # is a point of the regulating LP, so its bound is never below the day-ahead bound; with
    # no regulation at all it is that bound.
    parks = [make_park(battery(), import_kw=1000.0, export_kw=1000.0)]
    inputs = {"park": ParkInputs(utc_index(3))}
    spot = np.array(da)
    day_ahead = perfect_foresight(parks, inputs, None, 60, spot).objective
    bound = perfect_foresight(parks, inputs, None, 60, spot, rt_price_up=spot + up_spread,
                              rt_price_down=spot - np.array(down_spread)).objective
    assert bound >= day_ahead - 1e-6
    flat = perfect_foresight(parks, inputs, None, 60, spot, rt_price_up=spot,
                             rt_price_down=spot).objective
    assert flat == pytest.approx(day_ahead, abs=1e-4)

"""Settlement golden tests, computed by hand."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vpp.runtime.settlement import settle
from vpp.timeutil import day_intervals_utc


def test_two_settlement_by_hand() -> None:
    index = pd.date_range("2025-05-01 16:00", periods=4, freq="15min", tz="UTC")
    award = pd.Series([1.0, -2.0, 0.0, 0.5], index=index)
    actual = pd.Series([1.0, -1.5, 0.4, 0.0], index=index)
    prices = pd.DataFrame(
        {"da_price": [400.0, 300.0, 500.0, -20.0], "rt_price": [450.0, 280.0, 600.0, 100.0]},
        index=index,
    )
    out = settle(award, actual, prices, "two_settlement", dt_h=0.25)
    # DA: 1*.25*400 - 2*.25*300 + 0 + .5*.25*(-20) = 100 - 150 - 2.5
    assert out["da_revenue"].tolist() == pytest.approx([100.0, -150.0, 0.0, -2.5])
    # RT: deviations .125 MWh at 280, .1 at 600, -.125 at 100
    assert out["rt_revenue"].tolist() == pytest.approx([0.0, 35.0, 60.0, -12.5])
    assert out["imbalance_mwh"].abs().sum() == pytest.approx(0.35)


def test_two_price_imbalance_on_the_short_dst_day() -> None:
    index = day_intervals_utc(dt.date(2016, 3, 27), "Europe/Copenhagen", 60)
    assert len(index) == 23
    award = pd.Series(1.0, index=index)
    actual = pd.Series([1.2] * 12 + [0.5] * 11, index=index)
    prices = pd.DataFrame(
        {"da_price": 200.0, "rt_price_up": 250.0, "rt_price_down": 180.0}, index=index
    )
    out = settle(award, actual, prices, "two_price_imbalance", dt_h=1.0)
    assert out["da_revenue"].sum() == pytest.approx(23 * 200.0)
    # 12 h long by .2 MWh paid at the down price; 11 h short by .5 MWh charged at the up price.
    assert out["rt_revenue"].sum() == pytest.approx(12 * 0.2 * 180.0 - 11 * 0.5 * 250.0)


def test_long_dst_day_has_25_hours() -> None:
    index = day_intervals_utc(dt.date(2016, 10, 30), "Europe/Copenhagen", 60)
    assert len(index) == 25
    out = settle(
        pd.Series(2.0, index=index),
        pd.Series(2.0, index=index),
        pd.DataFrame({"da_price": 100.0, "rt_price": 1.0}, index=index),
        "two_settlement",
        1.0,
    )
    assert out["da_revenue"].sum() == pytest.approx(25 * 200.0)
    assert out["rt_revenue"].sum() == 0


def test_misaligned_inputs_are_an_error() -> None:
    index = pd.date_range("2025-05-01", periods=4, freq="15min", tz="UTC")
    with pytest.raises(ValueError, match="share one index"):
        settle(
            pd.Series(0.0, index=index),
            pd.Series(0.0, index=index[::-1]),
            pd.DataFrame({"da_price": 1.0, "rt_price": 1.0}, index=index),
            "two_settlement",
            0.25,
        )


def test_missing_rt_price_with_deviation_is_an_error() -> None:
    index = pd.date_range("2025-05-01", periods=2, freq="1h", tz="UTC")
    with pytest.raises(ValueError, match="rt_price"):
        settle(
            pd.Series(0.0, index=index),
            pd.Series(1.0, index=index),
            pd.DataFrame({"da_price": 1.0}, index=index),
            "two_settlement",
            1.0,
        )


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-5, 5), st.floats(-5, 5), st.floats(-100, 500)), min_size=1, max_size=20
    )
)
def test_delivering_the_award_earns_exactly_the_day_ahead_value(
    rows: list[tuple[float, float, float]],
) -> None:
    index = pd.date_range("2025-05-01", periods=len(rows), freq="15min", tz="UTC")
    award = pd.Series([r[0] for r in rows], index=index)
    prices = pd.DataFrame(
        {"da_price": [r[2] for r in rows], "rt_price": [r[1] * 100 for r in rows]}, index=index
    )
    out = settle(award, award.copy(), prices, "two_settlement", 0.25)
    assert np.allclose(out["rt_revenue"], 0.0)
    assert out["da_revenue"].sum() == pytest.approx(
        float((award * 0.25 * prices["da_price"]).sum())
    )


def test_park_rows_add_up_to_the_portfolio_under_two_price() -> None:
    from vpp.runtime.settlement import settle_parks

    index = pd.date_range("2016-06-01", periods=2, freq="1h", tz="UTC")
    prices = pd.DataFrame(
        {"da_price": 100.0, "rt_price_up": 150.0, "rt_price_down": 60.0}, index=index
    )
    award_kw = pd.DataFrame({"a": [0.0, 0.0], "b": [0.0, 0.0]}, index=index)
    # Hour 1: a is long 1 MWh, b short 1 MWh (the portfolio is balanced); hour 2: both long.
    energy = {"a": np.array([1000.0, 500.0]), "b": np.array([-1000.0, 500.0])}
    wear = {"a": np.zeros(2), "b": np.zeros(2)}
    rows = settle_parks(
        "2016-06-01", "m", ["a", "b"], award_kw, energy, wear, prices, "two_price_imbalance", 1.0
    )
    portfolio = settle(
        pd.Series(0.0, index=index),
        pd.Series([0.0, 1.0], index=index),
        prices,
        "two_price_imbalance",
        1.0,
    )
    assert sum(r["rt_revenue"] for r in rows) == pytest.approx(portfolio["rt_revenue"].sum())
    assert portfolio["rt_revenue"].sum() == pytest.approx(60.0)  # 1 MWh long at the down price

"""The one price type of the data path: schema, units, one error, and every producer returns it."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import market_replay
import market_replay.canonical as canonical
import market_replay.prices as prices_module
from market_replay import (
    PRICE_COLUMNS,
    InputFormatError,
    PriceFrame,
    PriceFrameError,
    PriceFrameTypeError,
    import_prices,
    read_prices,
    write_prices,
)
from tests.market_replay._support import market
from vpp import DataQualityError


def _frame(periods: int = 4, minutes: int = 60, tz: str | None = "UTC") -> pd.DataFrame:
    index = pd.date_range("2025-01-01", periods=periods, freq=f"{minutes}min", tz=tz)
    return pd.DataFrame(
        {
            "da_price": np.arange(periods, dtype=float),
            "rt_price": 1.5,
            "load_forecast_mw": 100.0,
        },
        index=index,
    )


def test_metadata_gives_units_and_interval_length() -> None:
    prices = PriceFrame(_frame(minutes=15), "epex-de-lu", "EUR", 15)
    assert prices.dt_h == 0.25
    assert PriceFrame(_frame(), "m", "USD", 60).dt_h == 1.0
    assert prices.price_unit == "EUR/MWh"
    assert prices.unit("da_price") == "EUR/MWh"
    assert prices.unit("rt_price") == "EUR/MWh"
    assert prices.unit("load_forecast_mw") == "MW"
    assert prices.price_columns == ["da_price", "rt_price"]
    with pytest.raises(KeyError, match="rt_price_up"):
        prices.unit("rt_price_up")


def test_flag_columns_are_bool_and_have_no_unit() -> None:
    frame = _frame()
    frame["quality_flag"] = [False, True, False, False]
    frame["flag_gap"] = [False, True, False, False]
    prices = PriceFrame(frame, "m", "EUR", 60)
    assert prices.unit("flag_gap") == "bool"
    assert prices.flagged.tolist() == [False, True, False, False]


def test_the_schema_is_normalised_utc_float64_ns() -> None:
    frame = _frame(tz="Asia/Shanghai")
    frame["da_price"] = [1, 2, 3, 4]  # int64 in, float64 out
    prices = PriceFrame(frame, "cn-province-a", "CNY", 60)
    assert str(prices.frame.index.tz) == "UTC"
    assert prices.frame.index.name == "interval_start"
    assert prices.frame.index.dtype == "datetime64[ns, UTC]"
    assert prices.frame["da_price"].dtype == np.float64
    assert frame["da_price"].dtype == np.int64  # the caller's frame is copied, not changed


@pytest.mark.parametrize(
    ("frame", "interval", "kind", "words"),
    [
        (_frame(tz=None), 60, PriceFrameTypeError, "tz-aware DatetimeIndex"),
        (_frame().reset_index(drop=True), 60, PriceFrameTypeError, "tz-aware DatetimeIndex"),
        (_frame()["da_price"], 60, PriceFrameTypeError, "must be a pandas DataFrame"),
        (_frame(), 60.0, PriceFrameTypeError, "interval_minutes must be an int"),
        (_frame(), 7, PriceFrameError, "must divide a day"),
        (_frame().drop(columns="da_price"), 60, PriceFrameError, "needs a 'da_price' column"),
        (_frame().assign(price=1.0), 60, PriceFrameError, "unknown column 'price'"),
        (_frame().assign(rt_price="high"), 60, PriceFrameError, "'rt_price' must be numeric"),
        (_frame().assign(rt_price=np.inf), 60, PriceFrameError, "'rt_price' holds an infinite"),
        (_frame().assign(flag_gap=1.0), 60, PriceFrameError, "'flag_gap' must be bool"),
        (_frame().iloc[[0, 2, 1, 3]], 60, PriceFrameError, "strictly increasing"),
        (_frame(), 15, PriceFrameError, "mostly 60 min apart"),
    ],
)
def test_a_wrong_frame_fails_with_one_error(frame, interval, kind, words) -> None:
    with pytest.raises(kind, match=words) as info:
        PriceFrame(frame, "m", "EUR", interval)
    # One class to catch for every schema problem, inside the project's error tree.
    assert isinstance(info.value, PriceFrameError)
    assert isinstance(info.value, DataQualityError)


def test_type_problems_are_type_errors_as_for_every_naive_input() -> None:
    with pytest.raises(TypeError, match="tz-aware"):
        PriceFrame(_frame(tz=None), "m", "EUR", 60)


@pytest.mark.parametrize(
    ("market_id", "currency", "words"),
    [("", "EUR", "market_id"), ("a\nb", "EUR", "market_id"), ("m", "euro", "ISO 4217")],
)
def test_metadata_is_checked(market_id, currency, words) -> None:
    with pytest.raises(PriceFrameError, match=words):
        PriceFrame(_frame(), market_id, currency, 60)


def test_with_frame_keeps_the_metadata_and_validates_again() -> None:
    prices = PriceFrame(_frame(), "m", "EUR", 60)
    head = prices.with_frame(prices.frame.iloc[:2])
    assert (head.market_id, head.currency, head.interval_minutes) == ("m", "EUR", 60)
    assert len(head) == 2
    with pytest.raises(PriceFrameError, match="needs a 'da_price'"):
        prices.with_frame(prices.frame[["rt_price"]])


def test_read_prices_returns_a_price_frame_and_names_the_file_on_a_schema_error(
    tmp_path,
) -> None:
    path = tmp_path / "p.csv"
    write_prices(PriceFrame(_frame(), "m", "EUR", 60), path)
    assert isinstance(read_prices(path), PriceFrame)
    path.write_text(path.read_text().replace("# currency=EUR", "# currency=euro"))
    with pytest.raises(InputFormatError, match="ISO 4217") as info:
        read_prices(path)
    assert str(info.value).startswith(f"{path}: ")


def test_importers_return_a_price_frame(shared_prices) -> None:
    from tests.market_replay._support import NORDPOOL

    result = import_prices(
        shared_prices / NORDPOOL, "nordpool-regulating", market("nordpool-dk1"), policy="flag"
    )
    assert isinstance(result.prices, PriceFrame)
    assert result.prices.price_unit == f"{market('nordpool-dk1').currency}/MWh"
    assert result.prices.dt_h == 1.0


def test_the_backtest_regrid_returns_a_price_frame() -> None:
    from vpp.backtest.run import on_schedule_grid

    hourly = PriceFrame(_frame(periods=48)[["da_price"]], "epex-de-lu", "EUR", 60)
    quarter = on_schedule_grid(hourly, 15)
    assert isinstance(quarter, PriceFrame)
    assert quarter.dt_h == 0.25


def test_one_definition_exported_from_the_package() -> None:
    for name in ("PriceFrame", "PriceFrameError", "PriceFrameTypeError", "PRICE_COLUMNS"):
        assert name in market_replay.__all__
    assert canonical.PriceFrame is prices_module.PriceFrame is PriceFrame
    assert canonical.PRICE_COLUMNS is PRICE_COLUMNS
    assert issubclass(PriceFrameTypeError, PriceFrameError)


def test_the_docstring_table_documents_every_column_and_its_unit() -> None:
    doc = inspect.getdoc(prices_module) or ""
    for column in (*PRICE_COLUMNS, "*_mw", "quality_flag", "flag_<check>"):
        assert f"``{column}``" in doc
    for unit in ("[currency/MWh]", "[MW]", "bool"):
        assert unit in doc


@settings(max_examples=40, deadline=None)
@given(
    minutes=st.sampled_from([5, 15, 30, 60]),
    periods=st.integers(min_value=0, max_value=50),
    tz=st.sampled_from(["UTC", "Europe/Berlin", "Asia/Shanghai", "America/Chicago"]),
    missing=st.booleans(),
)
def test_construction_is_idempotent(minutes, periods, tz, missing) -> None:
    frame = _frame(periods, minutes, tz)
    if missing and periods:
        frame.iloc[0, 0] = np.nan
    prices = PriceFrame(frame, "m", "EUR", minutes)
    again = PriceFrame(prices.frame, "m", "EUR", minutes)
    assert again == prices
    assert prices.with_frame(prices.frame) == prices
    assert prices.dt_h * 60 == minutes

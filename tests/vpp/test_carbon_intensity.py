"""Interval intensity: the formula by hand on a shipped day, clipping, and look-ahead made impossible."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market_replay.exchange import ReplayExchange
from market_replay.importers import import_prices
from vpp.carbon.intensity import (
    FUNDAMENTALS_PUBLICATION_LOCAL,
    IntensityFeed,
    fundamentals_published_at,
    interval_intensity,
)
from vpp.config import load_config
from vpp.errors import InputError, LookAheadError
from vpp.runtime.clock import ReplayClock

REPO = Path(__file__).resolve().parents[2]
CN = REPO / "data" / "prices" / "cn_province_a_spot_2025-05_2025-06_15min.csv"
TZ = "Asia/Shanghai"
FOSSIL_2022 = 0.8325  # national fossil-only factor in force in May 2025 (config/carbon/cn.toml)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    market = load_config(REPO / "config").markets["cn-province-a"]
    return import_prices(CN, "cn-spot-96", market, policy="drop-day").prices.frame


def _raw(day: str, label: str) -> dict[str, str]:
    """One row of the vendor file as published (interval-END label)."""
    with CN.open(encoding="utf-8") as f:
        return next(r for r in csv.DictReader(f) if r["日期"] == day and r["时刻"] == label)


def test_the_formula_by_hand_on_2025_05_12(frame: pd.DataFrame) -> None:
    """(1 - (renewables + hydro) / load) x fossil-only factor; the tie-line imports here."""
    # 00:15 closes the interval starting 00:00 local = 16:00 UTC the day before.
    row = _raw("2025-05-12", "00:15")
    assert (
        row["系统负荷预测数据"],
        row["新能源出力预测数据"],
        row["水电出力预测数据"],
        row["联络线预测数据"],
    ) == ("12953.56", "706.5", "1259.4", "2800")
    by_hand = {
        "2025-05-11T16:00Z": (1 - (706.5 + 1259.4) / 12953.56) * 0.8325,  # night: wind only
        "2025-05-12T02:00Z": (1 - (2316.94 + 1878.7) / 15931.68) * 0.8325,  # 10:00-10:15 local
        "2025-05-12T04:00Z": (1 - (2505.35 + 1588.7) / 14236.0) * 0.8325,  # 12:00-12:15 local
    }
    assert _raw("2025-05-12", "10:15")["系统负荷预测数据"] == "15931.68"
    assert _raw("2025-05-12", "12:15")["新能源出力预测数据"] == "2505.35"
    got = interval_intensity(frame, FOSSIL_2022)
    for stamp, expected in by_hand.items():
        assert got.loc[pd.Timestamp(stamp), "intensity_tco2_per_mwh"] == pytest.approx(
            expected, rel=1e-12
        )
    assert by_hand["2025-05-11T16:00Z"] == pytest.approx(0.70616, abs=1e-5)
    assert by_hand["2025-05-12T04:00Z"] == pytest.approx(0.59309, abs=1e-5)
    day = got.loc["2025-05-11T16:00Z":"2025-05-12T15:45Z"]
    assert len(day) == 96
    assert not day["clipped"].any()
    # The midday PV dip is in the estimate: 12:00 is cleaner than midnight.
    assert day["intensity_tco2_per_mwh"].min() < by_hand["2025-05-11T16:00Z"]


def test_exports_carry_the_local_mix_and_the_share_is_clipped() -> None:
    index = pd.date_range("2025-05-12", periods=4, freq="15min", tz="UTC")
    frame = pd.DataFrame(
        {
            "load_forecast_mw": [1000.0, 1000.0, 1000.0, 0.0],
            "renewable_forecast_mw": [200.0, 200.0, 1500.0, 10.0],
            "hydro_forecast_mw": [0.0, 0.0, 0.0, 0.0],
            "tie_line_forecast_mw": [250.0, -250.0, 0.0, 0.0],
        },
        index=index,
    )
    got = interval_intensity(frame, 0.8)
    # Importing 250 MW: supply = load, imports count fossil: (1 - 200/1000) x 0.8.
    assert got["intensity_tco2_per_mwh"].iloc[0] == pytest.approx(0.64)
    # Exporting 250 MW: supply = local generation 1250 MW: (1 - 200/1250) x 0.8.
    assert got["intensity_tco2_per_mwh"].iloc[1] == pytest.approx(0.672)
    # More non-fossil than supply: clipped to 0, flagged.
    assert got["intensity_tco2_per_mwh"].iloc[2] == 0.0
    assert got["clipped"].iloc[2]
    # No positive load: no estimate (the caller falls back to the annual factor).
    assert np.isnan(got["intensity_tco2_per_mwh"].iloc[3])
    assert not got["clipped"].iloc[3]
    assert (
        (got["intensity_tco2_per_mwh"].dropna() >= 0)
        & (got["intensity_tco2_per_mwh"].dropna() <= 0.8)
    ).all()


def test_missing_fundamentals_or_a_wrong_factor_are_refused() -> None:
    index = pd.date_range("2025-05-12", periods=2, freq="15min", tz="UTC")
    with pytest.raises(InputError, match="hydro_forecast_mw"):
        interval_intensity(
            pd.DataFrame(
                {
                    "load_forecast_mw": [1.0, 1.0],
                    "tie_line_forecast_mw": [0.0, 0.0],
                    "renewable_forecast_mw": [0.0, 0.0],
                },
                index=index,
            ),
            0.8,
        )
    frame = pd.DataFrame(
        {
            c: [1.0, 1.0]
            for c in (
                "load_forecast_mw",
                "renewable_forecast_mw",
                "hydro_forecast_mw",
                "tie_line_forecast_mw",
            )
        },
        index=index,
    )
    with pytest.raises(InputError, match=r"fossil_tco2_per_mwh = 832\.5"):
        interval_intensity(frame, 832.5)  # kg/MWh given as t/MWh


def test_publication_rule_is_the_replay_exchanges(frame: pd.DataFrame) -> None:
    market = load_config(REPO / "config").markets["cn-province-a"]
    clock = ReplayClock(dt.datetime(2025, 5, 1, tzinfo=dt.UTC))
    exchange = ReplayExchange(frame, market, clock)
    ours = fundamentals_published_at(pd.DatetimeIndex(frame.index), TZ)
    for position in (0, 500, 3000, len(frame) - 1):
        stamp = frame.index[position]
        assert exchange.published_at("load_forecast_mw", stamp) == ours[position].to_pydatetime()
    assert dt.time(8, 0) == FUNDAMENTALS_PUBLICATION_LOCAL


def test_a_value_published_later_cannot_be_seen(frame: pd.DataFrame) -> None:
    feed = IntensityFeed(frame, TZ, fossil_tco2_per_mwh=FOSSIL_2022, annual_tco2_per_mwh=0.5366)
    day_start = pd.Timestamp("2025-05-11T16:00Z")  # 2025-05-12 00:00 local
    day_end = day_start + pd.Timedelta(days=1)
    published = pd.Timestamp("2025-05-11T00:00Z")  # 08:00 local on D-1
    with pytest.raises(LookAheadError, match="not published"):
        feed.get(day_start, day_end, published - pd.Timedelta(minutes=1))
    known = feed.get(day_start, day_end, published)
    assert len(known) == 96
    assert known.notna().all()
    # At that moment the next day is unknown: nothing of it is returned ...
    seen = feed.known_at(published)
    assert seen.index.max() == day_end - pd.Timedelta(minutes=15)
    # ... and it is never read: changing the next day's forecasts changes nothing seen now.
    tampered = frame.copy()
    later = tampered.index >= day_end
    tampered.loc[later, "load_forecast_mw"] = 1.0
    tampered.loc[later, "renewable_forecast_mw"] = 1e6
    again = IntensityFeed(tampered, TZ, fossil_tco2_per_mwh=FOSSIL_2022).known_at(published)
    pd.testing.assert_series_equal(seen, again)
    with pytest.raises(LookAheadError):
        feed.get(day_end, day_end + pd.Timedelta(hours=1), published)


def test_without_fundamentals_the_annual_factor_in_force_is_used() -> None:
    index = pd.date_range("2016-03-01", periods=4, freq="h", tz="UTC")
    frame = pd.DataFrame({"da_price": [1.0, 2.0, 3.0, 4.0]}, index=index)
    feed = IntensityFeed(
        frame,
        "Europe/Copenhagen",
        fossil_tco2_per_mwh=None,
        annual_tco2_per_mwh=0.192,
        annual_effective=dt.date(2016, 3, 1),
    )
    assert not feed.estimated
    assert (feed.get(index[0], index[-1], index[-1]) == 0.192).all()
    with pytest.raises(LookAheadError, match="in force from 2016-03-01"):
        feed.get(index[0], index[-1], pd.Timestamp("2016-02-28T12:00Z"))
    with pytest.raises(InputError, match="no intensity"):
        IntensityFeed(frame, "Europe/Copenhagen", fossil_tco2_per_mwh=None)

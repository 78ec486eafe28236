"""Policies error/drop-day/flag, DST interval counts, the ERCOT cap change, the canonical file."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import market_replay.canonical as canonical
from market_replay import (
    InputFormatError,
    PriceFrame,
    QualityError,
    import_prices,
    read_prices,
    write_prices,
)
from tests.market_replay._support import REPO, market
from vpp import DataQualityError

CN_HEADER = "日期,时刻,日前出清电价,实时出清电价\n"


def _cn_file(tmp_path, days: dict[str, list[tuple[float, float]]], skip: set[str] = frozenset()):
    lines = [CN_HEADER]
    for day, values in days.items():
        for k, (da, rt) in enumerate(values, start=1):
            minutes = 15 * k
            label = f"{minutes // 60:02d}:{minutes % 60:02d}"
            if f"{day} {label}" not in skip:
                lines.append(f"{day},{label},{da},{rt}\n")
    path = tmp_path / "cn.csv"
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def cn_bad(tmp_path):
    """Three days: clean, day-ahead all zero (missing), one interval missing."""
    clean = [(300.0 + k, 310.0 + k) for k in range(96)]
    zero = [(0.0, 320.0) for _ in range(96)]
    return _cn_file(
        tmp_path,
        {"2025-05-01": clean, "2025-05-02": zero, "2025-05-03": clean},
        skip={"2025-05-03 12:00"},
    )


def test_policy_error_raises_with_report(cn_bad):
    with pytest.raises(QualityError) as info:
        import_prices(cn_bad, "cn-spot-96", market("cn-province-a"))
    assert info.value.report.counts() == {"gap": 1, "zero_day": 1}


def test_policy_drop_day(cn_bad):
    prices = import_prices(cn_bad, "cn-spot-96", market("cn-province-a"), policy="drop-day").prices
    assert prices.days("Asia/Shanghai") == [date(2025, 5, 1)]
    assert len(prices) == 96
    assert list(prices.frame.columns) == ["da_price", "rt_price"]


def test_policy_flag(cn_bad):
    prices = import_prices(cn_bad, "cn-spot-96", market("cn-province-a"), policy="flag").prices
    frame = prices.frame
    assert len(frame) == 3 * 96  # the missing interval is back as a flagged NaN row
    zero_day = prices.day(date(2025, 5, 2), "Asia/Shanghai").frame
    assert zero_day["da_price"].isna().all()  # zeros were missing data: NaN, never 0
    assert zero_day["rt_price"].notna().all()  # the other column keeps its values
    assert zero_day["flag_zero_day"].all()
    gap = frame.loc[pd.Timestamp("2025-05-03 03:45", tz="UTC")]  # 11:45-12:00 local
    assert math.isnan(gap["da_price"])
    assert gap["flag_gap"]
    assert gap["quality_flag"]
    assert int(frame["quality_flag"].sum()) == 97
    assert prices.days("Asia/Shanghai") == [date(2025, 5, 1)]


def test_ercot_cap_follows_rule_dates(tmp_path):
    """The cap fell from 9,000 to 5,000 USD/MWh on 2022-01-01: 6,000 is fine before, not after."""
    rows = ["datetime_col,HB_HOUSTON\n"]
    start = datetime(2021, 12, 31, 1)
    for h in range(48):
        stamp = start + timedelta(hours=h)
        price = 6000.0 if h in (5, 29) else 30.0
        rows.append(f"{stamp:%Y-%m-%d %H:%M:%S},{price}\n")
    path = tmp_path / "dam.csv"
    path.write_text("".join(rows), encoding="utf-8")
    with pytest.raises(QualityError) as info:
        import_prices(path, "ercot-dam", market("ercot-houston"))
    (issue,) = info.value.report.problems
    assert issue.check == "out_of_range"
    assert issue.days == (date(2022, 1, 1),)
    assert "6000 not in [-250, 5000]" in issue.examples[0]


def _dst_file(tmp_path, day: date, tz: str):
    """15-min local rows of one day, the repeated hour flagged, as a vendor would write it."""
    start, end = pd.Timestamp(day, tz=tz), pd.Timestamp(day + timedelta(days=1), tz=tz)
    index = pd.date_range(start, end, freq="15min", inclusive="left")
    seen: set[str] = set()
    lines = ["start_local,dst,price,imbalance\n"]
    for k, ts in enumerate(index):
        label = f"{ts:%Y-%m-%d %H:%M}"
        lines.append(f"{label},{1 if label in seen else 0},{50 + k},{60 + k}\n")
        seen.add(label)
    path = tmp_path / f"{day}.csv"
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.mark.parametrize(("day", "count"), [(date(2026, 3, 29), 92), (date(2025, 10, 26), 100)])
def test_europe_quarter_hours_on_dst_days(tmp_path, day, count):
    fmt = str(REPO / "tests" / "data" / "entsoe-15min-dstflag.toml")
    result = import_prices(_dst_file(tmp_path, day, "Europe/Berlin"), fmt, market("epex-de-lu"))
    assert result.report.ok
    prices = result.prices
    assert len(prices.day(day, "Europe/Berlin")) == count
    assert prices.days("Europe/Berlin") == [day]
    assert prices.frame["da_price"].tolist() == [50.0 + k for k in range(count)]


def test_china_always_96(tmp_path):
    """Europe's fall-back Sunday 2025-10-26 is an ordinary 96-interval day in Asia/Shanghai."""
    days = {f"2025-10-{d}": [(1.0 + k, 2.0 + k) for k in range(96)] for d in (25, 26, 27)}
    prices = import_prices(_cn_file(tmp_path, days), "cn-spot-96", market("cn-province-a")).prices
    covered = prices.days("Asia/Shanghai")
    assert covered == [date(2025, 10, 25), date(2025, 10, 26), date(2025, 10, 27)]
    assert [len(prices.day(d, "Asia/Shanghai")) for d in covered] == [96, 96, 96]


# --------------------------------------------------------------------------- canonical


def _frame(start: str, periods: int, minutes: int, tz: str = "UTC") -> pd.DataFrame:
    index = pd.date_range(start, periods=periods, freq=f"{minutes}min", tz=tz)
    return pd.DataFrame({"da_price": np.arange(periods, dtype=float)}, index=index)


def test_priceframe_slices_dst_days():
    prices = PriceFrame(_frame("2025-10-25 22:00", 4 * 24 * 3, 15), "epex-de-lu", "EUR", 15)
    assert len(prices.day(date(2025, 10, 26), "Europe/Berlin")) == 100
    short = PriceFrame(_frame("2026-03-28 23:00", 4 * 24 * 3, 15), "epex-de-lu", "EUR", 15)
    assert len(short.day(date(2026, 3, 29), "Europe/Berlin")) == 92
    assert short.days("Europe/Berlin")[0] == date(2026, 3, 29)
    with pytest.raises(TypeError, match="start_utc"):
        prices.between(datetime(2025, 10, 26), datetime(2025, 10, 27))


def test_priceframe_rejects_bad_frames():
    with pytest.raises(TypeError, match="tz-aware"):
        PriceFrame(_frame("2025-01-01", 4, 60).tz_localize(None), "m", "EUR", 60)
    with pytest.raises(DataQualityError, match="mostly 60 min apart"):
        PriceFrame(_frame("2025-01-01", 4, 60), "m", "EUR", 15)
    with pytest.raises(DataQualityError, match="unknown column"):
        PriceFrame(_frame("2025-01-01", 4, 60).assign(price=1.0), "m", "EUR", 60)
    shuffled = _frame("2025-01-01", 4, 60).iloc[[0, 2, 1, 3]]
    with pytest.raises(DataQualityError, match="strictly increasing"):
        PriceFrame(shuffled, "m", "EUR", 60)


def test_local_index_is_stored_as_utc(tmp_path):
    local = PriceFrame(_frame("2025-01-01", 3, 60, tz="Asia/Shanghai"), "m", "CNY", 60)
    assert str(local.frame.index.tz) == "UTC"
    assert local.frame.index[0] == pd.Timestamp("2024-12-31 16:00", tz="UTC")
    path = tmp_path / "p.csv"
    write_prices(local, path)
    assert path.read_text().splitlines()[5].startswith("2024-12-31T16:00:00+00:00,0.0")


@pytest.mark.parametrize(
    ("line", "row", "column", "words"),
    [
        ("2025-01-01T02:00:00,2.0", 7, "interval_start", "UTC offset"),
        ("2025-01-01T01:00:00+00:00,2.0", 7, "interval_start", "duplicate timestamp"),
        ("2025-01-01T00:30:00+00:00,2.0", 7, "interval_start", "out of order"),
        ("2025-01-01T01:30:00+00:00,2.0", 7, "interval_start", "30 min after the previous row"),
        ("2025-01-01T02:00:00+00:00,x", 7, "da_price", "cannot parse 'x'"),
    ],
)
def test_read_prices_names_row_and_column(tmp_path, line, row, column, words):
    path = tmp_path / "p.csv"
    path.write_text(
        "# market_id=m\n# currency=EUR\n# interval_minutes=60\ninterval_start,da_price\n"
        f"2025-01-01T00:00:00+00:00,0.0\n2025-01-01T01:00:00+00:00,1.0\n{line}\n",
        encoding="utf-8",
    )
    with pytest.raises(InputFormatError) as info:
        read_prices(path)
    message = str(info.value)
    assert message.startswith(f"{path}: row {row}")
    if column:
        assert f"column {column!r}" in message
    assert words in message


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    prices = PriceFrame(_frame("2025-01-01", 3, 60), "m", "EUR", 60)

    def broken(_fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(canonical.os, "fsync", broken)
    with pytest.raises(OSError, match="disk full"):
        write_prices(prices, tmp_path / "p.csv")
    assert list(tmp_path.iterdir()) == []


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
maybe_nan = st.one_of(finite, st.just(float("nan")))


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    rows=st.integers(min_value=1, max_value=40),
    minutes=st.sampled_from([5, 15, 30, 60]),
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)),
    with_rt=st.booleans(),
    with_flags=st.booleans(),
)
def test_round_trip_is_exact(tmp_path_factory, data, rows, minutes, start, with_rt, with_flags):
    start = pd.Timestamp(start).floor(f"{minutes}min").tz_localize("UTC")
    index = pd.date_range(start, periods=rows, freq=f"{minutes}min")
    frame = pd.DataFrame(
        {"da_price": data.draw(st.lists(maybe_nan, min_size=rows, max_size=rows))}, index=index
    )
    if with_rt:
        frame["rt_price"] = data.draw(st.lists(maybe_nan, min_size=rows, max_size=rows))
        frame["load_forecast_mw"] = data.draw(st.lists(finite, min_size=rows, max_size=rows))
    if with_flags:
        frame["quality_flag"] = data.draw(st.lists(st.booleans(), min_size=rows, max_size=rows))
    prices = PriceFrame(frame, "cn-province-a", "CNY", minutes)
    path = tmp_path_factory.mktemp("rt") / "prices.csv"
    write_prices(prices, path, source="hypothesis")
    assert read_prices(path) == prices

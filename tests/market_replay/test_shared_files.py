"""Each shared real price file imports with its documented quirks reported (data/README.md)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from market_replay import QualityError, import_prices, read_prices, write_prices
from tests.market_replay._support import CN, ENTSOE, ERCOT_DAM, ERCOT_RTM, NORDPOOL, market


def _problems(report) -> dict[tuple[str, str | None], object]:
    return {(i.check, i.column): i for i in report.problems}


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture(scope="module")
def cn_rejected(shared_prices):
    with pytest.raises(QualityError) as info:
        import_prices(shared_prices / CN, "cn-spot-96", market("cn-province-a"))
    return info.value.report


def test_cn_zero_days_are_missing_data(cn_rejected):
    found = _problems(cn_rejected)
    assert found[("zero_day", "da_price")].days == (date(2025, 5, 9),)
    assert found[("zero_day", "rt_price")].days == (date(2025, 6, 30),)


def test_cn_misdated_24_00_row_is_reported_not_fixed(cn_rejected):
    # Row 2881 is labelled "2025-05-31 24:00" but sits where 2025-05-30 24:00 belongs.
    found = _problems(cn_rejected)
    assert found[("out_of_order", None)].examples[0].startswith("row 2881:")
    assert "rows 2881, 2977" in found[("duplicate", None)].examples[0]
    assert found[("gap", None)].days == (date(2025, 5, 30),)
    assert cn_rejected.rows_read == 5856
    assert set(cn_rejected.counts()) == {"out_of_order", "duplicate", "gap", "zero_day"}


def test_cn_drop_day_keeps_96_intervals_every_day(shared_prices):
    result = import_prices(
        shared_prices / CN, "cn-spot-96", market("cn-province-a"), policy="drop-day"
    )
    prices = result.prices
    assert result.report.days_dropped == (
        date(2025, 5, 9),
        date(2025, 5, 30),
        date(2025, 5, 31),
        date(2025, 6, 30),
    )
    days = prices.days("Asia/Shanghai")
    assert len(days) == 57
    assert len(prices) == 57 * 96
    assert {len(prices.day(d, "Asia/Shanghai")) for d in days} == {96}
    # Interval-END label 00:15 is the interval 00:00-00:15 local = 16:00 UTC the day before.
    first = prices.frame.iloc[0]
    assert prices.frame.index[0] == _utc("2025-04-30 16:00")
    assert first["da_price"] == 480.0
    assert first["rt_price"] == 428.0
    assert first["bidding_space_mw"] == 11128.41
    # 24:00 closes the day: the last interval of 2025-05-01 starts 23:45 local.
    assert prices.day(date(2025, 5, 1), "Asia/Shanghai").frame.index[-1] == _utc("2025-05-01 15:45")


def test_nordpool_dst_rows_resolved_by_flag(shared_prices):
    result = import_prices(
        shared_prices / NORDPOOL, "nordpool-regulating", market("nordpool-dk1"), zone="DK1"
    )
    report, prices = result.report, result.prices
    assert report.ok  # nothing needs a policy
    notes = {i.check: i for i in report.notes}
    assert notes["dst_placeholder"].days == (date(2016, 3, 27),)
    assert notes["dst_placeholder"].examples[0].startswith("row 2068:")
    assert notes["dst_repeat"].days == (date(2016, 10, 30),)
    assert len(prices.day(date(2016, 3, 27), "Europe/Copenhagen")) == 23
    assert len(prices.day(date(2016, 10, 30), "Europe/Copenhagen")) == 25
    assert len(prices) == 8784
    assert list(prices.frame.columns) == [
        "da_price",
        "rt_price_up",
        "rt_price_down",
    ]
    # The two 02:00 rows are 02:00 CEST (00:00 UTC) and 02:00 CET (01:00 UTC).
    fall = prices.between(_utc("2016-10-30 00:00"), _utc("2016-10-30 02:00")).frame
    assert fall["rt_price_down"].tolist() == [193.37, 193.37]
    dk2 = import_prices(
        shared_prices / NORDPOOL, "nordpool-regulating", market("nordpool-dk1"), zone="DK2"
    ).prices
    assert not np.array_equal(dk2.frame["rt_price_up"], prices.frame["rt_price_up"])


def test_ercot_dam_ambiguous_fall_back_hour(shared_prices):
    with pytest.raises(QualityError) as info:
        import_prices(shared_prices / ERCOT_DAM, "ercot-dam", market("ercot-houston"))
    report = info.value.report
    assert report.counts() == {"dst_ambiguous": 3}
    assert _problems(report)[("dst_ambiguous", None)].days == (
        date(2022, 11, 6),
        date(2023, 11, 5),
        date(2024, 11, 3),
    )
    spring = {i.check: i for i in report.notes}["dst_day"]
    assert "2022-03-13: 23 h day, 23 of 23 intervals" in spring.examples


def test_ercot_dam_hour_ending_labels(shared_prices):
    result = import_prices(
        shared_prices / ERCOT_DAM, "ercot-dam", market("ercot-houston"), policy="drop-day"
    )
    prices = result.prices
    # "2022-01-01 01:00:00" is hour-ending 1: 00:00-01:00 CST = 06:00 UTC.
    assert prices.frame.index[0] == _utc("2022-01-01 06:00")
    assert prices.frame["da_price"].iloc[0] == 33.2
    assert len(prices.day(date(2022, 3, 13), "America/Chicago")) == 23
    assert date(2022, 11, 6) not in prices.days("America/Chicago")
    assert len(prices) == 26301 - 3 * 24


def test_ercot_dam_rt_join(shared_prices):
    result = import_prices(
        shared_prices / ERCOT_DAM,
        "ercot-dam",
        market("ercot-houston"),
        zone="HB_HOUSTON",
        policy="drop-day",
        rt_path=shared_prices / ERCOT_RTM,
    )
    prices = result.prices
    assert prices.interval_minutes == 15
    assert list(prices.frame.columns) == ["da_price", "rt_price"]
    assert len(prices) == 5952  # every RT quarter-hour of Jan 2022 and Jan 2023
    gap = _problems(result.report)[("gap", None)]
    assert gap.count == 334 * 96  # RT file has nothing from Feb to Dec 2022
    first_hour = prices.between(_utc("2022-01-01 06:00"), _utc("2022-01-01 07:00")).frame
    assert first_hour["da_price"].tolist() == [33.2] * 4
    assert first_hour["rt_price"].iloc[0] == 52.82  # RT labels are interval START
    join = {i.check: i for i in result.report.notes}["join"]
    assert join.count == 5952


def test_entsoe_quirks(shared_prices):
    with pytest.raises(QualityError) as info:
        import_prices(shared_prices / ENTSOE, "entsoe-day-ahead", market("epex-de-lu"))
    found = _problems(info.value.report)
    assert date(2020, 9, 26) in found[("gap", None)].days  # the September 2020 hole
    assert date(2021, 10, 31) in found[("out_of_order", None)].days
    assert date(2021, 10, 31) in found[("duplicate", None)].days
    assert found[("dst_nonexistent", None)].days == (
        date(2020, 3, 29),
        date(2021, 3, 28),
        date(2022, 3, 27),
    )
    assert date(2022, 10, 30) in found[("dst_ambiguous", None)].days


def test_entsoe_flag_keeps_dst_day_lengths(shared_prices):
    prices = import_prices(
        shared_prices / ENTSOE, "entsoe-day-ahead", market("epex-de-lu"), policy="flag"
    ).prices
    tz = "Europe/Berlin"
    assert len(prices.day(date(2021, 3, 28), tz)) == 23
    long_day = prices.day(date(2021, 10, 31), tz).frame
    assert len(long_day) == 25
    # Both 02:00 hours are unknown (no DST flag): NaN and flagged, never a guess.
    assert int(long_day["da_price"].isna().sum()) == 2
    assert long_day["flag_dst_ambiguous"].sum() == 2
    missing_day = prices.day(date(2020, 9, 26), tz).frame
    assert missing_day["flag_gap"].all()
    assert missing_day["da_price"].isna().all()


@pytest.mark.parametrize(
    ("name", "fmt", "market_id", "extra"),
    [
        (CN, "cn-spot-96", "cn-province-a", {}),
        (NORDPOOL, "nordpool-regulating", "nordpool-dk1", {"zone": "DK2"}),
        (ERCOT_DAM, "ercot-dam", "ercot-houston", {"zone": "LZ_WEST"}),
        (ENTSOE, "entsoe-day-ahead", "epex-de-lu", {}),
    ],
)
@pytest.mark.parametrize("policy", ["drop-day", "flag"])
def test_imported_files_round_trip(shared_prices, tmp_path, name, fmt, market_id, extra, policy):
    prices = import_prices(
        shared_prices / name, fmt, market(market_id), policy=policy, **extra
    ).prices
    path = tmp_path / "prices.csv"
    write_prices(prices, path, source=name)
    assert read_prices(path) == prices

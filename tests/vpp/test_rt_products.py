"""Real-time bid products as market data: versions by date, gates and periods across DST,
every real-time rule firing by name, the clearing by kind worked by hand, and bad files.

Expected UTC times are worked by hand from the zones' offsets (CET +1, CEST +2,
CST -6, CDT -5, PST -8, PDT -7, China +8) and written out, never recomputed with the
code under test.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market_replay import import_prices
from market_replay.exchange import clear_curve
from vpp.config import load_market
from vpp.config.models import MarketConfig, MarketRules, RealTimeProduct
from vpp.errors import ConfigError, InputError, MarketRuleError
from vpp.market_rules import (
    PRODUCTS,
    RT_RULES,
    RULES,
    check_rt_bid,
    check_rt_gate_closure,
    check_rt_submission,
    clear_rt_bid,
    rt_clearing_price,
)
from vpp.types import BidPoint, RealTimeBid

REPO = Path(__file__).resolve().parents[2]
MARKETS = REPO / "config" / "markets"
UTC = dt.UTC


def _market(market_id: str) -> MarketConfig:
    return load_market(MARKETS / f"{market_id}.toml")


DK1 = _market("nordpool-dk1")
ERCOT = _market("ercot-houston")
DE = _market("epex-de-lu")
CN = _market("cn-province-a")
CAISO = _market("caiso-np15")
ZONES = {m.id: ZoneInfo(m.timezone) for m in (DK1, ERCOT, DE, CN, CAISO)}


def _utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def _bid(
    market: str,
    product: str,
    start: dt.datetime,
    points: tuple[tuple[float, float], ...],
    direction: str = "both",
) -> RealTimeBid:
    return RealTimeBid(
        market, "pf", product, start, tuple(BidPoint(p, q) for p, q in points), direction,
        _utc(2000, 1, 1),
    )


def _with(rules: MarketRules, product_id: str, **update: object) -> tuple[MarketRules, RealTimeProduct]:
    """``rules`` with one product's fields changed (validated, as a config file would be)."""
    product = rules.rt_product(product_id)
    changed = RealTimeProduct.model_validate({**product.model_dump(), **update})
    others = tuple(p for p in rules.real_time_products if p.id != product_id)
    return rules.model_copy(update={"real_time_products": (*others, changed)}), changed


# --------------------------------------------------------------------------- shipped markets


def test_every_shipped_market_loads_with_its_products() -> None:
    products = {
        path.stem: {(p.id, p.kind, p.effective_date) for p in load_market(path).real_time_products}
        for path in sorted(MARKETS.glob("*.toml"))
    }
    assert products == {
        "caiso-np15": {("fmm-energy", "energy_offer", dt.date(2014, 5, 1))},
        "cn-province-a": {("rt-energy", "energy_offer", dt.date(2023, 9, 7))},
        "epex-de-lu": {
            (ida, "intraday_auction", dt.date(2024, 6, 13)) for ida in ("ida1", "ida2", "ida3")
        },
        "ercot-houston": {
            ("rt-energy", "energy_offer", dt.date(2015, 6, 1)),
            ("rt-energy", "energy_offer", dt.date(2022, 1, 1)),
        },
        "nordpool-dk1": {
            ("mfrr-energy", "regulating", dt.date(2014, 2, 4)),
            ("mfrr-energy", "regulating", dt.date(2022, 5, 10)),
            ("mfrr-energy", "regulating", dt.date(2025, 3, 4)),
        }
        | {(ida, "intraday_auction", dt.date(2024, 6, 13)) for ida in ("ida1", "ida2", "ida3")},
    }
    for path in MARKETS.glob("*.toml"):
        for product in load_market(path).real_time_products:
            assert product.source
            assert product.floor_per_mwh < product.cap_per_mwh
            if product.kind == "intraday_auction" or path.stem == "caiso-np15":
                assert not product.has_price_data, (path.stem, product.id)  # no such data ships


def test_chinese_province_has_no_user_side_rt_bid_by_default() -> None:
    product = CN.rules_on(dt.date(2025, 5, 2)).rt_product("rt-energy")
    assert not product.enabled
    assert CN.rules_on(dt.date(2025, 5, 2)).settlement.rule == "two_settlement"


def test_a_market_without_real_time_products_loads_as_before(tmp_path: Path) -> None:
    text = (MARKETS / "ercot-houston.toml").read_text("utf-8")
    bare = tmp_path / "ercot-houston.toml"
    bare.write_text(text[: text.index("# Real-time energy offers")], "utf-8")
    market = load_market(bare)
    assert market.real_time_products == []
    rules = market.rules_on(dt.date(2022, 1, 5))
    assert rules.real_time_products == ()
    assert rules.model_dump(exclude={"real_time_products"}) == ERCOT.rules_on(
        dt.date(2022, 1, 5)
    ).model_dump(exclude={"real_time_products"})
    with pytest.raises(InputError, match="no real-time product 'rt-energy' in force, known: none"):
        rules.rt_product("rt-energy")


def test_rules_on_picks_the_version_in_force() -> None:
    mfrr_2016 = DK1.rules_on(dt.date(2016, 6, 1)).rt_product("mfrr-energy")
    assert (mfrr_2016.period_minutes, mfrr_2016.gate_anchor, mfrr_2016.cap_per_mwh) == (
        60, "hour", 22350.0,
    )
    assert mfrr_2016.has_price_data  # the shipped 2016 file carries up/down prices
    assert DK1.rules_on(dt.date(2023, 1, 1)).rt_product("mfrr-energy").cap_per_mwh == 29800.0
    mfrr_2026 = DK1.rules_on(dt.date(2026, 1, 15)).rt_product("mfrr-energy")
    assert (mfrr_2026.period_minutes, mfrr_2026.gate_anchor, mfrr_2026.gate_minutes_before) == (
        15, "period", 45,
    )
    assert DK1.rules_on(dt.date(2025, 3, 3)).rt_product("mfrr-energy").period_minutes == 60
    assert DK1.rules_on(dt.date(2025, 3, 4)).rt_product("mfrr-energy").period_minutes == 15
    # The IDAs exist from 2024-06-13 on; before, only mFRR.
    assert [p.id for p in DK1.rules_on(dt.date(2016, 6, 1)).real_time_products] == ["mfrr-energy"]
    assert [p.id for p in DK1.rules_on(dt.date(2026, 1, 15)).real_time_products] == [
        "ida1", "ida2", "ida3", "mfrr-energy",
    ]
    assert DE.rules_on(dt.date(2024, 6, 12)).real_time_products == ()
    assert len(DE.rules_on(dt.date(2024, 6, 13)).real_time_products) == 3
    assert ERCOT.rules_on(dt.date(2021, 12, 31)).rt_product("rt-energy").cap_per_mwh == 9000.0
    assert ERCOT.rules_on(dt.date(2022, 1, 1)).rt_product("rt-energy").cap_per_mwh == 5000.0
    assert ERCOT.rt_products_on(dt.date(2015, 5, 31)) == ()  # the day before its first version


# --------------------------------------------------------------------------- gates and periods


GATES = [
    # DK1 mFRR 2016, hourly, 45 min before the hour. Spring: 02:00 CET jumps to 03:00 CEST.
    ("nordpool-dk1", "mfrr-energy", _utc(2016, 3, 26, 23), _utc(2016, 3, 26, 22, 15)),  # 00 CET
    ("nordpool-dk1", "mfrr-energy", _utc(2016, 3, 27, 0), _utc(2016, 3, 26, 23, 15)),  # 01 CET
    ("nordpool-dk1", "mfrr-energy", _utc(2016, 3, 27, 1), _utc(2016, 3, 27, 0, 15)),  # 03 CEST
    # Autumn: 02:00 twice, CEST (00 UTC) then CET (01 UTC).
    ("nordpool-dk1", "mfrr-energy", _utc(2016, 10, 30, 0), _utc(2016, 10, 29, 23, 15)),
    ("nordpool-dk1", "mfrr-energy", _utc(2016, 10, 30, 1), _utc(2016, 10, 30, 0, 15)),
    ("nordpool-dk1", "mfrr-energy", _utc(2016, 10, 30, 2), _utc(2016, 10, 30, 1, 15)),  # 03 CET
    # DK1 mFRR 2026, 15-min periods, 45 min before each: 03:15 CEST = 01:15 UTC.
    ("nordpool-dk1", "mfrr-energy", _utc(2026, 3, 29, 1, 15), _utc(2026, 3, 29, 0, 30)),
    # ERCOT, 60 min before the operating hour. Spring: 02:00 CST jumps to 03:00 CDT.
    ("ercot-houston", "rt-energy", _utc(2022, 3, 13, 7), _utc(2022, 3, 13, 6)),  # 01 CST
    ("ercot-houston", "rt-energy", _utc(2022, 3, 13, 8), _utc(2022, 3, 13, 7)),  # 03 CDT
    # Autumn: 01:00 twice, CDT (06 UTC) then CST (07 UTC).
    ("ercot-houston", "rt-energy", _utc(2022, 11, 6, 6), _utc(2022, 11, 6, 5)),
    ("ercot-houston", "rt-energy", _utc(2022, 11, 6, 7), _utc(2022, 11, 6, 6)),
    ("ercot-houston", "rt-energy", _utc(2022, 11, 6, 8), _utc(2022, 11, 6, 7)),  # 02 CST
    # CAISO FMM, 75 min before the hour: 03:00 PDT = 10 UTC; 01:00 PST (second) = 09 UTC.
    ("caiso-np15", "fmm-energy", _utc(2022, 3, 13, 10), _utc(2022, 3, 13, 8, 45)),
    ("caiso-np15", "fmm-energy", _utc(2022, 11, 6, 9), _utc(2022, 11, 6, 7, 45)),
    # EPEX DE-LU IDAs, 2026-03-29 (23 h): IDA1 15:00 CET D-1, IDA2 22:00 CET D-1, IDA3 10:00 CEST D.
    ("epex-de-lu", "ida1", _utc(2026, 3, 28, 23), _utc(2026, 3, 28, 14)),
    ("epex-de-lu", "ida2", _utc(2026, 3, 29, 21, 45), _utc(2026, 3, 28, 21)),
    ("epex-de-lu", "ida3", _utc(2026, 3, 29, 10), _utc(2026, 3, 29, 8)),
    # 2026-10-25 (25 h): IDA1 15:00 CEST D-1, IDA3 10:00 CET D.
    ("epex-de-lu", "ida1", _utc(2026, 10, 25, 1, 30), _utc(2026, 10, 24, 13)),
    ("epex-de-lu", "ida3", _utc(2026, 10, 25, 22, 45), _utc(2026, 10, 25, 9)),
    # China (no DST), disabled but described: 60 min before the quarter-hour.
    ("cn-province-a", "rt-energy", _utc(2025, 5, 2, 2, 15), _utc(2025, 5, 2, 1, 15)),
]


@pytest.mark.parametrize(("market_id", "product", "start", "gate"), GATES)
def test_gate_closure_by_hand(
    market_id: str, product: str, start: dt.datetime, gate: dt.datetime
) -> None:
    market = _market(market_id)
    local_day = start.astimezone(ZONES[market_id]).date()
    rules = market.rules_on(local_day)
    assert rules.rt_gate_closure(product, start) == gate
    assert rules.rt_gate_closure(product, start).tzinfo is not None


def test_gates_of_every_period_on_fall_back_days_are_one_hour_apart_and_plain_datetimes() -> None:
    # Periods straight from rt_periods (pandas Timestamps) across the repeated hour.
    for market, product, day, before in (
        (ERCOT, "rt-energy", dt.date(2022, 11, 6), dt.timedelta(hours=1)),
        (DK1, "mfrr-energy", dt.date(2016, 10, 30), dt.timedelta(minutes=45)),
    ):
        rules = market.rules_on(day)
        periods = rules.rt_periods(product, day)
        gates = [rules.rt_gate_closure(product, t) for t in periods]
        assert all(type(g) is dt.datetime for g in gates)
        assert [t.to_pydatetime() - g for t, g in zip(periods, gates, strict=True)] == [before] * 25


def test_hour_anchor_counts_from_the_local_hour_not_the_period() -> None:
    # A 15-minute product gated 60 min before its hour: 10:45 CST (+8) -> hour 10:00 -> 09:00.
    rules, _ = _with(CN.rules_on(dt.date(2025, 5, 2)), "rt-energy", gate_anchor="hour")
    assert rules.rt_gate_closure("rt-energy", _utc(2025, 5, 2, 2, 45)) == _utc(2025, 5, 2, 1)
    period = CN.rules_on(dt.date(2025, 5, 2))
    assert period.rt_gate_closure("rt-energy", _utc(2025, 5, 2, 2, 45)) == _utc(2025, 5, 2, 1, 45)


def test_naive_period_start_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="period_start_utc"):
        DK1.rules_on(dt.date(2016, 6, 1)).rt_gate_closure("mfrr-energy", dt.datetime(2016, 6, 1))


def test_auction_gate_outside_its_window_is_an_input_error() -> None:
    rules = DE.rules_on(dt.date(2026, 3, 29))
    with pytest.raises(InputError, match="in no session's delivery window"):
        rules.rt_gate_closure("ida3", _utc(2026, 3, 29, 9, 45))  # 11:45 CEST, before 12:00


@pytest.mark.parametrize(
    ("market_id", "product", "day", "count", "first"),
    [
        ("nordpool-dk1", "mfrr-energy", dt.date(2016, 3, 27), 23, _utc(2016, 3, 26, 23)),
        ("nordpool-dk1", "mfrr-energy", dt.date(2016, 10, 30), 25, _utc(2016, 10, 29, 22)),
        ("nordpool-dk1", "mfrr-energy", dt.date(2026, 3, 29), 92, _utc(2026, 3, 28, 23)),
        ("nordpool-dk1", "mfrr-energy", dt.date(2026, 10, 25), 100, _utc(2026, 10, 24, 22)),
        ("nordpool-dk1", "ida1", dt.date(2026, 3, 29), 92, _utc(2026, 3, 28, 23)),
        ("epex-de-lu", "ida2", dt.date(2026, 10, 25), 100, _utc(2026, 10, 24, 22)),
        ("epex-de-lu", "ida3", dt.date(2026, 3, 29), 48, _utc(2026, 3, 29, 10)),  # 12-24 CEST
        ("epex-de-lu", "ida3", dt.date(2026, 10, 25), 48, _utc(2026, 10, 25, 11)),  # 12-24 CET
        ("ercot-houston", "rt-energy", dt.date(2022, 3, 13), 23, _utc(2022, 3, 13, 6)),
        ("ercot-houston", "rt-energy", dt.date(2022, 11, 6), 25, _utc(2022, 11, 6, 5)),
        ("cn-province-a", "rt-energy", dt.date(2025, 5, 2), 96, _utc(2025, 5, 1, 16)),
    ],
)
def test_rt_periods_count_across_dst(
    market_id: str, product: str, day: dt.date, count: int, first: dt.datetime
) -> None:
    periods = _market(market_id).rules_on(day).rt_periods(product, day)
    assert len(periods) == count
    assert periods[0] == first
    assert str(periods.tz) == "UTC"


# --------------------------------------------------------------------------- each rule fires

ERCOT_DAY = dt.date(2022, 1, 5)
ERCOT_RULES = ERCOT.rules_on(ERCOT_DAY)  # rt-energy: -250..5000, 10 pairs, 0.1 MW, 0.01
ERCOT_HOUR = _utc(2022, 1, 5, 18)  # 12:00 CST; gate 17:00 UTC
ERCOT_GOOD = ((-250.0, -2.0), (20.0, 0.0), (50.0, 1.5), (100.0, 3.0))
DK1_DAY = dt.date(2016, 6, 1)
DK1_RULES = DK1.rules_on(DK1_DAY)  # mfrr-energy hourly: whole MW, -3725..22350 DKK
DK1_HOUR = _utc(2016, 6, 1, 10)  # 12:00 CEST; gate 09:15 UTC


def _ercot(
    points: tuple[tuple[float, float], ...] = ERCOT_GOOD,
    *,
    start: dt.datetime = ERCOT_HOUR,
    market: str = "ercot-houston",
    product: str = "rt-energy",
) -> RealTimeBid:
    return _bid(market, product, start, points)


CURVE_CASES = {
    "max_segments": tuple((float(p), 0.1 * p) for p in range(11)),
    "price_floor": ((-250.01, 0.0),),
    "price_cap": ((5000.01, 1.0),),  # the 2022 product cap, not the day-ahead one
    "price_tick": ((10.005, 1.0),),
    "min_lot": ((10.0, 0.05),),
    "price_order": ((10.0, 1.0), (10.0, 2.0)),
    "monotonicity": ((10.0, 1.0), (20.0, 0.5)),
}


@pytest.mark.parametrize("rule", sorted(CURVE_CASES))
def test_each_curve_rule_fires_for_a_real_time_bid(rule: str) -> None:
    bid = _ercot(CURVE_CASES[rule])
    with pytest.raises(MarketRuleError) as strategy_side:
        check_rt_bid(bid, ERCOT_RULES)
    with pytest.raises(MarketRuleError) as exchange_side:
        check_rt_submission(bid, ERCOT_RULES, "rt-energy", ERCOT_HOUR - dt.timedelta(hours=2))
    assert strategy_side.value.rule == exchange_side.value.rule == rule
    assert str(strategy_side.value).startswith(f"{rule}: rt-energy 2022-01-05T18:00:00+00:00")


def test_curve_limits_are_the_products_not_the_day_aheads() -> None:
    # Day-ahead ERCOT bidding and product agree on 10 pairs; change the product only.
    rules, _ = _with(ERCOT_RULES, "rt-energy", max_segments=3, floor_per_mwh=-100.0)
    with pytest.raises(MarketRuleError) as info:
        check_rt_bid(_ercot((*ERCOT_GOOD[1:], (200.0, 4.0))), rules)
    assert info.value.rule == "max_segments"
    with pytest.raises(MarketRuleError) as info:
        check_rt_bid(_ercot(((-150.0, 0.0),)), rules)
    assert info.value.rule == "price_floor"  # -150 is above the day-ahead floor -250
    # The DK1 mFRR lot is 1 MW while the day-ahead lot is 0.1 MW.
    with pytest.raises(MarketRuleError) as info:
        check_rt_bid(_bid("nordpool-dk1", "mfrr-energy", DK1_HOUR, ((300.0, 0.5),), "up"), DK1_RULES)
    assert info.value.rule == "min_lot"


def test_a_good_bid_passes_both_checks_until_its_gate() -> None:
    bid = _ercot()
    check_rt_bid(bid, ERCOT_RULES)
    gate = _utc(2022, 1, 5, 17)
    check_rt_submission(bid, ERCOT_RULES, "rt-energy", gate)  # at the gate is on time
    check_rt_gate_closure(bid, ERCOT_RULES, "rt-energy", gate)


def test_the_rt_gate_closure_rule_fires_one_second_late_naming_product_period_gate_now() -> None:
    late = _utc(2022, 1, 5, 17, 0, 1)
    with pytest.raises(MarketRuleError) as info:
        check_rt_submission(_ercot(), ERCOT_RULES, "rt-energy", late)
    assert info.value.rule == "rt_gate_closure"
    assert str(info.value) == (
        "rt_gate_closure: rt-energy period 2022-01-05T12:00:00-06:00: received "
        "2022-01-05T11:00:01-06:00, allowed until the gate at 2022-01-05T11:00:00-06:00 "
        "(America/Chicago)"
    )
    check_rt_bid(_ercot(), ERCOT_RULES)  # the strategy's check does not know the time


def test_the_rt_gate_closure_rule_on_the_dk1_fall_back_hour() -> None:
    rules = DK1.rules_on(dt.date(2016, 10, 30))
    bid = _bid("nordpool-dk1", "mfrr-energy", _utc(2016, 10, 30, 1), ((300.0, 1.0),), "up")
    check_rt_submission(bid, rules, "mfrr-energy", _utc(2016, 10, 30, 0, 15))
    with pytest.raises(MarketRuleError, match=r"gate at 2016-10-30T02:15:00\+02:00"):
        check_rt_submission(bid, rules, "mfrr-energy", _utc(2016, 10, 30, 0, 16))


def test_the_product_disabled_rule_fires_for_a_chinese_province() -> None:
    rules = CN.rules_on(dt.date(2025, 5, 2))
    bid = _bid("cn-province-a", "rt-energy", _utc(2025, 5, 2, 2, 15), ((-80.0, -1.0), (400.0, 1.0)))
    for check in (
        lambda: check_rt_bid(bid, rules),
        lambda: check_rt_submission(bid, rules, "rt-energy", _utc(2025, 5, 1)),
    ):
        with pytest.raises(MarketRuleError) as info:
            check()
        assert info.value.rule == "product_disabled"
        assert "enabled = false" in str(info.value)
        assert "two_settlement" in str(info.value)
    switched_on, _ = _with(rules, "rt-energy", enabled=True)
    check_rt_bid(bid, switched_on)  # the same bid where a province admits VPP offers


@pytest.mark.parametrize(
    "start",
    [
        _utc(2022, 1, 5, 18, 15),  # a quarter past: not an operating hour's start
        _utc(2022, 1, 6, 6),  # 00:00 CST on 2022-01-06: another day, yet a valid period ...
    ],
)
def test_the_rt_period_rule_fires(start: dt.datetime) -> None:
    if start.hour == 6:  # ... of its own day: judged by that day's rules it passes
        check_rt_bid(_ercot(start=start), ERCOT.rules_on(dt.date(2022, 1, 6)))
        return
    for check in (
        lambda: check_rt_bid(_ercot(start=start), ERCOT_RULES),
        lambda: check_rt_submission(_ercot(start=start), ERCOT_RULES, "rt-energy", _utc(2022, 1, 1)),
    ):
        with pytest.raises(MarketRuleError) as info:
            check()
        assert info.value.rule == "rt_period"
        assert "allowed the 24 60-min period starts of 2022-01-05" in str(info.value)


def test_the_rt_period_rule_fires_outside_an_auction_window() -> None:
    rules = DE.rules_on(dt.date(2026, 6, 1))
    bid = _bid("epex-de-lu", "ida3", _utc(2026, 6, 1, 9, 45), ((0.0, -1.0), (100.0, 1.0)))
    with pytest.raises(MarketRuleError) as info:
        check_rt_bid(bid, rules)
    assert info.value.rule == "rt_period"
    assert "IDA3's delivery windows" in str(info.value)
    check_rt_bid(_bid("epex-de-lu", "ida3", _utc(2026, 6, 1, 10), ((0.0, -1.0), (100.0, 1.0))), rules)


@pytest.mark.parametrize(
    ("product", "points", "direction"),
    [
        ("mfrr-energy", ((300.0, -1.0),), "up"),  # an up bid that buys
        ("mfrr-energy", ((100.0, -2.0), (150.0, 1.0)), "down"),  # a down bid that sells
        ("mfrr-energy", ((300.0, 1.0),), "both"),  # regulating takes up or down
        ("ida1", ((0.0, -1.0), (100.0, 1.0)), "up"),  # an auction takes one curve
    ],
)
def test_the_rt_direction_rule_fires(
    product: str, points: tuple[tuple[float, float], ...], direction: str
) -> None:
    day = dt.date(2026, 6, 1)
    rules = DK1.rules_on(day)
    bid = _bid("nordpool-dk1", product, _utc(2026, 6, 1, 10), points, direction)
    with pytest.raises(MarketRuleError) as strategy_side:
        check_rt_bid(bid, rules)
    with pytest.raises(MarketRuleError) as exchange_side:
        check_rt_submission(bid, rules, product, _utc(2026, 5, 31))
    assert strategy_side.value.rule == exchange_side.value.rule == "rt_direction"


def test_the_rt_product_and_market_rules_fire() -> None:
    with pytest.raises(MarketRuleError) as info:
        check_rt_bid(_ercot(product="fmm-energy"), ERCOT_RULES)
    assert info.value.rule == "rt_product"
    assert "allowed ['rt-energy']" in str(info.value)
    with pytest.raises(MarketRuleError) as info:
        check_rt_submission(_ercot(), ERCOT_RULES, "ida1", ERCOT_HOUR)  # sent to another product
    assert info.value.rule == "rt_product"
    with pytest.raises(MarketRuleError) as info:
        check_rt_bid(_ercot(), ERCOT_RULES, DK1_RULES.rt_product("mfrr-energy"))
    assert info.value.rule == "rt_product"
    with pytest.raises(MarketRuleError) as info:
        check_rt_bid(_ercot(market="caiso-np15"), ERCOT_RULES)
    assert info.value.rule == "market"


def test_every_real_time_rule_name_is_tested_here() -> None:
    tested = {"rt_product", "product_disabled", "rt_period", "rt_gate_closure", "rt_direction"}
    assert tested == set(RT_RULES) <= set(RULES)
    assert set(CURVE_CASES) == set(PRODUCTS["real_time"].curve_rules)


def test_a_real_time_bid_rejects_a_bad_direction_and_naive_times() -> None:
    with pytest.raises(InputError, match="direction 'sideways'"):
        _bid("ercot-houston", "rt-energy", ERCOT_HOUR, ((0.0, 1.0),), "sideways")
    with pytest.raises(TypeError, match="period_start"):
        _bid("ercot-houston", "rt-energy", dt.datetime(2022, 1, 5, 18), ((0.0, 1.0),))
    assert _ercot().idempotency_key == "ercot-houston/rt-energy/2022-01-05T18:00:00+00:00/pf/both"


# --------------------------------------------------------------------------- clearing by hand

ERCOT_PRODUCT = ERCOT_RULES.rt_product("rt-energy")


@pytest.mark.parametrize(
    ("price", "awarded_mw"),
    [
        (-300.0, -2.0),  # below the first point: flat, as the day-ahead clearing reads it
        (-250.0, -2.0),  # at the first point
        (0.0, -2.0),  # between the first and second point
        (20.0, 0.0),  # at the second
        (49.99, 0.0),  # just below the third
        (50.0, 1.5),  # at the third
        (99.99, 1.5),
        (100.0, 3.0),  # at the last
        (4000.0, 3.0),  # above it: flat
    ],
)
def test_energy_offer_clearing_by_hand(price: float, awarded_mw: float) -> None:
    bid = _ercot()
    assert clear_rt_bid(bid, ERCOT_PRODUCT, {"rt_price": price}) == awarded_mw
    assert rt_clearing_price(bid, ERCOT_PRODUCT, {"rt_price": price}) == price
    assert awarded_mw == clear_curve(bid.curve, price, "step", "price_quantity")


@pytest.mark.parametrize(
    ("price", "awarded_mw"), [(-10.0, -1.0), (0.0, -1.0), (25.0, -0.5), (50.0, 0.0), (150.0, 1.0)]
)
def test_intraday_auction_clearing_reads_a_linear_curve(price: float, awarded_mw: float) -> None:
    product = DE.rules_on(dt.date(2026, 6, 1)).rt_product("ida1")
    bid = _bid("epex-de-lu", "ida1", _utc(2026, 6, 1, 10), ((0.0, -1.0), (100.0, 1.0)))
    assert clear_rt_bid(bid, product, {"ida1_price": price}) == pytest.approx(awarded_mw)


MFRR = DK1_RULES.rt_product("mfrr-energy")
UP = ((300.0, 1.0), (500.0, 2.0), (800.0, 5.0))
DOWN = ((-50.0, -4.0), (100.0, -2.0), (150.0, -1.0))


@pytest.mark.parametrize(
    ("up_price", "awarded_mw"),
    [
        (299.99, 0.0),  # below every point: not activated
        (300.0, 1.0),  # at the first point: activated (up price >= bid price)
        (400.0, 1.0),
        (499.99, 1.0),
        (500.0, 2.0),
        (799.99, 2.0),
        (800.0, 5.0),
        (20000.0, 5.0),  # above the last point: all of it
    ],
)
def test_regulating_up_clearing_by_hand(up_price: float, awarded_mw: float) -> None:
    bid = _bid("nordpool-dk1", "mfrr-energy", DK1_HOUR, UP, "up")
    row = {"rt_price_up": up_price, "rt_price_down": -9999.0}  # the down price is not read
    assert clear_rt_bid(bid, MFRR, row) == awarded_mw
    assert rt_clearing_price(bid, MFRR, row) == up_price


@pytest.mark.parametrize(
    ("down_price", "awarded_mw"),
    [
        (150.01, 0.0),  # above every point: not activated
        (150.0, -1.0),  # at the highest point: activated (down price <= bid price)
        (120.0, -1.0),
        (100.01, -1.0),
        (100.0, -2.0),
        (0.0, -2.0),
        (-49.99, -2.0),
        (-50.0, -4.0),
        (-3000.0, -4.0),  # below the lowest point: all of it
    ],
)
def test_regulating_down_clearing_by_hand(down_price: float, awarded_mw: float) -> None:
    bid = _bid("nordpool-dk1", "mfrr-energy", DK1_HOUR, DOWN, "down")
    row = {"rt_price_up": 99999.0, "rt_price_down": down_price}  # the up price is not read
    assert clear_rt_bid(bid, MFRR, row) == awarded_mw
    assert rt_clearing_price(bid, MFRR, row) == down_price


def test_clearing_refuses_missing_or_nan_prices_and_the_wrong_product() -> None:
    bid = _bid("nordpool-dk1", "mfrr-energy", DK1_HOUR, UP, "up")
    with pytest.raises(InputError, match="'rt_price_up', not in the price row"):
        clear_rt_bid(bid, MFRR, {"rt_price": 10.0})
    with pytest.raises(InputError, match="must be finite"):
        clear_rt_bid(bid, MFRR, {"rt_price_up": float("nan"), "rt_price_down": 1.0})
    with pytest.raises(InputError, match="cleared as 'rt-energy'"):
        clear_rt_bid(bid, ERCOT_PRODUCT, {"rt_price": 10.0})


def test_regulating_bids_clear_on_real_dk1_prices_across_the_fall_back(shared_data: Path) -> None:
    prices = import_prices(
        shared_data / "prices" / "nordpool_dk1_dk2_spot_regulating_2016_hourly.csv",
        "nordpool-regulating", DK1, zone="DK1",
    ).prices.frame
    day = dt.date(2016, 10, 30)
    rules = DK1.rules_on(day)
    product = rules.rt_product("mfrr-energy")
    assert set(product.price_columns) <= set(prices.columns)  # has_price_data is true
    periods = rules.rt_periods("mfrr-energy", day)
    assert len(periods) == 25
    assert set(periods) <= set(prices.index)
    # 00/01/02 UTC = 02:00 CEST, 02:00 CET, 03:00 CET; the file's up prices there are
    # 238.37, 237.99, 267.04 DKK/MWh and the down prices 193.37 three times (03 UTC: 239.18).
    starts = [_utc(2016, 10, 30, h) for h in (0, 1, 2, 3)]
    up = [_bid("nordpool-dk1", "mfrr-energy", t, ((240.0, 1.0), (260.0, 3.0)), "up") for t in starts]
    down = [_bid("nordpool-dk1", "mfrr-energy", t, ((190.0, -2.0), (200.0, -1.0)), "down")
            for t in starts]
    for bid in up + down:
        check_rt_submission(bid, rules, "mfrr-energy", bid.period_start - dt.timedelta(hours=1))
    rows = [prices.loc[t].to_dict() for t in starts]
    assert [clear_rt_bid(b, product, r) for b, r in zip(up, rows, strict=True)] == [
        0.0, 0.0, 3.0, 3.0,
    ]
    assert [clear_rt_bid(b, product, r) for b, r in zip(down, rows, strict=True)] == [
        -1.0, -1.0, -1.0, 0.0,
    ]


# --------------------------------------------------------------------------- the property

prices_st = st.integers(min_value=-30000, max_value=600000).map(lambda c: c / 100)  # -300..6000
lots_st = st.integers(min_value=-50, max_value=50).map(lambda n: n / 10)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    points=st.lists(st.tuples(prices_st, lots_st), min_size=1, max_size=12),
    ordered=st.booleans(),
)
def test_a_curve_passing_check_rt_bid_is_monotone_and_within_floor_and_cap(
    points: list[tuple[float, float]], ordered: bool
) -> None:
    if ordered:  # sorting prices and quantities apart makes many curves valid; the rest refused
        points = list(zip(sorted(p for p, _ in points), sorted(q for _, q in points), strict=True))
    bid = _ercot(tuple(points))
    refused: str | None = None
    try:
        check_rt_bid(bid, ERCOT_RULES)
    except MarketRuleError as exc:
        refused = exc.rule
    if refused is not None:
        assert refused in PRODUCTS["real_time"].curve_rules
        return
    prices = [p for p, _ in points]
    quantities = [q for _, q in points]
    assert len(points) <= ERCOT_PRODUCT.max_segments
    assert all(b > a for a, b in itertools.pairwise(prices))
    assert all(b >= a for a, b in itertools.pairwise(quantities))
    assert all(ERCOT_PRODUCT.floor_per_mwh <= p <= ERCOT_PRODUCT.cap_per_mwh for p in prices)
    # ... and its award never falls as the realised price rises.
    awards = [clear_rt_bid(bid, ERCOT_PRODUCT, {"rt_price": x}) for x in (-300.0, *prices, 6000.0)]
    assert awards == sorted(awards)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(1, 500), st.integers(0, 5)), min_size=1, max_size=10
    ),
    price=st.integers(-1000, 30000).map(float),
    direction=st.sampled_from(["up", "down"]),
)
def test_a_regulating_award_is_the_sum_of_the_activated_price_steps(
    steps: list[tuple[int, int]], price: float, direction: str
) -> None:
    # Build a valid cumulative curve from increments, then compare with activating each
    # increment on its own: up where price >= its price, down where price <= its price.
    prices: list[float] = []
    increments: list[float] = []
    for gap, mw in steps:
        prices.append((prices[-1] if prices else 0.0) + float(gap))
        increments.append(float(mw))
    if direction == "up":
        cumulative = [sum(increments[: i + 1]) for i in range(len(increments))]
        expected = sum(m for p, m in zip(prices, increments, strict=True) if price >= p)
    else:
        cumulative = [-sum(increments[i:]) for i in range(len(increments))]
        expected = -sum(m for p, m in zip(prices, increments, strict=True) if price <= p)
    bid = _bid("nordpool-dk1", "mfrr-energy", DK1_HOUR, tuple(zip(prices, cumulative, strict=True)),
               direction)
    check_rt_bid(bid, DK1_RULES)
    row = {"rt_price_up": price, "rt_price_down": price}
    assert clear_rt_bid(bid, MFRR, row) == pytest.approx(expected)


# --------------------------------------------------------------------------- bad files


ERCOT_TEXT = (MARKETS / "ercot-houston.toml").read_text("utf-8")
DE_TEXT = (MARKETS / "epex-de-lu.toml").read_text("utf-8")


def _last(text: str, old: str, new: str) -> str:
    head, _, tail = text.rpartition(old)
    return head + new + tail


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        (ERCOT_TEXT.replace('gate_anchor = "hour"\n', "", 1),
         "real_time_products[0].gate_anchor = None", "is required for kind = 'energy_offer'"),
        (ERCOT_TEXT.replace("cap_per_mwh = 9000.0 ", "cap_per_mwh = -250.0 ", 1),
         "real_time_products[0].floor_per_mwh = -250.0", "must be < cap_per_mwh = -250"),
        (ERCOT_TEXT.replace('kind = "energy_offer"', 'kind = "intraday"', 1),
         "real_time_products[0].kind = 'intraday'", "must be one of 'energy_offer', "),
        (_last(ERCOT_TEXT, "effective_date = 2022-01-01", "effective_date = 2015-06-01"),
         "real_time_products[1].effective_date = '2015-06-01'",
         "product 'rt-energy' has two versions on this date (also real_time_products[0])"),
        (_last(_last(ERCOT_TEXT, 'kind = "energy_offer"', 'kind = "regulating"'),
               'price_columns = ["rt_price"]', 'price_columns = ["rt_price_up", "rt_price_down"]'),
         "real_time_products[1].kind = 'regulating'",
         "product 'rt-energy' has kind 'energy_offer' in real_time_products[0]"),
        (ERCOT_TEXT.replace("period_minutes = 60 ", "period_minutes = 7 ", 1),
         "real_time_products[0].period_minutes = 7", "must divide a day"),
        (ERCOT_TEXT.replace('price_columns = ["rt_price"]', 'price_columns = ["da_price"]', 1),
         "real_time_products[0].price_columns = ['da_price']", "has_price_data = true needs"),
        (ERCOT_TEXT.replace('gate_anchor = "hour"', 'gate_anchor = "hour"\nsessions = [{name = "X", '
                            "gate_local = 10:00:00, gate_day_offset = -1, delivery_start_local = "
                            "00:00:00, delivery_end_local = 00:00:00}]", 1),
         "real_time_products[0].sessions = '[...]'", "only an intraday_auction has sessions"),
        (DE_TEXT.replace('kind = "intraday_auction"', 'kind = "intraday_auction"\n'
                         'gate_anchor = "hour"', 1),
         "real_time_products[0].gate_anchor = 'hour'", "not allowed for an intraday_auction"),
        (DE_TEXT.replace("delivery_start_local = 12:00:00", "delivery_start_local = 12:10:00"),
         "real_time_products[2].sessions[0].delivery_start_local = '12:10:00'",
         "must be on a 15-min period boundary"),
        (DE_TEXT.replace("gate_local = 10:00:00", "gate_local = 12:30:00"),
         "real_time_products[2].sessions[0].gate_local = '12:30:00'",
         "must be before the delivery window starts"),
        (re.sub(r'\[\[real_time_products\.sessions\]\]\nname = "IDA1"\n(?:.*\n){4}', "", DE_TEXT),
         "real_time_products[0].sessions = None", "needs at least one session"),
    ],
)
def test_a_bad_product_gives_one_line_naming_file_and_field(
    tmp_path: Path, text: str, field: str, message: str
) -> None:
    path = tmp_path / "market.toml"
    path.write_text(text, "utf-8")
    with pytest.raises(ConfigError) as info:
        load_market(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: {field}: "), lines[0]
    assert message in lines[0]

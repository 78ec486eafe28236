"""The real-time split of settlement and the deviation-profit claw-back, by hand.

Settlement (:mod:`vpp.runtime.settlement`): the day-ahead award at the
day-ahead price, a real-time award at its clearing price, only the remaining
deviation by the imbalance rule, and the claw-back (:mod:`vpp.clawback`)
inside the imbalance revenue. Every expected number is worked out in the
comments. The end-to-end tests run the shipped market with its commented-out
claw-back switched on, on the shipped CN province A prices.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlmodel import select

from strategies import StrategyOptions
from tests.vpp.daemon_support import DAY, load, make_config, prices
from vpp.backtest import run as backtest_run
from vpp.backtest.run import BacktestOptions, simulate
from vpp.clawback import (
    ClawbackTerms,
    clawback_band_mwh,
    clawback_per_mwh,
    clawback_revenue,
    deviation_spread_per_mwh,
)
from vpp.config.models import SettlementRule
from vpp.errors import InputError
from vpp.runtime.metering import settle_day
from vpp.runtime.operator import MarketPortfolio, Operator
from vpp.runtime.recording import MemoryRecorder, StoreRecorder
from vpp.runtime.settlement import SETTLEMENT_COLUMNS, deviation_price_note, settle, settle_parks
from vpp.store import SettlementRecord, Store

HOURS = pd.date_range("2016-06-01", periods=4, freq="1h", tz="UTC")
QUARTERS = pd.date_range("2025-05-01 16:00", periods=2, freq="15min", tz="UTC")
TWO_PRICE = pd.DataFrame(
    {"da_price": 100.0, "rt_price_up": 150.0, "rt_price_down": 60.0}, index=HOURS
)


def _series(values: list[float], index: pd.DatetimeIndex = HOURS) -> pd.Series:
    return pd.Series(values, index=index, dtype=float)


# --------------------------------------------------------------------------- the split


def test_two_price_awarded_deviation_settles_at_its_clearing_price_only_the_rest_at_up_down() -> None:
    out = settle(
        _series([1.0, 1.0, 0.0, 0.0]),  # DA award [MW]
        _series([1.5, 0.2, 0.5, -0.4]),  # actual [MW]
        TWO_PRICE,
        "two_price_imbalance",
        1.0,
        rt_award_mw=_series([0.5, -0.5, 0.3, 0.0]),
        rt_clearing_price=_series([120.0, 90.0, 130.0, 70.0]),
    )
    # h0: the 0.5 MW above the DA award is awarded in real time: 0.5 * 120, nothing left over.
    # h1: RT award -0.5 at 90 = -45; remaining 0.2 - 1 + 0.5 = -0.3 short at the up price 150.
    # h2: RT award 0.3 at 130 = 39; remaining 0.2 long at the down price 60 = 12.
    # h3: no award at all: 0.4 short at the up price = -60.
    assert out["da_revenue"].tolist() == pytest.approx([100.0, 100.0, 0.0, 0.0])
    assert out["rt_bid_revenue"].tolist() == pytest.approx([60.0, -45.0, 39.0, 0.0])
    assert out["imbalance_revenue"].tolist() == pytest.approx([0.0, -45.0, 12.0, -60.0])
    assert out["rt_revenue"].tolist() == pytest.approx([60.0, -90.0, 51.0, -60.0])
    assert out["imbalance_mwh"].tolist() == pytest.approx([0.0, -0.3, 0.2, -0.4])
    assert out["rt_award_mwh"].tolist() == pytest.approx([0.5, -0.5, 0.3, 0.0])
    assert out["clawback_revenue"].tolist() == [0.0] * 4
    assert list(out.columns) == list(SETTLEMENT_COLUMNS)
    # The same delivery without the real-time award: h0's 0.5 MWh surplus gets the down price.
    unawarded = settle(
        _series([1.0, 1.0, 0.0, 0.0]), _series([1.5, 0.2, 0.5, -0.4]), TWO_PRICE,
        "two_price_imbalance", 1.0,
    )
    assert unawarded["imbalance_revenue"].tolist() == pytest.approx([30.0, -120.0, 30.0, -60.0])
    assert unawarded["rt_bid_revenue"].tolist() == [0.0] * 4
    assert unawarded["rt_revenue"].equals(unawarded["imbalance_revenue"])


def test_two_settlement_split_by_hand() -> None:
    frame = pd.DataFrame({"da_price": [300.0, 200.0], "rt_price": [350.0, 180.0]}, index=QUARTERS)
    out = settle(
        _series([1.0, 0.0], QUARTERS),
        _series([1.2, -0.5], QUARTERS),
        frame,
        "two_settlement",
        0.25,
        rt_award_mw=_series([0.4, -0.2], QUARTERS),
        rt_clearing_price=_series([340.0, 190.0], QUARTERS),
    )
    # q0: DA 1 * .25 * 300 = 75; RT award .4 * .25 * 340 = 34; rest (1.2 - 1 - .4) * .25 = -.05
    #     MWh at the RT price 350 = -17.5.   q1: RT award -.2 * .25 * 190 = -9.5;
    #     rest (-.5 + .2) * .25 = -.075 MWh at 180 = -13.5.
    assert out["da_revenue"].tolist() == pytest.approx([75.0, 0.0])
    assert out["rt_bid_revenue"].tolist() == pytest.approx([34.0, -9.5])
    assert out["imbalance_revenue"].tolist() == pytest.approx([-17.5, -13.5])
    assert out["rt_revenue"].tolist() == pytest.approx([16.5, -23.0])
    assert out["imbalance_mwh"].tolist() == pytest.approx([-0.05, -0.075])


def test_a_real_time_award_needs_its_clearing_price() -> None:
    frame = pd.DataFrame({"da_price": 1.0, "rt_price": 1.0}, index=QUARTERS)
    zero, one = _series([0.0, 0.0], QUARTERS), _series([0.0, 1.0], QUARTERS)
    with pytest.raises(InputError, match="needs its rt_clearing_price"):
        settle(zero, one, frame, "two_settlement", 0.25, rt_award_mw=one)
    with pytest.raises(InputError, match=r"16:15:00.*without a finite clearing price"):
        settle(zero, one, frame, "two_settlement", 0.25, rt_award_mw=one,
               rt_clearing_price=_series([5.0, np.nan], QUARTERS))
    # No award where the price is missing: nothing to price.
    out = settle(zero, one, frame, "two_settlement", 0.25, rt_award_mw=_series([1.0, 0.0], QUARTERS),
                 rt_clearing_price=_series([5.0, np.nan], QUARTERS))
    assert out["rt_bid_revenue"].tolist() == pytest.approx([1.25, 0.0])


# --------------------------------------------------------------------------- claw-back


TERMS = ClawbackTerms(tolerance_fraction=0.1, tolerance_min_mw=0.1, share=0.5)


@pytest.mark.parametrize(
    ("deviation", "award", "spread", "expected"),
    [
        (1.0, 10.0, 50.0, 0.0),  # at the band (10 % of 10 MWh): nothing beyond it
        (0.5, 10.0, 50.0, 0.0),  # inside the band
        (2.0, 10.0, 50.0, -25.0),  # profit 100, half of it beyond the band, share .5
        (-2.0, 10.0, -50.0, -25.0),  # short while RT < DA: bought back cheaper, profit 100
        (2.0, 10.0, -50.0, 0.0),  # a loss (long, RT below DA) is never refunded
        (-2.0, 10.0, 50.0, 0.0),  # a loss (short, RT above DA)
        (0.5, 0.0, 20.0, -4.0),  # no award: band 0.1 MWh; profit 10 * (0.4 / 0.5) * .5
        (3.0, -10.0, 10.0, -10.0),  # a buying award has a band too: 30 * (2 / 3) * .5
        (0.0, 0.0, 20.0, 0.0),  # nothing deviates
    ],
)
def test_clawback_by_hand(deviation: float, award: float, spread: float, expected: float) -> None:
    got = clawback_revenue(np.array([deviation]), np.array([award]), np.array([spread]), TERMS, 1.0)
    assert got.tolist() == pytest.approx([expected])
    per_mwh = clawback_per_mwh(np.array([deviation]), np.array([award]), np.array([spread]), TERMS, 1.0)
    assert per_mwh.tolist() == pytest.approx([expected / abs(deviation) if deviation else 0.0])


def test_the_band_floor_is_mean_power_over_the_interval() -> None:
    assert clawback_band_mwh(np.array([0.0, 1.0, 4.0]), TERMS, 0.25).tolist() == pytest.approx(
        [0.025, 0.1, 0.4]  # max(10 % of the award, 0.1 MW * 0.25 h)
    )
    assert clawback_revenue([1.0], [1.0], [5.0], None, 1.0).tolist() == [0.0]  # no terms


def test_settle_puts_the_clawback_inside_imbalance_and_rt_revenue() -> None:
    frame = pd.DataFrame({"da_price": [300.0, 300.0], "rt_price": [400.0, 200.0]}, index=QUARTERS)
    terms = ClawbackTerms(tolerance_fraction=0.1, tolerance_min_mw=0.0, share=1.0)
    out = settle(_series([4.0, 4.0], QUARTERS), _series([6.0, 2.0], QUARTERS), frame,
                 "two_settlement", 0.25, clawback=terms)
    # Award 1 MWh per quarter, band 0.1 MWh. q0: +0.5 MWh at 400 (spread +100, profit 50), 0.4
    # of 0.5 beyond the band: -40. q1: -0.5 MWh at 200 (bought back 100 below DA, profit 50): -40.
    assert out["clawback_revenue"].tolist() == pytest.approx([-40.0, -40.0])
    assert out["imbalance_revenue"].tolist() == pytest.approx([200.0 - 40.0, -100.0 - 40.0])
    assert out["rt_revenue"].tolist() == pytest.approx(out["imbalance_revenue"].tolist())


def test_two_price_clawback_follows_the_price_the_deviation_settles_at() -> None:
    terms = ClawbackTerms(tolerance_fraction=0.0, tolerance_min_mw=0.0, share=1.0)
    frame = pd.DataFrame(
        {"da_price": 100.0, "rt_price_up": [150.0, 150.0, 90.0, 150.0],
         "rt_price_down": [60.0, 60.0, 60.0, 110.0]},
        index=HOURS,
    )
    out = settle(_series([0.0] * 4), _series([1.0, -1.0, -1.0, 1.0]), frame,
                 "two_price_imbalance", 1.0, clawback=terms)
    # h0 long at down 60 and h1 short at up 150: losses, nothing back. h2 short at up 90: bought
    # 10 below DA, profit 10 recovered. h3 long at down 110: sold 10 above DA, recovered.
    assert out["clawback_revenue"].tolist() == pytest.approx([0.0, 0.0, -10.0, -10.0])
    assert out["imbalance_revenue"].tolist() == pytest.approx([60.0, -150.0, -100.0, 100.0])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-5, 5), st.floats(-5, 5), st.floats(-300, 300)),
        min_size=1, max_size=24,
    ),
    st.floats(0, 1), st.floats(0, 2), st.floats(0.01, 1),
)
def test_clawback_takes_back_at_most_the_shared_profit_and_nothing_inside_the_band(
    rows: list[tuple[float, float, float]], fraction: float, floor_mw: float, share: float
) -> None:
    d, award, spread = (np.array(c) for c in zip(*rows, strict=True))
    terms = ClawbackTerms(fraction, floor_mw, share)
    got = clawback_revenue(d, award, spread, terms, 0.25)
    profit = np.maximum(d * spread, 0.0)
    assert (got <= 0).all()
    assert (got >= -share * profit - 1e-9).all()
    inside = np.abs(d) <= clawback_band_mwh(award, terms, 0.25)
    assert (got[inside] == 0).all()


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-5, 5), st.floats(-100, 300), st.floats(0, 200), st.floats(0, 200)),
             min_size=1, max_size=24),
)
def test_two_price_with_down_below_da_below_up_never_claws_back(
    rows: list[tuple[float, float, float, float]],
) -> None:
    """Where regulation only ever makes a deviation worse, there is no profit to take back."""
    d, da, below, above = (np.array(c) for c in zip(*rows, strict=True))
    spread = deviation_spread_per_mwh(d, da, rt_price_up=da + above, rt_price_down=da - below)
    terms = ClawbackTerms(0.0, 0.0, 1.0)
    assert (clawback_revenue(d, np.zeros_like(d), spread, terms, 1.0) == 0).all()


# --------------------------------------------------------------------------- parks add up


@pytest.mark.parametrize(
    ("rule", "frame"),
    [
        ("two_price_imbalance", TWO_PRICE.assign(rt_price_down=[110.0, 60.0, 60.0, 60.0])),
        ("two_settlement", pd.DataFrame(
            {"da_price": 100.0, "rt_price": [120.0, 70.0, 100.0, 300.0]}, index=HOURS)),
    ],
)
def test_park_rows_add_up_to_the_portfolio_with_rt_awards_and_clawback(
    rule: str, frame: pd.DataFrame
) -> None:
    award_kw = pd.DataFrame({"a": [1000.0, 0.0, 500.0, 0.0], "b": [0.0, 2000.0, 500.0, 0.0]}, index=HOURS)
    rt_kw = pd.DataFrame({"a": [200.0, 0.0, 0.0, -100.0], "b": [0.0, 100.0, 0.0, 0.0]}, index=HOURS)
    clearing = _series([110.0, 95.0, np.nan, 250.0])  # no award in h2: no price needed
    energy = {"a": np.array([2500.0, -400.0, 300.0, 800.0]), "b": np.array([-300.0, 2600.0, 900.0, 0.0])}
    wear = {"a": np.full(4, 1.0), "b": np.zeros(4)}
    terms = ClawbackTerms(tolerance_fraction=0.1, tolerance_min_mw=0.05, share=0.8)
    rows = settle_parks("2016-06-01", "m", ["a", "b"], award_kw, energy, wear, frame, rule, 1.0,
                        park_rt_award_kw=rt_kw, rt_clearing_price=clearing, clawback=terms)
    portfolio = settle(
        _series(award_kw.sum(axis=1).div(1000).tolist()),
        _series((energy["a"] + energy["b"]) / 1000),
        frame, rule, 1.0,
        rt_award_mw=_series(rt_kw.sum(axis=1).div(1000).tolist()),
        rt_clearing_price=clearing,
        clawback=terms,
    )
    for column in ("da_revenue", "rt_bid_revenue", "imbalance_revenue", "clawback_revenue", "rt_revenue"):
        assert sum(r[column] for r in rows) == pytest.approx(portfolio[column].sum(), abs=1e-9), column
    assert portfolio["clawback_revenue"].sum() < 0  # the case claws something back
    for r in rows:
        assert r["rt_revenue"] == pytest.approx(r["rt_bid_revenue"] + r["imbalance_revenue"])
        assert r["net_revenue"] == pytest.approx(r["da_revenue"] + r["rt_revenue"] - r["degradation_cost"])
    # Park a: RT award 0.2 MWh at 110 and 0.1 MWh sold back at 250.
    assert rows[0]["rt_bid_revenue"] == pytest.approx(0.2 * 110 - 0.1 * 250)
    assert rows[0]["rt_awarded_mwh"] == pytest.approx(0.3)


# --------------------------------------------------------------------------- config


def _rule(**extra: Any) -> SettlementRule:
    return SettlementRule(rule="two_settlement", source="test rules", effective_date=dt.date(2024, 1, 1), **extra)


def test_the_clawback_config_fields() -> None:
    assert ClawbackTerms.of(_rule()) is None
    terms = ClawbackTerms.of(_rule(clawback_tolerance_fraction=0.1, clawback_tolerance_min_mw=0.1))
    assert terms == ClawbackTerms(0.1, 0.1, 1.0)
    with pytest.raises(ValidationError, match="clawback_share given without clawback_tolerance_fraction"):
        _rule(clawback_share=0.5)
    with pytest.raises(ValidationError, match="clawback_share"):
        _rule(clawback_tolerance_fraction=0.1, clawback_share=0.0)
    with pytest.raises(ValidationError, match="clawback_tolerance_fraction"):
        _rule(clawback_tolerance_fraction=-0.1)


def test_deviation_price_states_the_rule_really_used() -> None:
    two_price = SettlementRule(rule="two_price_imbalance", source="test rules",
                               effective_date=dt.date(2024, 1, 1))
    assert deviation_price_note(_rule(), ["da_price", "rt_price"]) == "rt_price (two_settlement)"
    assert deviation_price_note(two_price, ["da_price", "rt_price_up", "rt_price_down"]) == (
        "rt_price_up/rt_price_down (two_price_imbalance)"
    )
    assert deviation_price_note(_rule(), ["da_price"]) == (
        "da_price (two_settlement; the price file has no real-time prices)"
    )
    assert deviation_price_note(two_price, ["da_price", "rt_price_up"]) == (
        "rt_price_up/da_price (two_price_imbalance; the price file has no rt_price_down)"
    )
    clawed = deviation_price_note(_rule(clawback_tolerance_fraction=0.1), ["da_price", "rt_price"])
    assert clawed.startswith("rt_price (two_settlement) with claw-back of 100% ")
    assert "beyond 10% of the DA award" in clawed
    assert clawed.endswith("(verify)")


# --------------------------------------------------------------------------- end to end


def _clawback_on(config: Path) -> Path:
    """Switch on the claw-back shipped commented out in the market file."""
    path = config / "markets" / "cn-province-a.toml"
    text, n = re.subn(r"^# (clawback_\w+ = )", r"\1", path.read_text(encoding="utf-8"), flags=re.M)
    assert n == 4, "the shipped market file should carry the four claw-back lines commented out"
    path.write_text(text, encoding="utf-8")
    return config


def _simulated_day(config: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, dict[str, Any]]:
    cfg = load(config)
    frame = prices(cfg)
    portfolio = MarketPortfolio.from_config(cfg, frame.market_id)
    kept: dict[str, Any] = {}

    class KeptOperator(Operator):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            kept["operator"] = self

    class KeptRecorder(MemoryRecorder):
        def __init__(self) -> None:
            super().__init__()
            kept["recorder"] = self

    monkeypatch.setattr(backtest_run, "Operator", KeptOperator)
    monkeypatch.setattr(backtest_run, "MemoryRecorder", KeptRecorder)
    result = simulate(portfolio, frame, [DAY], BacktestOptions(
        StrategyOptions(name="deterministic"), safety_margin=dt.timedelta(minutes=30), baselines=False),
        keep_days=True)  # the daemon settles the day from the plan and readings kept here
    return result, kept


def test_a_day_with_the_clawback_on_settles_it_in_the_backtest_and_the_daemon_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped prices of 2025-05-08, the claw-back switched on; then the same day off."""
    on, kept = _simulated_day(_clawback_on(make_config(tmp_path / "on")), monkeypatch)
    off, _ = _simulated_day(make_config(tmp_path / "off"), monkeypatch)
    p_on, p_off = on.portfolio, off.portfolio
    # The strategy does not (yet) see the claw-back: the same dispatch, settled differently.
    assert p_on["actual_mw"].to_numpy() == pytest.approx(p_off["actual_mw"].to_numpy())
    assert p_on["da_revenue"].sum() == pytest.approx(p_off["da_revenue"].sum())
    clawed = p_on["clawback_revenue"].sum()
    assert clawed < 0, "the day deviates beyond 10 % of its award with spread profit"
    assert p_off["clawback_revenue"].sum() == 0
    assert p_on["imbalance_revenue"].sum() == pytest.approx(p_off["imbalance_revenue"].sum() + clawed)
    assert p_on["rt_revenue"].to_numpy() == pytest.approx(
        (p_on["rt_bid_revenue"] + p_on["imbalance_revenue"]).to_numpy()
    )
    # The claw-back by the pure function on the portfolio's own intervals (two-settlement).
    dt_h = 0.25
    d = (p_on["actual_mw"] - p_on["award_mw"]).to_numpy() * dt_h
    spread = deviation_spread_per_mwh(d, p_on["da_price"], rt_price=p_on["rt_price"])
    by_hand = clawback_revenue(d, p_on["award_mw"].to_numpy() * dt_h, spread,
                               ClawbackTerms(0.10, 0.1, 1.0), dt_h)
    assert p_on["clawback_revenue"].to_numpy() == pytest.approx(by_hand, abs=1e-9)
    # Park rows add up to the portfolio.
    assert on.settlement["clawback_revenue"].sum() == pytest.approx(clawed, rel=1e-9)
    # The daemon settles the backtest's own readings to the same rows, and stores them.
    store = Store(f"sqlite:///{tmp_path / 'daemon.db'}")
    StoreRecorder(store).record_telemetry(kept["recorder"].telemetry)
    rows = pd.DataFrame(settle_day(kept["operator"], store, DAY)).set_index("park_id").sort_index()
    expected = on.settlement.set_index("park_id").sort_index()
    for column in ("da_revenue", "rt_bid_revenue", "imbalance_revenue", "clawback_revenue",
                   "rt_revenue", "net_revenue", "rt_awarded_mwh", "imbalance_mwh"):
        assert rows[column].to_numpy() == pytest.approx(expected[column].to_numpy(), rel=1e-9, abs=1e-9)
    with store.session() as session:
        stored = {r.park_id: r for r in session.exec(select(SettlementRecord)).all()}
    for park_id, row in rows.iterrows():
        record = stored[str(park_id)]
        assert record.clawback_revenue == pytest.approx(row["clawback_revenue"])
        assert record.imbalance_revenue == pytest.approx(row["imbalance_revenue"])
        assert record.rt_bid_revenue == 0.0
        assert record.rt_revenue == pytest.approx(record.rt_bid_revenue + record.imbalance_revenue)

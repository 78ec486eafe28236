"""Deviation prices from the settlement rule: hand-computed spreads, no look-ahead, and the
real-time plan holding its position under the two-price rule where re-arbitrage cannot pay."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strategies import RealTimeDispatcher, StrategyOptions, get_strategy
from strategies.imbalance import HALF_LIFE_H, SHRINK_DAYS, deviation_prices, regulating_spreads
from strategies.state import ParkInputs
from tests.strategies.conftest import battery, make_park, utc_index
from vpp.awards import IntervalAward
from vpp.errors import InputError


def _history(days: int = 2) -> pd.DataFrame:
    """Hourly UTC history: spot 100; up-regulated to 130 at 05:00 every day; down-regulated
    to 80 at 10:00 on the first day only."""
    index = utc_index(24 * days, start="2025-05-01 00:00")
    frame = pd.DataFrame({"da_price": 100.0, "rt_price_up": 100.0, "rt_price_down": 100.0},
                         index=index)
    frame.loc[index.hour == 5, "rt_price_up"] = 130.0
    frame.loc[index[10], "rt_price_down"] = 80.0
    return frame


TARGET = pd.DatetimeIndex(
    pd.to_datetime(["2025-05-03 05:00", "2025-05-03 10:00", "2025-05-03 00:00"], utc=True)
)


def test_spreads_by_hour_shrunk_to_the_all_hours_mean_by_hand() -> None:
    up, down = regulating_spreads(_history(), TARGET, "UTC")
    w = 2 / (2 + SHRINK_DAYS)  # two days of history per hour
    up_all = 2 * 30 / 48  # 30 above spot in 2 of 48 hours
    down_all = 20 / 48
    # The latest published hour (23:00, ends 00:00 on the 3rd) had no regulation: its spread 0
    # fades out with the lead time, 5 h, 10 h and 0 h.
    keep = 1 - 2.0 ** (-np.array([5.0, 10.0, 0.0]) / HALF_LIFE_H)
    assert up == pytest.approx(
        keep * [w * 30 + (1 - w) * up_all, (1 - w) * up_all, (1 - w) * up_all])
    assert down == pytest.approx(
        keep * [(1 - w) * down_all, w * 10 + (1 - w) * down_all, (1 - w) * down_all]
    )


def test_the_latest_regulation_state_persists_for_a_while() -> None:
    history = _history()
    history.loc[history.index[-1], "rt_price_up"] = 160.0  # up-regulated in the last hour
    first, later = pd.Timestamp("2025-05-03 00:00", tz="UTC"), pd.Timestamp("2025-05-03 12:00",
                                                                            tz="UTC")
    up, _ = regulating_spreads(history, pd.DatetimeIndex([first, later]), "UTC")
    base, _ = regulating_spreads(_history(), pd.DatetimeIndex([first, later]), "UTC")
    assert up[0] > 50  # the next hour expects the system still short
    # half a day later it is the usual spread again (its mean moved by the one spike only)
    assert up[1] - base[1] < 0.1 * (up[0] - base[0])


def test_only_history_before_the_target_and_within_the_lookback_is_read() -> None:
    history = _history(40)
    clean = regulating_spreads(history.loc[history.index >= TARGET[0] - pd.Timedelta(days=28)]
                               .loc[lambda f: f.index < TARGET[0]], TARGET, "UTC")
    spy = history.copy()
    spy.loc[spy.index >= TARGET[0], "rt_price_up"] = 1e6  # not published at decision time
    spy.loc[spy.index < TARGET[0] - pd.Timedelta(days=28), "rt_price_up"] = 1e6  # too old
    for got, want in zip(regulating_spreads(spy, TARGET, "UTC"), clean, strict=True):
        assert got == pytest.approx(want)


def test_local_hours_follow_the_market_time_zone() -> None:
    # 05:00 UTC is 07:00 in Europe/Copenhagen in May: the spike belongs to local hour 7.
    target = pd.DatetimeIndex(pd.to_datetime(["2025-05-03 05:00"], utc=True))
    up_utc, _ = regulating_spreads(_history(), target, "UTC")
    up_cph, _ = regulating_spreads(_history(), target, "Europe/Copenhagen")
    assert up_utc == pytest.approx(up_cph)  # same instant, same hour of the local day
    shifted = pd.DatetimeIndex(pd.to_datetime(["2025-05-03 07:00"], utc=True))
    assert regulating_spreads(_history(), shifted, "Europe/Copenhagen")[0] < up_cph


def test_no_regulating_prices_gives_zero_spreads() -> None:
    history = _history()[["da_price"]]
    up, down = regulating_spreads(history, TARGET, "UTC")
    assert up.tolist() == down.tolist() == [0.0, 0.0, 0.0]
    early = regulating_spreads(_history(), utc_index(2, start="2025-04-01 00:00"), "UTC")
    assert [v.tolist() for v in early] == [[0.0, 0.0], [0.0, 0.0]]


def test_rules() -> None:
    forecast = np.array([50.0, 60.0, 70.0])
    linear = deviation_prices("two_settlement", forecast, _history(), TARGET, "UTC")
    assert linear.surplus_per_mwh.tolist() == linear.shortfall_per_mwh.tolist() == [50, 60, 70]
    two = deviation_prices("two_price_imbalance", forecast, _history(), TARGET, "UTC")
    up, down = regulating_spreads(_history(), TARGET, "UTC")
    assert two.surplus_per_mwh == pytest.approx(forecast - down)
    assert two.shortfall_per_mwh == pytest.approx(forecast + up)
    assert (two.surplus_per_mwh <= two.shortfall_per_mwh).all()
    with pytest.raises(InputError, match="unknown settlement rule 'pay_as_bid'"):
        deviation_prices("pay_as_bid", forecast, _history(), TARGET, "UTC")
    with pytest.raises(InputError, match="forecast has"):
        deviation_prices("two_settlement", forecast[:2], _history(), TARGET, "UTC")


def _two_hours(rule: str, history: pd.DataFrame) -> np.ndarray:
    """A lossless 1 MW / 2 MWh battery, half full, that must end half full, awarded nothing;
    the real-time forecast is 100 then 105: re-arbitrage earns 5 per MWh before spreads."""
    index = utc_index(2, start="2025-05-03 05:00")
    park = make_park(battery(soc_initial=0.5, soc_final="initial"))
    options = StrategyOptions(deviation_penalty_per_mwh=0.0)
    dispatcher = RealTimeDispatcher([park], {park.id: ParkInputs(index)}, 60, options,
                                    settlement_rule=rule)
    history = pd.concat([history, pd.DataFrame(
        {"da_price": [100.0, 105.0]}, index=index)])
    result = get_strategy(options).real_time(
        dispatcher, 0, None, IntervalAward.zero(index, [park.id]), history, "UTC"
    )
    return result.deviation_kw[park.id].to_numpy()


def test_two_price_rule_holds_the_position_where_single_price_re_arbitrages() -> None:
    # Single price: charge 1 MW at 100, sell it at 105 (a deviation both hours).
    assert _two_hours("two_settlement", _history()) == pytest.approx([-1000.0, 1000.0], abs=1e-6)
    # Two-price with the spreads of the history: buying at 05:00 UTC (up-regulated on both
    # days) is expected to cost 100 + 7.6, more than selling at 06:00 earns (105 - 0.3):
    # holding the award pays more.
    assert _two_hours("two_price_imbalance", _history()) == pytest.approx([0.0, 0.0], abs=1e-6)

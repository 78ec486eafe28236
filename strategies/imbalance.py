"""What a planned deviation from the award is worth, from the market's settlement rule.

The real-time re-optimisation (:mod:`strategies.real_time`) prices each
remaining interval's surplus (``net > award``, more sold or less bought) and
shortfall by :func:`deviation_prices`. The prices come from the settlement
rule of the market (``[settlement] rule`` of its config) and the price
history published at decision time, never from a hand-set constant:

``two_settlement``
    A deviation settles at the real-time price, so surplus and shortfall are
    both worth the real-time price forecast. Nothing is lost by deviating in
    expectation; the plan deviates where the forecast says it pays.
``two_price_imbalance``
    The Nordic two-price model: a surplus is paid the down-regulating price
    (at most the spot price) and a shortfall pays the up-regulating price (at
    least the spot price), so an unawarded deviation can only lose. Its
    expected cost per MWh is the mean regulating spread of the recent past,
    ``E[rt_price_up - da_price]`` for a shortfall and ``E[da_price -
    rt_price_down]`` for a surplus (both >= 0; zero in hours without
    regulation in that direction, which the data codes as the spot price),
    per market-local hour of day and shrunk towards the all-hours mean (the
    hour's mean weighs ``n / (n + SHRINK_DAYS)`` for ``n`` days of history).
    The surplus is worth ``forecast - E[down spread]``, the shortfall costs
    ``forecast + E[up spread]``: batteries hold the position when that is
    worth more than re-arbitraging the rest of the day.

    Regulation states persist for hours (a system short at 15:00 is likely
    short at 17:00), so the spreads of the next hours lean towards the latest
    published ones: ``E[t] = hourly + (latest - hourly) * 2 ** (-h / HALF_LIFE_H)``
    with ``h`` the hours from the end of the latest published interval to the
    start of ``t``.

Only history strictly before the first target interval and at most
``lookback_days`` days old is read, and only values the history holds (the
exchange's history is what was published by the decision time). Without
regulating prices in the history (a market day-ahead file only, or the very
first day) the spreads are zero, logged ``imbalance_spread_unknown``.

``deviation_penalty_per_mwh`` (:class:`~strategies.options.StrategyOptions`)
stays available as an extra cost per MWh of deviation on top of the rule; it
defaults to zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import structlog

from vpp.errors import InputError
from vpp.timeutil import zone

log = structlog.get_logger(__name__)

__all__ = [
    "HALF_LIFE_H",
    "LOOKBACK_DAYS",
    "SHRINK_DAYS",
    "DeviationPrices",
    "deviation_prices",
    "regulating_spreads",
]

#: Days of published regulating prices the expected spreads are estimated from.
LOOKBACK_DAYS = 28
#: Days of history at which an hour's own mean spread and the all-hours mean weigh the same.
SHRINK_DAYS = 7.0
#: How fast the latest published spread gives way to the hour's usual one [h].
HALF_LIFE_H = 2.0

RULES = ("two_settlement", "two_price_imbalance")


@dataclass(frozen=True)
class DeviationPrices:
    """Per remaining interval, the value of a planned deviation [currency/MWh].

    Attributes:
        surplus_per_mwh: what a MWh more sold (or less bought) than awarded earns.
        shortfall_per_mwh: what a MWh less sold (or more bought) than awarded costs.
        up_spread_per_mwh: the expected up-regulating spread used (0 under two_settlement).
        down_spread_per_mwh: the expected down-regulating spread used.
    """

    surplus_per_mwh: np.ndarray
    shortfall_per_mwh: np.ndarray
    up_spread_per_mwh: np.ndarray
    down_spread_per_mwh: np.ndarray


def regulating_spreads(
    history: pd.DataFrame,
    index: pd.DatetimeIndex,
    timezone: str,
    *,
    lookback_days: int = LOOKBACK_DAYS,
) -> tuple[np.ndarray, np.ndarray]:
    """Expected up and down regulating spreads for the intervals ``index`` (see module doc).

    Returns ``(up, down)`` [currency/MWh], each >= 0 and as long as ``index``.
    """
    if len(index) == 0:
        return np.zeros(0), np.zeros(0)
    if lookback_days < 1:
        raise InputError(f"lookback_days = {lookback_days}: must be >= 1")
    needed = {"da_price", "rt_price_up", "rt_price_down"}
    if not needed <= set(history.columns):
        log.info("imbalance_spread_unknown", reason="no regulating prices in history",
                 columns=sorted(needed - set(history.columns)))
        return np.zeros(len(index)), np.zeros(len(index))
    first = index[0]
    window = history.loc[
        (history.index < first) & (history.index >= first - pd.Timedelta(days=lookback_days)),
        ["da_price", "rt_price_up", "rt_price_down"],
    ].dropna()
    if window.empty:
        log.info("imbalance_spread_unknown", reason="no published regulating prices yet",
                 before=first.isoformat())
        return np.zeros(len(index)), np.zeros(len(index))
    up = (window["rt_price_up"] - window["da_price"]).clip(lower=0.0)
    down = (window["da_price"] - window["rt_price_down"]).clip(lower=0.0)
    local = pd.DatetimeIndex(window.index).tz_convert(zone(timezone))
    hours = local.hour
    days_h = pd.Series(local.date, index=window.index).groupby(hours).nunique()
    weight = days_h / (days_h + SHRINK_DAYS)
    target_hours = index.tz_convert(zone(timezone)).hour
    last = window.index[-1]
    step = window.index[-1] - window.index[-2] if len(window) > 1 else pd.Timedelta(hours=1)
    lead_h = ((index - (last + step)) / pd.Timedelta(hours=1)).to_numpy(float).clip(min=0.0)
    decay = np.power(2.0, -lead_h / HALF_LIFE_H)
    out = []
    for spread in (up, down):
        overall = float(spread.mean())
        shrunk = weight * spread.groupby(hours).mean() + (1 - weight) * overall
        values = shrunk.reindex(target_hours).to_numpy(float)
        usual = np.where(np.isfinite(values), values, overall)
        out.append(usual + (float(spread.iloc[-1]) - usual) * decay)
    return out[0], out[1]


def deviation_prices(
    rule: str,
    forecast_per_mwh: np.ndarray,
    history: pd.DataFrame,
    index: pd.DatetimeIndex,
    timezone: str,
    *,
    lookback_days: int = LOOKBACK_DAYS,
) -> DeviationPrices:
    """Surplus and shortfall prices of the intervals ``index`` under ``rule`` (module doc).

    ``forecast_per_mwh``: the real-time (spot) price forecast of ``index``.
    """
    forecast = np.asarray(forecast_per_mwh, dtype=float)
    if forecast.shape != (len(index),):
        raise InputError(
            f"deviation prices: forecast has {forecast.shape} values for {len(index)} intervals"
        )
    if rule == "two_settlement":
        zero = np.zeros(len(index))
        return DeviationPrices(forecast, forecast, zero, zero)
    if rule == "two_price_imbalance":
        up, down = regulating_spreads(history, index, timezone, lookback_days=lookback_days)
        return DeviationPrices(forecast - down, forecast + up, up, down)
    raise InputError(f"unknown settlement rule {rule!r}; known: {', '.join(RULES)}")

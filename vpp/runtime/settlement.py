"""Settlement of awards and actual delivery, exactly as the market would.

Per interval, with quantities in the sign convention of :mod:`vpp.units`
(> 0 sold) and ``dt_h`` the interval's length in hours:

* ``two_settlement``: ``award_mw * dt_h * da_price`` plus
  ``(actual_mw - award_mw) * dt_h * rt_price``.
* ``two_price_imbalance``: the day-ahead part as above; a surplus
  (``actual > award``) is paid at ``rt_price_down`` and a shortfall is
  charged at ``rt_price_up`` (the Nordic two-price model: the side that
  worsened the system's imbalance gets the regulating price, which the data
  sets equal to the spot price in hours without regulation in that direction).

Revenue is in market currency; a positive number is money received.

Missing prices, one policy for both drivers (:func:`settlement_prices`):

* a deviation price column the price source does not carry at all (a
  day-ahead-only market such as EPEX DE-LU) is the day-ahead price: the
  deviations settle at ``da_price``, logged ``settlement_price_fallback``
  (the backtest also says so in its summary as ``deviation_price``);
* a needed price the source carries but lacks for an interval of the day is
  never guessed: :class:`~vpp.LookAheadError` names the day, the column and
  the first such interval. The daemon retries the settlement later (the
  price is not published yet); a backtest stops (after the import checks
  every published day is complete, so this is a hole in the file).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import structlog

from vpp.errors import InputError, LookAheadError
from vpp.units import KW_PER_MW, KWH_PER_MWH

log = structlog.get_logger(__name__)

SETTLEMENT_COLUMNS = ("da_revenue", "rt_revenue", "imbalance_mwh")
#: The columns that price deviations, per settlement rule.
DEVIATION_PRICES = {
    "two_settlement": ("rt_price",),
    "two_price_imbalance": ("rt_price_up", "rt_price_down"),
}


def settlement_prices(
    prices: pd.DataFrame, index: pd.DatetimeIndex, rule: str, day: dt.date
) -> pd.DataFrame:
    """The prices that settle ``day`` on its intervals ``index`` (the module's missing-price policy).

    ``prices`` is the price source (the backtest's price file, the daemon's
    published history), any index. A deviation column the source does not
    carry is filled with ``da_price`` (logged ``settlement_price_fallback``);
    a needed value missing for an interval raises :class:`~vpp.LookAheadError`.
    """
    if rule not in DEVIATION_PRICES:
        raise InputError(f"unknown settlement rule {rule!r}")
    deviation = DEVIATION_PRICES[rule]
    frame = prices.reindex(index)
    absent = [c for c in deviation if c not in prices.columns]
    if absent and "da_price" in frame:
        frame = frame.copy()
        for column in absent:
            frame[column] = frame["da_price"]
        log.info("settlement_price_fallback", day=str(day), columns=absent, price="da_price")
    for column in ("da_price", *deviation):
        unknown = frame[column].isna() if column in frame else pd.Series(True, index=index)
        if unknown.any():
            raise LookAheadError(
                f"settlement of {day}: {column} is missing for {int(unknown.sum())} of "
                f"{len(index)} intervals, the first at {index[unknown.to_numpy()][0]}: not "
                "published yet, or a hole in the price file; a settlement never guesses a price"
            )
    return frame


def settle(
    award_mw: pd.Series,
    actual_mw: pd.Series,
    prices: pd.DataFrame,
    rule: str,
    dt_h: float,
) -> pd.DataFrame:
    """Settle aligned series of awards and actual mean power.

    ``prices`` must hold ``da_price`` and, for deviations, ``rt_price``
    (two_settlement) or ``rt_price_up``/``rt_price_down``
    (two_price_imbalance). Indexes must match exactly (no silent alignment).
    Returns ``da_revenue``, ``rt_revenue`` and ``imbalance_mwh`` per interval.
    """
    if not (award_mw.index.equals(actual_mw.index) and award_mw.index.equals(prices.index)):
        raise InputError("settle: award, actual and prices must share one index")
    deviation_mwh = (actual_mw - award_mw).to_numpy(float) * dt_h
    da_revenue = award_mw.to_numpy(float) * dt_h * prices["da_price"].to_numpy(float)
    if np.allclose(deviation_mwh, 0.0, atol=1e-9) and not any(
        c in prices for c in ("rt_price", "rt_price_up", "rt_price_down")
    ):
        # A day-ahead-only price file (e.g. EPEX DE-LU) settles exactly-delivered awards.
        rt_revenue = np.zeros_like(deviation_mwh)
    elif rule == "two_settlement":
        rt_price = _column(prices, "rt_price")
        rt_revenue = deviation_mwh * rt_price
    elif rule == "two_price_imbalance":
        up = _column(prices, "rt_price_up")
        down = _column(prices, "rt_price_down")
        rt_revenue = np.where(deviation_mwh >= 0, deviation_mwh * down, deviation_mwh * up)
    else:
        raise InputError(f"unknown settlement rule {rule!r}")
    out = pd.DataFrame(
        {"da_revenue": da_revenue, "rt_revenue": rt_revenue, "imbalance_mwh": deviation_mwh},
        index=award_mw.index,
    )
    if not np.isfinite(out.to_numpy()).all():
        raise InputError("settle: non-finite settlement (missing price in a settled interval?)")
    return out


def _column(prices: pd.DataFrame, name: str) -> np.ndarray:
    if name not in prices:
        raise InputError(f"settlement needs column {name!r}; the price file has {list(prices)}")
    return prices[name].to_numpy(float)


def settle_parks(
    day: str,
    market_id: str,
    park_ids: Sequence[str],
    park_award_kw: pd.DataFrame | None,
    park_energy_kwh: Mapping[str, np.ndarray],
    park_degradation: Mapping[str, np.ndarray],
    prices: pd.DataFrame,
    rule: str,
    dt_h: float,
) -> list[dict[str, Any]]:
    """One settlement row per park for one delivery day (the backtest's and the daemon's).

    ``park_award_kw``: each park's share of the award per interval [kW]
    (None: no award); ``park_energy_kwh``: energy each park delivered per
    interval (> 0 sold) [kWh]; ``park_degradation``: battery wear cost per
    interval [currency]; ``prices`` indexed like the award.
    """
    index = prices.index
    award_mw = {
        park_id: (
            park_award_kw[park_id].to_numpy(float) / KW_PER_MW
            if park_award_kw is not None
            else np.zeros(len(index))
        )
        for park_id in park_ids
    }
    actual_mw = {
        park_id: np.asarray(park_energy_kwh[park_id], dtype=float) / dt_h / KW_PER_MW
        for park_id in park_ids
    }
    # The portfolio is the market participant: its NET deviation sets the deviation price of
    # each interval (linear under two-settlement, up/down under two-price), and every park's
    # own deviation settles at that price, so the park rows add up to the portfolio's.
    net_deviation = sum((actual_mw[p] - award_mw[p] for p in park_ids), np.zeros(len(index)))
    portfolio = settle(
        pd.Series(0.0, index=index), pd.Series(net_deviation, index=index), prices, rule, dt_h
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        deviation_price = np.where(
            np.abs(net_deviation) > 1e-12,
            portfolio["rt_revenue"].to_numpy() / (net_deviation * dt_h),
            _linear_price(prices, rule),
        )
    rows: list[dict[str, Any]] = []
    for park_id in park_ids:
        energy = np.asarray(park_energy_kwh[park_id], dtype=float)
        deviation_mwh = (actual_mw[park_id] - award_mw[park_id]) * dt_h
        da = float(np.sum(award_mw[park_id] * dt_h * prices["da_price"].to_numpy(float)))
        rt = float(np.sum(deviation_mwh * deviation_price))
        wear = float(np.sum(park_degradation[park_id]))
        rows.append(
            {
                "day": day,
                "park_id": park_id,
                "market_id": market_id,
                "energy_sold_mwh": float(energy.clip(min=0).sum() / KWH_PER_MWH),
                "energy_bought_mwh": float(-energy.clip(max=0).sum() / KWH_PER_MWH),
                "da_revenue": da,
                "rt_revenue": rt,
                "degradation_cost": wear,
                "net_revenue": da + rt - wear,
                "imbalance_mwh": float(np.abs(deviation_mwh).sum()),
            }
        )
    return rows


def _linear_price(prices: pd.DataFrame, rule: str) -> np.ndarray:
    """The deviation price when the portfolio is balanced (its parks' deviations cancel)."""
    if rule == "two_settlement" and "rt_price" in prices:
        return _column(prices, "rt_price")
    if rule == "two_price_imbalance" and {"rt_price_up", "rt_price_down"} <= set(prices):
        return (_column(prices, "rt_price_up") + _column(prices, "rt_price_down")) / 2
    return _column(prices, "da_price")  # no deviation prices at all: nothing deviates net

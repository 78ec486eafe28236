"""Settlement of awards and actual delivery, exactly as the market would.

Per interval, with quantities in the sign convention of :mod:`vpp.units`
(> 0 sold) and ``dt_h`` the interval's length in hours, three parts:

* ``da_revenue`` = ``award_mw * dt_h * da_price`` (the day-ahead award);
* ``rt_bid_revenue`` = ``rt_award_mw * dt_h * rt_clearing_price`` (a
  real-time award at its own clearing price; zero while no real-time bids
  are made);
* ``imbalance_revenue``: the remaining deviation ``d = (actual_mw - award_mw
  - rt_award_mw) * dt_h`` [MWh] (``imbalance_mwh``) by the imbalance rule:

  - ``two_settlement``: ``d * rt_price``;
  - ``two_price_imbalance``: a surplus (``d > 0``) is paid at
    ``rt_price_down`` and a shortfall is charged at ``rt_price_up`` (the
    Nordic two-price model: the side that worsened the system's imbalance
    gets the regulating price, which the data sets equal to the spot price
    in hours without regulation in that direction);

  plus ``clawback_revenue`` (<= 0) where the market's ``[settlement]`` has a
  deviation-profit claw-back (超额获利回收, :mod:`vpp.clawback`: the spread
  profit ``d * (p_dev - da_price)`` of the deviation beyond the tolerance
  band, times the recovered share; a spread loss is never refunded).

``rt_revenue`` = ``rt_bid_revenue + imbalance_revenue`` (the real-time
total, as before the split), so ``net_revenue = da_revenue + rt_revenue -
degradation_cost``. Revenue is in market currency; a positive number is
money received, a negative one a cost.

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
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import structlog

from vpp.clawback import ClawbackTerms, clawback_revenue, deviation_spread_per_mwh
from vpp.config.models import SettlementRule
from vpp.errors import InputError, LookAheadError
from vpp.units import KW_PER_MW, KWH_PER_MWH

log = structlog.get_logger(__name__)

SETTLEMENT_COLUMNS = (
    "da_revenue",
    "rt_bid_revenue",
    "imbalance_revenue",
    "clawback_revenue",
    "rt_revenue",
    "rt_award_mwh",
    "imbalance_mwh",
)
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
    *,
    rt_award_mw: pd.Series | None = None,
    rt_clearing_price: pd.Series | None = None,
    clawback: ClawbackTerms | None = None,
) -> pd.DataFrame:
    """Settle aligned series of awards and actual mean power (the module's formulas).

    ``prices`` must hold ``da_price`` and, for deviations, ``rt_price``
    (two_settlement) or ``rt_price_up``/``rt_price_down``
    (two_price_imbalance). ``rt_award_mw``: the real-time award [MW] (None:
    none), settled at ``rt_clearing_price`` [currency/MWh] (needed where the
    award is not zero); ``clawback``: the market's claw-back terms (None: no
    claw-back). Indexes must match exactly (no silent alignment). Returns the
    columns of :data:`SETTLEMENT_COLUMNS` per interval.
    """
    index = award_mw.index
    if not (index.equals(actual_mw.index) and index.equals(prices.index)):
        raise InputError("settle: award, actual and prices must share one index")
    rt_award, rt_bid_revenue = _rt_award(rt_award_mw, rt_clearing_price, index, dt_h)
    deviation_mwh = (actual_mw - award_mw).to_numpy(float) * dt_h
    if rt_award_mw is not None:
        deviation_mwh = (
            actual_mw.to_numpy(float) - award_mw.to_numpy(float) - rt_award
        ) * dt_h
    da_revenue = award_mw.to_numpy(float) * dt_h * prices["da_price"].to_numpy(float)
    spread = np.zeros_like(deviation_mwh)
    if np.allclose(deviation_mwh, 0.0, atol=1e-9) and not any(
        c in prices for c in ("rt_price", "rt_price_up", "rt_price_down")
    ):
        # A day-ahead-only price file (e.g. EPEX DE-LU) settles exactly-delivered awards.
        imbalance = np.zeros_like(deviation_mwh)
    elif rule == "two_settlement":
        rt_price = _column(prices, "rt_price")
        imbalance = deviation_mwh * rt_price
        spread = deviation_spread_per_mwh(deviation_mwh, prices["da_price"], rt_price=rt_price)
    elif rule == "two_price_imbalance":
        up = _column(prices, "rt_price_up")
        down = _column(prices, "rt_price_down")
        imbalance = np.where(deviation_mwh >= 0, deviation_mwh * down, deviation_mwh * up)
        spread = deviation_spread_per_mwh(
            deviation_mwh, prices["da_price"], rt_price_up=up, rt_price_down=down
        )
    else:
        raise InputError(f"unknown settlement rule {rule!r}")
    clawed = clawback_revenue(
        deviation_mwh, award_mw.to_numpy(float) * dt_h, spread, clawback, dt_h
    )
    imbalance_revenue = imbalance + clawed
    out = pd.DataFrame(
        {
            "da_revenue": da_revenue,
            "rt_bid_revenue": rt_bid_revenue,
            "imbalance_revenue": imbalance_revenue,
            "clawback_revenue": clawed,
            "rt_revenue": rt_bid_revenue + imbalance_revenue,
            "rt_award_mwh": rt_award * dt_h,
            "imbalance_mwh": deviation_mwh,
        },
        index=index,
    )
    if not np.isfinite(out.to_numpy()).all():
        raise InputError("settle: non-finite settlement (missing price in a settled interval?)")
    return out


def _rt_award(
    rt_award_mw: pd.Series | np.ndarray | None,
    rt_clearing_price: pd.Series | np.ndarray | None,
    index: pd.DatetimeIndex,
    dt_h: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The real-time award [MW] and its revenue per interval (zeros without an award)."""
    if rt_award_mw is None:
        return np.zeros(len(index)), np.zeros(len(index))
    for name, value in (("rt_award_mw", rt_award_mw), ("rt_clearing_price", rt_clearing_price)):
        if isinstance(value, pd.Series) and not value.index.equals(index):
            raise InputError(f"settle: {name} must share the award's index")
    award = np.asarray(rt_award_mw, dtype=float)
    if award.shape != (len(index),):
        raise InputError(f"settle: rt_award_mw has {award.size} values for {len(index)} intervals")
    if rt_clearing_price is None:
        if np.any(award != 0):
            raise InputError("settle: a real-time award needs its rt_clearing_price")
        return award, np.zeros(len(index))
    price = np.asarray(rt_clearing_price, dtype=float)
    if price.shape != (len(index),):
        raise InputError(
            f"settle: rt_clearing_price has {price.size} values for {len(index)} intervals"
        )
    unpriced = (award != 0) & ~np.isfinite(price)
    if unpriced.any():
        raise InputError(
            f"settle: real-time award at {index[unpriced][0]} without a finite clearing price"
        )
    revenue = award * dt_h * np.where(award != 0, price, 0.0)
    return award, revenue


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
    *,
    park_rt_award_kw: pd.DataFrame | None = None,
    rt_clearing_price: pd.Series | np.ndarray | None = None,
    clawback: ClawbackTerms | None = None,
) -> list[dict[str, Any]]:
    """One settlement row per park for one delivery day (the backtest's and the daemon's).

    ``park_award_kw``: each park's share of the day-ahead award per interval
    [kW] (None: no award); ``park_rt_award_kw``: each park's share of the
    real-time award [kW] (None: none), settled at ``rt_clearing_price``
    [currency/MWh]; ``park_energy_kwh``: energy each park delivered per
    interval (> 0 sold) [kWh]; ``park_degradation``: battery wear cost per
    interval [currency]; ``prices`` indexed like the award; ``clawback``: the
    market's claw-back terms (None: none).

    The portfolio is the market participant: its net remaining deviation
    sets the deviation price and the claw-back of each interval, and each
    park's own deviation settles at that price and carries the claw-back per
    MWh of the net deviation, so the park rows add up to the portfolio's.
    """
    index = prices.index
    award_mw = _park_mw(park_award_kw, park_ids, len(index))
    rt_award_mw = _park_mw(park_rt_award_kw, park_ids, len(index))
    # Each park's share of the real-time award settles at the clearing price (checked like
    # settle's: an award needs a finite price in its interval).
    any_rt_mw = sum((np.abs(rt_award_mw[p]) for p in park_ids), np.zeros(len(index)))
    rt_price_dt = np.zeros(len(index))
    if park_rt_award_kw is not None:
        _rt_award(any_rt_mw, rt_clearing_price, index, dt_h)  # raises on an unpriced award
        if rt_clearing_price is not None:
            price = np.asarray(rt_clearing_price, dtype=float)
            rt_price_dt = np.where(any_rt_mw != 0, price, 0.0) * dt_h
    actual_mw = {
        park_id: np.asarray(park_energy_kwh[park_id], dtype=float) / dt_h / KW_PER_MW
        for park_id in park_ids
    }
    # The portfolio's NET deviation sets the deviation price of each interval (linear under
    # two-settlement, up/down under two-price).
    deviation_mw = {
        p: (
            actual_mw[p] - award_mw[p] - rt_award_mw[p]
            if park_rt_award_kw is not None
            else actual_mw[p] - award_mw[p]
        )
        for p in park_ids
    }
    net_deviation = sum((deviation_mw[p] for p in park_ids), np.zeros(len(index)))
    portfolio = settle(
        pd.Series(0.0, index=index), pd.Series(net_deviation, index=index), prices, rule, dt_h
    )
    moves = np.abs(net_deviation) > 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        deviation_price = np.where(
            moves,
            portfolio["rt_revenue"].to_numpy() / (net_deviation * dt_h),
            _linear_price(prices, rule),
        )
    # The portfolio's claw-back, against its day-ahead award, spread per MWh of net deviation.
    portfolio_award_mwh = sum((award_mw[p] for p in park_ids), np.zeros(len(index))) * dt_h
    spread = np.where(moves, deviation_price - prices["da_price"].to_numpy(float), 0.0)
    clawed = clawback_revenue(
        net_deviation * dt_h, portfolio_award_mwh, spread, clawback, dt_h
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        clawback_price = np.where(moves, clawed / (net_deviation * dt_h), 0.0)
    rows: list[dict[str, Any]] = []
    for park_id in park_ids:
        energy = np.asarray(park_energy_kwh[park_id], dtype=float)
        deviation_mwh = deviation_mw[park_id] * dt_h
        da = float(np.sum(award_mw[park_id] * dt_h * prices["da_price"].to_numpy(float)))
        rt_bid = float(np.sum(rt_award_mw[park_id] * rt_price_dt))
        park_clawback = float(np.sum(deviation_mwh * clawback_price))
        imbalance = float(np.sum(deviation_mwh * deviation_price)) + park_clawback
        rt = rt_bid + imbalance
        wear = float(np.sum(park_degradation[park_id]))
        rows.append(
            {
                "day": day,
                "park_id": park_id,
                "market_id": market_id,
                "energy_sold_mwh": float(energy.clip(min=0).sum() / KWH_PER_MWH),
                "energy_bought_mwh": float(-energy.clip(max=0).sum() / KWH_PER_MWH),
                "da_revenue": da,
                "rt_bid_revenue": rt_bid,
                "imbalance_revenue": imbalance,
                "clawback_revenue": park_clawback,
                "rt_revenue": rt,
                "degradation_cost": wear,
                "net_revenue": da + rt - wear,
                "rt_awarded_mwh": float(np.abs(rt_award_mw[park_id]).sum() * dt_h),
                "imbalance_mwh": float(np.abs(deviation_mwh).sum()),
            }
        )
    return rows


def _park_mw(
    park_kw: pd.DataFrame | None, park_ids: Sequence[str], n: int
) -> dict[str, np.ndarray]:
    """Each park's column of ``park_kw`` in MW (zeros where there is no frame)."""
    return {
        park_id: (
            park_kw[park_id].to_numpy(float) / KW_PER_MW if park_kw is not None else np.zeros(n)
        )
        for park_id in park_ids
    }


def _linear_price(prices: pd.DataFrame, rule: str) -> np.ndarray:
    """The deviation price when the portfolio is balanced (its parks' deviations cancel)."""
    if rule == "two_settlement" and "rt_price" in prices:
        return _column(prices, "rt_price")
    if rule == "two_price_imbalance" and {"rt_price_up", "rt_price_down"} <= set(prices):
        return (_column(prices, "rt_price_up") + _column(prices, "rt_price_down")) / 2
    return _column(prices, "da_price")  # no deviation prices at all: nothing deviates net


def deviation_price_note(rule: SettlementRule, price_columns: Iterable[str]) -> str:
    """What prices the deviations really settle at, for the backtest summary's ``deviation_price``.

    From the rule version and the price file's columns, e.g.
    ``rt_price (two_settlement)``, ``rt_price_up/rt_price_down
    (two_price_imbalance)``, ``da_price (two_settlement; the price file has no
    real-time prices)``, plus the claw-back where the rule has one.
    """
    columns = set(price_columns)
    deviation = DEVIATION_PRICES[rule.rule]
    absent = [c for c in deviation if c not in columns]
    used = "/".join(dict.fromkeys(c if c in columns else "da_price" for c in deviation))
    if len(absent) == len(deviation):
        detail = f"{rule.rule}; the price file has no real-time prices"
    elif absent:
        detail = f"{rule.rule}; the price file has no {', '.join(absent)}"
    else:
        detail = rule.rule
    note = f"{used} ({detail})"
    terms = ClawbackTerms.of(rule)
    return note if terms is None else f"{note} with {terms.describe()}"

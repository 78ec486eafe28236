"""The award from the exchange to the setpoints: one type, one unit, one expansion.

On the market wire an award is a quantity per day-ahead *product* in MW
(:class:`vpp.types.Award`, what the exchange publishes and the store keeps).
Inside vpp it is power per *schedule interval* in kW, one value of one type,
:class:`IntervalAward`: what the portfolio was awarded, each park's share of
it (what real-time dispatch follows and the parks settle against) and, when
the strategy split it so, each asset's share.

The wire's MW becomes kW in one place, :func:`portfolio_award_kw`, and a
product becomes its schedule intervals in one place, :func:`delivery_intervals`
(a product starting at ``s`` delivers in the intervals ``s <= t < s +
product_minutes``). kW becomes MW again only where money is counted per MWh
(:attr:`IntervalAward.portfolio_mw`, settlement).

Power follows :mod:`vpp.units`: > 0 sold (into the grid), < 0 bought.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vpp.errors import InputError
from vpp.timeutil import require_aware
from vpp.types import Award
from vpp.units import KW_PER_MW

__all__ = ["IntervalAward", "delivery_intervals", "portfolio_award_kw"]


def delivery_intervals(
    index: pd.DatetimeIndex, product_start: dt.datetime | pd.Timestamp, product_minutes: int
) -> np.ndarray:
    """Positions in ``index`` of the schedule intervals a product delivers in.

    The product starting at ``product_start`` (tz-aware) and lasting
    ``product_minutes`` [min] covers every interval start ``t`` of ``index``
    with ``product_start <= t < product_start + product_minutes``.
    """
    start = pd.Timestamp(product_start)
    require_aware(start, "product_start")
    end = start + pd.Timedelta(minutes=product_minutes)
    return np.flatnonzero((index >= start) & (index < end))


def portfolio_award_kw(
    awards: Sequence[Award], index: pd.DatetimeIndex, product_minutes: int
) -> np.ndarray:
    """The exchange's awards on every interval of ``index`` [kW] (0 where none was awarded).

    Each product's quantity [MW] holds over its delivery intervals
    (:func:`delivery_intervals`): the one place an award's MW become kW.
    """
    out = np.zeros(len(index))
    for award in awards:
        out[delivery_intervals(index, award.interval_start, product_minutes)] = (
            award.quantity_mw * KW_PER_MW
        )
    return out


@dataclass(frozen=True)
class IntervalAward:
    """An award on the schedule intervals [kW] (see module doc).

    Attributes:
        portfolio_kw: the portfolio's award per interval (each product's quantity
            held over its intervals) [kW], shape (T,).
        park_kw: each park's share per interval [kW]; index: the schedule interval
            starts (UTC), columns: park ids.
        asset_kw: each asset's share per interval [kW], columns ``(park_id,
            asset_id)``; None when the strategy did not split the award per asset.
    """

    portfolio_kw: np.ndarray
    park_kw: pd.DataFrame
    asset_kw: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        steps = len(self.park_kw.index)
        if np.shape(self.portfolio_kw) != (steps,):
            raise InputError(
                f"portfolio_kw needs {steps} values (one per interval), got {np.shape(self.portfolio_kw)}"
            )
        if self.asset_kw is not None and not self.asset_kw.index.equals(self.park_kw.index):
            raise InputError("asset_kw and park_kw must cover the same intervals")

    @classmethod
    def of_parks(
        cls,
        index: pd.DatetimeIndex,
        park_kw: Mapping[str, np.ndarray],
        portfolio_kw: np.ndarray | None = None,
    ) -> IntervalAward:
        """An award from each park's share per interval [kW]; the portfolio's defaults to their sum."""
        frame = pd.DataFrame(
            {p: np.asarray(v, dtype=float) for p, v in park_kw.items()}, index=index, dtype=float
        )
        total = frame.sum(axis=1).to_numpy(float) if portfolio_kw is None else portfolio_kw
        return cls(np.asarray(total, dtype=float), frame)

    @classmethod
    def zero(cls, index: pd.DatetimeIndex, park_ids: Sequence[str]) -> IntervalAward:
        """Nothing awarded: every park holds 0 kW on every interval."""
        return cls(np.zeros(len(index)), pd.DataFrame(0.0, index=index, columns=list(park_ids)))

    def plus_parks(self, extra_kw: pd.DataFrame) -> IntervalAward:
        """This award plus ``extra_kw`` per park and interval [kW] (e.g. real-time awards)."""
        extra = extra_kw.reindex(index=self.park_kw.index, columns=self.park_kw.columns)
        extra = extra.fillna(0.0)
        return IntervalAward(
            self.portfolio_kw + extra.sum(axis=1).to_numpy(float),
            self.park_kw + extra,
            self.asset_kw,
        )

    @property
    def index(self) -> pd.DatetimeIndex:
        """The schedule interval starts (UTC)."""
        return pd.DatetimeIndex(self.park_kw.index)

    @property
    def park_ids(self) -> list[str]:
        return [str(p) for p in self.park_kw.columns]

    def park(self, park_id: str) -> np.ndarray:
        """One park's share per interval [kW], shape (T,)."""
        if park_id not in self.park_kw.columns:
            raise KeyError(f"no award share for park {park_id!r}; parks: {self.park_ids}")
        return self.park_kw[park_id].to_numpy(float)

    @property
    def portfolio_mw(self) -> np.ndarray:
        """The portfolio's award per interval [MW], for settlement per MWh."""
        return self.portfolio_kw / KW_PER_MW

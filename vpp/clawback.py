"""The deviation-profit claw-back (超额获利回收) of Chinese provincial spot markets, as numbers.

Several provinces recover the profit a market participant makes by deviating
from its day-ahead position when the real-time price is better than the
day-ahead one: the part of the deviation beyond a tolerance band loses (a
share of) its spread profit. The rule here is the one the market config's
``[settlement]`` states (``clawback_*`` fields of
:class:`vpp.config.models.SettlementRule`; every value "(verify)" against the
province's own rules). Per interval and per market participant (the
portfolio: the parks of one market settle as one participant, as their net
deviation does in :func:`vpp.runtime.settlement.settle_parks`):

* ``d`` = the deviation that settles by the imbalance rule [MWh]: actual
  energy minus the day-ahead award minus any real-time award (a real-time
  award is a cleared trade at its own price, not a deviation);
* the **spread profit** of ``d`` is what it earned relative to having been
  traded day-ahead: ``d * (p_dev - da_price)``, ``p_dev`` the price ``d``
  settles at (``rt_price`` under two-settlement; ``rt_price_down`` for a
  surplus and ``rt_price_up`` for a shortfall under two-price imbalance);
* the **band** is ``max(tolerance_fraction * |DA award| , tolerance_min_mw * dt_h)``
  [MWh]: a fraction of the interval's day-ahead award magnitude, with a
  floor so that an interval without award still has a band;
* if the spread profit is > 0, the share of it carried by the deviation
  beyond the band, ``(|d| - band)+ / |d|``, times ``share`` is recovered:
  ``clawback = -share * profit * (|d| - band)+ / |d|`` (<= 0, in currency).
  A spread loss is never refunded (the claw-back is then 0).

The functions are pure and vectorised over intervals (numpy), so the
settlement, a strategy valuing a planned deviation and the perfect-foresight
bound all apply one rule. This module is foundation (no runtime imports):
strategies may call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from vpp.errors import InputError

if TYPE_CHECKING:
    from vpp.config.models import SettlementRule

ArrayLike = npt.ArrayLike


@dataclass(frozen=True)
class ClawbackTerms:
    """A claw-back rule's numbers (from ``[settlement]`` of a market file)."""

    #: Band as a fraction of the interval's day-ahead award magnitude [-].
    tolerance_fraction: float
    #: Smallest band, as mean power over the interval [MW]: a zero award still has a band.
    tolerance_min_mw: float = 0.0
    #: Fraction of the beyond-band spread profit that is recovered, in (0, 1].
    share: float = 1.0

    @classmethod
    def of(cls, rule: SettlementRule) -> ClawbackTerms | None:
        """The terms of a settlement rule version, or None where it has no claw-back."""
        if rule.clawback_tolerance_fraction is None:
            return None
        return cls(
            tolerance_fraction=rule.clawback_tolerance_fraction,
            tolerance_min_mw=rule.clawback_tolerance_min_mw,
            share=rule.clawback_share,
        )

    def describe(self) -> str:
        """One phrase for summaries: ``claw-back of 100% beyond 10% (min 0.1 MW) (verify)``."""
        floor = f", min {self.tolerance_min_mw:g} MW" if self.tolerance_min_mw else ""
        return (
            f"claw-back of {self.share:.0%} of the spread profit beyond "
            f"{self.tolerance_fraction:.0%} of the DA award{floor} (verify)"
        )


def clawback_band_mwh(award_mwh: ArrayLike, terms: ClawbackTerms, dt_h: float) -> np.ndarray:
    """The tolerance band per interval [MWh] for day-ahead awards ``award_mwh`` [MWh]."""
    award = np.asarray(award_mwh, dtype=float)
    return np.maximum(terms.tolerance_fraction * np.abs(award), terms.tolerance_min_mw * dt_h)


def clawback_revenue(
    deviation_mwh: ArrayLike,
    award_mwh: ArrayLike,
    spread_per_mwh: ArrayLike,
    terms: ClawbackTerms | None,
    dt_h: float,
) -> np.ndarray:
    """The claw-back per interval [currency, <= 0] (the module's rule).

    ``deviation_mwh``: the deviation that settles by the imbalance rule (> 0
    surplus sold) [MWh]; ``award_mwh``: the day-ahead award [MWh];
    ``spread_per_mwh``: the price the deviation settles at minus the day-ahead
    price [currency/MWh] (see :func:`deviation_spread_per_mwh`); ``terms``
    None: no claw-back (zeros). All arrays broadcast against each other.
    """
    d = np.asarray(deviation_mwh, dtype=float)
    spread = np.asarray(spread_per_mwh, dtype=float)
    if terms is None:
        return np.zeros(np.broadcast(d, spread).shape)
    band = clawback_band_mwh(award_mwh, terms, dt_h)
    size = np.abs(d)
    profit = np.maximum(d * spread, 0.0)
    outside = np.broadcast_to(size > band, np.broadcast(size, band).shape)
    beyond = np.divide(
        size - band, size, out=np.zeros(outside.shape), where=outside
    )  # band >= 0, so size > 0 where computed
    return -terms.share * profit * beyond


def clawback_per_mwh(
    deviation_mwh: ArrayLike,
    award_mwh: ArrayLike,
    spread_per_mwh: ArrayLike,
    terms: ClawbackTerms | None,
    dt_h: float,
) -> np.ndarray:
    """The claw-back per MWh of deviation [currency/MWh, <= 0; 0 where nothing deviates].

    The same rule as :func:`clawback_revenue`, divided by ``|deviation_mwh|``:
    what a strategy adds to the spread of a planned deviation of that size.
    Not linear in the deviation (zero inside the band): value a candidate
    deviation with :func:`clawback_revenue` where the size is a decision.
    """
    total = clawback_revenue(deviation_mwh, award_mwh, spread_per_mwh, terms, dt_h)
    d = np.broadcast_to(np.abs(np.asarray(deviation_mwh, dtype=float)), total.shape)
    return np.divide(total, d, out=np.zeros(total.shape), where=d > 0)


def deviation_spread_per_mwh(
    deviation_mwh: ArrayLike,
    da_price: ArrayLike,
    rt_price: ArrayLike | None = None,
    rt_price_up: ArrayLike | None = None,
    rt_price_down: ArrayLike | None = None,
) -> np.ndarray:
    """The price a deviation settles at minus the day-ahead price [currency/MWh].

    Give ``rt_price`` (two-settlement) or ``rt_price_up``/``rt_price_down``
    (two-price imbalance: a surplus settles at the down price, a shortfall at
    the up price).
    """
    d = np.asarray(deviation_mwh, dtype=float)
    da = np.asarray(da_price, dtype=float)
    if rt_price is not None:
        return np.asarray(rt_price, dtype=float) - da + 0.0 * d
    if rt_price_up is None or rt_price_down is None:
        raise InputError("deviation_spread_per_mwh: give rt_price, or both rt_price_up and rt_price_down")
    up = np.asarray(rt_price_up, dtype=float)
    down = np.asarray(rt_price_down, dtype=float)
    return np.where(d >= 0, down, up) - da

"""Carbon-aware operation: an internal carbon price and a daily budget in the objective.

A park's grid import is charged at an internal carbon price on top of the
energy price:

    carbon cost = price_per_t * sum_s w_s sum_t intensity[t] * import_mwh[s, t]
    import_mwh[s, t] = max(-net_kw[s, t], 0) * dt_h[t] / 1000

``intensity`` [tCO2/MWh] is the grid intensity known at decision time
(:mod:`vpp.carbon.intensity`: the estimate from the fundamentals the market
has published, else the annual location-based factor), never the realized
one. Export earns no carbon credit -- it does not reduce scope 2
(:mod:`vpp.carbon.accounting`) -- so the cost is on import only; that keeps
the objective convex (a positive part of an affine expression).

An optional **daily budget** per park (``[carbon_budget]`` of the park file)
is a soft row per scenario (``{park}-carbon-budget``): the day's scope 2
location-based emissions above ``daily_tco2`` cost ``penalty_per_t`` each.
Soft, because the inflexible load alone may exceed it: the plan then emits
as little above it as the penalty makes worthwhile instead of failing.

The signal is part of the park's :class:`~strategies.state.ParkInputs`
(``inputs.carbon``); without it -- the default, a zero carbon price and no
budget -- the model is exactly the carbon-blind one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cvxpy as cp
import numpy as np
import pandas as pd

from vpp.carbon.accounting import GridFactors, grid_factors
from vpp.carbon.factors import FactorSet
from vpp.config.models import ParkConfig
from vpp.errors import InputError
from vpp.units import KWH_PER_MWH

if TYPE_CHECKING:
    from strategies.park import ParkModel

ASSET_TYPE = "park"

__all__ = ["CarbonSignal", "add_carbon_terms", "carbon_signal", "import_emissions_tco2"]


@dataclass(frozen=True)
class CarbonSignal:
    """What the objective charges for carbon over one horizon (see module doc).

    Attributes:
        intensity_tco2_per_mwh: grid intensity per interval (T,) known at decision time.
        price_per_t: internal carbon price [currency/tCO2] (0: none).
        daily_budget_tco2: the park's emissions budget over the horizon's day [tCO2]; None: none.
        budget_penalty_per_t: cost of each tonne above the budget [currency/tCO2].
        budget_share: the part of the day's budget left to this horizon (real-time
            windows that start after midnight get ``remaining / all`` intervals).
    """

    intensity_tco2_per_mwh: np.ndarray
    price_per_t: float = 0.0
    daily_budget_tco2: float | None = None
    budget_penalty_per_t: float = 0.0
    budget_share: float = 1.0

    def __post_init__(self) -> None:
        intensity = np.asarray(self.intensity_tco2_per_mwh, dtype=float)
        if intensity.ndim != 1 or not np.isfinite(intensity).all() or (intensity < 0).any():
            raise InputError(
                "carbon intensity must be finite and >= 0 per interval; got "
                f"{int((~np.isfinite(intensity)).sum())} missing values"
            )
        object.__setattr__(self, "intensity_tco2_per_mwh", intensity)
        for name in ("price_per_t", "budget_penalty_per_t"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise InputError(f"{name} = {value}: must be finite and >= 0")
        if self.daily_budget_tco2 is not None and not (
            np.isfinite(self.daily_budget_tco2) and self.daily_budget_tco2 >= 0
        ):
            raise InputError(f"daily_budget_tco2 = {self.daily_budget_tco2}: must be >= 0")

    @property
    def active(self) -> bool:
        """True if the signal changes the objective (a carbon price or a budget)."""
        return self.price_per_t > 0 or self.daily_budget_tco2 is not None

    def window(self, start: int) -> CarbonSignal:
        """The signal from interval ``start`` to the end of the horizon."""
        n = len(self.intensity_tco2_per_mwh)
        share = self.budget_share * (n - start) / n if n else self.budget_share
        return CarbonSignal(
            self.intensity_tco2_per_mwh[start:], self.price_per_t, self.daily_budget_tco2,
            self.budget_penalty_per_t, share,
        )


def import_emissions_tco2(
    net_kw: np.ndarray, dt_h: np.ndarray, intensity_tco2_per_mwh: np.ndarray
) -> np.ndarray:
    """Scope 2 location-based emissions [tCO2] per interval of a net power (T,) or (S, T)."""
    imports_mwh = np.clip(-np.asarray(net_kw, dtype=float), 0.0, None) * dt_h / KWH_PER_MWH
    return imports_mwh * intensity_tco2_per_mwh


def add_carbon_terms(model: ParkModel, signal: CarbonSignal) -> cp.Expression | None:
    """Add the carbon cost and the budget row of ``signal`` to a park ``model``.

    Returns the expected emissions expression [tCO2] (None if the signal is inactive).
    """
    if not signal.active:
        return None
    net_kw = model.net_kw
    dt_h = np.asarray(model.dt_h, dtype=float)
    weights = np.asarray(model.weights, dtype=float)
    builder = model.builder
    park_id = model.park.id
    steps = len(dt_h)
    if signal.intensity_tco2_per_mwh.shape != (steps,):
        raise InputError(
            f"{park_id}: carbon intensity has {signal.intensity_tco2_per_mwh.shape[0]} values, "
            f"the horizon {steps} intervals"
        )
    # tCO2 per kW drawn in each interval; (S, T) emissions expression
    coef = signal.intensity_tco2_per_mwh * dt_h / KWH_PER_MWH
    per_scenario = cp.pos(-net_kw) @ coef  # (S,) tCO2
    expected = weights @ per_scenario
    if signal.price_per_t > 0:
        builder.add_cost(signal.price_per_t * expected)
    if signal.daily_budget_tco2 is not None:
        scenarios = weights.shape[0]
        labels = (
            (park_id,) if scenarios == 1 else tuple(f"{park_id}@s{s}" for s in range(scenarios))
        )
        over = cp.Variable(scenarios, name="carbon_budget_over_tco2", nonneg=True)
        budget = signal.daily_budget_tco2 * signal.budget_share
        named = builder.add(
            ASSET_TYPE, "carbon", "budget", labels, per_scenario - budget - over, "<="
        )
        if named is not None:
            builder.add_cost(signal.budget_penalty_per_t * (weights @ over))
    return expected


def carbon_signal(
    park: ParkConfig,
    index: pd.DatetimeIndex,
    timezone: str,
    factors: FactorSet | None,
    *,
    price_per_t: float,
    area: str | None = None,
    fundamentals: pd.DataFrame | None = None,
    market_id: str = "the market",
    grid: GridFactors | None = None,
) -> CarbonSignal | None:
    """The carbon signal of ``park`` over ``index``; None when carbon plays no part.

    ``fundamentals`` must hold only what is published at decision time (the
    market's history as of then, or the realized file for a plan at known
    prices): the intensity is estimated from them where they allow, the annual
    location-based factor otherwise (:func:`vpp.carbon.accounting.grid_factors`;
    ``grid``: those factors already computed for ``index``, shared by a portfolio's parks).
    A carbon price or budget on a market without a factor in force is refused.
    """
    budget = park.carbon_budget
    if price_per_t <= 0 and budget is None:
        return None
    if grid is None:
        grid = grid_factors(
            index, timezone, factors, area=area, fundamentals=fundamentals,
            region_hint=f"the market file of {market_id}",
        )
    missing = ~np.isfinite(grid.intensity)
    if missing.any():
        what = (
            f"carbon_price_per_t = {price_per_t:g}" if price_per_t > 0
            else f"{park.id}: carbon_budget"
        )
        reason = grid.reasons.get("location", "no grid emission factor in force")
        raise InputError(
            f"{what} needs a grid intensity on {market_id} for {index[missing][0].isoformat()}: "
            f"{reason}"
        )
    return CarbonSignal(
        grid.intensity,
        price_per_t=price_per_t,
        daily_budget_tco2=None if budget is None else budget.daily_tco2,
        budget_penalty_per_t=0.0 if budget is None else budget.penalty_per_t,
    )

"""Each settled day's carbon books: stored per interval, and checked against the budgets.

With every settled day the daemon stores each park's metered grid import and
export, its on-site renewable generation and the grid factors of each
interval (``carbon_intervals``, :func:`carbon_rows`), the rows ``vpp carbon
report`` accounts from. Then every park with a budget (``[carbon_budget]``):

After a day is metered (:func:`vpp.runtime.metering.settle_day`), every park
with a budget gets its scope 2 location-based emissions of the day --
metered grid import x the interval intensity (:mod:`vpp.carbon.accounting`,
from the fundamentals published for the day, the annual factor otherwise).
A day above the budget is logged ``carbon_budget_exceeded`` (``alert=True``)
with the local hours that emitted most and the assets that drew most carbon
(each asset's own metered consumption x intensity): what an operator looks
at first.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import structlog

from vpp.carbon.accounting import GridFactors, grid_factors
from vpp.store import CarbonIntervalRecord
from vpp.units import KWH_PER_MWH

if TYPE_CHECKING:
    from vpp.runtime.metering import DayEnergy
    from vpp.runtime.operator import MarketPortfolio

log = structlog.get_logger(__name__)

#: How many hours and assets an overrun alert names.
TOP = 3


@dataclass(frozen=True)
class BudgetCheck:
    """One park's day against its budget.

    ``hours``: local hour starts (``HH:00``) with their emissions [tCO2], most first;
    ``assets``: asset ids with the emissions of their own consumption [tCO2], most first.
    """

    park_id: str
    day: dt.date
    emissions_tco2: float
    budget_tco2: float
    hours: tuple[tuple[str, float], ...]
    assets: tuple[tuple[str, float], ...]

    @property
    def over_tco2(self) -> float:
        return max(self.emissions_tco2 - self.budget_tco2, 0.0)

    @property
    def exceeded(self) -> bool:
        return self.over_tco2 > 1e-9


def day_factors(
    portfolio: MarketPortfolio, index: pd.DatetimeIndex, fundamentals: pd.DataFrame | None
) -> GridFactors:
    """The grid factors of the day's intervals (interval estimate where published)."""
    market = portfolio.market
    return grid_factors(
        index, market.timezone, portfolio.carbon, area=market.carbon_area,
        fundamentals=fundamentals, region_hint=f"the market file of {market.id}",
    )


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def carbon_rows(
    portfolio: MarketPortfolio,
    energy: DayEnergy,
    index: pd.DatetimeIndex,
    day: dt.date,
    grid: GridFactors,
) -> list[CarbonIntervalRecord]:
    """Every park's flows [MWh] and grid factors per interval of ``day``, as store rows.

    Import and export are the park's net metered energy (a park never imports and
    exports in one interval at its connection); on-site renewable is what its
    ``onsite_renewable`` assets (PV) produced.
    """
    rows = []
    for park in portfolio.parks:
        net_kwh = energy.park_energy_kwh.get(park.id, np.zeros(len(index)))
        renewable = np.zeros(len(index))
        for asset in park.assets:
            if asset.onsite_renewable and (park.id, asset.id) in energy.asset_energy_kwh:
                renewable += np.clip(energy.asset_energy_kwh[(park.id, asset.id)], 0.0, None)
        for t, start in enumerate(index):
            rows.append(CarbonIntervalRecord(
                market_id=portfolio.market.id,
                park_id=park.id,
                delivery_day=day,
                interval_start=start.to_pydatetime(),
                import_mwh=float(max(-net_kwh[t], 0.0)) / KWH_PER_MWH,
                export_mwh=float(max(net_kwh[t], 0.0)) / KWH_PER_MWH,
                onsite_renewable_mwh=float(renewable[t]) / KWH_PER_MWH,
                intensity_tco2_per_mwh=_finite(grid.intensity[t]),
                intensity_estimated=bool(grid.estimated[t]),
                annual_factor_tco2_per_mwh=_finite(grid.annual[t]),
                residual_factor_tco2_per_mwh=_finite(grid.residual[t]),
            ))
    return rows


def check_budgets(
    portfolio: MarketPortfolio,
    energy: DayEnergy,
    index: pd.DatetimeIndex,
    day: dt.date,
    fundamentals: pd.DataFrame | None,
    grid: GridFactors | None = None,
) -> list[BudgetCheck]:
    """Every budgeted park's day (logged ``carbon_budget_exceeded`` when above it).

    Parks without a budget, and markets without a grid factor (logged
    ``carbon_budget_unchecked``), are skipped.
    """
    budgeted = [p for p in portfolio.parks if p.carbon_budget is not None]
    if not budgeted:
        return []
    market = portfolio.market
    grid = grid or day_factors(portfolio, index, fundamentals)
    intensity = grid.intensity
    if not np.isfinite(intensity).all():
        for park in budgeted:
            log.warning("carbon_budget_unchecked", park=park.id, day=str(day),
                        reason=grid.reasons.get("location", "no grid factor in force"))
        return []
    hours = index.tz_convert(market.timezone).strftime("%H:00")
    out = []
    for park in budgeted:
        assert park.carbon_budget is not None
        net_kwh = energy.park_energy_kwh.get(park.id, np.zeros(len(index)))
        per_interval = np.clip(-net_kwh, 0.0, None) / KWH_PER_MWH * intensity
        by_hour = pd.Series(per_interval).groupby(np.asarray(hours)).sum()
        by_hour = by_hour[by_hour > 0].sort_values(ascending=False)
        by_asset = {
            asset_id: float((np.clip(-kwh, 0.0, None) / KWH_PER_MWH * intensity).sum())
            for (park_id, asset_id), kwh in energy.asset_energy_kwh.items()
            if park_id == park.id
        }
        top_assets = sorted(
            ((a, e) for a, e in by_asset.items() if e > 0), key=lambda item: -item[1]
        )[:TOP]
        check = BudgetCheck(
            park.id, day, float(per_interval.sum()), park.carbon_budget.daily_tco2,
            tuple((str(h), round(float(e), 4)) for h, e in by_hour.head(TOP).items()),
            tuple((a, round(e, 4)) for a, e in top_assets),
        )
        out.append(check)
        if check.exceeded:
            log.warning(
                "carbon_budget_exceeded",
                alert=True,
                park=park.id,
                day=str(day),
                emissions_tco2=round(check.emissions_tco2, 4),
                budget_tco2=check.budget_tco2,
                over_tco2=round(check.over_tco2, 4),
                hours=[f"{h} {e:.3f} t" for h, e in check.hours],
                assets=[f"{a} {e:.3f} t" for a, e in check.assets],
            )
        else:
            log.info("carbon_budget_met", park=park.id, day=str(day),
                     emissions_tco2=round(check.emissions_tco2, 4), budget_tco2=check.budget_tco2)
    return out

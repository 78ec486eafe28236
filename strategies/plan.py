"""``vpp plan``: the optimal schedule of a market's parks for one day at known prices.

:func:`plan_day` works on a plain price frame (UTC ``interval_start`` index,
a ``da_price`` column by default), so it is usable -- and tested -- without
any file format; the CLI reads the canonical price file and calls it.
:func:`write_plan` writes ``assets.csv``, ``parks.csv`` and ``plan.json``,
replacing the output folder whole (a failed write keeps the previous plan).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import structlog

from strategies._solver import DEFAULT_SOLVER, SolveStats
from strategies.assets import model_for
from strategies.carbon import carbon_signal, import_emissions_tco2
from strategies.commodity import BALANCE_COLUMNS, balance_frame
from strategies.foresight import perfect_foresight, realized_states
from strategies.park import interval_hours
from strategies.schedule import Schedule, idle_schedule
from strategies.state import ParkState, load_inputs
from vpp import files
from vpp.assets.commodities import HYDROGEN
from vpp.carbon.accounting import grid_factors
from vpp.config.loader import ConfigSet
from vpp.config.models import ParkConfig
from vpp.errors import InfeasibleError, InputError, SolverError
from vpp.timeutil import day_intervals_utc, require_aware_index

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PlanResult:
    """A day's plan: the schedule, the prices it used and how the solve went."""

    market_id: str
    day: dt.date
    timezone: str
    currency: str
    price_column: str
    prices: pd.Series
    schedule: Schedule
    status: str
    error: str | None
    constraint: str | None
    total_s: float
    #: The internal carbon price of the objective [currency/tCO2] (0: carbon-blind).
    carbon_price_per_t: float = 0.0
    #: Grid intensity per interval [tCO2/MWh]; NaN where the market has no factor.
    intensity_tco2_per_mwh: np.ndarray | None = None
    #: Length of each interval [h].
    dt_h: np.ndarray | None = None
    #: Heat and hydrogen balances per park, node and interval (:func:`balance_frame`).
    balances: pd.DataFrame | None = None

    @property
    def stats(self) -> SolveStats | None:
        return self.schedule.stats

    def _dt_h(self) -> np.ndarray:
        if self.dt_h is None:
            raise InputError("the plan has no interval lengths (dt_h); build it with plan_day")
        return self.dt_h

    def energy_revenue(self) -> float:
        """Revenue of the parks' net power at the plan's prices [currency]."""
        net_kw = self.schedule.park_power_kw.sum(axis=1).to_numpy(float)
        return float((net_kw * self._dt_h() / 1000.0 * self.prices.to_numpy(float)).sum())

    def emissions_location_tco2(self) -> float | None:
        """Scope 2 location-based emissions of the planned import [tCO2]; None without factors."""
        intensity = self.intensity_tco2_per_mwh
        if intensity is None or not np.isfinite(intensity).all():
            return None
        total = 0.0
        for park_id in self.schedule.park_power_kw.columns:
            net_kw = self.schedule.park_power_kw[park_id].to_numpy(float)
            total += float(import_emissions_tco2(net_kw, self._dt_h(), intensity).sum())
        return total


def plan_day(
    config: ConfigSet,
    prices: pd.DataFrame,
    day: dt.date,
    market_id: str,
    *,
    solver: str | None = None,
    price_column: str = "da_price",
    parallel: int = 1,
    carbon_price_per_t: float = 0.0,
) -> PlanResult:
    """Optimal schedule of every park on ``market_id`` for local ``day`` at known prices.

    EV sessions are the realized ones of that day (the plan knows who comes).
    A solver failure yields the idle fallback with ``status`` ``infeasible`` or
    ``failed`` and the error (naming the constraint when infeasible).
    ``carbon_price_per_t`` > 0 (or a park's ``carbon_budget``) charges the grid
    import's emissions in the objective (:mod:`strategies.carbon`), at the
    intensity of the price file's fundamentals -- known, like the prices.
    """
    if not math.isfinite(carbon_price_per_t) or carbon_price_per_t < 0:
        raise InputError(f"carbon_price_per_t = {carbon_price_per_t}: must be a finite number >= 0")
    start = time.perf_counter()
    if market_id not in config.markets:
        raise InputError(f"unknown market {market_id!r}; known: {', '.join(sorted(config.markets))}")
    market = config.markets[market_id]
    rules = market.rules_on(day)
    parks = config.parks_in(market_id)
    if not parks:
        raise InputError(f"no park bids into market {market_id!r}")
    require_aware_index(prices.index, "prices.index")
    if price_column not in prices.columns:
        raise InputError(f"prices have no {price_column!r} column; got {list(prices.columns)}")
    index = day_intervals_utc(day, rules.timezone, rules.interval_minutes)
    series = prices[price_column].reindex(index)
    if series.isna().any():
        missing = int(series.isna().sum())
        raise InputError(
            f"{missing} of {len(index)} {price_column} values for {day} are missing; "
            "plan needs every interval of the day"
        )
    inputs, states = {}, {}
    for park in parks:
        folder = config.park_files[park.id].parent if park.id in config.park_files else config.root
        inputs[park.id] = load_inputs(park, folder, index)
        states[park.id] = realized_states(park, folder, index)
    factors = config.carbon.get(market.carbon_region or "")
    grid = grid_factors(
        index, rules.timezone, factors, area=market.carbon_area, fundamentals=prices,
        region_hint=f"the market file of {market_id}",
    )
    for park in parks:
        signal = carbon_signal(
            park, index, rules.timezone, factors, price_per_t=carbon_price_per_t,
            market_id=market_id, grid=grid,
        )
        inputs[park.id] = inputs[park.id].with_carbon(signal)
    chosen = solver or config.settings.solver.name or DEFAULT_SOLVER
    status, error, constraint = "optimal", None, None
    try:
        result = perfect_foresight(
            parks, inputs, states, rules.interval_minutes, series,
            product_minutes=rules.day_ahead.interval_minutes, solver=chosen,
            time_limit_s=config.settings.solver.time_limit_s, parallel=parallel,
        )
        schedule = result.schedule
        if schedule.stats is not None:
            status = schedule.stats.status.value
    except SolverError as exc:
        status = "infeasible" if isinstance(exc, InfeasibleError) else "failed"
        error = str(exc)
        constraint = getattr(exc, "constraint", None)
        schedule = idle_schedule(
            parks, inputs, states, interval_hours(index, rules.interval_minutes),
            series.to_numpy(float), errors={"portfolio": error},
        )
    dt_h = interval_hours(index, rules.interval_minutes)
    balances = pd.concat(
        [
            balance_frame(
                park, inputs[park.id], _store_content(park, states[park.id]), schedule.flows,
                schedule.soc_kwh, dt_h,
            )
            for park in parks
        ],
        ignore_index=True,
    )
    total = time.perf_counter() - start
    log.info("plan_finished", market=market_id, day=day.isoformat(), status=status,
             objective=schedule.objective, total_s=round(total, 3))
    return PlanResult(
        market_id, day, rules.timezone, rules.currency, price_column, series, schedule, status,
        error, constraint, total, carbon_price_per_t, grid.intensity, dt_h, balances,
    )


def _store_content(park: ParkConfig, state: ParkState) -> dict[str, float]:
    """Content of each heat or hydrogen store before the day [kWh_th or kg]."""
    out: dict[str, float] = {}
    for asset in park.assets:
        if asset.storage_node is None:
            continue
        for known in (state.get(asset.id), model_for(asset).initial_state(asset)):
            if known is None:
                continue
            value = known.stored_kg if asset.soc_capacity_kg is not None else known.soc_kwh
            if value is not None:
                out[asset.id] = float(value)
                break
    return out


def _commodity_totals(plan: PlanResult) -> dict[str, float]:
    """Heat and hydrogen delivered and unmet over the day (only for parks that have them)."""
    frame = plan.balances
    if frame is None or not len(frame):
        return {}
    dt_h = float(plan._dt_h()[0])
    heat = frame[frame["node"] != HYDROGEN]
    hydrogen = frame[frame["node"] == HYDROGEN]
    out: dict[str, float] = {}
    if len(heat):
        out["heat_demand_kwh"] = round(float(heat["demand"].sum()) * dt_h, 6)
        out["heat_unmet_kwh"] = round(float(heat["unmet"].sum()) * dt_h, 6)
    if len(hydrogen):
        out["hydrogen_demand_kg"] = round(float(hydrogen["demand"].sum()) * dt_h, 6)
        out["hydrogen_unmet_kg"] = round(float(hydrogen["unmet"].sum()) * dt_h, 6)
    return out


def _round(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


PLAN_FILES = ("assets.csv", "parks.csv", "balances.csv", "plan.json")
"""The files of a plan folder; an output folder holding anything else is refused."""


def check_plan_out(out_dir: Path) -> Path:
    """Raise ``OutputError`` now, before solving, if ``out_dir`` cannot take a plan."""
    return files.check_output_folder(out_dir, PLAN_FILES)


def write_plan(plan: PlanResult, out_dir: Path) -> list[Path]:
    """Write ``assets.csv``, ``parks.csv``, ``balances.csv`` and ``plan.json``; return the paths.

    The folder is built aside and swapped in whole (``OutputError`` and the
    previous plan kept on failure).
    """
    with files.replace_folder(out_dir, PLAN_FILES) as tmp:
        _write_plan_files(plan, tmp)
    return [out_dir / name for name in PLAN_FILES]


def _write_plan_files(plan: PlanResult, out_dir: Path) -> None:
    schedule = plan.schedule
    local = schedule.index.tz_convert(plan.timezone)
    stamps = pd.DataFrame(
        {
            "interval_start": schedule.index.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "interval_start_local": local.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    )
    asset_rows = []
    for park_id, asset_id in schedule.asset_power_kw.columns:
        frame = stamps.copy()
        frame["park_id"] = park_id
        frame["asset_id"] = asset_id
        frame["power_kw"] = schedule.asset_power_kw[(park_id, asset_id)].to_numpy(float)
        if (park_id, asset_id) in schedule.soc_kwh.columns:
            frame["soc_kwh"] = schedule.soc_kwh[(park_id, asset_id)].to_numpy(float)
        else:
            frame["soc_kwh"] = np.nan
        heat_kw, heat_level, hydrogen = np.full(len(frame), np.nan), "", np.full(len(frame), np.nan)
        for park, asset, node in schedule.flows.columns:
            if (park, asset) != (park_id, asset_id):
                continue
            values = schedule.flows[(park, asset, node)].to_numpy(float)
            if node == HYDROGEN:
                hydrogen = values
            else:
                heat_kw, heat_level = values, node
        frame["heat_kw"] = heat_kw
        frame["heat_level"] = heat_level
        frame["hydrogen_kg_per_h"] = hydrogen
        asset_rows.append(frame)
    assets = pd.concat(asset_rows, ignore_index=True)
    park_rows = []
    for park_id in schedule.park_power_kw.columns:
        frame = stamps.copy()
        frame["park_id"] = park_id
        frame["power_kw"] = schedule.park_power_kw[park_id].to_numpy(float)
        frame["price_per_mwh"] = plan.prices.to_numpy(float)
        park_rows.append(frame)
    parks = pd.concat(park_rows, ignore_index=True)
    assets_path, parks_path, json_path = (
        out_dir / "assets.csv", out_dir / "parks.csv", out_dir / "plan.json"
    )
    assets.to_csv(assets_path, index=False, float_format="%.6f")
    parks.to_csv(parks_path, index=False, float_format="%.6f")
    balances = plan.balances if plan.balances is not None else pd.DataFrame(
        columns=list(BALANCE_COLUMNS)
    )
    balances = balances.copy()
    if len(balances):
        starts = pd.DatetimeIndex(balances["interval_start"])
        balances["interval_start"] = starts.strftime("%Y-%m-%dT%H:%M:%SZ")
        balances.insert(
            1, "interval_start_local",
            starts.tz_convert(plan.timezone).strftime("%Y-%m-%dT%H:%M:%S%z"),
        )
    balances.to_csv(out_dir / "balances.csv", index=False, float_format="%.6f")
    stats = schedule.stats
    summary = {
        "market_id": plan.market_id,
        "day": plan.day.isoformat(),
        "timezone": plan.timezone,
        "currency": plan.currency,
        "price_column": plan.price_column,
        "intervals": len(schedule.index),
        "parks": list(schedule.park_power_kw.columns),
        "status": plan.status,
        "objective": _round(schedule.objective),
        "objective_unit": f"{plan.currency} (revenue at the prices minus degradation cost"
        + (" minus carbon cost)" if plan.carbon_price_per_t > 0 else ")"),
        "energy_revenue": _round(plan.energy_revenue()),
        "carbon_price_per_t": plan.carbon_price_per_t,
        "emissions_location_tco2": _round(plan.emissions_location_tco2()),
        "solver": stats.solver if stats else None,
        "build_s": _round(stats.build_s) if stats else None,
        "compile_s": _round(stats.compile_s) if stats else None,
        "solve_s": _round(stats.solve_s) if stats else None,
        "total_s": _round(plan.total_s),
        "fallback": schedule.fallback,
        **_commodity_totals(plan),
        "error": plan.error,
        "constraint": plan.constraint,
        "sign_convention": "power_kw > 0 flows into the grid (sold); < 0 is drawn (bought)",
    }
    json_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

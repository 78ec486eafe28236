"""Heat and hydrogen delivered and unmet, from the devices' registers (backtest and daemon).

Converters count the heat they delivered (``heat_registers``, into the levels
their spec's ``heat_outputs()`` names) and electrolysers the hydrogen they
produced (``hydrogen_registers``); stores count what they took and gave
(``storage_registers``). Each counter is interpolated to the interval
boundaries like the electricity meters (:func:`vpp.runtime.metering.interval_energy`;
a register that goes down was reset and books nothing for that step).
Demand is the realized one: each level's profile over the interval
(:func:`vpp.profiles.heat_demand_kw`) and the hydrogen stores' offtake. Per
park, node and interval (rates: kW_th for heat, kg/h for hydrogen):

* ``supply``: what the converters delivered to the node;
* ``storage_in``: what its store took minus what it gave;
* ``unmet = max(demand - supply + storage_in, 0)``: demand nobody served,
  ``surplus`` the opposite excess (heat dumped, hydrogen vented).

With a store on the node the store floats on the balance (it takes the
surplus and covers the deficit within its limits), so unmet is what even
the store could not cover -- the measured shortfall the summary reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from vpp.assets.commodities import HYDROGEN
from vpp.runtime.metering import interval_energy
from vpp.runtime.operator import AssetKey, MarketPortfolio
from vpp.types import Health, Telemetry

BALANCE_COLUMNS = (
    "interval_start", "park_id", "node", "unit", "supply", "demand", "storage_in", "unmet",
    "surplus",
)

#: Below this a gap [kW_th or kg/h] is float noise, not a shortfall.
TOL = 1e-6


def commodity_registers(asset: Any) -> tuple[str, ...]:
    """The heat, hydrogen and storage registers an asset reports."""
    return (*asset.heat_registers, *asset.hydrogen_registers, *asset.storage_registers)


def has_commodities(portfolio: MarketPortfolio) -> bool:
    return any(
        p.heat_levels or any(commodity_registers(a) for a in p.assets) for p in portfolio.parks
    )


def register_counters(
    portfolio: MarketPortfolio, readings: Iterable[Telemetry]
) -> dict[tuple[str, str, str], pd.Series]:
    """(park, asset, register) -> the register's cumulative value at its readings (resets undone)."""
    wanted = {
        (p.id, a.id): commodity_registers(a) for p in portfolio.parks for a in p.assets
        if commodity_registers(a)
    }
    rows: dict[AssetKey, list[dict[str, Any]]] = {}
    for reading in readings:
        key = (reading.park_id, reading.asset_id)
        if key not in wanted or reading.health is not Health.OK:
            continue
        row: dict[str, Any] = {"at": pd.Timestamp(reading.measured_at).as_unit("ns")}
        for name in wanted[key]:
            value = reading.extra.get(name)
            row[name] = float(value) if isinstance(value, (int, float)) else np.nan
        rows.setdefault(key, []).append(row)
    out: dict[tuple[str, str, str], pd.Series] = {}
    for key, asset_rows in rows.items():
        frame = pd.DataFrame(asset_rows).groupby("at").last().sort_index()
        for name in wanted[key]:
            raw = frame[name].dropna() if name in frame else pd.Series(dtype=float)
            if len(raw) < 2:
                continue
            steps = np.diff(raw.to_numpy(float))
            # a step down is a reset: the counter restarted, book only what it counted since
            booked = np.where(steps < 0, np.maximum(raw.to_numpy(float)[1:], 0.0), steps)
            out[(key[0], key[1], name)] = pd.Series(
                np.concatenate([[0.0], np.cumsum(booked)]), index=raw.index
            )
    return out


def day_balances(
    portfolio: MarketPortfolio,
    counters: dict[tuple[str, str, str], pd.Series],
    index: pd.DatetimeIndex,
) -> pd.DataFrame:
    """Every park's heat and hydrogen balance over the intervals ``index`` (see module doc)."""
    from vpp.profiles import heat_demand_kw  # profiles reads config: imported when used

    step = index[1] - index[0] if len(index) > 1 else pd.Timedelta(minutes=15)
    dt_h = step / pd.Timedelta(hours=1)
    boundaries = index.append(pd.DatetimeIndex([index[-1] + step]))
    frames = []
    for park in portfolio.parks:
        assets: Sequence[Any] = park.assets
        nodes: dict[str, str] = {level.id: "kW_th" for level in park.heat_levels}
        if any(a.produces_hydrogen or a.storage_node == HYDROGEN for a in assets):
            nodes[HYDROGEN] = "kg/h"
        for node, unit in nodes.items():
            supply = np.zeros(len(index))
            storage_in = np.zeros(len(index))

            for asset in assets:
                key = (park.id, asset.id)
                if node == HYDROGEN and asset.produces_hydrogen:
                    for register in asset.hydrogen_registers:
                        supply += _rate(counters, key, register, boundaries, dt_h)
                register = asset.heat_outputs().get(node)
                if register is not None:
                    supply += _rate(counters, key, register, boundaries, dt_h)
                if asset.storage_node == node and len(asset.storage_registers) == 2:
                    charged, discharged = asset.storage_registers
                    storage_in += _rate(counters, key, charged, boundaries, dt_h) - _rate(
                        counters, key, discharged, boundaries, dt_h
                    )
            if node == HYDROGEN:
                demand = np.full(len(index), sum(
                    float(getattr(a, "offtake_rate_kg_per_h", 0.0)) for a in assets
                    if a.storage_node == HYDROGEN
                ))
            else:
                level = park.heat_level(node)
                demand = (
                    np.zeros(len(index)) if level is None
                    else heat_demand_kw(level, portfolio.config_dirs[park.id], index, park.timezone)
                )
            gap = demand - supply + storage_in
            frames.append(pd.DataFrame({
                "interval_start": index, "park_id": park.id, "node": node, "unit": unit,
                "supply": supply, "demand": demand, "storage_in": storage_in,
                "unmet": np.where(gap > TOL, gap, 0.0),
                "surplus": np.where(-gap > TOL, -gap, 0.0),
            }))
    if not frames:
        return pd.DataFrame(columns=list(BALANCE_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def _rate(
    counters: dict[tuple[str, str, str], pd.Series],
    key: AssetKey,
    register: str,
    boundaries: pd.DatetimeIndex,
    dt_h: float,
) -> np.ndarray:
    """Average rate per interval of one register (0 where it was never read)."""
    counter = counters.get((key[0], key[1], register))
    if counter is None:
        return np.zeros(len(boundaries) - 1)
    return np.nan_to_num(interval_energy(counter, boundaries)) / dt_h


def balance_summary(balances: pd.DataFrame, dt_h: float) -> dict[str, float]:
    """Heat and hydrogen delivered and unmet over a run (keys only for what the run has)."""
    if not len(balances):
        return {}
    out: dict[str, float] = {}
    heat = balances[balances["node"] != HYDROGEN]
    hydrogen = balances[balances["node"] == HYDROGEN]
    if len(heat):
        out["heat_demand_kwh"] = round(float(heat["demand"].sum()) * dt_h, 3)
        out["heat_delivered_kwh"] = round(
            float((heat["demand"] - heat["unmet"]).sum()) * dt_h, 3
        )
        out["heat_unmet_kwh"] = round(float(heat["unmet"].sum()) * dt_h, 3)
        out["heat_surplus_kwh"] = round(float(heat["surplus"].sum()) * dt_h, 3)
    if len(hydrogen):
        out["hydrogen_demand_kg"] = round(float(hydrogen["demand"].sum()) * dt_h, 3)
        out["hydrogen_delivered_kg"] = round(
            float((hydrogen["demand"] - hydrogen["unmet"]).sum()) * dt_h, 3
        )
        out["hydrogen_unmet_kg"] = round(float(hydrogen["unmet"].sum()) * dt_h, 3)
        out["hydrogen_surplus_kg"] = round(float(hydrogen["surplus"].sum()) * dt_h, 3)
    return out

"""Settle a finished delivery day from what the daemon stored.

The formula is the backtest's (:func:`market_replay.settlement.settle_parks`):
each park's share of the award at the day-ahead price, its deviation at the
real-time price, minus battery wear. What differs is where the delivered
energy comes from: the backtest reads its meters exactly at interval
boundaries; the daemon reads them when its jobs run, so each asset's
cumulative meter counter is interpolated linearly to the boundaries between
the two readings around each boundary (a counter is exact at its readings
and the power between two readings is what the device held). An interval
not bracketed by readings (device unavailable) counts zero energy and is
logged as ``meter_reading_missing`` -- the backtest's policy.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd
import structlog
from sqlmodel import select

from market_replay.settlement import settle_parks
from vpp._exceptions import LookAheadError
from vpp.config.models import BatterySpec
from vpp.engine import AssetKey, Operator, exported_kwh
from vpp.store import SettlementRecord, Store, TelemetryRecord
from vpp.types import Health, Telemetry
from vpp.units import KWH_PER_MWH

log = structlog.get_logger(__name__)

_PRICES = {
    "two_settlement": ("da_price", "rt_price"),
    "two_price_imbalance": ("da_price", "rt_price_up", "rt_price_down"),
}


def _counters(
    store: Store, operator: Operator, start: dt.datetime, end: dt.datetime
) -> tuple[dict[AssetKey, pd.Series], dict[AssetKey, pd.Series]]:
    """Per asset: the export counter [kWh] and, for batteries, the throughput counter [kWh]."""
    parks = [p.id for p in operator.portfolio.parks]
    with store.session() as session:
        records = session.exec(
            select(TelemetryRecord)
            .where(
                TelemetryRecord.park_id.in_(parks),  # type: ignore[attr-defined]
                TelemetryRecord.measured_at >= start,
                TelemetryRecord.measured_at <= end,
            )
            .order_by(TelemetryRecord.measured_at)  # type: ignore[arg-type]
        ).all()
    exported: dict[AssetKey, dict[pd.Timestamp, float]] = {}
    throughput: dict[AssetKey, dict[pd.Timestamp, float]] = {}
    power: dict[AssetKey, dict[pd.Timestamp, float]] = {}
    known = {(p.id, a.id) for p in operator.portfolio.parks for a in p.assets}
    for record in records:
        key = (record.park_id, record.asset_id)
        if key not in known or not record.available:
            continue
        extra = json.loads(record.extra_json or "{}")
        reading = Telemetry(
            record.park_id,
            record.asset_id,
            record.measured_at,
            record.power_kw,
            record.soc,
            Health.OK,
            extra=extra,
        )
        stamp = pd.Timestamp(record.measured_at)
        value = exported_kwh(operator.portfolio.asset(key), reading)
        if value is not None:
            exported.setdefault(key, {})[stamp] = value
        elif record.power_kw is not None:
            power.setdefault(key, {})[stamp] = record.power_kw
        if "charged_kwh" in extra and "discharged_kwh" in extra:
            throughput.setdefault(key, {})[stamp] = extra["charged_kwh"] + extra["discharged_kwh"]
    for key, readings in power.items():
        if key not in exported and len(readings) > 1:
            # A device without an energy register (e.g. a SunSpec battery without WH
            # counters, an HTTP controller): meter it by integrating its power readings.
            log.info("meter_from_power_readings", park=key[0], asset=key[1], readings=len(readings))
            exported[key] = integrate_power(pd.Series(readings).sort_index()).to_dict()
    return (
        {k: pd.Series(v).sort_index() for k, v in exported.items()},
        {k: pd.Series(v).sort_index() for k, v in throughput.items()},
    )


def integrate_power(power_kw: pd.Series) -> pd.Series:
    """A cumulative energy counter [kWh] from power readings [kW] (trapezoid rule).

    Between two readings the power is taken to change linearly; the result
    is read like a meter's register by :func:`interval_energy`.
    """
    hours = np.diff(power_kw.index.as_unit("ns").asi8) / 3.6e12
    values = power_kw.to_numpy(float)
    steps = (values[1:] + values[:-1]) / 2 * hours
    return pd.Series(np.concatenate([[0.0], np.cumsum(steps)]), index=power_kw.index)


def interval_energy(counter: pd.Series, boundaries: pd.DatetimeIndex) -> np.ndarray:
    """Energy per interval [kWh] from a cumulative counter read at arbitrary instants.

    ``boundaries`` are the interval starts plus the last end (T+1 values);
    the counter is interpolated linearly to each boundary. Intervals with a
    boundary outside the readings are NaN.
    """
    times = counter.index.as_unit("ns").asi8.astype(float)
    at = boundaries.as_unit("ns").asi8.astype(float)
    values = np.interp(at, times, counter.to_numpy(float))
    values[(at < times[0]) | (at > times[-1])] = np.nan
    return np.diff(values)


def settle_day(operator: Operator, store: Store, day: dt.date) -> list[dict[str, Any]]:
    """Settle ``day`` for every park of the operator's portfolio and store the rows.

    Raises :class:`~vpp.LookAheadError` while a needed price is unpublished.
    """
    plan = operator.day_plan(day)
    rules = plan.rules
    index = plan.index
    step = pd.Timedelta(minutes=rules.interval_minutes)
    dt_h = step / pd.Timedelta(hours=1)
    needed = _PRICES[rules.settlement.rule]
    history = operator.data.history()
    missing = [c for c in needed if c not in history.columns]
    prices = history.reindex(index)
    if missing or prices.loc[:, list(needed)].isna().any().any():
        raise LookAheadError(
            f"prices {', '.join(needed)} for {day} are not all published yet "
            f"(columns missing: {missing or 'none'})"
        )
    boundaries = index.append(pd.DatetimeIndex([index[-1] + step]))
    slack = dt.timedelta(hours=2)
    exported, throughput = _counters(
        store, operator, index[0].to_pydatetime() - slack, boundaries[-1].to_pydatetime() + slack
    )
    parks = [p.id for p in operator.portfolio.parks]
    park_energy = {p: np.zeros(len(index)) for p in parks}
    park_wear = {p: np.zeros(len(index)) for p in parks}
    for park in operator.portfolio.parks:
        for asset in park.assets:
            key = (park.id, asset.id)
            counter = exported.get(key)
            if counter is None or len(counter) < 2:
                log.warning("meter_reading_missing", park=park.id, asset=asset.id, day=str(day))
                continue
            energy = interval_energy(counter, boundaries)
            if not np.isfinite(energy).all():
                first = index[~np.isfinite(energy)][0]
                log.warning(
                    "meter_reading_missing", park=park.id, asset=asset.id, interval=str(first)
                )
                energy = np.nan_to_num(energy)
            park_energy[park.id] += energy
            if isinstance(asset, BatterySpec) and key in throughput and len(throughput[key]) > 1:
                moved = np.nan_to_num(interval_energy(throughput[key], boundaries))
                park_wear[park.id] += moved / KWH_PER_MWH * asset.degradation_cost_per_mwh
    rows = settle_parks(
        day.isoformat(),
        operator.market.id,
        parks,
        plan.park_award_kw,
        park_energy,
        park_wear,
        prices,
        rules.settlement.rule,
        dt_h,
    )
    with store.session() as session:
        for row in rows:
            record = session.exec(
                select(SettlementRecord).where(
                    SettlementRecord.market_id == operator.market.id,
                    SettlementRecord.park_id == row["park_id"],
                    SettlementRecord.delivery_day == day,
                )
            ).first() or SettlementRecord(
                market_id=operator.market.id,
                park_id=str(row["park_id"]),
                delivery_day=day,
                da_revenue=0.0,
                rt_revenue=0.0,
                degradation_cost=0.0,
                net_revenue=0.0,
                imbalance_mwh=0.0,
            )
            record.da_revenue = float(row["da_revenue"])
            record.rt_revenue = float(row["rt_revenue"])
            record.degradation_cost = float(row["degradation_cost"])
            record.net_revenue = float(row["net_revenue"])
            record.imbalance_mwh = float(row["imbalance_mwh"])
            session.add(record)
    return rows

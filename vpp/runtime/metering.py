"""Settle a finished delivery day from what the daemon stored.

The formula is the backtest's (:func:`vpp.runtime.settlement.settle_parks`):
each park's share of the award at the day-ahead price, its deviation at the
real-time price, minus battery wear. What differs is where the delivered
energy comes from: the backtest reads its meters exactly at interval
boundaries; the daemon reads them when its jobs run, so each asset's
cumulative meter counter is interpolated linearly to the boundaries between
the two readings around each boundary (a counter is exact at its readings
and the power between two readings is what the device held). An interval
not bracketed by readings (device unavailable) counts zero energy and is
logged as ``meter_reading_missing`` -- the backtest's policy.

Registers are not trusted blindly (:func:`clean_register`, shared with the
backtest through :func:`meter_counters`): a register that goes *down* was
reset (device restart, wrap) and books only what it counted since, a step
beyond the nameplate power is a fault booked as 0, a long gap is reported.
Never a negative step, never phantom energy from a restart.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd
import structlog
from sqlmodel import select

from vpp.assets import ASSET_TYPES
from vpp.clawback import ClawbackTerms
from vpp.portfolio import capability
from vpp.runtime.carbon_budget import carbon_rows, check_budgets, day_factors
from vpp.runtime.operator import AssetKey, MarketPortfolio, Operator, exported_kwh
from vpp.runtime.settlement import settle_parks, settlement_prices
from vpp.store import SettlementRecord, Store, TelemetryRecord
from vpp.types import Health, Telemetry
from vpp.units import KWH_PER_MWH

log = structlog.get_logger(__name__)

# The one-way cumulative registers that :func:`vpp.runtime.operator.exported_kwh` settles from (and the
# battery's throughput), each asset type's ``meter_registers``: they only ever count up while the
# device runs.
REGISTERS = tuple(
    dict.fromkeys(name for entry in ASSET_TYPES.values() for name in entry.spec.meter_registers)
)
# A register step above this many times the asset's nameplate power x elapsed time is a fault.
PLAUSIBLE_RATE_FACTOR = 1.5
# A step between readings longer than this many times the median spacing is a gap.
GAP_FACTOR = 5.0
# Float noise of a register [kWh]: a smaller decrease is no reset, a smaller excess no fault.
REGISTER_TOLERANCE_KWH = 1e-6


@dataclass(frozen=True)
class RegisterCheck:
    """What :func:`clean_register` found: steps booked from a restart, as unknown, or over a gap."""

    resets: int = 0
    faults: int = 0
    gaps: int = 0
    first_reset: pd.Timestamp | None = None
    first_fault: pd.Timestamp | None = None
    longest_gap_h: float = 0.0


def clean_register(register: pd.Series, max_power_kw: float) -> tuple[pd.Series, RegisterCheck]:
    """A one-way cumulative register [kWh] with restarts and faults taken out.

    ``register`` holds raw readings (finite, sorted by time); the result is a
    counter with the same index whose steps are the energy booked between
    readings, never negative:

    * a step that *decreases* is a reset (device restart, register wrap): the
      device counted from zero since it restarted, so the step books the new
      reading (a lower bound: whatever flowed between the previous reading and
      the restart is unknown and not booked);
    * a step (or a post-reset reading) above ``PLAUSIBLE_RATE_FACTOR x
      max_power_kw x elapsed time`` is a fault, not energy: booked as 0;
    * a step longer than ``GAP_FACTOR`` x the median spacing is a gap; without
      a reset the register counted through it, so its step stands (reported only).
    """
    values = register.to_numpy(float)
    stamps = register.index.as_unit("ns").asi8
    hours = np.diff(stamps) / 3.6e12
    step = np.diff(values)
    reset = step < -REGISTER_TOLERANCE_KWH
    increment = np.where(reset, values[1:], np.maximum(step, 0.0))
    bound = PLAUSIBLE_RATE_FACTOR * max_power_kw * hours + REGISTER_TOLERANCE_KWH
    fault = (increment > bound) | (increment < 0)
    increment = np.where(fault, 0.0, increment)
    gap = hours > GAP_FACTOR * np.median(hours) if len(hours) else np.zeros(0, bool)
    counter = pd.Series(
        values[0] + np.concatenate([[0.0], np.cumsum(increment)]), index=register.index
    )
    at = register.index[1:]
    check = RegisterCheck(
        resets=int(reset.sum()),
        faults=int(fault.sum()),
        gaps=int(gap.sum()),
        first_reset=at[reset][0] if reset.any() else None,
        first_fault=at[fault][0] if fault.any() else None,
        longest_gap_h=float(hours[gap].max()) if gap.any() else 0.0,
    )
    return counter, check


@dataclass
class Meters:
    """Per asset: the export counter [kWh] and, for batteries, the throughput counter [kWh].

    ``resets``/``faults``/``gaps`` count what :func:`clean_register` found, per asset.
    """

    exported: dict[AssetKey, pd.Series] = field(default_factory=dict)
    throughput: dict[AssetKey, pd.Series] = field(default_factory=dict)
    resets: dict[AssetKey, int] = field(default_factory=dict)
    faults: dict[AssetKey, int] = field(default_factory=dict)
    gaps: dict[AssetKey, int] = field(default_factory=dict)


def meter_counters(portfolio: MarketPortfolio, readings: Iterable[Telemetry]) -> Meters:
    """The counters that settle, from available telemetry (the daemon's and the backtest's).

    Each register of :data:`REGISTERS` is cleaned by :func:`clean_register`
    (logged as ``meter_reset``, ``meter_fault``, ``meter_gap``); a device
    without registers is metered by integrating its power readings.
    """
    rows: dict[AssetKey, list[dict[str, Any]]] = {}
    for reading in readings:
        if reading.health is not Health.OK:
            continue
        # A register or power that is not a finite number (NaN, inf, text in a tampered
        # row) is no reading: NaN, then dropped below.
        row: dict[str, Any] = {
            k: _finite(v) for k, v in reading.extra.items() if k in REGISTERS
        }
        row["at"] = pd.Timestamp(reading.measured_at).as_unit("ns")
        row["power_kw"] = _finite(reading.power_kw)
        rows.setdefault((reading.park_id, reading.asset_id), []).append(row)
    meters = Meters()
    for key, asset_rows in rows.items():
        asset = portfolio.asset(key)
        frame = pd.DataFrame(asset_rows).groupby("at").last().sort_index()
        nameplate = capability(key[0], asset)
        max_power_kw = max(nameplate.max_export_kw, nameplate.max_import_kw)
        columns: dict[str, np.ndarray] = {}
        # Only the asset's own meter registers settle: another type may use the same name
        # for another quantity (a heat store's charged_kwh is heat, not electricity).
        own = set(asset.meter_registers) | set(asset.throughput_registers)
        for name in (c for c in frame.columns if c in own):
            raw = frame[name].astype(float)
            raw = raw[np.isfinite(raw)]
            if raw.empty:
                continue
            counter, check = clean_register(raw, max_power_kw)
            columns[name] = counter.reindex(frame.index).to_numpy(float)
            _report(key, name, check, meters)
        # exported_kwh is linear in the registers: apply it to whole columns at once.
        reading = Telemetry(key[0], key[1], frame.index[0], None, extra=cast(Any, columns))
        exported = exported_kwh(asset, reading)
        if exported is not None:
            series = pd.Series(exported, index=frame.index).dropna()
            if len(series):
                meters.exported[key] = series
        else:
            power = frame["power_kw"].dropna()
            if len(power) > 1:
                # A device without an energy register (e.g. a SunSpec battery without WH
                # counters, an HTTP controller): meter it by integrating its power readings.
                log.info(
                    "meter_from_power_readings", park=key[0], asset=key[1], readings=len(power)
                )
                meters.exported[key] = integrate_power(power)
                hours = np.diff(power.index.as_unit("ns").asi8) / 3.6e12
                gap = hours > GAP_FACTOR * np.median(hours)
                if gap.any():  # the trapezoid across a gap is a guess: say so
                    check = RegisterCheck(gaps=int(gap.sum()), longest_gap_h=float(hours.max()))
                    _report(key, "power_kw", check, meters)
        wearing = asset.throughput_registers  # a battery's charged + discharged
        if wearing and all(name in columns for name in wearing):
            total = columns[wearing[0]]
            for name in wearing[1:]:
                total = total + columns[name]
            meters.throughput[key] = pd.Series(total, index=frame.index).dropna()
    return meters


def _finite(value: Any) -> float:
    """``value`` as a float if it is a finite real number, else NaN."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return float("nan")
    number = float(value)
    return number if math.isfinite(number) else float("nan")


def _extra(record: TelemetryRecord) -> dict[str, Any] | None:
    """A stored reading's ``extra_json`` as an object; None (logged) if it is not one."""
    try:
        value = json.loads(record.extra_json or "{}")
    except ValueError:
        value = None
    if not isinstance(value, dict):
        log.warning(
            "telemetry_row_refused",
            park=record.park_id,
            asset=record.asset_id,
            measured_at=str(record.measured_at),
            id=record.id,
            reason="extra_json is not a JSON object",
        )
        return None
    return value


def _report(key: AssetKey, register: str, check: RegisterCheck, meters: Meters) -> None:
    park, asset = key
    if check.resets:
        meters.resets[key] = meters.resets.get(key, 0) + check.resets
        log.warning(
            "meter_reset",
            park=park,
            asset=asset,
            register=register,
            resets=check.resets,
            first_at=str(check.first_reset),
            booked="the reading after the reset, counted from zero",
        )
    if check.faults:
        meters.faults[key] = meters.faults.get(key, 0) + check.faults
        log.warning(
            "meter_fault",
            park=park,
            asset=asset,
            register=register,
            faults=check.faults,
            first_at=str(check.first_fault),
            booked="0 kWh: a step beyond the nameplate power x elapsed time",
        )
    if check.gaps:
        meters.gaps[key] = meters.gaps.get(key, 0) + check.gaps
        log.info(
            "meter_gap",
            park=park,
            asset=asset,
            register=register,
            gaps=check.gaps,
            longest_h=round(check.longest_gap_h, 3),
        )


def _counters(store: Store, operator: Operator, start: dt.datetime, end: dt.datetime) -> Meters:
    """:func:`meter_counters` of the telemetry stored between ``start`` and ``end``."""
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
    known = {(p.id, a.id) for p in operator.portfolio.parks for a in p.assets}
    readings = []
    for record in records:
        if not record.available or (record.park_id, record.asset_id) not in known:
            continue
        extra = _extra(record)
        if extra is None:
            continue
        readings.append(
            Telemetry(
                record.park_id,
                record.asset_id,
                record.measured_at,
                record.power_kw,
                record.soc,
                Health.OK,
                extra=extra,
            )
        )
    return meter_counters(operator.portfolio, readings)


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


def wear_cost_per_mwh(asset: Any) -> float | None:
    """Wear cost of ``asset`` per MWh moved through it [currency/MWh]; None: it does not wear."""
    return asset.wear_cost_per_mwh


@dataclass(frozen=True)
class DayEnergy:
    """What the meters say about one delivery day, per interval of its index.

    ``asset_energy_kwh``: per metered asset, energy exported (> 0 sold)
    [kWh]; ``park_energy_kwh`` its sum per park; ``park_wear_cost``: battery
    wear per park [currency]; ``throughput_kwh``: energy moved through each
    wearing asset (charged + discharged) [kWh].
    """

    asset_energy_kwh: dict[AssetKey, np.ndarray]
    park_energy_kwh: dict[str, np.ndarray]
    park_wear_cost: dict[str, np.ndarray]
    throughput_kwh: dict[AssetKey, np.ndarray]


def day_energy(
    portfolio: MarketPortfolio, meters: Meters, index: pd.DatetimeIndex, day: dt.date
) -> DayEnergy:
    """Interval energy per asset and park of ``day`` from the cleaned counters (both drivers).

    Each counter is interpolated to the interval boundaries (a missed reading
    spreads its energy instead of losing it). An interval outside an asset's
    readings, and an asset with fewer than two readings, count zero energy,
    logged ``meter_reading_missing``: energy is never invented.
    """
    step = index[1] - index[0] if len(index) > 1 else pd.Timedelta(hours=1)
    boundaries = index.append(pd.DatetimeIndex([index[-1] + step]))
    parks = [p.id for p in portfolio.parks]
    energy_by_asset: dict[AssetKey, np.ndarray] = {}
    park_energy = {p: np.zeros(len(index)) for p in parks}
    park_wear = {p: np.zeros(len(index)) for p in parks}
    throughput: dict[AssetKey, np.ndarray] = {}
    for key, counter in meters.exported.items():
        energy = _asset_energy(key, counter, boundaries, day)
        energy_by_asset[key] = energy
        park_energy[key[0]] += energy
        cost = wear_cost_per_mwh(portfolio.asset(key))
        if cost is not None and key in meters.throughput:
            moved = np.nan_to_num(interval_energy(meters.throughput[key], boundaries))
            throughput[key] = moved
            park_wear[key[0]] += moved / KWH_PER_MWH * cost
    for park in portfolio.parks:
        for asset in park.assets:
            if (park.id, asset.id) not in meters.exported:
                log.warning("meter_reading_missing", park=park.id, asset=asset.id, day=str(day))
    return DayEnergy(energy_by_asset, park_energy, park_wear, throughput)


def _asset_energy(
    key: AssetKey, counter: pd.Series, boundaries: pd.DatetimeIndex, day: dt.date
) -> np.ndarray:
    """One asset's interval energy [kWh]; unknown intervals count 0 (logged)."""
    if len(counter) < 2:
        log.warning("meter_reading_missing", park=key[0], asset=key[1], day=str(day))
        return np.zeros(len(boundaries) - 1)
    energy = interval_energy(counter, boundaries)
    if not np.isfinite(energy).all():
        first = boundaries[:-1][~np.isfinite(energy)][0]
        log.warning(
            "meter_reading_missing", park=key[0], asset=key[1], day=str(day), interval=str(first)
        )
        energy = np.nan_to_num(energy)
    return energy


def settle_day(operator: Operator, store: Store, day: dt.date) -> list[dict[str, Any]]:
    """Settle ``day`` for every park of the operator's portfolio and store the rows.

    Prices follow :func:`vpp.runtime.settlement.settlement_prices`: raises
    :class:`~vpp.LookAheadError` while a needed price is unpublished (the
    daemon retries later).
    """
    plan = operator.day_plan(day)
    rules = plan.rules
    index = plan.index
    step = pd.Timedelta(minutes=rules.interval_minutes)
    prices = settlement_prices(operator.data.history(), index, rules.settlement.rule, day)
    slack = dt.timedelta(hours=2)
    meters = _counters(
        store,
        operator,
        index[0].to_pydatetime() - slack,
        (index[-1] + step).to_pydatetime() + slack,
    )
    energy = day_energy(operator.portfolio, meters, index, day)
    operator.refresh_real_time_awards(day)
    rt_award_kw, rt_price = plan.real_time_books()  # LookAheadError: prices not out yet
    rows = settle_parks(
        day.isoformat(),
        operator.market.id,
        [p.id for p in operator.portfolio.parks],
        None if plan.award is None else plan.award.park_kw,
        energy.park_energy_kwh,
        energy.park_wear_cost,
        prices,
        rules.settlement.rule,
        step / pd.Timedelta(hours=1),
        park_rt_award_kw=rt_award_kw,
        rt_clearing_price=rt_price,
        clawback=ClawbackTerms.of(rules.settlement),
    )
    for row in rows:  # what the meters needed (also logged): none on a healthy day
        row["meter_resets"] = sum(n for k, n in meters.resets.items() if k[0] == row["park_id"])
        row["meter_faults"] = sum(n for k, n in meters.faults.items() if k[0] == row["park_id"])
    history = operator.data.history()
    grid = day_factors(operator.portfolio, index, history)
    checks = {
        c.park_id: c
        for c in check_budgets(operator.portfolio, energy, index, day, history, grid)
    }
    for row in rows:  # the daemon exports these as metrics; the settlement table ignores them
        check = checks.get(str(row["park_id"]))
        if check is not None:
            row["emissions_location_tco2"] = check.emissions_tco2
            row["carbon_budget_over_tco2"] = check.over_tco2
    _store_settlement(store, operator.market.id, day, rows)
    store.record_carbon_intervals(
        operator.market.id, day, carbon_rows(operator.portfolio, energy, index, day, grid)
    )
    return rows


def _store_settlement(
    store: Store, market_id: str, day: dt.date, rows: list[dict[str, Any]]
) -> None:
    """Insert or update one :class:`SettlementRecord` per park row."""
    with store.session() as session:
        for row in rows:
            record = session.exec(
                select(SettlementRecord).where(
                    SettlementRecord.market_id == market_id,
                    SettlementRecord.park_id == row["park_id"],
                    SettlementRecord.delivery_day == day,
                )
            ).first() or SettlementRecord(
                market_id=market_id,
                park_id=str(row["park_id"]),
                delivery_day=day,
                da_revenue=0.0,
                rt_revenue=0.0,
                degradation_cost=0.0,
                net_revenue=0.0,
                imbalance_mwh=0.0,
            )
            record.da_revenue = float(row["da_revenue"])
            record.rt_bid_revenue = float(row["rt_bid_revenue"])
            record.imbalance_revenue = float(row["imbalance_revenue"])
            record.clawback_revenue = float(row["clawback_revenue"])
            record.rt_awarded_mwh = float(row["rt_awarded_mwh"])
            record.rt_revenue = float(row["rt_revenue"])
            record.degradation_cost = float(row["degradation_cost"])
            record.net_revenue = float(row["net_revenue"])
            record.imbalance_mwh = float(row["imbalance_mwh"])
            session.add(record)

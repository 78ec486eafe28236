"""The backtest: the daemon's code path on historical prices, with honest settlement.

:func:`simulate` drives an :class:`vpp.runtime.operator.Operator` -- the same object
the daemon schedules -- through the daemon's own job plan
(:func:`vpp.runtime.jobs.day_jobs`): bid before gate closure, collect
awards at publication, dispatch at every interval start. Only three things
are replay versions: the clock (:class:`~vpp.runtime.clock.ReplayClock`),
the exchange (:class:`~market_replay.exchange.ReplayExchange`, which makes
look-ahead impossible) and the devices (simulated physics from
:mod:`adapters`, fed with the parks' real profiles and the real EV
sessions). Deviations from the awards are therefore real, and settle at
real-time prices (:mod:`vpp.runtime.settlement`).

:func:`run_backtest` runs the chosen strategy plus, in the same run, the
baselines: perfect foresight (the optimum with realized prices, an upper
bound), the ``persistence`` strategy and ``idle`` (no flexibility: what the
parks pay without the VPP).

Days missing from the price file (dropped by the importer's policy) split
the run into segments of consecutive days; batteries carry their state of
charge across a gap and nothing is traded during it.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import structlog

from adapters import SimulatedBattery, SimulatedEvHub
from market_replay.canonical import PriceFrame
from market_replay.exchange import ReplayExchange
from market_replay.importers import price_rule_breaks
from strategies import (
    StrategyOptions,
    get_strategy,
    initial_state,
    load_inputs,
    perfect_foresight,
    realized_states,
)
from vpp.awards import IntervalAward, delivery_intervals
from vpp.backtest.spool import SpooledFrame
from vpp.carbon.accounting import CarbonBooks, ParkFlows, account_park, grid_factors
from vpp.carbon.instruments import Instrument
from vpp.clawback import ClawbackTerms
from vpp.config.models import MarketConfig, MarketRules, ParkConfig
from vpp.errors import DataQualityError, InfeasibleError, InputError, UnmetDemandError
from vpp.runtime.clock import ReplayClock
from vpp.runtime.commodities import (
    balance_summary,
    day_balances,
    has_commodities,
    register_counters,
)
from vpp.runtime.devices import simulated_devices
from vpp.runtime.jobs import day_jobs
from vpp.runtime.metering import DayEnergy, Meters, day_energy, meter_counters
from vpp.runtime.operator import AssetKey, DayPlan, MarketPortfolio, Operator
from vpp.runtime.recording import MemoryRecorder
from vpp.runtime.settlement import (
    deviation_price_note,
    settle,
    settle_parks,
    settlement_prices,
)
from vpp.timeutil import day_intervals_utc
from vpp.types import Setpoint, Telemetry
from vpp.units import KW_PER_MW

log = structlog.get_logger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class BacktestOptions:
    """How a backtest runs: the strategy's options (passed down unchanged) and the run's own."""

    #: The main strategy's options; the baselines run with the same options under their names.
    strategy: StrategyOptions = field(default_factory=StrategyOptions)
    workers: int = 1
    safety_margin: dt.timedelta = dt.timedelta(minutes=30)
    baselines: bool = True
    #: Backtest prices beyond the market's floor/cap (refused by default); flagged in the summary.
    allow_out_of_rule_prices: bool = False
    #: The price file's name, for messages.
    price_file: str = "price file"
    #: Certificates and green-power contracts held against the run's import (market-based
    #: scope 2); none by default: nothing is retired in a backtest.
    carbon_instruments: tuple[Instrument, ...] = ()
    #: How instruments cover import: ``hourly`` or ``annual`` (:mod:`vpp.carbon.accounting`).
    carbon_matching: str = "hourly"


@dataclass
class RunResult:
    """One strategy simulated over the backtest days."""

    strategy: str
    portfolio: pd.DataFrame  # per interval
    #: Per interval and asset (long, :data:`ASSET_COLUMNS`), spooled to disk a day at a time;
    #: empty for the baselines of :func:`run_backtest` (the report does not use theirs).
    asset_rows: SpooledFrame
    settlement: pd.DataFrame  # per day and park
    solve_time_s: float
    bids_rejected: int
    fallback_days: int
    ev_unserved_kwh: float
    #: Heat and hydrogen per park, node and interval (:mod:`vpp.runtime.commodities`).
    balances: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: Real-time bids sent (none until the strategy makes real-time bids, issue #12).
    rt_bids_submitted: int = 0

    @property
    def assets(self) -> pd.DataFrame:
        """Every per-asset row in memory (tests, short runs); the report streams
        :attr:`asset_rows` instead."""
        return self.asset_rows.frame()

    @property
    def net_revenue(self) -> float:
        p = self.portfolio
        return float(p["da_revenue"].sum() + p["rt_revenue"].sum() - p["degradation_cost"].sum())


@dataclass
class BacktestResult:
    market_id: str
    currency: str
    timezone: str
    days: list[dt.date]
    main: RunResult
    foresight: pd.DataFrame  # per day: objective, status
    baselines: dict[str, RunResult] = field(default_factory=dict)
    wall_time_s: float = 0.0
    #: Set when the file breaks the market's price limits and the run was allowed anyway.
    out_of_rule_prices: str | None = None
    #: The main run's carbon books (per park and interval, :mod:`vpp.carbon.accounting`).
    carbon: CarbonBooks | None = None

    def unbounded_days(self) -> list[dt.date]:
        """Days without a perfect-foresight bound (no schedule could meet their heat or
        hydrogen demand): the capture ratios leave them out on both sides."""
        if not len(self.foresight):
            return []
        missing = self.foresight[~np.isfinite(self.foresight["revenue"].to_numpy(float))]
        return [pd.Timestamp(d).date() for d in missing["day"]]

    def summary(self) -> dict[str, object]:
        p = self.main.portfolio
        net = self.main.net_revenue
        pf = float(self.foresight["revenue"].sum()) if len(self.foresight) else float("nan")
        idle = self.baselines.get("idle")
        base = self.baselines.get("persistence")
        no_flex = idle.net_revenue if idle else float("nan")
        unbounded = self.unbounded_days()
        # Ratios compare like with like: the days that have a bound, on both sides.
        net_b = net - _days_net(self.main, unbounded)
        no_flex_b = no_flex - (_days_net(idle, unbounded) if idle else 0.0)
        out: dict[str, object] = {
            "market": self.market_id,
            "currency": self.currency,
            "start": self.days[0].isoformat(),
            "end": self.days[-1].isoformat(),
            "days": len(self.days),
            "intervals": len(p),
            "strategy": self.main.strategy,
            "net_revenue": round(net, 2),
            "da_revenue": round(float(p["da_revenue"].sum()), 2),
            "rt_revenue": round(float(p["rt_revenue"].sum()), 2),
            "rt_bid_revenue": round(float(p["rt_bid_revenue"].sum()), 2),
            "imbalance_revenue": round(float(p["imbalance_revenue"].sum()), 2),
            "clawback_revenue": round(float(p["clawback_revenue"].sum()), 2),
            "degradation_cost": round(float(p["degradation_cost"].sum()), 2),
            "perfect_foresight_revenue": round(pf, 2),
            "perfect_foresight_da_schedule": round(float(self.foresight["da_schedule"].sum()), 2)
            if len(self.foresight)
            else None,
            "capture_ratio": _ratio(net_b, pf),
            "baseline_strategy": "persistence" if base else None,
            "baseline_revenue": round(base.net_revenue, 2) if base else None,
            "no_flexibility_revenue": round(no_flex, 2) if idle else None,
            "flexibility_value": round(net - no_flex, 2) if idle else None,
            "flexibility_capture_ratio": _ratio(net_b - no_flex_b, pf - no_flex_b)
            if idle
            else None,
            "foresight_unbounded_days": len(unbounded),
            "imbalance_mwh": round(float(p["imbalance_mwh"].abs().sum()), 4),
            "rt_bids_submitted": self.main.rt_bids_submitted,
            "rt_awarded_mwh": round(float(p["rt_award_mwh"].abs().sum()), 4),
            "deviation_price": p.attrs["deviation_price"],
            "battery_equivalent_cycles": round(float(p.attrs.get("equivalent_cycles", 0.0)), 3),
            "ev_unserved_kwh": round(self.main.ev_unserved_kwh, 2),
            "bids_rejected": self.main.bids_rejected,
            "fallback_days": self.main.fallback_days,
            "solve_time_s": round(self.main.solve_time_s, 3),
            "wall_time_s": round(self.wall_time_s, 3),
        }
        if len(self.main.balances):
            dt_h = (p.index[1] - p.index[0]) / pd.Timedelta(hours=1) if len(p) > 1 else 0.25
            out.update(balance_summary(self.main.balances, dt_h))
        if self.carbon is not None:
            out.update(self.carbon.summary())
        if self.out_of_rule_prices is not None:
            out["warning"] = (
                "OUT-OF-RULE PRICES: revenue is computed on prices the market does not allow: "
                + self.out_of_rule_prices
            )
        return out


def _ratio(a: float, b: float) -> float | None:
    if not np.isfinite(a) or not np.isfinite(b) or abs(b) < 1e-9:
        return None
    return round(a / b, 4)


def _days_net(run: RunResult, days: Sequence[dt.date]) -> float:
    """A run's net revenue on ``days`` (its settlement rows of those days)."""
    if not days or not len(run.settlement):
        return 0.0
    wanted = {d.isoformat() for d in days}
    rows = run.settlement[run.settlement["day"].astype(str).isin(wanted)]
    return float(rows["net_revenue"].sum())


def segments(days: Sequence[dt.date]) -> list[list[dt.date]]:
    """Runs of consecutive days."""
    out: list[list[dt.date]] = []
    for day in sorted(days):
        if out and (day - out[-1][-1]).days == 1:
            out[-1].append(day)
        else:
            out.append([day])
    return out


# --------------------------------------------------------------------------- simulate


def simulate(
    portfolio: MarketPortfolio,
    prices: PriceFrame,
    days: Sequence[dt.date],
    options: BacktestOptions,
    strategy_name: str | None = None,
    progress: Progress | None = None,
    *,
    keep_days: bool = False,
) -> RunResult:
    """Run one strategy through ``days`` with the daemon's job plan.

    Each day is settled as the run goes and what only it needed is then dropped
    (:class:`_Books`); ``keep_days`` keeps it in the operator and the recorder (tests
    that hand a simulated day to the daemon's settlement).
    """
    name = strategy_name or options.strategy.name
    strategy = get_strategy(options.strategy.replace(name=name))
    market = portfolio.market
    runs = segments(days)
    first_jobs = day_jobs(market.rules_on(runs[0][0]), runs[0][0], options.safety_margin)
    clock = ReplayClock(first_jobs[0].run_at)
    exchange = ReplayExchange(prices.frame, market, clock)
    recorder = MemoryRecorder()
    operator = Operator(
        portfolio,
        strategy,
        exchange=exchange,
        data=exchange,
        clock=clock,
        devices={},
        recorder=recorder,
    )
    soc: dict[AssetKey, float] = {}
    ev_unserved_kwh = 0.0
    done = 0
    books = _Books(name, portfolio, prices, operator, recorder, forget=not keep_days)
    products = _backtested_products(market, prices, runs, strategy.options.real_time_bids)
    for run in runs:
        jobs = sorted(
            j
            for day in run
            for j in day_jobs(
                market.rules_on(day), day, options.safety_margin, real_time_products=products
            )
        )
        index = _segment_index(portfolio, run)
        for job in jobs:
            clock.advance_to(max(job.run_at, clock.now()))
            if job.kind == "day_ahead":
                operator.submit_day_ahead(job.delivery_day)
            elif job.kind == "awards":
                operator.collect_awards(job.delivery_day)
            elif job.kind == "rt_bid":
                assert job.product_id is not None
                assert job.interval_start is not None
                operator.submit_real_time(job.product_id, job.interval_start)
            else:
                if not operator.devices:
                    devices, sessions = simulated_devices(portfolio, clock, index, soc)
                    operator.devices, operator.sessions = devices, sessions
                operator.dispatch(job.interval_start)  # type: ignore[arg-type]
                if job.interval_start == operator.day_plan(job.delivery_day).index[-1]:
                    operator.close_day(job.delivery_day)
                    books.settle_closed(keep=job.delivery_day)
                    done += 1
                    if progress:
                        progress(name, done, len(days))
        ev_unserved_kwh += _close_segment(operator, clock, index, soc)
        books.settle_closed()
    return books.result(days, ev_unserved_kwh)


def _backtested_products(
    market: MarketConfig, prices: PriceFrame, runs: Sequence[Sequence[dt.date]], enabled: bool
) -> tuple[str, ...]:
    """The real-time products a backtest bids into: enabled on some day of the run, not an
    auction without price data, and cleared against columns the price file has."""
    if not enabled:
        return ()
    ids: dict[str, None] = {}
    for run in runs:
        for day in run:
            for product in market.rules_on(day).real_time_products:
                if (
                    product.enabled
                    and product.has_price_data
                    and set(product.price_columns) <= set(prices.frame.columns)
                ):
                    ids[product.id] = None
    return tuple(ids)


def _segment_index(portfolio: MarketPortfolio, run: Sequence[dt.date]) -> pd.DatetimeIndex:
    """The UTC intervals of a run of consecutive days, each day on its own schedule grid."""
    market = portfolio.market
    return pd.DatetimeIndex(
        np.concatenate(
            [
                day_intervals_utc(d, market.timezone, market.rules_on(d).interval_minutes)
                .as_unit("ns")
                .asi8
                for d in run
            ]
        )
    ).tz_localize("UTC")


def _close_segment(
    operator: Operator, clock: ReplayClock, index: pd.DatetimeIndex, soc: dict[AssetKey, float]
) -> float:
    """Take the closing meter readings at the segment's end and release its devices.

    Batteries' state of charge is kept in ``soc`` for the next segment; returns
    the EV energy the hubs could not serve [kWh].
    """
    end = index[-1] + (index[1] - index[0])
    clock.advance_to(end.to_pydatetime())
    operator.measure()  # closing meter readings of the segment
    ev_unserved_kwh = 0.0
    for key, device in operator.devices.items():
        if isinstance(device, SimulatedBattery):
            soc[key] = device.soc
        if isinstance(device, SimulatedEvHub):
            ev_unserved_kwh += device.unserved_kwh
    operator.devices = {}
    return ev_unserved_kwh


ASSET_COLUMNS = [
    "interval_start",
    "park_id",
    "asset_id",
    "da_price",
    "rt_price",
    "bid_curve_mw",
    "award_share_kw",
    "setpoint_kw",
    "actual_kw",
    "soc_end",
]


class _Books:
    """A run's settled days, accounted one day at a time while the run goes on.

    A day is settled once the day after it has closed, or at its segment's
    end (:meth:`settle_closed`): by then every real-time price of the day is
    published and the meters have been read past its end. Settling books the
    day's plan, prices and metered energy (:func:`_account_day`), appends its
    per-asset rows to a spool on disk (:class:`~vpp.backtest.spool.SpooledFrame`)
    and forgets what only that day needed: its plan, its bids and awards in the
    recorder, its setpoints and the telemetry before its end. So a run's memory
    does not grow with its days (issue 16); the per-interval portfolio frame and
    the settlement rows, a few floats per interval, are what stays.

    The meters of a day are the telemetry from each asset's last reading at or
    before the day's start onwards (:func:`_Books._window`): the readings the
    day's interval boundaries interpolate between and the step into the day
    that :func:`vpp.runtime.metering.clean_register` checks, as when the whole
    run's telemetry was cleaned at once.
    """

    def __init__(
        self,
        name: str,
        portfolio: MarketPortfolio,
        prices: PriceFrame,
        operator: Operator,
        recorder: MemoryRecorder,
        *,
        forget: bool = True,
    ) -> None:
        self.name = name
        self.forget = forget
        self.portfolio_config = portfolio
        self.prices = prices
        self.operator = operator
        self.recorder = recorder
        self.portfolio: list[pd.DataFrame] = []  # per interval, per day
        self.assets = SpooledFrame(ASSET_COLUMNS)  # rows of ASSET_COLUMNS, per day
        self.settlement: list[dict[str, Any]] = []  # per day and park
        self.balances: list[pd.DataFrame] = []
        self.deviation_notes: dict[str, None] = {}
        self.fallback_days = 0
        self.solve_time_s = 0.0
        self.moved_kwh = 0.0  # battery throughput / 2, for equivalent cycles
        self.rt_bids = 0
        self.bids_rejected = 0
        self._closed: list[dt.date] = []

    def settle_closed(self, keep: dt.date | None = None) -> None:
        """Settle the closed days, all but ``keep`` (the day just closed: its last interval
        is still running); record ``keep`` as closed."""
        for day in [d for d in self._closed if d != keep]:
            self._settle(day)
            self._closed.remove(day)
        if keep is not None:
            self._closed.append(keep)

    def _settle(self, day: dt.date) -> None:
        operator, recorder, portfolio = self.operator, self.recorder, self.portfolio_config
        plan = operator.day_plan(day)
        end = plan.index[-1] + (plan.index[1] - plan.index[0])
        if pd.Timestamp(operator.clock.now()) < end:  # pragma: no cover - a bug, not input
            raise AssertionError(f"settling {day} before its end {end}")
        operator.refresh_real_time_awards(day)  # every real-time price of the day is out
        self.rt_bids += len(plan.rt_bids)
        window = self._window(plan.index[0])
        meters = meter_counters(portfolio, window)
        observed = _Observed.of(window, recorder.setpoints)
        _account_day(portfolio, self.prices, plan, day, meters, observed, self)
        if has_commodities(portfolio):
            counters = register_counters(portfolio, window)
            self.balances.append(day_balances(portfolio, counters, plan.index))
        self.deviation_notes[
            deviation_price_note(plan.rules.settlement, self.prices.frame.columns)
        ] = None
        if self.forget:
            self._forget(day, plan, end)

    def _window(self, start: pd.Timestamp) -> list[Telemetry]:
        """The telemetry from each asset's last reading at or before ``start`` onwards."""
        readings = self.recorder.telemetry
        first: dict[AssetKey, pd.Timestamp] = {}
        for reading in readings:
            at = pd.Timestamp(reading.measured_at)
            if at <= start:
                key = (reading.park_id, reading.asset_id)
                if key not in first or at > first[key]:
                    first[key] = at
        return [
            r for r in readings
            if pd.Timestamp(r.measured_at) >= first.get((r.park_id, r.asset_id), start)
        ]

    def _forget(self, day: dt.date, plan: DayPlan, end: pd.Timestamp) -> None:
        """Drop what only the settled ``day`` needed (its next day's meters start at ``end``)."""
        recorder = self.recorder
        recorder.telemetry = self._window(end)
        recorder.setpoints = [
            sp for sp in recorder.setpoints if pd.Timestamp(sp.interval_start) >= end
        ]
        key = self.operator.bid_key(day)
        self.bids_rejected += sum(
            1 for bid, status, *_ in recorder.bids
            if bid.delivery_day == day and status == "rejected"
        )
        recorder.bids = [entry for entry in recorder.bids if entry[0].delivery_day != day]
        recorder.plans.pop(key, None)
        recorder.awards.pop(key, None)
        for rt_key in plan.rt_bids:
            recorder.rt_bids.pop(rt_key, None)
            recorder.rt_awards.pop(rt_key, None)
        self.operator.days.pop(day, None)

    def result(self, days: Sequence[dt.date], ev_unserved_kwh: float) -> RunResult:
        """The run's books once every day is settled."""
        if self._closed:  # pragma: no cover - simulate settles every segment's days
            raise AssertionError(f"days left unsettled: {self._closed}")
        portfolio_frame = pd.concat(self.portfolio)
        portfolio_frame.index.name = "interval_start"
        capacity_kwh = _battery_capacity_kwh(self.portfolio_config)
        portfolio_frame.attrs["equivalent_cycles"] = (
            self.moved_kwh / capacity_kwh if capacity_kwh else 0.0
        )
        portfolio_frame.attrs["deviation_price"] = " | ".join(self.deviation_notes)
        if not any(c in self.prices.frame for c in ("rt_price", "rt_price_up")):
            log.warning("deviation_settled_at_day_ahead_price", strategy=self.name, days=len(days))
        rejected = self.bids_rejected + sum(
            1 for _, status, *_ in self.recorder.bids if status == "rejected"
        )
        return RunResult(
            self.name,
            portfolio_frame,
            self.assets,
            pd.DataFrame(self.settlement),
            self.solve_time_s,
            rejected,
            self.fallback_days,
            ev_unserved_kwh,
            pd.concat(self.balances, ignore_index=True) if self.balances else pd.DataFrame(),
            self.rt_bids,
        )


@dataclass(frozen=True)
class _Observed:
    """The recorder's readings keyed for lookup: state of charge and setpoints."""

    socs: dict[AssetKey, dict[pd.Timestamp, float]]
    setpoints: dict[tuple[str, str, pd.Timestamp], float]

    @classmethod
    def of(cls, telemetry: Sequence[Telemetry], setpoints: Sequence[Setpoint]) -> _Observed:
        socs: dict[AssetKey, dict[pd.Timestamp, float]] = {}
        for reading in telemetry:
            if reading.soc is not None:
                stamp = pd.Timestamp(reading.measured_at).as_unit("ns")
                socs.setdefault((reading.park_id, reading.asset_id), {})[stamp] = reading.soc
        keyed = {
            (sp.park_id, sp.asset_id, pd.Timestamp(sp.interval_start).as_unit("ns")): sp.power_kw
            for sp in setpoints
        }
        return cls(socs, keyed)


def _battery_capacity_kwh(portfolio: MarketPortfolio) -> float:
    """Total battery energy capacity [kWh] (the base of equivalent cycles)."""
    return sum(
        a.soc_capacity_kwh
        for p in portfolio.parks
        for a in p.assets
        if a.soc_capacity_kwh is not None and a.throughput_registers  # batteries, not heat stores
    )


def _account_day(
    portfolio: MarketPortfolio,
    prices: PriceFrame,
    plan: DayPlan,
    day: dt.date,
    meters: Meters,
    observed: _Observed,
    books: _Books,
) -> None:
    """Turn one day's telemetry counters, awards and prices into settled intervals in ``books``.

    The steps: the plan's bids and awards (:func:`_book_plan`), the
    settlement prices (:func:`vpp.runtime.settlement.settlement_prices`), the
    metered energy (:func:`vpp.runtime.metering.day_energy`, the daemon's
    metering), one row per asset and interval (:func:`_asset_rows`, spooled to
    disk), the portfolio's settled intervals (:func:`_portfolio_intervals`) and
    the parks' settlement rows (:func:`vpp.runtime.settlement.settle_parks`).
    """
    rule = plan.rules.settlement.rule
    curve_text, share_kw = _book_plan(plan, books)
    index = plan.index
    dt_h = (index[1] - index[0]) / pd.Timedelta(hours=1)
    frame = settlement_prices(prices.frame, index, rule, day)
    energy = day_energy(portfolio, meters, index, day)
    rows: list[tuple[Any, ...]] = []
    for key, asset_energy in energy.asset_energy_kwh.items():
        if key in energy.throughput_kwh:
            books.moved_kwh += float(energy.throughput_kwh[key].sum()) / 2
        rows += _asset_rows(
            key, index, frame, asset_energy / dt_h, curve_text, share_kw, observed
        )
    books.assets.append(pd.DataFrame(rows, columns=ASSET_COLUMNS))
    books.portfolio.append(_portfolio_intervals(plan, frame, energy, dt_h))
    rt_award_kw, rt_price = plan.real_time_books()
    books.settlement += settle_parks(
        day.isoformat(),
        portfolio.market.id,
        [p.id for p in portfolio.parks],
        None if plan.award is None else plan.award.park_kw,
        energy.park_energy_kwh,
        energy.park_wear_cost,
        frame,
        rule,
        dt_h,
        park_rt_award_kw=rt_award_kw,
        rt_clearing_price=rt_price,
        clawback=ClawbackTerms.of(plan.rules.settlement),
    )


def _book_plan(
    plan: DayPlan, books: _Books
) -> tuple[dict[pd.Timestamp, str], dict[tuple[str, str, pd.Timestamp], float]]:
    """The day's bid curve (as text) per interval and award share [kW] per asset and interval.

    Also books the plan's fallback day and its solve time.
    """
    curve_text: dict[pd.Timestamp, str] = {}
    share_kw: dict[tuple[str, str, pd.Timestamp], float] = {}
    if plan.result is not None:
        books.fallback_days += int(plan.result.fallback)
        if plan.result.stats is not None:
            books.solve_time_s += plan.result.stats.solve_s
        product_minutes = plan.rules.day_ahead.interval_minutes
        for curve in plan.result.bid.curves:
            text = " ".join(f"{pt.price_per_mwh:g}:{pt.quantity_mw:g}" for pt in curve.points)
            for t in plan.index[delivery_intervals(plan.index, curve.interval_start, product_minutes)]:
                curve_text[t] = text
        assets = None if plan.award is None else plan.award.asset_kw
        if assets is not None and plan.awards:
            for (park_id, asset_id), values in assets.items():
                for stamp, power_kw in zip(plan.index, values.to_numpy(float), strict=True):
                    share_kw[(park_id, asset_id, stamp)] = float(power_kw)
    books.solve_time_s += float(sum(plan.rt_stats))
    return curve_text, share_kw


def _asset_rows(
    key: AssetKey,
    index: pd.DatetimeIndex,
    frame: pd.DataFrame,
    actual_kw: np.ndarray,
    curve_text: dict[pd.Timestamp, str],
    share_kw: dict[tuple[str, str, pd.Timestamp], float],
    observed: _Observed,
) -> list[tuple[Any, ...]]:
    """One row of :data:`ASSET_COLUMNS` per interval of the day for one asset."""
    ends = index + (index[1] - index[0])
    soc_values = [observed.socs.get(key, {}).get(t, np.nan) for t in ends]
    return [
        (
            t,
            key[0],
            key[1],
            frame["da_price"].iloc[i],
            frame["rt_price"].iloc[i] if "rt_price" in frame else np.nan,
            curve_text.get(t, ""),
            share_kw.get((key[0], key[1], t), np.nan),
            observed.setpoints.get((key[0], key[1], t), np.nan),
            actual_kw[i],
            soc_values[i],
        )
        for i, t in enumerate(index)
    ]


def _portfolio_intervals(
    plan: DayPlan, frame: pd.DataFrame, energy: DayEnergy, dt_h: float
) -> pd.DataFrame:
    """The portfolio's prices, award, delivery and settlement per interval of the day."""
    index = plan.index
    award_mw = pd.Series(
        (plan.award or IntervalAward.zero(index, [])).portfolio_mw, index=index
    )
    actual_mw = pd.Series(
        sum(energy.park_energy_kwh.values()) / dt_h / KW_PER_MW, index=index
    )
    rt_award_kw, rt_price = plan.real_time_books()
    settled = settle(
        award_mw,
        actual_mw,
        frame,
        plan.rules.settlement.rule,
        dt_h,
        rt_award_mw=None if rt_award_kw is None
        else pd.Series(rt_award_kw.sum(axis=1).to_numpy() / KW_PER_MW, index=index),
        rt_clearing_price=rt_price,
        clawback=ClawbackTerms.of(plan.rules.settlement),
    )
    return pd.DataFrame(
        {
            "da_price": frame["da_price"],
            "rt_price": frame.get("rt_price", np.nan),
            "award_mw": award_mw,
            "actual_mw": actual_mw,
            **{c: settled[c] for c in settled.columns},
            "degradation_cost": sum(energy.park_wear_cost.values()),
        },
        index=index,
    )


# --------------------------------------------------------------------------- carbon


def carbon_books(
    portfolio: MarketPortfolio,
    prices: PriceFrame,
    run: RunResult,
    days: Sequence[dt.date],
    options: BacktestOptions,
) -> CarbonBooks:
    """The carbon books of a run from its metered asset energy (:mod:`vpp.carbon.accounting`).

    Each park's grid flow per interval is the net of its assets' metered energy
    (import where it draws, export where it feeds in); its on-site renewable
    generation is what its ``onsite_renewable`` assets (PV) produced. The interval
    intensity comes from the price file's published fundamentals where it has them.
    """
    market = portfolio.market
    index = pd.DatetimeIndex(run.portfolio.index)
    dt_h = prices.dt_h
    # Per park, the metered power of each asset per interval, built a spooled day at a time.
    parts: dict[str, list[pd.DataFrame]] = {park.id: [] for park in portfolio.parks}
    for chunk in run.asset_rows.chunks(["interval_start", "park_id", "asset_id", "actual_kw"]):
        for park in portfolio.parks:
            rows = chunk[chunk["park_id"] == park.id]
            if len(rows):
                parts[park.id].append(rows.pivot_table(
                    index="interval_start", columns="asset_id", values="actual_kw", aggfunc="sum"
                ))
    grid = grid_factors(
        index,
        market.timezone,
        portfolio.carbon,
        area=market.carbon_area,
        fundamentals=prices.frame,
        region_hint=f"the market file of {market.id}",
    )
    books = []
    for park in portfolio.parks:
        power_kw = pd.concat(parts[park.id]) if parts[park.id] else pd.DataFrame()
        power_kw = power_kw.reindex(columns=sorted(power_kw.columns))
        energy_kwh = power_kw.reindex(index).fillna(0.0) * dt_h
        renewable = [a.id for a in park.assets if a.onsite_renewable and a.id in energy_kwh]
        flows = ParkFlows.from_net(
            park.id,
            index,
            energy_kwh.sum(axis=1).to_numpy(float),
            energy_kwh[renewable].clip(lower=0.0).sum(axis=1).to_numpy(float),
        )
        books.append(
            account_park(
                flows,
                grid,
                instruments=[
                    i for i in options.carbon_instruments if i.park_id in (None, park.id)
                ],
                matching=options.carbon_matching,
                fuels=park.fuels,
                days=len(days),
                timezone=market.timezone,
            )
        )
    return CarbonBooks(tuple(books), carbon_price_per_t=options.strategy.carbon_price_per_t)


# --------------------------------------------------------------------------- foresight


def _without_wear(park: ParkConfig) -> ParkConfig:
    """The park with zero battery degradation cost (for the day-ahead position bound)."""
    assets = [
        a.without_wear() for a in park.assets
    ]
    return park.model_copy(update={"assets": assets})


def _best(
    parks: list[ParkConfig],
    inputs: dict[str, Any],
    states: dict[str, Any],
    rules: MarketRules,
    price: pd.Series,
    options: BacktestOptions,
) -> tuple[float, float]:
    """Perfect-foresight objective and solve seconds of ``parks`` at one price series."""
    result = perfect_foresight(
        parks,
        inputs,
        states,
        rules.interval_minutes,
        price,
        solver=options.strategy.solver,
        time_limit_s=options.strategy.time_limit_s,
    )
    stats = result.schedule.stats
    return result.objective, stats.solve_s if stats else 0.0


def _bids_regulating(rules: MarketRules, frame: pd.DataFrame, options: BacktestOptions) -> bool:
    """Whether the run may be activated in a regulating product on the day of ``rules``: it
    bids real time and a regulating product is enabled, priced by the file (every interval of
    the day), as :func:`_backtested_products` picks the products it bids into."""
    if not options.strategy.real_time_bids:
        return False
    return any(
        product.kind == "regulating"
        and product.enabled
        and product.has_price_data
        and all(c in frame and frame[c].notna().all() for c in product.price_columns)
        for product in rules.real_time_products
    )


def _day_bound(
    parks: list[ParkConfig],
    inputs: dict[str, Any],
    states: dict[str, Any],
    rules: MarketRules,
    frame: pd.DataFrame,
    options: BacktestOptions,
) -> tuple[float, float, float]:
    """(bound, day-ahead schedule value, solve seconds) of one day (see :func:`foresight`);
    raises :class:`~vpp.errors.InfeasibleError` when no schedule serves the day."""
    da_schedule, solve_s = _best(parks, inputs, states, rules, frame["da_price"], options)
    bound = da_schedule
    has_rt = "rt_price" in frame and frame["rt_price"].notna().all()
    if rules.settlement.rule == "two_settlement" and has_rt:
        physical, s1 = _best(parks, inputs, states, rules, frame["rt_price"], options)
        position, s2 = _best(
            [_without_wear(p) for p in parks],
            inputs,
            states,
            rules,
            frame["da_price"] - frame["rt_price"],
            options,
        )
        bound = max(physical + position, da_schedule)
        solve_s += s1 + s2
    elif rules.settlement.rule == "two_price_imbalance" and _bids_regulating(
        rules, frame, options
    ):
        result = perfect_foresight(
            parks, inputs, states, rules.interval_minutes, frame["da_price"],
            rt_price_up=frame["rt_price_up"], rt_price_down=frame["rt_price_down"],
            solver=options.strategy.solver, time_limit_s=options.strategy.time_limit_s,
        )
        bound = max(result.objective, da_schedule)
        solve_s += result.schedule.stats.solve_s if result.schedule.stats else 0.0
    return bound, da_schedule, solve_s


def foresight(
    portfolio: MarketPortfolio,
    prices: PriceFrame,
    days: Sequence[dt.date],
    options: BacktestOptions,
) -> pd.DataFrame:
    """Perfect foresight per day: realized prices, realized EV sessions, configured start state.

    Two numbers per day:

    * ``da_schedule``: the best physical schedule sold at the realized
      day-ahead prices and delivered exactly (no deviation);
    * ``revenue``: an upper bound on what any strategy can earn under the
      day's settlement rule. Under two-settlement a strategy earns
      ``a * da + (x - a) * rt - wear(x)`` for an award ``a`` and delivery
      ``x``, both physically feasible schedules (awards interpolate the
      bid's scenario schedules), so the bound is
      ``max_x (x * rt - wear(x)) + max_a a * (da - rt)``: two LPs of the same
      model. A real-time energy offer (ERCOT) is paid ``rt`` too, so the same
      bound holds with real-time bids. Under the Nordic two-price rule (up >=
      spot >= down) without real-time bids no deviation pays, so the bound is
      ``da_schedule``.

    With real-time bids (``options.strategy.real_time_bids``) on a day with an
    enabled regulating product priced by the file (mFRR energy), the strategy
    also earns activations at the regulating prices, which ``da_schedule``
    does not cover. The bound is then the larger of ``da_schedule`` and
    :func:`strategies.foresight._regulating_bound`, an LP of the Nordic
    settlement itself over two copies of the park models (the sold schedule
    ``a`` and the physical ``x``). Why it bounds what a strategy earns: the
    strategy's settled day is ``a * da + u * up + d * down + value(e) -
    cost(x)`` with ``a`` its day-ahead award, ``u >= 0`` / ``d <= 0`` its up /
    down activations, ``e = x - a - u - d`` its imbalance (a surplus at the down
    price, a shortfall at the up price) -- the LP's objective at the point
    ``(a, x, u, d, e)``. That point is feasible for the LP when

    * ``a`` is a feasible schedule: awards interpolate the bid's scenario
      schedules, so they are, up to the award's lot rounding -- there the
      argument is not exact: the strategy sells a residual ``r`` at ``da``
      that the LP must book as imbalance (never better than the day-ahead
      price: ``e * down <= e * da``, and ``e * up <= e * da`` for a shortfall),
      so the bound may fall short by ``|r| * max(up - da, da - down)``; and the
      sold copy has the realized EV sessions, the bid the expected ones (the
      two-settlement ``max_a`` assumes the same);
    * ``x`` is what was delivered: feasible, since the devices are the models;
    * activations happen only where the regulating price is beyond the spot
      (up bids are priced above the day-ahead price, down bids below: the
      strategy's curves start at the real-time forecast, by default the
      published day-ahead price, plus a spread of that direction's sign); a
      strategy bidding up at or below the spot would be activated at the spot
      in hours without regulation, which the LP books as imbalance instead;
    * each direction offers no more than the grid connection allows from the
      award (the curves are re-planned schedules' deviations, rounded to lots
      towards zero). Up and down bids may both be activated in one hour (947
      hours of DK1 2016 have both regulating prices off the spot); the LP
      allows that too, within those limits, so the bound is loose there.
    """
    rows = []
    for day in days:
        rules = portfolio.market.rules_on(day)
        index = day_intervals_utc(day, portfolio.market.timezone, rules.interval_minutes).as_unit(
            "ns"
        )
        frame = prices.frame.reindex(index)
        parks = list(portfolio.parks)
        inputs = {p.id: load_inputs(p, portfolio.config_dirs[p.id], index) for p in parks}
        states = {
            p.id: realized_states(p, portfolio.config_dirs[p.id], index, initial_state(p))
            for p in parks
        }

        try:
            bound, da_schedule, solve_s = _day_bound(parks, inputs, states, rules, frame, options)
        except InfeasibleError as exc:
            # No schedule serves the day (an unmeetable heat or hydrogen demand, or a store's
            # balance that realized inputs cannot close): there is no bound to compare with,
            # so the day is left out of both sides of the capture ratios (the run itself
            # falls back and reports what it measured).
            event = "foresight_unmeetable" if isinstance(exc, UnmetDemandError) else "foresight_infeasible"
            log.warning(event, day=str(day), reason=str(exc))
            rows.append({"day": day, "revenue": np.nan, "da_schedule": np.nan, "solve_s": 0.0})
            continue
        rows.append({"day": day, "revenue": bound, "da_schedule": da_schedule, "solve_s": solve_s})
    return pd.DataFrame(rows)


def on_schedule_grid(prices: PriceFrame, interval_minutes: int) -> PriceFrame:
    """``prices`` on the market's schedule interval: each row's values apply to all of its
    sub-intervals (an hourly day-ahead price holds for its four quarter-hours, the rule
    the ERCOT join uses too). Finer files are refused, never averaged silently."""
    if prices.interval_minutes == interval_minutes:
        return prices
    if prices.interval_minutes % interval_minutes:
        raise InputError(
            f"price file has {prices.interval_minutes}-min intervals; the market schedules "
            f"{interval_minutes}-min intervals, which do not divide them"
        )
    realtime = [c for c in ("rt_price", "rt_price_up", "rt_price_down") if c in prices.frame]
    if realtime:
        # An hourly real-time price copied onto quarter-hours would be published when the
        # first quarter ends, 45 minutes before it was known: refuse rather than leak.
        raise InputError(
            f"price file has {prices.interval_minutes}-min real-time prices ({', '.join(realtime)}) "
            f"but the market settles {interval_minutes}-min intervals; import real-time prices "
            "at the settlement resolution"
        )
    parts = prices.interval_minutes // interval_minutes
    frame = prices.frame
    index = frame.index.repeat(parts) + pd.to_timedelta(
        np.tile(np.arange(parts) * interval_minutes, len(frame)), unit="min"
    )
    expanded = pd.DataFrame(
        np.repeat(frame.to_numpy(), parts, axis=0), index=index, columns=frame.columns
    )
    expanded = expanded.astype(frame.dtypes.to_dict())
    expanded.index.name = frame.index.name
    return PriceFrame(expanded, prices.market_id, prices.currency, interval_minutes)


def _worker_logging() -> None:
    """Workers log JSON lines to stderr, warnings and up (the main process shows progress)."""
    from vpp.logging import configure_logging

    configure_logging(json=True, level="WARNING")


def _references(
    portfolio: MarketPortfolio,
    prices: PriceFrame,
    days: list[dt.date],
    options: BacktestOptions,
    strategies: list[str],
    progress: Progress | None = None,
) -> tuple[pd.DataFrame, dict[str, RunResult]]:
    """Perfect foresight and the baseline strategies (run in a worker process when possible).

    The baselines' per-asset rows are dropped: the report uses only their per-interval
    portfolio and settlement, and a worker would send the rows back through memory.
    """
    bound = foresight(portfolio, prices, days, options)
    runs = {name: simulate(portfolio, prices, days, options, name, progress) for name in strategies}
    for run in runs.values():
        run.asset_rows.close()
    return bound, runs


def _check_inputs(
    portfolio: MarketPortfolio,
    prices: PriceFrame,
    days: Sequence[dt.date],
    options: BacktestOptions,
) -> str | None:
    """Refuse, with one line, inputs that would run but give wrong numbers.

    * the file's currency must be the market's;
    * every price must lie within the floor/cap in force on its day
      (``price_limits``); with ``allow_out_of_rule_prices`` the run goes on
      and the returned description is put in the summary as a warning;
    * the first day needs published day-ahead history before it (the
      forecasters have no honest guess without one).
    """
    file = options.price_file
    market = portfolio.market
    if prices.currency != market.currency:
        raise DataQualityError(
            f"{file}: currency {prices.currency} but market {market.id} settles in "
            f"{market.currency}; import the file for the right market"
        )
    breaks = price_rule_breaks(prices, market)
    described = breaks.describe(file) if breaks is not None else None
    if described is not None:
        if not options.allow_out_of_rule_prices:
            raise DataQualityError(
                f"{described}; re-import with --on-missing drop-day, or set [backtest] "
                "allow_out_of_rule_prices = true to run anyway (flagged in the summary)"
            )
        log.warning("backtest_out_of_rule_prices", file=file, count=breaks.count if breaks else 0)
    needs_history = options.strategy.name != "idle" or options.baselines
    if needs_history:
        first_start = day_intervals_utc(days[0], market.timezone, 60)[0]
        before = prices.frame.loc[prices.frame.index < first_start, "da_price"]
        if not before.notna().any():
            later = [d for d in days if d > days[0]]
            suggestion = (
                f"start on {days[0] + dt.timedelta(days=1)} or later"
                if later
                else "choose a later --start with the day before it in the file"
            )
            file_first = prices.frame.index[0].tz_convert(market.timezone).date()
            what = (
                "is the price file's first day"
                if file_first >= days[0]
                else "has no day-ahead price before it in the price file"
            )
            raise DataQualityError(
                f"{file}: --start {days[0]} {what}; the {options.strategy.forecaster} forecaster needs "
                f"1 day of history: {suggestion}"
            )
    return described


def run_backtest(
    portfolio: MarketPortfolio,
    prices: PriceFrame,
    days: Sequence[dt.date],
    options: BacktestOptions,
    progress: Progress | None = None,
) -> BacktestResult:
    """The strategy, perfect foresight and (optionally) the baselines on the same days."""
    if prices.market_id != portfolio.market.id:
        raise InputError(
            f"price file is for market {prices.market_id!r}, the portfolio bids into {portfolio.market.id!r}"
        )
    if not days:
        raise InputError("no complete days to backtest in the chosen range")
    out_of_rule = _check_inputs(portfolio, prices, days, options)
    grid = {portfolio.market.rules_on(d).interval_minutes for d in days}
    if len(grid) != 1:
        raise InputError(
            f"the market's schedule interval changes inside the range: {sorted(grid)} min"
        )
    prices = on_schedule_grid(prices, grid.pop())
    start = time.perf_counter()
    others = [n for n in ("persistence", "idle") if options.baselines and n != options.strategy.name]
    if options.workers > 1:
        # The reference runs (perfect foresight, baselines) share nothing with the main
        # simulation: run them in a second process while the main one runs here. "spawn"
        # because HiGHS keeps threads, which do not survive a fork.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=1, mp_context=context, initializer=_worker_logging
        ) as pool:
            side = pool.submit(_references, portfolio, prices, list(days), options, others)
            main = simulate(portfolio, prices, days, options, progress=progress)
            pf, runs = side.result()
    else:
        main = simulate(portfolio, prices, days, options, progress=progress)
        pf, runs = _references(portfolio, prices, list(days), options, others, progress)
    if progress:
        progress("perfect foresight and baselines", len(days), len(days))
    baselines = dict(runs)
    if options.baselines and options.strategy.name in ("persistence", "idle"):
        baselines[options.strategy.name] = main
    result = BacktestResult(
        portfolio.market.id,
        prices.currency,
        portfolio.market.timezone,
        list(days),
        main,
        pf,
        baselines,
    )
    result.carbon = carbon_books(portfolio, prices, main, days, options)
    result.wall_time_s = time.perf_counter() - start
    result.out_of_rule_prices = out_of_rule
    log.info(
        "backtest_finished",
        **{k: v for k, v in result.summary().items() if k != "market"},
        market_id=portfolio.market.id,
    )
    return result

"""The operator: the one code path that the daemon and the backtest share.

An :class:`Operator` runs one market portfolio (the parks of one market)
through the three jobs of a trading day:

* :meth:`Operator.submit_day_ahead` -- before gate closure: forecast from
  what is published now, build the bid with the strategy, submit it once
  (idempotency key per market, delivery day and portfolio);
* :meth:`Operator.collect_awards` -- after clearing: fetch the awards and
  split them back to the parks;
* :meth:`Operator.dispatch` -- at each interval start: measure every asset,
  re-optimise the rest of the day against the awards and send setpoints.

Everything outside is injected: the :class:`~vpp.types.Clock`, the
:class:`~vpp.types.Exchange` (replay or HTTP), the published market data
(:class:`MarketData`), the devices (simulated or real adapters), and a
:class:`Recorder` (memory for backtests, the SQL store for the daemon).
The strategy never knows which it has.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import structlog

from strategies import (
    AssetState,
    DayAheadResult,
    RealTimeDispatcher,
    RealTimeResult,
    Strategy,
    load_inputs,
)
from strategies.carbon import carbon_signal
from strategies.registry import IdleStrategy
from strategies.rt_bids import CANDIDATE_PRICES, FlexibilityCurve, curve_points
from strategies.state import KNOWN_SESSION_COLUMNS, ParkInputs
from vpp.awards import IntervalAward, portfolio_award_kw
from vpp.carbon.factors import FactorSet
from vpp.config.loader import ConfigSet
from vpp.config.models import (
    AssetSpec,
    MarketConfig,
    MarketRules,
    ParkConfig,
)
from vpp.errors import (
    AdapterError,
    BidConflictError,
    ExchangeError,
    InputError,
    LookAheadError,
    MarketRuleError,
    SolverError,
)
from vpp.market_rules import check_rt_bid
from vpp.runtime.carbon_budget import day_factors
from vpp.timeutil import day_intervals_utc
from vpp.types import (
    Award,
    Clock,
    DayAheadBid,
    Device,
    Exchange,
    Health,
    RealTimeAward,
    RealTimeBid,
    Setpoint,
    Telemetry,
)
from vpp.units import KW_PER_MW
from vpp.wire import award_issues, bid_content_hash

log = structlog.get_logger(__name__)

AssetKey = tuple[str, str]

PRICE_COLUMNS = ("da_price", "rt_price", "rt_price_up", "rt_price_down")


# --------------------------------------------------------------------------- injected seams


class MarketData(Protocol):
    """What the market has published by now (the replay exchange, or a feed)."""

    def history(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows with any value published by now; unpublished values are NaN."""
        ...


class Recorder(Protocol):
    """Where the operator records what it did (memory in backtests, the store in the daemon)."""

    def has_bid(self, idempotency_key: str) -> bool:
        """True once the exchange has accepted the bid with this key."""
        ...

    def record_plan(self, result: DayAheadResult) -> None:
        """Write ahead, before sending: the bid (``submitted``) and the strategy's plan."""
        ...

    def record_bid(
        self, bid: DayAheadBid, *, status: str, receipt: str | None, reason: str | None
    ) -> None: ...

    def record_awards(self, bid: DayAheadBid, awards: Sequence[Award]) -> None: ...

    def record_setpoints(self, setpoints: Sequence[Setpoint]) -> None: ...

    def record_telemetry(self, readings: Sequence[Telemetry]) -> None: ...

    # Optional (looked up with getattr, so a recorder without them still runs day-ahead):
    # ``record_rt_bid(bid, *, status, receipt, reason, curve)`` -- ``submitted`` before a
    # real-time bid is sent, then ``accepted``/``rejected`` -- and
    # ``record_rt_awards(idempotency_key, awards)`` as its awards arrive.


# --------------------------------------------------------------------------- portfolio


@dataclass(frozen=True)
class MarketPortfolio:
    """The parks that bid together into one market as one portfolio."""

    market: MarketConfig
    parks: tuple[ParkConfig, ...]
    config_dirs: Mapping[str, Path]
    portfolio_id: str
    #: The market's grid emission factors (its ``carbon_region`` file); None: none configured.
    carbon: FactorSet | None = None

    @classmethod
    def from_config(
        cls, cfg: ConfigSet, market_id: str, park_ids: Sequence[str] | None = None
    ) -> MarketPortfolio:
        if market_id not in cfg.markets:
            raise InputError(
                f"unknown market {market_id!r}; known: {', '.join(sorted(cfg.markets))}"
            )
        parks = [p for p in cfg.parks_in(market_id) if park_ids is None or p.id in park_ids]
        if not parks:
            raise InputError(f"no enrolled park bids into market {market_id!r}")
        return cls(
            cfg.markets[market_id],
            tuple(sorted(parks, key=lambda p: p.id)),
            {p.id: cfg.park_files[p.id].parent for p in parks},
            f"vpp-{market_id}",
            cfg.carbon.get(cfg.markets[market_id].carbon_region or ""),
        )

    def asset(self, key: AssetKey) -> Any:
        park = next(p for p in self.parks if p.id == key[0])
        return next(a for a in park.assets if a.id == key[1])


def exported_kwh(asset: AssetSpec, reading: Telemetry) -> float | None:
    """The asset's cumulative energy into the grid [kWh] from its meter counters.

    Differences between two readings give the energy delivered in between,
    the quantity that settles (positive: sold). Each asset type's spec says
    which registers count and with which sign; None if one is missing.
    """
    try:
        return asset.exported_kwh(reading.extra)
    except KeyError:
        return None


@dataclass
class DayPlan:
    """What the operator knows and decided for one delivery day."""

    day: dt.date
    rules: MarketRules
    index: pd.DatetimeIndex
    result: DayAheadResult | None = None
    awards: list[Award] | None = None
    #: The awards on the day's schedule intervals [kW]; None while they are not known.
    award: IntervalAward | None = None
    dispatcher: RealTimeDispatcher | None = None
    last_plan: RealTimeResult | None = None
    last_position: int = -1
    rt_stats: list[float] = field(default_factory=list)
    #: real-time bids submitted for the day, by idempotency key, with the curve they came from
    rt_bids: dict[str, tuple[RealTimeBid, FlexibilityCurve]] = field(default_factory=dict)
    #: real-time awards received, by bid idempotency key (one per settlement interval)
    rt_awards: dict[str, list[RealTimeAward]] = field(default_factory=dict)
    #: the real-time awards split to the parks per schedule interval [kW]; None: none yet
    rt_award_kw: pd.DataFrame | None = None
    #: per interval, the deviation prices an activated bid revealed: (surplus, shortfall)
    rt_known: dict[pd.Timestamp, tuple[float | None, float | None]] = field(default_factory=dict)
    #: per interval, the range an activated energy offer says the real-time price lies in
    rt_brackets: dict[pd.Timestamp, tuple[float, float]] = field(default_factory=dict)

    def real_time_books(self) -> tuple[pd.DataFrame | None, pd.Series | None]:
        """The day's real-time awards per park [kW] and the price they clear at per interval.

        Where an interval holds several awards (an up and a down bid both activated) the
        price is their value-weighted mean, so that award x price is the real-time bid
        revenue. Raises :class:`~vpp.LookAheadError` while an awarded interval's price is
        not published yet (the settlement waits, as for any price).
        """
        if self.rt_award_kw is None:
            return None, None
        quantity = pd.Series(0.0, index=self.index)
        value = pd.Series(0.0, index=self.index)
        for key, awards in self.rt_awards.items():
            for award in awards:
                if abs(award.quantity_mw) < 1e-12:
                    continue
                if award.price_per_mwh is None:
                    raise LookAheadError(
                        f"real-time award {key} at {award.interval_start.isoformat()}: its "
                        "clearing price is not published yet"
                    )
                stamp = pd.Timestamp(award.interval_start)
                quantity[stamp] += award.quantity_mw
                value[stamp] += award.quantity_mw * award.price_per_mwh
        with np.errstate(divide="ignore", invalid="ignore"):
            price = (value / quantity).where(quantity.abs() > 1e-12, 0.0)
        return self.rt_award_kw, price


# --------------------------------------------------------------------------- operator


class Operator:
    """Bids, collects awards and dispatches one market portfolio (see module doc).

    ``sessions`` gives, per EV hub, the sessions as the drivers stated them
    (``session_id``, ``charger``, ``arrival``, ``stated_departure``,
    ``requested_energy_kwh``); the hub's device reports which are plugged in
    and the energy each received. Without it, the strategy sees only the
    expected sessions of its forecast.

    The strategy's options (:class:`strategies.StrategyOptions`) say how it
    decides; ``reoptimise_every`` among them: re-solve the real-time problem
    every N intervals and follow the last plan in between (1 = every interval).
    """

    def __init__(
        self,
        portfolio: MarketPortfolio,
        strategy: Strategy,
        *,
        exchange: Exchange,
        data: MarketData,
        clock: Clock,
        devices: Mapping[AssetKey, Device],
        recorder: Recorder,
        sessions: Mapping[AssetKey, pd.DataFrame] | None = None,
    ) -> None:
        self.portfolio = portfolio
        self.strategy = strategy
        self.exchange = exchange
        self.data = data
        self.clock = clock
        self.devices = dict(devices)
        self.recorder = recorder
        self.sessions = dict(sessions or {})
        self.days: dict[dt.date, DayPlan] = {}
        self._block_marks: dict[AssetKey, tuple[int, float]] = {}
        self._log = log.bind(market=portfolio.market.id, portfolio=portfolio.portfolio_id)

    @property
    def market(self) -> MarketConfig:
        return self.portfolio.market

    @property
    def timezone(self) -> str:
        return self.market.timezone

    def day_plan(self, day: dt.date) -> DayPlan:
        plan = self.days.get(day)
        if plan is None:
            rules = self.market.rules_on(day)
            index = day_intervals_utc(day, self.timezone, rules.interval_minutes)
            plan = DayPlan(day, rules, index.as_unit("ns"))
            self.days[day] = plan
        return plan

    def close_day(self, day: dt.date) -> None:
        """Release what only the day's dispatch needs (its compiled real-time models and
        last plan) once its last interval is dispatched; the bid, awards and solve times
        stay for settlement. Keeps a long run's memory from growing with its days."""
        plan = self.days.get(day)
        if plan is not None:
            plan.dispatcher, plan.last_plan, plan.last_position = None, None, -1

    def _inputs(self, index: pd.DatetimeIndex, decision_time: dt.datetime) -> dict[str, ParkInputs]:
        """Each park's inputs as forecast at ``decision_time``, with its carbon signal.

        The carbon signal (:mod:`strategies.carbon`; only with a carbon price or
        a park budget) takes the grid intensity from the fundamentals the market
        has published by now (:meth:`MarketData.history`), never later ones.
        """
        inputs = {
            p.id: load_inputs(
                p, self.portfolio.config_dirs[p.id], index, decision_time=decision_time
            )
            for p in self.portfolio.parks
        }
        price_per_t = self.strategy.options.carbon_price_per_t
        if price_per_t <= 0 and all(p.carbon_budget is None for p in self.portfolio.parks):
            return inputs
        grid = day_factors(self.portfolio, index, self.data.history())
        for park in self.portfolio.parks:
            signal = carbon_signal(
                park, index, self.timezone, self.portfolio.carbon, price_per_t=price_per_t,
                market_id=self.market.id, grid=grid,
            )
            inputs[park.id] = inputs[park.id].with_carbon(signal)
        return inputs

    def _features(self, history: pd.DataFrame, index: pd.DatetimeIndex) -> pd.DataFrame | None:
        columns = [
            c for c in history.columns if c not in PRICE_COLUMNS and not c.startswith("flag")
        ]
        columns = [c for c in columns if c != "quality_flag"]
        if not columns:
            return None
        rows = history[columns].reindex(index)
        rows = rows.loc[:, rows.notna().all()]
        return rows if rows.shape[1] else None

    # ----------------------------------------------------------------- day-ahead

    def bid_key(self, day: dt.date) -> str:
        """The idempotency key of the portfolio's day-ahead bid for ``day``."""
        return f"{self.market.id}/{day.isoformat()}/{self.portfolio.portfolio_id}/day_ahead"

    def submit_day_ahead(self, day: dt.date) -> DayAheadResult | None:
        """Build and submit the day-ahead bid for ``day``; None if one was already accepted.

        The bid and the strategy's plan are recorded (``submitted``) before
        they are sent. If the day already has a built bid that was not
        accepted (a retry after the exchange was unreachable, or a bid
        recovered from the store after a restart), that same bid is sent
        again rather than a new one. An exchange answering ``duplicate_bid``
        already holds this bid: it is recorded as accepted. Transport
        failures (:class:`~vpp.ExchangeError`) propagate; the record stays
        ``submitted`` (outcome unknown) for the caller to retry.
        """
        key = self.bid_key(day)
        if self.recorder.has_bid(key):
            self._log.info("bid_already_submitted", day=str(day), key=key)
            return None
        plan = self.day_plan(day)
        if plan.result is None:
            now = self.clock.now()
            history = self.data.history()
            plan.result = self.strategy.day_ahead(
                self.portfolio.parks,
                self._inputs(plan.index, now),
                None,
                plan.rules,
                history,
                index=plan.index,
                portfolio_id=self.portfolio.portfolio_id,
                created_at=now,
                features=self._features(history, plan.index),
            )
        result = plan.result
        self.recorder.record_plan(result)
        try:
            receipt: str | None = self.exchange.submit_day_ahead(result.bid)
        except MarketRuleError as exc:
            if exc.rule != "duplicate_bid":
                self.recorder.record_bid(
                    result.bid, status="rejected", receipt=None, reason=str(exc)
                )
                self._log.error("bid_rejected", day=str(day), rule=exc.rule, reason=str(exc))
                return result
            # An earlier attempt landed but its answer was lost -- or someone else bid
            # under our portfolio id first. Only the held bid's content can tell.
            self._verify_held(result.bid)
            self._log.warning("bid_confirmed_by_duplicate", day=str(day), key=key)
            receipt = None
        self.recorder.record_bid(
            result.bid,
            status="accepted",
            receipt=receipt,
            reason=None if receipt is not None else "confirmed by duplicate_bid",
        )
        self._log.info(
            "bid_submitted",
            day=str(day),
            curves=len(result.bid.curves),
            receipt=receipt,
            fallback=result.fallback,
        )
        return result

    def _verify_held(self, bid: DayAheadBid) -> None:
        """After ``duplicate_bid``: the exchange's bid must hash like ours.

        Raises :class:`~vpp.BidConflictError` (after recording the bid as
        ``conflict``) when it does not; an exchange that cannot show its bid
        keeps the old behaviour (the duplicate confirms).
        """
        held_bid = getattr(self.exchange, "day_ahead_bid", None)
        if held_bid is None:
            return
        held = held_bid(bid.market_id, bid.portfolio_id, bid.delivery_day)
        if held is None:
            raise ExchangeError(
                f"exchange answered duplicate_bid for {bid.idempotency_key} but holds no bid"
            )
        ours, theirs = bid_content_hash(bid), bid_content_hash(held)
        if ours == theirs:
            return
        reason = f"conflict: the exchange holds a different bid (held sha256 {theirs}, ours {ours})"
        self.recorder.record_bid(bid, status="conflict", receipt=None, reason=reason)
        self._log.error(
            "bid_conflict",
            day=str(bid.delivery_day),
            held_hash=theirs,
            our_hash=ours,
            alert=True,
        )
        raise BidConflictError(f"{bid.idempotency_key}: {reason}")

    def adopt_bid(self, bid: DayAheadBid) -> DayAheadResult:
        """A stand-in plan for a bid found at the exchange when the store lost ours.

        The strategy's allocation is gone; the day's awards are split to the
        parks on their idle schedule (forecast as of gate closure) with the
        residual spread equally, and real-time dispatch re-optimises towards
        them. Never a zero position when awards exist.
        """
        plan = self.day_plan(bid.delivery_day)
        as_of = plan.rules.gate_closure(bid.delivery_day)
        idle = IdleStrategy().day_ahead(
            self.portfolio.parks,
            self._inputs(plan.index, as_of),
            None,
            plan.rules,
            pd.DataFrame(),
            index=plan.index,
            portfolio_id=self.portfolio.portfolio_id,
            created_at=bid.created_at,
        )
        plan.result = DayAheadResult(bid, None, idle.expected_schedule, None)
        return plan.result

    def collect_awards(self, day: dt.date) -> list[Award]:
        """Fetch the day's awards and split them to parks (LookAheadError before publication).

        Awards that cannot come from the day's bid (products not bid, a
        quantity outside its curve's range) raise :class:`~vpp.BidConflictError`
        and are not followed.
        """
        plan = self.day_plan(day)
        awards = list(
            self.exchange.day_ahead_awards(self.market.id, self.portfolio.portfolio_id, day)
        )
        if plan.result is not None and awards:
            issues = award_issues(plan.result.bid, awards)
            if issues:
                self._log.error(
                    "awards_inconsistent", day=str(day), issues=issues, alert=True
                )
                raise BidConflictError(f"{self.bid_key(day)}: awards inconsistent: {issues[0]}")
        self._set_awards(plan, awards)
        if plan.result is not None and awards:
            self.recorder.record_awards(plan.result.bid, awards)
        total_mwh = sum(a.quantity_mw for a in awards) * plan.rules.day_ahead.interval_minutes / 60
        self._log.info(
            "awards_received", day=str(day), products=len(awards), net_mwh=round(total_mwh, 3)
        )
        return awards

    def _set_awards(self, plan: DayPlan, awards: Sequence[Award]) -> None:
        plan.awards = list(awards)
        plan.award = self._split_awards(plan, awards)
        # A plan made before the awards were known (safe schedule) must not be followed.
        plan.last_plan, plan.last_position = None, -1

    def restore(
        self, day: dt.date, result: DayAheadResult | None, awards: Sequence[Award] | None
    ) -> DayPlan:
        """Rebuild a day's plan from what was recorded (the daemon's restart path).

        ``result`` is the stored bid and allocation (None if there was no
        bid); ``awards`` the stored awards (None if not yet received).
        """
        plan = self.day_plan(day)
        plan.result = result
        if awards is not None:
            self._set_awards(plan, awards)
        return plan

    def prepare_dispatch(self, day: dt.date) -> None:
        """Build the day's real-time dispatcher ahead of its first interval.

        Its inputs (PV forecast, expected EV sessions) are the forecast as of
        the day's gate closure -- the one the bid was built on -- so they are the
        same whenever it is built (daemon: at awards; backtest: at the first
        dispatch) and use nothing published later.
        """
        plan = self.day_plan(day)
        if plan.dispatcher is None:
            as_of = plan.rules.gate_closure(day)
            plan.dispatcher = self.strategy.dispatcher(
                self.portfolio.parks, self._inputs(plan.index, as_of), plan.rules
            )

    def _split_awards(self, plan: DayPlan, awards: Sequence[Award]) -> IntervalAward:
        """The day's awards [MW per product] as kW per schedule interval, split to the parks."""
        parks = [p.id for p in self.portfolio.parks]
        if not awards or plan.result is None:
            return IntervalAward.zero(plan.index, parks)
        if plan.result.allocation is not None:
            split = plan.result.allocation.award(awards)
            return dataclasses.replace(
                split, park_kw=split.park_kw.reindex(columns=parks).fillna(0.0)
            )
        # No allocation (e.g. the idle strategy): each park's expected schedule, with the
        # residual to the award spread equally.
        expected = plan.result.expected_schedule.park_power_kw.reindex(columns=parks).fillna(0.0)
        award_kw = portfolio_award_kw(awards, plan.index, plan.rules.day_ahead.interval_minutes)
        residual = pd.Series(award_kw, index=plan.index) - expected.sum(axis=1)
        return IntervalAward(award_kw, expected.add(residual / len(parks), axis=0))

    # ----------------------------------------------------------------- real time

    def measure(
        self, *, sessions: bool = True
    ) -> tuple[dict[str, dict[str, AssetState]], list[Telemetry]]:
        """Read every device; return the parks' states and the readings.

        ``sessions=False`` skips building the EV session tables (the costly
        part) when no re-optimisation will read them; meters are read anyway.
        """
        readings: list[Telemetry] = []
        states: dict[str, dict[str, AssetState]] = {p.id: {} for p in self.portfolio.parks}
        now = self.clock.now()
        for key, device in self.devices.items():
            park_id, asset_id = key
            try:
                reading = device.read()
            except AdapterError as exc:
                self._log.warning("telemetry_failed", park=park_id, asset=asset_id, reason=str(exc))
                continue
            readings.append(reading)
            if reading.health != Health.OK:
                continue
            asset = self.portfolio.asset(key)
            if not sessions and asset.state_kind == "sessions":
                continue
            state = self._state_of(key, asset, device, reading, now)
            if state is not None:
                states[park_id][asset_id] = state
        self.recorder.record_telemetry(readings)
        return states, readings

    def _state_of(
        self, key: AssetKey, asset: AssetSpec, device: Device, reading: Telemetry, now: dt.datetime
    ) -> AssetState | None:
        """The state the asset's type reads from telemetry (its spec's ``state_kind``)."""
        if asset.state_kind == "soc":
            return self._soc_state(asset, reading)
        if asset.state_kind == "soc_kg":
            capacity_kg = asset.soc_capacity_kg
            if reading.soc is None or capacity_kg is None:
                return None
            return AssetState(stored_kg=reading.soc * capacity_kg)
        if asset.state_kind == "sessions":
            return self._session_state(key, device)
        if asset.state_kind == "shift":
            return self._shift_state(key, asset, reading, now)
        return None

    @staticmethod
    def _soc_state(asset: AssetSpec, reading: Telemetry) -> AssetState | None:
        capacity_kwh = asset.soc_capacity_kwh
        if reading.soc is None or capacity_kwh is None:
            return None
        return AssetState(soc_kwh=reading.soc * capacity_kwh)

    def _session_state(self, key: AssetKey, device: Device) -> AssetState | None:
        plugged = getattr(device, "plugged_sessions", None)
        meta = self.sessions.get(key)
        if plugged is None or meta is None:
            return None
        now_plugged = plugged()
        known = meta.merge(now_plugged, on="session_id", how="inner")
        return AssetState(sessions=known.loc[:, list(KNOWN_SESSION_COLUMNS)].reset_index(drop=True))

    def _shift_state(
        self, key: AssetKey, asset: Any, reading: Telemetry, now: dt.datetime
    ) -> AssetState | None:
        shifted = reading.extra.get("shifted_kwh")
        if shifted is None:
            return None
        # Blocks start at local wall-clock multiples of the window in the PARK's time
        # zone, exactly as strategies.process.block_starts cuts them (DST days included).
        park_tz = next(p.timezone for p in self.portfolio.parks if p.id == key[0])
        block_id = recovery_block(now, park_tz, asset.recovery_window_h)
        mark = self._block_marks.get(key)
        if mark is None or mark[0] != block_id:
            mark = (block_id, shifted)
            self._block_marks[key] = mark
        return AssetState(
            energy_offset_kwh=shifted - mark[1], shift_kw=reading.extra.get("shift_kw", 0.0)
        )

    def dispatch(self, interval_start: dt.datetime) -> list[Setpoint]:
        """Measure, re-optimise the rest of the day and send this interval's setpoints."""
        t = pd.Timestamp(interval_start).tz_convert("UTC")
        day = t.tz_convert(self.timezone).date()
        plan = self.day_plan(day)
        position = int(plan.index.get_loc(t))
        every = self.strategy.options.reoptimise_every
        due = plan.last_plan is None or (position - plan.last_position) >= every
        states, _ = self.measure(sessions=due or plan.award is None)
        self.prepare_dispatch(day)
        if plan.award is None:
            # Awards not known (yet): hold the safe schedule until they arrive.
            self._log.warning("dispatch_without_awards", day=str(day), interval=t.isoformat())
            return self._send(self._safe_setpoints(plan, position, states))
        assert plan.dispatcher is not None
        if self._collect_real_time(plan, t):
            due = True  # a real-time award changes the position: re-plan around it
        if due:
            try:
                result = self.strategy.real_time(
                    plan.dispatcher, position, states, self._position(plan),
                    self.data.history(), self.timezone, known=plan.rt_known,
                    brackets=plan.rt_brackets,
                )
            except LookAheadError as exc:
                self._log.error(
                    "realtime_forecast_unavailable", interval=t.isoformat(), reason=str(exc)
                )
                result = None
            if result is not None:
                plan.last_plan, plan.last_position = result, position
                if result.stats is not None:
                    plan.rt_stats.append(result.stats.solve_s)
                setpoints = list(result.setpoints)
            else:
                setpoints = self._follow(plan, position)
        else:
            setpoints = self._follow(plan, position)
        return self._send(setpoints)

    # ----------------------------------------------------------------- real-time bids

    def _position(self, plan: DayPlan) -> IntervalAward:
        """The day's position: the day-ahead award plus the real-time awards so far [kW]."""
        assert plan.award is not None
        if plan.rt_award_kw is None:
            return plan.award
        return plan.award.plus_parks(plan.rt_award_kw)

    def submit_real_time(self, product_id: str, period_start: dt.datetime) -> list[RealTimeBid]:
        """Bid the portfolio's remaining flexibility for one period of a real-time product.

        Runs before the period's gate (``rt_bid`` jobs, :func:`vpp.runtime.jobs.day_jobs`):
        measures, builds the curve from the re-optimised rest of the day around the
        current position (:meth:`strategies.Strategy.real_time_curve`; a regulating
        product gets an up and a down bid), checks it with the product's rules and
        submits it once (idempotency key per product, period, portfolio and direction;
        a restart does not resubmit what the recorder holds). Nothing is bid before
        the day-ahead awards are known, nor when the plan offers nothing.
        """
        start = pd.Timestamp(period_start).tz_convert("UTC")
        day = start.tz_convert(self.timezone).date()
        plan = self.day_plan(day)
        submit = getattr(self.exchange, "submit_real_time", None)
        if submit is None or plan.award is None:
            self._log.info("rt_bid_skipped", product=product_id, period=start.isoformat(),
                           reason="no day-ahead award yet" if submit else
                           "the exchange takes no real-time bids")
            return []
        product = plan.rules.rt_product(product_id)
        period = np.flatnonzero(
            (plan.index >= start)
            & (plan.index < start + pd.Timedelta(minutes=product.period_minutes))
        )
        now = pd.Timestamp(self.clock.now()).tz_convert("UTC")
        position = 0 if now < plan.index[0] else int(plan.index.searchsorted(now, "right") - 1)
        if not period.size or period[0] < position:
            return []
        self.prepare_dispatch(day)
        assert plan.dispatcher is not None
        states, _ = self.measure()
        directions = ("up", "down") if product.kind == "regulating" else ("both",)
        submitted: list[RealTimeBid] = []
        history = self.data.history()
        for direction in directions:
            try:
                curve = self.strategy.real_time_curve(
                    plan.dispatcher, position, states, self._position(plan), history,
                    self.timezone, slice(int(period[0]), int(period[-1]) + 1),
                    direction=direction, floor_per_mwh=product.floor_per_mwh,
                    cap_per_mwh=product.cap_per_mwh,
                    count=min(product.max_segments, CANDIDATE_PRICES),
                )
            except (SolverError, LookAheadError) as exc:
                self._log.error("rt_bid_unavailable", product=product_id,
                                period=start.isoformat(), direction=direction, reason=str(exc))
                continue
            if not curve.quantity_mw.size:
                continue
            points = curve_points(
                curve.prices_per_mwh, curve.quantity_mw, min_lot_mw=product.min_lot_mw,
                price_tick_per_mwh=product.price_tick_per_mwh,
                floor_per_mwh=product.floor_per_mwh, cap_per_mwh=product.cap_per_mwh,
                max_segments=product.max_segments,
            )
            if all(abs(p.quantity_mw) < 1e-12 for p in points):
                continue  # nothing to offer in this direction
            bid = RealTimeBid(self.market.id, self.portfolio.portfolio_id, product_id,
                              start.to_pydatetime(), points, direction, now.to_pydatetime())
            key = bid.idempotency_key
            if key in plan.rt_bids or self.recorder.has_bid(key):
                continue
            # Write ahead, as for the day-ahead bid: ``submitted`` before it is sent, so a
            # crash while sending leaves a record; the next attempt under the same key
            # replaces it at the exchange (until the gate), never adds a second bid.
            record = getattr(self.recorder, "record_rt_bid", None)
            if record is not None:
                record(bid, status="submitted", receipt=None, reason=None, curve=curve)
            try:
                check_rt_bid(bid, plan.rules, product)
                receipt = submit(bid)
            except MarketRuleError as exc:
                if record is not None:
                    record(bid, status="rejected", receipt=None, reason=str(exc), curve=curve)
                self._log.error("rt_bid_rejected", product=product_id, period=start.isoformat(),
                                direction=direction, rule=exc.rule, reason=str(exc))
                continue
            except ExchangeError as exc:  # outcome unknown: the record stays ``submitted``
                self._log.error("rt_bid_failed", product=product_id, period=start.isoformat(),
                                direction=direction, reason=str(exc))
                continue
            plan.rt_bids[key] = (bid, curve)
            if record is not None:
                record(bid, status="accepted", receipt=receipt, reason=None, curve=curve)
            self._log.info("rt_bid_submitted", product=product_id, period=start.isoformat(),
                           direction=direction, points=len(points), receipt=receipt)
            submitted.append(bid)
        return submitted

    def restore_real_time(
        self,
        bid: RealTimeBid,
        curve: FlexibilityCurve | None,
        awards: Sequence[RealTimeAward] = (),
    ) -> None:
        """Take back an accepted real-time bid after a restart (from the store), with the
        awards already received: the position follows them again and the next dispatch
        fetches the rest. Without its curve the awards split equally to the parks."""
        start = pd.Timestamp(bid.period_start).tz_convert("UTC")
        plan = self.day_plan(start.tz_convert(self.timezone).date())
        key = bid.idempotency_key
        if key in plan.rt_bids:
            return
        if curve is None:
            parks = [p.id for p in self.portfolio.parks]
            curve = FlexibilityCurve(
                np.array([p.price_per_mwh for p in bid.points]),
                np.array([p.quantity_mw for p in bid.points]),
                {p: np.zeros(len(bid.points)) for p in parks},
            )
        plan.rt_bids[key] = (bid, curve)
        if not awards:
            return
        plan.rt_awards[key] = list(awards)
        for award in awards:
            stamp = pd.Timestamp(award.interval_start).tz_convert("UTC")
            if abs(award.quantity_mw) < 1e-12 or stamp not in plan.index:
                continue
            if plan.rt_award_kw is None:
                plan.rt_award_kw = pd.DataFrame(
                    0.0, index=plan.index, columns=[p.id for p in self.portfolio.parks]
                )
            for park_id, mw in curve.split(award.quantity_mw).items():
                plan.rt_award_kw.loc[stamp, park_id] += mw * KW_PER_MW
            _reveal(plan, bid, stamp, award.quantity_mw)

    def refresh_real_time_awards(self, day: dt.date) -> None:
        """Fetch the day's real-time awards again, with the prices published since (settlement)."""
        awards_of = getattr(self.exchange, "real_time_awards", None)
        plan = self.day_plan(day)
        if awards_of is None:
            return
        record = getattr(self.recorder, "record_rt_awards", None)
        for key, (bid, _curve) in plan.rt_bids.items():
            plan.rt_awards[key] = list(awards_of(bid))
            if record is not None:
                record(key, plan.rt_awards[key])

    def _collect_real_time(self, plan: DayPlan, t: pd.Timestamp) -> bool:
        """Fetch the real-time awards of the bids whose period holds ``t``; True if any changed
        the position. Each award is split to the parks like its curve (:meth:`FlexibilityCurve.split`)."""
        awards_of = getattr(self.exchange, "real_time_awards", None)
        if awards_of is None or not plan.rt_bids:
            return False
        changed = False
        for key, (bid, curve) in plan.rt_bids.items():
            start = pd.Timestamp(bid.period_start).tz_convert("UTC")
            if t < start:
                continue
            seen = {pd.Timestamp(a.interval_start) for a in plan.rt_awards.get(key, [])}
            if t in seen:
                continue
            try:
                awards = list(awards_of(bid))
            except (LookAheadError, ExchangeError) as exc:
                self._log.warning("rt_awards_unavailable", key=key, reason=str(exc))
                continue
            plan.rt_awards[key] = awards
            record_awards = getattr(self.recorder, "record_rt_awards", None)
            if record_awards is not None and awards:
                record_awards(key, awards)
            for award in awards:
                stamp = pd.Timestamp(award.interval_start)
                if stamp in seen or abs(award.quantity_mw) < 1e-12:
                    continue
                if plan.rt_award_kw is None:
                    plan.rt_award_kw = pd.DataFrame(
                        0.0, index=plan.index, columns=[p.id for p in self.portfolio.parks]
                    )
                for park_id, mw in curve.split(award.quantity_mw).items():
                    plan.rt_award_kw.loc[stamp, park_id] += mw * KW_PER_MW
                _reveal(plan, bid, stamp, award.quantity_mw)
                changed = True
                self._log.info("rt_award_received", key=key, interval=stamp.isoformat(),
                               quantity_mw=round(award.quantity_mw, 6))
        return changed

    def _safe_setpoints(
        self, plan: DayPlan, position: int, states: Mapping[str, Mapping[str, AssetState]]
    ) -> list[Setpoint]:
        """The idle schedule for this interval: no flexibility used, nothing to deviate from."""
        assert plan.dispatcher is not None
        zero = IntervalAward.zero(plan.index, [p.id for p in self.portfolio.parks])
        idle = IdleStrategy().real_time(
            plan.dispatcher, position, states, zero, pd.DataFrame(), self.timezone
        )
        return list(idle.setpoints)

    def _follow(self, plan: DayPlan, position: int) -> list[Setpoint]:
        """Setpoints for ``position`` from the last real-time plan (or none)."""
        if plan.last_plan is None:
            return []
        offset = position - plan.last_position
        schedule = plan.last_plan.schedule
        if offset >= len(schedule.index):
            return []
        return schedule.setpoints(offset)

    def _send(self, setpoints: Sequence[Setpoint]) -> list[Setpoint]:
        sent = []
        for setpoint in setpoints:
            key = (setpoint.park_id, setpoint.asset_id)
            device = self.devices.get(key)
            if device is None:
                continue
            if self.portfolio.asset(key).setpoint_kind == "none":
                continue  # passive or fixed (a heat store, uncurtailable PV): nothing to send
            if not math.isfinite(setpoint.power_kw):  # pragma: no cover - Setpoint forbids it
                continue
            try:
                sent.append(device.write(setpoint))
            except AdapterError as exc:
                self._log.warning(
                    "setpoint_failed",
                    park=setpoint.park_id,
                    asset=setpoint.asset_id,
                    reason=str(exc),
                )
        self.recorder.record_setpoints(sent)
        return sent


def _reveal(plan: DayPlan, bid: RealTimeBid, stamp: pd.Timestamp, quantity_mw: float) -> None:
    """Record what an activation of ``bid`` at ``quantity_mw`` in ``stamp`` revealed."""
    if bid.direction == "both":
        plan.rt_brackets[stamp] = offer_bracket(bid, quantity_mw, plan.rt_brackets.get(stamp))
    else:
        plan.rt_known[stamp] = _revealed(bid, quantity_mw, plan.rt_known.get(stamp))


def _revealed(
    bid: RealTimeBid, quantity_mw: float, before: tuple[float | None, float | None] | None
) -> tuple[float | None, float | None]:
    """What an activation of ``bid`` at ``quantity_mw`` says about the interval's deviation
    prices ``(surplus, shortfall)``: the activated point's price ``p`` (the one whose
    quantity was awarded). An energy offer: deviations settle at the real-time price, which
    is >= p where selling (<= p where buying): both ~ p. An up bid: the system is
    up-regulated above p, so a shortfall costs at least p. A down bid: down-regulated below
    p, so a surplus earns at most p."""
    k = min(range(len(bid.points)), key=lambda i: abs(bid.points[i].quantity_mw - quantity_mw))
    p = bid.points[k].price_per_mwh
    surplus, shortfall = before or (None, None)
    if bid.direction == "both":  # an energy offer reveals a bracket: :func:`offer_bracket`
        return surplus, shortfall
    if bid.direction == "up":
        return surplus, p if shortfall is None else max(shortfall, p)
    return (p if surplus is None else min(surplus, p)), shortfall


def offer_bracket(
    bid: RealTimeBid, quantity_mw: float, before: tuple[float, float] | None = None
) -> tuple[float, float]:
    """The range ``(low, high)`` [currency/MWh] an energy offer's award at ``quantity_mw``
    says the interval's single real-time price lies in (intersected with ``before``).

    A step curve is awarded point ``k``'s quantity for prices in ``[p_k, p_{k+1})``, the
    first point's for every price below the second's (the curve extends flat below it),
    the last point's for every price at or above it; a single point, for any price.
    Dispatch clips its price forecast into this range (:meth:`strategies.Strategy.real_time`,
    ``brackets``) instead of taking the activated point's own price: that price lies
    inside an open bracket and can be far from what is paid (ERCOT 2022-01-09 18:00 CST:
    first point -10.53 $/MWh, second 29.87, cleared at 25.90-29.33; 2022-01-07 07:00 CST:
    last point 48.92, cleared at 343.66), which had dispatch buy energy it thought
    nearly free, or buy in a price spike to sell the next quarter.
    """
    prices = [point.price_per_mwh for point in bid.points]
    k = min(range(len(prices)), key=lambda i: abs(bid.points[i].quantity_mw - quantity_mw))
    low = prices[k] if k > 0 else -math.inf
    high = prices[k + 1] if k + 1 < len(prices) else math.inf
    if before is not None:
        low, high = max(low, before[0]), min(high, before[1])
        if low > high:  # two offers disagree (cannot for one curve): trust neither
            return -math.inf, math.inf
    return low, high


def recovery_block(when: dt.datetime, timezone: str, window_h: float) -> int:
    """Id of the flexible-process recovery block holding ``when``.

    Blocks start at local wall-clock multiples of the window from local
    midnight, as :func:`strategies.process.block_starts` cuts them.
    """
    local = pd.Timestamp(when).tz_convert(timezone)
    minutes = local.hour * 60 + local.minute
    return local.toordinal() * 1000 + math.floor(minutes / (window_h * 60) + 1e-9)


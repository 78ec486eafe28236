"""Strategies by name: what the backtest and the daemon call.

A :class:`Strategy` turns what is known at a decision time into decisions:

* :meth:`Strategy.day_ahead` -- at gate closure: price forecast from
  ``history`` (cut at the decision time by the caller) and the published
  ``features`` for the delivery day, then the bid
  (:func:`strategies.day_ahead.build_day_ahead_bid`);
* :meth:`Strategy.dispatcher` + :meth:`Strategy.real_time` -- during
  delivery: the real-time price forecast and the re-optimised setpoints
  (:class:`strategies.real_time.RealTimeDispatcher`).

Registered strategies:

``stochastic``
    Price scenarios from the forecaster's empirical errors
    (``scenarios`` of them); monotone price-quantity curves.
``deterministic``
    The forecaster's point forecast as the only scenario: one quantity per
    product, offered as a price taker (a one-point curve at the floor).
``persistence``
    ``deterministic`` with the ``persistence`` forecaster, whatever
    forecaster is configured -- the simplest honest baseline.
``idle``
    No optimisation: bids the idle schedule (:func:`strategies.schedule.idle_schedule`)
    as a price taker and dispatches idle. The "no flexibility" reference.

Real-time price forecast (all strategies): by default the day-ahead
clearing price of each remaining interval (published before delivery, read
from ``history``) -- the market's own forecast of real time. With
``rt_forecaster`` set, that forecaster runs on ``rt_price`` instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

import numpy as np
import pandas as pd

from strategies._solver import check_solver
from strategies.day_ahead import DayAheadResult, build_day_ahead_bid
from strategies.forecast import Forecast, get_forecaster
from strategies.imbalance import DeviationPrices, deviation_prices
from strategies.options import StrategyOptions
from strategies.park import interval_hours
from strategies.real_time import RealTimeDispatcher, RealTimeResult
from strategies.rt_bids import FlexibilityCurve, candidate_prices, flexibility_curve
from strategies.schedule import idle_power_kw
from strategies.state import ParkInputs, ParkState
from vpp.awards import IntervalAward
from vpp.config.models import MarketRules, ParkConfig
from vpp.errors import InputError, LookAheadError
from vpp.types import BidCurve, BidPoint, DayAheadBid, Setpoint
from vpp.units import KW_PER_MW


class Strategy:
    """Base strategy: decides as its :class:`~strategies.options.StrategyOptions` say (see module doc).

    The options it keeps (:attr:`options`) are the ones it uses: its own
    ``name``, one scenario for a deterministic strategy, the ``persistence``
    forecaster for the persistence strategy.
    """

    name: ClassVar[str] = "stochastic"
    scenario_count: ClassVar[int | None] = None  # None: use ``options.scenarios``
    forecaster_name: ClassVar[str | None] = None  # None: use ``options.forecaster``

    def __init__(self, options: StrategyOptions | None = None) -> None:
        options = options or StrategyOptions()
        self.options = options.replace(
            name=self.name,
            solver=check_solver(options.solver),
            scenarios=options.scenarios if self.scenario_count is None else self.scenario_count,
            forecaster=self.forecaster_name or options.forecaster,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(forecaster={self.options.forecaster!r}, "
            f"scenarios={self.options.scenarios}, solver={self.options.solver!r})"
        )

    # -- forecasts -----------------------------------------------------------------------
    def forecast_day_ahead(
        self,
        history: pd.DataFrame,
        index: pd.DatetimeIndex,
        timezone: str,
        features: pd.DataFrame | None = None,
    ) -> Forecast:
        """Day-ahead price forecast and scenarios for ``index`` from ``history`` known now."""
        forecaster = get_forecaster(
            self.options.forecaster, column="da_price", timezone=timezone,
            scenarios=self.options.scenarios, **self.options.forecaster_options,
        )
        return forecaster.forecast(history, index, features)

    def forecast_real_time(
        self, history: pd.DataFrame, index: pd.DatetimeIndex, timezone: str
    ) -> pd.Series:
        """Real-time price forecast for ``index`` (the remaining intervals), see module doc."""
        if self.options.rt_forecaster is not None:
            forecaster = get_forecaster(
                self.options.rt_forecaster, column="rt_price", timezone=timezone, scenarios=1,
                **self.options.forecaster_options,
            )
            return forecaster.forecast(history, index).point
        if "da_price" not in history.columns:
            raise InputError("history needs da_price for the default real-time forecast")
        known = history["da_price"].reindex(index)
        if known.isna().any():
            missing = index[known.isna().to_numpy()][0]
            raise LookAheadError(
                f"no published day-ahead price for {missing} in history; the default real-time "
                "forecast needs the delivery day's day-ahead prices"
            )
        return known.astype(float)

    # -- decisions -----------------------------------------------------------------------
    def day_ahead(
        self,
        parks: Sequence[ParkConfig],
        inputs: Mapping[str, ParkInputs],
        states: Mapping[str, ParkState] | None,
        rules: MarketRules,
        history: pd.DataFrame,
        *,
        index: pd.DatetimeIndex,
        portfolio_id: str,
        created_at: dt.datetime,
        features: pd.DataFrame | None = None,
        forecast: Forecast | None = None,
    ) -> DayAheadResult:
        """The day-ahead bid for the delivery day ``index`` (UTC schedule intervals)."""
        forecast = forecast or self.forecast_day_ahead(history, index, rules.timezone, features)
        if self.scenario_count == 1 and forecast.matrix.shape[0] > 1:
            forecast = Forecast.from_point(forecast.point)
        return build_day_ahead_bid(
            parks, inputs, states, rules, forecast, portfolio_id=portfolio_id,
            created_at=created_at, solver=self.options.solver,
            time_limit_s=self.options.time_limit_s, parallel=self.options.parallel,
            energy_policy=self.options.energy_policy,
        )

    def dispatcher(
        self, parks: Sequence[ParkConfig], inputs: Mapping[str, ParkInputs], rules: MarketRules
    ) -> RealTimeDispatcher:
        """A real-time dispatcher for the horizon of ``inputs`` (create once per day)."""
        return RealTimeDispatcher(
            parks, inputs, rules.interval_minutes, self.options,
            settlement_rule=rules.settlement.rule,
        )

    def real_time(
        self,
        dispatcher: RealTimeDispatcher,
        position: int,
        states: Mapping[str, ParkState] | None,
        award: IntervalAward,
        history: pd.DataFrame,
        timezone: str,
        *,
        known: Mapping[pd.Timestamp, tuple[float | None, float | None]] | None = None,
        brackets: Mapping[pd.Timestamp, tuple[float, float]] | None = None,
    ) -> RealTimeResult:
        """Setpoints for interval ``position`` and the plan for the rest of the horizon.

        ``known``: per interval, what the market has revealed about its deviation
        prices -- an activated real-time bid bounds them (``(surplus, shortfall)``
        [currency/MWh], None where unchanged): the surplus is worth at most, the
        shortfall costs at least, the activated point's price. ``brackets``: per
        interval, the range ``(low, high)`` an activated energy offer says the single
        real-time price lies in (:func:`vpp.runtime.operator.offer_bracket`); both
        deviation prices are the forecast clipped into it.
        """
        remaining = dispatcher.index[position:]
        _price, prices = self._deviation_prices(dispatcher, position, history, timezone)
        surplus, shortfall = prices.surplus_per_mwh.copy(), prices.shortfall_per_mwh.copy()
        for stamp, (low, high) in (brackets or {}).items():
            if stamp in remaining:
                k = int(remaining.get_loc(stamp))
                surplus[k] = min(max(surplus[k], low), high)
                shortfall[k] = min(max(shortfall[k], low), high)
        for stamp, (cap, floor) in (known or {}).items():
            if stamp not in remaining:
                continue
            k = int(remaining.get_loc(stamp))
            if cap is not None:
                surplus[k] = cap if floor is not None else min(surplus[k], cap)
            if floor is not None:
                shortfall[k] = floor if cap is not None else max(shortfall[k], floor)
        return dispatcher.dispatch(position, states, award, surplus, price_shortfall=shortfall)

    def _deviation_prices(
        self, dispatcher: RealTimeDispatcher, position: int, history: pd.DataFrame, timezone: str
    ) -> tuple[np.ndarray, DeviationPrices]:
        """The real-time forecast of the remaining intervals and what a deviation there is
        worth by the market's settlement rule (:mod:`strategies.imbalance`)."""
        remaining = dispatcher.index[position:]
        price = self.forecast_real_time(history, remaining, timezone).to_numpy(float)
        return price, deviation_prices(
            dispatcher.settlement_rule, price, history, remaining, timezone
        )

    def real_time_curve(
        self,
        dispatcher: RealTimeDispatcher,
        position: int,
        states: Mapping[str, ParkState] | None,
        award: IntervalAward,
        history: pd.DataFrame,
        timezone: str,
        period: slice,
        *,
        direction: str,
        floor_per_mwh: float,
        cap_per_mwh: float,
        count: int,
    ) -> FlexibilityCurve:
        """The portfolio's real-time flexibility in ``period`` as a price-quantity curve.

        The deviation prices of the other remaining intervals come from the
        settlement rule (:mod:`strategies.imbalance`); the candidate prices from
        past spreads at the period's local hour (:func:`strategies.rt_bids.candidate_prices`).
        """
        price, prices = self._deviation_prices(dispatcher, position, history, timezone)
        window = price[period.start - position : period.stop - position]
        candidates = candidate_prices(
            history, float(window.mean()), dispatcher.index[period.start], timezone,
            floor_per_mwh=floor_per_mwh, cap_per_mwh=cap_per_mwh, count=count,
            direction=direction,
        )
        if direction == "up":  # an up bid is activated only where up-regulation pays more
            candidates = candidates[candidates > window.max() + 1e-6]
        elif direction == "down":
            candidates = candidates[candidates < window.min() - 1e-6]
        if not candidates.size:
            empty = np.zeros(0)
            return FlexibilityCurve(empty, empty, {p.id: empty for p in dispatcher.parks})
        return flexibility_curve(
            dispatcher, position, states, award, prices.surplus_per_mwh,
            prices.shortfall_per_mwh, period, candidates, direction=direction,
        )


class StochasticStrategy(Strategy):
    name = "stochastic"


class DeterministicStrategy(Strategy):
    name = "deterministic"
    scenario_count = 1


class PersistenceStrategy(DeterministicStrategy):
    name = "persistence"
    forecaster_name = "persistence"


class IdleStrategy(Strategy):
    """Bids and dispatches the idle schedule: the no-flexibility reference."""

    name = "idle"
    scenario_count = 1

    def day_ahead(
        self,
        parks: Sequence[ParkConfig],
        inputs: Mapping[str, ParkInputs],
        states: Mapping[str, ParkState] | None,
        rules: MarketRules,
        history: pd.DataFrame,
        *,
        index: pd.DatetimeIndex,
        portfolio_id: str,
        created_at: dt.datetime,
        features: pd.DataFrame | None = None,
        forecast: Forecast | None = None,
    ) -> DayAheadResult:
        from strategies.schedule import idle_schedule

        dt_h = interval_hours(index, rules.interval_minutes)
        idle = idle_schedule(parks, inputs, states, dt_h)
        per = rules.day_ahead.interval_minutes // rules.interval_minutes
        net_mw = idle.park_power_kw.sum(axis=1).to_numpy() / KW_PER_MW
        lot = rules.bidding.min_lot_mw
        curves = tuple(
            BidCurve(
                index[j].to_pydatetime(),
                (BidPoint(rules.price_limits.floor_per_mwh,
                          float(np.round(np.floor(net_mw[j : j + per].mean() / lot + 0.5) * lot, 9) + 0.0)),),
            )
            for j in range(0, len(index), per)
        )
        bid = DayAheadBid(
            rules.market_id, portfolio_id, index[0].tz_convert(rules.timezone).date(), curves,
            created_at,
        )
        return DayAheadResult(bid, None, idle, None)

    def real_time(
        self,
        dispatcher: RealTimeDispatcher,
        position: int,
        states: Mapping[str, ParkState] | None,
        award: IntervalAward,
        history: pd.DataFrame,
        timezone: str,
        *,
        known: Mapping[pd.Timestamp, tuple[float | None, float | None]] | None = None,
        brackets: Mapping[pd.Timestamp, tuple[float, float]] | None = None,
    ) -> RealTimeResult:
        from strategies.real_time import _schedule

        remaining = dispatcher.index[position:]
        power: dict[tuple[str, str], np.ndarray] = {}
        soc: dict[tuple[str, str], np.ndarray] = {}
        nets: dict[str, np.ndarray] = {}
        deviation = {}
        for park in dispatcher.parks:
            state = (states or {}).get(park.id)
            p, s = idle_power_kw(
                park, dispatcher.inputs[park.id].window(position), state,
                dispatcher.dt_h[position:],
            )
            power.update({(park.id, a): v for a, v in p.items()})
            soc.update({(park.id, a): v for a, v in s.items()})
            nets[park.id] = sum(p.values(), np.zeros(len(remaining)))
            deviation[park.id] = nets[park.id] - award.park(park.id)[position:]
        schedule = _schedule(remaining, power, soc, nets, [], False, {})
        frame = pd.DataFrame(deviation, index=remaining)
        setpoints: tuple[Setpoint, ...] = tuple(schedule.setpoints(0))
        return RealTimeResult(setpoints, schedule, frame, frame.sum(axis=1) / KW_PER_MW, None)


    def real_time_curve(
        self, dispatcher: RealTimeDispatcher, *args: object, **kwargs: object
    ) -> FlexibilityCurve:
        """The idle reference offers no real-time flexibility."""
        empty = np.zeros(0)
        return FlexibilityCurve(empty, empty, {p.id: empty for p in dispatcher.parks})


STRATEGIES: dict[str, Callable[[StrategyOptions | None], Strategy]] = {
    cls.name: cls
    for cls in (StochasticStrategy, DeterministicStrategy, PersistenceStrategy, IdleStrategy)
}


def get_strategy(options: StrategyOptions | str | None = None) -> Strategy:
    """The strategy ``options.name`` (``stochastic``, ``deterministic``, ``persistence``, ``idle``).

    A bare name is that strategy with the default :class:`~strategies.options.StrategyOptions`.
    """
    if options is None or isinstance(options, str):
        options = StrategyOptions() if options is None else StrategyOptions(name=options)
    try:
        factory = STRATEGIES[options.name]
    except KeyError:
        raise InputError(
            f"unknown strategy {options.name!r}; choose one of {', '.join(STRATEGIES)}"
        ) from None
    return factory(options)

"""The strategy layer: asset models, price forecasts, day-ahead bids, real-time dispatch.

Sign convention (:mod:`vpp.units`, the only one): ``power_kw > 0`` flows into
the grid (sold), ``power_kw < 0`` is drawn from it (bought). Quantities in
bids are MW with the same sign. Energy is ``power_kw * dt_h`` with the actual
interval length.

Public API (see ``docs/strategy.md``):

* state and inputs: :class:`AssetState`, :class:`ParkInputs`, :func:`load_inputs`,
  :func:`initial_state`, :func:`realized_states`;
* forecasts: :class:`Forecast`, :func:`get_forecaster` (``persistence``,
  ``weekly``, ``rolling_median``, ``regression``, ``gbm``, ``arx``; real time only:
  ``day_ahead``, ``da_spread``; PV output only: ``clear_sky``), :data:`RT_FORECASTERS`,
  :data:`PV_FORECASTERS`, :class:`ClearSkyForecaster`, :func:`clear_sky_forecast_kw`,
  :func:`clearness`;
* forecast scores: :func:`walk_forward`, :func:`walk_forward_series` -> :class:`ForecastScore`,
  :func:`pinball_loss`, :func:`band_coverage`;
* decisions: :func:`build_day_ahead_bid` -> :class:`DayAheadResult`,
  :class:`RealTimeDispatcher` -> :class:`RealTimeResult`,
  :func:`perfect_foresight` -> :class:`ForesightResult`,
  :func:`optimise_schedule` / :func:`idle_schedule` -> :class:`Schedule`;
* strategies by name: :func:`get_strategy` (``stochastic``, ``deterministic``,
  ``persistence``, ``idle``) with one frozen :class:`StrategyOptions`;
* solver results: :class:`SolveStats`, :class:`SolveStatus`; failures raise
  :class:`vpp.SolverError` / :class:`vpp.InfeasibleError`.
"""

from __future__ import annotations

from strategies._solver import DEFAULT_SOLVER, SOLVERS, SolveStats, SolveStatus, check_solver
from strategies.arx import AutoRegressive
from strategies.assets import AssetModel, model_for
from strategies.day_ahead import BidAllocation, DayAheadResult, build_day_ahead_bid
from strategies.ev import expected_sessions, realized_sessions
from strategies.evaluation import (
    ForecastScore,
    band_coverage,
    pinball_loss,
    series_decision_time,
    walk_forward,
    walk_forward_series,
)
from strategies.forecast import (
    FORECASTERS,
    PV_FORECASTERS,
    RT_FORECASTERS,
    Forecast,
    Forecaster,
    get_forecaster,
)
from strategies.foresight import ForesightResult, perfect_foresight, realized_states
from strategies.gbm import GradientBoosting
from strategies.options import StrategyOptions
from strategies.park import ParkModelRequest, interval_hours
from strategies.pv_forecast import ClearSkyForecaster, clear_sky_forecast_kw, clearness
from strategies.real_time import RealTimeDispatcher, RealTimePark, RealTimeResult
from strategies.realtime_forecast import DayAheadSpread
from strategies.registry import STRATEGIES, Strategy, get_strategy
from strategies.schedule import Schedule, idle_schedule, optimise_schedule
from strategies.state import AssetState, ParkInputs, initial_state, load_inputs
from vpp.market_rules import check_bid  # the one validator, shared with the exchange

__all__ = [
    "DEFAULT_SOLVER",
    "FORECASTERS",
    "PV_FORECASTERS",
    "RT_FORECASTERS",
    "SOLVERS",
    "STRATEGIES",
    "AssetModel",
    "AssetState",
    "AutoRegressive",
    "BidAllocation",
    "ClearSkyForecaster",
    "DayAheadResult",
    "DayAheadSpread",
    "Forecast",
    "ForecastScore",
    "Forecaster",
    "ForesightResult",
    "GradientBoosting",
    "ParkInputs",
    "ParkModelRequest",
    "RealTimeDispatcher",
    "RealTimePark",
    "RealTimeResult",
    "Schedule",
    "SolveStats",
    "SolveStatus",
    "Strategy",
    "StrategyOptions",
    "band_coverage",
    "build_day_ahead_bid",
    "check_bid",
    "check_solver",
    "clear_sky_forecast_kw",
    "clearness",
    "expected_sessions",
    "get_forecaster",
    "get_strategy",
    "idle_schedule",
    "initial_state",
    "interval_hours",
    "load_inputs",
    "model_for",
    "optimise_schedule",
    "perfect_foresight",
    "pinball_loss",
    "realized_sessions",
    "realized_states",
    "series_decision_time",
    "walk_forward",
    "walk_forward_series",
]

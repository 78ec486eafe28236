"""The one strategy-options object: how bids and dispatch are decided.

:class:`StrategyOptions` is built once where the configuration is read
(:meth:`StrategyOptions.from_settings`: ``[backtest]`` or ``[daemon]`` plus
``[solver]`` of ``vpp.toml``) and passed down unchanged: the backtest and the
daemon build hand it to :func:`strategies.get_strategy`, the
:class:`~strategies.Strategy` to its :class:`~strategies.RealTimeDispatcher`,
the dispatcher to each :class:`~strategies.RealTimePark`, and the operator
reads ``reoptimise_every`` from its strategy. No level respells the options
as keywords of its own.

Its defaults are the configuration's defaults (:class:`vpp.config.models.StrategySettings`
and :class:`vpp.config.models.SolverSettings`): an empty ``vpp.toml`` and
``StrategyOptions()`` decide the same way.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from strategies.state import EnergyPolicy
from vpp.config.models import SolverSettings, StrategySettings
from vpp.errors import InputError

_SETTINGS = StrategySettings()
_SOLVER = SolverSettings()

__all__ = ["StrategyOptions"]


@dataclass(frozen=True)
class StrategyOptions:
    """How a strategy decides (see module doc).

    Attributes:
        name: the strategy's registry name (``[backtest|daemon] strategy``).
        forecaster: the day-ahead price forecaster's name.
        scenarios: price scenarios of a day-ahead bid (a deterministic strategy uses 1).
        reoptimise_every: re-solve the real-time problem every N intervals [intervals].
        deviation_penalty_per_mwh: cost of planned deviation from the award [currency/MWh].
        rt_forecaster: forecaster of real-time prices; None: the published day-ahead price.
        real_time_bids: bid the remaining flexibility into the market's enabled real-time
            products (:mod:`strategies.rt_bids`).
        solver: the solver's name (``[solver] name``).
        time_limit_s: the time limit of one solve [s].
        energy_policy: how an EV request beyond what can be delivered is treated
            (``cap``: capped; ``strict``: infeasible).
        parallel: parks solved in parallel for a day-ahead bid.
        forecaster_options: extra keyword arguments of the forecasters.
        carbon_price_per_t: internal carbon price on grid import [currency/tCO2]
            (:mod:`strategies.carbon`); 0: carbon-blind.
    """

    name: str = _SETTINGS.strategy
    forecaster: str = _SETTINGS.forecaster
    scenarios: int = _SETTINGS.scenarios
    reoptimise_every: int = _SETTINGS.reoptimise_every
    deviation_penalty_per_mwh: float = _SETTINGS.deviation_penalty_per_mwh
    rt_forecaster: str | None = _SETTINGS.rt_forecaster
    real_time_bids: bool = _SETTINGS.real_time_bids
    solver: str = _SOLVER.name
    time_limit_s: float = _SOLVER.time_limit_s
    energy_policy: EnergyPolicy = "cap"
    parallel: int = 1
    forecaster_options: Mapping[str, Any] = field(default_factory=dict)
    carbon_price_per_t: float = _SETTINGS.carbon_price_per_t

    def __post_init__(self) -> None:
        if self.scenarios < 1:
            raise InputError(f"scenarios = {self.scenarios}: must be >= 1")
        if self.reoptimise_every < 1:
            raise InputError(f"reoptimise_every = {self.reoptimise_every}: must be >= 1")
        if self.deviation_penalty_per_mwh < 0:
            raise InputError(
                f"deviation_penalty_per_mwh = {self.deviation_penalty_per_mwh}: must be >= 0"
            )
        if not math.isfinite(self.carbon_price_per_t) or self.carbon_price_per_t < 0:
            raise InputError(
                f"carbon_price_per_t = {self.carbon_price_per_t}: must be a finite number >= 0"
            )

    @classmethod
    def from_settings(
        cls, settings: StrategySettings, solver: SolverSettings | None = None
    ) -> StrategyOptions:
        """The options of a ``[backtest]`` or ``[daemon]`` section and ``[solver]``."""
        solver = solver or _SOLVER
        return cls(
            name=settings.strategy,
            forecaster=settings.forecaster,
            scenarios=settings.scenarios,
            reoptimise_every=settings.reoptimise_every,
            deviation_penalty_per_mwh=settings.deviation_penalty_per_mwh,
            rt_forecaster=settings.rt_forecaster,
            real_time_bids=settings.real_time_bids,
            carbon_price_per_t=settings.carbon_price_per_t,
            solver=solver.name,
            time_limit_s=solver.time_limit_s,
        )

    def replace(self, **changes: Any) -> StrategyOptions:
        """A copy with ``changes`` (field names as above)."""
        return dataclasses.replace(self, **changes)

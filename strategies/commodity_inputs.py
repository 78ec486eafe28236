"""Exogenous inputs of the heat system: heat demand per level and heat pump COP.

Both come from real data (:mod:`vpp.profiles`): realized when the request
has no decision time (perfect foresight, the simulation), otherwise a
forecast made then from the same local time of the :data:`FORECAST_DAYS`
whole days before the decision day: outdoor temperature and measured demand
are not known in advance, so their errors become real deviations.

* COP: the mean of those days (as PV is forecast, :mod:`strategies.pv`).
* Heat demand: their **highest** value at that time of day. Heat that is
  not delivered is a failed process or a cold building, while heat planned
  beyond the demand goes into the level's store, which the next real-time
  re-optimisation sees as measured content and draws on -- so the plan is
  made for the upper envelope of the past week, not its mean. (Measured on
  the oilfield, 2025-05-12..14: the mean left 3,270 kWh_th of 153,255 unmet,
  the envelope far less; see ``docs/multi_energy.md``.)

A level's constant demand (``demand_kw``) and a fixed-source heat pump are
the same either way.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from strategies.assets import InputsRequest
from vpp.config.models import HeatPumpSpec, ParkConfig
from vpp.profiles import heat_demand_kw, heat_pump_cop

#: Whole days before the decision day averaged into a forecast.
FORECAST_DAYS = 7


def forecast_or_realized(
    series: Callable[[pd.DatetimeIndex], np.ndarray],
    request: InputsRequest,
    how: str = "mean",
) -> np.ndarray:
    """``series(request.index)``, or its ``how`` (mean, max) over the days before the decision."""
    index = request.index
    if request.decision_time is None:
        return np.asarray(series(index), dtype=float)
    decided = pd.Timestamp(request.decision_time).tz_convert(request.timezone).date()
    first = pd.Timestamp(index[0]).tz_convert(request.timezone).date()
    lead = (first - decided).days
    past = [
        np.asarray(series(index - pd.Timedelta(days=lead + k)), dtype=float)
        for k in range(1, FORECAST_DAYS + 1)
    ]
    return np.max(past, axis=0) if how == "max" else np.mean(past, axis=0)


def heat_demand_inputs(park: ParkConfig, request: InputsRequest) -> dict[str, np.ndarray]:
    """Heat demand [kW_th] (T,) per level of ``park`` that has demand."""
    out: dict[str, np.ndarray] = {}
    for level in park.heat_levels:
        if not level.has_demand:
            continue
        if level.demand_profile is None and level.space_heating is None:
            out[level.id] = np.full(len(request.index), float(level.demand_kw))
            continue
        out[level.id] = forecast_or_realized(
            lambda index, level=level: heat_demand_kw(  # type: ignore[misc]
                level, request.config_dir, index, request.timezone
            ),
            request,
            how="max",
        )
    return out


def cop_inputs(
    spec: HeatPumpSpec, sink_temperature_c: float, request: InputsRequest
) -> np.ndarray:
    """COP (T,) of a heat pump: realized, or forecast from the days before the decision."""
    return forecast_or_realized(
        lambda index: heat_pump_cop(
            spec, sink_temperature_c, request.config_dir, index, request.timezone
        ),
        request,
    )

"""Exogenous inputs of the heat system: heat demand per level and heat pump COP.

Both come from real data (:mod:`vpp.profiles`): realized when the request
has no decision time (perfect foresight, the simulation), otherwise a
forecast made then -- the mean of the same local time over the
:data:`FORECAST_DAYS` whole days before the decision day, as PV is
forecast (:mod:`strategies.pv`): outdoor temperature and measured demand are
not known in advance, so their errors become real deviations. A level's
constant demand (``demand_kw``) and a fixed-source heat pump are the same
either way.
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
    series: Callable[[pd.DatetimeIndex], np.ndarray], request: InputsRequest
) -> np.ndarray:
    """``series(request.index)``, or its mean over the days before the decision day."""
    index = request.index
    if request.decision_time is None:
        return np.asarray(series(index), dtype=float)
    decided = pd.Timestamp(request.decision_time).tz_convert(request.timezone).date()
    first = pd.Timestamp(index[0]).tz_convert(request.timezone).date()
    lead = (first - decided).days
    return np.mean(
        [
            np.asarray(series(index - pd.Timedelta(days=lead + k)), dtype=float)
            for k in range(1, FORECAST_DAYS + 1)
        ],
        axis=0,
    )


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

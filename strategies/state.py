"""What the strategy knows at decision time: asset state and exogenous inputs.

* :class:`AssetState` -- the measured state of one asset (battery energy, EV
  sessions plugged in and what they have received, a process's unrecovered
  shift). A park's state is a ``Mapping[asset_id, AssetState]``; missing
  entries mean "as configured" (:func:`initial_state`).
* :class:`ParkInputs` -- the exogenous series over the planning horizon: PV
  available [kW], process baselines [kW] and the *expected* EV sessions.

Each asset type says what its state is as configured and where its inputs
come from (:class:`strategies.assets.AssetModel`); this module only asks
every asset's model. The EV session arithmetic (expected arrivals, the
energy policy, the session table) lives with the EV model in
:mod:`strategies.ev`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import structlog

from strategies.assets import InputsRequest, model_for
from strategies.carbon import CarbonSignal
from strategies.commodity_inputs import heat_demand_inputs
from vpp.config.models import ParkConfig
from vpp.errors import InputError
from vpp.timeutil import require_aware, require_aware_index

log = structlog.get_logger(__name__)

EnergyPolicy = Literal["cap", "strict"]

#: Columns of :attr:`AssetState.sessions`.
KNOWN_SESSION_COLUMNS = (
    "session_id",
    "charger",
    "arrival",
    "stated_departure",
    "requested_energy_kwh",
    "charged_kwh",
)


@dataclass(frozen=True)
class AssetState:
    """The state of one asset at decision time.

    Attributes:
        soc_kwh: battery energy stored [kWh]; ``None`` = ``soc_initial`` from the spec.
        sessions: EV sessions plugged in (arrived, not yet left), columns
            :data:`KNOWN_SESSION_COLUMNS`; ``charged_kwh`` is the energy each has
            received so far [kWh]. ``None`` = no car plugged in.
        energy_offset_kwh: flexible process: energy consumed above its baseline
            since the current recovery block began [kWh] (negative: shed); it is
            recovered by the block's end (see :mod:`strategies.process`).
        shift_kw: flexible process: the deviation from baseline now in force [kW].
        stored_kg: hydrogen storage: hydrogen held [kg] (thermal storage uses ``soc_kwh``).
    """

    soc_kwh: float | None = None
    sessions: pd.DataFrame | None = None
    energy_offset_kwh: float = 0.0
    shift_kw: float = 0.0
    #: hydrogen storage: hydrogen held [kg]; ``None`` = ``soc_initial`` from the spec.
    stored_kg: float | None = None


ParkState = Mapping[str, AssetState]


def initial_state(park: ParkConfig) -> dict[str, AssetState]:
    """Every asset as configured: batteries at ``soc_initial``, no cars, no shift."""
    return {asset.id: model_for(asset).initial_state(asset) for asset in park.assets}


def state_of(state: ParkState | None, asset_id: str) -> AssetState:
    if state is None:
        return AssetState()
    return state.get(asset_id, AssetState())


@dataclass(frozen=True)
class ParkInputs:
    """Exogenous series of one park over a horizon ``index`` (UTC interval starts).

    ``pv_available_kw`` and ``baseline_kw`` map asset ids to arrays (T,) [kW >= 0];
    ``expected_sessions`` maps EV hub ids to expected sessions (columns of
    :data:`KNOWN_SESSION_COLUMNS` plus ``weight`` in (0, 1]); ``carbon`` the
    carbon price and budget of the objective (:class:`strategies.carbon.CarbonSignal`).
    """

    index: pd.DatetimeIndex
    pv_available_kw: Mapping[str, np.ndarray] = field(default_factory=dict)
    baseline_kw: Mapping[str, np.ndarray] = field(default_factory=dict)
    expected_sessions: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    #: The carbon price and budget the objective charges (:mod:`strategies.carbon`); None: none.
    carbon: CarbonSignal | None = None
    #: Heat demand per heat level id (T,) [kW_th >= 0] (:mod:`strategies.commodity`).
    heat_demand_kw: Mapping[str, np.ndarray] = field(default_factory=dict)
    #: Heat pump id -> COP per interval (T,) [>= 1].
    cop: Mapping[str, np.ndarray] = field(default_factory=dict)
    #: The idle fallback's electric draw of each converter [kW >= 0] (T,), set by
    #: :func:`strategies.commodity.with_idle_conversion` (merit order serving the demand).
    idle_draw_kw: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_aware_index(self.index, "index")
        for name, series in (
            *self.pv_available_kw.items(), *self.baseline_kw.items(),
            *self.heat_demand_kw.items(), *self.cop.items(), *self.idle_draw_kw.items(),
        ):
            if np.shape(series) != (len(self.index),):
                raise InputError(
                    f"input for {name} has shape {np.shape(series)}, want ({len(self.index)},)"
                )
        if self.carbon is not None and self.carbon.intensity_tco2_per_mwh.shape != (
            len(self.index),
        ):
            raise InputError(
                f"carbon intensity has {len(self.carbon.intensity_tco2_per_mwh)} values, "
                f"want {len(self.index)}"
            )

    def with_carbon(self, carbon: CarbonSignal | None) -> ParkInputs:
        """These inputs with the carbon signal ``carbon`` (None: carbon-blind)."""
        return dataclasses.replace(self, carbon=carbon)

    def window(self, start: int) -> ParkInputs:
        """The inputs from interval ``start`` to the end of the horizon."""
        def cut(values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {k: np.asarray(v)[start:] for k, v in values.items()}

        return ParkInputs(
            self.index[start:],
            cut(self.pv_available_kw),
            cut(self.baseline_kw),
            self.expected_sessions,
            None if self.carbon is None else self.carbon.window(start),
            cut(self.heat_demand_kw),
            cut(self.cop),
            cut(self.idle_draw_kw),
        )


def load_inputs(
    park: ParkConfig,
    config_dir: Path,
    index: pd.DatetimeIndex,
    *,
    decision_time: dt.datetime | None = None,
    expected_weeks: int = 4,
) -> ParkInputs:
    """PV forecast, process baselines and expected EV sessions from the park's profiles.

    ``decision_time``: when given, the inputs are a *forecast* made then
    (each type's :meth:`~strategies.assets.AssetModel.load_inputs` says how:
    PV from the output of the days before, EV from the sessions of past
    weeks that had arrived by then, the process baseline as the plant's own
    schedule). ``None`` gives the realized profiles and no expected sessions
    (perfect foresight passes the realized sessions as state, see
    :func:`strategies.foresight.realized_states`).
    """
    require_aware_index(index, "index")
    if decision_time is not None:
        require_aware(decision_time, "decision_time")
    request = InputsRequest(
        config_dir, index, park.timezone, decision_time, expected_weeks, park=park
    )
    fields: dict[str, Any] = {
        "pv_available_kw": {}, "baseline_kw": {}, "expected_sessions": {}, "cop": {}
    }
    for asset in park.assets:
        for name, value in model_for(asset).load_inputs(asset, request).items():
            if name not in fields:
                raise InputError(
                    f"{park.id}/{asset.id}: input {name!r} is not a ParkInputs field "
                    f"({', '.join(fields)})"
                )
            fields[name][asset.id] = value
    fields["heat_demand_kw"] = heat_demand_inputs(park, request)
    return ParkInputs(index, **fields)

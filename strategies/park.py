"""A park's model: its assets' blocks and the grid connection they share.

``net_kw`` (scenarios x intervals) is the park's power at the grid
connection, positive into the grid (sold), negative drawn (bought) -- the
sign convention of :mod:`vpp.units` -- and is bounded by the connection:
``net_kw <= export_limit_kw`` (``{park}-grid-export-max``) and
``-net_kw <= import_limit_kw`` (``{park}-grid-import-max``).

Parks that share nothing but the market never share a model: each park is
optimised on its own (see :func:`strategies.schedule.solve_parks`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

import cvxpy as cp
import numpy as np
import pandas as pd

from strategies._model import ModelBuilder, Stack
from strategies.assets import AssetBlock, AssetModel, SharedModel, by_model
from strategies.carbon import add_carbon_terms
from strategies.commodity import add_balances, check_supply
from strategies.state import EnergyPolicy, ParkInputs, ParkState
from vpp.assets.commodities import HYDROGEN
from vpp.config.models import ParkConfig
from vpp.errors import InputError
from vpp.timeutil import require_aware_index

if TYPE_CHECKING:
    from strategies.ev import SessionWindow

ASSET_TYPE = "park"


def interval_hours(index: pd.DatetimeIndex, interval_minutes: int) -> np.ndarray:
    """Length [h] of each interval of ``index`` (UTC starts) with products of ``interval_minutes``.

    Checks the index is evenly spaced at ``interval_minutes`` so energy is
    never computed from a wrong step.
    """
    require_aware_index(index, "index")
    if len(index) == 0:
        raise InputError("empty horizon")
    if len(index) > 1:
        steps = np.diff(index.as_unit("ns").asi8) / 60e9
        if not np.allclose(steps, interval_minutes):
            raise InputError(
                f"index must be evenly spaced at {interval_minutes} min; got steps "
                f"{sorted(set(steps.tolist()))} min"
            )
    return np.full(len(index), interval_minutes / 60.0)


@dataclass(frozen=True)
class DynamicLayout:
    """A real-time model that one compile serves for every position of the horizon.

    Asset boxes, the process baseline and the ramp start become Parameters set
    per position (``set_state(..., position)``), and EV hubs become slot tables
    (:func:`strategies.ev.add_ev_slots`): ``expected`` holds each hub's expected
    sessions seen from the start of the horizon, ``capacity`` its (lanes, slots
    per lane) for plugged-in cars.
    """

    expected: Mapping[str, SessionWindow]
    capacity: Mapping[str, tuple[int, int]]


@dataclass(frozen=True)
class ParkModelRequest:
    """Everything one park model is built from (see :meth:`build`).

    ``dt_h`` (T,) are the interval lengths [h] of ``inputs.index``; ``scenarios``
    copies of the park are stacked with probabilities ``weights`` (default
    equal); asset costs (degradation, terminal value) are weighted by them.
    ``session_tables`` (hub id -> :func:`strategies.ev.session_table`)
    overrides the tables otherwise built from ``state`` and ``inputs``.
    ``soft=True`` (real time): rows carrying measured state get penalised
    slack (:mod:`strategies._model`). ``dynamic`` (real time, one scenario):
    the model's position can move without recompiling (:class:`DynamicLayout`);
    it implies ``soft``. ``shared=True`` (deterministic schedules): every number of
    the park is a Parameter, so parks of the same :meth:`structure` reuse one
    compiled model (:meth:`ParkModel.load`). The asset types' blocks
    (:class:`strategies.assets.AssetModel`) read what they need from it.
    """

    park: ParkConfig
    inputs: ParkInputs
    state: ParkState | None
    dt_h: np.ndarray
    scenarios: int = 1
    weights: np.ndarray | None = None
    omit: frozenset[str] = frozenset()
    energy_policy: EnergyPolicy = "cap"
    session_tables: Mapping[str, pd.DataFrame] | None = None
    soft: bool = False
    dynamic: DynamicLayout | None = None
    shared: bool = False

    @property
    def index(self) -> pd.DatetimeIndex:
        return self.inputs.index

    def structure(self) -> tuple[Any, ...] | None:
        """What a shared model of this park depends on (hashable), or ``None``: not shareable.

        Shareable: a hard model (no soft rows, not dynamic) without carbon or heat
        demand in the inputs, every asset type a :class:`~strategies.assets.SharedModel`.
        Parks with equal structures differ only in numbers.
        """
        inputs = self.inputs
        if (
            self.soft or self.dynamic is not None or self.session_tables is not None
            or inputs.carbon is not None or inputs.heat_demand_kw
        ):
            return None
        request = self.checked()
        parts: list[tuple[str, Any]] = []
        for model, specs in by_model(self.park.assets):
            if not isinstance(model, SharedModel):
                return None
            key = model.structure(specs, request)
            if key is None:
                return None
            parts.append((model.asset_type, key))
        return (
            tuple(parts), np.asarray(request.dt_h).tobytes(), request.scenarios,
            np.asarray(request.weights).tobytes(), request.omit, request.energy_policy,
        )

    def checked(self) -> ParkModelRequest:
        """The request with ``dt_h`` and ``weights`` as checked float arrays."""
        steps = len(self.index)
        dt_h = np.asarray(self.dt_h, dtype=float)
        if dt_h.shape != (steps,):
            raise InputError(f"dt_h has shape {dt_h.shape}, want ({steps},)")
        scenarios = self.scenarios
        weights = (
            np.full(scenarios, 1.0 / scenarios)
            if self.weights is None
            else np.asarray(self.weights, float)
        )
        if (
            weights.shape != (scenarios,)
            or not np.isclose(weights.sum(), 1.0)
            or (weights < 0).any()
        ):
            raise InputError(
                f"weights must be {scenarios} probabilities summing to 1, got {weights}"
            )
        if self.dynamic is not None and scenarios != 1:
            raise InputError("a dynamic (real-time) model has one scenario")
        return replace(self, dt_h=dt_h, weights=weights)

    def build(self) -> ParkModel:
        """The park's model: each type's block (in build rank), their net power, the grid limits."""
        request = self.checked()
        weights = np.asarray(request.weights)
        builder = ModelBuilder(omit=request.omit, soft=request.soft or request.dynamic is not None)
        parts = [
            (model, model.add_block(builder, specs, Stack(tuple(s.id for s in specs),
                                                          request.scenarios, weights), request))
            for model, specs in by_model(request.park.assets)
        ]
        net_kw = _net_kw(parts, request.scenarios, weights, len(request.index))
        model = ParkModel(
            request.park, request.index, request.dt_h, request.scenarios, weights, builder,
            parts, net_kw,
        )
        _add_grid_limits(model, request.shared)
        if not builder.soft:
            check_supply(request.park, request.inputs, request.dt_h)
        model.balances = add_balances(model, request.inputs)
        if request.inputs.carbon is not None:
            model.emissions_tco2 = add_carbon_terms(model, request.inputs.carbon)
        return model


@dataclass
class ParkModel:
    """The variables and constraints of one park over one horizon.

    ``parts`` holds each asset type's model and block, in build rank.
    """

    park: ParkConfig
    index: pd.DatetimeIndex
    dt_h: np.ndarray
    scenarios: int
    weights: np.ndarray
    builder: ModelBuilder
    parts: list[tuple[AssetModel[Any, Any], AssetBlock]]
    net_kw: cp.Expression
    #: Expected scope 2 emissions [tCO2] when the inputs carry an active carbon signal.
    emissions_tco2: cp.Expression | None = None
    #: Heat level id or ``hydrogen`` -> total supply (scenarios, T) entering its balance.
    balances: dict[str, cp.Expression] = field(default_factory=dict)
    #: Real time: each balance's demand Parameter and its values (zeroed before the position).
    balance_demand: list[tuple[cp.Parameter, np.ndarray]] = field(default_factory=list)
    #: Shared models: the export and import limit [kW] Parameters.
    grid_limits_kw: tuple[cp.Parameter, cp.Parameter] | None = None

    def load(self, request: ParkModelRequest) -> None:
        """A shared model takes the park of ``request``, of the same :meth:`~ParkModelRequest.structure`.

        Asset ids, numbers and measured state become the new park's; the constraint
        labels stay those of the park the model was built for (diagnose a failed
        solve on the park's own model).
        """
        if self.grid_limits_kw is None:
            raise InputError("only a shared park model loads another park")
        request = request.checked()
        groups = by_model(request.park.assets)
        for (model, block), (_, specs) in zip(self.parts, groups, strict=True):
            stack = Stack(tuple(s.id for s in specs), request.scenarios, np.asarray(request.weights))
            cast(SharedModel, model).load_block(block, specs, stack, request)
        export, import_ = self.grid_limits_kw
        export.value = float(request.park.grid.export_limit_kw)
        import_.value = float(request.park.grid.import_limit_kw)
        check_supply(request.park, request.inputs, request.dt_h)
        self.park, self.index = request.park, request.index

    def variable_bounds(self) -> list[tuple[cp.Variable, Any, Any]]:
        """Shared models: (variable, lower, upper) of every box that holds the park's numbers."""
        return [
            bound
            for model, block in self.parts
            for bound in cast(SharedModel, model).variable_bounds(block)
        ]

    def net_power_kw(self) -> np.ndarray:
        """Solved net power into the grid [kW], (scenarios, T)."""
        return np.asarray(self.net_kw.value)

    def solved(self) -> SolvedPark:
        """The solved values without CVXPY (:class:`SolvedPark`)."""
        return SolvedPark(
            self.park, self.index, self.net_power_kw(), self.asset_power_kw(), self.soc_kwh(),
            self.commodity_flows(),
        )

    def block(self, asset_type: str) -> Any:
        """The block of the type whose model's ``asset_type`` is ``asset_type``, or None."""
        for model, block in self.parts:
            if model.asset_type == asset_type:
                return block
        return None

    def blocks(self) -> list[tuple[tuple[str, ...], cp.Expression]]:
        """(asset ids, power_kw expression with rows scenario-major) per asset block."""
        return [(block.stack.ids, block.power_kw) for _, block in self.parts]

    def asset_power_kw(self) -> dict[str, np.ndarray]:
        """Solved power into the grid [kW] per asset id, shape (scenarios, T)."""
        out: dict[str, np.ndarray] = {}
        for ids, expr in self.blocks():
            value = np.asarray(expr.value, dtype=float).reshape(self.scenarios, len(ids), -1)
            for i, asset_id in enumerate(ids):
                out[asset_id] = value[:, i, :]
        return out

    def soc_kwh(self) -> dict[str, np.ndarray]:
        """Solved stored energy at the end of each interval [kWh], (scenarios, T)."""
        out: dict[str, np.ndarray] = {}
        for model, block in self.parts:
            out.update(model.soc_kwh(block, self.scenarios))
        return out

    def commodity_flows(self) -> dict[tuple[str, str], np.ndarray]:
        """Solved (asset id, node) -> what the asset supplies to the node (scenarios, T).

        kW_th into a heat level, kg/h into ``hydrogen``; negative: taken from it.
        """
        out: dict[tuple[str, str], np.ndarray] = {}
        for _, block in self.parts:
            ids = block.stack.ids
            for node, flow in getattr(block, "flows", {}).items():
                value = np.asarray(flow.value, dtype=float).reshape(self.scenarios, len(ids), -1)
                for i, asset_id in enumerate(ids):
                    if np.any(value[:, i, :]) or node in _asset_nodes(self.park, asset_id):
                        out[(asset_id, node)] = value[:, i, :]
        return out

    def set_position(self, state: ParkState | None, position: int) -> None:
        """Real time: every block's measured ``state`` at the start of interval ``position``."""
        for model, block in self.parts:
            model.set_position(block, state, position)
        if self.balance_demand:
            live = np.arange(len(self.index))[None, :] >= position
            for parameter, values in self.balance_demand:
                parameter.value = np.where(live, values, 0.0)


@dataclass(frozen=True)
class SolvedPark:
    """A solved park model's values (what :func:`strategies.schedule.schedule_from_models` reads).

    Plain arrays: small to send from a worker process, and they stay when a
    shared model moves on to the next park. Same shapes as :class:`ParkModel`'s.
    """

    park: ParkConfig
    index: pd.DatetimeIndex
    net_kw: np.ndarray
    power_kw: Mapping[str, np.ndarray]
    stored_kwh: Mapping[str, np.ndarray]
    flows: Mapping[tuple[str, str], np.ndarray]

    def net_power_kw(self) -> np.ndarray:
        return self.net_kw

    def asset_power_kw(self) -> dict[str, np.ndarray]:
        return dict(self.power_kw)

    def soc_kwh(self) -> dict[str, np.ndarray]:
        return dict(self.stored_kwh)

    def commodity_flows(self) -> dict[tuple[str, str], np.ndarray]:
        return dict(self.flows)


def _asset_nodes(park: ParkConfig, asset_id: str) -> set[str]:
    asset = next(a for a in park.assets if a.id == asset_id)
    nodes = set(asset.heat_outputs())
    if asset.storage_node is not None:
        nodes.add(asset.storage_node)
    if asset.produces_hydrogen:
        nodes.add(HYDROGEN)
    return nodes


def _net_kw(
    parts: Sequence[tuple[AssetModel[Any, Any], AssetBlock]],
    scenarios: int,
    weights: np.ndarray,
    steps: int,
) -> cp.Expression:
    """The park's net power into the grid [kW], (scenarios, T): the sum of every block's."""
    terms = [
        Stack(block.stack.ids, scenarios, weights).to_scenarios() @ block.power_kw
        for _, block in parts
    ]
    if not terms:
        return cp.Constant(np.zeros((scenarios, steps)))
    return cp.sum(terms) if len(terms) > 1 else terms[0]


def _add_grid_limits(model: ParkModel, shared: bool = False) -> None:
    """``{park}-grid-export-max`` and ``{park}-grid-import-max`` on the net power."""
    park = model.park
    labels = (
        (park.id,) if model.scenarios == 1
        else tuple(f"{park.id}@s{s}" for s in range(model.scenarios))
    )
    export: float | cp.Parameter = park.grid.export_limit_kw
    import_: float | cp.Parameter = park.grid.import_limit_kw
    if shared:
        export = cp.Parameter(name="grid_export_limit_kw", value=float(park.grid.export_limit_kw))
        import_ = cp.Parameter(name="grid_import_limit_kw", value=float(park.grid.import_limit_kw))
        model.grid_limits_kw = (export, import_)
    model.builder.add(ASSET_TYPE, "grid-export", "max", labels, model.net_kw - export, "<=")
    model.builder.add(ASSET_TYPE, "grid-import", "max", labels, -model.net_kw - import_, "<=")


def build_park_model(
    park: ParkConfig,
    inputs: ParkInputs,
    state: ParkState | None,
    dt_h: np.ndarray,
    **options: Any,
) -> ParkModel:
    """``ParkModelRequest(park, inputs, state, dt_h, **options).build()``."""
    return ParkModelRequest(park, inputs, state, dt_h, **options).build()


def decision_index(index: pd.DatetimeIndex, now: dt.datetime) -> int:
    """Position of the interval containing ``now`` (the first one still open)."""
    stamp = pd.Timestamp(now).tz_convert("UTC")
    position = int(index.searchsorted(stamp, side="right")) - 1
    return max(position, 0)

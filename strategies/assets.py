"""What every asset type brings to the strategy layer: the :class:`AssetModel` protocol.

The asset-type registry (:mod:`vpp.assets`) names one module of this package
per ``type`` string (``strategies.battery``, ``strategies.ev``,
``strategies.process``, ``strategies.pv``). Each of those modules holds one
object, ``MODEL``, that implements :class:`AssetModel`: everything the park
model, the schedules, the state and perfect foresight need to know about the
type. Nothing in ``strategies`` asks which class a spec is; it asks
:func:`model_for` and calls the protocol (PyPSA keeps one module per
component the same way).

A type's model:

* builds the vectorised variables and constraints of all ``n`` assets of the
  type in one park into the park problem (:meth:`AssetModel.add_block`), with
  the rows of :class:`strategies._model.Stack` (scenarios x assets);
* reads the solved stored energy back per asset (:meth:`AssetModel.soc_kwh`;
  the power of every block is its ``power_kw``, read by the park model);
* sets the measured state of a compiled real-time model at an interval
  (:meth:`AssetModel.set_position`);
* gives the safe idle schedule of its assets (:meth:`AssetModel.idle_power_kw`);
* gives its assets' state "as configured" (:meth:`AssetModel.initial_state`),
  their exogenous inputs (:meth:`AssetModel.load_inputs`) and, for perfect
  foresight, the realized state (:meth:`AssetModel.realized_state`).

``build_rank`` fixes the order in which the types' blocks enter a park
model, so a solve is reproducible whatever the order of the registry (a new
type takes the next free rank). Adding an asset type here is its module with
its ``MODEL``, its tests and its registry line; no other file of this package
changes. A type module outside this package takes :class:`ModelBuilder` and
:class:`Stack` from here (``tests/test_asset_registry.py`` plugs in a fifth
type that way).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from strategies._model import ModelBuilder, Stack
from vpp.assets import asset_type
from vpp.errors import InputError

if TYPE_CHECKING:
    import cvxpy as cp
    import pandas as pd

    from strategies.park import ParkModelRequest
    from strategies.state import AssetState, ParkInputs, ParkState
    from vpp.config.models import ParkConfig


class TypedSpec(Protocol):
    """What this module needs of a spec: its id and the ``type`` string of the registry."""

    @property
    def id(self) -> str: ...

    @property
    def type(self) -> str: ...


@runtime_checkable
class AssetBlock(Protocol):
    """The variables of all assets of one type in one park model."""

    @property
    def stack(self) -> Stack:
        """Row layout: ``stack.ids`` the asset ids, rows scenario-major."""
        ...

    @property
    def power_kw(self) -> cp.Expression:
        """Power into the grid [kW] per (scenario x asset) row and interval."""
        ...


@dataclass(frozen=True)
class InputsRequest:
    """Where and for which horizon a type reads its exogenous inputs.

    ``decision_time`` set: the inputs are a forecast made then
    (:func:`strategies.state.load_inputs`); ``None``: the realized profiles.
    """

    config_dir: Path
    index: pd.DatetimeIndex
    timezone: str
    decision_time: dt.datetime | None = None
    expected_weeks: int = 4
    #: The park the inputs are for (heat levels: a heat pump's sink temperature).
    park: ParkConfig | None = None


SpecT = TypeVar("SpecT", contravariant=True)
BlockT = TypeVar("BlockT")


@runtime_checkable
class AssetModel(Protocol[SpecT, BlockT]):
    """What each asset type's module in ``strategies`` provides as its ``MODEL``."""

    asset_type: str
    """Prefix of the type's constraint kinds and row names (``"battery"``, ``"ev"``)."""
    build_rank: int
    """Order of the type's block in a park model (lowest first)."""
    idle_after_others: bool
    """The idle schedule places this type after every other, in the export room they leave."""

    def add_block(
        self,
        builder: ModelBuilder,
        specs: Sequence[SpecT],
        stack: Stack,
        request: ParkModelRequest,
    ) -> BlockT:
        """Add every asset of the type in ``request.park`` (``specs``, park order) to ``builder``."""
        ...

    def soc_kwh(self, block: BlockT, scenarios: int) -> dict[str, np.ndarray]:
        """Solved stored energy [kWh] at the end of each interval per asset, (scenarios, T).

        Empty for a type that stores nothing.
        """
        ...

    def set_position(self, block: BlockT, state: ParkState | None, position: int) -> None:
        """Real time: the measured ``state`` at the start of interval ``position``."""
        ...

    def idle_power_kw(
        self,
        specs: Sequence[SpecT],
        inputs: ParkInputs,
        state: ParkState | None,
        dt_h: np.ndarray,
        headroom_kw: np.ndarray,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The idle fallback: power into the grid [kW] (T,) and stored energy [kWh] (T,) per asset.

        ``headroom_kw`` (T,): the export capacity left by the assets placed
        before this type (see :attr:`idle_after_others`), never negative.
        """
        ...

    def initial_state(self, spec: SpecT) -> AssetState:
        """The asset as configured, before any measurement."""
        ...

    def load_inputs(self, spec: SpecT, request: InputsRequest) -> Mapping[str, Any]:
        """The asset's exogenous inputs: ``{ParkInputs field: value}`` (empty if none)."""
        ...

    def realized_state(
        self, spec: SpecT, previous: AssetState, request: InputsRequest
    ) -> AssetState | None:
        """Perfect foresight: ``previous`` with what will really happen; ``None``: unchanged."""
        ...


@runtime_checkable
class SharedModel(Protocol):
    """What a type's ``MODEL`` adds so parks of the same structure share one compiled model.

    Optional: a park is solved in a shared model only if every type in it has
    these (:meth:`strategies.park.ParkModelRequest.structure`). With
    ``request.shared`` the type's :meth:`AssetModel.add_block` holds every
    number of the block in a :class:`cvxpy.Parameter`, the variable boxes aside
    (:meth:`variable_bounds`), so the compiled problem depends on the structure
    alone.
    """

    def structure(self, specs: Sequence[Any], request: ParkModelRequest) -> Any:
        """Hashable: what fixes the block's variables and rows; ``None``: cannot share."""
        ...

    def load_block(
        self, block: Any, specs: Sequence[Any], stack: Stack, request: ParkModelRequest
    ) -> None:
        """Put the numbers (and measured state) of ``specs`` of the same structure into ``block``."""
        ...

    def variable_bounds(self, block: Any) -> list[tuple[cp.Variable, Any, Any]]:
        """(variable, lower, upper) of the loaded assets for each variable whose box holds
        numbers: a shared solve writes them into the compiled problem (CVXPY does not
        allow Parameter bounds on a variable that a Parameter multiplies)."""
        ...


def model_for(spec: TypedSpec) -> AssetModel[Any, Any]:
    """The :class:`AssetModel` of ``spec``'s type, found through the registry."""
    model: AssetModel[Any, Any] = asset_type(spec.type).model_module().MODEL
    return model


def specs_of(assets: Sequence[TypedSpec], module: str) -> list[Any]:
    """The assets whose registry entry names ``module`` (a type module passes ``__name__``)."""
    return [a for a in assets if asset_type(a.type).model == module]


def by_model(assets: Sequence[TypedSpec]) -> list[tuple[AssetModel[Any, Any], list[Any]]]:
    """The assets grouped by type (park order inside a group), groups by ``build_rank``."""
    groups: dict[str, tuple[AssetModel[Any, Any], list[Any]]] = {}
    for spec in assets:
        entry = asset_type(spec.type)
        if entry.name not in groups:
            groups[entry.name] = (model_for(spec), [])
        groups[entry.name][1].append(spec)
    return sorted(groups.values(), key=lambda group: group[0].build_rank)


def input_series(values: Mapping[str, Any], asset_id: str, park_id: str, what: str) -> np.ndarray:
    """``values[asset_id]`` as a float array; a missing entry names the park, asset and input."""
    try:
        return np.asarray(values[asset_id], dtype=float)
    except KeyError:
        raise InputError(f"{park_id}/{asset_id}: no {what} in the inputs") from None


__all__ = [
    "AssetBlock",
    "AssetModel",
    "InputsRequest",
    "ModelBuilder",
    "SharedModel",
    "Stack",
    "TypedSpec",
    "by_model",
    "input_series",
    "model_for",
    "specs_of",
]

"""Heat and hydrogen balances of a park model, the stores both use, and the idle conversion.

**Flows.** A block of a converting or storing type exposes ``flows``: balance
node -> expression (rows x intervals) of what it supplies to the node
(kW_th into a heat level, kg/h into ``hydrogen``; negative: it takes from
it). Heat pumps, boilers and electrolyser heat recovery supply heat levels,
electrolysers supply hydrogen, stores supply their discharge minus their
charge. A block may also expose ``demand``: node -> (T,) a fixed draw it
stands for (the hydrogen offtake of a hydrogen store).

**Balances** (:func:`add_balances`, after every block is built): for every
node of the park and every scenario and interval,
``sum of flows == heat demand of the level (inputs) + fixed draws``, one
row per (scenario, interval) labelled ``{park}:{node}@{UTC start}`` so an
infeasible model names the balance *and* the interval
(``{park}:{node}@...-heat-balance``). The rows carry measured state in real
time (a store's content) and are soft there: a shortfall is penalised, not
infeasible, and reported. :func:`check_supply` refuses a plan whose demand
exceeds what the park's converters and stores can deliver at all in some
interval, with :class:`~vpp.errors.UnmetDemandError` naming it.

**Stores** (:func:`add_store`): content at the end of each interval
``e[t] = a[t] e[t-1] + (charge[t] - discharge[t]) dt[t]`` with
``a = (1 - loss_per_h) ** dt`` (standing losses), boxed content, charge and
discharge limits; ``{id}-content-final``: back to at least the initial
content (capped by what can be reached), soft in real time.

**Idle conversion** (:func:`with_idle_conversion`): the safe fallback still
serves the demand: per level, heat pumps first (highest mean COP first),
then boilers, each up to its capacity; electrolysers run at the hydrogen
offtake rate (within their load range). Stores stay as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cvxpy as cp
import numpy as np
import pandas as pd

from strategies._model import ModelBuilder, Stack, full, previous
from vpp.assets.commodities import HYDROGEN
from vpp.errors import InputError, UnmetDemandError

if TYPE_CHECKING:
    from strategies.park import ParkModel
    from strategies.state import ParkInputs
    from vpp.config.models import ParkConfig

ASSET_TYPE = "park"

#: Absolute tolerance of a balance in planning checks [kW_th or kg/h].
BALANCE_TOL = 1e-6


def node_quantity(node: str) -> str:
    """The quantity name of a node's balance rows: ``heat`` or ``hydrogen``."""
    return "hydrogen" if node == HYDROGEN else "heat"


def stamp(t: pd.Timestamp) -> str:
    return pd.Timestamp(t).tz_convert("UTC").strftime("%Y-%m-%dT%H:%MZ")


def add_balances(model: ParkModel, inputs: ParkInputs) -> dict[str, cp.Expression]:
    """One balance row per node, scenario and interval (see module doc); node -> supply (S, T)."""
    scenarios, steps = model.scenarios, len(model.index)
    supply: dict[str, list[cp.Expression]] = {}
    demand: dict[str, np.ndarray] = {
        node: np.asarray(values, dtype=float) for node, values in inputs.heat_demand_kw.items()
    }
    for _, block in model.parts:
        to_scenarios = Stack(block.stack.ids, scenarios, model.weights).to_scenarios()
        for node, flow in getattr(block, "flows", {}).items():
            supply.setdefault(node, []).append(to_scenarios @ flow)
        for node, draw in getattr(block, "demand", {}).items():
            demand[node] = demand.get(node, np.zeros(steps)) + np.asarray(draw, dtype=float)
    out: dict[str, cp.Expression] = {}
    for node in sorted(set(supply) | set(demand)):
        need_values = np.array(
            np.broadcast_to(demand.get(node, np.zeros(steps)), (scenarios, steps))
        )
        need: np.ndarray | cp.Parameter = need_values
        if model.builder.soft:
            # real time: the demand of intervals before the model's position is zeroed by
            # ParkModel.set_position (the past is not re-planned), so it needs a Parameter
            need = cp.Parameter((scenarios, steps), name=f"{node}_demand", value=need_values)
            model.balance_demand.append((need, need_values))
        terms = supply.get(node, [])
        total: cp.Expression = (
            cp.Constant(np.zeros((scenarios, steps))) if not terms
            else (cp.sum(terms) if len(terms) > 1 else terms[0])
        )
        out[node] = total
        if not terms and not need_values.any():
            continue
        labels = [
            f"{model.park.id}:{node}@{stamp(t)}" + ("" if scenarios == 1 else f"@s{s}")
            for s in range(scenarios)
            for t in model.index
        ]
        lhs = cp.reshape(total - need, (scenarios * steps, 1), order="C")
        model.builder.add(ASSET_TYPE, node_quantity(node), "balance", labels, lhs, "==", soft=True)
    return out


def check_supply(park: ParkConfig, inputs: ParkInputs, dt_h: np.ndarray) -> None:
    """Raise :class:`UnmetDemandError` if a level's demand exceeds all it can get in an interval.

    What a level can get at most in an interval: every converter on it at
    full power (heat pumps at that interval's COP) plus its store's
    discharge limit -- no plan can do better, so a demand above it is
    unmeetable whatever the prices.
    """
    steps = len(inputs.index)
    assets: list[Any] = list(park.assets)  # duck-typed: the commodity properties of AssetBase
    for level, demand in inputs.heat_demand_kw.items():
        most = np.zeros(steps)
        for asset in assets:
            if level in asset.heat_outputs():
                most = most + heat_capacity_kw(asset, inputs, steps)
            if asset.storage_node == level:
                most = most + float(getattr(asset, "discharge_kw", 0.0))
        short = np.asarray(demand, dtype=float) - most
        if (short > BALANCE_TOL).any():
            t = int(np.argmax(short))
            raise UnmetDemandError(
                f"{park.id}: heat demand of {level} is {float(demand[t]):.6g} kW_th at "
                f"{stamp(inputs.index[t])} but its heat pumps, boilers, heat recovery and "
                f"storage deliver at most {float(most[t]):.6g} kW_th",
                balance=f"{park.id}:{level}",
                interval=inputs.index[t].to_pydatetime(),
            )


def heat_gain(asset: Any, inputs: ParkInputs, steps: int) -> np.ndarray:
    """Heat per electricity (T,) of a converter: its COP series (heat pump) or efficiency."""
    if asset.id in inputs.cop:
        return np.asarray(inputs.cop[asset.id], dtype=float)
    return np.full(steps, float(getattr(asset, "efficiency", 1.0)))


def heat_capacity_kw(asset: Any, inputs: ParkInputs, steps: int) -> np.ndarray:
    """Most heat [kW_th] (T,) ``asset`` delivers to the levels it supplies."""
    if getattr(asset, "heat_recovery_fraction", 0.0):
        return np.full(steps, float(asset.power_kw) * float(asset.heat_recovery_fraction))
    return float(asset.power_kw) * heat_gain(asset, inputs, steps)


def with_idle_conversion(park: ParkConfig, inputs: ParkInputs) -> ParkInputs:
    """``inputs`` with the idle fallback's converter draw (see module doc)."""
    steps = len(inputs.index)
    assets: list[Any] = list(park.assets)
    draw: dict[str, np.ndarray] = {}
    for level, demand in inputs.heat_demand_kw.items():
        residual = np.asarray(demand, dtype=float).copy()
        converters = [
            a for a in assets
            if level in a.heat_outputs() and not a.produces_hydrogen
        ]
        # heat pumps (a COP series) first, best mean COP first; then boilers.
        converters.sort(key=lambda a: (a.id not in inputs.cop, -float(
            np.mean(heat_gain(a, inputs, steps)))))
        for asset in converters:
            gain = heat_gain(asset, inputs, steps)
            heat = np.minimum(residual, float(asset.power_kw) * gain)
            draw[asset.id] = draw.get(asset.id, np.zeros(steps)) + heat / gain
            residual = residual - heat
    offtake = sum(
        (float(getattr(a, "offtake_rate_kg_per_h", 0.0)) for a in assets
         if a.storage_node == HYDROGEN),
        0.0,
    )
    electrolysers = [a for a in assets if a.produces_hydrogen]
    if electrolysers:
        rated = sum(float(a.power_kw) for a in electrolysers)
        for asset in electrolysers:
            share = float(asset.power_kw) / rated
            stack = offtake * share * float(asset.kwh_per_kg)
            stack = float(np.clip(stack, asset.min_power_kw if stack > 0 else 0.0, asset.power_kw))
            draw[asset.id] = np.full(steps, stack)
    return dataclasses.replace(inputs, idle_draw_kw=draw)


def idle_flows(
    park: ParkConfig, inputs: ParkInputs, power_kw: dict[str, np.ndarray]
) -> dict[tuple[str, str], np.ndarray]:
    """(asset id, node) -> what the idle schedule's ``power_kw`` supplies (heat kW_th, kg/h)."""
    steps = len(inputs.index)
    out: dict[tuple[str, str], np.ndarray] = {}
    assets: list[Any] = list(park.assets)
    for asset in assets:
        draw = -np.asarray(power_kw.get(asset.id, np.zeros(steps)), dtype=float)
        if asset.produces_hydrogen:
            stack = np.where(draw >= asset.min_power_kw, draw, 0.0)
            out[(asset.id, HYDROGEN)] = stack / float(asset.kwh_per_kg)
            for level in asset.heat_outputs():
                out[(asset.id, level)] = stack * float(asset.heat_recovery_fraction)
            continue
        for level in asset.heat_outputs():
            out[(asset.id, level)] = draw * heat_gain(asset, inputs, steps)
        if asset.storage_node is not None:
            out[(asset.id, asset.storage_node)] = np.zeros(steps)
    return out


@dataclass
class StoreBlock:
    """Heat or hydrogen stores of one type in one park model."""

    stack: Stack
    specs: tuple[Any, ...]
    node_of: tuple[str, ...]
    charge: cp.Variable
    discharge: cp.Variable
    content: cp.Variable
    initial: cp.Parameter
    target: cp.Parameter
    dt_h: np.ndarray
    capacity: np.ndarray  # (n,) what a fill of 1 stands for
    charge_limit: np.ndarray  # (n,) [unit/h]
    boxes: tuple[tuple[cp.Parameter, np.ndarray], ...] = ()
    content_box: tuple[cp.Parameter, cp.Parameter, np.ndarray, np.ndarray] | None = None

    @property
    def power_kw(self) -> cp.Expression:
        """Stores are passive at the grid."""
        return cp.Constant(np.zeros(self.charge.shape))

    @property
    def flows(self) -> dict[str, cp.Expression]:
        out: dict[str, cp.Expression] = {}
        for node in dict.fromkeys(self.node_of):
            rows = [r for r in range(self.stack.rows) if self.node_of[r % self.stack.n] == node]
            mask = np.zeros((self.stack.rows, 1))
            mask[rows] = 1.0
            out[node] = cp.multiply(mask, self.discharge - self.charge)
        return out

    def reachable_floor(self, lower: np.ndarray, start: np.ndarray, position: int) -> np.ndarray:
        """``lower`` where a store measured below it (a deficit drained it) can be refilled.

        A heat store may be measured below its ``soc_min`` (its plan reserve): the
        floor then rises from the measured content at the charge limit instead of
        demanding it back at once, which no converter could deliver (infeasible).
        """
        steps = len(self.dt_h)
        hours = np.concatenate([np.zeros(position), np.cumsum(self.dt_h[position:])])
        limit = self.stack.tile(self.charge_limit)[:, None]
        refill = start + limit * hours[None, :steps]
        return np.minimum(lower, np.maximum(refill, 0.0))

    def set_state(self, content: np.ndarray, position: int = 0) -> None:
        """The measured content per store (n,) at the start of interval ``position``."""
        value = np.asarray(content, dtype=float)
        if value.shape != (self.stack.n,) or not np.isfinite(value).all():
            raise InputError(f"store state needs {self.stack.n} finite values, got {value}")
        if position and self.content_box is None:
            raise InputError("a static store model starts at position 0")
        self.initial.value = self.stack.tile(value)
        if self.content_box is not None:
            live = np.arange(len(self.dt_h))[None, :] >= position
            for parameter, upper in self.boxes:
                parameter.value = np.where(live, upper, 0.0)
            lower_p, upper_p, lower, upper = self.content_box
            start = self.stack.tile(value)[:, None]
            # Before the position the content just decays from the measured value through the
            # standing losses (no flows): floor 0 there, so the decay never breaks the box.
            lower_p.value = np.where(live, self.reachable_floor(lower, start, position), 0.0)
            upper_p.value = np.where(live, upper, np.maximum(upper, start))
        wanted = np.array([s.soc_initial for s in self.specs]) * self.capacity
        reachable = value + self.charge_limit * float(self.dt_h[position:].sum())
        high = np.array([s.soc_max for s in self.specs]) * self.capacity
        self.target.value = self.stack.tile(np.minimum(np.minimum(wanted, reachable), high))


def add_store(
    builder: ModelBuilder,
    asset_type: str,
    specs: Sequence[Any],
    nodes: Sequence[str],
    capacity: np.ndarray,
    charge_limit: np.ndarray,
    discharge_limit: np.ndarray,
    loss_per_h: np.ndarray,
    initial_content: np.ndarray,
    dt_h: np.ndarray,
    stack: Stack,
    *,
    dynamic: bool = False,
) -> StoreBlock:
    """Add stores (content in kWh_th or kg) to ``builder``; see the module doc."""
    specs = tuple(specs)
    rows, steps = stack.rows, len(dt_h)
    shape = (rows, steps)

    def column(values: np.ndarray) -> np.ndarray:
        return stack.tile(np.asarray(values, dtype=float))[:, None]

    cap = column(capacity)
    charge_max = full(column(charge_limit), shape)
    discharge_max = full(column(discharge_limit), shape)
    low = full(column(np.array([s.soc_min for s in specs])) * cap, shape)
    high = full(column(np.array([s.soc_max for s in specs])) * cap, shape)
    # a store measured below its floor (drained by a deficit) refills at its charge limit
    refill = column(initial_content) + column(charge_limit) * np.cumsum(dt_h)[None, :]
    low = np.minimum(low, np.maximum(refill, 0.0))
    high = np.maximum(high, np.minimum(column(initial_content), cap))
    params: dict[str, cp.Parameter] = {}

    def box(values: np.ndarray, name: str) -> np.ndarray | cp.Parameter:
        if not dynamic:
            return values
        params[name] = cp.Parameter(shape, name=f"{asset_type}_{name}", value=values)
        return params[name]

    charge = cp.Variable(shape, name=f"{asset_type}_charge", bounds=builder.bounds(
        f"{asset_type}:charge-bounds", 0.0, box(charge_max, "charge_max")))
    discharge = cp.Variable(shape, name=f"{asset_type}_discharge", bounds=builder.bounds(
        f"{asset_type}:discharge-bounds", 0.0, box(discharge_max, "discharge_max")))
    content = cp.Variable(shape, name=f"{asset_type}_content", bounds=builder.bounds(
        f"{asset_type}:content-bounds", box(low, "content_min"), box(high, "content_max")))
    initial = cp.Parameter(rows, name=f"{asset_type}_content_initial")
    target = cp.Parameter(rows, name=f"{asset_type}_content_target")
    block = StoreBlock(
        stack, specs, tuple(nodes), charge, discharge, content, initial, target, dt_h,
        np.asarray(capacity, dtype=float), np.asarray(charge_limit, dtype=float),
    )
    if dynamic:
        block.boxes = ((params["charge_max"], charge_max), (params["discharge_max"], discharge_max))
        block.content_box = (params["content_min"], params["content_max"], low, high)
    block.set_state(initial_content)
    keep = np.power(1.0 - column(loss_per_h), dt_h[None, :])
    builder.add(
        asset_type, "content", "balance", stack.labels,
        content - cp.multiply(keep, previous(initial, content))
        - cp.multiply(dt_h[None, :], charge - discharge),
        "==",
    )
    back = np.flatnonzero(stack.tile(np.array([s.soc_final == "initial" for s in specs])))
    if back.size:
        builder.add(
            asset_type, "content", "final", [stack.labels[i] for i in back],
            target[back] - content[back, steps - 1], "<=", soft=True,
        )
    return block


def store_soc(block: StoreBlock, scenarios: int) -> dict[str, np.ndarray]:
    ids = block.stack.ids
    value = np.asarray(block.content.value).reshape(scenarios, len(ids), -1)
    return {a: value[:, i, :] for i, a in enumerate(ids)}


def idle_draw(inputs: ParkInputs, asset_id: str) -> np.ndarray:
    """The idle fallback's electric draw of a converter [kW] (T,); zero if none was set."""
    values = inputs.idle_draw_kw.get(asset_id)
    return np.zeros(len(inputs.index)) if values is None else np.asarray(values, dtype=float)


__all__ = [
    "BALANCE_COLUMNS",
    "StoreBlock",
    "add_balances",
    "add_store",
    "balance_frame",
    "check_supply",
    "idle_draw",
    "idle_flows",
    "node_quantity",
    "store_soc",
    "with_idle_conversion",
]


BALANCE_COLUMNS = (
    "interval_start", "park_id", "node", "unit", "supply", "demand", "storage_in", "losses",
    "unmet", "surplus",
)


def balance_frame(
    park: ParkConfig,
    inputs: ParkInputs,
    initial_content: dict[str, float],
    flows: pd.DataFrame,
    content: pd.DataFrame,
    dt_h: np.ndarray,
) -> pd.DataFrame:
    """Per node and interval of ``park``: supply, demand, storage in, losses, unmet, surplus.

    Rates: kW_th for heat levels, kg/h for hydrogen. ``flows`` and ``content``
    are a schedule's (columns ``(park, asset, node)`` / ``(park, asset)``);
    ``initial_content`` the stores' content before the first interval.
    ``storage_in`` is what the stores take (negative: give); ``losses`` their
    standing losses; ``unmet = max(demand - supply + storage_in, 0)`` and
    ``surplus`` the opposite excess (both 0 in a solved plan).
    """
    index = inputs.index
    steps = len(index)
    nodes: dict[str, str] = {level.id: "kW_th" for level in park.heat_levels}
    if any(a.produces_hydrogen or a.storage_node == HYDROGEN for a in park.assets):
        nodes[HYDROGEN] = "kg/h"
    rows = []
    for node, unit in nodes.items():
        supply = np.zeros(steps)
        storage_in = np.zeros(steps)
        losses = np.zeros(steps)
        for asset in park.assets:
            key = (park.id, asset.id, node)
            values = (
                flows[key].to_numpy(float) if key in flows.columns else np.zeros(steps)
            )
            if asset.storage_node == node:
                storage_in -= values
                if (park.id, asset.id) in content.columns:
                    after = content[(park.id, asset.id)].to_numpy(float)
                    before = np.concatenate([[initial_content.get(asset.id, after[0])], after[:-1]])
                    losses += -values - (after - before) / dt_h
            else:
                supply += values
        demand = np.asarray(inputs.heat_demand_kw.get(node, np.zeros(steps)), dtype=float)
        if node == HYDROGEN:
            demand = demand + sum(
                (float(getattr(a, "offtake_rate_kg_per_h", 0.0)) for a in park.assets
                 if a.storage_node == HYDROGEN),
                0.0,
            )
        gap = demand - supply + storage_in
        rows.append(
            pd.DataFrame(
                {
                    "interval_start": index, "park_id": park.id, "node": node, "unit": unit,
                    "supply": supply, "demand": demand, "storage_in": storage_in,
                    "losses": np.where(np.abs(losses) < 1e-9, 0.0, losses),
                    "unmet": np.maximum(gap, 0.0) * (gap > BALANCE_TOL),
                    "surplus": np.maximum(-gap, 0.0) * (-gap > BALANCE_TOL),
                }
            )
        )
    if not rows:
        return pd.DataFrame(columns=list(BALANCE_COLUMNS))
    return pd.concat(rows, ignore_index=True)

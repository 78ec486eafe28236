"""Flexible industrial process: a baseline load shifted up or down within limits.

Consumption ``baseline + shift`` [kW, >= 0] with one variable ``shift_kw``
(rows = processes x scenarios, columns = intervals):

* ``shift`` in ``[-min(shift_down_kw, baseline), min(shift_up_kw, max_power_kw - baseline)]``
  (``process:shift-bounds``);
* **recovery within the window**: the day is cut into blocks of
  ``recovery_window_h`` starting at local midnight (the park's time zone);
  the energy shifted inside a block is recovered inside the same block:
  ``offset0 + sum_{t in block} shift[t] * dt[t] = 0`` for every block that
  ends at a boundary inside the horizon (``recovery-window``) and for the
  last one, which ends with the horizon (``energy-recovered``); ``offset0``
  (what was shifted before the horizon began) counts in the first block
  only. So every kWh shed or added is paid back within at most
  ``recovery_window_h``, by a linear (convex) constraint. (One row per block
  rather than the running offset at each boundary: equivalent when every row
  holds, and when a soft row gives way in real time, a block's shortfall is
  penalised once and not carried into the next block -- which is also what
  the operator measures, since it restarts the offset at each block);
* ramp limits on the *shift* (the controllable deviation from the baseline;
  the baseline itself is what the plant does anyway):
  ``shift[t] - shift[t-1] = step[t]`` (``ramp-balance``) with
  ``|step[t]| <= ramp_limit_kw_per_min * minutes[t]`` as a variable box
  (``process:ramp-bounds``), starting from the shift now in force.

Why blocks and not "recover within W of each shift": with separate up and
down variables that FIFO rule is not convex -- an LP can move up and down in
the same interval (no net change) to fake a recovery. The constraint tests
caught exactly that; fixed blocks are convex and exact.

State carried in (:class:`strategies.state.AssetState`):
``energy_offset_kwh`` = energy consumed above baseline since the current
block began (negative: shed), to be recovered by the block's end;
``shift_kw`` = the shift now in force, the start of the ramp.

Power into the grid: ``-(baseline + shift)``.

Real time: ``recovery-window`` and ``energy-recovered`` carry measured state
(the energy shifted so far) and are soft there (:mod:`strategies._model`).
With ``dynamic=True`` the baseline, the shift box and the start of the ramp
are Parameters: before the current position baseline and shift are zero, the
ramp restarts from the measured shift at the position (``ramp-balance``:
``shift[t] - shift[t-1] - step[t] = kick[t]``, ``kick`` = measured shift at the
position, zero elsewhere) and the measured offset enters the row of the block
the position is in (blocks already over hold ``0 = 0``), so one compiled
model serves the whole day.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cvxpy as cp
import numpy as np
import pandas as pd
import scipy.sparse as sp

from strategies._model import ModelBuilder, Stack, previous
from strategies.assets import input_series
from strategies.state import AssetState, ParkInputs, ParkState, state_of
from vpp.config.models import FlexibleProcessSpec
from vpp.errors import InputError
from vpp.profiles import load_kw
from vpp.timeutil import zone

if TYPE_CHECKING:
    from strategies.assets import InputsRequest
    from strategies.park import ParkModelRequest

ASSET_TYPE = "process"


@dataclass
class ProcessBlock:
    stack: Stack
    specs: tuple[FlexibleProcessSpec, ...]
    baseline_kw: np.ndarray  # (rows, T)
    shift_kw: cp.Variable
    shift_initial_kw: cp.Parameter
    #: per recovery window: (process rows, block of each interval, offset per block Parameter)
    recovery: list[tuple[np.ndarray, np.ndarray, cp.Parameter]] = field(default_factory=list)
    #: dynamic models only (see module doc)
    baseline_param: cp.Parameter | None = None
    shift_box: tuple[cp.Parameter, cp.Parameter, np.ndarray, np.ndarray] | None = None
    kick_kw: cp.Parameter | None = None
    ramp_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    position: int = 0

    @property
    def consumption_kw(self) -> cp.Expression:
        base = self.baseline_param if self.baseline_param is not None else self.baseline_kw
        return base + self.shift_kw

    @property
    def power_kw(self) -> cp.Expression:
        return -self.consumption_kw

    @property
    def dynamic(self) -> bool:
        return self.baseline_param is not None

    def set_state(
        self, energy_offset_kwh: np.ndarray, shift_kw: np.ndarray, position: int = 0
    ) -> None:
        """The measured state at the start of interval ``position`` (0 unless dynamic)."""
        offset = np.asarray(energy_offset_kwh, dtype=float)
        shift = np.asarray(shift_kw, dtype=float)
        if not (np.isfinite(offset).all() and np.isfinite(shift).all()):
            raise InputError("process state must be finite")
        if position and not self.dynamic:
            raise InputError("a static process model starts at position 0")
        self.position = position
        offsets = self.stack.tile(offset)
        for rows, block_of, parameter in self.recovery:
            value = np.zeros(parameter.shape)
            value[:, block_of[position]] = offsets[rows]
            parameter.value = value
        self.shift_initial_kw.value = self.stack.tile(shift)
        if self.baseline_param is None:
            return
        live = np.arange(self.baseline_kw.shape[1])[None, :] >= position
        self.baseline_param.value = np.where(live, self.baseline_kw, 0.0)
        if self.shift_box is not None:
            lower_p, upper_p, lower, upper = self.shift_box
            lower_p.value = np.where(live, lower, 0.0)
            upper_p.value = np.where(live, upper, 0.0)
        if self.kick_kw is not None:
            kick = np.zeros(self.kick_kw.shape)
            kick[:, position] = self.stack.tile(shift)[self.ramp_rows]
            self.kick_kw.value = kick



def block_starts(index: pd.DatetimeIndex, timezone: str, window_h: float) -> np.ndarray:
    """Positions ``t > 0`` of intervals that start a recovery block (local wall clock)."""
    local = index.tz_convert(zone(timezone))
    minutes = np.asarray(local.hour * 60 + local.minute, dtype=float)
    window_min = window_h * 60.0
    starts = np.isclose(np.mod(minutes, window_min), 0.0) | np.isclose(
        np.mod(minutes, window_min), window_min
    )
    starts[0] = False
    return np.flatnonzero(starts)


def add_processes(
    builder: ModelBuilder,
    specs: Sequence[FlexibleProcessSpec],
    baseline_kw: np.ndarray,
    energy_offset_kwh: np.ndarray,
    shift_kw: np.ndarray,
    index: pd.DatetimeIndex,
    timezone: str,
    dt_h: np.ndarray,
    stack: Stack,
    *,
    dynamic: bool = False,
) -> ProcessBlock:
    """Add every flexible process of a park; ``baseline_kw`` is (n, T) [kW, >= 0].

    ``dynamic=True``: the position can move without recompiling (see module doc).
    """
    specs = tuple(specs)
    rows, steps = stack.rows, len(dt_h)
    shape = (rows, steps)
    baseline = np.asarray(baseline_kw, dtype=float)
    if baseline.shape != (len(specs), steps) or not np.isfinite(baseline).all():
        raise InputError(f"baseline_kw must be finite ({len(specs)}, {steps}), got {baseline.shape}")
    if (baseline < 0).any():
        raise InputError("process baseline must be >= 0 [kW consumed]")
    base = stack.tile(baseline)
    max_power = stack.tile(np.array([s.max_power_kw for s in specs]))[:, None]
    up = np.maximum(
        np.minimum(stack.tile(np.array([s.shift_up_kw for s in specs]))[:, None], max_power - base),
        0.0,
    )
    down = np.maximum(
        np.minimum(stack.tile(np.array([s.shift_down_kw for s in specs]))[:, None], base), 0.0
    )
    lower, upper = -np.broadcast_to(down, shape), np.array(np.broadcast_to(up, shape))
    box: tuple[cp.Parameter, cp.Parameter, np.ndarray, np.ndarray] | None = None
    if dynamic:
        box = (
            cp.Parameter(shape, name="process_shift_min_kw", value=lower),
            cp.Parameter(shape, name="process_shift_max_kw", value=upper),
            lower,
            upper,
        )
        shift = cp.Variable(
            shape, name="process_shift_kw",
            bounds=builder.bounds("process:shift-bounds", box[0], box[1]),
        )
    else:
        shift = cp.Variable(
            shape, name="process_shift_kw", bounds=builder.bounds("process:shift-bounds", -down, up)
        )
    shift0 = cp.Parameter(rows, name="process_shift_initial_kw")
    block = ProcessBlock(stack, specs, base, shift, shift0)
    if dynamic:
        block.baseline_param = cp.Parameter(shape, name="process_baseline_kw", value=base)
        block.shift_box = box

    labels = stack.labels
    windows = stack.tile(np.array([s.recovery_window_h for s in specs]))
    for window in np.unique(windows):
        idx = np.flatnonzero(windows == window)
        starts = block_starts(index, timezone, float(window))
        block_of = np.searchsorted(starts, np.arange(steps), side="right")  # (T,)
        blocks = len(starts) + 1
        per_block = sp.csr_matrix((dt_h, (block_of, np.arange(steps))), shape=(blocks, steps))
        offset = cp.Parameter((len(idx), blocks), name=f"process_offset_kwh_{window:g}h")
        lhs = (per_block @ shift[idx].T).T + offset  # (assets, blocks)
        names = [labels[i] for i in idx]
        if blocks > 1:
            builder.add(ASSET_TYPE, "recovery", "window", names, lhs[:, :-1], "==", soft=True)
        builder.add(ASSET_TYPE, "energy", "recovered", names, lhs[:, -1], "==", soft=True)
        block.recovery.append((idx, block_of, offset))

    ramp = stack.tile(np.array([s.ramp_limit_kw_per_min or np.inf for s in specs]))
    limited = np.flatnonzero(np.isfinite(ramp))
    if limited.size:
        # One bounded variable per step change and one equality row, rather than two
        # inequality rows: the solver handles a box for free (measured: 25 % faster re-solves).
        sub = shift[limited]
        step_limit = ramp[limited][:, None] * (dt_h * 60.0)[None, :]
        step = cp.Variable(
            (len(limited), steps), name="process_ramp_kw",
            bounds=builder.bounds("process:ramp-bounds", -step_limit, step_limit),
        )
        if dynamic:
            block.kick_kw = cp.Parameter((len(limited), steps), name="process_ramp_start_kw")
            block.ramp_rows = limited
            start = previous(np.zeros(len(limited)), sub) + block.kick_kw
        else:
            start = previous(shift0[limited], sub)
        builder.add(
            ASSET_TYPE, "ramp", "balance", [labels[i] for i in limited], sub - start - step, "=="
        )
    block.set_state(energy_offset_kwh, shift_kw)
    return block


def _offsets_kwh(specs: Sequence[FlexibleProcessSpec], state: ParkState | None) -> np.ndarray:
    return np.array([state_of(state, p.id).energy_offset_kwh for p in specs], dtype=float)


def _shifts_kw(specs: Sequence[FlexibleProcessSpec], state: ParkState | None) -> np.ndarray:
    return np.array([state_of(state, p.id).shift_kw for p in specs], dtype=float)


class ProcessModel:
    """The flexible-process type in the strategy layer (:class:`strategies.assets.AssetModel`)."""

    asset_type = ASSET_TYPE
    build_rank = 1
    idle_after_others = False

    def add_block(
        self,
        builder: ModelBuilder,
        specs: Sequence[FlexibleProcessSpec],
        stack: Stack,
        request: ParkModelRequest,
    ) -> ProcessBlock:
        park = request.park
        baseline = np.array(
            [input_series(request.inputs.baseline_kw, p.id, park.id, "baseline") for p in specs]
        )
        return add_processes(
            builder, specs, baseline, _offsets_kwh(specs, request.state),
            _shifts_kw(specs, request.state), request.index, park.timezone, request.dt_h, stack,
            dynamic=request.dynamic is not None,
        )

    def soc_kwh(self, block: ProcessBlock, scenarios: int) -> dict[str, np.ndarray]:
        return {}

    def set_position(self, block: ProcessBlock, state: ParkState | None, position: int) -> None:
        block.set_state(_offsets_kwh(block.specs, state), _shifts_kw(block.specs, state), position)

    def idle_power_kw(
        self,
        specs: Sequence[FlexibleProcessSpec],
        inputs: ParkInputs,
        state: ParkState | None,
        dt_h: np.ndarray,
        headroom_kw: np.ndarray,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Idle: the plant runs its own baseline, no shift."""
        power = {p.id: -np.asarray(inputs.baseline_kw[p.id], dtype=float) for p in specs}
        return power, {}

    def initial_state(self, spec: FlexibleProcessSpec) -> AssetState:
        return AssetState()

    def load_inputs(self, spec: FlexibleProcessSpec, request: InputsRequest) -> Mapping[str, Any]:
        """The baseline is the plant's own production schedule, known in advance: used as is."""
        baseline = load_kw(spec, request.config_dir, request.index, request.timezone)
        return {"baseline_kw": baseline.to_numpy(float)}

    def realized_state(
        self, spec: FlexibleProcessSpec, previous: AssetState, request: InputsRequest
    ) -> AssetState | None:
        return None


MODEL = ProcessModel()

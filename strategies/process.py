"""Flexible industrial process: a baseline load shifted up or down within limits.

Consumption ``baseline + up - down`` [kW, >= 0] with

* ``up`` in ``[0, min(shift_up_kw, max_power_kw - baseline)]`` and
  ``down`` in ``[0, min(shift_down_kw, baseline)]`` (``process:shift-bounds``);
* cumulative shifted energy ``up_kwh[t] = up_kwh[t-1] + up[t] * dt[t]`` and the
  same for ``down_kwh`` (``energy-up-balance``, ``energy-down-balance``);
* recovery within the window of ``W`` intervals (``recovery_window_h``):
  every kWh shed by ``t`` is consumed again by ``t + W`` and every extra kWh
  consumed by ``t`` is shed again by ``t + W``:
  ``down_kwh[t] <= up_kwh[t+W]`` (``recovery-down``) and
  ``up_kwh[t] <= down_kwh[t+W]`` (``recovery-up``);
* all shifted energy recovered by the end of the horizon:
  ``up_kwh[T-1] == down_kwh[T-1]`` (``energy-recovered``);
* ramp limits on the *shift* (the controllable deviation from the baseline;
  the baseline itself is what the plant does anyway):
  ``|shift[t] - shift[t-1]| <= ramp_limit_kw_per_min * minutes[t]``
  (``ramp-up``, ``ramp-down``), starting from the current shift.

State carried in from earlier intervals (:class:`strategies.state.AssetState`):
``energy_offset_kwh`` = energy consumed above baseline and not yet recovered
(negative: shed and not yet recovered) is treated as if shifted at the start
of the horizon, so it too must be recovered within the window; ``shift_kw``
is the deviation in force, the start of the ramp.

Power into the grid: ``-(baseline + up - down)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from strategies._model import ModelBuilder, Stack, full, previous
from vpp.config.models import FlexibleProcessSpec

ASSET_TYPE = "process"


@dataclass
class ProcessBlock:
    stack: Stack
    specs: tuple[FlexibleProcessSpec, ...]
    baseline_kw: np.ndarray  # (rows, T)
    up_kw: cp.Variable
    down_kw: cp.Variable
    up_kwh: cp.Variable
    down_kwh: cp.Variable
    up_initial_kwh: cp.Parameter
    down_initial_kwh: cp.Parameter
    shift_initial_kw: cp.Parameter

    @property
    def consumption_kw(self) -> cp.Expression:
        return self.baseline_kw + self.up_kw - self.down_kw

    @property
    def power_kw(self) -> cp.Expression:
        return -self.consumption_kw

    def set_state(self, energy_offset_kwh: np.ndarray, shift_kw: np.ndarray) -> None:
        offset = np.asarray(energy_offset_kwh, dtype=float)
        shift = np.asarray(shift_kw, dtype=float)
        if not (np.isfinite(offset).all() and np.isfinite(shift).all()):
            raise ValueError("process state must be finite")
        self.up_initial_kwh.value = self.stack.tile(np.maximum(offset, 0.0))
        self.down_initial_kwh.value = self.stack.tile(np.maximum(-offset, 0.0))
        self.shift_initial_kw.value = self.stack.tile(shift)


def window_intervals(spec: FlexibleProcessSpec, dt_h: np.ndarray) -> int:
    """The recovery window in whole intervals (at least one)."""
    return max(1, round(spec.recovery_window_h / float(np.median(dt_h))))


def add_processes(
    builder: ModelBuilder,
    specs: Sequence[FlexibleProcessSpec],
    baseline_kw: np.ndarray,
    energy_offset_kwh: np.ndarray,
    shift_kw: np.ndarray,
    dt_h: np.ndarray,
    stack: Stack,
) -> ProcessBlock:
    """Add every flexible process of a park; ``baseline_kw`` is (n, T) [kW, >= 0]."""
    specs = tuple(specs)
    rows, steps = stack.rows, len(dt_h)
    shape = (rows, steps)
    baseline = np.asarray(baseline_kw, dtype=float)
    if baseline.shape != (len(specs), steps) or not np.isfinite(baseline).all():
        raise ValueError(f"baseline_kw must be finite ({len(specs)}, {steps}), got {baseline.shape}")
    if (baseline < 0).any():
        raise ValueError("process baseline must be >= 0 [kW consumed]")
    base = stack.tile(baseline)
    max_power = stack.tile(np.array([s.max_power_kw for s in specs]))[:, None]
    up_limit = np.minimum(
        stack.tile(np.array([s.shift_up_kw for s in specs]))[:, None], max_power - base
    )
    down_limit = np.minimum(stack.tile(np.array([s.shift_down_kw for s in specs]))[:, None], base)
    up_kw = cp.Variable(
        shape, name="process_up_kw",
        bounds=builder.bounds("process:shift-bounds", 0.0, np.maximum(up_limit, 0.0)),
    )
    down_kw = cp.Variable(
        shape, name="process_down_kw",
        bounds=builder.bounds("process:shift-bounds", 0.0, np.maximum(down_limit, 0.0)),
    )
    up_kwh = cp.Variable(shape, name="process_up_kwh", bounds=[full(0.0, shape), None])
    down_kwh = cp.Variable(shape, name="process_down_kwh", bounds=[full(0.0, shape), None])
    up0 = cp.Parameter(rows, name="process_up_initial_kwh")
    down0 = cp.Parameter(rows, name="process_down_initial_kwh")
    shift0 = cp.Parameter(rows, name="process_shift_initial_kw")
    block = ProcessBlock(stack, specs, base, up_kw, down_kw, up_kwh, down_kwh, up0, down0, shift0)
    block.set_state(energy_offset_kwh, shift_kw)

    labels = stack.labels
    dt = dt_h[None, :]
    builder.add(
        ASSET_TYPE, "energy-up", "balance", labels,
        up_kwh - previous(up0, up_kwh) - cp.multiply(np.broadcast_to(dt, shape), up_kw), "==",
    )
    builder.add(
        ASSET_TYPE, "energy-down", "balance", labels,
        down_kwh - previous(down0, down_kwh) - cp.multiply(np.broadcast_to(dt, shape), down_kw),
        "==",
    )
    builder.add(
        ASSET_TYPE, "energy", "recovered", labels,
        up_kwh[:, steps - 1] - down_kwh[:, steps - 1], "==",
    )
    windows = stack.tile(np.array([window_intervals(s, dt_h) for s in specs])).astype(int)
    for window in (int(w) for w in np.unique(windows)):
        if window >= steps:
            continue  # the end-of-horizon recovery covers it
        idx = np.flatnonzero(windows == window)
        sub = [labels[i] for i in idx]
        builder.add(
            ASSET_TYPE, "recovery", "down", sub,
            down_kwh[idx, : steps - window] - up_kwh[idx, window:], "<=",
        )
        builder.add(
            ASSET_TYPE, "recovery", "up", sub,
            up_kwh[idx, : steps - window] - down_kwh[idx, window:], "<=",
        )

    ramp = stack.tile(np.array([s.ramp_limit_kw_per_min or np.inf for s in specs]))
    limited = np.flatnonzero(np.isfinite(ramp))
    if limited.size:
        shift = up_kw[limited] - down_kw[limited]
        change = shift - previous(shift0[limited], shift)
        step_limit = ramp[limited][:, None] * (dt_h * 60.0)[None, :]
        sub = [labels[i] for i in limited]
        builder.add(ASSET_TYPE, "ramp", "up", sub, change - step_limit, "<=")
        builder.add(ASSET_TYPE, "ramp", "down", sub, -change - step_limit, "<=")
    return block

"""PV model: forecast output, curtailable down to zero when the inverter accepts a limit.

One variable ``output_kw`` (rows = PV plants x scenarios, columns = intervals)
boxed by ``[0, available]`` for a curtailable plant and fixed at
``available`` otherwise (``pv:output-bounds``). ``available`` is the forecast
[kW, >= 0] from :func:`vpp.profiles.pv_available_kw`. Power into the grid is
``+output_kw``. With ``dynamic=True`` (real time) the box is a Parameter and
:meth:`PvBlock.set_position` pins the intervals before the current one at zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from strategies._model import ModelBuilder, Stack
from vpp.config.models import PvSpec
from vpp.errors import InputError

ASSET_TYPE = "pv"


@dataclass
class PvBlock:
    stack: Stack
    specs: tuple[PvSpec, ...]
    output_kw: cp.Variable
    available_kw: np.ndarray  # (rows, T)
    box: tuple[cp.Parameter, cp.Parameter, np.ndarray, np.ndarray] | None = None

    @property
    def power_kw(self) -> cp.Expression:
        return self.output_kw

    def set_position(self, position: int) -> None:
        """Intervals before ``position`` produce nothing (dynamic models only)."""
        if self.box is None:
            if position:
                raise InputError("a static PV model starts at position 0")
            return
        lower_p, upper_p, lower, upper = self.box
        live = np.arange(lower.shape[1])[None, :] >= position
        lower_p.value = np.where(live, lower, 0.0)
        upper_p.value = np.where(live, upper, 0.0)


def add_pv(
    builder: ModelBuilder,
    specs: Sequence[PvSpec],
    available_kw: np.ndarray,
    stack: Stack,
    *,
    dynamic: bool = False,
) -> PvBlock:
    """Add every PV plant of a park; ``available_kw`` is (n, T) [kW, >= 0]."""
    specs = tuple(specs)
    available = np.asarray(available_kw, dtype=float)
    if available.ndim != 2 or available.shape[0] != len(specs):
        raise InputError(f"available_kw must be ({len(specs)}, T), got {available.shape}")
    if not np.isfinite(available).all() or (available < 0).any():
        raise InputError("PV available power must be finite and >= 0")
    upper = stack.tile(available)
    curtailable = stack.tile(np.array([float(s.curtailable) for s in specs]))[:, None]
    lower = upper * (1.0 - curtailable)
    if not dynamic:
        output_kw = cp.Variable(
            upper.shape, name="pv_output_kw", bounds=builder.bounds("pv:output-bounds", lower, upper)
        )
        return PvBlock(stack, specs, output_kw, upper)
    lower_p = cp.Parameter(upper.shape, name="pv_output_min_kw", value=lower)
    upper_p = cp.Parameter(upper.shape, name="pv_output_max_kw", value=upper)
    output_kw = cp.Variable(
        upper.shape, name="pv_output_kw", bounds=builder.bounds("pv:output-bounds", lower_p, upper_p)
    )
    return PvBlock(stack, specs, output_kw, upper, (lower_p, upper_p, lower, upper))

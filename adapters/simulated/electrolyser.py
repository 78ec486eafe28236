"""Simulated physics of ``electrolyser``: a stack with minimum load, stand-by and ramp."""

from __future__ import annotations

import datetime as dt

from adapters.base import Reading
from adapters.simulated.base import EPS, SimulatedDevice, hours_between
from vpp.config.models import ElectrolyserSpec, SimulatedAdapter
from vpp.types import Clock

# A setpoint asking for at least this fraction of the minimum load turns the stack on.
ON_THRESHOLD_FRACTION = 0.5


class SimulatedElectrolyser(SimulatedDevice):
    """An electrolyser: the setpoint is its total electric draw (<= 0 in vpp sign).

    With a minimum load (``min_load_fraction > 0``) the stack is on iff the
    draw asked for is at least half the minimum load; on, the stack runs at
    the draw clipped to ``[min_power_kw, power_kw]``; off, it draws
    ``standby_kw`` and produces nothing -- it never runs between 0 and the
    minimum load. Without a minimum load the stack runs at the draw clipped
    to ``[0, power_kw]`` and stand-by is drawn while the stack is at 0.

    ``ramp_limit_kw_per_min`` bounds how fast the stack power moves toward
    its target within its operating range (integrated exactly: a linear
    ramp, then the target); switching on starts at the minimum load and
    switching off is immediate (the on/off decision is discrete).

    Registers [kWh, kg]: ``consumed_kwh`` (stack + stand-by), ``hydrogen_kg``
    (stack energy / ``kwh_per_kg``) and ``heat_kwh`` (``heat_recovery_fraction``
    x stack energy).
    """

    registers = ("consumed_kwh", "hydrogen_kg", "heat_kwh")

    def __init__(
        self, park_id: str, asset: ElectrolyserSpec, spec: SimulatedAdapter, *, clock: Clock
    ) -> None:
        super().__init__(park_id, asset, spec, clock=clock)
        self.electrolyser = asset
        self.stack_kw = 0.0
        self.consumed_kwh = 0.0
        self.hydrogen_kg = 0.0
        self.heat_kwh = 0.0

    def target_stack_kw(self) -> float:
        """The stack power the current setpoint asks for, after min load and rating [kW]."""
        e = self.electrolyser
        draw = max(-(self._setpoint_kw or 0.0), 0.0)
        if e.on_off:
            if draw < ON_THRESHOLD_FRACTION * e.min_power_kw:
                return 0.0
            return min(max(draw, e.min_power_kw), e.power_kw)
        return min(draw, e.power_kw)

    def _switch(self, target_kw: float) -> None:
        """The discrete part of a change: off at once, on at the minimum load."""
        e = self.electrolyser
        if e.ramp_limit_kw_per_min is None:
            self.stack_kw = target_kw
        elif e.on_off and target_kw == 0.0:
            self.stack_kw = 0.0
        elif e.on_off and self.stack_kw < e.min_power_kw - EPS:
            self.stack_kw = e.min_power_kw

    def _standby_kw(self) -> float:
        return self.electrolyser.standby_kw if self.stack_kw <= EPS else 0.0

    def _on_setpoint(self) -> None:
        self._switch(self.target_stack_kw())

    def _integrate(self, start: dt.datetime, end: dt.datetime) -> None:
        e = self.electrolyser
        target = self.target_stack_kw()
        self._switch(target)
        dt_h = hours_between(start, end)
        s0 = self.stack_kw
        if e.ramp_limit_kw_per_min is None or abs(target - s0) <= EPS:
            reach_h = 0.0
            s0 = target
        else:
            rate_kw_per_h = e.ramp_limit_kw_per_min * 60.0
            reach_h = abs(target - s0) / rate_kw_per_h
        if reach_h >= dt_h:  # still ramping at the end
            rate = e.ramp_limit_kw_per_min * 60.0 if e.ramp_limit_kw_per_min else 0.0
            s1 = s0 + (rate * dt_h if target > s0 else -rate * dt_h)
            stack_kwh = (s0 + s1) / 2 * dt_h
            standby_h = 0.0
        else:
            s1 = target
            stack_kwh = (s0 + target) / 2 * reach_h + target * (dt_h - reach_h)
            standby_h = dt_h - reach_h if target <= EPS else 0.0
        self.stack_kw = s1
        self.consumed_kwh += stack_kwh + e.standby_kw * standby_h
        self.hydrogen_kg += stack_kwh / e.kwh_per_kg
        self.heat_kwh += stack_kwh * e.heat_recovery_fraction

    def _reading(self, now: dt.datetime) -> Reading:
        e = self.electrolyser
        on = self.stack_kw > EPS
        return Reading(
            now,
            -(self.stack_kw + self._standby_kw()),
            None,
            {
                "consumed_kwh": self.consumed_kwh,
                "hydrogen_kg": self.hydrogen_kg,
                "heat_kwh": self.heat_kwh,
                "stack_kw": self.stack_kw,
                "on": 1.0 if on else 0.0,
                "hydrogen_kg_per_h": self.stack_kw / e.kwh_per_kg,
                "heat_kw": self.stack_kw * e.heat_recovery_fraction,
            },
        )


DEVICE = SimulatedElectrolyser
"""The simulated device class of this asset type (found through the asset registry)."""

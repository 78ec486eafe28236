"""Simulated physics of ``flexible_process``: a baseline shifted within a band and ramp."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd

from adapters.base import DeviceFaultError, Reading, Reason
from adapters.simulated.base import Profile, SimulatedDevice, hours_between
from vpp.config.models import FlexibleProcessSpec, SimulatedAdapter
from vpp.types import Clock


class SimulatedProcess(SimulatedDevice):
    """A flexible process: follows its baseline, shifted by a setpoint within the shift band.

    Consumption is ``baseline + shift``. The target consumption is the
    setpoint's magnitude clamped to ``[baseline - shift_down, baseline +
    shift_up]`` and ``[0, max_power]``. The *shift* (the controllable
    deviation from the baseline, as in :mod:`strategies.process`) changes
    when a setpoint arrives, by at most ``ramp_limit_kw_per_min`` times the
    minutes since the previous setpoint -- the plant prepares a change over
    the interval before it, the same discrete ramp the optimiser plans with.
    The baseline itself is what the plant does anyway and is followed at once.
    """

    registers = ("consumed_kwh", "baseline_kwh")
    inputs = ("baseline_kw",)

    def __init__(
        self,
        park_id: str,
        asset: FlexibleProcessSpec,
        spec: SimulatedAdapter,
        *,
        clock: Clock,
        baseline_kw: pd.Series,
    ) -> None:
        super().__init__(park_id, asset, spec, clock=clock)
        self.process = asset
        self.baseline = Profile(baseline_kw, f"{asset.id} baseline_kw")
        self.target_kw: float | None = None  # consumption asked for by the setpoint
        self.shift_kw = 0.0
        self._interval_start = self._t  # the setpoint interval the current step belongs to
        self._shift_at_start = 0.0
        self._room_kw = math.inf if asset.ramp_limit_kw_per_min is None else 0.0
        self.consumed_kwh = 0.0
        self.baseline_kwh = 0.0

    def _base(self, baseline_kw: float) -> float:
        return min(baseline_kw, self.process.max_power_kw)

    def _band(self, baseline_kw: float) -> tuple[float, float]:
        p = self.process
        base = self._base(baseline_kw)
        low = max(0.0, base - p.shift_down_kw)
        high = min(p.max_power_kw, base + p.shift_up_kw)
        return min(low, high), high

    def _consumption(self, baseline_kw: float) -> float:
        low, high = self._band(baseline_kw)
        return min(max(self._base(baseline_kw) + self.shift_kw, low), high)

    def limits_kw(self) -> tuple[float, float]:
        baseline = self.baseline.at(self.clock.now())
        if baseline is None:
            return super().limits_kw()
        low, high = self._band(baseline)
        return -high, -low

    def _on_setpoint(self) -> None:
        now = self.clock.now()
        baseline = self.baseline.at(now)
        if baseline is None or self._setpoint_kw is None:
            return
        start = self._setpoint_start or now
        if start != self._interval_start:
            # A setpoint for a new interval: the plant had the time since the previous
            # interval's setpoint to prepare the change. Re-sends and re-plans for the same
            # interval share that one step (watchdog refreshes change nothing).
            ramp = self.process.ramp_limit_kw_per_min
            minutes = (start - self._interval_start).total_seconds() / 60.0
            self._room_kw = math.inf if ramp is None else ramp * max(minutes, 0.0)
            self._shift_at_start = self.shift_kw
            self._interval_start = start
        low, high = self._band(baseline)
        target = min(max(-self._setpoint_kw, low), high) - self._base(baseline)
        self.shift_kw = min(
            max(target, self._shift_at_start - self._room_kw), self._shift_at_start + self._room_kw
        )

    def _integrate(self, start: dt.datetime, end: dt.datetime) -> None:
        for a, b, baseline in self.baseline.segments(start, end):
            dt_h = hours_between(a, b)
            self.consumed_kwh += self._consumption(baseline) * dt_h
            self.baseline_kwh += self._base(baseline) * dt_h

    def _reading(self, now: dt.datetime) -> Reading:
        baseline = self.baseline.at(now)
        if baseline is None:
            raise DeviceFaultError(Reason.NO_DATA, f"no baseline data at {now}")
        consumption = self._consumption(baseline)
        return Reading(
            now,
            -consumption,
            None,
            {
                "baseline_kw": baseline,
                "shift_kw": consumption - self._base(baseline),
                "consumed_kwh": self.consumed_kwh,
                "shifted_kwh": self.consumed_kwh - self.baseline_kwh,
            },
        )


DEVICE = SimulatedProcess
"""The simulated device class of this asset type (found through the asset registry)."""

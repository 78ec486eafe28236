"""The replay clock: time only moves forward, and only when the backtest says so."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from vpp.timeutil import require_aware


class ReplayClock:
    """A :class:`vpp.types.Clock` for backtests.

    The backtest driver advances it to each decision time; strategies and
    the replay exchange read it. Moving it backwards is an error, so data
    once hidden can never be revealed out of order.
    """

    def __init__(self, start: dt.datetime) -> None:
        require_aware(start, "start")
        self._now = start.astimezone(dt.UTC)

    def now(self) -> dt.datetime:
        return self._now

    def advance_to(self, when: dt.datetime) -> None:
        require_aware(when, "when")
        when = when.astimezone(dt.UTC)
        if when < self._now:
            raise ValueError(f"replay clock cannot move back from {self._now} to {when}")
        self._now = when


class AcceleratedClock:
    """Simulated time running ``speed`` times faster than the wall clock.

    Used by ``vpp exchange serve --speed`` and ``vpp run --simulate`` so a
    market day passes in seconds. ``monotonic`` is injectable for tests.
    """

    def __init__(
        self,
        start: dt.datetime,
        speed: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        require_aware(start, "start")
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._start = start.astimezone(dt.UTC)
        self._speed = speed
        self._monotonic = monotonic
        self._wall0 = monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> dt.datetime:
        elapsed = (self._monotonic() - self._wall0) * self._speed
        return self._start + dt.timedelta(seconds=elapsed)

    def wall_seconds_until(self, when: dt.datetime) -> float:
        """Real seconds until simulated time reaches ``when`` (0 if past)."""
        return max((when - self.now()).total_seconds() / self._speed, 0.0)

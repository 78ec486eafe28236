"""The clocks of the runtime: one :class:`vpp.types.Clock` per way of running.

- :class:`SystemClock`: the wall clock (the daemon against a real market).
- :class:`ReplayClock`: time only moves forward, and only when the backtest says so.
- :class:`AcceleratedClock`: simulated time ``speed`` times faster than the wall clock.
- :class:`SimulationClock`: accelerated, and still while a job runs (``vpp run --simulate``).

SimulationClock: The simulation clock of ``vpp run --simulate``: accelerated, and still while a job runs.

At ``--speed X`` every wall second is X simulated seconds, so a job that
takes 0.1 s of computation would otherwise start its measurements and
finish its writes 0.1·X simulated seconds late -- at X = 5000 more than
eight minutes of a fifteen-minute interval. Real time has no such
magnification. So while a job runs, :class:`SimulationClock` stands still at
the instant the job was due; between jobs it runs at speed X. Jobs run in
the order they were due and the held instant never goes backwards, so the
devices and the exchange see time move forward only, and a simulated day
gives the same decisions however fast the machine is -- the same events at
the same instants as the backtest.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from vpp.errors import InputError
from vpp.timeutil import require_aware


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


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
            raise InputError(f"replay clock cannot move back from {self._now} to {when}")
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
            raise InputError("speed must be > 0")
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


class SimulationClock:
    """An :class:`AcceleratedClock` that can be held at a job's due instant (see module doc)."""

    def __init__(self, start: dt.datetime, speed: float) -> None:
        self._start = start
        self._speed = speed
        self._free: AcceleratedClock | None = None  # stands still at ``start`` until run()
        self._lock = threading.Lock()
        self._held: dt.datetime | None = None
        self._floor = start.astimezone(dt.UTC)

    def run(self) -> None:
        """Let simulated time flow (the daemon calls this when it starts); idempotent."""
        with self._lock:
            if self._free is None:
                self._free = AcceleratedClock(self._floor, self._speed)

    @property
    def running(self) -> bool:
        return self._free is not None

    @property
    def speed(self) -> float:
        return self._speed

    def free_now(self) -> dt.datetime:
        """The running (unheld) simulated time."""
        free = self._free
        return self._floor if free is None else max(free.now(), self._floor)

    def now(self) -> dt.datetime:
        with self._lock:
            if self._held is not None:
                return self._held
        return self.free_now()

    @contextmanager
    def hold(self, at: dt.datetime) -> Iterator[dt.datetime]:
        """Stand still at ``at`` (never before an instant already held) until the block ends."""
        with self._lock:
            moment = max(at, self._floor)
            self._held = moment
            self._floor = moment
        try:
            yield moment
        finally:
            with self._lock:
                self._held = None

"""The simulation clock of ``vpp run --simulate``: accelerated, and still while a job runs.

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
from collections.abc import Iterator
from contextlib import contextmanager

from market_replay.clock import AcceleratedClock


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

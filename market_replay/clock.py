"""The replay clock: time only moves forward, and only when the backtest says so."""

from __future__ import annotations

import datetime as dt

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

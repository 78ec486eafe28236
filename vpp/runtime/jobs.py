"""When the daemon's jobs run, computed in the market's local time (DST-correct).

The job plan of one delivery day is a list of :class:`Job` instants in UTC,
derived from the market rules in force that day:

* ``day_ahead``: gate closure minus the configured safety margin, on D-1;
* ``awards``: the day-ahead publication time, on D-1, retried until they arrive;
* ``dispatch``: the start of every market interval of D (92/96/100 per day);

Telemetry polling and setpoint re-sending are periodic and not part of the plan.

:class:`TimeMap` converts simulated instants to wall-clock instants, so one
scheduler serves both the real daemon (speed 1, no offset) and
``vpp run --simulate --speed X``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from vpp.config.models import MarketRules
from vpp.timeutil import day_intervals_utc


@dataclass(frozen=True, order=True)
class Job:
    run_at: dt.datetime
    kind: str  # "day_ahead" | "awards" | "dispatch"
    delivery_day: dt.date
    interval_start: dt.datetime | None = None

    @property
    def id(self) -> str:
        suffix = self.interval_start.isoformat() if self.interval_start else ""
        return f"{self.kind}/{self.delivery_day.isoformat()}/{suffix}"


def day_jobs(rules: MarketRules, delivery_day: dt.date, safety_margin: dt.timedelta) -> list[Job]:
    """Every scheduled job for one delivery day, sorted by time."""
    jobs = [
        Job(rules.gate_closure(delivery_day) - safety_margin, "day_ahead", delivery_day),
        Job(rules.da_publication(delivery_day), "awards", delivery_day),
    ]
    for start in day_intervals_utc(delivery_day, rules.timezone, rules.interval_minutes):
        moment = start.to_pydatetime()
        jobs.append(Job(moment, "dispatch", delivery_day, moment))
    return sorted(jobs)


@dataclass(frozen=True)
class TimeMap:
    """Maps simulated time to wall time: ``wall = wall0 + (sim - sim0) / speed``."""

    sim0: dt.datetime
    wall0: dt.datetime
    speed: float = 1.0

    def to_wall(self, sim: dt.datetime) -> dt.datetime:
        return self.wall0 + (sim - self.sim0) / self.speed

    def to_sim(self, wall: dt.datetime) -> dt.datetime:
        return self.sim0 + (wall - self.wall0) * self.speed

"""When the daemon's jobs run, computed in the market's local time (DST-correct).

The job plan of one delivery day is a list of :class:`Job` instants in UTC,
derived from the market rules in force that day:

* ``day_ahead``: gate closure minus the configured safety margin, on D-1;
* ``awards``: the day-ahead publication time, on D-1, retried until they arrive;
* ``dispatch``: the start of every market interval of D (92/96/100 per day);
* ``rt_bid`` (for the real-time products asked for): each delivery period's
  gate closure minus :data:`RT_BID_MARGIN` (the period's local hour or start,
  DST-correct: :meth:`vpp.config.models.MarketRules.rt_gate_closure`);

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

#: A real-time bid is built this long before its period's gate closure.
RT_BID_MARGIN = dt.timedelta(minutes=5)


@dataclass(frozen=True, order=True)
class Job:
    run_at: dt.datetime
    kind: str  # "day_ahead" | "awards" | "dispatch" | "rt_bid"
    delivery_day: dt.date
    interval_start: dt.datetime | None = None
    product_id: str | None = None

    @property
    def id(self) -> str:
        suffix = self.interval_start.isoformat() if self.interval_start else ""
        product = f"/{self.product_id}" if self.product_id else ""
        return f"{self.kind}{product}/{self.delivery_day.isoformat()}/{suffix}"


def day_jobs(
    rules: MarketRules,
    delivery_day: dt.date,
    safety_margin: dt.timedelta,
    *,
    real_time_products: tuple[str, ...] = (),
) -> list[Job]:
    """Every scheduled job for one delivery day, sorted by time.

    ``real_time_products``: ids of real-time products to bid into; those not in
    force or not enabled on the day are left out.
    """
    jobs = [
        Job(rules.gate_closure(delivery_day) - safety_margin, "day_ahead", delivery_day),
        Job(rules.da_publication(delivery_day), "awards", delivery_day),
    ]
    for start in day_intervals_utc(delivery_day, rules.timezone, rules.interval_minutes):
        moment = start.to_pydatetime()
        jobs.append(Job(moment, "dispatch", delivery_day, moment))
    in_force = {p.id: p for p in rules.real_time_products if p.enabled}
    for product_id in real_time_products:
        if product_id not in in_force:
            continue
        for start in rules.rt_periods(product_id, delivery_day):
            moment = start.to_pydatetime()
            gate = rules.rt_gate_closure(product_id, moment)
            jobs.append(Job(gate - RT_BID_MARGIN, "rt_bid", delivery_day, moment, product_id))
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

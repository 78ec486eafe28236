"""Daemon job timing in market-local time across DST."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from vpp.config import load_market
from vpp.runtime.jobs import TimeMap, day_jobs

MARGIN = dt.timedelta(minutes=30)


def test_china_day_has_96_dispatch_jobs_and_bids_before_gate() -> None:
    rules = load_market(Path("config/markets/cn-province-a.toml")).rules_on(dt.date(2025, 5, 2))
    jobs = day_jobs(rules, dt.date(2025, 5, 2), MARGIN)
    assert sum(j.kind == "dispatch" for j in jobs) == 96
    (bid,) = [j for j in jobs if j.kind == "day_ahead"]
    assert bid.run_at == dt.datetime(2025, 5, 1, 1, 30, tzinfo=dt.UTC)  # 09:30 Shanghai on D-1
    assert jobs == sorted(jobs)


def test_european_dst_days() -> None:
    market = load_market(Path("config/markets/epex-de-lu.toml"))
    short, long_ = dt.date(2025, 3, 30), dt.date(2025, 10, 26)
    # Imbalance settles per 15 min, so dispatch runs per quarter-hour: 92 on the short day
    # and 100 on the long day (the day-ahead MTU is 15 min since 2025-10-01 as well).
    assert sum(j.kind == "dispatch" for j in day_jobs(market.rules_on(short), short, MARGIN)) == 92
    assert sum(j.kind == "dispatch" for j in day_jobs(market.rules_on(long_), long_, MARGIN)) == 100
    bid = next(j for j in day_jobs(market.rules_on(short), short, MARGIN) if j.kind == "day_ahead")
    assert bid.run_at == dt.datetime(2025, 3, 29, 10, 30, tzinfo=dt.UTC)  # 11:30 CET


def test_us_dst_day_has_23_hours() -> None:
    market = load_market(Path("config/markets/ercot-houston.toml"))
    day = dt.date(2022, 3, 13)
    dispatch = [j for j in day_jobs(market.rules_on(day), day, MARGIN) if j.kind == "dispatch"]
    assert len(dispatch) == 23 * 4


def test_time_map_round_trip() -> None:
    tm = TimeMap(dt.datetime(2025, 5, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 1, tzinfo=dt.UTC), speed=1440)
    sim = dt.datetime(2025, 5, 2, tzinfo=dt.UTC)
    assert tm.to_wall(sim) == dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)
    assert tm.to_sim(tm.to_wall(sim)) == sim

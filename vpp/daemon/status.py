"""What ``vpp status`` shows, read from the config and the store (no daemon needed).

The running daemon writes its heartbeat, its clock (simulated time with
``--simulate``) and its next jobs to the store (``daemon_state``); without
one, the next jobs are computed from the market rules at the wall clock.

The daemon counts as running only while it holds the store's lock
(``daemon_lock``, :class:`vpp.store.StoreLock`) with a fresh heartbeat and,
on this host, a live pid. A daemon that died without stopping (``kill -9``,
a crash, a power cut) is shown ``dead``: its assets' health is ``unknown``
(with when they were last seen) and its planned jobs are not shown as
scheduled.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pandas as pd
from sqlmodel import func, select

from vpp.config.loader import ConfigSet
from vpp.runtime.jobs import day_jobs
from vpp.store import (
    AwardRecord,
    BidRecord,
    DaemonLockRecord,
    DaemonStateRecord,
    RtAwardRecord,
    RtBidRecord,
    SettlementRecord,
    Store,
    StoreLock,
    TelemetryRecord,
)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _probe(url: str | None) -> str:
    if not url:
        return "unknown"
    try:
        with httpx.Client(timeout=httpx.Timeout(1.0)) as client:
            answer = client.get(f"{url}/healthz").json()
    except (httpx.HTTPError, ValueError):
        return "unreachable"
    return str(answer.get("status", "unknown"))


def _liveness(state: DaemonStateRecord, lease: DaemonLockRecord | None, lock: StoreLock) -> str:
    """``stopped`` (clean stop), ``running`` (lease held and fresh) or ``dead``."""
    if state.stopped_at is not None:
        return "stopped"
    if lease is None or lease.pid != state.pid or lock.is_stale(lease):
        return "dead"
    return "running"


_JOB_FIELDS = ("run_at", "kind", "market", "delivery_day")


def _state_problem(state: DaemonStateRecord) -> str | None:
    """Why the daemon's state row cannot be shown (a tampered or half-written row), or None."""
    if isinstance(state.speed, bool) or not isinstance(state.speed, int | float):
        return f"daemon_state.speed = {str(state.speed)[:40]!r}: expected a number"
    if not isinstance(state.pid, int) or isinstance(state.pid, bool):
        return f"daemon_state.pid = {str(state.pid)[:40]!r}: expected an integer"
    try:
        planned = json.loads(state.next_jobs_json)
    except (TypeError, ValueError):
        planned = None
    if not isinstance(planned, list) or not all(
        isinstance(job, dict)
        and all(isinstance(job.get(k), str) for k in _JOB_FIELDS)
        and isinstance(job.get("interval_start"), str | None)
        for job in planned
    ):
        return "daemon_state.next_jobs_json: not a JSON list of jobs"
    return None


def collect_status(cfg: ConfigSet, store: Store, *, jobs: int = 8) -> dict[str, Any]:
    lock = StoreLock(store)
    problem = None
    try:
        with store.session() as session:
            state = session.get(DaemonStateRecord, "daemon")
            lease = session.get(DaemonLockRecord, lock.name)
        problem = _state_problem(state) if state is not None else None
    except (ValueError, TypeError) as exc:  # a column that does not parse (a tampered row)
        state, lease, problem = None, None, f"daemon_state/daemon_lock: {str(exc)[:120]}"
    if problem is not None:
        state = None  # nothing of the row is shown; the daemon rewrites it when it starts
    now = state.clock_now if state is not None else dt.datetime.now(dt.UTC)
    daemon: dict[str, Any] | None = None
    liveness = "never started"
    if problem is not None:
        liveness = "unreadable"
        daemon = {"state": liveness, "health": "unknown", "reason": problem}
    if state is not None:
        liveness = _liveness(state, lease, lock)
        health = {"stopped": "stopped", "dead": "dead"}.get(liveness) or _probe(state.metrics_url)
        daemon = {
            "mode": state.mode,
            "pid": state.pid,
            "speed": state.speed,
            "started_at": _iso(state.started_at),
            "heartbeat_at": _iso(state.heartbeat_at),
            "clock_now": _iso(state.clock_now),
            "stopped_at": _iso(state.stopped_at),
            "state": liveness,
            "health": health,
            "lock_host": lease.hostname if lease is not None else None,
            "lock_heartbeat_at": _iso(lease.heartbeat_at) if lease is not None else None,
        }
    running = liveness == "running"
    markets = sorted({p.market for p in cfg.parks.values()})
    bids: list[dict[str, Any]] = []
    today_text = ""
    with store.session() as session:
        for market_id in markets:
            market = cfg.markets[market_id]
            today = pd.Timestamp(now).tz_convert(market.timezone).date()
            today_text = today.isoformat()
            for day in (today, today + dt.timedelta(days=1)):
                record = session.exec(
                    select(BidRecord).where(
                        BidRecord.market_id == market_id, BidRecord.delivery_day == day
                    )
                ).first()
                awards = []
                if record is not None:
                    awards = list(
                        session.exec(select(AwardRecord).where(AwardRecord.bid_id == record.id))
                    )
                product_h = market.rules_on(day).day_ahead.interval_minutes / 60
                settled = session.exec(
                    select(func.sum(SettlementRecord.net_revenue)).where(
                        SettlementRecord.market_id == market_id,
                        SettlementRecord.delivery_day == day,
                    )
                ).one()
                bids.append(
                    {
                        "market": market_id,
                        "day": day.isoformat(),
                        "status": record.status if record else "none",
                        "submitted_at": _iso(record.submitted_at) if record else None,
                        "reason": record.reason if record else None,
                        "awards": len(awards),
                        "award_mwh": sum(a.quantity_mw for a in awards) * product_h,
                        "settled_net": settled,
                    }
                )
        rt_bids = real_time_rows(cfg, session, markets, now)
        assets = []
        for park in sorted(cfg.parks.values(), key=lambda p: p.id):
            for asset in park.assets:
                last = session.exec(
                    select(TelemetryRecord)
                    .where(TelemetryRecord.park_id == park.id, TelemetryRecord.asset_id == asset.id)
                    .order_by(TelemetryRecord.measured_at.desc())  # type: ignore[attr-defined]
                ).first()
                if last is None:
                    health = "no telemetry"
                elif not running:  # nobody is watching it: its last reading says nothing now
                    health = "unknown"
                else:
                    health = "ok" if last.available else "unavailable"
                assets.append(
                    {
                        "park": park.id,
                        "asset": asset.id,
                        "health": health,
                        "available": last.available if last else None,
                        "reason": last.reason if last else None,
                        "measured_at": _iso(last.measured_at) if last else None,
                        "power_kw": last.power_kw if last else None,
                        "soc": last.soc if last else None,
                    }
                )
    if state is not None and running:
        next_jobs = json.loads(state.next_jobs_json)[:jobs]
        source = "as planned by the running daemon"
    else:
        next_jobs = _computed_jobs(cfg, markets, now)[:jobs]
        source = "not scheduled: daemon not running; computed from the market rules"
    return {
        "now": _iso(now),
        "today": today_text,
        "daemon": daemon,
        "bids": bids,
        "rt_bids": rt_bids,
        "assets": assets,
        "daemon_running": running,
        "next_jobs": next_jobs,
        "jobs_source": source,
    }


def real_time_rows(
    cfg: ConfigSet, session: Any, markets: list[str], now: dt.datetime
) -> list[dict[str, Any]]:
    """Today's real-time bids per market (periods starting in the local day), with their awards:
    intervals known, energy awarded [MWh] and the value of the intervals already priced."""
    out = []
    for market_id in markets:
        market = cfg.markets[market_id]
        today = pd.Timestamp(now).tz_convert(market.timezone).date()
        start = pd.Timestamp(today, tz=market.timezone).tz_convert("UTC").to_pydatetime()
        end = pd.Timestamp(today + dt.timedelta(days=1), tz=market.timezone).tz_convert("UTC")
        rules = market.rules_on(today)
        hours = {p.id: p.settlement_minutes / 60 for p in rules.real_time_products}
        records = session.exec(
            select(RtBidRecord)
            .where(RtBidRecord.market_id == market_id, RtBidRecord.period_start >= start,
                   RtBidRecord.period_start < end.to_pydatetime())
            .order_by(RtBidRecord.period_start, RtBidRecord.direction)  # type: ignore[arg-type]
        ).all()
        for record in records:
            awards = list(session.exec(
                select(RtAwardRecord).where(RtAwardRecord.idempotency_key == record.idempotency_key)
            ))
            h = hours.get(record.product_id, 0.0)
            priced = [a for a in awards if a.price_per_mwh is not None]
            out.append({
                "market": market_id,
                "product": record.product_id,
                "period_start": _iso(record.period_start),
                "direction": record.direction,
                "status": record.status,
                "receipt": record.receipt,
                "reason": record.reason,
                "awards": len(awards),
                "award_mwh": sum(a.quantity_mw for a in awards) * h,
                "priced": len(priced),
                "value": sum(a.quantity_mw * float(a.price_per_mwh or 0.0) for a in priced) * h,
            })
    return out


def _computed_jobs(cfg: ConfigSet, markets: list[str], now: dt.datetime) -> list[dict[str, Any]]:
    margin = dt.timedelta(minutes=cfg.settings.daemon.da_safety_margin_minutes)
    out = []
    for market_id in markets:
        market = cfg.markets[market_id]
        today = pd.Timestamp(now).tz_convert(market.timezone).date()
        for day in (today, today + dt.timedelta(days=1), today + dt.timedelta(days=2)):
            for job in day_jobs(market.rules_on(day), day, margin):
                if job.run_at >= now:
                    out.append(
                        {
                            "run_at": job.run_at.isoformat(),
                            "kind": job.kind,
                            "market": market_id,
                            "delivery_day": day.isoformat(),
                            "interval_start": job.interval_start.isoformat()
                            if job.interval_start
                            else None,
                        }
                    )
    return sorted(out, key=lambda j: j["run_at"])

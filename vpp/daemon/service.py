"""The daemon: one :class:`~vpp.runtime.operator.Operator` per market, driven by APScheduler.

The operators are the backtest's (:mod:`vpp.runtime.operator`); only the seams differ:
the exchange is :class:`~vpp.gateway.HttpExchange`, the devices are the park
files' adapters (or simulated physics with ``--simulate``), the recorder is
the SQL store and the clock is the wall clock (or an accelerated one).

Jobs (see ``docs/daemon.md``), per market, in the market's local time via
:func:`vpp.runtime.jobs.day_jobs`:

* ``day_ahead`` at gate closure minus the safety margin. If the exchange is
  unreachable the same bid is re-sent every ``retry_s`` until gate closure;
  then the auction is recorded ``missed`` and alerted (log + metric).
* ``awards`` at publication, retried every ``retry_s`` while they are late
  (``LookAheadError``) or the exchange is unreachable. Until they arrive
  dispatch holds the safe (idle) schedule.
* ``dispatch`` at every interval start: measure, re-optimise, send. A job
  that starts after its interval ended is skipped (the next one supersedes it).
* ``rt_bid`` (only with ``[daemon] real_time_bids = true``): for every period of
  each real-time product enabled in the market, its gate closure minus
  :data:`~vpp.runtime.jobs.RT_BID_MARGIN` (market-local, DST-correct): build the
  curve from the re-optimised rest of the day and submit it (write-ahead in
  ``rt_bids``). After a restart a key the store holds as accepted is never
  sent again; its awards are fetched by the dispatch of its period.
* ``close`` at the end of each delivery day: a closing meter reading, then
  settlement from the store (retried until the real-time prices are out).
* periodic ``telemetry`` polling and setpoint ``resend`` (before device
  revert timers expire), and ``replan`` adding the next days' jobs.

All jobs of one market run on one worker thread (operators and simulated
devices are not thread-safe, and a bid must not race a dispatch); markets
run in parallel. APScheduler works in wall time; a :class:`TimeMap` turns
the clock's instants into wall instants, so ``--simulate --speed X`` uses
the very same scheduler.

Recovery: :meth:`Daemon.start` rebuilds yesterday's, today's and the next
days' plans from the store (bids, the strategy's allocation, awards), never
re-sends an accepted bid (idempotency key per market/day/portfolio),
re-sends a bid whose outcome is unknown (the exchange answers
``duplicate_bid`` if it had it), fetches awards that are due, runs the
current interval's dispatch at once and settles finished days. Before that,
:meth:`Daemon._reconcile` asks the exchange for today's and tomorrow's bids
the store does not know as accepted (a lost or stale store) and adopts the
ones it holds for our portfolio (see ``docs/daemon.md``).

Verification: a ``duplicate_bid`` answer is only a confirmation if the bid
the exchange holds hashes like ours, and awards are only followed if they
can come from our bid; otherwise the day is recorded ``conflict``, alerted
(``bid_conflict`` / ``awards_inconsistent``, metric
``vpp_bid_conflicts_total``) and dispatch holds the safe (idle) schedule.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import structlog
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import select

from vpp.daemon.metrics import Metrics
from vpp.errors import (
    AdapterError,
    BidConflictError,
    ExchangeError,
    InputError,
    LookAheadError,
    StoreError,
)
from vpp.runtime.jobs import Job, TimeMap, day_jobs
from vpp.runtime.metering import settle_day
from vpp.runtime.operator import AssetKey, Operator
from vpp.runtime.recording import StoreRecorder
from vpp.store import DaemonStateRecord, SettlementRecord, StoreLock, utcnow
from vpp.types import Clock, DayAheadBid, Device, RealTimeBid, Setpoint
from vpp.units import KW_PER_MW
from vpp.wire import award_issues, bid_content_hash

log = structlog.get_logger(__name__)

# Settlement waits this long after a day's end for its real-time prices, then gives up (logged).
SETTLEMENT_PATIENCE = dt.timedelta(days=2)

# Creates an operator's devices when its first dispatch runs (simulation, as in the backtest).
DeviceFactory = Callable[[Operator], tuple[dict[AssetKey, Device], dict[AssetKey, pd.DataFrame]]]


@dataclass(frozen=True)
class DaemonOptions:
    """Timing of the daemon's own jobs; durations are in clock time (simulated or real)."""

    safety_margin: dt.timedelta = dt.timedelta(minutes=30)
    telemetry_poll_s: float = 10.0
    resend_period_s: float = 30.0
    retry_s: float = 60.0
    replan_s: float = 3600.0
    days_ahead: int = 1
    # Periodic jobs never run more often than this in wall time (matters at high --speed).
    min_wall_period_s: float = 0.25
    # Only trade delivery days in [first_day, last_day]; stop by itself after settling last_day.
    first_day: dt.date | None = None
    last_day: dt.date | None = None
    # Single-writer lease on the store, in wall seconds: renewed every lock_renew_s; a holder
    # silent for lock_ttl_s (or whose pid is gone on this host) may be taken over.
    lock_renew_s: float = 5.0
    lock_ttl_s: float = 30.0


def _describe(metrics: Metrics) -> None:
    for name, kind, text in (
        ("vpp_bids_submitted_total", "counter", "Day-ahead bids accepted by the exchange"),
        ("vpp_bids_rejected_total", "counter", "Day-ahead bids rejected by a market rule"),
        ("vpp_auctions_missed_total", "counter", "Auctions missed (no bid by gate closure)"),
        ("vpp_exchange_errors_total", "counter", "Exchange calls that failed after retries"),
        ("vpp_bid_conflicts_total", "counter", "Bids or awards at the exchange that are not ours"),
        ("vpp_bids_reconciled_total", "counter", "Bids adopted from the exchange at start-up"),
        ("vpp_awards_received_total", "counter", "Day-ahead award sets received"),
        ("vpp_rt_bids_submitted_total", "counter", "Real-time bids accepted by the exchange"),
        ("vpp_awards_pending", "gauge", "1 while a day's awards are due but not received"),
        ("vpp_dispatch_total", "counter", "Dispatch jobs run"),
        ("vpp_dispatch_missed_total", "counter", "Dispatch jobs skipped: interval already over"),
        ("vpp_dispatch_lateness_seconds", "gauge", "Clock time between interval start and dispatch"),
        ("vpp_setpoints_sent_total", "counter", "Setpoints sent at dispatch"),
        ("vpp_setpoints_resent_total", "counter", "Setpoints re-sent before device revert timers"),
        ("vpp_realtime_fallback_total", "counter", "Real-time solves that fell back to idle, per park"),
        ("vpp_telemetry_readings_total", "counter", "Telemetry readings stored"),
        ("vpp_asset_available", "gauge", "1 if the asset's last reading was healthy"),
        ("vpp_settlement_net_revenue", "gauge", "Net revenue of the last settled day, per park"),
        ("vpp_job_failures_total", "counter", "Jobs that raised an unexpected error"),
        ("vpp_clock_timestamp_seconds", "gauge", "The daemon clock (simulated time with --simulate)"),
    ):
        metrics.describe(name, kind, text)


class Daemon:
    """Schedules the operators' jobs; see the module doc."""

    def __init__(
        self,
        operators: Sequence[Operator],
        *,
        recorder: StoreRecorder,
        clock: Clock,
        time_map: TimeMap,
        options: DaemonOptions | None = None,
        metrics: Metrics | None = None,
        mode: str = "live",
        metrics_url: str | None = None,
        device_factory: DeviceFactory | None = None,
    ) -> None:
        if not operators:
            raise InputError("the daemon needs at least one market portfolio to run")
        self.operators = {op.market.id: op for op in operators}
        self.recorder = recorder
        self.store = recorder.store
        self.clock = clock
        self.time_map = time_map
        self.options = options or DaemonOptions()
        self.metrics = metrics or Metrics()
        _describe(self.metrics)
        self.mode = mode
        self.metrics_url = metrics_url
        self.finished = threading.Event()
        self._aborted = False
        self._stopping = False
        self._started_at = utcnow()
        self._planned: dict[str, Job] = {}  # scheduled (or handled) job id -> job, per market
        self._current: dict[str, list[Setpoint]] = {m: [] for m in self.operators}
        self._lock = threading.Lock()
        self._unavailable: set[AssetKey] = set()
        self._heartbeat_lock = threading.Lock()  # jobs of several markets and stop() write it
        self._heartbeat_failures = 0  # consecutive; a failing store fails the daemon
        self.device_factory = device_factory
        self.store_lock = StoreLock(self.store, ttl_s=self.options.lock_ttl_s)
        self.failure: str | None = None  # why the daemon stopped itself (the store failed)
        self._failure_lock = threading.Lock()
        self._lease_stop = threading.Event()
        self._lease_thread: threading.Thread | None = None
        executors = {_executor(m): ThreadPoolExecutor(max_workers=1) for m in self.operators}
        executors["default"] = ThreadPoolExecutor(max_workers=1)
        # Our own references: stop() and abort() drain them without APScheduler's internals.
        self._executors: dict[str, ThreadPoolExecutor] = executors
        self.scheduler = BackgroundScheduler(
            executors=executors,
            timezone=dt.UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self.scheduler.add_listener(
            self._on_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_EXECUTED
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Recover from the store, schedule every job, start the scheduler."""
        self._take_lease()  # raises StoreLockedError before anything is sent or written
        run = getattr(self.clock, "run", None)
        if run is not None:  # a simulation clock waits for the daemon; map its time from now on
            run()
            self.time_map = TimeMap(self.clock.now(), dt.datetime.now(dt.UTC), self.time_map.speed)
        now = self.clock.now()
        for market_id, operator in self.operators.items():
            self._reconcile(market_id, operator, now)
            self._recover(market_id, operator, now)
            self._plan(market_id, now, recovering=True)
            self._schedule_periodic(market_id, "telemetry", now)
            self._schedule_periodic(market_id, "resend", now)
            self._schedule_periodic(market_id, "replan", now + self._clock_period(self.options.replan_s))
        self.scheduler.start()
        self._heartbeat()
        log.info(
            "daemon_started",
            mode=self.mode,
            markets=sorted(self.operators),
            clock=now.isoformat(),
            speed=self.time_map.speed,
            jobs=len(self._planned),
        )

    def stop(self) -> None:
        """Graceful stop: finish the running job (and its write), leave devices safe, exit.

        Devices are closed: protocol devices stop receiving re-sends and
        revert to their own control when their watchdog expires (SunSpec
        ``InOutWRte_RvrtTms``), which is the safe state vpp relies on.
        """
        self._stopping = True  # queued jobs return at once; running ones schedule nothing new
        if self.scheduler.running:
            self.scheduler.pause()
            # Wait for the running job outside APScheduler's shutdown, which holds the job
            # store lock while waiting and would deadlock with a job adding its successor.
            for executor in self._executors.values():
                executor.shutdown(wait=True)
            self.scheduler.shutdown(wait=False)
        for operator in self.operators.values():
            for key, device in operator.devices.items():
                close = getattr(device, "close", None)
                if close is not None:
                    close()
                    log.info("device_released", park=key[0], asset=key[1])
        self._close_exchanges()
        self._heartbeat(stopped=True)
        self._abandon_lease()
        self.finished.set()
        log.info("daemon_stopped", mode=self.mode, failure=self.failure)

    def _close_exchanges(self) -> None:
        for exchange in {id(op.exchange): op.exchange for op in self.operators.values()}.values():
            close = getattr(exchange, "close", None)
            if close is not None:
                close()

    def abort(self) -> None:
        """Stop at once, as a crash would: no more jobs, no cleanup, devices untouched.

        The job running at this instant completes (a thread cannot be
        killed); queued jobs return without doing anything. Meant for tests
        of recovery.
        """
        self._aborted = True
        self._stopping = True
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for executor in self._executors.values():  # drain: queued jobs are no-ops
            executor.shutdown(wait=True)
        self._close_exchanges()  # the sockets a dead process leaves are closed by the OS
        # A dead process stops renewing its lease and its successor on this host sees its pid
        # gone; in one process the pid lives on, so the lease is given up here instead.
        self._abandon_lease()
        self.finished.set()

    # ------------------------------------------------------------------ planning

    def _wall_period(self, clock_seconds: float) -> float:
        return max(clock_seconds / self.time_map.speed, self.options.min_wall_period_s)

    def _clock_period(self, clock_seconds: float) -> dt.timedelta:
        return dt.timedelta(seconds=self._wall_period(clock_seconds) * self.time_map.speed)

    def _interval(self, operator: Operator, day: dt.date) -> dt.timedelta:
        return dt.timedelta(minutes=operator.day_plan(day).rules.interval_minutes)

    def _days(self, operator: Operator, now: dt.datetime) -> list[dt.date]:
        today = pd.Timestamp(now).tz_convert(operator.timezone).date()
        last = today + dt.timedelta(days=self.options.days_ahead)
        if self.options.last_day is not None:
            last = min(last, self.options.last_day)
        days, day = [], today - dt.timedelta(days=1)
        if self.options.first_day is not None:
            day = max(day, self.options.first_day)
        while day <= last:
            days.append(day)
            day += dt.timedelta(days=1)
        return days

    def _jobs(self, operator: Operator, day: dt.date) -> list[Job]:
        rules = operator.market.rules_on(day)
        jobs = day_jobs(
            rules, day, self.options.safety_margin, real_time_products=_rt_products(operator, day)
        )
        end = operator.day_plan(day).index[-1] + self._interval(operator, day)
        return [*jobs, Job(end.to_pydatetime(), "close", day)]

    def _plan(self, market_id: str, now: dt.datetime, *, recovering: bool = False) -> None:
        """Schedule the jobs of the days around ``now`` that are not scheduled yet."""
        operator = self.operators[market_id]
        for day in self._days(operator, now):
            for job in self._jobs(operator, day):
                job_id = f"{market_id}/{job.id}"
                if job_id in self._planned:
                    continue
                self._planned[job_id] = job
                if job.run_at >= now:
                    self._schedule(market_id, job, job.run_at)
                elif self._catch_up(market_id, operator, job, now, recovering):
                    self._schedule(market_id, job, now)

    def _catch_up(
        self, market_id: str, operator: Operator, job: Job, now: dt.datetime, recovering: bool
    ) -> bool:
        """Whether a job whose time has passed must still run (now)."""
        day = job.delivery_day
        key = operator.bid_key(day)
        record = self.recorder.bid_record(key)
        if job.kind == "day_ahead":
            if record is not None and record.status in ("accepted", "rejected", "missed", "conflict"):
                return False
            if now < operator.market.rules_on(day).gate_closure(day):
                return True
            if day >= pd.Timestamp(now).tz_convert(operator.timezone).date():
                self._missed(market_id, operator, day, "the daemon was not running before gate closure")
            return False
        if job.kind == "awards":
            plan = operator.day_plan(day)
            return plan.awards is None and now < plan.index[-1] + self._interval(operator, day)
        if job.kind == "dispatch":
            assert job.interval_start is not None
            return job.interval_start <= now < job.interval_start + self._interval(operator, day)
        if job.kind == "rt_bid":
            # Still before the period's gate: bid now (the operator skips a key already accepted).
            assert job.interval_start is not None
            assert job.product_id is not None
            gate = operator.market.rules_on(day).rt_gate_closure(job.product_id, job.interval_start)
            return now < gate
        # close: settle days that ended while the daemon was down and were traded
        with self.store.session() as session:
            settled = session.exec(
                select(SettlementRecord).where(
                    SettlementRecord.market_id == market_id,
                    SettlementRecord.delivery_day == day,
                )
            ).first()
        return settled is None and record is not None

    def _schedule(self, market_id: str, job: Job, at: dt.datetime) -> None:
        if self._stopping:
            return
        handler = {
            "day_ahead": self._day_ahead,
            "awards": self._awards,
            "dispatch": self._dispatch,
            "rt_bid": self._rt_bid,
            "close": self._close,
        }[job.kind]
        # No misfire limit: APScheduler takes whole seconds only, too coarse at high speed.
        # Each job checks its own lateness in clock time (a dispatch whose interval is over
        # is skipped; a bid after gate closure is recorded missed).
        self.scheduler.add_job(
            self._guard(handler),
            DateTrigger(run_date=self.time_map.to_wall(at), timezone=dt.UTC),
            args=(market_id, job, at),
            id=f"{market_id}/{job.id}@{at.isoformat()}",
            name=f"{market_id} {job.kind}{f' {job.product_id}' if job.product_id else ''} "
            f"{job.interval_start or job.delivery_day}",
            executor=_executor(market_id),
            misfire_grace_time=None,
            replace_existing=True,
        )

    def _retry(self, market_id: str, job: Job, at: dt.datetime) -> None:
        self._schedule(market_id, job, at)

    def _schedule_periodic(self, market_id: str, kind: str, at: dt.datetime) -> None:
        """Telemetry polling, setpoint re-sending and re-planning: a chain of one-off jobs (each due
        instant known, so the simulation clock can hold at it), coalesced when late."""
        if self._stopping:
            return
        self.scheduler.add_job(
            self._guard(self._periodic),
            DateTrigger(run_date=self.time_map.to_wall(at), timezone=dt.UTC),
            args=(market_id, kind, at),
            id=f"{market_id}/{kind}@{at.isoformat()}",
            executor=_executor(market_id),
            misfire_grace_time=None,
            replace_existing=True,
        )

    def _periodic(self, market_id: str, kind: str, at: dt.datetime) -> None:
        if kind == "telemetry":
            self._poll(market_id)
            period = self._clock_period(self.options.telemetry_poll_s)
        elif kind == "replan":
            self._plan(market_id, at)
            period = self._clock_period(self.options.replan_s)
        else:
            self._resend(market_id)
            period = self._clock_period(self.options.resend_period_s)
        free_now = getattr(self.clock, "free_now", self.clock.now)()
        self._schedule_periodic(market_id, kind, max(at + period, free_now))

    # ------------------------------------------------------------------ recovery

    def _recover(self, market_id: str, operator: Operator, now: dt.datetime) -> None:
        for day in self._days(operator, now):
            key = operator.bid_key(day)
            record = self.recorder.bid_record(key)
            if record is None:
                continue
            result = self._stored_plan(market_id, day, key)
            source = "stored" if result is not None else None
            awards = self.recorder.awards_for(key)
            if record.status == "accepted":
                if result is None and (bid := self.recorder.bid(key)) is not None:
                    # The plan was refused or lost: the reconciliation's stand-in split of the
                    # awards (idle schedule + equal residual), never a zero share.
                    result, source = operator.adopt_bid(bid), "stand-in"
                if awards and result is not None and (issues := award_issues(result.bid, awards)):
                    # Stored awards are trusted only when they can come from the bid: otherwise
                    # they are fetched (and verified) again from the exchange.
                    log.error(
                        "stored_awards_refused",
                        market=market_id,
                        day=str(day),
                        issues=issues,
                        alert=True,
                    )
                    awards = []
                operator.restore(day, result, awards or None)
            elif record.status == "conflict":
                operator.restore(day, result, None)  # never follow: hold the safe schedule
                awards = []
            elif record.status == "submitted":
                operator.restore(day, result, None)  # outcome unknown: re-send the same bid
            else:  # rejected or missed: no position for this day
                operator.restore(day, result, [])
            if awards:
                operator.prepare_dispatch(day)
            rt_bids = self._recover_real_time(operator, day)
            log.info(
                "day_recovered",
                rt_bids=rt_bids,
                market=market_id,
                day=str(day),
                bid_status=record.status,
                plan=source is not None,
                plan_source=source,
                awards=len(awards),
            )

    def _recover_real_time(self, operator: Operator, day: dt.date) -> int:
        """Take back the day's accepted real-time bids and their stored awards; the count."""
        plan = operator.day_plan(day)
        if len(plan.index) == 0:
            return 0
        start = plan.index[0].to_pydatetime()
        end = (plan.index[-1] + self._interval(operator, day)).to_pydatetime()
        count = 0
        for bid, curve, row in self.recorder.rt_bids_between(
            operator.market.id, operator.portfolio.portfolio_id, start, end
        ):
            if row.status == "submitted":
                # Sent, answer unknown (a crash while sending): the exchange tells whether it
                # holds the bid. If not, the rt_bid job sends it again before the gate.
                held = self._held_rt_bid(operator, row.idempotency_key)
                if held is None:
                    continue
                self.recorder.record_rt_bid(
                    held, status="accepted", receipt=None,
                    reason="confirmed at start-up: the exchange holds it", curve=curve,
                )
                log.warning("rt_bid_confirmed_by_exchange", market=operator.market.id,
                            key=row.idempotency_key)
                bid = held
            elif row.status != "accepted":
                continue
            operator.restore_real_time(bid, curve, self.recorder.rt_awards_for(row.idempotency_key))
            count += 1
        return count

    def _held_rt_bid(self, operator: Operator, key: str) -> RealTimeBid | None:
        """The real-time bid the exchange holds under ``key``; None if none, or it cannot say."""
        held_bid = getattr(operator.exchange, "real_time_bid", None)
        if held_bid is None:
            return None
        try:
            held = held_bid(key)
        except ExchangeError as exc:
            log.warning("rt_bid_unverified", market=operator.market.id, key=key, reason=str(exc))
            return None
        return held if isinstance(held, RealTimeBid) else None

    def _reconcile(self, market_id: str, operator: Operator, now: dt.datetime) -> None:
        """Adopt today's and tomorrow's bids the exchange holds but the store does not
        know as accepted (the store was lost, or the daemon died before the answer).

        A held bid for our portfolio was placed with our token, so it is ours
        -- unless the store still has the curves we sent and they hash
        differently (then ``conflict``). The stored plan is kept when it is
        the held bid's; otherwise :meth:`Operator.adopt_bid` makes a stand-in.
        """
        held_bid = getattr(operator.exchange, "day_ahead_bid", None)
        if held_bid is None:
            return
        today = pd.Timestamp(now).tz_convert(operator.timezone).date()
        for day in self._days(operator, now):
            if day < today:
                continue
            key = operator.bid_key(day)
            record = self.recorder.bid_record(key)
            if record is not None and record.status not in ("submitted", "missed"):
                continue
            try:
                held = held_bid(market_id, operator.portfolio.portfolio_id, day)
            except ExchangeError as exc:
                self.metrics.inc("vpp_exchange_errors_total", market=market_id, call="reconcile")
                log.warning("reconcile_failed", market=market_id, day=str(day), reason=str(exc))
                continue
            if held is None:
                continue
            theirs = bid_content_hash(held)
            ours = self.recorder.bid(key) if record is not None else None
            reason = None
            if ours is not None and bid_content_hash(ours) != theirs:
                reason = (
                    f"conflict: the exchange holds a different bid (held sha256 {theirs}, "
                    f"ours {bid_content_hash(ours)})"
                )
            elif (beyond := _beyond_grid(operator, held)) is not None:
                reason = f"conflict: the exchange holds a bid we cannot have sent ({beyond})"
            if reason is not None:
                self.recorder.record_bid(
                    ours or held, status="conflict", receipt=None, reason=reason
                )
                log.error(
                    "bid_conflict",
                    market=market_id,
                    day=str(day),
                    held_hash=theirs,
                    our_hash=bid_content_hash(ours) if ours is not None else None,
                    reason=reason,
                    alert=True,
                )
                self._conflict(market_id, operator, day, "bid", reason)
                continue
            result = self._stored_plan(market_id, day, key)
            stored = result is not None and bid_content_hash(result.bid) == theirs
            if not stored:
                result = operator.adopt_bid(held)
            self.recorder.record_plan(result)
            self.recorder.record_bid(
                held, status="accepted", receipt=None, reason="reconciled from the exchange"
            )
            self.metrics.inc("vpp_bids_reconciled_total", market=market_id)
            log.warning(
                "bid_reconciled",
                market=market_id,
                day=str(day),
                content_hash=theirs,
                previous_status=record.status if record is not None else None,
                plan="stored" if stored else "stand-in",
            )

    def _conflict(
        self, market_id: str, operator: Operator, day: dt.date, kind: str, reason: str
    ) -> None:
        """Alert and hold the safe (idle) schedule for ``day``: its position is not ours."""
        plan = operator.day_plan(day)
        operator.restore(day, plan.result, None)
        plan.awards, plan.award = None, None
        plan.last_plan, plan.last_position = None, -1
        self.metrics.inc("vpp_bid_conflicts_total", market=market_id, kind=kind)
        self.metrics.set("vpp_awards_pending", 0, market=market_id)
        log.error(
            "position_not_followed", market=market_id, day=str(day), kind=kind, reason=reason,
            alert=True,
        )

    def _stored_plan(self, market_id: str, day: dt.date, key: str) -> Any | None:
        """The stored plan, or None (as if missing) if its row is refused; store failures raise."""
        try:
            return self.recorder.plan(key)
        except StoreError as exc:
            if isinstance(exc.__cause__, SQLAlchemyError):
                raise
            log.error("day_plan_refused", market=market_id, day=str(day), reason=str(exc), alert=True)
            return None

    # ------------------------------------------------------------------ jobs

    def _guard(self, func: Callable[..., None]) -> Callable[..., None]:
        """Run a market job as of the instant it was due: with the simulation clock, time
        stands still there while the job runs (see :mod:`vpp.runtime.clock`)."""

        def run(market_id: str, what: Any, at: dt.datetime) -> None:
            if self._stopping:
                return
            hold = getattr(self.clock, "hold", None)
            try:
                if hold is None:
                    func(market_id, what, at)
                else:
                    with hold(at):
                        func(market_id, what, at)
            except StoreError as exc:
                if not isinstance(exc.__cause__, SQLAlchemyError):
                    raise
                self._store_failed(str(exc))  # recording failed after its retries
                return
            if not self._aborted:
                self._heartbeat()  # also after the job that triggered stop (records the plan)

        run.__name__ = func.__name__
        return run

    def _missed(self, market_id: str, operator: Operator, day: dt.date, reason: str) -> None:
        self.recorder.record_missed(
            operator.bid_key(day),
            market_id=market_id,
            portfolio_id=operator.portfolio.portfolio_id,
            delivery_day=day,
            reason=reason,
        )
        plan = operator.day_plan(day)
        operator.restore(day, plan.result, [])
        self.metrics.inc("vpp_auctions_missed_total", market=market_id)
        log.error("auction_missed", market=market_id, day=str(day), reason=reason, alert=True)

    def _day_ahead(self, market_id: str, job: Job, at: dt.datetime) -> None:
        operator = self.operators[market_id]
        day = job.delivery_day
        key = operator.bid_key(day)
        record = self.recorder.bid_record(key)
        if record is not None and record.status in ("accepted", "conflict"):
            return
        gate = operator.market.rules_on(day).gate_closure(day)
        now = self.clock.now()
        if now >= gate:
            self._missed(market_id, operator, day, f"gate closed at {gate.isoformat()}")
            return
        try:
            operator.submit_day_ahead(day)
        except BidConflictError as exc:
            self._conflict(market_id, operator, day, "bid", str(exc))
            return
        except ExchangeError as exc:
            self.metrics.inc("vpp_exchange_errors_total", market=market_id, call="submit")
            retry_at = self.clock.now() + dt.timedelta(seconds=self.options.retry_s)
            if retry_at < gate:
                log.warning(
                    "bid_retry_scheduled",
                    market=market_id,
                    day=str(day),
                    retry_at=retry_at.isoformat(),
                    gate_closure=gate.isoformat(),
                    reason=str(exc),
                )
                self._retry(market_id, job, retry_at)
            else:
                self._missed(market_id, operator, day, f"exchange unreachable until gate closure: {exc}")
            return
        record = self.recorder.bid_record(key)
        status = record.status if record is not None else "unknown"
        if status == "accepted":
            self.metrics.inc("vpp_bids_submitted_total", market=market_id)
        elif status == "rejected":
            self.metrics.inc("vpp_bids_rejected_total", market=market_id)

    def _awards(self, market_id: str, job: Job, at: dt.datetime) -> None:
        operator = self.operators[market_id]
        day = job.delivery_day
        plan = operator.day_plan(day)
        if plan.awards is not None:
            return
        record = self.recorder.bid_record(operator.bid_key(day))
        if record is not None and record.status == "conflict":
            log.warning("awards_not_followed", market=market_id, day=str(day), reason=record.reason)
            return  # plan.awards stays None: dispatch holds the safe schedule
        if record is None or record.status not in ("accepted", "submitted"):
            operator.restore(day, plan.result, [])
            log.warning(
                "no_position",
                market=market_id,
                day=str(day),
                bid_status=record.status if record else None,
            )
            return
        try:
            awards = operator.collect_awards(day)
        except BidConflictError as exc:
            if plan.result is not None:
                self.recorder.record_bid(
                    plan.result.bid, status="conflict", receipt=None, reason=f"conflict: {exc}"
                )
            self._conflict(market_id, operator, day, "awards", str(exc))
            return
        except (LookAheadError, ExchangeError) as exc:
            self.metrics.set("vpp_awards_pending", 1, market=market_id)
            if isinstance(exc, ExchangeError):
                self.metrics.inc("vpp_exchange_errors_total", market=market_id, call="awards")
            retry_at = self.clock.now() + dt.timedelta(seconds=self.options.retry_s)
            log.warning(
                "awards_late",
                market=market_id,
                day=str(day),
                retry_at=retry_at.isoformat(),
                reason=str(exc),
            )
            if retry_at < plan.index[-1] + self._interval(operator, day):
                self._retry(market_id, job, retry_at)
            return
        self.metrics.set("vpp_awards_pending", 0, market=market_id)
        self.metrics.inc("vpp_awards_received_total", market=market_id)
        if plan.result is None and awards:
            bid = self.recorder.bid(operator.bid_key(day))
            if bid is not None:  # the plan was lost; keep the awards on record anyway
                self.recorder.record_awards(bid, awards)
        operator.prepare_dispatch(day)

    def _dispatch(self, market_id: str, job: Job, at: dt.datetime) -> None:
        operator = self.operators[market_id]
        assert job.interval_start is not None
        start = job.interval_start
        length = self._interval(operator, job.delivery_day)
        now = self.clock.now()
        if now >= start + length:
            self.metrics.inc("vpp_dispatch_missed_total", market=market_id)
            log.warning("dispatch_missed", market=market_id, interval=start.isoformat())
            return
        if not operator.devices and self.device_factory is not None:
            operator.devices, operator.sessions = self.device_factory(operator)
        plan = operator.day_plan(job.delivery_day)
        position = int(plan.index.get_loc(pd.Timestamp(start)))
        sent = operator.dispatch(start)
        with self._lock:
            self._current[market_id] = sent
        self.metrics.inc("vpp_dispatch_total", market=market_id)
        self.metrics.inc("vpp_setpoints_sent_total", len(sent), market=market_id)
        self.metrics.set(
            "vpp_dispatch_lateness_seconds", (now - start).total_seconds(), market=market_id
        )
        result = plan.last_plan
        if result is not None and plan.last_position == position and result.fallback:
            for park_id, reason in result.errors.items():
                self.metrics.inc("vpp_realtime_fallback_total", park=park_id)
                log.warning(
                    "park_fallback",
                    market=market_id,
                    park=park_id,
                    interval=start.isoformat(),
                    reason=reason,
                )
        self._asset_gauges(operator)

    def _rt_bid(self, market_id: str, job: Job, at: dt.datetime) -> None:
        """Bid one period of a real-time product before its gate (``[daemon] real_time_bids``)."""
        operator = self.operators[market_id]
        assert job.interval_start is not None
        assert job.product_id is not None
        gate = operator.market.rules_on(job.delivery_day).rt_gate_closure(
            job.product_id, job.interval_start
        )
        if self.clock.now() >= gate:
            log.warning("rt_bid_missed", market=market_id, product=job.product_id,
                        period=job.interval_start.isoformat(), gate_closure=gate.isoformat())
            return
        if not operator.devices and self.device_factory is not None:
            operator.devices, operator.sessions = self.device_factory(operator)
        submitted = operator.submit_real_time(job.product_id, job.interval_start)
        if submitted:
            self.metrics.inc("vpp_rt_bids_submitted_total", len(submitted), market=market_id)
        # A bid left ``submitted`` (the exchange unreachable, or its answer lost) is sent again
        # every retry_s while the gate is open: under its key, a replacement at most.
        plan = operator.day_plan(job.delivery_day)
        unknown = [
            row.idempotency_key
            for _, _, row in self.recorder.rt_bids_between(
                market_id, operator.portfolio.portfolio_id, job.interval_start,
                job.interval_start + dt.timedelta(seconds=1),
            )
            if row.product_id == job.product_id and row.status == "submitted"
            and row.idempotency_key not in plan.rt_bids
        ]
        retry_at = self.clock.now() + dt.timedelta(seconds=self.options.retry_s)
        if unknown:
            self.metrics.inc("vpp_exchange_errors_total", market=market_id, call="rt_submit")
            if retry_at < gate:
                log.warning("rt_bid_retry_scheduled", market=market_id, keys=unknown,
                            retry_at=retry_at.isoformat(), gate_closure=gate.isoformat())
                self._retry(market_id, job, retry_at)
            else:
                log.error("rt_bid_outcome_unknown", market=market_id, keys=unknown,
                          gate_closure=gate.isoformat(), alert=True)

    def _close(self, market_id: str, job: Job, at: dt.datetime) -> None:
        operator = self.operators[market_id]
        day = job.delivery_day
        operator.measure()  # the closing meter reading of the day
        try:
            rows = settle_day(operator, self.store, day)
        except (LookAheadError, ExchangeError) as exc:
            if isinstance(exc, ExchangeError):
                self.metrics.inc("vpp_exchange_errors_total", market=market_id, call="prices")
            retry_at = self.clock.now() + dt.timedelta(seconds=self.options.retry_s)
            if retry_at - job.run_at > SETTLEMENT_PATIENCE:
                log.error("settlement_failed", market=market_id, day=str(day), reason=str(exc))
                return
            log.warning("settlement_waiting", market=market_id, day=str(day), reason=str(exc))
            self._retry(market_id, job, retry_at)
            return
        for row in rows:
            self.metrics.set(
                "vpp_settlement_net_revenue", float(row["net_revenue"]), park=str(row["park_id"])
            )
            if "carbon_budget_over_tco2" in row:
                park = str(row["park_id"])
                self.metrics.set("vpp_park_emissions_tco2", row["emissions_location_tco2"],
                                 park=park)
                if row["carbon_budget_over_tco2"] > 0:
                    self.metrics.inc("vpp_carbon_budget_exceeded_total", park=park)
        log.info(
            "day_settled",
            market=market_id,
            day=str(day),
            net_revenue=round(sum(float(r["net_revenue"]) for r in rows), 2),
            parks=len(rows),
        )
        operator.days.pop(day - dt.timedelta(days=2), None)  # bounded memory in a long run
        last = self.options.last_day
        if (
            last is not None
            and day >= last
            and all(self._settled(m, last) for m in self.operators)
        ):
            threading.Thread(target=self.stop, name="vpp-daemon-stop", daemon=True).start()

    def _settled(self, market_id: str, day: dt.date) -> bool:
        with self.store.session() as session:
            return (
                session.exec(
                    select(SettlementRecord).where(
                        SettlementRecord.market_id == market_id,
                        SettlementRecord.delivery_day == day,
                    )
                ).first()
                is not None
            )

    def _poll(self, market_id: str) -> None:
        operator = self.operators[market_id]
        _, readings = operator.measure()
        self.metrics.inc("vpp_telemetry_readings_total", len(readings), market=market_id)
        self._asset_gauges(operator)

    def _asset_gauges(self, operator: Operator) -> None:
        for key, device in operator.devices.items():
            health = getattr(device, "health", None)
            if health is None:
                continue
            available = health().available
            if available:
                self._unavailable.discard(key)
            else:
                self._unavailable.add(key)
            self.metrics.set(
                "vpp_asset_available", 1.0 if available else 0.0, park=key[0], asset=key[1]
            )

    def _resend(self, market_id: str) -> None:
        """Re-send the current interval's setpoints before device revert timers run out."""
        operator = self.operators[market_id]
        with self._lock:
            current = list(self._current[market_id])
        if not current:
            return
        now = self.clock.now()
        start = current[0].interval_start
        day = pd.Timestamp(start).tz_convert(operator.timezone).date()
        if now >= start + self._interval(operator, day):
            return  # the next dispatch sends fresh setpoints
        resent = 0
        for setpoint in current:
            device = operator.devices.get((setpoint.park_id, setpoint.asset_id))
            if device is None:
                continue
            try:
                device.write(setpoint)
                resent += 1
            except AdapterError as exc:  # one device's fault must not stop the others
                log.warning(
                    "setpoint_resend_failed",
                    park=setpoint.park_id,
                    asset=setpoint.asset_id,
                    reason=str(exc),
                )
        self.metrics.inc("vpp_setpoints_resent_total", resent, market=market_id)

    # ------------------------------------------------------------------ observability

    def _on_event(self, event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_ERROR:
            self.metrics.inc("vpp_job_failures_total", job=event.job_id.split("@")[0])
            log.error(
                "job_failed",
                job=event.job_id,
                error=type(event.exception).__name__,
                reason=str(event.exception),
                traceback=event.traceback,
            )
        elif event.code == EVENT_JOB_MISSED:
            if "/dispatch/" in event.job_id:
                self.metrics.inc("vpp_dispatch_missed_total", market=event.job_id.split("/")[0])
            log.warning("job_missed", job=event.job_id)

    def next_jobs(self, limit: int = 10) -> list[dict[str, str | None]]:
        """The next planned market jobs (clock time), soonest first."""
        now = self.clock.now()
        upcoming = sorted(
            ((job, job_id.split("/")[0]) for job_id, job in self._planned.items() if job.run_at >= now),
            key=lambda item: item[0].run_at,
        )
        return [
            {
                "run_at": job.run_at.isoformat(),
                "kind": job.kind,
                "market": market,
                "delivery_day": job.delivery_day.isoformat(),
                "interval_start": job.interval_start.isoformat() if job.interval_start else None,
            }
            for job, market in upcoming[:limit]
        ]

    def health(self) -> dict[str, Any]:
        """``/healthz``: ``ok`` unless the scheduler stopped, an auction was missed,
        awards are overdue or an asset is unavailable (then ``degraded``, with reasons)."""
        reasons: list[str] = []
        if self.failure is not None:
            reasons.append(f"store failed: {self.failure}")
        if not self.scheduler.running:
            reasons.append("scheduler not running")
        for market_id in self.operators:
            if self.metrics.get("vpp_awards_pending", market=market_id):
                reasons.append(f"{market_id}: awards overdue")
            if self.metrics.get("vpp_auctions_missed_total", market=market_id):
                reasons.append(f"{market_id}: auction missed")
            if any(
                self.metrics.get("vpp_bid_conflicts_total", market=market_id, kind=kind)
                for kind in ("bid", "awards")
            ):
                reasons.append(f"{market_id}: exchange holds a position that is not ours")
        for market_id, operator in self.operators.items():
            for key in operator.devices:
                if key in self._unavailable:
                    reasons.append(f"{market_id}: {key[0]}/{key[1]} unavailable")
        return {
            "status": "failed" if self.failure else "degraded" if reasons else "ok",
            "reasons": reasons,
            "mode": self.mode,
            "clock": self.clock.now().isoformat(),
            "markets": sorted(self.operators),
        }

    # ------------------------------------------------------------------ store trust

    def _store_failed(self, reason: str) -> None:
        """Recording failed after its retries: stop dispatch, release devices, exit non-zero.

        Nothing more is sent that cannot be recorded: no job runs any more
        (queued ones return at once), devices are closed like at a clean stop
        (they revert to their own control when their revert timer runs out),
        ``/healthz`` answers ``failed`` (503) and ``vpp run`` exits with 3.
        """
        with self._failure_lock:
            if self.failure is not None:
                return
            self.failure = reason
            stopping, self._stopping = self._stopping, True
        log.error("store_failed", store=self.store.safe_url, reason=reason, alert=True)
        if not stopping:
            threading.Thread(target=self.stop, name="vpp-daemon-store-failed", daemon=True).start()

    def _take_lease(self) -> None:
        """Hold the store's single-writer lease and keep renewing it (see ``docs/daemon.md``)."""
        if not self.store_lock.held:  # `vpp run` takes it before building (which enrolls parks)
            self.store_lock.acquire()
        elif not self.store_lock.renew():  # taken over while building (beyond the TTL)
            self.store_lock.held = False
            self.store_lock.acquire()  # raises StoreLockedError naming the new holder
        self._lease_thread = threading.Thread(
            target=self._keep_lease, name="vpp-store-lease", daemon=True
        )
        self._lease_thread.start()

    def _keep_lease(self) -> None:
        """Renew the store lock every ``lock_renew_s`` of wall time until the daemon stops."""
        failures = 0
        while not self._lease_stop.wait(self.options.lock_renew_s):
            try:
                held = self.store_lock.renew()
            except StoreError as exc:
                failures += 1
                log.warning("store_lock_renew_failed", attempt=failures, reason=str(exc))
                if failures >= self.recorder.attempts:
                    self._store_failed(f"cannot renew the daemon lock: {exc}")
                    return
                continue
            failures = 0
            if not held:
                self._store_failed(
                    "the daemon lock was taken over by another daemon (this one stalled "
                    f"beyond {self.options.lock_ttl_s:g} s)"
                )
                return

    def _abandon_lease(self) -> None:
        self._lease_stop.set()
        if self._lease_thread is not None and self._lease_thread is not threading.current_thread():
            self._lease_thread.join(timeout=5)
        self.store_lock.release()

    @property
    def exit_code(self) -> int:
        """0 after a clean stop, 3 after the daemon stopped itself because the store failed."""
        return 3 if self.failure is not None else 0

    def _heartbeat(self, *, stopped: bool = False) -> None:
        now = self.clock.now()
        self.metrics.set("vpp_clock_timestamp_seconds", now.timestamp())
        try:
            with self._heartbeat_lock, self.store.session() as session:
                record = session.get(DaemonStateRecord, "daemon") or DaemonStateRecord(
                    id="daemon",
                    mode=self.mode,
                    pid=os.getpid(),
                    started_at=self._started_at,
                    heartbeat_at=utcnow(),
                    clock_now=now,
                )
                record.mode = self.mode
                record.pid = os.getpid()
                record.started_at = self._started_at
                record.heartbeat_at = utcnow()
                record.clock_now = now
                record.speed = self.time_map.speed
                record.metrics_url = self.metrics_url
                record.next_jobs_json = json.dumps(self.next_jobs())
                record.stopped_at = utcnow() if stopped else None
                session.add(record)
        except StoreError as exc:
            self._heartbeat_failures += 1
            log.warning("heartbeat_failed", attempt=self._heartbeat_failures, reason=str(exc))
            if not stopped and self._heartbeat_failures >= self.recorder.attempts:
                self._store_failed(str(exc))  # the daemon's own record fails job after job
            return
        self._heartbeat_failures = 0


def _beyond_grid(operator: Operator, bid: DayAheadBid) -> str | None:
    """Why ``bid`` exceeds what the portfolio's grid connections can carry, or None."""
    parks = operator.portfolio.parks
    export_mw = sum(p.grid.export_limit_kw for p in parks) / KW_PER_MW
    import_mw = sum(p.grid.import_limit_kw for p in parks) / KW_PER_MW
    lot = operator.market.rules_on(bid.delivery_day).bidding.min_lot_mw
    for curve in bid.curves:
        for point in curve.points:
            if not -import_mw - lot <= point.quantity_mw <= export_mw + lot:
                return (
                    f"{curve.interval_start.isoformat()}: {point.quantity_mw:g} MW outside the "
                    f"grid connections' [{-import_mw:g}, {export_mw:g}] MW"
                )
    return None


def _rt_products(operator: Operator, day: dt.date) -> tuple[str, ...]:
    """The real-time products the daemon bids into on ``day``: every product enabled in the
    market that day, when ``[daemon] real_time_bids`` is on (off by default, as the backtest)."""
    if not operator.strategy.options.real_time_bids:
        return ()
    return tuple(p.id for p in operator.market.rules_on(day).real_time_products if p.enabled)


def _executor(market_id: str) -> str:
    return f"market:{market_id}"

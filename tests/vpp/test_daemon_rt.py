"""The daemon bidding into a real-time product (``[daemon] real_time_bids = true``): the issues'
three parks moved onto DK1, the mFRR energy product, the replay exchange over HTTP on loopback,
real 2016 DK1 prices. Killed mid-day and restarted across real-time gates: the exchange
never gets a bid the store already holds as accepted, and nothing in the store is lost.
SQLite and PostgreSQL (``store_url``). Bounded by deadlines, never by fixed sleeps."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select
from structlog.testing import capture_logs

from bench.quality import ISSUE_PARKS, portfolio_config
from market_replay import import_prices
from tests.vpp.daemon_support import count_rows, wait_for
from vpp.config import load_config
from vpp.daemon.build import SimulationWorld, default_window, simulated_daemon
from vpp.daemon.status import collect_status, real_time_rows
from vpp.runtime.jobs import day_jobs
from vpp.runtime.operator import MarketPortfolio
from vpp.store import RtAwardRecord, RtBidRecord, SettlementRecord, Store

MARKET = "nordpool-dk1"
DAY = dt.date(2016, 1, 12)
MARGIN = dt.timedelta(minutes=30)
NORDPOOL = "nordpool_dk1_dk2_spot_regulating_2016_hourly.csv"


def _shared() -> Path:
    root = Path(os.environ.get("VPP_SHARED_DATA", "/work/shared/data")) / "prices" / NORDPOOL
    if not root.exists():
        pytest.skip(f"shared price data not found at {root} (set VPP_SHARED_DATA)")
    return root


def _config(tmp_path: Path) -> Path:
    config = portfolio_config(tmp_path, [MARKET], ISSUE_PARKS)
    settings = config / "vpp.toml"
    text = settings.read_text()
    lines = [x for x in text.splitlines() if not x.startswith(("real_time_bids =", "reoptimise_every ="))]
    text = "\n".join(lines).replace("[daemon]", "[daemon]\nreal_time_bids = true\nreoptimise_every = 4")
    settings.write_text(text + "\n")
    return config


def _rows(store: Store) -> dict[str, tuple[int | None, str, str | None, str]]:
    with store.session() as session:
        return {
            r.idempotency_key: (r.id, r.status, r.receipt, r.points_json)
            for r in session.exec(select(RtBidRecord))
        }


def test_kill_and_restart_across_real_time_gates(tmp_path: Path, store_url: str) -> None:
    cfg = load_config(_config(tmp_path))
    assert cfg.settings.daemon.real_time_bids is True
    market = cfg.markets[MARKET]
    prices = import_prices(_shared(), "nordpool-regulating", market, zone="DK1").prices
    portfolio = MarketPortfolio.from_config(cfg, MARKET)
    start, first, last = default_window(portfolio, prices, MARGIN, DAY, 1)
    world = SimulationWorld.start(portfolio, prices, speed=20_000.0, start=start,
                                  first_day=first, last_day=last)
    store = Store(store_url)
    periods = [j for j in day_jobs(market.rules_on(DAY), DAY, MARGIN, real_time_products=("mfrr-energy",))
               if j.kind == "rt_bid"]
    assert len(periods) == 24  # one per local hour of a winter day
    # Write-ahead: whenever the exchange receives a bid, the store already has its row.
    exchange = world.server.exchange
    real_submit = exchange.submit_real_time
    at_send: list[tuple[str, str | None]] = []

    def spy(bid):  # type: ignore[no-untyped-def]
        with store.session() as session:
            row = session.exec(select(RtBidRecord).where(
                RtBidRecord.idempotency_key == bid.idempotency_key)).first()
        at_send.append((bid.idempotency_key, row.status if row is not None else None))
        return real_submit(bid)

    exchange.submit_real_time = spy  # type: ignore[method-assign]
    try:
        first_daemon = simulated_daemon(cfg, store, world)
        first_daemon.start()
        wait_for(
            lambda: count_rows(store, RtAwardRecord) >= 2
            and count_rows(store, RtBidRecord, RtBidRecord.status == "accepted") >= 4,
            90, "four accepted real-time bids and two of their awards",
        )
        first_daemon.abort()  # a crash: in-memory bids and curves gone
        # As if the crash came between sending one bid and recording its answer: the store
        # says submitted, the exchange holds it. The restart asks the exchange, never resends.
        with store.session() as session:
            lost = session.exec(select(RtBidRecord).where(RtBidRecord.status == "accepted")
                                .order_by(RtBidRecord.id)).first()  # type: ignore[arg-type]
            assert lost is not None
            lost.status, lost_key = "submitted", lost.idempotency_key
            session.add(lost)
        before = _rows(store)
        with store.session() as session:
            awards_before = {(a.id, a.idempotency_key, a.interval_start, a.quantity_mw)
                             for a in session.exec(select(RtAwardRecord))}
        held_before = {k: (exchange.receipt(k), b.points) for k, b in exchange._rt_bids.items()}
        accepted = {k for k, row in before.items() if row[1] == "accepted"} | {lost_key}
        assert accepted <= set(held_before)  # each accepted bid is at the exchange...
        for key in accepted:  # ...under the receipt the store holds
            assert held_before[key][0] == before[key][2]

        with capture_logs() as logs:
            second = simulated_daemon(cfg, store, world)
            second.start()
            assert second.finished.wait(120), "the restarted daemon did not finish the day"
    finally:
        world.close()

    recovered = [e for e in logs if e["event"] == "day_recovered" and e.get("day") == str(DAY)]
    assert recovered
    assert recovered[0]["rt_bids"] == len(accepted)
    # No accepted key was sent again; the exchange holds each earlier bid unchanged.
    resent = [e for e in logs if e["event"] == "rt_bid_submitted"
              and any(k.split("/")[2] == e["period"] for k in accepted)]
    directions = {(k.split("/")[2], k.split("/")[4]) for k in accepted}
    assert not [e for e in resent if (e["period"], e["direction"]) in directions]
    after_exchange = {k: (exchange.receipt(k), b.points) for k, b in exchange._rt_bids.items()}
    for key in accepted:
        assert after_exchange[key] == held_before[key]
    # The store lost nothing: every row as it was (or moved on from submitted), awards kept.
    after = _rows(store)
    confirmed = [e for e in logs if e["event"] == "rt_bid_confirmed_by_exchange"]
    assert [e["key"] for e in confirmed] == [lost_key]
    assert after[lost_key][1] == "accepted"
    assert after[lost_key][2] == before[lost_key][2]  # its receipt kept
    for key, row in before.items():
        if row[1] == "accepted":
            assert after[key] == row
        else:
            assert after[key][0] == row[0]
    with store.session() as session:
        awards_after = {(a.id, a.idempotency_key, a.interval_start, a.quantity_mw)
                        for a in session.exec(select(RtAwardRecord))}
        priced = session.exec(select(RtAwardRecord).where(RtAwardRecord.price_per_mwh != None)).all()  # noqa: E711
    assert {a[:3] for a in awards_before} <= {a[:3] for a in awards_after}
    assert priced, "no real-time award was paid a published price"
    # The exchange and the store agree on every bid after the day: one per key, same receipt.
    assert {k for k, row in after.items() if row[1] == "accepted"} == set(after_exchange)
    for key, (receipt, _) in after_exchange.items():
        assert after[key][2] == receipt
    assert len({r for r, _ in after_exchange.values()}) == len(after_exchange)
    assert at_send
    assert {status for _, status in at_send} == {"submitted"}
    assert len(at_send) == len({key for key, _ in at_send})  # each key sent once, ever
    # The restarted daemon went on bidding the later periods before their gates.
    later = [k for k in after if k not in before]
    assert later, "no real-time bid after the restart"
    assert count_rows(store, SettlementRecord) == len(ISSUE_PARKS)
    # ``vpp status`` as of the day's noon: one row per bid, the awards summed per bid [MWh].
    noon = dt.datetime(2016, 1, 12, 11, tzinfo=dt.UTC)
    with store.session() as session:
        rows = real_time_rows(cfg, session, [MARKET], noon)
        awarded = {}
        for a in session.exec(select(RtAwardRecord)):
            awarded[a.idempotency_key] = awarded.get(a.idempotency_key, 0.0) + a.quantity_mw
    assert len(rows) == len(after)
    assert {r["product"] for r in rows} == {"mfrr-energy"}
    for row in rows:
        key = f"{MARKET}/mfrr-energy/{row['period_start']}/vpp-{MARKET}/{row['direction']}"
        assert row["status"] == after[key][1]
        assert row["award_mwh"] == pytest.approx(awarded.get(key, 0.0))  # hourly: MW x 1 h
    assert collect_status(cfg, store)["rt_bids"] == []  # the daemon's clock is past the day
    store.close()


def test_a_bid_the_exchange_did_not_answer_is_retried_until_its_gate(tmp_path: Path) -> None:
    """The exchange fails every attempt of the first real-time bid (1 + exchange_retries
    HTTP tries): its row stays ``submitted`` and the daemon schedules it again ``retry_s``
    later, before the gate. Whether the retry runs before the gate (accepted, held once) or,
    at this simulation speed, after it (``rt_bid_missed``: nothing sent late, the row stays
    ``submitted``), the store and the exchange agree."""
    cfg = load_config(_config(tmp_path))
    market = cfg.markets[MARKET]
    prices = import_prices(_shared(), "nordpool-regulating", market, zone="DK1").prices
    portfolio = MarketPortfolio.from_config(cfg, MARKET)
    start, first, last = default_window(portfolio, prices, MARGIN, DAY, 1)
    world = SimulationWorld.start(portfolio, prices, speed=20_000.0, start=start,
                                  first_day=first, last_day=last)
    store = Store(f"sqlite:///{tmp_path / 'rt.db'}")
    exchange = world.server.exchange
    real_submit = exchange.submit_real_time
    failed: list[tuple[str, dt.datetime]] = []

    def flaky(bid):  # type: ignore[no-untyped-def]
        # Down for the first bid during the whole job that sends it (the clock holds at the
        # job's instant); up again for its retry, a later job.
        now = world.clock.now()
        if not failed or failed[0] == (bid.idempotency_key, now):
            failed.append((bid.idempotency_key, now))
            raise RuntimeError("exchange down")  # a 500 to the client
        return real_submit(bid)

    exchange.submit_real_time = flaky  # type: ignore[method-assign]
    try:
        with capture_logs() as logs:
            daemon = simulated_daemon(cfg, store, world)
            daemon.start()

            def settled() -> bool:
                # six bids accepted AND the failed bid's fate decided: its retry accepted, or
                # the retry found its gate passed (``rt_bid_missed``) -- at this speed either
                if count_rows(store, RtBidRecord, RtBidRecord.status == "accepted") < 6:
                    return False
                if not failed:
                    return False
                key = failed[0][0]
                accepted = _rows(store).get(key, (None, None))[1] == "accepted"
                missed = any(e["event"] == "rt_bid_missed" and e.get("period") == key.split("/")[2]
                             for e in list(logs))
                return accepted or missed

            wait_for(settled, 90, "six accepted real-time bids and the failed bid's retry decided")
            daemon.abort()
    finally:
        world.close()
    key = failed[0][0]
    assert set(failed) == {failed[0]}
    assert 1 < len(failed) <= 1 + cfg.settings.daemon.exchange_retries  # the client retried
    retries = [e for e in logs if e["event"] == "rt_bid_retry_scheduled"]
    assert retries
    assert retries[0]["keys"] == [key]
    period = dt.datetime.fromisoformat(key.split("/")[2])
    gate = market.rules_on(DAY).rt_gate_closure("mfrr-energy", period)
    assert dt.datetime.fromisoformat(retries[0]["retry_at"]) < gate
    row = _rows(store)[key]
    if row[1] == "accepted":
        assert exchange.real_time_bid(key) is not None
        assert row[2] == exchange.receipt(key)
    else:
        assert row[1] == "submitted"
        assert exchange.real_time_bid(key) is None
        assert [e for e in logs if e["event"] == "rt_bid_missed"
                and e["period"] == period.isoformat()]
    store.close()


def test_vpp_status_shows_todays_real_time_bids(tmp_path: Path) -> None:
    """No daemon ran: ``vpp status`` reads the store at the wall clock's day and lists its
    real-time bids with their awards. Today's DK1 rules (from 2025-03-04) settle mFRR energy
    per 15 minutes: 1 MW awarded in one interval is 0.25 MWh, paid 50/MWh: 12.50."""
    from typer.testing import CliRunner

    from vpp.cli import app
    from vpp.runtime.recording import StoreRecorder
    from vpp.types import BidPoint, RealTimeAward, RealTimeBid

    config = _config(tmp_path)
    url = f"sqlite:///{tmp_path / 'status.db'}"
    store = Store(url)
    zone = load_config(config).markets[MARKET].timezone
    local = dt.datetime.now(dt.UTC).astimezone(ZoneInfo(zone))
    hour = local.replace(hour=12, minute=0, second=0, microsecond=0).astimezone(dt.UTC)
    bid = RealTimeBid(MARKET, f"vpp-{MARKET}", "mfrr-energy", hour, (BidPoint(40.0, 1.0),), "up", hour)
    recorder = StoreRecorder(store)
    recorder.record_rt_bid(bid, status="accepted", receipt="replay-rt-7", reason=None)
    recorder.record_rt_awards(bid.idempotency_key, [RealTimeAward("mfrr-energy", "up", hour, 1.0, 50.0)])
    store.close()
    result = CliRunner().invoke(app, ["status", "--config", str(config)],
                                env={"VPP_DATABASE_URL": url, "COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "Real-time bids and awards" in result.output
    (line,) = [x for x in result.output.splitlines() if "mfrr-energy" in x]
    for cell in (hour.isoformat(), "up", "accepted", "receipt replay-rt-7", " 0.25 ", " 12.50 "):
        assert cell in line

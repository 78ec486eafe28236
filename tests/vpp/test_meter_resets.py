"""Meter registers that restart at zero, jump or pause: settled energy stays what flowed.

The unit tests pin :func:`vpp.runtime.metering.clean_register` on known values and
with hypothesis properties; the end-to-end test runs a real simulated daemon day
(SQLite store, replay exchange over HTTP on loopback) in which a battery restarts
and its registers start again at zero, and compares the settlement with the
backtest of the same day (where nothing restarts).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import select
from structlog.testing import capture_logs

from adapters import SimulatedProcess
from strategies import StrategyOptions
from tests.vpp.daemon_support import DAY, MARKET, load, make_config, prices
from vpp.backtest.run import BacktestOptions, simulate
from vpp.daemon import service
from vpp.daemon.build import SimulationWorld, default_window, simulated_daemon
from vpp.runtime.metering import clean_register, interval_energy, meter_counters, settle_day
from vpp.runtime.operator import MarketPortfolio
from vpp.store import SettlementRecord, Store, TelemetryRecord
from vpp.types import Health, Telemetry

MARGIN = dt.timedelta(minutes=30)
T0 = pd.Timestamp("2025-05-08 00:00", tz="UTC")


def _register(values: list[float], step_s: float = 3600.0) -> pd.Series:
    index = T0 + pd.to_timedelta(np.arange(len(values)) * step_s, unit="s")
    return pd.Series(values, index=index, dtype=float)


def _steps(counter: pd.Series) -> np.ndarray:
    return np.diff(counter.to_numpy(float))


# --------------------------------------------------------------------------- known values


def test_a_register_that_restarts_at_zero_books_only_what_it_counted_since() -> None:
    counter, check = clean_register(_register([100.0, 101.0, 102.0, 0.5, 1.5]), 10.0)
    assert _steps(counter) == pytest.approx([1.0, 1.0, 0.5, 1.0])
    assert check.resets == 1
    assert check.first_reset == T0 + pd.Timedelta(hours=3)
    assert check.faults == 0


def test_an_implausible_upward_jump_is_a_fault_not_energy() -> None:
    # 10 kW nameplate, 1 h steps: at most 15 kWh per step; +1000 kWh is a fault.
    counter, check = clean_register(_register([0.0, 1.0, 1001.0, 1002.0]), 10.0)
    assert _steps(counter) == pytest.approx([1.0, 0.0, 1.0])
    assert check.faults == 1
    assert check.resets == 0


def test_a_register_that_drops_to_an_implausible_value_is_a_fault() -> None:
    # 105 -> 90: a reset, but 90 kWh since the restart cannot have flowed in one hour at 10 kW.
    counter, check = clean_register(_register([100.0, 105.0, 90.0, 91.0]), 10.0)
    assert _steps(counter) == pytest.approx([5.0, 0.0, 1.0])
    assert (check.resets, check.faults) == (1, 1)


def test_a_gap_without_reset_keeps_the_register_difference_and_is_reported() -> None:
    index = T0 + pd.to_timedelta([0, 10, 20, 30, 30 + 3600, 3640], unit="s")
    register = pd.Series([0.0, 0.01, 0.02, 0.03, 3.03, 3.04], index=index)
    counter, check = clean_register(register, 10.0)
    assert counter.iloc[-1] - counter.iloc[0] == pytest.approx(3.04)
    assert check.gaps == 1
    assert check.longest_gap_h == pytest.approx(1.0)
    assert (check.resets, check.faults) == (0, 0)


# --------------------------------------------------------------------------- properties

_MAX_KW = 50.0


@st.composite
def _meter(draw: st.DrawFn) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """A register read at random instants with true increments and random restarts.

    A restart happens right after a reading: the next reading counts from zero.
    """
    n = draw(st.integers(2, 40))
    gaps_s = np.array(draw(st.lists(st.floats(1.0, 7200.0), min_size=n - 1, max_size=n - 1)))
    load = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n - 1, max_size=n - 1)))
    restart = np.array(draw(st.lists(st.booleans(), min_size=n - 1, max_size=n - 1)))
    increments = load * _MAX_KW * gaps_s / 3600.0
    values = [draw(st.floats(0.0, 1e6))]
    for inc, again in zip(increments, restart, strict=True):
        values.append((0.0 if again else values[-1]) + inc)
    index = T0 + pd.to_timedelta(np.concatenate([[0.0], np.cumsum(gaps_s)]), unit="s")
    return pd.Series(values, index=index), increments, restart


@settings(max_examples=200, deadline=None)
@given(_meter())
def test_property_booked_energy_is_never_negative_and_never_phantom(
    meter: tuple[pd.Series, np.ndarray, np.ndarray],
) -> None:
    register, increments, restart = meter
    counter, _ = clean_register(register, _MAX_KW)
    steps = _steps(counter)
    assert (steps >= 0).all()
    assert (steps <= increments + 1e-6).all()  # never more than flowed
    # Where the register did not restart, every step is exactly what flowed.
    assert steps[~restart] == pytest.approx(increments[~restart], abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=40),
    st.floats(0.1, 1e4),
)
def test_property_any_register_books_bounded_non_negative_steps(
    values: list[float], max_kw: float
) -> None:
    counter, _ = clean_register(_register(values, 60.0), max_kw)
    steps = _steps(counter)
    assert (steps >= 0).all()
    assert (steps <= 1.5 * max_kw / 60.0 + 1e-5).all()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.0, 10.0), min_size=1, max_size=40))
def test_property_without_resets_the_total_is_the_sum_of_increments(
    increments: list[float],
) -> None:
    values = np.concatenate([[5.0], 5.0 + np.cumsum(increments)])
    counter, check = clean_register(_register(list(values)), 10.0)
    assert check.resets == check.faults == 0
    assert counter.iloc[-1] - counter.iloc[0] == pytest.approx(sum(increments), abs=1e-6)


# --------------------------------------------------------------------------- meter_counters


def test_a_battery_restart_books_the_net_export_and_throughput_since_the_restart(
    tmp_path: Path,
) -> None:
    """Registers are cleaned one by one, then combined: the net export never jumps."""
    portfolio = MarketPortfolio.from_config(load(make_config(tmp_path)), MARKET)
    charged = [0.0, 0.0, 100.0, 0.0, 0.0]  # restart after the 3rd reading, then discharging
    discharged = [400.0, 500.0, 500.0, 50.0, 150.0]
    readings = [
        Telemetry(
            "jinan-north",
            "bess-1",
            (T0 + pd.Timedelta(minutes=15 * i)).to_pydatetime(),
            0.0,
            0.5,
            Health.OK,
            extra={"charged_kwh": c, "discharged_kwh": d},
        )
        for i, (c, d) in enumerate(zip(charged, discharged, strict=True))
    ]
    with capture_logs() as logs:
        meters = meter_counters(portfolio, readings)
    key = ("jinan-north", "bess-1")
    boundaries = pd.DatetimeIndex([T0 + pd.Timedelta(minutes=15 * i) for i in range(5)])
    # What flowed: +100, -100, then (charged reset to 0 and discharged 0 -> 50) +50, +100.
    assert interval_energy(meters.exported[key], boundaries) == pytest.approx(
        [100.0, -100.0, 50.0, 100.0]
    )
    assert interval_energy(meters.throughput[key], boundaries) == pytest.approx(
        [100.0, 100.0, 50.0, 100.0]
    )
    assert meters.resets == {key: 2}
    assert sorted(e["register"] for e in logs if e["event"] == "meter_reset") == [
        "charged_kwh",
        "discharged_kwh",
    ]


def test_a_gap_in_power_readings_is_reported(tmp_path: Path) -> None:
    portfolio = MarketPortfolio.from_config(load(make_config(tmp_path)), MARKET)
    offsets_min = [0, 1, 2, 3, 63, 64]  # the daemon was down for an hour
    readings = [
        Telemetry(
            "jinan-north", "arc-furnace", (T0 + pd.Timedelta(minutes=m)).to_pydatetime(), -600.0
        )
        for m in offsets_min
    ]
    with capture_logs() as logs:
        meters = meter_counters(portfolio, readings)
    counter = meters.exported[("jinan-north", "arc-furnace")]
    assert counter.iloc[-1] == pytest.approx(-600.0 * 64 / 60)
    [gap] = [e for e in logs if e["event"] == "meter_gap"]
    assert (gap["register"], gap["gaps"], gap["longest_h"]) == ("power_kw", 1, 1.0)


# --------------------------------------------------------------------------- end to end


def _settlement(store: Store) -> pd.DataFrame:
    with store.session() as session:
        rows = [r.model_dump() for r in session.exec(select(SettlementRecord))]
    return pd.DataFrame(rows).set_index("park_id").sort_index()


def _restart_process_at(
    monkeypatch: pytest.MonkeyPatch, asset_id: str, at: dt.datetime
) -> dict[str, Any]:
    """Restart the process controller ``asset_id`` right after its first reading at or after ``at``.

    The restart runs in the daemon's thread, inside the read, so no reading races it.
    """
    seen: dict[str, Any] = {"before": None, "at": None}
    original = SimulatedProcess.read

    def read(self: SimulatedProcess) -> Any:
        telemetry = original(self)
        if self.asset_id == asset_id and seen["before"] is None and telemetry.measured_at >= at:
            seen["before"] = self.restart_meter()
            seen["at"] = telemetry.measured_at
        return telemetry

    monkeypatch.setattr(SimulatedProcess, "read", read)
    return seen


def test_a_process_meter_restart_mid_day_settles_what_flowed_and_keeps_the_raw_telemetry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's settlement equals the backtest's (no restart there) within 1e-6.

    The restart happens right after a reading, so the register's next reading
    holds exactly the energy since: nothing is unknown and the settlement must
    match. A meter that trusted the raw counter would book the registers'
    value before the restart as energy in one interval.
    """
    cfg = load(make_config(tmp_path, daemon={"reoptimise_every": 4}))
    frame = prices(cfg)
    portfolio = MarketPortfolio.from_config(cfg, MARKET)
    start, first, last = default_window(portfolio, frame, MARGIN, DAY, 1)
    world = SimulationWorld.start(
        portfolio, frame, speed=40_000.0, start=start, first_day=first, last_day=last
    )
    store = Store(f"sqlite:///{tmp_path / 'daemon.db'}")
    noon = dt.datetime(2025, 5, 8, 4, 0, tzinfo=dt.UTC)  # 12:00 in Asia/Shanghai
    seen = _restart_process_at(monkeypatch, "arc-furnace", noon)
    try:
        with capture_logs() as logs:
            daemon = simulated_daemon(cfg, store, world)
            daemon.start()
            assert daemon.finished.wait(120), "the simulated day did not finish in 120 s"
    finally:
        world.close()
    assert seen["before"] is not None, "the furnace was not restarted during the day"
    assert seen["at"] - noon < dt.timedelta(minutes=5)
    # A meter trusting the raw register would book this much phantom export at noon.
    assert seen["before"]["consumed_kwh"] > 1000

    monkeypatch.undo()
    backtest = simulate(
        world.portfolio,
        frame,
        [DAY],
        BacktestOptions(StrategyOptions(reoptimise_every=4), safety_margin=MARGIN, baselines=False),
    )
    expected = backtest.settlement.set_index("park_id").sort_index()
    got = _settlement(store)
    assert list(got.index) == ["daqing-oilfield", "jinan-north", "qingdao-logistics"]
    # Parks of batteries, PV, EV and processes settle identically (1e-6). The oilfield's heat
    # stores float on their balance between reads; the daemon polls at other instants than the
    # backtest's boundaries, and its real-time plans see their content a few seconds apart:
    # within 1e-3 (measured 3.7e-5 to 1.3e-4 of rt_revenue on this day, varying with the polls).
    exact = np.array([park != "daqing-oilfield" for park in got.index])
    for column in ("da_revenue", "rt_revenue", "degradation_cost", "net_revenue", "imbalance_mwh"):
        assert got[column].to_numpy()[exact] == pytest.approx(
            expected[column].to_numpy()[exact], rel=1e-6, abs=1e-6
        ), column
        assert got[column].to_numpy() == pytest.approx(
            expected[column].to_numpy(), rel=1e-3, abs=1e-3
        ), column

    resets = [e for e in logs if e["event"] == "meter_reset"]
    assert [(e["park"], e["asset"], e["register"]) for e in resets] == [
        ("jinan-north", "arc-furnace", "consumed_kwh")
    ]
    assert not [e for e in logs if e["event"] == "meter_fault"]

    # The stored telemetry is not rewritten: the raw drop of the registers is still there.
    with store.session() as session:
        records = session.exec(
            select(TelemetryRecord)
            .where(TelemetryRecord.asset_id == "arc-furnace")
            .order_by(TelemetryRecord.measured_at)  # type: ignore[arg-type]
        ).all()
    consumed = np.array(
        [json.loads(r.extra_json or "{}").get("consumed_kwh", np.nan) for r in records]
    )
    consumed = consumed[np.isfinite(consumed)]
    drops = np.flatnonzero(np.diff(consumed) < -1000)
    assert len(drops) == 1
    assert consumed[drops[0]] == pytest.approx(seen["before"]["consumed_kwh"], abs=1e-6)


def _wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(0.02)


def test_kill_and_restart_with_a_device_restart_books_no_phantom_energy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A power cut: the furnace controller restarts and the daemon is killed with it.

    The furnace's register starts again at zero (its load runs on) right after a
    reading at 08:00 UTC; the daemon is aborted (kill -9) at once and a second one
    finishes the day. Booked: what the register counted before the restart plus
    what it counted since -- nothing of the pre-restart total a second time, so no
    phantom export, and the stored telemetry is all still there.
    """
    cfg = load(make_config(tmp_path, daemon={"reoptimise_every": 4}))
    frame = prices(cfg)
    portfolio = MarketPortfolio.from_config(cfg, MARKET)
    start, first, last = default_window(portfolio, frame, MARGIN, DAY, 1)
    world = SimulationWorld.start(
        portfolio, frame, speed=10_000.0, start=start, first_day=first, last_day=last
    )
    store = Store(f"sqlite:///{tmp_path / 'daemon.db'}")
    settled: list[dict[str, Any]] = []

    def settle_and_keep(*args: Any) -> list[dict[str, Any]]:
        rows = settle_day(*args)  # the real settlement; the test keeps its rows
        settled.extend(rows)
        return rows

    monkeypatch.setattr(service, "settle_day", settle_and_keep)
    power_cut = dt.datetime(2025, 5, 8, 8, 0, tzinfo=dt.UTC)
    seen = _restart_process_at(monkeypatch, "arc-furnace", power_cut)
    try:
        daemon = simulated_daemon(cfg, store, world)
        daemon.start()
        _wait_for(lambda: seen["before"] is not None, 60, "the power cut")
        daemon.abort()  # kill -9: no cleanup
        with store.session() as session:
            telemetry_before = {t.id for t in session.exec(select(TelemetryRecord))}
        with capture_logs() as logs:
            second = simulated_daemon(cfg, store, world)
            second.start()
            assert second.finished.wait(120), "the restarted daemon did not finish the day"
    finally:
        world.close()

    with store.session() as session:
        records = session.exec(
            select(TelemetryRecord).order_by(TelemetryRecord.measured_at)  # type: ignore[arg-type]
        ).all()
    assert telemetry_before <= {r.id for r in records}, "stored telemetry was lost"
    furnace = [r for r in records if r.asset_id == "arc-furnace" and r.available]
    raw = np.array([json.loads(r.extra_json or "{}")["consumed_kwh"] for r in furnace])
    [drop] = np.flatnonzero(np.diff(raw) < 0) + 1
    # The restart came right after a reading; if the killed daemon did not get to store
    # it, what flowed since the last stored one is unseen, bounded by the nameplate.
    unseen_kwh = seen["before"]["consumed_kwh"] - raw[drop - 1]
    max_kw = portfolio.asset(("jinan-north", "arc-furnace")).max_power_kw
    elapsed_h = (seen["at"] - furnace[drop - 1].measured_at).total_seconds() / 3600
    assert 0 <= unseen_kwh <= max_kw * elapsed_h + 1e-6
    assert raw[drop - 1] > 5000, "a meter trusting the raw register would sell this much"

    readings = [
        Telemetry(
            r.park_id,
            r.asset_id,
            r.measured_at,
            r.power_kw,
            r.soc,
            Health.OK,
            extra=json.loads(r.extra_json or "{}"),
        )
        for r in records
        if r.available
    ]
    meters = meter_counters(portfolio, readings)
    counter = meters.exported[("jinan-north", "arc-furnace")]
    # Booked = what the register counted before the restart + what it counted since:
    # what really flowed, less the unseen part (0 when the last reading was stored).
    flowed_kwh = seen["before"]["consumed_kwh"] - raw[0] + raw[-1]
    booked_kwh = -(counter.iloc[-1] - counter.iloc[0])
    assert booked_kwh == pytest.approx(flowed_kwh - unseen_kwh, abs=1e-6)
    assert meters.resets == {("jinan-north", "arc-furnace"): 1}

    # The day's settlement: the park sells at most what its PV and battery put out.
    rows = {r["park_id"]: r for r in settled}
    assert set(rows) == {"daqing-oilfield", "jinan-north", "qingdao-logistics"}
    # (Neither register of those restarted: their last readings are their totals.)
    put_out_kwh = sum(
        max(json.loads(r.extra_json or "{}").get(name, 0.0) for r in records if r.asset_id == a)
        for a, name in (("pv-roof", "produced_kwh"), ("bess-1", "discharged_kwh"))
    )
    assert rows["jinan-north"]["energy_sold_mwh"] * 1000 <= put_out_kwh + 1e-6
    assert rows["jinan-north"]["meter_resets"] == 1
    assert rows["jinan-north"]["meter_faults"] == 0
    assert any(e["event"] == "meter_reset" and e["asset"] == "arc-furnace" for e in logs)

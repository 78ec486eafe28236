"""The daemon and the backtest meter and settle with one implementation and one price policy.

The backtest's own operator and telemetry of a simulated day are handed to the
daemon's ``settle_day`` (through a SQLite store, as the daemon keeps them): the
rows must be the backtest's. The missing-price policy of
:func:`vpp.runtime.settlement.settlement_prices` is pinned on known frames.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from structlog.testing import capture_logs

from strategies import StrategyOptions
from tests.vpp.daemon_support import DAY, load, make_config, prices
from vpp import LookAheadError
from vpp.backtest import run as backtest_run
from vpp.backtest.run import BacktestOptions, simulate
from vpp.runtime.metering import settle_day
from vpp.runtime.operator import MarketPortfolio, Operator
from vpp.runtime.recording import MemoryRecorder, StoreRecorder
from vpp.runtime.settlement import settlement_prices
from vpp.store import Store

INDEX = pd.date_range("2025-05-08 00:00", periods=4, freq="15min", tz="UTC")


def test_the_daemon_settles_the_backtests_own_readings_to_the_backtests_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load(make_config(tmp_path))
    frame = prices(cfg)
    portfolio = MarketPortfolio.from_config(cfg, frame.market_id)
    kept: dict[str, Any] = {}

    class KeptOperator(Operator):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            kept["operator"] = self

    class KeptRecorder(MemoryRecorder):
        def __init__(self) -> None:
            super().__init__()
            kept["recorder"] = self

    monkeypatch.setattr(backtest_run, "Operator", KeptOperator)
    monkeypatch.setattr(backtest_run, "MemoryRecorder", KeptRecorder)
    backtest = simulate(
        portfolio,
        frame,
        [DAY],
        BacktestOptions(StrategyOptions(name="deterministic"), safety_margin=dt.timedelta(minutes=30), baselines=False),
        keep_days=True,  # the daemon settles the day from the plan and readings kept here
    )
    store = Store(f"sqlite:///{tmp_path / 'daemon.db'}")
    StoreRecorder(store).record_telemetry(kept["recorder"].telemetry)

    rows = settle_day(kept["operator"], store, DAY)

    expected = backtest.settlement.set_index("park_id").sort_index()
    got = pd.DataFrame(rows).set_index("park_id").sort_index()
    assert list(got.index) == list(expected.index)
    for column in (
        "energy_sold_mwh",
        "energy_bought_mwh",
        "da_revenue",
        "rt_bid_revenue",
        "imbalance_revenue",
        "clawback_revenue",
        "rt_revenue",
        "rt_awarded_mwh",
        "degradation_cost",
        "net_revenue",
        "imbalance_mwh",
    ):
        assert got[column].to_numpy() == pytest.approx(
            expected[column].to_numpy(), rel=1e-9, abs=1e-9
        ), column


def test_a_deviation_price_the_source_does_not_carry_is_the_day_ahead_price() -> None:
    source = pd.DataFrame({"da_price": [10.0, 20.0, 30.0, 40.0]}, index=INDEX)
    with capture_logs() as logs:
        frame = settlement_prices(source, INDEX, "two_settlement", DAY)
    assert frame["rt_price"].tolist() == [10.0, 20.0, 30.0, 40.0]
    assert [e["event"] for e in logs] == ["settlement_price_fallback"]
    both = settlement_prices(source, INDEX, "two_price_imbalance", DAY)
    assert both["rt_price_up"].tolist() == both["rt_price_down"].tolist() == [10, 20, 30, 40]


def test_a_price_missing_for_an_interval_is_never_guessed() -> None:
    source = pd.DataFrame(
        {"da_price": [10.0, 20.0, 30.0, 40.0], "rt_price": [1.0, np.nan, 3.0, np.nan]},
        index=INDEX,
    )
    with pytest.raises(LookAheadError, match=r"2025-05-08: rt_price is missing for 2 of 4 .* 00:15"):
        settlement_prices(source, INDEX, "two_settlement", DAY)
    with pytest.raises(LookAheadError, match=r"da_price is missing for 4 of 4"):
        settlement_prices(source.iloc[:0], INDEX, "two_settlement", DAY)

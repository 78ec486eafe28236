"""``python -m bench quality`` keeps running (issues #12, #13): a two-day slice of the
Chinese file, one park moved onto it, through the same sweep the benchmark runs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from bench.quality import MARKETS, ROW_KEYS, portfolio_config, quality, select
from vpp.config import load_config


def test_portfolio_config_moves_every_park_onto_each_market(tmp_path: Path) -> None:
    config = portfolio_config(tmp_path, ["nordpool-dk1", "ercot-houston"])
    cfg = load_config(config)
    shipped = load_config(Path(__file__).resolve().parents[2] / "config")
    for market_id in ("nordpool-dk1", "ercot-houston"):
        moved = cfg.parks_in(market_id)
        assert sorted(p.id for p in moved) == sorted(f"{p}-{market_id}" for p in shipped.parks)
        assert {p.timezone for p in moved} == {cfg.markets[market_id].timezone}
    assert cfg.parks_in("cn-province-a") == []


def test_unknown_market_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(SystemExit, match=r"--markets nope: unknown; choose from cn-province-a"):
        select("nope")
    assert [m.key for m in select("ercot-houston")] == ["ercot-2022-01", "ercot-2023-01"]


@pytest.mark.slow
def test_two_days_of_cn_give_a_full_row_and_a_market_that_cannot_run_gives_its_error(
    shared_data: Path, tmp_path: Path
) -> None:
    cn = MARKETS[0]
    # Starting on the file's first day leaves the forecasters no history: an error row.
    first_day = dataclasses.replace(cn, key="cn-first-day", start=dt.date(2025, 5, 1))
    ok, bad = quality([cn, first_day], 2, workers=1, out=tmp_path, parks=["jinan-north"])

    assert set(ROW_KEYS) <= set(ok)
    assert ok["error"] is None, ok
    assert (ok["start"], ok["end"], ok["days"], ok["parks"]) == ("2025-05-02", "2025-05-03", 2, 1)
    for name in ("default", "persistence"):
        assert ok[f"capture_{name}"] is not None
        assert ok[f"capture_{name}"] <= 1.0
        assert ok[f"imbalance_mwh_{name}"] >= 0.0
    assert ok["capture_gain"] == pytest.approx(ok["capture_default"] - ok["capture_persistence"],
                                               abs=1e-4)
    assert ok["target_12_capture"] is (ok["capture_gain"] >= 0.05)
    assert ok["target_13_capture"] is (ok["capture_gain"] >= 0.10)
    assert ok["has_rt_price"] is True
    assert ok["forecast_days"] == 2
    assert ok["mae_ratio"] == pytest.approx(ok["mae_default"] / ok["mae_persistence"], rel=1e-3)
    assert ok["target_13_mae"] is (ok["mae_ratio"] <= 0.85)

    # The persistence row is the persistence cell: the default cell ran persistence as its
    # baseline on the same days, so its capture follows from that cell's own revenues.
    summaries = [json.loads(p.read_text("utf-8"))
                 for p in (tmp_path / "sweep" / "cells").glob("cn-province-a_2025-05-02_*/summary.json")]
    default = next(s for s in summaries if s["strategy"] == "stochastic")
    pf, idle = default["perfect_foresight_revenue"], default["no_flexibility_revenue"]
    assert ok["capture_persistence"] == pytest.approx(
        (default["baseline_revenue"] - idle) / (pf - idle), abs=2e-4
    )
    assert ok["capture_default"] == default["flexibility_capture_ratio"]

    assert bad["market"] == "cn-first-day"
    assert "history" in bad["error"]
    assert bad["capture_default"] is None
    assert bad["target_12_capture"] is None

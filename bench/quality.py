"""``python -m bench quality``: strategy quality per market -- capture, imbalance, forecast error.

``python -m bench quality [--quick | --full] [--days N] [--markets a,b] [--parks p,q]
[--strategy S] [--forecaster F] [--workers N] [--out DIR] [--json PATH]``

For every shared market (issues #12 and #13, "Numbers to reach"): the example
portfolio -- the issues' three parks of ``config/parks`` (``--parks``), each moved onto
the market as a user would, a copy of its park file with ``market`` and ``timezone`` set to the
market's (as ``bench backtest --year`` does) -- is backtested with the shipped
default strategy (``[backtest]`` of ``config/vpp.toml``: ``stochastic``) and with
``persistence``. The backtests are cells of one sweep (:mod:`vpp.backtest.sweep`,
market x strategy x period) on a Dask ``LocalCluster`` of ``--workers`` processes;
each cell is the ordinary ``vpp backtest`` with the persistence and no-flexibility
baselines, so each gives its ``flexibility_capture_ratio`` and ``imbalance_mwh``.
Next to them: the day-ahead MAE of the default forecaster against persistence's on
the same days (:func:`bench.forecast.scores`, the code of ``vpp forecast evaluate``).

The targets of the issues are printed next to the numbers and marked met or not
(nothing fails): #12 capture >= persistence + 0.05 on each market with a real-time
price; #13 capture >= persistence + 0.10 and MAE <= 0.85 x persistence's.

``--quick`` (the default): the first 14 days of each period (``--days N`` sets
the number); ``--full``: the whole periods (DK1 and DE-LU are a year each: long).
A market that cannot run (its file does not import, a park cannot be moved onto
it, a backtest fails) is a row with its error, not a failed benchmark.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from bench.forecast import scores as forecast_scores
from market_replay import import_prices
from market_replay.canonical import PriceFrame, read_prices, write_prices
from vpp.backtest.sweep import Cell, cell_row, dask_client, run_cell, run_sweep, sweep_cells
from vpp.config import SweepSpec, load_config
from vpp.errors import VppError

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VPP_SHARED_DATA", REPO.parent / "shared" / "data")) / "prices"
FALLBACK_SHARED = Path("/work/shared/data/prices")
BASELINE = "persistence"
QUICK_DAYS = 14
#: The example portfolio of the issues ("all three parks moved onto the market"). The
#: oilfield (added later) is left out by default: moved onto the January and winter
#: periods, its perfect-foresight plan is infeasible (the hot-water tank's balance), so
#: those markets could not run at all; ``--parks all`` includes it.
ISSUE_PARKS = ("houston-ship-channel", "jinan-north", "qingdao-logistics")
#: The targets of the issues: capture over persistence's, and the MAE ratio.
CAPTURE_GAIN_12 = 0.05
CAPTURE_GAIN_13 = 0.10
MAE_RATIO_13 = 0.85


@dataclasses.dataclass(frozen=True)
class Market:
    """One row of the benchmark: a shared price file, how it imports, and its period."""

    key: str  # the row's name and what --markets selects
    market_id: str  # config/markets/<id>.toml
    fmt: str
    file: str
    start: dt.date
    end: dt.date
    zone: str | None = None
    rt_file: str | None = None


#: The periods of the issues. A period that opens its file (or, ERCOT 2023, follows its
#: gap from February to December 2022) starts on its second day: a backtest's first day
#: needs the day before as the forecasters' history.
MARKETS: tuple[Market, ...] = (
    Market("cn-province-a", "cn-province-a", "cn-spot-96",
           "cn_province_a_spot_2025-05_2025-06_15min.csv", dt.date(2025, 5, 2), dt.date(2025, 6, 30)),
    Market("nordpool-dk1", "nordpool-dk1", "nordpool-regulating",
           "nordpool_dk1_dk2_spot_regulating_2016_hourly.csv", dt.date(2016, 1, 2),
           dt.date(2016, 12, 31), zone="DK1"),
    Market("ercot-2022-01", "ercot-houston", "ercot-dam",
           "ercot_dam_spp_hubs_zones_2022-2024_hourly.csv", dt.date(2022, 1, 2), dt.date(2022, 1, 31),
           zone="HB_HOUSTON", rt_file="ercot_rtm_spp_hubs_zones_jan2022_jan2023_15min.csv"),
    Market("ercot-2023-01", "ercot-houston", "ercot-dam",
           "ercot_dam_spp_hubs_zones_2022-2024_hourly.csv", dt.date(2023, 1, 2), dt.date(2023, 1, 31),
           zone="HB_HOUSTON", rt_file="ercot_rtm_spp_hubs_zones_jan2022_jan2023_15min.csv"),
    Market("epex-de-lu-2021", "epex-de-lu", "entsoe-day-ahead",
           "entsoe_de_lu_day_ahead_2020-2022_hourly.csv", dt.date(2021, 1, 1), dt.date(2021, 12, 31)),
)

#: The keys of every row (``--json`` writes a list of these objects).
ROW_KEYS = (
    "market", "market_id", "start", "end", "days", "parks", "default_strategy",
    "default_forecaster", "capture_default", "capture_persistence", "capture_gain",
    "imbalance_mwh_default", "imbalance_mwh_persistence", "mae_default", "mae_persistence",
    "mae_ratio", "forecast_days", "has_rt_price", "target_12_capture", "target_13_capture",
    "target_13_mae", "error",
)


def _source(file: str) -> Path:
    for folder in (SHARED, FALLBACK_SHARED, REPO / "data" / "prices"):
        if (folder / file).is_file():
            return folder / file
    raise FileNotFoundError(f"{file}: not in {SHARED} (set VPP_SHARED_DATA)")


def select(keys: str | None) -> list[Market]:
    """The markets named in ``keys`` (comma separated row keys or market ids); None: all."""
    if not keys:
        return list(MARKETS)
    wanted = [k.strip() for k in keys.split(",") if k.strip()]
    chosen = [m for m in MARKETS if m.key in wanted or m.market_id in wanted]
    unknown = [k for k in wanted if not any(k in (m.key, m.market_id) for m in MARKETS)]
    if unknown:
        known = ", ".join(m.key for m in MARKETS)
        raise SystemExit(f"--markets {','.join(unknown)}: unknown; choose from {known}")
    return chosen


def portfolio_config(
    work: Path, market_ids: Sequence[str], parks: Sequence[str] | None = None
) -> Path:
    """A config folder where every park (or those named) has one copy per market, moved
    onto it: the park file with ``id``, ``market`` and ``timezone`` rewritten."""
    config = work / "config"
    shutil.copytree(REPO / "config", config)
    data = work / "data"
    if not data.exists():
        data.symlink_to(REPO / "data", target_is_directory=True)
    sources = sorted((REPO / "config" / "parks").glob("*.toml"))
    shutil.rmtree(config / "parks")
    (config / "parks").mkdir()
    base = load_config(REPO / "config")
    for market_id in dict.fromkeys(market_ids):
        tz = base.markets[market_id].timezone
        for source in sources:
            text = source.read_text(encoding="utf-8")
            park_id = re.search(r'^id = "([^"]+)"', text, re.MULTILINE)
            if park_id is None or (parks and park_id.group(1) not in parks):
                continue
            moved = re.sub(r'^id = "[^"]+"', f'id = "{park_id.group(1)}-{market_id}"', text,
                           count=1, flags=re.MULTILINE)
            moved = re.sub(r'^market = "[^"]+"', f'market = "{market_id}"', moved, count=1,
                           flags=re.MULTILINE)
            moved = re.sub(r'^timezone = "[^"]+"', f'timezone = "{tz}"', moved, count=1,
                           flags=re.MULTILINE)
            (config / "parks" / f"{park_id.group(1)}-{market_id}.toml").write_text(
                moved, encoding="utf-8"
            )
    return config


def _prices(market: Market, work: Path, cache: dict[tuple[str, ...], Path]) -> Path:
    """The market's canonical price file (imported with ``drop-day``, as ``vpp data
    import --on-missing drop-day`` writes it), once per source file."""
    key = (market.market_id, market.fmt, market.file, market.zone or "", market.rt_file or "")
    if key not in cache:
        cfg = load_config(REPO / "config")
        result = import_prices(
            _source(market.file), market.fmt, cfg.markets[market.market_id], zone=market.zone,
            policy="drop-day",
            rt_path=_source(market.rt_file) if market.rt_file else None,
        )
        path = work / "prices" / f"{market.market_id}-{len(cache)}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_prices(result.prices, path, source=market.file, created_by="bench quality")
        cache[key] = path
    return cache[key]


def period(market: Market, days: int | None) -> tuple[dt.date, dt.date]:
    """The market's period, or its first ``days`` calendar days."""
    if days is None:
        return market.start, market.end
    return market.start, min(market.end, market.start + dt.timedelta(days=days - 1))


def safe_cell(cell: Cell, config_root: str, cells_dir: str) -> dict[str, Any]:
    """:func:`run_cell`, with a failing backtest turned into a row naming its error, so
    that one market that cannot run does not stop the others."""
    try:
        return run_cell(cell, config_root, cells_dir)
    except VppError as exc:
        return {**cell_row(cell, {}), "error": f"{type(exc).__name__}: {exc}"}


def _gain(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 4)


def _met(value: float | None, target: float | None, *, at_most: bool = False) -> bool | None:
    if value is None or target is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value <= target if at_most else value >= target


def quality(
    markets: Sequence[Market],
    days: int | None,
    *,
    workers: int = 2,
    out: Path | None = None,
    parks: Sequence[str] | None = None,
    forecast: bool = True,
    strategy: str | None = None,
    forecaster: str | None = None,
) -> list[dict[str, Any]]:
    """One row per market (keys :data:`ROW_KEYS`): the default strategy and persistence
    backtested on the market's period, and their forecasters' day-ahead MAE."""
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        work = Path(out) if out is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows: dict[str, dict[str, Any]] = {}
        cells: dict[str, list[Cell]] = {}
        cache: dict[tuple[str, ...], Path] = {}
        ids = [m.market_id for m in markets]
        config = portfolio_config(work, ids, parks)
        _override(config / "vpp.toml", strategy=strategy, forecaster=forecaster)
        cfg = load_config(config)
        settings = cfg.settings.backtest
        for market in markets:
            start, end = period(market, days)
            parks_on = [p.id for p in cfg.parks_in(market.market_id)]
            rows[market.key] = {
                "market": market.key, "market_id": market.market_id, "start": str(start),
                "end": str(end), "days": None, "parks": len(parks_on), "park_ids": parks_on,
                "default_strategy": settings.strategy, "default_forecaster": settings.forecaster,
                "error": None,
            }
            try:
                prices = _prices(market, work, cache)
                spec = SweepSpec.model_validate({
                    "baselines": True,
                    "grid": {"strategy": list(dict.fromkeys([settings.strategy, BASELINE]))},
                    "periods": [{"start": str(start), "end": str(end)}],
                    "markets": [{"prices": str(prices)}],
                })
                cells[market.key] = sweep_cells(spec, cfg)
            except (VppError, OSError) as exc:
                rows[market.key]["error"] = f"{type(exc).__name__}: {exc}"
        todo = [c for key in cells for c in cells[key]]
        results: dict[str, dict[str, Any]] = {}
        if todo:
            with dask_client(None, workers) as client:
                sweep = run_sweep(todo, config, work / "sweep", client, task=safe_cell)
            results = {r["cell_id"]: r for r in sweep.table.to_dict("records")}
        for market in markets:
            row = rows[market.key]
            for cell in cells.get(market.key, []):
                name = "default" if dict(cell.parameters)["strategy"] == settings.strategy else BASELINE
                result = results.get(cell.cell_id, {})
                error = result.get("error")
                if isinstance(error, str):
                    row["error"] = "; ".join(filter(None, [row["error"], f"{name}: {error}"]))
                    continue
                summary = json.loads(
                    (work / "sweep" / "cells" / cell.cell_id / "summary.json").read_text("utf-8")
                )
                row["days"] = summary["days"]
                row[f"capture_{name}"] = summary.get("flexibility_capture_ratio")
                row[f"imbalance_mwh_{name}"] = summary.get("imbalance_mwh")
                row[f"fallback_days_{name}"] = summary.get("fallback_days")
                row[f"deviation_price_{name}"] = summary.get("deviation_price")
                row[f"wall_time_s_{name}"] = summary.get("wall_time_s")
            if forecast and market.key in cells:
                _forecast(row, market, cache, cfg, settings.forecaster)
            _targets(row, market, cache)
        return [{k: rows[m.key].get(k) for k in ROW_KEYS} | rows[m.key] for m in markets]


def _override(path: Path, **settings: str | None) -> None:
    """Set ``[backtest]`` keys of the copied ``vpp.toml`` (``--strategy``, ``--forecaster``):
    the "default" row then measures that choice against persistence."""
    text = path.read_text(encoding="utf-8")
    head, sep, rest = text.partition("[backtest]")
    if not sep:
        raise SystemExit(f"{path}: no [backtest] table to override")
    body, nxt, tail = rest.partition("\n[")
    for key, value in settings.items():
        if value is None:
            continue
        line = f'{key} = "{value}"'
        body, count = re.subn(rf"^{key} = .*$", line, body, count=1, flags=re.MULTILINE)
        if not count:
            body = f"\n{line}" + body
    path.write_text(head + sep + body + nxt + tail, encoding="utf-8")


def _frame(market: Market, cache: dict[tuple[str, ...], Path]) -> PriceFrame:
    key = (market.market_id, market.fmt, market.file, market.zone or "", market.rt_file or "")
    return read_prices(cache[key])


def _forecast(
    row: dict[str, Any], market: Market, cache: dict[tuple[str, ...], Path], cfg: Any,
    forecaster: str,
) -> None:
    prices = _frame(market, cache)
    tz = cfg.markets[market.market_id].timezone
    start, end = dt.date.fromisoformat(row["start"]), dt.date.fromisoformat(row["end"])
    days = [d for d in prices.days(tz) if start <= d <= end]
    try:
        scored = {s.forecaster: s for s in forecast_scores(
            prices, cfg.markets[market.market_id], days, list(dict.fromkeys([forecaster, BASELINE]))
        )}
    except VppError as exc:
        row["forecast_error"] = f"{type(exc).__name__}: {exc}"
        return
    row["mae_default"] = round(scored[forecaster].mae, 3)
    row["mae_persistence"] = round(scored[BASELINE].mae, 3)
    row["mae_ratio"] = round(scored[forecaster].mae_vs_persistence, 4)
    row["forecast_days"] = scored[forecaster].days


def _targets(row: dict[str, Any], market: Market, cache: dict[tuple[str, ...], Path]) -> None:
    key = (market.market_id, market.fmt, market.file, market.zone or "", market.rt_file or "")
    columns = set(read_prices(cache[key]).frame.columns) if key in cache else set()
    row["has_rt_price"] = bool(columns & {"rt_price", "rt_price_up", "rt_price_down"})
    default, base = row.get("capture_default"), row.get("capture_persistence")
    row["capture_gain"] = _gain(default, base)
    gain = row["capture_gain"]
    row["target_12_capture"] = _met(gain, CAPTURE_GAIN_12) if row["has_rt_price"] else None
    row["target_13_capture"] = _met(gain, CAPTURE_GAIN_13)
    row["target_13_mae"] = _met(row.get("mae_ratio"), MAE_RATIO_13, at_most=True)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    """The rows as the README's table, then each market's error if any."""
    if rows:
        print(f"strategies: default {rows[0]['default_strategy']!r} (forecaster "
              f"{rows[0]['default_forecaster']!r}) vs {BASELINE!r}; parks moved onto each market: "
              f"{', '.join(p.rsplit('-' + rows[0]['market_id'], 1)[0] for p in rows[0]['park_ids'])}")
    print("| market | days | parks | capture default | capture persistence | gain | "
          "#12 gain >= 0.05 | #13 gain >= 0.10 | imbalance MWh default | imbalance MWh persistence | "
          "DA MAE default | DA MAE persistence | MAE ratio | #13 ratio <= 0.85 |")
    print("|" + "---|" * 14)
    for r in rows:
        print(
            f"| {r['market']} ({r['start']}..{r['end']}) | {_fmt(r['days'])} | {_fmt(r['parks'])} "
            f"| {_fmt(r['capture_default'])} | {_fmt(r['capture_persistence'])} "
            f"| {_fmt(r['capture_gain'])} "
            f"| {_fmt(r['target_12_capture']) if r['has_rt_price'] else 'n/a (no RT price)'} "
            f"| {_fmt(r['target_13_capture'])} "
            f"| {_fmt(r['imbalance_mwh_default'], 1)} | {_fmt(r['imbalance_mwh_persistence'], 1)} "
            f"| {_fmt(r['mae_default'], 2)} | {_fmt(r['mae_persistence'], 2)} "
            f"| {_fmt(r['mae_ratio'])} | {_fmt(r['target_13_mae'])} |"
        )
    for r in rows:
        for key in ("error", "forecast_error"):
            if r.get(key):
                print(f"{r['market']}: could not run: {r[key]}")
        for name in ("default", BASELINE):
            if r.get(f"fallback_days_{name}"):
                print(f"{r['market']}: {name} fell back to idle on {r[f'fallback_days_{name}']} day(s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench quality",
                                     description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help=f"the first {QUICK_DAYS} days of each period (the default)")
    size.add_argument("--full", action="store_true", help="the whole periods (a year for DK1, DE-LU)")
    parser.add_argument("--days", type=int, help="the first N days of each period")
    parser.add_argument("--markets", help=f"comma separated, from {', '.join(m.key for m in MARKETS)}"
                        " (a market id selects all its rows)")
    parser.add_argument("--parks", default=",".join(ISSUE_PARKS),
                        help="park ids of config/parks, comma separated, or 'all' "
                        f"[default: the issues' three, {','.join(ISSUE_PARKS)}]")
    parser.add_argument("--strategy", help="the strategy of the default row (instead of config/vpp.toml's)")
    parser.add_argument("--forecaster", help="the forecaster of the default row (instead of config/vpp.toml's)")
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes (default 2)")
    parser.add_argument("--out", type=Path, help="keep the sweep's folders here (and resume from "
                        "them); default: a temporary folder")
    parser.add_argument("--json", type=Path, help="write the rows as a JSON list to this file")
    args = parser.parse_args(argv)
    if args.days is not None and (args.full or args.days < 1):
        parser.error("--days N (N >= 1) is not combined with --full")
    days = None if args.full else (args.days or QUICK_DAYS)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    start = time.perf_counter()
    parks = None if args.parks == "all" else [p.strip() for p in args.parks.split(",")]
    rows = quality(select(args.markets), days, workers=args.workers, out=args.out, parks=parks,
                   strategy=args.strategy, forecaster=args.forecaster)
    print(f"strategy quality, {'full periods' if days is None else f'first {days} days'}, "
          f"{dt.datetime.now(dt.UTC):%Y-%m-%d}, {time.perf_counter() - start:.0f} s wall")
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

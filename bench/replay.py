"""Real-time cost inside a backtest of the example portfolio.

Run ``python -m bench.replay`` from the repository root after importing the
Chinese prices (``vpp data import --format cn-spot-96 --on-missing drop-day
data/prices/cn_province_a_spot_2025-05_2025-06_15min.csv -o
var/prices/cn-province-a.csv``). Options: ``--config config``, ``--prices
FILE``, ``--start``/``--end`` (delivery days), ``--save FILE.json`` to keep
the numbers, ``--compare FILE.json`` to print ratios against saved ones.

It runs :func:`vpp.backtest.run.simulate` (the chosen strategy only, no
baselines) and times every :meth:`strategies.real_time.RealTimePark.solve`
call -- one per park and interval, each a full real-time step (session
table, parameters, re-solve, results) -- plus the whole ``simulate``. It
also counts compiles (:attr:`RealTimePark.compiles`) and parks that fell back
to idle.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from strategies import real_time


def run(config: Path, prices: Path, start: dt.date, end: dt.date) -> dict[str, Any]:
    from market_replay.canonical import read_prices
    from strategies import StrategyOptions
    from vpp.backtest.run import BacktestOptions, simulate
    from vpp.config.loader import load_config
    from vpp.runtime.operator import MarketPortfolio

    cfg = load_config(config)
    frame = read_prices(prices)
    portfolio = MarketPortfolio.from_config(cfg, frame.market_id)
    days = [d for d in frame.days(portfolio.market.timezone) if start <= d <= end]
    if not days:
        raise SystemExit(f"{prices}: no complete day between {start} and {end}")
    settings = cfg.settings.backtest
    options = BacktestOptions(
        strategy=StrategyOptions.from_settings(settings).replace(
            reoptimise_every=1, rt_forecaster=None
        ),
        baselines=False,
    )

    steps: list[float] = []
    compiles: list[int] = []
    fallbacks = 0
    original_solve = real_time.RealTimePark.solve
    original_dispatch = real_time.RealTimeDispatcher.dispatch

    def timed_solve(self: real_time.RealTimePark, *args: Any, **kwargs: Any) -> Any:
        begin = time.perf_counter()
        try:
            return original_solve(self, *args, **kwargs)
        finally:
            steps.append(time.perf_counter() - begin)

    def counted_dispatch(self: real_time.RealTimeDispatcher, *args: Any, **kwargs: Any) -> Any:
        nonlocal fallbacks
        result = original_dispatch(self, *args, **kwargs)
        fallbacks += len(result.errors)
        if args and args[0] == len(self.index) - 1:
            compiles.extend(p.compiles for p in self.park_problems.values())
        return result

    real_time.RealTimePark.solve = timed_solve  # type: ignore[method-assign]
    real_time.RealTimeDispatcher.dispatch = counted_dispatch  # type: ignore[method-assign]
    try:
        begin = time.perf_counter()
        simulate(portfolio, frame, days, options)
        wall = time.perf_counter() - begin
    finally:
        real_time.RealTimePark.solve = original_solve  # type: ignore[method-assign]
        real_time.RealTimeDispatcher.dispatch = original_dispatch  # type: ignore[method-assign]
    array = np.array(steps)
    return {
        "days": len(days),
        "park_steps": len(steps),
        "step_mean_ms": 1e3 * float(array.mean()),
        "step_median_ms": 1e3 * float(np.median(array)),
        "step_p95_ms": 1e3 * float(np.percentile(array, 95)),
        "step_max_ms": 1e3 * float(array.max()),
        "real_time_total_s": float(array.sum()),
        "compiles": int(sum(compiles)),
        "parks_fallen_back": fallbacks,
        "simulate_s": wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.replay", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--config", type=Path, default=Path("config"))
    parser.add_argument("--prices", type=Path, default=Path("var/prices/cn-province-a.csv"))
    parser.add_argument("--start", default="2025-05-02")
    parser.add_argument("--end", default=None, help="last delivery day (default: --start)")
    parser.add_argument("--save", type=Path, default=None, help="write the numbers as JSON")
    parser.add_argument("--compare", type=Path, default=None, help="JSON from an earlier --save")
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    start = dt.date.fromisoformat(args.start)
    end = dt.date.fromisoformat(args.end) if args.end else start
    row = run(args.config, args.prices, start, end)
    before = json.loads(args.compare.read_text()) if args.compare else None
    print(f"Real-time steps in simulate(), example portfolio, {start} to {end}")
    for key, value in row.items():
        line = (
            f"  {key:<20} {value:>10.3f}"
            if isinstance(value, float)
            else f"  {key:<20} {value:>10}"
        )
        if before is not None and key in before:
            old = before[key]
            line += f"   before {old:>10.3f}" if isinstance(old, float) else f"   before {old:>10}"
            if isinstance(value, float) and value > 0:
                line += f"   speed-up x{old / value:.1f}"
        print(line)
    if args.save:
        args.save.write_text(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

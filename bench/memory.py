"""Peak memory of a backtest against its length: ``python -m bench memory [--days 3,10]``.

Each length runs in a fresh interpreter (``python -c``) so its peak RSS is its own:
the shipped Chinese slice, the example portfolio, the shipped strategy settings
with real time re-solved every 8 intervals and no baselines. Prints the peak
resident set size per run and its growth per extra day. Today the run holds every
telemetry reading and every day's plan in memory, so the peak grows with the days
(issue 16 asks for constant memory: per-day accounting streamed to disk).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import datetime as dt, json, resource, sys, time
from pathlib import Path
import structlog, logging
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
from market_replay.importers import import_prices
from strategies import StrategyOptions
from vpp.backtest.run import BacktestOptions, run_backtest
from vpp.config import load_config
from vpp.runtime.operator import MarketPortfolio
repo = Path(sys.argv[1]); days = int(sys.argv[2])
cfg = load_config(repo / "config")
frame = import_prices(repo / "data/prices/cn_province_a_spot_2025-05_2025-06_15min.csv",
                      "cn-spot-96", cfg.markets["cn-province-a"], policy="drop-day").prices
portfolio = MarketPortfolio.from_config(cfg, "cn-province-a")
first = dt.date(2025, 5, 12)
run = [d for d in frame.days("Asia/Shanghai") if d >= first][:days]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
run_backtest(portfolio, frame, run, BacktestOptions(StrategyOptions(reoptimise_every=8, scenarios=3), baselines=False))
print(json.dumps({"days": len(run), "wall_s": time.perf_counter() - start, "before_mb": before / 1024,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(days: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(REPO), str(days)],
        capture_output=True, text=True, check=True, cwd=REPO,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench memory", description=__doc__.splitlines()[0])
    parser.add_argument("--days", default="3,10", help="run lengths, comma separated")
    args = parser.parse_args(argv)
    rows = [measure(int(d)) for d in args.days.split(",")]
    print("Backtest peak RSS by run length (example portfolio, Chinese 15-min prices)")
    for row in rows:
        print(f"  {row['days']:>3.0f} days: peak {row['peak_mb']:7.1f} MB (after imports and "
              f"data {row['before_mb']:6.1f} MB), {row['wall_s']:6.1f} s")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        per_day = (b["peak_mb"] - a["peak_mb"]) / max(b["days"] - a["days"], 1)
        print(f"  growth {per_day:.1f} MB per extra day; ratio {b['peak_mb'] / a['peak_mb']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

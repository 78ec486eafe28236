"""``python -m bench [strategy|backtest] [options]``: benchmarks that print numbers and ratios.

* ``strategy`` (default): model build/compile/solve against direct highspy (:mod:`bench.strategy`);
* ``backtest``: wall time per simulated day and its growth (:mod:`bench.backtest`);
* ``forecast``: day-ahead MAE of ``gbm`` over persistence's per market (:mod:`bench.forecast`);
* ``multi_energy``: the oilfield's plan with and without its heat assets, and 100
  electrolyser parks as MILP against the LP relaxation (:mod:`bench.multi_energy`).
"""

import sys

from bench import backtest, forecast, multi_energy, strategy

args = sys.argv[1:]
if args and args[0] in ("strategy", "backtest", "forecast", "multi_energy"):
    which, args = args[0], args[1:]
else:
    which = "strategy"
modules = {
    "strategy": strategy, "backtest": backtest, "forecast": forecast, "multi_energy": multi_energy,
}
sys.exit(modules[which].main(args))

"""``python -m bench [strategy|backtest|forecast|multi_energy|scale|memory|quality] [options]``: benchmarks that print numbers and ratios.

* ``strategy`` (default): model build/compile/solve against direct highspy (:mod:`bench.strategy`);
* ``backtest``: wall time per simulated day and its growth (:mod:`bench.backtest`);
* ``forecast``: day-ahead MAE of ``arx`` and ``gbm`` over persistence's per market (:mod:`bench.forecast`);
* ``multi_energy``: the oilfield's plan with and without its heat assets, and 100
  electrolyser parks as MILP against the LP relaxation (:mod:`bench.multi_energy`);
* ``scale``: 100 parks x 10 batteries on 1 and 2 worker processes against direct highspy,
  and sweep throughput on a LocalCluster of 1 and 2 workers (:mod:`bench.scale`);
* ``memory``: peak RSS of a backtest of 3 and of 10 days (:mod:`bench.memory`);
* ``quality``: per shared market, the default strategy's flexibility capture and imbalance
  next to persistence's, and the forecasters' day-ahead MAE (:mod:`bench.quality`).
"""

import sys

from bench import backtest, forecast, memory, multi_energy, quality, scale, strategy

args = sys.argv[1:]
if args and args[0] in ("strategy", "backtest", "forecast", "multi_energy", "scale", "memory",
                            "quality"):
    which, args = args[0], args[1:]
else:
    which = "strategy"
modules = {
    "strategy": strategy, "backtest": backtest, "forecast": forecast, "multi_energy": multi_energy,
    "scale": scale,
    "memory": memory,
    "quality": quality,
}
sys.exit(modules[which].main(args))

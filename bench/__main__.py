"""``python -m bench [strategy|backtest] [options]``: benchmarks that print numbers and ratios.

* ``strategy`` (default): model build/compile/solve against direct highspy (:mod:`bench.strategy`);
* ``backtest``: wall time per simulated day and its growth (:mod:`bench.backtest`).
"""

import sys

from bench import backtest, strategy

args = sys.argv[1:]
if args and args[0] in ("strategy", "backtest"):
    which, args = args[0], args[1:]
else:
    which = "strategy"
sys.exit((backtest if which == "backtest" else strategy).main(args))

"""The runtime: everything the daemon and the backtest share.

The operator (plan, bid, awards, dispatch), devices, recording, the job plan
of a market day, the clocks, metering and settlement -- one implementation of
each. The two drivers, :mod:`vpp.daemon` and :mod:`vpp.backtest`, build on it
and never import each other; the runtime imports neither of them nor the CLI.
"""

"""The backtest driver: replays history through the runtime (``vpp backtest``).

Replay versions of the three seams -- the clock, the exchange and the
devices -- run the same operator as the daemon; see ``docs/architecture.md``.
"""

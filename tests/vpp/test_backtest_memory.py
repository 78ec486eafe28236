"""A long backtest's memory does not grow with its days (loosely: issue 16).

Each run is a fresh interpreter (:func:`bench.memory.measure`), so its peak RSS is
its own. Before each day's real-time models were released when its dispatch
ended, the peak grew by about 16 MB a day on this portfolio; now about 2.
"""

from __future__ import annotations

import pytest

from bench.memory import measure


@pytest.mark.slow
def test_six_days_peak_within_a_small_margin_of_two() -> None:
    short, long = measure(2), measure(6)
    assert short["days"] == 2
    assert long["days"] == 6
    # 4 more days: at the old 16 MB a day that is 64 MB; allow 30 MB
    assert long["peak_mb"] - short["peak_mb"] < 30.0, (short, long)

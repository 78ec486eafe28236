"""The engine's recovery blocks are the strategy's, on DST days too."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from strategies.process import block_starts
from vpp.runtime.operator import recovery_block
from vpp.timeutil import day_intervals_utc


@pytest.mark.parametrize(
    ("day", "timezone", "window_h"),
    [
        (dt.date(2022, 3, 13), "America/Chicago", 6),
        (dt.date(2022, 11, 6), "America/Chicago", 6),
        (dt.date(2021, 3, 28), "Europe/Berlin", 4),
        (dt.date(2021, 10, 31), "Europe/Berlin", 4),
        (dt.date(2025, 5, 2), "Asia/Shanghai", 4),
    ],
)
def test_block_boundaries_agree(day: dt.date, timezone: str, window_h: float) -> None:
    index = day_intervals_utc(day, timezone, 15)
    ids = np.array([recovery_block(t.to_pydatetime(), timezone, window_h) for t in index])
    changes = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    np.testing.assert_array_equal(changes, block_starts(index, timezone, window_h))

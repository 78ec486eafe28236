"""Fixtures for the adapter tests (helpers live in adapter_helpers.py)."""

from __future__ import annotations

import pytest
from adapter_helpers import ManualClock, WallClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def wall_clock() -> WallClock:
    return WallClock()

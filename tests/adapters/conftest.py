"""Fixtures for the adapter tests (helpers live in adapter_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog
from adapter_helpers import ManualClock, WallClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def wall_clock() -> WallClock:
    return WallClock()


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """The CLI configures structlog onto the runner's stream; undo it after each test."""
    yield
    structlog.reset_defaults()

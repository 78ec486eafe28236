"""Fixtures for every test under tests/vpp."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """Start and end each test with structlog's defaults: earlier CLI tests may leave it
    writing to a closed runner stream."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()

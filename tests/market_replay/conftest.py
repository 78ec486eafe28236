"""Fixtures for market data tests: the shared real data and the repo's market configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import structlog

from tests.market_replay._support import REPO


@pytest.fixture(autouse=True)
def _reset_structlog():
    """CLI runs configure structlog onto the runner's streams; undo it after each test."""
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def shared_prices() -> Path:
    """``$VPP_SHARED_DATA/prices``, else ``<repo>/../shared/data/prices``; skip if absent
    (fail when ``CI`` is set)."""
    env = os.environ.get("VPP_SHARED_DATA")
    base = Path(env) if env else REPO.parent / "shared" / "data"
    folder = base / "prices"
    if not folder.is_dir():
        message = f"shared price data not found at {folder} (set VPP_SHARED_DATA)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder

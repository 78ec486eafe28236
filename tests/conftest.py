"""Shared fixtures: the repository's config, the shared real data, isolated stores."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"


def shared_data_dir() -> Path | None:
    """The shared real-data folder (``$VPP_SHARED_DATA`` or ``../shared/data``), if present."""
    candidate = Path(os.environ.get("VPP_SHARED_DATA", REPO.parent / "shared" / "data"))
    return candidate if candidate.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    """Path to the shared data; skips on a user's machine without it, fails in CI."""
    path = shared_data_dir()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("shared data folder not found in CI (set VPP_SHARED_DATA)")
        pytest.skip("shared data folder not found (set VPP_SHARED_DATA)")
    return path


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    """A private copy of the example config folder whose data paths still resolve."""
    target = tmp_path / "project" / "config"
    shutil.copytree(CONFIG, target)
    # Park files point at ../../data; link the shipped data next to the copy.
    (tmp_path / "project" / "data").symlink_to(REPO / "data", target_is_directory=True)
    return target


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the developer's var/vpp.db from a test."""
    monkeypatch.setenv("VPP_DATABASE_URL", f"sqlite:///{tmp_path / 'test.db'}")


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """CLI tests configure structlog onto CliRunner's streams, which close after the run:
    start and end every test from structlog's defaults so no test logs into a closed file."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()

"""Shared fixtures: the repository's config, the shared real data, isolated stores."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc
import structlog
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

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


POSTGRES_ENV = "VPP_TEST_POSTGRES_URL"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database of its own for one test, dropped afterwards.

    The server comes from ``$VPP_TEST_POSTGRES_URL``
    (``postgresql://user:password@127.0.0.1:5432/postgres``; the role needs
    CREATEDB; ``.ci/postgres-up`` starts one). Without it the test is skipped
    on a user's machine and fails in CI. Yields a ``postgresql+psycopg://`` URL.
    """
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        if os.environ.get("CI"):
            pytest.fail(f"{POSTGRES_ENV} is not set in CI (.ci/run starts a server with .ci/postgres-up)")
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_ENV} (e.g. from .ci/postgres-up)")
    admin_url = make_url(server).set(drivername="postgresql+psycopg")
    name = f"vpp_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        _drop_database(admin, name)
        admin.dispose()


def _drop_database(admin: Any, name: str) -> None:
    """Drop a test database, waiting out the server's own sessions on it.

    WITH (FORCE) ends a pool connection a failed test left open; a session of
    another role (an autovacuum worker the server started on the new
    database) cannot be ended by the test role and refuses the drop
    (InsufficientPrivilege / ObjectInUse) until it finishes, within seconds.
    """
    deadline = time.monotonic() + 30.0
    while True:
        try:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except sqlalchemy.exc.DBAPIError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The URL of an empty store, once on SQLite and once on PostgreSQL (test ids
    ``[sqlite]``/``[postgres]``), also set as ``VPP_DATABASE_URL`` for the CLI."""
    if request.param == "postgres":
        url = str(request.getfixturevalue("postgres_url"))
    else:
        url = f"sqlite:///{tmp_path / 'test.db'}"
    monkeypatch.setenv("VPP_DATABASE_URL", url)
    return url

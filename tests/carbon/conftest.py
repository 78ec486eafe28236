"""Fixtures for the carbon ledger tests: a real SQLite file with the example parks enrolled."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import CONFIG
from vpp.config import load_config
from vpp.store import Store

EXAMPLE = CONFIG / "certificates.example.csv"


def dump(db: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of a SQLite file, read past the store, for before/after checks."""
    with sqlite3.connect(db) as connection:
        tables = [
            r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        return {
            t: sorted(map(tuple, connection.execute(f'SELECT * FROM "{t}"')), key=repr)
            for t in tables
        }


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def store(db: Path) -> Store:
    """A store file with the three example parks enrolled."""
    cfg = load_config(CONFIG)
    store = Store(f"sqlite:///{db}")
    store.enroll((park, cfg.park_files[park_id]) for park_id, park in cfg.parks.items())
    return store

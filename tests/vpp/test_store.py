"""Store: enrolment is all-or-nothing; timestamps are tz-aware.

Every test runs on SQLite and on PostgreSQL (``store_url``: ids ``[sqlite]``
and ``[postgres]``; the PostgreSQL ones need ``VPP_TEST_POSTGRES_URL``).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from vpp.cli import app
from vpp.store import Store, TelemetryRecord

runner = CliRunner()


def _enrolled(config: Path) -> list[str]:
    result = runner.invoke(app, ["parks", "--config", str(config)])
    assert result.exit_code == 0, result.output
    return sorted(
        line.split("│")[1].strip()
        for line in result.output.splitlines()
        if line.startswith("│") and line.split("│")[3].strip() == "grid"
    )


def test_enroll_folder_and_list(config_copy: Path, store_url: str) -> None:
    result = runner.invoke(app, ["enroll", "--config", str(config_copy)])
    assert result.exit_code == 0, result.output
    assert "enrolled 4 park(s)" in result.output
    assert _enrolled(config_copy) == [
        "daqing-oilfield", "houston-ship-channel", "jinan-north", "qingdao-logistics"
    ]


def test_broken_file_leaves_store_unchanged(config_copy: Path, tmp_path: Path, store_url: str) -> None:
    parks = config_copy / "parks"
    first = runner.invoke(app, ["enroll", "--config", str(config_copy), str(parks / "jinan-north.toml")])
    assert first.exit_code == 0, first.output
    before = _enrolled(config_copy)
    # A folder with two good parks (one changed) and one broken park.
    batch = tmp_path / "batch"
    batch.mkdir()
    text = (parks / "jinan-north.toml").read_text(encoding="utf-8")
    (batch / "jinan-north.toml").write_text(text.replace("Jinan North Industrial Park", "Renamed"), encoding="utf-8")
    shutil.copy(parks / "qingdao-logistics.toml", batch / "qingdao-logistics.toml")
    (batch / "broken.toml").write_text(text.replace('id = "jinan-north"', 'id = "x"').replace("power_kw = 2000", "power_kw = -1"), encoding="utf-8")
    # Relative data paths are resolved against each file's folder: point them back.
    for f in batch.glob("*.toml"):
        f.write_text(f.read_text(encoding="utf-8").replace("../../data", str(config_copy.parent / "data")), encoding="utf-8")
    result = runner.invoke(app, ["enroll", "--config", str(config_copy), str(batch)])
    assert result.exit_code == 1
    assert "broken.toml: assets[0].power_kw = -1" in result.output
    assert _enrolled(config_copy) == before
    store = Store(store_url)
    assert store.park_config("jinan-north").name == "Jinan North Industrial Park"


def test_reenroll_replaces_assets(config_copy: Path, store_url: str) -> None:
    park_file = config_copy / "parks" / "jinan-north.toml"
    assert runner.invoke(app, ["enroll", "--config", str(config_copy), str(park_file)]).exit_code == 0
    text = park_file.read_text(encoding="utf-8")
    cut = text.index('[[assets]]\nid = "pv-roof"')
    park_file.write_text(text[:cut], encoding="utf-8")
    assert runner.invoke(app, ["enroll", "--config", str(config_copy), str(park_file)]).exit_code == 0
    store = Store(store_url)
    assert [a.id for a in store.assets("jinan-north")] == ["arc-furnace", "bess-1"]


def test_naive_timestamp_cannot_be_stored(store_url: str) -> None:
    store = Store(store_url)
    record = TelemetryRecord(
        park_id="p", asset_id="a", measured_at=dt.datetime(2025, 5, 1, 12), power_kw=1.0,
        soc=None, available=True,
    )
    with pytest.raises(Exception, match="naive datetime"), store.session() as session:
        session.add(record)


def test_timestamps_round_trip_as_utc(store_url: str) -> None:
    store = Store(store_url)
    local = dt.datetime(2025, 5, 1, 20, 15, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with store.session() as session:
        session.add(TelemetryRecord(park_id="p", asset_id="a", measured_at=local, power_kw=1.0, soc=0.5, available=True))
    with store.session() as session:
        (back,) = session.exec(select(TelemetryRecord)).all()
    assert back.measured_at == local
    assert back.measured_at.tzinfo == dt.UTC


def test_database_url_password_hidden() -> None:
    from sqlalchemy.engine import make_url

    assert "secret" not in make_url("postgresql://u:secret@h/db").render_as_string(hide_password=True)


def test_a_bare_postgresql_url_uses_psycopg_3(postgres_url: str) -> None:
    """``postgresql://`` would be psycopg2 to SQLAlchemy, which vpp does not install."""
    bare = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    store = Store(bare)
    assert store.engine.dialect.driver == "psycopg"
    assert store.parks() == []
    store.close()

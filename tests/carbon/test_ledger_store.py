"""The ledger in the store: one transaction per import and per retirement, one retirement each."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlmodel import SQLModel

from tests.carbon.conftest import EXAMPLE, dump
from vpp import store as store_module
from vpp.carbon import Instrument, read_certificates
from vpp.errors import InputError, StoreError, StoreSchemaError
from vpp.store import Store, upgrade_store


def gec(
    ident: str, park: str | None = "jinan-north", quantity: float = 10, vintage: int = 2025
) -> Instrument:
    return Instrument(
        ident, "gec", vintage, quantity, price_per_unit=4.0, source="test", park_id=park
    )


def ccer(ident: str, park: str | None = "jinan-north", quantity: float = 5) -> Instrument:
    return Instrument(
        ident, "ccer", 2024, quantity, price_per_unit=70.0, source="test", park_id=park
    )


def test_import_and_query(store: Store) -> None:
    written = store.add_instruments(read_certificates(EXAMPLE))
    assert written == {"gec": 3, "green_power": 1, "ccer": 2}
    entries = store.instruments()
    assert [e.instrument for e in entries] == sorted(read_certificates(EXAMPLE), key=lambda i: i.id)
    assert all(not e.retired and e.imported_at.tzinfo is not None for e in entries)
    assert {e.instrument.id for e in store.instruments(kind="ccer")} == {
        "EX-CCER-2024-0001",
        "EX-CCER-2025-0001",
    }
    assert {e.instrument.id for e in store.instruments(vintage=2024)} == {"EX-CCER-2024-0001"}
    assert {e.instrument.id for e in store.instruments(park_id="qingdao-logistics")} == {
        "EX-GP-2025-0001",
        "EX-CCER-2025-0001",
    }
    hourly = next(e.instrument for e in entries if e.instrument.id == "EX-GEC-2025-000002")
    assert hourly.delivery_start == dt.datetime(2025, 5, 9, 16, tzinfo=dt.UTC)


def test_duplicate_import_refused_whole_nothing_written(store: Store, db: Path) -> None:
    store.add_instruments([gec("G1"), gec("G2")])
    before = dump(db)
    with pytest.raises(
        InputError, match=r"instrument id\(s\) 'G2' already in the ledger .*nothing imported"
    ):
        store.add_instruments([gec("G3"), gec("G2"), ccer("C1")])
    with pytest.raises(InputError, match=r"'G4' given more than once"):
        store.add_instruments([gec("G4"), gec("G4")])
    assert dump(db) == before


def test_import_naming_a_park_not_enrolled_is_refused(store: Store, db: Path) -> None:
    before = dump(db)
    with pytest.raises(
        InputError, match=r"park\(s\) 'jinan-south' not enrolled \(named by instrument\(s\) 'G2'\)"
    ):
        store.add_instruments([gec("G1"), gec("G2", park="jinan-south")])
    assert dump(db) == before


def test_retire_records_the_retirement(store: Store) -> None:
    store.add_instruments([gec("G1"), gec("G2", park=None), ccer("C1")])
    retired = store.retire("jinan-north", "2025-05", ["G1", "G2", "C1"], note="May")
    assert [(e.instrument.id, e.retirement.period if e.retirement else None) for e in retired] == [
        ("G1", "2025-05"),
        ("G2", "2025-05"),
        ("C1", "2025-05"),
    ]
    assert retired[2].retirement is not None
    assert (retired[2].retirement.quantity, retired[2].retirement.unit) == (5, "tCO2")
    assert {e.instrument.id for e in store.instruments(retired=True)} == {"G1", "G2", "C1"}
    assert store.instruments(retired=False) == []
    # An unassigned instrument, once retired, shows under the park it went to.
    assert {e.instrument.id for e in store.instruments(park_id="jinan-north")} == {"G1", "G2", "C1"}
    assert [
        e.instrument.id for e in store.retirements("jinan-north", first="2025-05", last="2025-05")
    ] == ["C1", "G1", "G2"]
    assert store.retirements("jinan-north", first="2025-06") == []
    assert store.retirements("qingdao-logistics") == []


def test_retirements_filter_by_period_range(store: Store) -> None:
    store.add_instruments([gec("G1"), gec("G2"), gec("G3")])
    for ident, period in (("G1", "2025-01"), ("G2", "2025-03"), ("G3", "2025-12")):
        store.retire("jinan-north", period, [ident])
    assert [e.instrument.id for e in store.retirements(first="2025-02", last="2025-12")] == [
        "G2",
        "G3",
    ]
    with pytest.raises(InputError, match="first period 2025-12 is after last period 2025-02"):
        store.retirements(first="2025-12", last="2025-02")
    with pytest.raises(InputError, match=r"last = '2025-2'"):
        store.retirements(last="2025-2")


def test_double_retirement_refused_naming_it_and_ledger_unchanged(store: Store, db: Path) -> None:
    store.add_instruments([gec("G1", park=None), gec("G2", park=None)])
    store.retire("jinan-north", "2025-05", ["G1"])
    before = dump(db)
    with pytest.raises(InputError) as caught:
        store.retire("qingdao-logistics", "2025-06", ["G2", "G1"])
    message = str(caught.value)
    assert "instrument 'G1' is already retired, to park 'jinan-north' for 2025-05" in message
    assert message.endswith("an instrument is retired once; nothing retired")
    assert dump(db) == before
    assert not next(e for e in store.instruments() if e.instrument.id == "G2").retired


@pytest.mark.parametrize(
    ("park", "period", "ids", "message"),
    [
        ("jinan-north", "2025-05", ["G1", "NOPE"], r"instrument\(s\) 'NOPE' not in the ledger"),
        (
            "jinan-north",
            "2025-05",
            ["G1", "Q1"],
            r"instrument 'Q1' belongs to park 'qingdao-logistics', not 'jinan-north'",
        ),
        ("jinan-south", "2025-05", ["G1"], r"park 'jinan-south' is not enrolled"),
        ("jinan-north", "2025-5", ["G1"], r"period = '2025-5': a month YYYY-MM"),
        ("jinan-north", "2025-13", ["G1"], r"period = '2025-13'"),
        (
            "jinan-north",
            "2024-12",
            ["G1"],
            r"instrument 'G1': vintage 2025 is after period 2024-12",
        ),
        ("jinan-north", "2025-05", ["G1", "G1"], r"'G1' given more than once"),
        ("jinan-north", "2025-05", [], r"no instrument ids given"),
    ],
)
def test_a_failing_retirement_leaves_every_id_unretired(
    store: Store, db: Path, park: str, period: str, ids: list[str], message: str
) -> None:
    store.add_instruments([gec("G1"), gec("Q1", park="qingdao-logistics")])
    before = dump(db)
    with pytest.raises(InputError, match=message):
        store.retire(park, period, ids)
    assert dump(db) == before
    assert store.instruments(retired=True) == []


def test_a_retirement_the_check_missed_is_refused_by_the_database(
    db: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two Store objects on one file; the second's check reads before the first commits."""
    store.add_instruments([gec("G1"), gec("G2")])
    other = Store(f"sqlite:///{db}")
    store.retire("jinan-north", "2025-05", ["G1"])
    before = dump(db)
    real = store_module._retirements_of
    calls = 0

    def stale_once(session: object, ids: list[str]) -> list[object]:
        nonlocal calls
        calls += 1
        return [] if calls == 1 else real(session, ids)  # type: ignore[arg-type]

    monkeypatch.setattr(store_module, "_retirements_of", stale_once)
    with pytest.raises(
        InputError, match=r"instrument 'G1' is already retired, to park 'jinan-north' for 2025-05"
    ):
        other.retire("jinan-north", "2025-06", ["G2", "G1"])
    assert calls == 2  # the check was bypassed; the unique constraint refused the insert
    assert dump(db) == before


def test_concurrent_double_retirement_lands_once(
    db: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two threads, two Store objects, one SQLite file: both pass the check, one retirement lands."""
    store.add_instruments([gec("G1")])
    stores = [Store(f"sqlite:///{db}"), Store(f"sqlite:///{db}")]
    both_checked = threading.Barrier(2, timeout=10)
    real = store_module._retirements_of

    waited: set[str] = set()

    def check_then_wait(session: object, ids: list[str]) -> list[object]:
        found = real(session, ids)  # type: ignore[arg-type]
        name = threading.current_thread().name
        # Wait after the check only, not after the re-read that follows a refusal.
        if name.startswith("retire-") and name not in waited:
            waited.add(name)
            both_checked.wait()
        return found  # type: ignore[return-value]

    monkeypatch.setattr(store_module, "_retirements_of", check_then_wait)
    outcomes: dict[str, object] = {}

    def attempt(index: int) -> None:
        try:
            outcomes[f"s{index}"] = stores[index].retire(
                "jinan-north", f"2025-0{index + 5}", ["G1"]
            )
        except (InputError, StoreError) as exc:
            outcomes[f"s{index}"] = exc

    threads = [threading.Thread(target=attempt, args=(i,), name=f"retire-{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    errors = [o for o in outcomes.values() if isinstance(o, Exception)]
    assert len(outcomes) == 2
    assert len(errors) == 1, outcomes
    # The loser waits for the winner's lock, then the unique constraint refuses it (named);
    # should SQLite refuse the lock instead, that is a StoreError. Never do both land.
    loser = errors[0]
    if isinstance(loser, InputError):
        assert "instrument 'G1' is already retired, to park 'jinan-north'" in str(loser)
    else:
        assert isinstance(loser, StoreError)
        assert "locked" in str(loser)
    rows = dump(db)["retirements"]
    assert len(rows) == 1


def test_an_older_store_upgrades_with_the_ledger_tables_added(tmp_path: Path) -> None:
    """A var/vpp.db written before the ledger (no instruments/retirements tables, and from
    before Alembic) is refused until ``vpp db upgrade``, which adds them and keeps the rest."""
    db = tmp_path / "old.db"
    old_tables = [
        t for t in SQLModel.metadata.sorted_tables if t.name not in ("instruments", "retirements")
    ]
    first = Store(f"sqlite:///{db}")
    with sqlite3.connect(db) as connection:
        connection.execute('DROP TABLE "alembic_version"')
        connection.execute('DROP TABLE "retirements"')
        connection.execute('DROP TABLE "instruments"')
        connection.execute(
            "INSERT INTO parks VALUES ('jinan-north', 'Jinan', 'cn-province-a', 'Asia/Shanghai', 1, 1, 'x', '{}', '2025-01-01 00:00:00')"
        )
    first.engine.dispose()
    with sqlite3.connect(db) as connection:
        names = {
            r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    assert names == {t.name for t in old_tables}
    with pytest.raises(StoreSchemaError, match="vpp db upgrade"):
        Store(f"sqlite:///{db}")
    upgrade_store(f"sqlite:///{db}")
    reopened = Store(f"sqlite:///{db}")
    assert [p.id for p in reopened.parks()] == ["jinan-north"]
    reopened.add_instruments([gec("G1")])
    assert reopened.retire("jinan-north", "2025-05", ["G1"])[0].retired

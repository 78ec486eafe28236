"""``vpp carbon``: import, retire and list through the command line; errors are one line, exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.carbon.conftest import EXAMPLE, dump
from tests.conftest import CONFIG
from vpp.cli import app
from vpp.store import Store

runner = CliRunner()


def vpp(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["--log-level", "ERROR", *args])


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


def test_import_retire_and_list(store: Store, db: Path) -> None:
    url = f"sqlite:///{db}"
    result = vpp("carbon", "import-certificates", str(EXAMPLE), "--store", url)
    assert result.exit_code == 0, result.output
    assert "imported 6 instrument(s) (3 GEC, 1 green power, 2 CCER)" in result.stdout
    result = vpp(
        "carbon", "retire", "--park", "jinan-north", "--period", "2025-05",
        "--id", "EX-GEC-2025-000001", "--id", "EX-GEC-2025-000003", "--id", "EX-CCER-2024-0001",
        "--note", "May scope 2", "--store", url,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "retired 3 instrument(s) to jinan-north for 2025-05: 2 GEC, 1 CCER: 800 MWh, 200 tCO2"
        in result.stdout
    )
    result = vpp("carbon", "ledger", "--park", "jinan-north", "--json", "--store", url)
    assert result.exit_code == 0, result.output
    rows = {row["id"]: row for row in json.loads(result.stdout)}
    # jinan-north's own instruments plus the unassigned one it retired.
    assert set(rows) == {
        "EX-GEC-2025-000001",
        "EX-GEC-2025-000002",
        "EX-GEC-2025-000003",
        "EX-CCER-2024-0001",
    }
    assert rows["EX-GEC-2025-000003"]["park_id"] is None
    assert rows["EX-GEC-2025-000003"]["retirement"]["park_id"] == "jinan-north"
    assert rows["EX-CCER-2024-0001"]["retirement"]["note"] == "May scope 2"
    assert rows["EX-GEC-2025-000002"]["retirement"] is None
    assert rows["EX-GEC-2025-000002"]["delivery_start"] == "2025-05-09T16:00:00+00:00"
    result = vpp("carbon", "ledger", "--store", url)
    assert result.exit_code == 0, result.output
    assert "EX-GP-2025-0001" in result.stdout
    assert "2025-05-10T00:00+08:00" in result.stdout  # hours shown in the park's time zone
    assert "6 instrument(s), 3 retired" in result.stdout


def test_the_config_store_is_used_without_store(
    store: Store, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VPP_DATABASE_URL", f"sqlite:///{db}")
    result = vpp("carbon", "import-certificates", str(EXAMPLE), "--config", str(CONFIG))
    assert result.exit_code == 0, result.output
    assert len(store.instruments()) == 6


def test_errors_are_one_line_exit_1_and_change_nothing(
    store: Store, db: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{db}"
    assert vpp("carbon", "import-certificates", str(EXAMPLE), "--store", url).exit_code == 0
    assert vpp(
        "carbon", "retire", "--park", "jinan-north", "--period", "2025-05",
        "--id", "EX-GEC-2025-000001", "--store", url,
    ).exit_code == 0  # fmt: skip
    before = dump(db)
    cases = {
        "already in the ledger": ["carbon", "import-certificates", str(EXAMPLE)],
        "instrument 'EX-GEC-2025-000001' is already retired, to park 'jinan-north' for 2025-05": [
            "carbon", "retire", "--park", "jinan-north", "--period", "2025-06",
            "--id", "EX-GEC-2025-000002", "--id", "EX-GEC-2025-000001",
        ],
        "instrument(s) 'NOPE' not in the ledger": [
            "carbon", "retire", "--park", "jinan-north", "--period", "2025-06",
            "--id", "EX-GEC-2025-000002", "--id", "NOPE",
        ],
        "park 'nowhere' is not enrolled": [
            "carbon", "retire", "--park", "nowhere", "--period", "2025-06", "--id", "EX-GEC-2025-000003",
        ],
        "period = '2025-6': a month YYYY-MM": [
            "carbon", "retire", "--park", "jinan-north", "--period", "2025-6", "--id", "EX-GEC-2025-000002",
        ],
        "--kind 'rec': unknown; choose one of gec, green_power, ccer": ["carbon", "ledger", "--kind", "rec"],
    }  # fmt: skip
    for expected, args in cases.items():
        result = vpp(*args, "--store", url)
        assert result.exit_code == 1, (args, result.output)
        assert expected in one_error_line(result.stderr), result.stderr
    assert dump(db) == before


def test_a_bad_file_lists_each_row_then_a_count(store: Store, db: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "id,kind,vintage,quantity,price_per_unit,currency,source\n"
        "G1,gec,2025,10,4,CNY,ok\n"
        "G2,gec,2025,-3,4,CNY,ok\n"
        "C1,ccer,2025,5,70,CNY,\n",
        encoding="utf-8",
    )
    before = dump(db)
    result = vpp("carbon", "import-certificates", str(bad), "--store", f"sqlite:///{db}")
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"{bad}:3: quantity = '-3': must be > 0 [MWh]",
        f"{bad}:4: source = '': empty; where the instrument comes from (registry, contract, seller)",
        "error: 2 config error(s)",
    ]
    assert dump(db) == before
    missing = vpp(
        "carbon", "import-certificates", str(tmp_path / "nope.csv"), "--store", f"sqlite:///{db}"
    )
    assert missing.exit_code == 1
    assert "nope.csv" in one_error_line(missing.stderr)


def test_usage_errors_exit_2(store: Store, db: Path) -> None:
    result = vpp("carbon", "retire", "--park", "jinan-north", "--store", f"sqlite:///{db}")
    assert result.exit_code == 2  # --period and --id are required: the parser's message


def test_as_a_real_process_a_double_retirement_is_one_stderr_line(store: Store, db: Path) -> None:
    url = f"sqlite:///{db}"
    command = [
        sys.executable,
        "-c",
        "from vpp.cli import main; main()",
        "--log-level",
        "ERROR",
        "carbon",
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args, "--store", url],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    assert run("import-certificates", str(EXAMPLE)).returncode == 0
    retire = (
        "retire",
        "--park",
        "qingdao-logistics",
        "--period",
        "2025-05",
        "--id",
        "EX-CCER-2025-0001",
    )
    first = run(*retire)
    assert first.returncode == 0, first.stderr
    assert (
        "retired 1 instrument(s) to qingdao-logistics for 2025-05: 1 CCER: 0 MWh, 150 tCO2"
        in first.stdout
    )
    second = run(*retire)
    assert second.returncode == 1
    line = one_error_line(second.stderr)
    assert (
        "instrument 'EX-CCER-2025-0001' is already retired, to park 'qingdao-logistics' for 2025-05"
        in line
    )

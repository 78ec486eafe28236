"""Golden numbers: the demo week's backtest and one `vpp plan` day, pinned across refactors.

The redesign (one runtime, asset plug-ins) changes structure, not behaviour: every
revenue, energy and count of ``make demo``'s backtest (``summary.json``, minus
timings) and the column totals of its CSVs, and the schedule of one planned day,
must stay equal within 1e-9 relative. The numbers live in ``tests/golden/``.

To re-pin after an *intended* change of behaviour, run
``VPP_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py`` and say why in the
commit message.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden"
SHIPPED = REPO / "data" / "prices" / "cn_province_a_spot_2025-05_2025-06_15min.csv"
VPP = [sys.executable, "-c", "from vpp.cli import main; main()"]
REL = 1e-9
# Wall-clock numbers vary run to run; everything else is behaviour.
TIMINGS = {"solve_time_s", "wall_time_s", "build_s", "compile_s", "solve_s", "total_s"}


def _run(args: list[str], cwd: Path) -> None:
    result = subprocess.run(
        [*VPP, *args], cwd=cwd, capture_output=True, text=True, timeout=900,
        env={**os.environ, "VPP_DATABASE_URL": f"sqlite:///{cwd / 'vpp.db'}"},
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped config and data in a scratch folder, with the demo's prices imported."""
    root = tmp_path_factory.mktemp("golden")
    shutil.copytree(REPO / "config", root / "config")
    (root / "data").symlink_to(REPO / "data", target_is_directory=True)
    _run(
        ["data", "import", "--format", "cn-spot-96", "--on-missing", "drop-day",
         "--config", "config", str(SHIPPED), "-o", "prices.csv"],
        root,
    )
    return root


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def _csv_totals(path: Path) -> dict[str, float]:
    frame = pd.read_csv(path, comment="#")
    numeric = frame.select_dtypes("number")
    return {f"{path.name}:{col}": float(numeric[col].sum()) for col in numeric.columns} | {
        f"{path.name}:rows": float(len(frame))
    }


def _compare(name: str, actual: dict[str, Any]) -> None:
    path = GOLDEN / f"{name}.json"
    if os.environ.get("VPP_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        pytest.skip(f"re-pinned {path}")
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert sorted(actual) == sorted(expected), "the set of golden keys changed"
    wrong = []
    for key, want in expected.items():
        got = actual[key]
        if isinstance(want, float) and isinstance(got, (int, float)):
            if math.isnan(want):
                ok = math.isnan(got)
            else:
                ok = math.isclose(got, want, rel_tol=REL, abs_tol=1e-9)
        else:
            ok = got == want
        if not ok:
            wrong.append(f"{key}: {got!r} != golden {want!r}")
    assert not wrong, "\n".join(wrong)


def test_demo_week_backtest_is_pinned(workdir: Path) -> None:
    out = workdir / "out-backtest"
    _run(["backtest", "--config", "config", "--prices", "prices.csv", "--out", str(out)], workdir)
    summary = _flatten(json.loads((out / "summary.json").read_text(encoding="utf-8")))
    actual: dict[str, Any] = {
        f"summary:{k}": (float(v) if isinstance(v, int) and not isinstance(v, bool) else v)
        for k, v in summary.items()
        if k not in TIMINGS
    }
    for csv in sorted(out.glob("*.csv")):
        actual.update(_csv_totals(csv))
    _compare("demo_week_backtest", actual)


def test_plan_day_is_pinned(workdir: Path) -> None:
    out = workdir / "out-plan"
    _run(
        ["plan", "--config", "config", "--prices", "prices.csv", "--day", "2025-05-12",
         "--out", str(out)],
        workdir,
    )
    actual: dict[str, Any] = {}
    for csv in sorted(out.glob("*.csv")):
        actual.update(_csv_totals(csv))
    plan = _flatten(json.loads((out / "plan.json").read_text(encoding="utf-8")))
    actual.update(
        {
            f"plan:{k}": (float(v) if isinstance(v, int) and not isinstance(v, bool) else v)
            for k, v in plan.items()
            if not isinstance(v, list) and k.split(".")[-1] not in TIMINGS
        }
    )
    _compare("plan_day", actual)

"""Faults a user can cause give one line on stderr and exit 1 (2 for usage), never a
traceback, and leave what was stored before untouched.

In process through typer's ``CliRunner`` for most commands; as real processes for the
port in use, the full disk and the symlink loop (real stderr, real sockets)."""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from market_replay.canonical import PriceFrame, write_prices
from tests.strategies.conftest import CONFIG, cn_prices
from vpp.cli import app
from vpp.cli._common import guarded

runner = CliRunner()
VPP = [sys.executable, "-c", "from vpp.cli import main; main()"]
REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "data" / "prices" / "cn_province_a_spot_2025-05_2025-06_15min.csv"


@pytest.fixture(scope="module")
def price_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prices") / "cn.csv"
    write_prices(PriceFrame(cn_prices(), "cn-province-a", "CNY", 15), path, source="test slice")
    return path


def one_error_line(stderr: str) -> str:
    """The single non-empty stderr line, which is the error; fails on a traceback or more lines."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


def _invoke(args: list[str], env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["--log-level", "ERROR", *args], env=env)


def _loop(tmp_path: Path) -> Path:
    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    return tmp_path / "loop_a"


def _file(tmp_path: Path) -> Path:
    """A regular file, used as a path component that should have been a folder."""
    path = tmp_path / "plain.txt"
    path.write_text("not a folder\n", encoding="utf-8")
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# Each case: (args from (tmp_path, price_file), expected exit code, regex on the error line).
# A case may leave files in tmp_path only where its regex says so; the test compares the
# tmp folder before and after.
Case = tuple[Callable[[Path, Path], list[str]], int, str]
C = str(CONFIG)
CASES: dict[str, Case] = {
    "validate-symlink-loop": (
        lambda t, p: ["validate", str(_loop(t))], 1, r"loop_a: symlink loop \(.*\); fix or remove",
    ),
    "schema-unknown": (lambda t, p: ["schema", "nonsense"], 1, r"unknown schema 'nonsense'"),
    "enroll-config-missing": (
        lambda t, p: ["enroll", "--config", str(t / "nowhere")], 1,
        r"nowhere: config folder not found \(--config\)",
    ),
    "parks-config-loop": (
        lambda t, p: ["parks", "--config", str(_loop(t))], 1, r"loop_a: symlink loop",
    ),
    "status-config-missing": (
        lambda t, p: ["status", "--config", str(t / "nowhere")], 1, r"config folder not found",
    ),
    "demo-config-missing": (
        lambda t, p: ["demo", "--config", str(t / "nowhere")], 1, r"config folder not found",
    ),
    "adapters-unknown-park": (
        lambda t, p: ["adapters", "check", "nonsense", "--config", C], 1,
        r"unknown park 'nonsense'; known: .*jinan-north",
    ),
    "data-check-folder": (
        lambda t, p: ["data", "check", str(t)], 1, r": is a folder \(Is a directory\); give a file",
    ),
    "data-check-loop": (lambda t, p: ["data", "check", str(_loop(t))], 1, r"loop_a: symlink loop"),
    "data-show-missing": (
        lambda t, p: ["data", "show", str(t / "missing.csv")], 1, r"missing.csv: file not found",
    ),
    "data-show-plot-under-file": (
        lambda t, p: ["data", "show", str(p), "--plot", str(_file(t) / "x.png")], 1,
        r"plain.txt/x.png: cannot write plot",
    ),
    "data-import-loop-input": (
        lambda t, p: ["data", "import", "-c", C, "-f", "cn-spot-96", str(_loop(t)),
                      "-o", str(t / "out.csv")], 1, r"loop_a: symlink loop",
    ),
    "data-import-unknown-format": (
        lambda t, p: ["data", "import", "-c", C, "-f", "nonsense", str(SHIPPED),
                      "-o", str(t / "out.csv")], 1, r"--format: .*'nonsense': unknown format; choose",
    ),
    "data-import-unknown-market": (
        lambda t, p: ["data", "import", "-c", C, "-f", "cn-spot-96", "--market", "nonsense",
                      str(SHIPPED), "-o", str(t / "out.csv")], 1, r"unknown market 'nonsense'",
    ),
    "plan-out-under-file": (
        lambda t, p: ["plan", "-c", C, "--prices", str(p), "--day", "2025-05-20",
                      "--out", str(_file(t) / "plan")], 1,
        r"plain.txt/plan: .*plain.txt is a file, not a folder",
    ),
    "plan-out-unwritable": (
        lambda t, p: ["plan", "-c", C, "--prices", str(p), "--day", "2025-05-20",
                      "--out", "/proc/vpp-out"], 1,
        r"/proc/vpp-out: cannot create files in /proc \(.*\); choose a writable location",
    ),
    "plan-bad-day": (
        lambda t, p: ["plan", "-c", C, "--prices", str(p), "--day", "2025-13-01",
                      "--out", str(t / "plan")], 1, r"--day '2025-13-01': month must be in 1\.\.12",
    ),
    "plan-unknown-solver": (
        lambda t, p: ["plan", "-c", C, "--prices", str(p), "--day", "2025-05-20",
                      "--solver", "gurobi", "--out", str(t / "plan")], 1,
        r"unknown solver 'gurobi'; choose one of HIGHS",
    ),
    "plan-prices-loop": (
        lambda t, p: ["plan", "-c", C, "--prices", str(_loop(t)), "--day", "2025-05-20",
                      "--out", str(t / "plan")], 1, r"loop_a: symlink loop",
    ),
    # The backtest cases give a price file that does not exist: the error must be about the
    # bad value, which proves it is checked before the prices are read.
    "backtest-unknown-strategy": (
        lambda t, p: ["backtest", "-c", C, "--prices", str(t / "none.csv"),
                      "--strategy", "nonsense", "--out", str(t / "bt")], 1,
        r"--strategy 'nonsense': unknown; choose one of stochastic, deterministic",
    ),
    "backtest-unknown-forecaster": (
        lambda t, p: ["backtest", "-c", C, "--prices", str(t / "none.csv"),
                      "--forecaster", "nonsense", "--out", str(t / "bt")], 1,
        r"--forecaster 'nonsense': unknown; choose one of persistence, weekly",
    ),
    "backtest-unknown-rt-forecaster": (
        lambda t, p: ["backtest", "-c", C, "--prices", str(t / "none.csv"),
                      "--rt-forecaster", "nonsense", "--out", str(t / "bt")], 1,
        r"--rt-forecaster 'nonsense': unknown",
    ),
    "backtest-unknown-solver": (
        lambda t, p: ["backtest", "-c", C, "--prices", str(t / "none.csv"),
                      "--solver", "gurobi", "--out", str(t / "bt")], 1,
        r"--solver 'gurobi': unknown; choose one of HIGHS, ECOS, CLARABEL",
    ),
    "backtest-bad-date": (
        lambda t, p: ["backtest", "-c", C, "--prices", str(t / "none.csv"),
                      "--start", "2025-13-01", "--out", str(t / "bt")], 1,
        r"--start '2025-13-01': month must be in 1\.\.12; use a date YYYY-MM-DD",
    ),
    "backtest-start-after-end": (
        lambda t, p: ["backtest", "-c", C, "--prices", str(t / "none.csv"),
                      "--start", "2025-05-12", "--end", "2025-05-10", "--out", str(t / "bt")], 1,
        r"--start 2025-05-12 is after --end 2025-05-10",
    ),
    "backtest-out-unwritable": (
        lambda t, p: ["backtest", "-c", C, "--prices", str(t / "none.csv"),
                      "--out", "/proc/vpp-out"], 1, r"/proc/vpp-out: cannot create files in /proc",
    ),
    "backtest-out-under-file": (
        lambda t, p: ["backtest", "-c", C, "--prices", str(t / "none.csv"),
                      "--out", str(_file(t) / "bt")], 1, r"plain.txt is a file, not a folder",
    ),
    "backtest-out-is-file": (
        lambda t, p: ["backtest", "-c", C, "--prices", str(t / "none.csv"),
                      "--out", str(_file(t))], 1, r"plain.txt: exists and is not a folder",
    ),
    "backtest-out-holds-other-files": (
        lambda t, p: ["backtest", "-c", C, "--prices", str(t / "none.csv"),
                      "--out", str(_file(t).parent)], 1,
        r"holds files that are not part of this output \(plain.txt\)",
    ),
    "plan-negative-carbon-price": (
        lambda t, p: ["plan", "-c", C, "--prices", str(p), "--day", "2025-05-20",
                      "--carbon-price-per-t", "-5", "--out", str(t / "plan")], 1,
        r"--carbon-price-per-t = -5.0: must be a finite number >= 0",
    ),
    "backtest-negative-carbon-price": (
        lambda t, p: ["backtest", "-c", C, "--prices", str(t / "none.csv"),
                      "--carbon-price-per-t", "-1", "--out", str(t / "bt")], 1,
        r"--carbon-price-per-t = -1.0: must be a finite number >= 0",
    ),
    "backtest-nan-carbon-price": (
        lambda t, p: ["backtest", "-c", C, "--prices", str(t / "none.csv"),
                      "--carbon-price-per-t", "nan", "--out", str(t / "bt")], 1,
        r"--carbon-price-per-t = nan: must be a finite number >= 0",
    ),
    "backtest-carbon-price-twice": (
        lambda t, p: ["backtest", "-c", C, "--prices", str(t / "none.csv"),
                      "--carbon-price-per-t", "100", "--carbon-price-per-t", "100",
                      "--out", str(t / "bt")], 1,
        r"--carbon-price-per-t = 100 is given twice; give each price once",
    ),
    "backtest-sweep-out-holds-other-files": (
        lambda t, p: ["backtest", "-c", C, "--prices", str(t / "none.csv"),
                      "--carbon-price-per-t", "0", "--carbon-price-per-t", "100",
                      "--out", str(_file(t).parent)], 1,
        r"holds files that are not part of this output \(plain.txt\)",
    ),
    "log-level-unknown": (
        lambda t, p: ["--log-level", "LOUD", "parks", "-c", C], 1,
        r"--log-level 'LOUD': must be one of DEBUG, INFO",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_user_fault_is_one_line_exit_1_and_writes_nothing(
    case: str, tmp_path: Path, price_file: Path
) -> None:
    build, code, pattern = CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    args = build(work, price_file)
    before = _snapshot(work)
    links = sorted(p.name for p in work.iterdir())
    prices_before = price_file.read_bytes()
    result = _invoke(args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    line = one_error_line(result.stderr)
    assert re.search(pattern, line), line
    assert _snapshot(work) == before  # nothing written, nothing lost
    assert sorted(p.name for p in work.iterdir()) == links  # no temp files left behind
    assert price_file.read_bytes() == prices_before


def test_store_under_a_file_is_one_line(tmp_path: Path) -> None:
    blocker = _file(tmp_path)
    result = _invoke(
        ["parks", "-c", C], env={"VPP_DATABASE_URL": f"sqlite:///{blocker}/sub/vpp.db"}
    )
    assert result.exit_code == 1
    line = one_error_line(result.stderr)
    assert re.search(r"cannot open store sqlite:///.*plain.txt/sub/vpp.db: ", line), line
    assert blocker.read_text(encoding="utf-8") == "not a folder\n"


def test_store_unopenable_is_one_line() -> None:
    result = _invoke(["parks", "-c", C], env={"VPP_DATABASE_URL": "sqlite:////proc/vpp.db"})
    assert result.exit_code == 1
    line = one_error_line(result.stderr)
    assert "cannot open store sqlite:////proc/vpp.db" in line
    assert not Path("/proc/vpp.db").exists()


@pytest.mark.parametrize(
    "args",
    [["backtest", "--no-such-option"], ["data", "import", "in.csv", "-f", "cn-spot-96"],
     ["exchange", "serve", "--prices", "p.csv", "--port", "eighty"]],
    ids=["unknown-option", "missing-output", "port-not-a-number"],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = _invoke(args)
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    assert "Usage:" in result.stderr or "Try 'vpp" in result.stderr


def test_keyboard_interrupt_exits_130_quietly() -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    import typer

    command = typer.Typer()
    command.command()(guarded(interrupted))
    result = runner.invoke(command, [])
    assert result.exit_code == 130
    assert result.stderr.strip() == ""


def _run_raising(exc: BaseException):  # type: ignore[no-untyped-def]
    import typer

    def failing() -> None:
        raise exc

    command = typer.Typer()
    command.command()(guarded(failing))
    return runner.invoke(command, [])


def test_each_error_class_maps_to_its_exit_code_and_one_line() -> None:
    import inspect

    import vpp.errors
    from vpp.cli._common import EXIT_CODES, exit_code

    classes = [
        c for _, c in inspect.getmembers(vpp.errors, inspect.isclass)
        if issubclass(c, vpp.errors.VppError)
    ]
    for cls in classes:  # every class of the tree has a code, listed or through its base
        assert exit_code(cls.__new__(cls)) in EXIT_CODES.values()
    result = _run_raising(vpp.errors.InputError("speed = -1: must be > 0"))
    assert result.exit_code == EXIT_CODES[vpp.errors.InputError]
    assert result.stderr.strip() == "error: speed = -1: must be > 0"
    result = _run_raising(vpp.errors.InfeasibleError("no plan", constraint="b1-soc-max"))
    assert result.exit_code == EXIT_CODES[vpp.errors.SolverError]
    assert "(constraint b1-soc-max)" in one_error_line(result.stderr)


def test_a_bare_value_error_is_a_bug_and_keeps_its_traceback() -> None:
    """Only VppError is mapped: an error raised on purpose is an InputError, not a ValueError."""
    result = _run_raising(ValueError("not raised on purpose"))
    assert result.exit_code == 1
    assert isinstance(result.exception, ValueError)
    assert "error:" not in result.stderr


# --------------------------------------------------------------- as real processes


def _process(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VPP, "--log-level", "ERROR", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        check=False,
    )


def test_disk_full_is_one_line_and_keeps_the_device(tmp_path: Path) -> None:
    """``-o`` on a full disk (``/dev/full``, through a link so no mistake can replace the
    real device): one line naming the output, exit 1; the link still points at the device."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    target = tmp_path / "full.csv"
    target.symlink_to("/dev/full")
    result = _process(["data", "import", "-c", C, "-f", "cn-spot-96", "--on-missing",
                       "drop-day", str(SHIPPED), "-o", str(target)])
    assert result.returncode == 1, result.stderr
    line = one_error_line(result.stderr)
    assert re.search(r"full.csv: disk full \(No space left on device\)", line), line
    assert target.is_symlink()
    assert stat.S_ISCHR(target.stat().st_mode)  # not replaced by a regular file


def test_port_in_use_is_one_line(price_file: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _process(["exchange", "serve", "-c", C, "--prices", str(price_file),
                           "--port", str(port)],
                          env={"VPP_EXCHANGE_TOKENS": "portfolio=" + "t" * 32})
    assert result.returncode == 1, result.stderr
    line = one_error_line(result.stderr)
    assert f"exchange server 127.0.0.1:{port}: address already in use" in line
    assert "choose another port" in line


def test_symlink_loop_is_one_line_in_a_real_process(tmp_path: Path) -> None:
    result = _process(["data", "check", str(_loop(tmp_path))])
    assert result.returncode == 1
    assert "symlink loop" in one_error_line(result.stderr)


# --------------------------------------------------------------- atomic output folders


def _fail_when_called(*_args: object, **_kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_plan_out_is_replaced_whole_or_not_at_all(
    tmp_path: Path, price_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "plan"
    base = ["plan", "-c", C, "--prices", str(price_file), "--solver", "ecos", "--out", str(out)]
    first = _invoke([*base, "--day", "2025-05-20"])
    assert first.exit_code == 0, first.stderr
    previous = _snapshot(out)
    assert json.loads(previous["plan.json"])["day"] == "2025-05-20"
    # The next plan fails midway: after both CSVs, while writing plan.json (a full disk).
    import strategies.plan

    class FullDisk:
        @staticmethod
        def dumps(*args: object, **kwargs: object) -> str:
            _fail_when_called()
            return ""

    monkeypatch.setattr(strategies.plan, "json", FullDisk)
    failed = _invoke([*base, "--day", "2025-05-21"])
    assert failed.exit_code == 1
    line = one_error_line(failed.stderr)
    assert re.search(r"cannot write output folder .*plan: disk full .*previous contents are "
                     r"unchanged", line), line
    assert _snapshot(out) == previous  # the previous complete plan, byte for byte
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan"]  # no temp folder left
    monkeypatch.undo()
    second = _invoke([*base, "--day", "2025-05-21"])
    assert second.exit_code == 0, second.stderr
    assert json.loads((out / "plan.json").read_text())["day"] == "2025-05-21"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan"]


def test_plan_refuses_a_folder_with_other_files(tmp_path: Path, price_file: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me\n", encoding="utf-8")
    result = _invoke(["plan", "-c", C, "--prices", str(price_file), "--day", "2025-05-20",
                      "--out", str(out)])
    assert result.exit_code == 1
    assert "holds files that are not part of this output (notes.txt)" in one_error_line(
        result.stderr
    )
    assert _snapshot(out) == {"notes.txt": b"keep me\n"}


def test_backtest_report_is_replaced_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    import vpp.backtest.report as report
    from market_replay import import_prices
    from strategies import StrategyOptions
    from vpp.backtest.run import BacktestOptions, run_backtest
    from vpp.config import load_config
    from vpp.errors import OutputError
    from vpp.runtime.operator import MarketPortfolio

    cfg = load_config(CONFIG)
    prices = import_prices(SHIPPED, "cn-spot-96", cfg.markets["cn-province-a"],
                           policy="drop-day").prices
    portfolio = MarketPortfolio.from_config(cfg, "cn-province-a")
    options = BacktestOptions(
        StrategyOptions(name="deterministic", reoptimise_every=96, scenarios=1), baselines=False
    )
    result = run_backtest(portfolio, prices, [dt.date(2025, 5, 10)], options)
    out = tmp_path / "report"
    report.write_backtest(result, out)
    previous = _snapshot(out)
    assert set(previous) == set(report.REPORT_FILES)
    # The next report differs (summary.json is written first) and fails at the second plot.
    result.wall_time_s = 12345.0
    monkeypatch.setattr(report, "plot_soc", _fail_when_called)
    with pytest.raises(OutputError, match=r"report: disk full .*previous contents are unchanged"):
        report.write_backtest(result, out)
    assert _snapshot(out) == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
    monkeypatch.undo()
    report.write_backtest(result, out)
    assert json.loads((out / "summary.json").read_text())["wall_time_s"] == 12345.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file: no way to deny it")
def test_unreadable_file_is_one_line(tmp_path: Path, price_file: Path) -> None:
    locked = tmp_path / "locked.csv"
    locked.write_bytes(price_file.read_bytes())
    locked.chmod(0)
    try:
        result = _invoke(["data", "check", str(locked)])
    finally:
        locked.chmod(0o600)
    assert result.exit_code == 1
    assert re.search(r"locked.csv: permission denied", one_error_line(result.stderr))


@pytest.mark.parametrize(
    ("output", "pattern"),
    [
        (lambda t: t, r"work: is a folder; give a file name"),
        (lambda t: _file(t) / "out.csv", r"plain.txt is a file, not a folder"),
        (lambda t: Path("/proc/vpp-out.csv"), r"/proc/vpp-out.csv: cannot create files in /proc"),
    ],
    ids=["folder", "under-a-file", "unwritable"],
)
def test_import_output_checked_before_reading(
    tmp_path: Path, output: Callable[[Path], Path], pattern: str
) -> None:
    """``-o`` is checked first: the input given does not even exist, yet the error is ``-o``."""
    work = tmp_path / "work"
    work.mkdir()
    target = output(work)
    before = _snapshot(work)
    result = _invoke(["data", "import", "-c", C, "-f", "cn-spot-96", str(work / "none.csv"),
                      "-o", str(target)])
    assert result.exit_code == 1
    assert re.search(pattern, one_error_line(result.stderr))
    assert _snapshot(work) == before


def test_every_command_runs_inside_the_error_mapping() -> None:
    """A command added later without the mapping would print tracebacks again."""
    import typer

    def commands(typer_app: typer.Typer) -> list[object]:
        found: list[object] = [info.callback for info in typer_app.registered_commands]
        for group in typer_app.registered_groups:
            assert group.typer_instance is not None
            found += commands(group.typer_instance)
        return found

    callbacks = commands(app)
    assert len(callbacks) >= 14  # the README's command table
    assert all(getattr(c, "vpp_guarded", False) for c in callbacks)


def test_metrics_port_in_use_is_one_line(tmp_path: Path, price_file: Path) -> None:
    """``vpp run``: the metrics port taken by another process: one line, exit 1, no bid sent."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _process(
            ["run", "-c", C, "--simulate", "--prices", str(price_file), "--days", "1",
             "--metrics-port", str(port), "--log-level", "ERROR"],
            env={"VPP_DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}"},
        )
    assert result.returncode == 1, result.stderr
    line = one_error_line(result.stderr)
    assert f"metrics server 127.0.0.1:{port}: address already in use" in line
    from sqlmodel import select

    from vpp.store import BidRecord, Store

    store = Store(f"sqlite:///{tmp_path / 'run.db'}")
    with store.session() as session:
        assert session.exec(select(BidRecord)).first() is None  # no bid went out

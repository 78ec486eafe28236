"""Re-test of issue #10's input classes with new cases: config entries that are not
regular files, a byte order mark, wrong types in numeric fields.

A park file that cannot be read (a folder, a broken link, a link loop under a ``*.toml``
name) used to be skipped silently: ``vpp validate`` said ok and the park was simply not
there. Each case now fails validation naming the entry, and nothing is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.vpp.test_config_finite import (
    BASES,
    CASES,
    _dotted,
    _members,
    _numeric_paths,
    _write_project,
)
from vpp.cli import app

runner = CliRunner()
PARK = "parks/test-park.toml"


def _invoke(args: list[str]):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["--log-level", "ERROR", *args])


def _one_error(output: str) -> str:
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    return lines[0]


def _folder(park: Path) -> None:
    park.unlink()
    park.mkdir()


def _broken_link(park: Path) -> None:
    park.unlink()
    park.symlink_to(park.parent / "nowhere.toml")


def _loop(park: Path) -> None:
    park.unlink()
    other = park.parent / "other.toml"
    other.symlink_to(park)
    park.symlink_to(other)


# (make the park entry bad, the message expected for it)
UNREADABLE = {
    "folder": (_folder, "cannot read (Is a directory); give a TOML file"),
    "broken-link": (_broken_link, "broken symlink (its target does not exist)"),
}


@pytest.mark.parametrize("case", list(UNREADABLE))
def test_a_park_entry_that_is_not_a_file_fails_validate(tmp_path: Path, case: str) -> None:
    _write_project(tmp_path)
    make_bad, message = UNREADABLE[case]
    make_bad(tmp_path / PARK)
    result = _invoke(["validate", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert f"{tmp_path / PARK}: {message}" in result.output.splitlines(), result.output
    assert "Traceback" not in result.output


def test_a_park_link_loop_fails_validate_in_one_line(tmp_path: Path) -> None:
    _write_project(tmp_path)
    _loop(tmp_path / PARK)
    result = _invoke(["validate", str(tmp_path)])
    assert result.exit_code == 1, result.output
    line = _one_error(result.output)
    assert line.startswith(f"error: {tmp_path / 'parks'}/"), line
    assert line.endswith(": symlink loop (Too many levels of symbolic links); fix or remove the symbolic link"), line


def test_a_park_folder_stops_every_command_not_only_validate(tmp_path: Path) -> None:
    """`vpp enroll` would have enrolled the other parks without this one."""
    _write_project(tmp_path)
    _folder(tmp_path / PARK)
    result = _invoke(["enroll", "--config", str(tmp_path)])
    assert result.exit_code == 1, result.output
    line = _one_error(result.output)
    assert line == f"error: {tmp_path / PARK}: cannot read (Is a directory); give a TOML file"
    assert not (tmp_path.parent / "var").exists()
    assert not list(tmp_path.parent.glob("var/*.db"))


def test_a_folder_named_vpp_toml_is_not_taken_for_default_settings(tmp_path: Path) -> None:
    _write_project(tmp_path)
    (tmp_path / "vpp.toml").unlink()
    (tmp_path / "vpp.toml").mkdir()
    result = _invoke(["validate", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert (
        f"{tmp_path / 'vpp.toml'}: cannot read (Is a directory); give a TOML file"
        in result.output.splitlines()
    ), result.output


def test_an_absent_vpp_toml_still_means_the_defaults(tmp_path: Path) -> None:
    _write_project(tmp_path)
    (tmp_path / "vpp.toml").unlink()
    result = _invoke(["validate", str(tmp_path)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("file", ["vpp.toml", "markets/test-market.toml", PARK])
def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path, file: str) -> None:
    """Windows editors write one; tomllib said 'Invalid statement (at line 1, column 1)'."""
    _write_project(tmp_path)
    path = tmp_path / file
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    result = _invoke(["validate", str(tmp_path)])
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------- store URL

STORE_URLS = {
    # (url, the one line expected); each was a traceback from create_engine before.
    # psycopg (3) is a dependency; a URL naming psycopg2 asks for a driver vpp does not install.
    "driver-not-installed": (
        "postgresql+psycopg2://vpp:s3cret-pw@127.0.0.1:1/vpp",
        "error: cannot open store postgresql+psycopg2://vpp:***@127.0.0.1:1/vpp: database driver "
        "'psycopg2' is not installed; install it (pip install psycopg2) or use another store URL",
    ),
    "unknown-kind": (
        "nonsense://x",
        "error: cannot open store nonsense://x: Can't load plugin: sqlalchemy.dialects:nonsense; "
        "check [store] url or VPP_DATABASE_URL (e.g. sqlite:///var/vpp.db)",
    ),
    "not-a-url": (
        "not a url at all",
        "error: cannot open store (unparseable URL): Could not parse SQLAlchemy URL from given "
        "URL string; check [store] url or VPP_DATABASE_URL (e.g. sqlite:///var/vpp.db)",
    ),
}


@pytest.mark.parametrize("case", list(STORE_URLS))
@pytest.mark.parametrize("command", [["parks"], ["enroll"], ["status"]])
def test_a_bad_store_url_is_one_line(tmp_path: Path, case: str, command: list[str]) -> None:
    url, expected = STORE_URLS[case]
    if case == "driver-not-installed":
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            pass
        else:
            pytest.skip("psycopg2 is installed here")
    _write_project(tmp_path)
    result = runner.invoke(
        app, ["--log-level", "ERROR", *command, "--config", str(tmp_path)],
        env={"VPP_DATABASE_URL": url},
    )
    assert result.exit_code == 1, result.output
    assert _one_error(result.output) == expected
    assert "s3cret-pw" not in result.output


# --------------------------------------------------------------------------- wrong types

TEXT = "must be a number written without quotes, not "


@pytest.mark.parametrize(("file", "path"), CASES, ids=[f"{f}:{_dotted(p)}" for f, p in CASES])
def test_true_or_a_quoted_number_is_refused_in_every_numeric_field(
    tmp_path: Path, file: str, path: tuple[Any, ...]
) -> None:
    """pydantic's lax mode took `power_kw = true` as a 1 kW battery and `"2000"` as 2000."""
    for value, kind in ((True, "true/false"), ("2", "a quoted string")):
        root = tmp_path / kind.replace("/", "-").replace(" ", "-")
        _write_project(root, (file, path, value))  # type: ignore[arg-type]
        result = _invoke(["validate", str(root)])
        assert result.exit_code == 1, result.output
        expected = f"{root / file}: {_dotted(path)} = {value!r}: {TEXT}{kind}"
        assert expected in result.output.splitlines(), result.output
        assert "Traceback" not in result.output


@pytest.mark.parametrize(("file", "path"), CASES, ids=[f"{f}:{_dotted(p)}" for f, p in CASES])
def test_a_huge_number_is_refused_in_every_float_field(
    tmp_path: Path, file: str, path: tuple[Any, ...]
) -> None:
    """`power_kw = 1e300` validated and planned a battery at the grid limit; now refused."""
    field = _field_of(file, path)
    if float not in _members(field.annotation):
        pytest.skip("an integer field (seed, port, count) keeps its own bounds")
    for value in (1e300, -1e10, 10**20):
        root = tmp_path / str(value)
        _write_project(root, (file, path, value))
        result = _invoke(["validate", str(root)])
        assert result.exit_code == 1, result.output
        expected = (
            f"{root / file}: {_dotted(path)} = {value!r}: "
            "must be within ±1e9: a number this large is a typo or a wrong unit"
        )
        assert expected in result.output.splitlines(), result.output


def _field_of(file: str, path: tuple[Any, ...]):  # type: ignore[no-untyped-def]
    """The pydantic field that ``path`` reaches in ``file``'s base document."""
    model, base = BASES[file]
    for dotted, owner, name in _numeric_paths(model, base()):
        if dotted == path:
            return owner.model_fields[name]
    raise AssertionError(path)


# --------------------------------------------------------------------------- vpp run options


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--speed", "inf"], "--speed"),  # was OverflowError: cannot convert float infinity
        (["--speed", "nan"], "--speed"),
        (["--days", "0"], "--days"),  # ran a daemon with no jobs until killed
        (["--days", "-1"], "--days"),
    ],
    ids=["speed-inf", "speed-nan", "days-0", "days-negative"],
)
def test_run_simulate_refuses_impossible_speed_and_days(
    tmp_path: Path, args: list[str], option: str
) -> None:
    _write_project(tmp_path)
    result = _invoke(["run", "--simulate", "--config", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path.parent / "var").exists()  # no store opened

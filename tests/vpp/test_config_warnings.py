"""Warnings at validation: secrets over plain HTTP/WS to non-loopback hosts, open bind addresses.

Each case edits a copy of the shipped config (which warns about nothing) and
checks the one-line warning names the file, field, value and why; ``vpp
validate`` prints it and still exits 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.vpp.daemon_support import REPO, load, make_config
from vpp.config._warnings import config_warnings, is_loopback

HOUSTON_HTTP = 'base_url = "http://127.0.0.1:18080/api"'
HOUSTON_OCPP = 'password_env = "VPP_OCPP_PASSWORD"'


@pytest.fixture(autouse=True)
def _no_exchange_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VPP_EXCHANGE_TOKEN", raising=False)
    monkeypatch.delenv("VPP_EXCHANGE_TOKENS", raising=False)


def _one_line(text: str) -> None:
    assert "\n" not in text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("192.168.1.20", False),
        ("plant.example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback_is_127_slash_8_ipv6_one_and_localhost(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_shipped_config_warns_about_nothing(tmp_path: Path) -> None:
    assert config_warnings(load(make_config(tmp_path))) == []


def test_bearer_token_over_plain_http_to_a_remote_controller_warns(tmp_path: Path) -> None:
    edit = {"houston-ship-channel": (HOUSTON_HTTP, 'base_url = "http://10.1.2.3:18080/api"')}
    cfg = load(make_config(tmp_path, park_edits=edit))
    [warning] = config_warnings(cfg)
    assert warning.file.endswith("parks/houston-ship-channel.toml")
    assert warning.field == "assets[1].adapter.base_url"
    assert warning.value == "http://10.1.2.3:18080/api"
    assert "VPP_HOUSTON_PROCESS_TOKEN" in warning.message
    assert "clear text" in warning.message
    _one_line(str(warning))
    assert str(warning).startswith(f"{warning.file}: assets[1].adapter.base_url = ")


NO_TOKEN = f'{HOUSTON_HTTP}\ntoken_env = "VPP_HOUSTON_PROCESS_TOKEN"'


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (HOUSTON_HTTP, 'base_url = "https://10.1.2.3:18080/api"'),  # TLS
        (HOUSTON_HTTP, 'base_url = "http://localhost:18080/api"'),  # loopback
        (HOUSTON_HTTP, 'base_url = "http://[::1]:18080/api"'),
        (NO_TOKEN, 'base_url = "http://10.1.2.3:18080/api"'),  # no token to leak
    ],
)
def test_https_loopback_or_no_token_does_not_warn(tmp_path: Path, old: str, new: str) -> None:
    cfg = load(make_config(tmp_path, park_edits={"houston-ship-channel": (old, new)}))
    assert config_warnings(cfg) == []


def test_ocpp_central_system_on_a_public_address_warns_about_its_password(tmp_path: Path) -> None:
    edit = {"houston-ship-channel": (HOUSTON_OCPP, f'{HOUSTON_OCPP}\nlisten_host = "0.0.0.0"')}
    cfg = load(make_config(tmp_path, park_edits=edit))
    [warning] = config_warnings(cfg)
    assert warning.field == "assets[3].adapter.listen_host"
    assert warning.value == "0.0.0.0"
    assert "password_env = VPP_OCPP_PASSWORD" in warning.message
    assert "ws://" in warning.message
    _one_line(str(warning))


def test_ocpp_without_password_on_a_public_address_warns_it_is_unauthenticated(
    tmp_path: Path,
) -> None:
    old = f'username_env = "VPP_OCPP_USER"\n{HOUSTON_OCPP}'
    edit = {"houston-ship-channel": (old, 'listen_host = "192.168.1.20"')}
    [warning] = config_warnings(load(make_config(tmp_path, park_edits=edit)))
    assert warning.value == "192.168.1.20"
    assert "without authentication" in warning.message


def test_metrics_server_on_all_interfaces_warns(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path, daemon={"metrics_host": "0.0.0.0"}))
    [warning] = config_warnings(cfg)
    assert warning.file.endswith("config/vpp.toml")
    assert (warning.field, warning.value) == ("daemon.metrics_host", "0.0.0.0")
    assert "no authentication" in warning.message
    _one_line(str(warning))


def test_exchange_token_over_plain_http_to_a_remote_exchange_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = "http://exchange.example.com:8000"
    cfg = load(make_config(tmp_path, daemon={"exchange_url": remote}))
    # The daemon always sends the token named by [daemon] exchange_token_env (default
    # VPP_EXCHANGE_TOKEN; it refuses to start without it), so a remote plain-HTTP exchange warns
    # whether or not the variable is set yet.
    monkeypatch.delenv("VPP_EXCHANGE_TOKEN", raising=False)
    [unset] = config_warnings(cfg)
    assert (unset.field, unset.value) == ("daemon.exchange_url", remote)
    monkeypatch.setenv("VPP_EXCHANGE_TOKEN", "exchange-token-123456")
    [warning] = config_warnings(cfg)
    assert (warning.field, warning.value) == ("daemon.exchange_url", remote)
    assert "VPP_EXCHANGE_TOKEN" in warning.message
    assert "exchange-token-123456" not in str(warning)
    secure = load(
        make_config(tmp_path / "tls", daemon={"exchange_url": "https://exchange.example.com"})
    )
    assert config_warnings(secure) == []


def test_loading_the_config_logs_each_warning(tmp_path: Path) -> None:
    """What the daemon sees: load_config logs ``config_warning`` with file, field, value, why."""
    config = make_config(tmp_path, daemon={"metrics_host": "0.0.0.0"})
    with capture_logs() as logs:
        load(config)
    [event] = [e for e in logs if e["event"] == "config_warning"]
    assert event["log_level"] == "warning"
    assert event["field"] == "daemon.metrics_host"
    assert event["value"] == "0.0.0.0"
    assert event["file"] == str(config / "vpp.toml")
    assert "non-loopback" in event["why"]


def test_vpp_validate_prints_the_warnings_and_exits_zero(tmp_path: Path) -> None:
    edit = {"houston-ship-channel": (HOUSTON_HTTP, 'base_url = "http://10.1.2.3:18080/api"')}
    config = make_config(tmp_path, daemon={"metrics_host": "0.0.0.0"}, park_edits=edit)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from vpp.cli import main; main()",
            "--log-json",
            "validate",
            str(config),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    lines = [json.loads(x) for x in result.stderr.splitlines() if x.startswith("{")]
    warnings = [x for x in lines if x["event"] == "config_warning"]
    assert {(w["field"], w["value"]) for w in warnings} == {
        ("daemon.metrics_host", "0.0.0.0"),
        ("assets[1].adapter.base_url", "http://10.1.2.3:18080/api"),
    }
    assert "Traceback" not in result.stderr


def test_vpp_validate_still_fails_on_errors_with_warnings_present(tmp_path: Path) -> None:
    edit = {"houston-ship-channel": ("charger_power_kw = 19.2", "charger_power_kw = -1")}
    config = make_config(tmp_path, daemon={"metrics_host": "0.0.0.0"}, park_edits=edit)
    result = subprocess.run(
        [sys.executable, "-c", "from vpp.cli import main; main()", "validate", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "charger_power_kw" in result.stderr

"""What a valid config still gets wrong about security, and the secret values it names.

:func:`review_config` runs at the end of :func:`vpp.config.load_config`:

* it registers the *values* of the secrets the config names (every ``*_env``
  field of every adapter and of the settings, plus ``VPP_EXCHANGE_TOKEN`` and
  ``VPP_EXCHANGE_TOKENS``) with :func:`vpp.logging.register_secret`, so they
  are masked in every log line whatever a device echoes back;
* it logs one ``config_warning`` event per :func:`config_warnings` finding,
  so ``vpp validate`` and the daemon show them without failing (exit code 0).

A warning is a :class:`~vpp.ConfigIssue` (``file: field = value: why``):

* an ``http`` adapter with ``token_env`` whose ``base_url`` is ``http://`` to
  a host that is not loopback (the bearer token would cross the network in
  clear text);
* an ``ocpp`` central system listening on a non-loopback address: it speaks
  plain ``ws://``, so the basic-auth password (``password_env``) crosses the
  network in clear text, or there is no authentication at all;
* ``[daemon] exchange_url`` ``http://`` to a non-loopback host while an
  exchange token is configured;
* any ``*_host`` bind setting in ``vpp.toml`` (``[daemon] metrics_host``...)
  that is not loopback: those endpoints have no authentication.

Loopback is ``127.0.0.0/8``, ``::1`` and ``localhost``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import structlog
from pydantic import BaseModel

from vpp.config.models import HttpAdapter, OcppAdapter
from vpp.errors import ConfigIssue
from vpp.logging import register_secret

if TYPE_CHECKING:
    from vpp.config.loader import ConfigSet

log = structlog.get_logger(__name__)

EXCHANGE_TOKEN_VARIABLES = ("VPP_EXCHANGE_TOKEN", "VPP_EXCHANGE_TOKENS")


def is_loopback(host: str) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``::1`` (brackets allowed)."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _env_fields(model: BaseModel, path: str) -> Iterator[tuple[str, str]]:
    """``(field path, env var name)`` of every ``*_env`` field, nested models included."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from _env_fields(value, f"{path}.{name}" if path else name)
        elif name.endswith("_env") and isinstance(value, str):
            yield (f"{path}.{name}" if path else name), value


def register_config_secrets(config: ConfigSet, environ: Any = None) -> int:
    """Register the values of every environment variable the config names; the count registered."""
    env = os.environ if environ is None else environ
    names = [n for _, n in _env_fields(config.settings, "")]
    for park in config.parks.values():
        for asset in park.assets:
            names += [n for _, n in _env_fields(asset, "")]
    registered = 0
    for name in dict.fromkeys([*names, *EXCHANGE_TOKEN_VARIABLES]):
        value = env.get(name)
        if not value:
            continue
        # VPP_EXCHANGE_TOKENS may hold several tokens: each one is a secret.
        parts = [value, *value.replace(";", ",").replace(" ", ",").split(",")]
        registered += sum(register_secret(p) for p in dict.fromkeys(parts))
    return registered


def _host(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.hostname or ""


def config_warnings(config: ConfigSet, environ: Any = None) -> list[ConfigIssue]:
    """Every security warning about ``config`` (none for the shipped loopback defaults)."""
    env = os.environ if environ is None else environ
    out: list[ConfigIssue] = []
    for park_id, park in config.parks.items():
        file = str(config.park_files.get(park_id, park_id))
        for i, asset in enumerate(park.assets):
            adapter = asset.adapter
            where = f"assets[{i}].adapter"
            if isinstance(adapter, HttpAdapter) and adapter.token_env:
                scheme, host = _host(adapter.base_url)
                if scheme == "http" and not is_loopback(host):
                    out.append(
                        ConfigIssue(
                            file,
                            f"{where}.base_url",
                            adapter.base_url,
                            f"the bearer token (token_env = {adapter.token_env}) would be sent "
                            f"in clear text over plain HTTP to non-loopback host {host}; "
                            "use https://",
                        )
                    )
            if isinstance(adapter, OcppAdapter) and not is_loopback(adapter.listen_host):
                why = (
                    f"charge points would send the basic-auth password (password_env = "
                    f"{adapter.password_env}) in clear text over plain ws://"
                    if adapter.password_env
                    else "the OCPP central system accepts charge points without authentication"
                )
                out.append(
                    ConfigIssue(
                        file,
                        f"{where}.listen_host",
                        adapter.listen_host,
                        f"{why} on a non-loopback address; bind 127.0.0.1 behind a TLS proxy",
                    )
                )
    settings_file = str(config.root / "vpp.toml")
    daemon = config.settings.daemon
    token_env = getattr(daemon, "exchange_token_env", None)
    has_token = bool(token_env) or any(env.get(n) for n in EXCHANGE_TOKEN_VARIABLES)
    if daemon.exchange_url and has_token:
        scheme, host = _host(daemon.exchange_url)
        if scheme == "http" and not is_loopback(host):
            source = f"exchange_token_env = {token_env}" if token_env else "VPP_EXCHANGE_TOKEN"
            out.append(
                ConfigIssue(
                    settings_file,
                    "daemon.exchange_url",
                    daemon.exchange_url,
                    f"the exchange token ({source}) would be sent in clear text over plain "
                    f"HTTP to non-loopback host {host}; use https://",
                )
            )
    for section in type(config.settings).model_fields:
        group = getattr(config.settings, section)
        if not isinstance(group, BaseModel):
            continue
        for name in type(group).model_fields:
            value = getattr(group, name)
            if name.endswith("_host") and isinstance(value, str) and not is_loopback(value):
                out.append(
                    ConfigIssue(
                        settings_file,
                        f"{section}.{name}",
                        value,
                        "this server binds to a non-loopback address and has no "
                        "authentication; bind 127.0.0.1 or put it behind an authenticating proxy",
                    )
                )
    return out


def review_config(config: ConfigSet) -> list[ConfigIssue]:
    """Register the config's secret values and log its warnings (``config_warning``)."""
    register_config_secrets(config)
    warnings = config_warnings(config)
    for issue in warnings:
        log.warning(
            "config_warning",
            file=issue.file,
            field=issue.field,
            value=issue.value,
            why=issue.message,
        )
    return warnings

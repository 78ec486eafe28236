"""Helpers of the daemon tests: a private config, the shipped prices, polling with deadlines."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from sqlmodel import func, select

from market_replay import import_prices
from market_replay.canonical import PriceFrame
from vpp.config import ConfigSet, load_config
from vpp.store import Store

REPO = Path(__file__).resolve().parents[2]
PRICES = REPO / "tests" / "data" / "cn_province_a_2025-05-01_2025-05-28.csv"
MARKET = "cn-province-a"
DAY = dt.date(2025, 5, 8)  # bid on 05-07; 05-09 is dropped by the importer (all zeros)


def make_config(
    tmp_path: Path,
    *,
    daemon: dict[str, object] | None = None,
    park_edits: dict[str, tuple[str, str]] | None = None,
) -> Path:
    """A copy of the shipped config with ``[daemon]`` overrides and text edits to park files."""
    root = tmp_path / "project"
    target = root / "config"
    shutil.copytree(REPO / "config", target)
    (root / "data").symlink_to(REPO / "data", target_is_directory=True)
    settings = target / "vpp.toml"
    text = settings.read_text()
    for key, value in (daemon or {}).items():
        line = f"{key} = {value!r}".replace("'", '"')
        lines = [x for x in text.splitlines() if not x.startswith(f"{key} =")]
        text = "\n".join(lines)
        text = text.replace("[daemon]", f"[daemon]\n{line}")
    settings.write_text(text + "\n")
    for park, (old, new) in (park_edits or {}).items():
        path = target / "parks" / f"{park}.toml"
        content = path.read_text()
        assert old in content, f"{park}: {old!r} not found"
        path.write_text(content.replace(old, new))
    return target


def load(config: Path) -> ConfigSet:
    return load_config(config)


def prices(cfg: ConfigSet) -> PriceFrame:
    return import_prices(PRICES, "cn-spot-96", cfg.markets[MARKET], policy="drop-day").prices


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` until it holds; fail with ``what`` after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def count_rows(store: Store, table: type, *where: object) -> int:
    """Rows of ``table`` in ``store`` matching ``where``."""
    with store.session() as session:
        return int(session.exec(select(func.count()).select_from(table).where(*where)).one())

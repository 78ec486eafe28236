"""Load and validate config files, once, where they enter.

Every problem is collected as a :class:`~vpp.ConfigIssue` naming the file,
the field path (``assets[0].energy_kwh``), the value and what is allowed;
loading a set of files reports every problem in every file, not just the
first.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from vpp.assets.commodities import heat_system_issues
from vpp.carbon.factors import FactorSet
from vpp.config._warnings import review_config
from vpp.config.models import (
    ADAPTER_TYPES,
    ASSET_TYPES,
    FileSource,
    MarketConfig,
    ParkConfig,
    Settings,
    SweepSpec,
)
from vpp.errors import ConfigError, ConfigIssue
from vpp.timeutil import zone

M = TypeVar("M", bound=BaseModel)

_RULE_GROUPS = (
    "day_ahead", "real_time", "price_limits", "bidding", "settlement", "real_time_products"
)


def _field_path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(error: Any) -> str:
    """Turn a pydantic error into 'must be ...' wording naming what is allowed."""
    kind = error["type"]
    ctx = error.get("ctx", {})
    simple = {
        "greater_than": "must be > {gt}",
        "greater_than_equal": "must be >= {ge}",
        "less_than": "must be < {lt}",
        "less_than_equal": "must be <= {le}",
        "missing": "is required",
        "extra_forbidden": "unknown key (check the spelling; allowed keys are in `vpp schema`)",
        "string_pattern_mismatch": "must match {pattern}",
        "too_short": "must have at least {min_length} item(s)",
        "float_parsing": "must be a number",
        "float_type": "must be a number",
        "finite_number": "must be a finite number (inf and nan are not allowed)",
        "int_parsing": "must be an integer",
        "int_type": "must be an integer",
        "int_from_float": "must be an integer",
        "bool_type": "must be true or false",
        "bool_parsing": "must be true or false",
        "string_type": "must be a string",
        "date_from_datetime_parsing": "must be a date YYYY-MM-DD",
        "date_parsing": "must be a date YYYY-MM-DD",
        "date_type": "must be a date YYYY-MM-DD",
        "time_parsing": "must be a time HH:MM",
        "time_type": "must be a time HH:MM",
        "list_type": "must be a list",
        "model_type": "must be a table",
        "literal_error": "must be one of {expected}",
        "union_tag_invalid": "must be one of {expected_tags}",
        "union_tag_not_found": "needs a '{discriminator}' key",
    }
    if kind in simple:
        shown = {k: f"{v:g}" if isinstance(v, float) else v for k, v in ctx.items()}
        try:
            return simple[kind].format(**shown)
        except KeyError:
            pass
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return str(error["msg"])


def _issues_from_validation(file: str, exc: ValidationError) -> list[ConfigIssue]:
    issues = []
    for error in exc.errors():
        loc = list(error["loc"])
        # Drop the discriminator tag pydantic inserts into union locations (assets.0.battery.x).
        loc = [p for p in loc if p not in ASSET_TYPES and p not in ADAPTER_TYPES]
        value = error.get("input")
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            tag = error.get("ctx", {}).get("discriminator", "'type'").strip("'")
            loc.append(tag)
            value = value.get(tag) if isinstance(value, dict) else value
        if error["type"] in ("number_written_as_text", "number_too_large"):  # raised for the table, names its field
            loc.append(error["ctx"]["field"])
            value = error["ctx"]["value"]
        if error["type"] == "field_error":  # a cross-field check names the field it blames
            loc.extend(error["ctx"]["loc"])
            value = error["ctx"]["value"]
        if isinstance(value, dict):
            value = "{...}"
        if error["type"] == "missing":
            value = None
        issues.append(ConfigIssue(file, _field_path(loc), value, _message(error)))
    return issues


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file or raise :class:`ConfigError` naming it."""
    try:
        raw = path.read_bytes()
        # An editor's UTF-8 byte order mark is not content (tomllib refuses it).
        return tomllib.loads(raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
    except FileNotFoundError as exc:
        what = "broken symlink (its target does not exist)" if path.is_symlink() else "file not found"
        raise ConfigError([ConfigIssue(str(path), "", None, what)]) from exc
    except IsADirectoryError as exc:  # other OS errors (a link loop) go to the CLI's mapping
        raise ConfigError(
            [ConfigIssue(str(path), "", None, f"cannot read ({exc.strerror}); give a TOML file")]
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigIssue(str(path), "", None, f"invalid TOML: {exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(str(path), "", None, "not UTF-8 text")]) from exc


def _parse(model: type[M], path: Path, data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_issues_from_validation(str(path), exc)) from None


def load_market(path: Path) -> MarketConfig:
    """Load one market file. Single-version rule groups may be written as plain tables."""
    data = read_toml(path)
    for group in _RULE_GROUPS:
        if isinstance(data.get(group), dict):
            data[group] = [data[group]]
    return _parse(MarketConfig, path, data)


def load_carbon_region(path: Path) -> FactorSet:
    """Load one carbon region file (``config/carbon/<region>.toml``, :mod:`vpp.carbon.factors`).

    A region's id must match its file name, so ``carbon_region = "cn"`` finds ``cn.toml``.
    """
    factors = _parse(FactorSet, path, read_toml(path))
    if factors.region != path.stem:
        raise ConfigError(
            [
                ConfigIssue(
                    str(path), "region", factors.region, f"must be the file's name, {path.stem!r}"
                )
            ]
        )
    return factors.read_from(str(path))


def park_cross_issues(file: str, park: ParkConfig, config_dir: Path) -> Iterator[ConfigIssue]:
    names: dict[str, int] = {}
    for i, fuel in enumerate(park.fuels):
        if fuel.name in names:
            yield ConfigIssue(
                file,
                f"fuels[{i}].name",
                fuel.name,
                f"duplicate fuel name (also fuels[{names[fuel.name]}])",
            )
        names.setdefault(fuel.name, i)
    yield from heat_system_issues(file, park.assets, park.heat_levels)
    for i, level in enumerate(park.heat_levels):
        sources: list[tuple[str, FileSource | None]] = [("demand_profile", level.demand_profile)]
        if level.space_heating is not None:
            sources.append(("space_heating.weather", level.space_heating.weather))
        for name, source in sources:
            if source is not None and not resolve_path(config_dir, source.path).is_file():
                yield ConfigIssue(
                    file, f"heat_levels[{i}].{name}.path", str(source.path),
                    f"file not found (resolved to {resolve_path(config_dir, source.path)})",
                )
    seen: dict[str, int] = {}
    for i, asset in enumerate(park.assets):
        where = f"assets[{i}]"
        if asset.id in seen:
            yield ConfigIssue(
                file, f"{where}.id", asset.id, f"duplicate asset id (also assets[{seen[asset.id]}])"
            )
        seen.setdefault(asset.id, i)
        yield from asset.config_issues(file, where)
        yield from asset.adapter_issues(file, where)
        for name in type(asset).model_fields:  # its data files, whatever the type calls them
            source = getattr(asset, name)
            if isinstance(source, FileSource):
                resolved = resolve_path(config_dir, source.path)
                if not resolved.is_file():
                    yield ConfigIssue(
                        file,
                        f"{where}.{name}.path",
                        str(source.path),
                        f"file not found (resolved to {resolved})",
                    )


def resolve_path(config_dir: Path, path: Path) -> Path:
    """Resolve ``path`` from a config file: relative paths are relative to its folder."""
    return path if path.is_absolute() else (config_dir / path).resolve()


def _offset_difference(park_tz: str, market_tz: str) -> tuple[dt.datetime, str, str] | None:
    """The first sampled instant at which two zones' clocks differ, or None.

    Samples noon UTC of every day of 2015-2030 (covers DST rules on both sides).
    """
    first = dt.datetime(2015, 1, 1, 12, tzinfo=dt.UTC)
    park_zone, market_zone = zone(park_tz), zone(market_tz)
    for days in range(16 * 366):
        when = first + dt.timedelta(days=days)
        a, b = when.astimezone(park_zone).utcoffset(), when.astimezone(market_zone).utcoffset()
        if a != b:
            return (
                when,
                when.astimezone(park_zone).strftime("%z"),
                when.astimezone(market_zone).strftime("%z"),
            )
    return None


def _park_market_issues(
    file: str, park: ParkConfig, market: MarketConfig, market_file: Path | None
) -> Iterator[ConfigIssue]:
    """What a park file and its market file must agree on (both files are named)."""
    where = f"market {market.id} ({market_file})" if market_file else f"market {market.id}"
    if park.timezone != market.timezone:
        differ = _offset_difference(park.timezone, market.timezone)
        if differ is not None:
            when, park_offset, market_offset = differ
            yield ConfigIssue(
                file,
                "timezone",
                park.timezone,
                f"differs from {where} timezone {market.timezone!r} (UTC{park_offset} vs "
                f"UTC{market_offset} on {when.date()}): delivery days are in the market's "
                "zone and profiles would be shifted; use the market's zone or one with the "
                "same clock",
            )


def load_park(
    path: Path,
    markets: dict[str, MarketConfig] | None = None,
    market_files: dict[str, Path] | None = None,
) -> ParkConfig:
    """Load one park file; with ``markets``, also check its market exists and agrees with it
    (same clock as the market's time zone). ``market_files`` names the market files in
    messages."""
    return check_park(read_toml(path), str(path), path.parent, markets, market_files)


def load_park_text(
    text: str,
    file: str,
    config_dir: Path,
    markets: dict[str, MarketConfig] | None = None,
    market_files: dict[str, Path] | None = None,
) -> ParkConfig:
    """A park file's content received as text (the API's upload), checked exactly like
    :func:`load_park`; messages name ``file``, relative paths resolve from ``config_dir``."""
    try:
        data = tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigIssue(file, "", None, f"invalid TOML: {exc}")]) from exc
    return check_park(data, file, config_dir, markets, market_files)


def check_park(
    data: dict[str, Any],
    file: str,
    config_dir: Path,
    markets: dict[str, MarketConfig] | None = None,
    market_files: dict[str, Path] | None = None,
) -> ParkConfig:
    """Validate a park file's parsed content: the one check behind ``vpp enroll`` and the API."""
    park = _parse(ParkConfig, Path(file), data)
    issues = list(park_cross_issues(file, park, config_dir))
    if markets is not None and park.market not in markets:
        known = ", ".join(sorted(markets)) or "none found"
        issues.append(
            ConfigIssue(file, "market", park.market, f"unknown market; known: {known}")
        )
    elif markets is not None:
        market_file = (market_files or {}).get(park.market)
        issues += _park_market_issues(file, park, markets[park.market], market_file)
    if issues:
        raise ConfigError(issues)
    return park


def _market_portfolio_issues(config: ConfigSet) -> Iterator[ConfigIssue]:
    """A market's parks together must be able to bid at least one lot."""
    for market_id, market in config.markets.items():
        parks = config.parks_in(market_id)
        if not parks:
            continue
        lot_kw = market.bidding[-1].min_lot_mw * 1000.0
        reach_kw = sum(max(p.grid.import_limit_kw, p.grid.export_limit_kw) for p in parks)
        if reach_kw < lot_kw:
            park = parks[0]
            yield ConfigIssue(
                str(config.park_files[park.id]),
                "grid.import_limit_kw",
                park.grid.import_limit_kw,
                f"the parks of market {market_id} reach at most {reach_kw:g} kW, less than one "
                f"bid lot of {lot_kw:g} kW (bidding.min_lot_mw in "
                f"{config.market_files.get(market_id, market_id)}): no bid could ever be awarded",
            )


def _carbon_region_issues(config: ConfigSet) -> Iterator[ConfigIssue]:
    """A market's ``carbon_region`` names a loaded region file, and its ``carbon_area`` an area."""
    folder = config.root / config.settings.paths.carbon
    for market_id, market in config.markets.items():
        file = str(config.market_files.get(market_id, market_id))
        if market.carbon_region is None:
            if market.carbon_area is not None:
                yield ConfigIssue(file, "carbon_area", market.carbon_area, "needs carbon_region")
            continue
        region = config.carbon.get(market.carbon_region)
        if region is None and (folder / f"{market.carbon_region}.toml").exists():
            continue  # the region file is there but invalid: its own issues say why
        if region is None:
            known = ", ".join(sorted(config.carbon)) or "none found"
            yield ConfigIssue(
                file,
                "carbon_region",
                market.carbon_region,
                f"no carbon region file {folder / (market.carbon_region + '.toml')} "
                f"(known: {known})",
            )
        elif market.carbon_area is not None and market.carbon_area not in {
            f.area for f in region.factors
        }:
            areas = ", ".join(sorted({f.area for f in region.factors})) or "none"
            yield ConfigIssue(
                file,
                "carbon_area",
                market.carbon_area,
                f"not an area of {region.where()} (areas: {areas})",
            )


def load_settings(path: Path) -> Settings:
    return _parse(Settings, path, read_toml(path))


def load_sweep(path: Path) -> SweepSpec:
    """A sweep file (``vpp backtest --sweep``), validated; its price paths made absolute."""
    spec = _parse(SweepSpec, path, read_toml(path))
    if spec.markets is not None:
        spec = spec.model_copy(
            update={
                "markets": [
                    m.model_copy(update={"prices": resolve_path(path.parent, m.prices)})
                    for m in spec.markets
                ]
            }
        )
    return spec


@dataclass
class ConfigSet:
    """Everything loaded from a config folder."""

    root: Path
    settings: Settings
    markets: dict[str, MarketConfig] = field(default_factory=dict)
    parks: dict[str, ParkConfig] = field(default_factory=dict)
    park_files: dict[str, Path] = field(default_factory=dict)
    market_files: dict[str, Path] = field(default_factory=dict)
    #: Carbon region files by region id (``config/carbon/*.toml``; none if the folder is absent).
    carbon: dict[str, FactorSet] = field(default_factory=dict)

    @property
    def project_root(self) -> Path:
        """The folder that holds ``config/`` (relative store paths resolve here)."""
        return self.root.parent

    def parks_in(self, market_id: str) -> list[ParkConfig]:
        return [p for p in self.parks.values() if p.market == market_id]


def _toml_files(folder: Path) -> list[Path]:
    """Every ``*.toml`` entry of ``folder``: a folder, broken link or link loop under that
    name is kept, so reading it reports it instead of a park silently going missing."""
    return sorted(folder.glob("*.toml"))


def load_config(root: Path | str) -> ConfigSet:
    """Load ``vpp.toml``, every market and every park under a config folder.

    ``root`` may be the folder or the ``vpp.toml`` file. Raises one
    :class:`ConfigError` listing every problem found in every file.
    """
    root = Path(root)
    settings_file = root if root.is_file() else root / "vpp.toml"
    root = settings_file.parent
    issues: list[ConfigIssue] = []
    settings = Settings()
    if settings_file.is_file() or settings_file.exists() or settings_file.is_symlink():
        try:
            settings = load_settings(settings_file)
        except ConfigError as exc:
            issues.extend(exc.issues)
    config = ConfigSet(root=root, settings=settings)
    markets_dir = root / settings.paths.markets
    parks_dir = root / settings.paths.parks
    for path in _toml_files(markets_dir):
        try:
            market = load_market(path)
        except ConfigError as exc:
            issues.extend(exc.issues)
            continue
        if market.id in config.markets:
            issues.append(ConfigIssue(str(path), "id", market.id, "duplicate market id"))
        config.markets[market.id] = market
        config.market_files[market.id] = path
    for path in _toml_files(root / settings.paths.carbon):
        try:
            config.carbon[path.stem] = load_carbon_region(path)
        except ConfigError as exc:
            issues.extend(exc.issues)
    issues += _carbon_region_issues(config)
    for path in _toml_files(parks_dir):
        try:
            park = load_park(path, config.markets, config.market_files)
        except ConfigError as exc:
            issues.extend(exc.issues)
            continue
        if park.id in config.parks:
            issues.append(
                ConfigIssue(
                    str(path),
                    "id",
                    park.id,
                    f"duplicate park id (also {config.park_files[park.id]})",
                )
            )
        config.parks[park.id] = park
        config.park_files[park.id] = path
    if not config.markets and not issues:
        issues.append(ConfigIssue(str(markets_dir), "", None, "no market files found"))
    issues += _market_portfolio_issues(config)
    if issues:
        raise ConfigError(issues)
    review_config(config)  # registers secret values, logs config_warning (vpp.config._warnings)
    return config


def _kind(path: Path, data: dict[str, Any]) -> str:
    if path.name == "vpp.toml":
        return "settings"
    if path.parent.name == "carbon" or "factors" in data:
        return "carbon"
    if path.parent.name == "markets" or "bidding" in data or "price_limits" in data:
        return "market"
    return "park"


def validate_paths(paths: Iterable[Path]) -> tuple[int, list[ConfigIssue]]:
    """Validate files and folders; return (files checked, every issue found).

    A folder containing ``vpp.toml`` (or ``markets/`` and ``parks/``) is
    validated as a whole config set, including cross-file references. A
    single park file is checked against the markets in ``../markets``
    next to it when that folder exists.
    """
    issues: list[ConfigIssue] = []
    count = 0
    for path in paths:
        if path.is_dir() and ((path / "vpp.toml").exists() or (path / "markets").is_dir()):
            files = [path / "vpp.toml"] if (path / "vpp.toml").exists() else []
            try:
                cfg = load_config(path)
                files += _toml_files(path / cfg.settings.paths.markets)
                files += _toml_files(path / cfg.settings.paths.parks)
                files += _toml_files(path / cfg.settings.paths.carbon)
            except ConfigError as exc:
                issues.extend(exc.issues)
                files += _toml_files(path / "markets") + _toml_files(path / "parks")
            count += len(files)
            continue
        files = _toml_files(path) if path.is_dir() else [path]
        if not files:
            issues.append(ConfigIssue(str(path), "", None, "no .toml files found"))
        for file in files:
            count += 1
            try:
                data = read_toml(file)
                kind = _kind(file, data)
                if kind == "settings":
                    load_settings(file)
                elif kind == "carbon":
                    load_carbon_region(file)
                elif kind == "market":
                    load_market(file)
                else:
                    markets_dir = file.parent.parent / "markets"
                    markets = None
                    market_files: dict[str, Path] = {}
                    if markets_dir.is_dir():
                        markets = {}
                        for m in _toml_files(markets_dir):
                            try:
                                loaded = load_market(m)
                                markets[loaded.id] = loaded
                                market_files[loaded.id] = m
                            except ConfigError:
                                continue
                    load_park(file, markets, market_files)
            except ConfigError as exc:
                issues.extend(exc.issues)
    return count, issues

"""Typed specs of parks, assets, adapters, markets and settings.

Every spec is a pydantic model with ``extra="forbid"`` so a typo in a config
file is an error, never silently ignored. Field descriptions carry units in
brackets, as pvlib does; the JSON Schema printed by ``vpp schema`` is built
from them.

Power sign convention: see :mod:`vpp.units`. Limits here are positive
magnitudes.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from vpp.timeutil import zone

Id = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="Identifier: lower-case letters, digits, '-' and '_', at most 63 characters",
    ),
]


class Spec(BaseModel):
    """Base of every config spec: unknown keys are rejected, numbers must be finite.

    ``inf``/``-inf``/``nan`` (which TOML accepts) are refused in every numeric
    field: no field means "unlimited" by an infinite value. Where a limit is
    optional, leaving it out (``None``) is the documented way to say "no limit"
    or "the default", as each field's description states.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, allow_inf_nan=False
    )

    @model_validator(mode="before")
    @classmethod
    def _numbers_are_written_as_numbers(cls, data: Any) -> Any:
        """``power_kw = true`` (1 kW) or ``power_kw = "2000"`` is a mistake, not a number.

        pydantic's lax mode would convert both; a numeric field takes a TOML number.
        """
        if not isinstance(data, dict):
            return data
        for name, value in data.items():
            field = cls.model_fields.get(name) if isinstance(name, str) else None
            if (
                isinstance(value, bool | str)
                and field is not None
                and _numeric_only(field.annotation)
            ):
                kind = "true/false" if isinstance(value, bool) else "a quoted string"
                raise PydanticCustomError(
                    "number_written_as_text",
                    "must be a number written without quotes, not {kind}",
                    {"kind": kind, "field": name, "value": value},
                )
            if (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and field is not None
                and _numeric_only(field.annotation, float)
                and LARGEST_NUMBER < abs(value) < math.inf  # inf/nan: "must be finite"
            ):
                raise PydanticCustomError(
                    "number_too_large",
                    "must be within ±1e9: a number this large is a typo or a wrong unit",
                    {"field": name, "value": value},
                )
        return data


LARGEST_NUMBER = 1e9
"""Bound on every float config field: 1e9 kW, kWh, s or per MWh is beyond any park or market,
and values past it (``power_kw = 1e300``) wreck the solver's scaling."""


def _numeric_only(annotation: Any, needs: type | None = None) -> bool:
    """True if ``annotation`` is int or float, optionally ``| None`` (and includes ``needs``)."""
    members = [m for m in get_args(annotation) if m is not type(None)] if get_origin(
        annotation
    ) in (Union, UnionType) else [annotation]
    numeric = bool(members) and all(m in (int, float) for m in members)
    return numeric and (needs is None or needs in members)


def _check_timezone(value: str) -> str:
    zone(value)  # raises ValueError with the allowed form
    return value


def _divides_day(value: int) -> int:
    if value <= 0 or 1440 % value:
        raise ValueError("must divide a day into whole intervals (5, 15, 30, 60, ...)")
    return value


def _check_env_name(value: str | None) -> str | None:
    if value is not None and not value.replace("_", "").isalnum():
        raise ValueError(
            "must be the NAME of an environment variable (letters, digits, '_'), "
            "never the secret itself"
        )
    return value


# --------------------------------------------------------------------------- adapters


class SimulatedAdapter(Spec):
    """A simulated device with physics, used by the backtest and the demo."""

    type: Literal["simulated"] = "simulated"
    seed: int = Field(0, description="Random seed for telemetry noise")
    telemetry_noise_kw: float = Field(0.0, ge=0, description="Std-dev of telemetry noise [kW]")


class ModbusSunSpecAdapter(Spec):
    """A battery or inverter speaking SunSpec over Modbus TCP."""

    type: Literal["modbus-sunspec"]
    host: str = Field(description="Host name or IP address of the Modbus TCP server")
    port: int = Field(502, ge=1, le=65535)
    unit_id: int = Field(1, ge=0, le=255, description="Modbus unit (slave) id")
    timeout_s: float = Field(3.0, gt=0, le=60, description="Request timeout [s]")
    poll_interval_s: float = Field(5.0, gt=0, description="Telemetry poll period [s]")
    revert_timeout_s: float = Field(
        60.0, gt=0, description="Device reverts its setpoint after this long without a write [s]"
    )
    stale_after_s: float = Field(30.0, gt=0, description="Telemetry older than this is stale [s]")
    base_address: int = Field(40000, ge=0, le=65535, description="SunSpec base register")


class OcppAdapter(Spec):
    """EV chargers speaking OCPP-J; vpp acts as the central system."""

    type: Literal["ocpp"]
    version: Literal["1.6", "2.0.1"] = "1.6"
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(9000, ge=1, le=65535)
    charge_point_ids: list[str] = Field(min_length=1, description="Expected charge point ids")
    username_env: str | None = Field(None, description="Env var holding the basic-auth user")
    password_env: str | None = Field(None, description="Env var holding the basic-auth password")
    stale_after_s: float = Field(120.0, gt=0, description="Telemetry older than this is stale [s]")

    _env = field_validator("username_env", "password_env")(_check_env_name)


class HttpAdapter(Spec):
    """A process controller with a JSON REST interface."""

    type: Literal["http"]
    base_url: str = Field(pattern=r"^https?://", description="Base URL of the controller API")
    token_env: str | None = Field(None, description="Env var holding the bearer token")
    timeout_s: float = Field(5.0, gt=0, le=120, description="Request timeout [s]")
    retries: int = Field(3, ge=0, le=10, description="Retries after a failed request")
    backoff_s: float = Field(0.5, ge=0, description="First retry delay, doubled each retry [s]")
    stale_after_s: float = Field(60.0, gt=0, description="Telemetry older than this is stale [s]")

    _env = field_validator("token_env")(_check_env_name)


AdapterSpec = Annotated[
    SimulatedAdapter | ModbusSunSpecAdapter | OcppAdapter | HttpAdapter,
    Field(discriminator="type"),
]
ADAPTER_TYPES = ("simulated", "modbus-sunspec", "ocpp", "http")


# --------------------------------------------------------------------------- data sources


class FileSource(Spec):
    """A data file. Relative paths are resolved against the config file's folder."""

    path: Path = Field(description="CSV file; relative to the config file's folder")
    format: str = Field(description="Reader name, e.g. 'acn-caltech', 'steel-plant-uci', 'tmy3'")
    align: Literal["weekday", "day-of-year"] = Field(
        "weekday",
        description="How a simulated day maps onto the source's year: the same weekday in the "
        "same week of year ('weekday'), or the same calendar day ('day-of-year')",
    )
    scale: float = Field(1.0, gt=0, description="Multiplier applied to the source's values")


class SessionsSource(FileSource):
    format: Literal["acn-caltech"] = "acn-caltech"
    station_ids: list[str] | None = Field(None, description="Only sessions at these stations")


class LoadProfileSource(FileSource):
    format: Literal["steel-plant-uci", "csv-kw"] = "steel-plant-uci"
    column: str = Field("Usage_kWh", description="Column holding the load")


class PvProfileSource(FileSource):
    format: Literal["tmy3"] = "tmy3"
    align: Literal["weekday", "day-of-year"] = "day-of-year"


# --------------------------------------------------------------------------- assets


class AssetBase(Spec):
    id: Id
    name: str | None = None
    adapter: AdapterSpec = Field(default_factory=SimulatedAdapter)


class BatterySpec(AssetBase):
    """A stationary battery."""

    type: Literal["battery"]
    power_kw: float = Field(gt=0, description="Rated charge and discharge power [kW]")
    charge_power_kw: float | None = Field(
        None, gt=0, description="Charge limit if not power_kw [kW]"
    )
    discharge_power_kw: float | None = Field(
        None, gt=0, description="Discharge limit if not power_kw [kW]"
    )
    energy_kwh: float = Field(gt=0, description="Usable nameplate energy [kWh]")
    charge_efficiency: float = Field(0.95, gt=0, le=1, description="Charging efficiency (0, 1]")
    discharge_efficiency: float = Field(0.95, gt=0, le=1, description="Discharge efficiency (0, 1]")
    soc_min: float = Field(0.0, ge=0, le=1, description="Lowest state of charge [fraction]")
    soc_max: float = Field(1.0, ge=0, le=1, description="Highest state of charge [fraction]")
    soc_initial: float = Field(0.5, ge=0, le=1, description="State of charge at start [fraction]")
    soc_final: Literal["initial", "free", "valued"] = Field(
        "initial",
        description="End-of-horizon policy: back to at least soc_initial, free, or stored energy "
        "valued at terminal_value_per_mwh",
    )
    terminal_value_per_mwh: float = Field(
        0.0, ge=0, description="Value of energy left at the horizon end [currency/MWh]"
    )
    degradation_cost_per_mwh: float = Field(
        0.0, ge=0, description="Wear cost per MWh of throughput (charge + discharge) [currency/MWh]"
    )

    @property
    def charge_limit_kw(self) -> float:
        return self.charge_power_kw or self.power_kw

    @property
    def discharge_limit_kw(self) -> float:
        return self.discharge_power_kw or self.power_kw


class EvChargingSpec(AssetBase):
    """An EV charging hub: sessions arrive, state energy and departure, and must be served."""

    type: Literal["ev_charging"]
    chargers: int = Field(gt=0, description="Number of charge points")
    charger_power_kw: float = Field(gt=0, description="Maximum power of each charge point [kW]")
    hub_power_kw: float | None = Field(
        None,
        gt=0,
        description="Limit of the hub's connection; default chargers x charger power [kW]",
    )
    sessions: SessionsSource = Field(description="Sessions replayed in simulation")

    @property
    def hub_limit_kw(self) -> float:
        return self.hub_power_kw or self.chargers * self.charger_power_kw


class FlexibleProcessSpec(AssetBase):
    """An industrial load that can shift consumption within limits."""

    type: Literal["flexible_process"]
    baseline: LoadProfileSource = Field(description="Baseline consumption profile")
    max_power_kw: float = Field(gt=0, description="Highest consumption the process can draw [kW]")
    shift_up_kw: float = Field(ge=0, description="Most consumption can rise above baseline [kW]")
    shift_down_kw: float = Field(ge=0, description="Most consumption can fall below baseline [kW]")
    recovery_window_h: float = Field(
        gt=0, le=24, description="Energy shifted must be recovered within this window [h]"
    )
    ramp_limit_kw_per_min: float | None = Field(
        None,
        gt=0,
        description="Largest change of consumption per minute; leave out for no ramp limit "
        "(unlimited) [kW/min]",
    )


class PvSpec(AssetBase):
    """A PV plant; curtailable if its inverters accept a limit."""

    type: Literal["pv"]
    capacity_kwp: float = Field(gt=0, description="DC nameplate [kWp]")
    inverter_kw: float | None = Field(None, gt=0, description="AC limit; default capacity_kwp [kW]")
    performance_ratio: float = Field(0.85, gt=0, le=1, description="System losses factor")
    curtailable: bool = True
    profile: PvProfileSource = Field(description="Irradiance source for simulation and forecasts")


AssetSpec = Annotated[
    BatterySpec | EvChargingSpec | FlexibleProcessSpec | PvSpec, Field(discriminator="type")
]
ASSET_TYPES = ("battery", "ev_charging", "flexible_process", "pv")


# --------------------------------------------------------------------------- park


class GridConnection(Spec):
    import_limit_kw: float = Field(gt=0, description="Most power the park may draw [kW]")
    export_limit_kw: float = Field(ge=0, description="Most power the park may inject [kW]")
    node: str | None = Field(None, description="Market clearing node, where the market has nodes")


class ParkConfig(Spec):
    """One industrial park: its grid connection and flexible assets."""

    id: Id
    name: str
    market: str = Field(description="Id of the market file this park bids into")
    timezone: str = Field(description="IANA time zone of the park, e.g. Asia/Shanghai")
    grid: GridConnection
    assets: list[AssetSpec] = Field(min_length=1)

    _tz = field_validator("timezone")(_check_timezone)


# --------------------------------------------------------------------------- market


class Rule(Spec):
    """A market rule with its provenance."""

    source: str = Field(min_length=3, description="Document or web page defining the rule")
    effective_date: dt.date = Field(description="Date the rule took effect")


class DayAheadRule(Rule):
    gate_closure_local: dt.time = Field(description="Gate closure, market-local time")
    gate_closure_day_offset: int = Field(
        -1, le=0, ge=-7, description="Days before delivery day of gate closure (-1 = D-1)"
    )
    publication_local: dt.time = Field(description="Day-ahead results published, local time")
    publication_day_offset: int = Field(-1, le=0, ge=-7)
    interval_minutes: int = Field(description="Day-ahead product length [min]")

    @field_validator("interval_minutes")
    @classmethod
    def _product_divides_day(cls, value: int) -> int:
        return _divides_day(value)

    @model_validator(mode="after")
    def _publication_after_gate(self) -> DayAheadRule:
        gate = (self.gate_closure_day_offset, self.gate_closure_local)
        pub = (self.publication_day_offset, self.publication_local)
        if pub < gate:
            raise ValueError("publication must not be before gate closure")
        return self


class RealTimeRule(Rule):
    settlement_interval_minutes: int = Field(description="Real-time settlement period [min]")

    @field_validator("settlement_interval_minutes")
    @classmethod
    def _period_divides_day(cls, value: int) -> int:
        return _divides_day(value)


class PriceLimits(Rule):
    floor_per_mwh: float = Field(description="Lowest allowed bid/clearing price [currency/MWh]")
    cap_per_mwh: float = Field(description="Highest allowed bid/clearing price [currency/MWh]")
    applies_to: list[Literal["day_ahead", "real_time"]] = Field(
        ["day_ahead", "real_time"],
        min_length=1,
        description="Price columns this floor/cap bounds in price files: day_ahead (da_*) "
        "and/or real_time (rt_*); leave real_time out where real-time prices may "
        "legitimately go beyond the day-ahead limits",
    )

    @model_validator(mode="after")
    def _floor_below_cap(self) -> PriceLimits:
        if self.floor_per_mwh >= self.cap_per_mwh:
            raise ValueError("floor_per_mwh must be < cap_per_mwh")
        return self


class BiddingRule(Rule):
    mode: Literal["price_quantity", "quantity_only"]
    max_segments: int = Field(ge=1, le=1000, description="Most price-quantity points per curve")
    min_lot_mw: float = Field(gt=0, description="Quantities are multiples of this [MW]")
    price_tick_per_mwh: float = Field(0.01, gt=0, description="Price granularity [currency/MWh]")
    curve: Literal["step", "linear"] = Field(
        "step", description="How the exchange reads a curve between its points"
    )


class SettlementRule(Rule):
    rule: Literal["two_settlement", "two_price_imbalance"] = Field(
        description="two_settlement: DA award x DA price + (actual - award) x RT price; "
        "two_price_imbalance: deviations at the up/down regulating price"
    )


class MarketConfig(Spec):
    """A market's rules. Each rule group may list several versions by effective date."""

    id: Id
    name: str
    timezone: str
    interval_minutes: int = Field(
        description="Finest interval of the current rules (min of the day-ahead product and the "
        "real-time settlement period); schedules and canonical prices use it [min]"
    )
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. CNY")
    day_ahead: list[DayAheadRule] = Field(min_length=1)
    real_time: list[RealTimeRule] = Field(min_length=1)
    price_limits: list[PriceLimits] = Field(min_length=1)
    bidding: list[BiddingRule] = Field(min_length=1)
    settlement: list[SettlementRule] = Field(min_length=1)

    _tz = field_validator("timezone")(_check_timezone)

    @field_validator("interval_minutes")
    @classmethod
    def _market_interval_divides_day(cls, value: int) -> int:
        return _divides_day(value)

    @field_validator("day_ahead", "real_time", "price_limits", "bidding", "settlement")
    @classmethod
    def _distinct_dates(cls, versions: list[Rule]) -> list[Rule]:
        dates = [v.effective_date for v in versions]
        if len(set(dates)) != len(dates):
            raise ValueError("two versions share one effective_date")
        return sorted(versions, key=lambda v: v.effective_date)

    @model_validator(mode="after")
    def _interval_matches_latest_rules(self) -> MarketConfig:
        latest = min(
            self.day_ahead[-1].interval_minutes, self.real_time[-1].settlement_interval_minutes
        )
        if latest != self.interval_minutes:
            raise ValueError(
                f"interval_minutes = {self.interval_minutes} but the latest rules give {latest} "
                "(min of day_ahead.interval_minutes and real_time.settlement_interval_minutes)"
            )
        for version in self.day_ahead:
            in_force = [r for r in self.real_time if r.effective_date <= version.effective_date]
            rt = (in_force or self.real_time)[-1].settlement_interval_minutes
            if version.interval_minutes % rt and rt % version.interval_minutes:
                raise ValueError(
                    f"day_ahead interval {version.interval_minutes} min and real-time settlement "
                    f"{rt} min must nest (one a multiple of the other)"
                )
        return self

    def rules_on(self, day: dt.date) -> MarketRules:
        """The rules in force on delivery ``day``."""

        def pick(versions: list[Any], group: str) -> Any:
            valid = [v for v in versions if v.effective_date <= day]
            if not valid:
                raise ValueError(
                    f"market {self.id}: no {group} rule in force on {day}; "
                    f"earliest is {versions[0].effective_date}"
                )
            return valid[-1]

        day_ahead = pick(self.day_ahead, "day_ahead")
        real_time = pick(self.real_time, "real_time")
        return MarketRules(
            market_id=self.id,
            timezone=self.timezone,
            interval_minutes=min(day_ahead.interval_minutes, real_time.settlement_interval_minutes),
            currency=self.currency,
            day_ahead=day_ahead,
            real_time=real_time,
            price_limits=pick(self.price_limits, "price_limits"),
            bidding=pick(self.bidding, "bidding"),
            settlement=pick(self.settlement, "settlement"),
        )


class MarketRules(Spec):
    """A snapshot of one market's rules on one delivery day."""

    market_id: str
    timezone: str
    interval_minutes: int = Field(description="Schedule/settlement interval on that day [min]")
    currency: str
    day_ahead: DayAheadRule
    real_time: RealTimeRule
    price_limits: PriceLimits
    bidding: BiddingRule
    settlement: SettlementRule

    def gate_closure(self, delivery_day: dt.date) -> dt.datetime:
        """Day-ahead gate closure for ``delivery_day`` as a tz-aware UTC datetime."""
        local = dt.datetime.combine(
            delivery_day + dt.timedelta(days=self.day_ahead.gate_closure_day_offset),
            self.day_ahead.gate_closure_local,
            tzinfo=zone(self.timezone),
        )
        return local.astimezone(dt.UTC)

    def da_publication(self, delivery_day: dt.date) -> dt.datetime:
        """When day-ahead results for ``delivery_day`` become known (UTC)."""
        local = dt.datetime.combine(
            delivery_day + dt.timedelta(days=self.day_ahead.publication_day_offset),
            self.day_ahead.publication_local,
            tzinfo=zone(self.timezone),
        )
        return local.astimezone(dt.UTC)


# --------------------------------------------------------------------------- settings


class StoreSettings(Spec):
    url: str = Field(
        "sqlite:///var/vpp.db",
        description="SQLAlchemy URL; relative sqlite paths are relative to the project root. "
        "VPP_DATABASE_URL overrides it.",
    )

    def resolved_url(self, root: Path) -> str:
        url = os.environ.get("VPP_DATABASE_URL", self.url)
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            url = prefix + str((root / url[len(prefix) :]).resolve())
        return url


class PathSettings(Spec):
    parks: Path = Field(Path("parks"), description="Folder of park files, relative to vpp.toml")
    markets: Path = Field(Path("markets"), description="Folder of market files")


class SolverSettings(Spec):
    name: Literal["HIGHS", "ECOS", "CLARABEL"] = "HIGHS"
    time_limit_s: float = Field(60.0, gt=0)


class StrategySettings(Spec):
    """How bids and dispatch are decided; shared by the backtest and the daemon."""

    strategy: str = Field("stochastic", description="Strategy name")
    forecaster: str = Field("persistence", description="Price forecaster name")
    scenarios: int = Field(5, ge=1, le=100, description="Price scenarios for day-ahead bids")
    reoptimise_every: int = Field(
        1, ge=1, le=96, description="Re-solve the real-time problem every N intervals"
    )
    deviation_penalty_per_mwh: float = Field(
        1.0, ge=0, description="Cost per MWh of planned deviation from the award [currency/MWh]"
    )
    rt_forecaster: str | None = Field(
        None,
        description="Forecaster of real-time prices; default: the published day-ahead price",
    )


class BacktestSettings(StrategySettings):
    prices: Path | None = Field(None, description="Canonical price file, relative to vpp.toml")
    start: dt.date | None = None
    end: dt.date | None = None
    out: Path = Field(Path("../out/backtest"), description="Output folder, relative to vpp.toml")
    allow_out_of_rule_prices: bool = Field(
        False,
        description="Backtest a price file holding prices beyond the market's floor/cap in "
        "force (refused by default); the run is then flagged in summary.json and the report",
    )


class DaemonSettings(StrategySettings):
    da_safety_margin_minutes: float = Field(
        30.0, ge=0, description="Submit day-ahead bids this long before gate closure [min]"
    )
    telemetry_poll_s: float = Field(10.0, gt=0)
    dispatch_period_s: float = Field(30.0, gt=0, description="Setpoint re-send period [s]")
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9464, ge=1, le=65535)
    exchange_url: str | None = Field(None, description="Base URL of the exchange API")
    exchange_token_env: str | None = Field(
        "VPP_EXCHANGE_TOKEN",
        description="Env var holding the daemon's bearer token for the exchange (none: no token)",
    )
    exchange_timeout_s: float = Field(10.0, gt=0, le=120, description="HTTP timeout [s]")
    exchange_retries: int = Field(
        3, ge=0, le=10, description="Retries of one exchange call (transport errors, 5xx)"
    )
    exchange_backoff_s: float = Field(
        0.5, ge=0, description="First backoff between retries, doubled each time [s]"
    )
    retry_s: float = Field(
        60.0,
        gt=0,
        description="Re-try a bid (until gate closure), late awards or settlement this often [s]",
    )
    days_ahead: int = Field(1, ge=1, le=7, description="Plan jobs for this many days ahead")
    simulated_days: int = Field(
        31,
        ge=1,
        le=366,
        description="Live mode: days of profile data given to assets with a simulated adapter",
    )

    _token_env = field_validator("exchange_token_env")(_check_env_name)


class Settings(Spec):
    """``config/vpp.toml``: daemon and backtest settings."""

    store: StoreSettings = Field(default_factory=StoreSettings)
    paths: PathSettings = Field(default_factory=PathSettings)
    solver: SolverSettings = Field(default_factory=SolverSettings)
    backtest: BacktestSettings = Field(default_factory=BacktestSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)

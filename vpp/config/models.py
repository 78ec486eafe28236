"""Typed specs of parks, assets, adapters, markets and settings.

Every spec is a pydantic model with ``extra="forbid"`` so a typo in a config
file is an error, never silently ignored. Field descriptions carry units in
brackets, as pvlib does; the JSON Schema printed by ``vpp schema`` is built
from them.

The base of every spec is :class:`vpp.spec.Spec`; each asset type's spec
lives in its own module of :mod:`vpp.assets` (found through its registry,
:data:`vpp.assets.ASSET_TYPES`) and is re-exported here, with the adapter
and data-source specs of :mod:`vpp.assets.base`.

Power sign convention: see :mod:`vpp.units`. Limits here are positive
magnitudes.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import (
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from vpp.assets import ASSET_TYPES as _REGISTRY
from vpp.assets import (
    AssetBase,
    AssetSpec,
    BatterySpec,
    ElectricBoilerSpec,
    ElectrolyserSpec,
    EvChargingSpec,
    FlexibleProcessSpec,
    HeatPumpSpec,
    HydrogenStorageSpec,
    PvSpec,
    ThermalStorageSpec,
)
from vpp.assets.base import (
    ADAPTER_TYPES,
    AdapterSpec,
    FileSource,
    HttpAdapter,
    LoadProfileSource,
    ModbusAdapter,
    ModbusRegister,
    ModbusSunSpecAdapter,
    OcppAdapter,
    PvProfileSource,
    SessionsSource,
    SimulatedAdapter,
)
from vpp.assets.commodities import HeatLevel
from vpp.errors import InputError
from vpp.spec import (
    LARGEST_NUMBER,
    Id,
    Spec,
    _check_env_name,
    _check_timezone,
    _divides_day,
)
from vpp.timeutil import day_intervals_utc, require_aware, zone

# --------------------------------------------------------------------------- assets

ASSET_TYPES = tuple(_REGISTRY)
"""The ``type`` strings of park files, in registry order."""


# --------------------------------------------------------------------------- park


class GridConnection(Spec):
    import_limit_kw: float = Field(gt=0, description="Most power the park may draw [kW]")
    export_limit_kw: float = Field(ge=0, description="Most power the park may inject [kW]")
    node: str | None = Field(None, description="Market clearing node, where the market has nodes")


class FuelSpec(Spec):
    """An on-site fuel the park burns (scope 1), e.g. natural gas for a boiler.

    Give the quantity per year or per day (not both) in ``unit``; emissions are
    quantity x ``emission_factor_tco2_per_unit``, energy quantity x ``tce_per_unit``
    (its standard-coal equivalent, e.g. GB/T 2589-2020 Appendix A).
    """

    name: str = Field(min_length=1, description="What is burnt, e.g. 'natural gas (boiler)'")
    unit: str = Field(min_length=1, description="Unit of the quantity, e.g. m3, t, GJ")
    quantity_per_year: float | None = Field(None, gt=0, description="Quantity burnt a year [unit]")
    quantity_per_day: float | None = Field(None, gt=0, description="Quantity burnt a day [unit]")
    emission_factor_tco2_per_unit: float = Field(
        ge=0, le=100, description="CO2 emitted per unit burnt [tCO2/unit]"
    )
    tce_per_unit: float = Field(
        ge=0, le=100, description="Standard-coal equivalent per unit [tce/unit]"
    )
    source: str = Field(min_length=3, description="Where the factors come from")

    @model_validator(mode="after")
    def _one_quantity(self) -> FuelSpec:
        if (self.quantity_per_year is None) == (self.quantity_per_day is None):
            raise ValueError("give exactly one of quantity_per_year and quantity_per_day")
        return self

    def quantity(self, days: float) -> float:
        """Quantity burnt over ``days`` days [unit] (a year counts 365 days)."""
        if self.quantity_per_day is not None:
            return self.quantity_per_day * days
        return (self.quantity_per_year or 0.0) * days / 365.0


class CarbonBudget(Spec):
    """A park's daily emission budget (``[carbon_budget]`` of the park file).

    The strategy keeps the day's scope 2 location-based emissions under
    ``daily_tco2`` where it can (each tonne above costs ``penalty_per_t`` in
    its objective, see :mod:`strategies.carbon`), and the daemon alerts on
    every settled day above it, naming the hours and assets that drove it.
    """

    daily_tco2: float = Field(gt=0, le=1e6, description="Emissions budget per local day [tCO2]")
    penalty_per_t: float = Field(
        1000.0, ge=0, le=1e6,
        description="Objective cost of each tonne above the budget [currency/tCO2]",
    )


class ParkConfig(Spec):
    """One industrial park: its grid connection and flexible assets."""

    id: Id
    name: str
    market: str = Field(description="Id of the market file this park bids into")
    timezone: str = Field(description="IANA time zone of the park, e.g. Asia/Shanghai")
    grid: GridConnection
    assets: list[AssetSpec] = Field(min_length=1)
    fuels: list[FuelSpec] = Field(
        default_factory=list, description="On-site fuels burnt (scope 1); none by default"
    )
    carbon_budget: CarbonBudget | None = Field(
        None, description="Daily emission budget (scope 2 location-based); none by default"
    )
    heat_levels: list[HeatLevel] = Field(
        default_factory=list,
        description="Temperature levels of the heat system, each with its demand; none by default",
    )

    def heat_level(self, level_id: str) -> HeatLevel | None:
        """The heat level ``level_id``, or None."""
        return next((level for level in self.heat_levels if level.id == level_id), None)

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
    clawback_tolerance_fraction: float | None = Field(
        None,
        ge=0,
        description="Deviation-profit claw-back (超额获利回收, vpp.clawback): tolerance band as a "
        "fraction of the interval's day-ahead award magnitude; the spread profit of the deviation "
        "beyond it is recovered. None: no claw-back [-] (verify against the province's rules)",
    )
    clawback_tolerance_min_mw: float = Field(
        0.0,
        ge=0,
        description="Smallest claw-back band, as mean power over the interval, so an interval "
        "without award still has one [MW]",
    )
    clawback_share: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Fraction of the beyond-band spread profit that is recovered, in (0, 1]",
    )
    clawback_source: str | None = Field(
        None, min_length=3, description="Document defining the claw-back (defaults to source)"
    )

    @model_validator(mode="after")
    def _clawback_fields_need_a_band(self) -> SettlementRule:
        if self.clawback_tolerance_fraction is None:
            given = [
                name
                for name, default in (
                    ("clawback_tolerance_min_mw", 0.0),
                    ("clawback_share", 1.0),
                    ("clawback_source", None),
                )
                if getattr(self, name) != default
            ]
            if given:
                raise ValueError(
                    f"{', '.join(given)} given without clawback_tolerance_fraction; set the band "
                    "(e.g. 0.1) to switch the claw-back on, or leave the clawback_* fields out"
                )
        return self


#: Price columns of the canonical price frame a real-time product may clear against
#: (``market_replay.canonical``); a product with ``has_price_data = true`` must name them.
RT_PRICE_COLUMNS = ("rt_price", "rt_price_up", "rt_price_down")


def _field_error(loc: tuple[str | int, ...], value: Any, message: str) -> PydanticCustomError:
    """A model-level error the loader reports at ``loc`` (a field path), with ``value``."""
    return PydanticCustomError(
        "field_error", message, {"loc": loc, "value": value}
    )


def _midnight_is_end(value: dt.time) -> int:
    """Minutes after local midnight of a delivery window's end; 00:00 is the end of the day."""
    return 1440 if value == dt.time(0) else value.hour * 60 + value.minute


class AuctionSession(Spec):
    """One intraday auction session: its gate and the delivery window it clears."""

    name: str = Field(min_length=1, description="Session name, e.g. IDA1")
    gate_local: dt.time = Field(description="Gate closure of the session, market-local time")
    gate_day_offset: int = Field(
        le=0, ge=-7, description="Days before the delivery day of the gate (-1 = D-1, 0 = D)"
    )
    delivery_start_local: dt.time = Field(
        description="First delivery period's start on the delivery day, market-local time"
    )
    delivery_end_local: dt.time = Field(
        description="End of the last delivery period, market-local time; 00:00 = end of the day"
    )

    @model_validator(mode="after")
    def _window_ordered(self) -> AuctionSession:
        start = self.delivery_start_local.hour * 60 + self.delivery_start_local.minute
        if _midnight_is_end(self.delivery_end_local) <= start:
            raise _field_error(
                ("delivery_end_local",), str(self.delivery_end_local),
                f"must be after delivery_start_local {self.delivery_start_local} "
                "(00:00 = the end of the day)",
            )
        if (self.gate_day_offset, self.gate_local) >= (0, self.delivery_start_local):
            raise _field_error(
                ("gate_local",), str(self.gate_local),
                f"the gate (day offset {self.gate_day_offset}) must be before the delivery "
                f"window starts at {self.delivery_start_local} on the delivery day",
            )
        return self


class RealTimeProduct(Rule):
    """One real-time (or intraday) bid product of a market, one version of it.

    ``kind`` says how a bid is read and cleared (``vpp.market_rules.clear_rt_bid``):

    * ``energy_offer``: one monotone curve per delivery period, cleared against the
      realised real-time price (ERCOT real-time energy offers/bids, CAISO FMM);
    * ``regulating``: separate ``up`` and ``down`` bids per period (Nordic mFRR energy
      activation): an up bid is activated where the up-regulating price >= its price, a
      down bid where the down-regulating price <= its price, both paid the regulating price;
    * ``intraday_auction``: auction sessions (EU IDA1/2/3), each with a gate and a delivery
      window, the day-ahead order types.

    The gate of a period is ``gate_minutes_before`` minutes before the period's start
    (``gate_anchor = "period"``) or before the start of its market-local hour
    (``"hour"``); for auctions it is the gate of the session whose delivery window holds
    the period. Price limits, lot, tick and segments are the product's own, not the
    day-ahead ones.
    """

    id: Id = Field(description="Product id, e.g. rt-energy, mfrr-energy, ida1")
    kind: Literal["energy_offer", "regulating", "intraday_auction"] = Field(
        description="How bids are read and cleared: energy_offer, regulating or intraday_auction"
    )
    enabled: bool = Field(
        True,
        description="Whether the portfolio may bid this product; false: the product exists "
        "for others (e.g. the generator side) and deviations just settle",
    )
    period_minutes: int = Field(description="Delivery period of one bid curve [min]")
    settlement_minutes: int = Field(
        description="Settlement interval a period's award is cleared and paid in [min]"
    )
    gate_minutes_before: int | None = Field(
        None, ge=0, le=7 * 1440,
        description="Gate closure this long before the gate anchor [min] (energy_offer, "
        "regulating)",
    )
    gate_anchor: Literal["period", "hour"] | None = Field(
        None,
        description="What the gate counts back from: the period's start or the start of its "
        "market-local hour (energy_offer, regulating)",
    )
    sessions: list[AuctionSession] = Field(
        default_factory=list, description="Auction sessions (intraday_auction only)"
    )
    curve: Literal["step", "linear"] = Field(
        "step", description="How the market reads a curve between its points (regulating: step)"
    )
    max_segments: int = Field(ge=1, le=1000, description="Most price-quantity points per curve")
    min_lot_mw: float = Field(gt=0, description="Quantities are multiples of this [MW]")
    price_tick_per_mwh: float = Field(0.01, gt=0, description="Price granularity [currency/MWh]")
    floor_per_mwh: float = Field(description="Lowest allowed bid price [currency/MWh]")
    cap_per_mwh: float = Field(description="Highest allowed bid price [currency/MWh]")
    price_columns: list[str] = Field(
        min_length=1,
        max_length=2,
        description="Price columns it clears against: [rt_price] (energy_offer), "
        "[rt_price_up, rt_price_down] (regulating), a named column for auctions",
    )
    has_price_data: bool = Field(
        description="Whether the shipped price files carry price_columns, i.e. the product "
        "can be backtested; false for the intraday auctions (no intraday prices ship)"
    )

    _period = field_validator("period_minutes", "settlement_minutes")(_divides_day)

    @model_validator(mode="after")
    def _consistent(self) -> RealTimeProduct:
        if self.floor_per_mwh >= self.cap_per_mwh:
            raise _field_error(
                ("floor_per_mwh",), self.floor_per_mwh,
                f"must be < cap_per_mwh = {self.cap_per_mwh:g}",
            )
        if self.period_minutes % self.settlement_minutes and (
            self.settlement_minutes % self.period_minutes
        ):
            raise _field_error(
                ("settlement_minutes",), self.settlement_minutes,
                f"must nest with period_minutes = {self.period_minutes} "
                "(one a multiple of the other)",
            )
        auction = self.kind == "intraday_auction"
        for name in ("gate_minutes_before", "gate_anchor"):
            given = getattr(self, name) is not None
            if auction and given:
                raise _field_error(
                    (name,), getattr(self, name),
                    "not allowed for an intraday_auction: its gates are the sessions'",
                )
            if not auction and not given:
                raise _field_error((name,), None, f"is required for kind = {self.kind!r}")
        if auction and not self.sessions:
            raise _field_error(("sessions",), None, "an intraday_auction needs at least one session")
        if not auction and self.sessions:
            raise _field_error(
                ("sessions",), "[...]",
                f"only an intraday_auction has sessions; kind = {self.kind!r} gates by "
                "gate_minutes_before/gate_anchor",
            )
        if self.gate_anchor == "hour" and 60 % self.period_minutes:
            raise _field_error(
                ("gate_anchor",), "hour",
                f"period_minutes = {self.period_minutes} does not divide an hour; use 'period'",
            )
        self._check_sessions()
        self._check_columns()
        return self

    def _check_sessions(self) -> None:
        names: dict[str, int] = {}
        windows: list[tuple[int, int, int]] = []
        for i, session in enumerate(self.sessions):
            if session.name in names:
                raise _field_error(
                    ("sessions", i, "name"), session.name,
                    f"duplicate session name (also sessions[{names[session.name]}])",
                )
            names[session.name] = i
            start_t = session.delivery_start_local
            start = start_t.hour * 60 + start_t.minute
            end = _midnight_is_end(session.delivery_end_local)
            for field, minute in (("delivery_start_local", start), ("delivery_end_local", end)):
                if minute % self.period_minutes or getattr(session, field).second:
                    raise _field_error(
                        ("sessions", i, field), str(getattr(session, field)),
                        f"must be on a {self.period_minutes}-min period boundary",
                    )
            for j, other_start, other_end in windows:
                if start < other_end and other_start < end:
                    raise _field_error(
                        ("sessions", i, "delivery_start_local"), str(start_t),
                        f"delivery window overlaps sessions[{j}]; one session per period "
                        "(give another auction its own product)",
                    )
            windows.append((i, start, end))

    def _check_columns(self) -> None:
        columns = self.price_columns
        if self.kind == "regulating":
            if self.curve != "step":
                raise _field_error(("curve",), self.curve, "a regulating product reads 'step' curves")
            if columns != ["rt_price_up", "rt_price_down"]:
                raise _field_error(
                    ("price_columns",), columns,
                    "a regulating product clears against ['rt_price_up', 'rt_price_down']",
                )
        elif len(columns) != 1:
            raise _field_error(
                ("price_columns",), columns, f"kind = {self.kind!r} clears against one column"
            )
        if self.has_price_data and not set(columns) <= set(RT_PRICE_COLUMNS):
            raise _field_error(
                ("price_columns",), columns,
                f"has_price_data = true needs columns of the price files, one of "
                f"{list(RT_PRICE_COLUMNS)}; set has_price_data = false where no prices ship",
            )

    def session_for(self, period_start_local: dt.datetime) -> AuctionSession | None:
        """The auction session whose delivery window holds a period starting then (local)."""
        minute = period_start_local.hour * 60 + period_start_local.minute
        for session in self.sessions:
            start = session.delivery_start_local
            if start.hour * 60 + start.minute <= minute < _midnight_is_end(
                session.delivery_end_local
            ):
                return session
        return None


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
    real_time_products: list[RealTimeProduct] = Field(
        default_factory=list,
        description="Real-time and intraday bid products ([[real_time_products]]), each "
        "versioned by id and effective_date; none: the market takes no real-time bids",
    )
    carbon_region: Id | None = Field(
        None,
        description="Carbon region file (config/carbon/<carbon_region>.toml) of this market's "
        "grid emission factors; none: no carbon accounting",
    )
    carbon_area: str | None = Field(
        None,
        description="Area of the location-based annual factor in the carbon region file (a "
        "regional grid or province); none: the national average",
    )

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

    @field_validator("real_time_products")
    @classmethod
    def _distinct_product_dates(cls, versions: list[RealTimeProduct]) -> list[RealTimeProduct]:
        seen: dict[tuple[str, dt.date], int] = {}
        kinds: dict[str, tuple[str, int]] = {}
        for i, version in enumerate(versions):
            kind, first = kinds.setdefault(version.id, (version.kind, i))
            if version.kind != kind:
                raise _field_error(
                    (i, "kind"), version.kind,
                    f"product {version.id!r} has kind {kind!r} in real_time_products[{first}]; every "
                    "version of one id keeps its kind (give another kind its own id)",
                )
            key = (version.id, version.effective_date)
            if key in seen:
                raise _field_error(
                    (i, "effective_date"), str(version.effective_date),
                    f"product {version.id!r} has two versions on this date (also "
                    f"real_time_products[{seen[key]}]); give each version its own effective_date",
                )
            seen[key] = i
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
                raise InputError(
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
            real_time_products=self.rt_products_on(day),
        )

    def rt_products_on(self, day: dt.date) -> tuple[RealTimeProduct, ...]:
        """The version of each real-time product in force on ``day`` (enabled or not), by id.

        A product whose first version is after ``day`` did not exist yet and is left out.
        """
        latest: dict[str, RealTimeProduct] = {}
        for version in self.real_time_products:  # sorted by effective_date
            if version.effective_date <= day:
                latest[version.id] = version
        return tuple(latest[key] for key in sorted(latest))


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
    real_time_products: tuple[RealTimeProduct, ...] = Field(
        (), description="Real-time bid products in force on that day, enabled or not"
    )

    def rt_product(self, product_id: str) -> RealTimeProduct:
        """The real-time product ``product_id`` in force, or :class:`InputError` naming those that are."""
        for product in self.real_time_products:
            if product.id == product_id:
                return product
        known = [p.id for p in self.real_time_products] or "none"
        raise InputError(
            f"market {self.market_id}: no real-time product {product_id!r} in force, "
            f"known: {known}"
        )

    def rt_gate_closure(self, product_id: str, period_start_utc: dt.datetime) -> dt.datetime:
        """Last moment [UTC] a bid for the period starting at ``period_start_utc`` is taken.

        Computed in market-local time, so DST days are right: ``"hour"`` counts back from
        the start of the period's local hour, ``"period"`` from the period's start; an
        auction's gate is that of the session whose delivery window holds the period.
        """
        require_aware(period_start_utc, "period_start_utc")
        product = self.rt_product(product_id)
        tz = zone(self.timezone)
        # A plain datetime (not a pandas Timestamp), so replace() below keeps the fold.
        local = pd.Timestamp(period_start_utc).to_pydatetime().astimezone(tz)
        if product.kind == "intraday_auction":
            session = product.session_for(local)
            if session is None:
                raise InputError(
                    f"{product_id}: {local.isoformat()} is in no session's delivery window "
                    f"({', '.join(s.name for s in product.sessions)})"
                )
            gate_day = local.date() + dt.timedelta(days=session.gate_day_offset)
            return dt.datetime.combine(gate_day, session.gate_local, tzinfo=tz).astimezone(dt.UTC)
        anchor = local.replace(minute=0, second=0, microsecond=0) if (
            product.gate_anchor == "hour"
        ) else local  # replace() keeps the fold, so the repeated hour stays itself
        minutes = product.gate_minutes_before or 0
        return anchor.astimezone(dt.UTC) - dt.timedelta(minutes=minutes)

    def rt_periods(self, product_id: str, day: dt.date) -> pd.DatetimeIndex:
        """UTC starts of the product's delivery periods on local ``day`` (92/100 quarter-hours
        on EU DST days); for an auction only those in its sessions' delivery windows."""
        product = self.rt_product(product_id)
        periods = day_intervals_utc(day, self.timezone, product.period_minutes)
        if product.kind != "intraday_auction":
            return periods
        local = periods.tz_convert(self.timezone)
        keep = [product.session_for(t.to_pydatetime()) is not None for t in local]
        return periods[keep]

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
    carbon: Path = Field(Path("carbon"), description="Folder of carbon region (emission factor) files")


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
    real_time_bids: bool = Field(
        False,
        description="Bid the remaining flexibility into the market's enabled real-time "
        "products (config/markets/*.toml [[real_time_products]]) before each period's gate; "
        "off by default; with it, perfect foresight also prices regulating (mFRR) "
        "activations (docs/backtest.md)",
    )
    carbon_price_per_t: float = Field(
        0.0, ge=0, le=1e5,
        description="Internal carbon price charged on grid import in the objective "
        "[currency/tCO2]; 0: carbon-blind",
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
    http_host: str = Field("127.0.0.1", description="Address of the dashboard and API (vpp.web)")
    http_port: int = Field(8470, ge=1, le=65535, description="Port of the dashboard and API")
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


#: Schemes of a Dask scheduler address (``distributed.comm``): tcp, tls, ws, wss, inproc.
SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss", "inproc")


def check_scheduler_address(value: str | None) -> str | None:
    """``scheme://host:port`` or ``host:port`` of a running Dask scheduler."""
    if value is None:
        return None
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "tcp", value
    if scheme not in SCHEDULER_SCHEMES:
        raise ValueError(
            f"must be a Dask scheduler address such as tcp://host:8786 (scheme one of "
            f"{', '.join(SCHEDULER_SCHEMES)})"
        )
    host, colon, port = rest.rpartition(":")
    if scheme != "inproc" and (not colon or not host or not port.isdigit() or not 0 < int(port) < 65536):
        raise ValueError("must be a Dask scheduler address such as tcp://host:8786 (host and port)")
    return value


class ComputeSettings(Spec):
    """Where sweeps run: an existing Dask cluster, or an embedded ``LocalCluster``."""

    scheduler: str | None = Field(
        None,
        description="Address of a running Dask scheduler (tcp://host:8786); none: a LocalCluster "
        "of --workers processes on this machine. Its workers must see the same config and data "
        "paths (a shared file system)",
    )

    _scheduler = field_validator("scheduler")(check_scheduler_address)


class SweepGrid(Spec):
    """The parameters a sweep varies; a field left out takes its ``[backtest]`` value."""

    strategy: list[str] | None = Field(None, min_length=1, description="Strategy names")
    forecaster: list[str] | None = Field(None, min_length=1, description="Forecaster names")
    rt_forecaster: list[str] | None = Field(
        None, min_length=1, description="Real-time forecaster names"
    )
    scenarios: list[Annotated[int, Field(ge=1, le=100)]] | None = Field(
        None, min_length=1, description="Price scenarios for day-ahead bids"
    )
    reoptimise_every: list[Annotated[int, Field(ge=1, le=96)]] | None = Field(
        None, min_length=1, description="Re-solve the real-time problem every N intervals"
    )
    deviation_penalty_per_mwh: list[
        Annotated[float, Field(ge=0, le=LARGEST_NUMBER, allow_inf_nan=False)]
    ] | None = Field(
        None, min_length=1, description="Cost per MWh of planned deviation [currency/MWh]"
    )
    carbon_price_per_t: list[Annotated[float, Field(ge=0, le=1e5, allow_inf_nan=False)]] | None = Field(
        None, min_length=1, description="Internal carbon price on grid import [currency/tCO2]"
    )

    @field_validator("*")
    @classmethod
    def _no_repeats(cls, values: list[Any] | None) -> list[Any] | None:
        if values is not None:
            seen: list[Any] = []
            for value in values:
                if value in seen:
                    raise ValueError(f"{value!r} is given twice; give each value once")
                seen.append(value)
        return values

    def axes(self) -> dict[str, list[Any]]:
        """The varied parameters and their values, in field order (left-out fields omitted)."""
        return {
            name: list(values)
            for name in type(self).model_fields
            if (values := getattr(self, name)) is not None
        }


class SweepPeriod(Spec):
    start: dt.date = Field(description="First delivery day")
    end: dt.date = Field(description="Last delivery day (inclusive)")

    @model_validator(mode="after")
    def _ordered(self) -> SweepPeriod:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class SweepMarket(Spec):
    prices: Path = Field(
        description="Canonical price file (its market is the cell's), relative to the sweep file"
    )


class SweepSpec(Spec):
    """A sweep file (``vpp backtest --sweep``): the grid of backtest cells, see docs/sweeps.md."""

    grid: SweepGrid = Field(default_factory=SweepGrid)
    periods: list[SweepPeriod] | None = Field(
        None, min_length=1, description="Delivery periods; none: [backtest] start and end"
    )
    markets: list[SweepMarket] | None = Field(
        None, min_length=1, description="Price files, one per market; none: [backtest] prices"
    )
    baselines: bool = Field(
        True, description="Run the persistence and no-flexibility baselines in every cell"
    )


class Settings(Spec):
    """``config/vpp.toml``: daemon and backtest settings."""

    store: StoreSettings = Field(default_factory=StoreSettings)
    paths: PathSettings = Field(default_factory=PathSettings)
    solver: SolverSettings = Field(default_factory=SolverSettings)
    backtest: BacktestSettings = Field(default_factory=BacktestSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    compute: ComputeSettings = Field(default_factory=ComputeSettings)


__all__ = [
    "ADAPTER_TYPES",
    "ASSET_TYPES",
    "LARGEST_NUMBER",
    "RT_PRICE_COLUMNS",
    "AdapterSpec",
    "AssetBase",
    "AssetSpec",
    "AuctionSession",
    "BacktestSettings",
    "BatterySpec",
    "BiddingRule",
    "ComputeSettings",
    "DaemonSettings",
    "DayAheadRule",
    "ElectricBoilerSpec",
    "ElectrolyserSpec",
    "EvChargingSpec",
    "FileSource",
    "FlexibleProcessSpec",
    "FuelSpec",
    "GridConnection",
    "HeatLevel",
    "HeatPumpSpec",
    "HttpAdapter",
    "HydrogenStorageSpec",
    "Id",
    "LoadProfileSource",
    "MarketConfig",
    "MarketRules",
    "ModbusAdapter",
    "ModbusRegister",
    "ModbusSunSpecAdapter",
    "OcppAdapter",
    "ParkConfig",
    "PathSettings",
    "PriceLimits",
    "PvProfileSource",
    "PvSpec",
    "RealTimeProduct",
    "RealTimeRule",
    "Rule",
    "SessionsSource",
    "Settings",
    "SettlementRule",
    "SimulatedAdapter",
    "SolverSettings",
    "Spec",
    "StoreSettings",
    "StrategySettings",
    "SweepGrid",
    "SweepMarket",
    "SweepPeriod",
    "SweepSpec",
    "ThermalStorageSpec",
    "check_scheduler_address",
]

"""What every asset spec shares: its id, its adapter, its data sources, and the type behaviour.

:class:`AssetBase` holds the fields every asset has and declares the
behaviour each asset type gives its spec (one module per type in
:mod:`vpp.assets`), so callers ask the spec instead of dispatching on its
class: nameplate capability, one-line description, config cross-checks,
metering sign and counters, wear cost, the kind of state read from
telemetry and the exogenous inputs of its simulation.

Power sign convention: see :mod:`vpp.units`. Limits are positive magnitudes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import pandas as pd
from pydantic import Field, field_validator

from vpp.errors import ConfigIssue
from vpp.spec import Id, Spec, _check_env_name

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
    """A controller with a JSON REST interface (process, heat pump, boiler, electrolyser, store)."""

    type: Literal["http"]
    base_url: str = Field(pattern=r"^https?://", description="Base URL of the controller API")
    token_env: str | None = Field(None, description="Env var holding the bearer token")
    timeout_s: float = Field(5.0, gt=0, le=120, description="Request timeout [s]")
    retries: int = Field(3, ge=0, le=10, description="Retries after a failed request")
    backoff_s: float = Field(0.5, ge=0, description="First retry delay, doubled each retry [s]")
    stale_after_s: float = Field(60.0, gt=0, description="Telemetry older than this is stale [s]")

    _env = field_validator("token_env")(_check_env_name)


class ModbusRegister(Spec):
    """One value in a plain Modbus register map: where it is and how to decode it.

    The value in the register's unit is ``raw x scale`` (``scale = 0.1`` for a
    register counting 0.1 kWh; ``0.01`` for a state of charge in percent).
    32-bit types span two registers from ``address``, in the adapter's ``word_order``.
    """

    address: int = Field(ge=0, le=65535, description="Register address (0-based, as on the wire)")
    scale: float = Field(1.0, gt=0, description="Value = raw x scale, in the register's unit")
    kind: Literal["holding", "input"] = Field(
        "holding", description="Holding (function 3, writable) or input register (function 4)"
    )
    type: Literal["int16", "uint16", "int32", "uint32", "float32"] = Field(
        "int32", description="Encoding of the raw value"
    )

    @property
    def count(self) -> int:
        """Registers the value spans."""
        return 1 if self.type in ("int16", "uint16") else 2


class ModbusAdapter(Spec):
    """A device with a plain Modbus TCP register map (no SunSpec): setpoint and telemetry.

    ``registers`` maps names to registers: ``consumption_kw`` (what the
    device draws, >= 0; required for a consumer), ``soc`` (fraction 0..1,
    required for a store; scale a percent register by 0.01) and the asset
    type's cumulative registers (``consumed_kwh``, ``heat_kwh``,
    ``hydrogen_kg``, ``charged_kwh``, ...). ``setpoint_register`` (a holding
    register) receives the consumption to hold [kW] / scale; the device is
    expected to revert to a safe state after ``revert_timeout_s`` without a
    write, and vpp re-writes well before that.
    """

    type: Literal["modbus"]
    host: str = Field(description="Host name or IP address of the Modbus TCP server")
    port: int = Field(502, ge=1, le=65535)
    unit_id: int = Field(1, ge=0, le=255, description="Modbus unit (slave) id")
    timeout_s: float = Field(3.0, gt=0, le=60, description="Request timeout [s]")
    poll_interval_s: float = Field(5.0, gt=0, description="Telemetry poll period [s]")
    revert_timeout_s: float = Field(
        60.0, gt=0, description="Device reverts its setpoint after this long without a write [s]"
    )
    stale_after_s: float = Field(30.0, gt=0, description="Telemetry older than this is stale [s]")
    word_order: Literal["big", "little"] = Field(
        "big", description="Order of the two registers of a 32-bit value (big: high word first)"
    )
    setpoint_register: ModbusRegister | None = Field(
        None, description="Holding register the consumption setpoint [kW] is written to"
    )
    registers: dict[str, ModbusRegister] = Field(
        default_factory=dict, description="Telemetry registers by name"
    )


AdapterSpec = Annotated[
    SimulatedAdapter | ModbusSunSpecAdapter | OcppAdapter | HttpAdapter | ModbusAdapter,
    Field(discriminator="type"),
]
ADAPTER_TYPES = ("simulated", "modbus-sunspec", "ocpp", "http", "modbus")
MULTI_ENERGY_ADAPTERS = ("simulated", "http", "modbus")
"""The adapters of heat pumps, boilers, electrolysers and heat/hydrogen stores."""


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


SetpointKind = Literal["power", "export_cap", "import_cap", "none"]
"""How a setpoint drives an asset: a power target, a cap on export or on import, or not at all
(the same values as :data:`adapters.base.SetpointKind`)."""

StateKind = Literal["soc", "soc_kg", "sessions", "shift"]
"""What an asset's state read from telemetry is: a state of charge (of energy, or of hydrogen
in kg), plugged EV sessions, or a shift from the baseline with its energy offset in the
recovery block."""


def soc_issues(
    file: str, where: str, soc_min: float, soc_max: float, soc_initial: float
) -> Iterator[ConfigIssue]:
    """``soc_min <= soc_initial <= soc_max`` of a storing asset, as config issues."""
    if soc_min > soc_max:
        yield ConfigIssue(file, f"{where}.soc_min", soc_min, f"must be <= soc_max ({soc_max})")
    elif not soc_min <= soc_initial <= soc_max:
        yield ConfigIssue(
            file, f"{where}.soc_initial", soc_initial,
            f"must lie within [soc_min, soc_max] = [{soc_min}, {soc_max}]",
        )


class AssetBase(Spec):
    """Fields every asset has, and the behaviour its type gives its spec."""

    id: Id
    name: str | None = None
    adapter: AdapterSpec = Field(default_factory=SimulatedAdapter)

    meter_registers: ClassVar[tuple[str, ...]] = ()
    """The one-way cumulative energy registers [kWh] the asset's export is metered from."""
    throughput_registers: ClassVar[tuple[str, ...]] = ()
    """Registers whose sum is the energy moved through a wearing asset [kWh]."""
    state_kind: ClassVar[StateKind | None] = None
    """What the operator reads from this asset's telemetry as its state (None: nothing)."""
    onsite_renewable: ClassVar[bool] = False
    """Its export is on-site renewable generation (PV): clean energy in the carbon books."""
    heat_registers: ClassVar[tuple[str, ...]] = ()
    """Cumulative heat it delivered [kWh_th] (converters; see :meth:`heat_outputs`)."""
    hydrogen_registers: ClassVar[tuple[str, ...]] = ()
    """Cumulative hydrogen it produced [kg] (electrolysers)."""
    storage_registers: ClassVar[tuple[str, ...]] = ()
    """(charged, discharged) cumulative registers of a heat [kWh_th] or hydrogen [kg] store."""
    adapter_types: ClassVar[tuple[str, ...]] = ("simulated",)
    """The adapter types (``adapter.type``) implemented for this asset type."""

    @property
    def telemetry_registers(self) -> tuple[str, ...]:
        """Every cumulative register the type declares: meter, heat, hydrogen, storage."""
        names = (
            self.meter_registers + self.heat_registers + self.hydrogen_registers
            + self.storage_registers
        )
        return tuple(dict.fromkeys(names))

    @property
    def has_soc(self) -> bool:
        """It reports a state of charge (of energy or of hydrogen)."""
        return self.soc_capacity_kwh is not None or self.soc_capacity_kg is not None

    @property
    def max_export_kw(self) -> float:
        """Most the asset can push into the grid at nameplate [kW] (>= 0)."""
        raise NotImplementedError(type(self).__name__)

    @property
    def max_import_kw(self) -> float:
        """Most the asset can draw from the grid at nameplate [kW] (>= 0)."""
        raise NotImplementedError(type(self).__name__)

    @property
    def setpoint_limits_kw(self) -> tuple[float, float]:
        """Nameplate setpoint bounds in the sign of :mod:`vpp.units` (low, high) [kW]."""
        return -self.max_import_kw, self.max_export_kw

    @property
    def setpoint_kind(self) -> SetpointKind:
        """How a setpoint drives this asset."""
        raise NotImplementedError(type(self).__name__)

    @property
    def usable_energy_kwh(self) -> float | None:
        """Storage or shiftable energy where that applies [kWh]; None otherwise."""
        return None

    @property
    def soc_capacity_kwh(self) -> float | None:
        """The energy a state of charge of 1 stands for [kWh]; None: no state of charge."""
        return None

    @property
    def soc_capacity_kg(self) -> float | None:
        """The hydrogen a fill of 1 stands for [kg]; None: not a hydrogen store."""
        return None

    def heat_outputs(self) -> dict[str, str]:
        """Heat level id -> the register of the heat it delivers there (empty: none)."""
        return {}

    @property
    def produces_hydrogen(self) -> bool:
        """It produces hydrogen into the park's hydrogen node (electrolysers)."""
        return bool(self.hydrogen_registers)

    @property
    def storage_node(self) -> str | None:
        """The balance node a heat or hydrogen store buffers (its level, or ``hydrogen``)."""
        return None

    @property
    def supply_temperature_limit_c(self) -> float | None:
        """Hottest level it may supply or store heat at [degC]; None: no limit or no heat."""
        return None

    @property
    def soc_limits(self) -> tuple[float, float] | None:
        """Lowest and highest state of charge [fraction]; None: no state of charge."""
        return None

    @property
    def wear_cost_per_mwh(self) -> float | None:
        """Wear cost per MWh moved through the asset [currency/MWh]; None: it does not wear."""
        return None

    def without_wear(self) -> AssetBase:
        """The same asset with no wear cost (itself if it does not wear)."""
        return self

    def describe(self) -> str:
        """One line for ``vpp parks`` and ``vpp status``."""
        raise NotImplementedError(type(self).__name__)

    def config_issues(self, file: str, where: str) -> Iterator[ConfigIssue]:
        """Cross-field problems of this entry; ``where`` is its path (``assets[0]``)."""
        return iter(())

    def adapter_issues(self, file: str, where: str) -> Iterator[ConfigIssue]:
        """Whether its adapter is implemented for its type, and a Modbus map fits the type."""
        adapter = self.adapter
        if adapter.type not in self.adapter_types:
            yield ConfigIssue(
                file, f"{where}.adapter.type", adapter.type,
                f"not implemented for {getattr(self, 'type', '?')} assets; "
                f"use one of {', '.join(self.adapter_types)}",
            )
            return
        if isinstance(adapter, ModbusAdapter):
            yield from self._modbus_issues(adapter, file, f"{where}.adapter")

    def _modbus_issues(
        self, adapter: ModbusAdapter, file: str, where: str
    ) -> Iterator[ConfigIssue]:
        known = ("consumption_kw", "soc", *self.telemetry_registers)
        for name in adapter.registers:
            if name not in known:
                yield ConfigIssue(
                    file, f"{where}.registers.{name}", name,
                    f"unknown for {getattr(self, 'type', '?')}; known: {', '.join(known)}",
                )
        required = [name for name in self.telemetry_registers if name not in adapter.registers]
        if self.max_import_kw > 0 and "consumption_kw" not in adapter.registers:
            required.insert(0, "consumption_kw")
        if self.has_soc and "soc" not in adapter.registers:
            required.insert(0, "soc")
        if required:
            yield ConfigIssue(
                file, f"{where}.registers", sorted(adapter.registers),
                f"missing {', '.join(required)}: add each with its address",
            )
        writable = self.setpoint_kind != "none"
        point = adapter.setpoint_register
        if writable and point is None:
            yield ConfigIssue(
                file, f"{where}.setpoint_register", None,
                "needed: this asset takes setpoints (a holding register)",
            )
        elif not writable and point is not None:
            yield ConfigIssue(
                file, f"{where}.setpoint_register", point.address,
                "this asset takes no setpoint; leave it out",
            )
        elif point is not None and point.kind != "holding":
            yield ConfigIssue(
                file, f"{where}.setpoint_register.kind", point.kind,
                "must be holding (input registers are read-only)",
            )

    def exported_kwh(self, registers: Mapping[str, Any]) -> Any:
        """Cumulative energy into the grid [kWh] from the meter registers (> 0: sold).

        Linear in the registers, so whole columns may be passed. Raises
        ``KeyError`` when a register is missing; None if the type has no registers.
        """
        return None

    def simulation_inputs(
        self,
        config_dir: Path,
        index: pd.DatetimeIndex,
        timezone: str,
        start: dt.datetime,
        end: dt.datetime,
        park: Any = None,
    ) -> dict[str, Any]:
        """The exogenous series a simulated device of this type takes, from the park's profiles.

        ``index`` are the intervals to cover, ``start``/``end`` the span for
        event data (EV sessions), ``park`` the asset's :class:`~vpp.config.models.ParkConfig`
        (heat levels and their demand); keyword names match the simulated device.
        """
        return {}

"""Device adapters: the protocols park equipment speaks, and simulated devices.

``create(park, asset, clock=...)`` builds the adapter a park file names;
every adapter is a :class:`vpp.types.Device` (``read``/``write``) with
``connect``/``close``, ``capabilities`` and ``health``. See
``docs/adapters.md``.
"""

from adapters._factory import HealthRegistry, create
from adapters._http import HttpController, HttpProcessController
from adapters._modbus import ModbusSunSpecDevice
from adapters._modbus_map import ModbusDevice
from adapters._ocpp import OcppHub, Session
from adapters.base import (
    Adapter,
    Capabilities,
    DeviceFaultError,
    HealthStatus,
    ReadOnlyError,
    Reason,
    ReconnectPolicy,
)
from adapters.simulated import (
    SimulatedBattery,
    SimulatedBoiler,
    SimulatedDevice,
    SimulatedElectrolyser,
    SimulatedEvHub,
    SimulatedHeatPump,
    SimulatedHydrogenStorage,
    SimulatedProcess,
    SimulatedPv,
    SimulatedThermalStorage,
    simulated_device,
)

__all__ = [
    "Adapter",
    "Capabilities",
    "DeviceFaultError",
    "HealthRegistry",
    "HealthStatus",
    "HttpController",
    "HttpProcessController",
    "ModbusDevice",
    "ModbusSunSpecDevice",
    "OcppHub",
    "ReadOnlyError",
    "Reason",
    "ReconnectPolicy",
    "Session",
    "SimulatedBattery",
    "SimulatedBoiler",
    "SimulatedDevice",
    "SimulatedElectrolyser",
    "SimulatedEvHub",
    "SimulatedHeatPump",
    "SimulatedHydrogenStorage",
    "SimulatedProcess",
    "SimulatedPv",
    "SimulatedThermalStorage",
    "create",
    "simulated_device",
]

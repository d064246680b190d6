"""A NetSuite REST emulator: the facts of docs/netsuite-emulator.md, on a local port."""

from mailbot.sim.netsuite.data import DataError, demo_oauth2_private_key, load_data
from mailbot.sim.netsuite.faults import FaultPlan, LoggedRequest
from mailbot.sim.netsuite.server import NetSuiteEmulator, serve

__all__ = [
    "DataError",
    "FaultPlan",
    "LoggedRequest",
    "NetSuiteEmulator",
    "demo_oauth2_private_key",
    "load_data",
    "serve",
]

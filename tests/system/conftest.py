from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailbot.sim.netsuite import NetSuiteEmulator, load_data


@pytest.fixture
def demo_account() -> Iterator[NetSuiteEmulator]:
    """The NetSuite emulator with the demo CRM (the one `mailbot demo` uses), fresh per test."""
    with NetSuiteEmulator(load_data(None)).start() as emulator:
        yield emulator

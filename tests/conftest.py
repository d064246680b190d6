from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.app import quiet_libraries

FIXTURES = Path(__file__).parent / "fixtures"
pytest_plugins = ["tests.netsuite_fixtures", "tests.imap_fixtures"]


@pytest.fixture(scope="session", autouse=True)
def _quiet_libraries() -> None:
    quiet_libraries()


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.app import quiet_libraries

FIXTURES = Path(__file__).parent / "fixtures"
pytest_plugins = [
    "tests.netsuite_fixtures",
    "tests.imap_fixtures",
    "tests.oauth2_fixtures",
    "tests.secret_guard",  # fails the session when a known secret is logged or printed
    "pytester",  # tests/unit/test_secret_guard.py runs sessions of its own
]


@pytest.fixture(scope="session", autouse=True)
def _quiet_libraries() -> None:
    quiet_libraries()


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES

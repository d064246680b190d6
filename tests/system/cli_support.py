"""``mailbot`` as a real process, the way an admin or systemd starts it: its secrets in
``MAILBOT_*`` environment variables and nothing of the test's own environment but ``PATH``,
so the process sees only what the test hands it; and the configuration of the demo NetSuite
account (the emulator of the ``demo_account`` fixture, tests/system/conftest.py).

A process run to its end goes through ``subprocess.run``, looked up at each call:
tests/secret_guard.py wraps it to search every captured output for known secrets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from mailbot.sim.netsuite import NetSuiteEmulator
from tests.imap_fixtures import ImapAccount

DEMO_SAMPLES = Path(__file__).resolve().parents[2] / "mailbot" / "samples" / "demo" / "cur"
DEMO_SYNC_MAILBOX = "crm-sync@lakeside-instruments.example.com"  # the demo mailbox's address


def demo_config(tmp_path: Path, emulator: NetSuiteEmulator, sections: str = "") -> Path:
    """``tmp_path/mailbot.toml`` for the demo account: ``[netsuite]`` for the emulator,
    ``[matching]`` with the demo mailbox's address, ``[sync]`` with its state in
    ``tmp_path/state.sqlite3``; then ``sections``, the test's own (TOML text)."""
    config = tmp_path / "mailbot.toml"
    config.write_text(
        f'[netsuite]\ntimezone = "Europe/Berlin"\naccount = "{emulator.account}"\n'
        f'base_url = "{emulator.base_url}"\n'
        f'[matching]\nmailbox_addresses = ["{DEMO_SYNC_MAILBOX}"]\n'
        f'[sync]\nstate_path = "{tmp_path / "state.sqlite3"}"\n'
        f"{sections}",
        encoding="utf-8",
    )
    return config


def path_env(**extra: str) -> dict[str, str]:
    """An environment with no secret: the test's PATH and ``extra``."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **extra}


def secret_env(
    emulator: NetSuiteEmulator, account: ImapAccount | None = None, **extra: str
) -> dict[str, str]:
    """The emulator's token-based NetSuite credentials, the IMAP password when ``account`` is
    given, then ``extra`` (which may add secrets or replace one)."""
    credentials = emulator.credentials
    env = path_env(
        MAILBOT_NETSUITE_CONSUMER_KEY=credentials["consumer_key"],
        MAILBOT_NETSUITE_CONSUMER_SECRET=credentials["consumer_secret"],
        MAILBOT_NETSUITE_TOKEN_ID=credentials["token_id"],
        MAILBOT_NETSUITE_TOKEN_SECRET=credentials["token_secret"],
    )
    if account is not None:
        env["MAILBOT_IMAP_PASSWORD"] = account.password
    env.update(extra)
    return env


def mailbot_command(*args: str) -> list[str]:
    """``python -m mailbot ARGS`` with this interpreter (for a process a test starts itself)."""
    return [sys.executable, "-m", "mailbot", *args]


def run_mailbot(
    *args: str, env: Mapping[str, str], timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs ``mailbot ARGS`` to its end; its exit code is the test's to judge."""
    return subprocess.run(
        mailbot_command(*args),
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=timeout,
        input=input,
    )

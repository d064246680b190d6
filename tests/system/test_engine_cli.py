"""`mailbot replay` and `mailbot demo` as an admin runs them: real processes, the emulator."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbot.sim.netsuite import NetSuiteEmulator, load_data

SAMPLES = Path(__file__).parent.parent.parent / "mailbot" / "samples" / "demo" / "cur"
WRITES = {"PUT", "PATCH", "POST", "DELETE"}


@pytest.fixture
def demo_account() -> Iterator[NetSuiteEmulator]:
    with NetSuiteEmulator(load_data(None)).start() as emulator:
        yield emulator


def _config(tmp_path: Path, emulator: NetSuiteEmulator) -> Path:
    config = tmp_path / "mailbot.toml"
    config.write_text(
        f'[netsuite]\ntimezone = "Europe/Berlin"\naccount = "{emulator.account}"\n'
        f'base_url = "{emulator.base_url}"\n'
        '[matching]\nmailbox_addresses = ["crm-sync@lakeside-instruments.example.com"]\n'
        f'[sync]\nstate_path = "{tmp_path / "state.sqlite3"}"\n',
        encoding="utf-8",
    )
    return config


def _env(emulator: NetSuiteEmulator) -> dict[str, str]:
    credentials = emulator.credentials
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "MAILBOT_NETSUITE_CONSUMER_KEY": credentials["consumer_key"],
        "MAILBOT_NETSUITE_CONSUMER_SECRET": credentials["consumer_secret"],
        "MAILBOT_NETSUITE_TOKEN_ID": credentials["token_id"],
        "MAILBOT_NETSUITE_TOKEN_SECRET": credentials["token_secret"],
    }


def _mailbot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailbot", *args],
        capture_output=True,
        text=True,
        env=env or {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        check=False,
        timeout=120,
    )


def _writes(emulator: NetSuiteEmulator) -> int:
    """Requests that change records (SuiteQL is a read-only POST)."""
    return sum(
        entry.method in WRITES and "/record/" in entry.path for entry in emulator.request_log()
    )


def test_replay_writes_events_and_a_second_replay_writes_nothing(
    tmp_path: Path, demo_account: NetSuiteEmulator
) -> None:
    config = _config(tmp_path, demo_account)
    files = [str(path) for path in sorted(SAMPLES.glob("*.eml"))]
    first = _mailbot("replay", "--json", "--config", str(config), *files, env=_env(demo_account))
    assert first.returncode == 0, first.stderr
    records = [json.loads(line) for line in first.stdout.splitlines()]
    assert {"matches", "netsuite_id", "written"} <= set(records[0])
    created = [r for r in records if r["outcome"] == "create"]
    assert created and all(r["written"] and r["netsuite_id"] for r in created)
    assert created[0]["matches"]["company"]["id"] == "117"
    demo_account.reset_log()
    again = _mailbot("replay", "--json", "--config", str(config), *files, env=_env(demo_account))
    assert again.returncode == 0 and again.stdout == ""  # every message already processed
    assert _writes(demo_account) == 0


def test_dry_run_writes_nothing_and_leaves_the_state_as_it_was(
    tmp_path: Path, demo_account: NetSuiteEmulator
) -> None:
    config = _config(tmp_path, demo_account)
    files = [str(path) for path in sorted(SAMPLES.glob("*.eml"))]
    _mailbot("replay", "--config", str(config), *files[:3], env=_env(demo_account))
    state = tmp_path / "state.sqlite3"
    before = hashlib.sha256(state.read_bytes()).hexdigest()
    demo_account.reset_log()
    dry = _mailbot("replay", "--dry-run", "--config", str(config), *files, env=_env(demo_account))
    assert dry.returncode == 0, dry.stderr
    assert "create" in dry.stdout and "unauthorized_sender" in dry.stdout
    assert _writes(demo_account) == 0
    assert hashlib.sha256(state.read_bytes()).hexdigest() == before


def test_replay_without_secrets_names_every_missing_one(
    tmp_path: Path, demo_account: NetSuiteEmulator
) -> None:
    result = _mailbot("replay", "--config", str(_config(tmp_path, demo_account)), "x.eml")
    assert result.returncode == 78
    for name in (
        "netsuite-consumer-key",
        "netsuite-consumer-secret",
        "netsuite-token-id",
        "netsuite-token-secret",
    ):
        assert name in result.stderr


def test_demo_runs_the_whole_job_and_shows_decisions_and_events() -> None:
    result = _mailbot("demo")
    assert result.returncode == 0, result.stderr
    for expected in (
        "create",
        "update",
        "response",
        "cancel",
        "multi_day",
        "unauthorized_sender",
        "no_calendar_part",
        "Events NetSuite now holds",
    ):
        assert expected in result.stdout
    assert "CANCELLED" in result.stdout and "CONFIRMED" in result.stdout

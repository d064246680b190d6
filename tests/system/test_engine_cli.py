"""`mailbot replay` and `mailbot demo` as an admin runs them: real processes, the emulator."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mailbot.sim.netsuite import NetSuiteEmulator
from tests.system.cli_support import (
    DEMO_SAMPLES,
    demo_config,
    path_env,
    run_mailbot,
    secret_env,
)

WRITES = {"PUT", "PATCH", "POST", "DELETE"}


def _writes(emulator: NetSuiteEmulator) -> int:
    """Requests that change records (SuiteQL is a read-only POST)."""
    return sum(
        entry.method in WRITES and "/record/" in entry.path for entry in emulator.request_log()
    )


def test_replay_writes_events_and_a_second_replay_writes_nothing(
    tmp_path: Path, demo_account: NetSuiteEmulator
) -> None:
    config = demo_config(tmp_path, demo_account)
    files = [str(path) for path in sorted(DEMO_SAMPLES.glob("*.eml"))]
    first = run_mailbot(
        "replay", "--json", "--config", str(config), *files, env=secret_env(demo_account)
    )
    assert first.returncode == 0, first.stderr
    records = [json.loads(line) for line in first.stdout.splitlines()]
    assert {"matches", "netsuite_id", "written"} <= set(records[0])
    created = [r for r in records if r["outcome"] == "create"]
    assert created and all(r["written"] and r["netsuite_id"] for r in created)
    assert created[0]["matches"]["company"]["id"] == "117"
    demo_account.reset_log()
    again = run_mailbot(
        "replay", "--json", "--config", str(config), *files, env=secret_env(demo_account)
    )
    assert again.returncode == 0 and again.stdout == ""  # every message already processed
    assert _writes(demo_account) == 0


def test_dry_run_writes_nothing_and_leaves_the_state_as_it_was(
    tmp_path: Path, demo_account: NetSuiteEmulator
) -> None:
    config = demo_config(tmp_path, demo_account)
    files = [str(path) for path in sorted(DEMO_SAMPLES.glob("*.eml"))]
    run_mailbot("replay", "--config", str(config), *files[:3], env=secret_env(demo_account))
    state = tmp_path / "state.sqlite3"
    before = hashlib.sha256(state.read_bytes()).hexdigest()
    demo_account.reset_log()
    dry = run_mailbot(
        "replay", "--dry-run", "--config", str(config), *files, env=secret_env(demo_account)
    )
    assert dry.returncode == 0, dry.stderr
    assert "create" in dry.stdout and "unauthorized_sender" in dry.stdout
    assert _writes(demo_account) == 0
    assert hashlib.sha256(state.read_bytes()).hexdigest() == before


def test_replay_without_secrets_names_every_missing_one(
    tmp_path: Path, demo_account: NetSuiteEmulator
) -> None:
    result = run_mailbot(
        "replay", "--config", str(demo_config(tmp_path, demo_account)), "x.eml", env=path_env()
    )
    assert result.returncode == 78
    for name in (
        "netsuite-consumer-key",
        "netsuite-consumer-secret",
        "netsuite-token-id",
        "netsuite-token-secret",
    ):
        assert name in result.stderr


def test_demo_runs_the_whole_job_and_shows_decisions_and_events() -> None:
    result = run_mailbot("demo", env=path_env())
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

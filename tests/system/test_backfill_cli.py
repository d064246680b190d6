"""`mailbot backfill` as an admin runs it: a real Dovecot, the NetSuite emulator, real SQLite,
real processes (interrupted with a real SIGINT)."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import select
import signal
import sqlite3
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mailbot.sim.netsuite import NetSuiteEmulator
from mailbot.sim.netsuite.faults import FaultPlan
from tests.imap_fixtures import ImapAccount
from tests.system.cli_support import (
    DEMO_SAMPLES,
    DEMO_SYNC_MAILBOX,
    mailbot_command,
    run_mailbot,
    secret_env,
)

SAMPLES = sorted(DEMO_SAMPLES.glob("*.eml"))
EVENTS_OF_THE_SAMPLES = 6  # what `mailbot once` makes of them (tests/system/test_daemon_cli.py)
WRITES = frozenset({"PUT", "PATCH", "POST", "DELETE"})
TIMEOUT = 120.0


def _config(
    tmp_path: Path,
    emulator: NetSuiteEmulator,
    account: ImapAccount,
    batch: int,
    netsuite: str = "",
    sync: str = "",
) -> Path:
    config = tmp_path / "mailbot.toml"
    config.write_text(
        f'[netsuite]\ntimezone = "Europe/Berlin"\naccount = "{emulator.account}"\n'
        f'base_url = "{emulator.base_url}"\n{netsuite}'
        f'[matching]\nmailbox_addresses = ["{DEMO_SYNC_MAILBOX}"]\n'
        f'[sync]\nstate_path = "{tmp_path / "state" / "state.sqlite3"}"\n{sync}'
        f'[imap]\nhost = "{account.host}"\nport = {account.port}\n'
        f'username = "{account.username}"\ntls = "starttls"\n'
        f'ca_file = "{account.ca_file}"\n'
        f"[daemon]\nbatch = {batch}\n",
        encoding="utf-8",
    )
    return config


class Backfill:
    """``mailbot backfill`` with one test's configuration and secrets."""

    def __init__(
        self,
        tmp_path: Path,
        emulator: NetSuiteEmulator,
        account: ImapAccount,
        batch: int = 50,
        netsuite: str = "",
        sync: str = "",
    ) -> None:
        self.config = _config(tmp_path, emulator, account, batch, netsuite, sync)
        self.state = tmp_path / "state" / "state.sqlite3"
        self.env = secret_env(emulator, account)
        self.secrets = [*emulator.credentials.values(), account.password]

    def arguments(self, *args: str) -> list[str]:
        return ["backfill", "--config", str(self.config), *args]

    def command(self, *args: str) -> list[str]:
        return mailbot_command(*self.arguments(*args))

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = run_mailbot(*self.arguments(*args), env=self.env, timeout=TIMEOUT)
        for secret in self.secrets:
            assert secret not in result.stdout + result.stderr
        return result

    def processed(self) -> list[tuple[str, int, str, str]]:
        """(source, uidvalidity, uid, outcome) of every processed-message record."""
        with sqlite3.connect(f"file:{self.state}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT source, uidvalidity, uid, outcome FROM processed_messages"
            ).fetchall()
        return sorted(rows, key=lambda row: int(row[2]))


def _append_samples(account: ImapAccount, folder: str, when: datetime | None = None) -> list[int]:
    if folder != "INBOX":
        account.helper().create_folder(folder)
    return [_append(account, folder, path.read_bytes(), when) for path in SAMPLES]


def _append(account: ImapAccount, folder: str, raw: bytes, when: datetime | None) -> int:
    answer = account.helper().append(folder, raw, msg_time=when)
    text = answer.decode() if isinstance(answer, bytes) else str(answer)
    return int(text.split("APPENDUID", 1)[1].split()[1].rstrip("]"))


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _writes(emulator: NetSuiteEmulator) -> int:
    """Requests that change records (SuiteQL queries are POSTs too, but only read)."""
    return sum(
        1
        for request in emulator.request_log()
        if request.method in WRITES and "/record/" in request.path
    )


def _events_by_external_id(emulator: NetSuiteEmulator) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in emulator.records("calendarEvent"):
        counts[event["externalId"]] = counts.get(event["externalId"], 0) + 1
    return counts


# ------------------------------------------------------------------------------ the tests


def test_an_archive_is_backfilled_in_place_and_a_second_run_does_nothing_new(
    tmp_path: Path, demo_account: NetSuiteEmulator, imap_account: ImapAccount
) -> None:
    uids = _append_samples(imap_account, "Archive")
    backfill = Backfill(tmp_path, demo_account, imap_account)
    mailbox_before = imap_account.snapshot()

    result = backfill("--folder", "Archive")

    assert result.returncode == 0, result.stderr
    assert len(demo_account.records("calendarEvent")) == EVENTS_OF_THE_SAMPLES
    assert imap_account.snapshot() == mailbox_before  # nothing moved, no flag, no folder
    archive = imap_account.uidvalidity("Archive")
    assert [row[:3] for row in backfill.processed()] == [
        ("imap:Archive", archive, str(uid)) for uid in uids
    ]
    assert "imap:Archive/1 " in result.stdout and "create" in result.stdout  # the table
    assert "10 messages handled" in result.stderr and "10 of 10 done" in result.stderr
    # not a terminal: plain progress lines, no control sequences
    assert "imap:Archive: 0 of 10 messages done (0%)" in result.stderr
    assert "imap:Archive: 10 of 10 messages done (100%)" in result.stderr
    assert "\x1b" not in result.stderr

    events = demo_account.records("calendarEvent")
    writes = _writes(demo_account)
    assert writes > 0
    again = backfill("--folder", "Archive", "--json")

    assert again.returncode == 0, again.stderr
    assert again.stdout == ""  # no decision: every message was done before
    assert "0 messages handled" in again.stderr
    assert "10 done by an earlier run; 10 of 10 done" in again.stderr
    assert _writes(demo_account) == writes
    assert demo_account.records("calendarEvent") == events
    assert len(backfill.processed()) == len(uids)


def test_the_watched_folder_is_filed_as_the_daemon_files_it(
    tmp_path: Path, demo_account: NetSuiteEmulator, imap_account: ImapAccount
) -> None:
    _append_samples(imap_account, "INBOX")
    backfill = Backfill(tmp_path, demo_account, imap_account, batch=3)

    result = backfill("--json")

    assert result.returncode == 0, result.stderr
    assert len(demo_account.records("calendarEvent")) == EVENTS_OF_THE_SAMPLES
    assert imap_account.folder_uids("INBOX") == []
    assert len(imap_account.folder_uids("Synced")) == 7
    assert len(imap_account.folder_uids("Skipped")) == 3
    rows = _json_lines(result.stdout)
    assert {row["mailbox"] for row in rows} == {"imap:INBOX"}
    assert sorted({int(row["mailbox_uid"]) for row in rows}) == list(range(1, 11))


def test_since_leaves_older_mail_alone(
    tmp_path: Path, demo_account: NetSuiteEmulator, imap_account: ImapAccount
) -> None:
    imap_account.helper().create_folder("Archive")
    old = datetime(2020, 1, 6, 9, 0, tzinfo=UTC)
    recent: list[int] = []
    for path in SAMPLES:
        skipped_anyway = path.name.startswith(("04-", "05-", "09-"))  # no CRM write either way
        uid = _append(imap_account, "Archive", path.read_bytes(), old if skipped_anyway else None)
        if not skipped_anyway:
            recent.append(uid)
    backfill = Backfill(tmp_path, demo_account, imap_account)

    result = backfill("--folder", "Archive", "--since", "2024-01-01", "--json")

    assert result.returncode == 0, result.stderr
    rows = _json_lines(result.stdout)
    assert sorted({int(row["mailbox_uid"]) for row in rows}) == recent
    assert [int(row[2]) for row in backfill.processed()] == recent
    assert "since 2024-01-01" in result.stderr and "7 of 7 done" in result.stderr
    assert len(demo_account.records("calendarEvent")) == EVENTS_OF_THE_SAMPLES

    wrong = backfill("--folder", "Archive", "--since", "last week")
    assert wrong.returncode == 2 and "not a date" in wrong.stderr
    missing = backfill("--folder", "Nowhere")
    assert missing.returncode == 78 and "cannot open the folder 'Nowhere'" in missing.stderr
    assert "run the same command again" not in missing.stderr


def test_dry_run_changes_nothing_and_prints_the_decisions(
    tmp_path: Path, demo_account: NetSuiteEmulator, imap_account: ImapAccount
) -> None:
    _append_samples(imap_account, "INBOX")
    backfill = Backfill(tmp_path, demo_account, imap_account)
    mailbox = imap_account.snapshot()

    fresh = backfill("--dry-run", "--json")

    assert fresh.returncode == 0, fresh.stderr
    rows = _json_lines(fresh.stdout)
    assert {int(row["mailbox_uid"]) for row in rows} == set(range(1, 11))
    assert {"create", "update", "skip"} <= {row["outcome"] for row in rows}
    assert imap_account.snapshot() == mailbox  # EXAMINE: nothing moved, no flag set
    assert demo_account.records("calendarEvent") == [] and _writes(demo_account) == 0
    assert not backfill.state.exists()
    assert "dry run: nothing was written" in fresh.stderr

    assert backfill().returncode == 0  # for real: a state, events, messages filed
    new_uids = [_append(imap_account, "INBOX", path.read_bytes(), None) for path in SAMPLES]
    mailbox = imap_account.snapshot()
    events = demo_account.records("calendarEvent")
    writes = _writes(demo_account)
    state = hashlib.sha256(backfill.state.read_bytes()).hexdigest()
    state_files = sorted(path.name for path in backfill.state.parent.iterdir())

    table = backfill("--dry-run")

    assert table.returncode == 0, table.stderr
    assert imap_account.snapshot() == mailbox
    assert demo_account.records("calendarEvent") == events and _writes(demo_account) == writes
    assert hashlib.sha256(backfill.state.read_bytes()).hexdigest() == state
    assert sorted(path.name for path in backfill.state.parent.iterdir()) == state_files
    assert "OUTCOME" in table.stdout and "decisions:" in table.stdout
    assert all(f"imap:INBOX/{uid} " in table.stdout for uid in new_uids)
    assert "10 messages handled" in table.stderr


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_backfill_resumes_without_doing_anything_twice(
    tmp_path: Path, demo_account: NetSuiteEmulator, imap_account: ImapAccount, stop: int
) -> None:
    uids = _append_samples(imap_account, "Archive")
    backfill = Backfill(tmp_path, demo_account, imap_account, batch=2)
    demo_account.set_faults(FaultPlan(latency_ms=1500))  # NetSuite slow: time to interrupt
    process = subprocess.Popen(
        backfill.command("--folder", "Archive", "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=backfill.env,
    )
    try:
        progress = _wait_for_progress(process, at_least=3)
        process.send_signal(stop)
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = progress + stderr

    assert process.returncode == 0, stderr
    assert "interrupted: " in stderr and "run the same command again to resume" in stderr
    first_rows = _json_lines(stdout)
    first = {int(row["mailbox_uid"]) for row in first_rows}
    assert 3 <= len(first) < len(uids)
    assert len(backfill.processed()) == len(first)  # every message finished was committed

    demo_account.set_faults(FaultPlan())
    rest = backfill("--folder", "Archive", "--json")

    assert rest.returncode == 0, rest.stderr
    second = {int(row["mailbox_uid"]) for row in _json_lines(rest.stdout)}
    assert first.isdisjoint(second) and first | second == set(uids)
    assert f"{len(first)} done by an earlier run; 10 of 10 done" in rest.stderr
    events = _events_by_external_id(demo_account)
    assert len(events) == EVENTS_OF_THE_SAMPLES and set(events.values()) == {1}
    processed = backfill.processed()
    assert [int(row[2]) for row in processed] == uids  # one record per message, no more


def _wait_for_progress(process: subprocess.Popen[str], at_least: int) -> str:
    """stderr up to the first progress line that reports ``at_least`` messages done."""
    assert process.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        if " messages done" in line:
            done = int(line.split(": ")[-1].split(" of ")[0])
            if done >= at_least:
                return "".join(seen)
    pytest.fail("no progress line came:\n" + "".join(seen))


def test_netsuite_unreachable_stops_with_75_and_the_next_run_resumes(
    tmp_path: Path, demo_account: NetSuiteEmulator, imap_account: ImapAccount
) -> None:
    uids = _append_samples(imap_account, "Archive")
    backfill = Backfill(
        tmp_path,
        demo_account,
        imap_account,
        netsuite="max_attempts = 1\n",  # no retries: the outage is met at once
        sync='recurrence = "occurrences"\n',  # no schema question at start-up
    )
    demo_account.set_faults(FaultPlan(error_rate=1.0, error_statuses=(503,)))

    down = backfill("--folder", "Archive")

    assert down.returncode == 75, down.stderr
    assert "stopped: 0 of 10 done; run the same command again to resume" in down.stderr
    demo_account.set_faults(FaultPlan())
    up = backfill("--folder", "Archive")
    assert up.returncode == 0, up.stderr
    assert [int(row[2]) for row in backfill.processed()] == uids


def test_on_a_terminal_the_progress_is_a_bar(
    tmp_path: Path, demo_account: NetSuiteEmulator, imap_account: ImapAccount
) -> None:
    _append_samples(imap_account, "Archive")
    backfill = Backfill(tmp_path, demo_account, imap_account)
    controller, terminal = pty.openpty()
    env = {**backfill.env, "TERM": "xterm-256color", "COLUMNS": "140"}
    with subprocess.Popen(
        backfill.command("--folder", "Archive"),
        stdout=subprocess.PIPE,
        stderr=terminal,
        env=env,
    ) as process:
        os.close(terminal)
        shown = _read_terminal(controller)
        stdout, _ = process.communicate(timeout=TIMEOUT)
    os.close(controller)

    assert process.returncode == 0, shown
    assert "imap:Archive" in shown and "10/10" in shown and "100%" in shown
    assert "msg/s" in shown and "\x1b[" in shown  # drawn live, with the rate
    assert "10 messages handled" in shown
    assert b"decisions:" in stdout and b"\x1b" not in stdout  # the table is not drawn over


def _read_terminal(controller: int) -> str:
    chunks = []
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the other side closed: the process ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")

"""Shared parts of the reliability tests (crash anywhere, injected faults): ``mailbot run`` as
a real process against a Dovecot account and the NetSuite emulator, and what is compared
after it ran (NetSuite's events, the mailbox folders, the decision log).

Each daemon is started with ``[daemon] log_json = true``; a thread reads its stderr as it
comes, so a test can wait for (or act right after) a log line, such as the n-th decision.
"""

from __future__ import annotations

import email
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from mailbot.sim.netsuite import NetSuiteEmulator
from tests.imap_fixtures import ImapAccount
from tests.integration.mailbox_workload import SYNC_MAILBOX, ZONE_NAME, WorkloadMessage
from tests.secret_guard import check_process_output
from tests.system.cli_support import mailbot_command, secret_env

INBOX = "INBOX"
OUTCOME_FOLDERS = ("Synced", "Skipped", "Failed")
WAIT = 120.0  # seconds to wait for a condition that takes a few when all is well
STOP_BOUND = 30.0  # seconds from SIGTERM to exit
# The emulator's bookkeeping, not what mailbot wrote: left out when two runs are compared.
BOOKKEEPING = frozenset({"id", "createdDate", "lastModifiedDate"})
WRITES = frozenset({"PUT", "PATCH", "POST", "DELETE"})
SUITEQL = "/services/rest/query/v1/suiteql"


# --- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """One fresh installation: its configuration, secrets and state file."""

    config: Path
    env: dict[str, str]
    state_path: Path


def install(
    folder: Path,
    emulator: NetSuiteEmulator,
    account: ImapAccount,
    *,
    state_dir: Path | None = None,
    netsuite: dict[str, Any] | None = None,
    imap: dict[str, Any] | None = None,
    daemon: dict[str, Any] | None = None,
) -> Setup:
    """A configuration in ``folder`` for this emulator and mailbox; the dicts add or
    override keys of their sections."""
    folder.mkdir(parents=True, exist_ok=True)
    state_path = (state_dir or folder / "state") / "state.sqlite3"
    sections: dict[str, dict[str, Any]] = {
        "netsuite": {
            "timezone": ZONE_NAME,
            "account": emulator.account,
            "base_url": emulator.base_url,
            **(netsuite or {}),
        },
        "matching": {"mailbox_addresses": [SYNC_MAILBOX]},
        "sync": {"state_path": str(state_path)},
        "imap": {
            "host": account.host,
            "port": account.port,
            "username": account.username,
            "tls": "starttls",
            "ca_file": str(account.ca_file),
            "connect_timeout": 5.0,
            "read_timeout": 30.0,
            **(imap or {}),
        },
        "daemon": {
            "log_json": True,
            "metrics_address": "127.0.0.1:0",
            "idle_timeout": 600,
            **(daemon or {}),
        },
    }
    config = folder / "mailbot.toml"
    config.write_text(_toml(sections), encoding="utf-8")
    return Setup(config, secret_env(emulator, account), state_path)


def _toml(sections: dict[str, dict[str, Any]]) -> str:
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


# --- the daemon as a process -----------------------------------------------------------------


@dataclass
class DaemonProcess:
    """One ``mailbot run`` process; its stderr is read by a thread as it comes.

    ``wrapper`` is put in front of the command (e.g. ``unshare ... sh -c``).
    """

    process: subprocess.Popen[str]
    started: float
    records: list[dict[str, Any]] = field(default_factory=list)
    plain: list[str] = field(default_factory=list)  # lines that are not JSON (before logging)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _reader: threading.Thread | None = None

    @classmethod
    def start(cls, setup: Setup, *, wrapper: Sequence[str] = ()) -> DaemonProcess:
        command = mailbot_command("run", "--config", str(setup.config))
        process = subprocess.Popen(
            [*wrapper, *command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=setup.env,
        )
        daemon = cls(process, time.monotonic())
        daemon._reader = threading.Thread(target=daemon._read, daemon=True)
        daemon._reader.start()
        _STARTED.append(daemon)
        return daemon

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            check_process_output("stderr of mailbot run", line)
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            with self._changed:
                if isinstance(record, dict):
                    self.records.append(record)
                else:
                    self.plain.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    # --- what it said

    def lines(self, logger: str | None = None, level: str | None = None) -> list[dict[str, Any]]:
        with self._changed:
            return [
                r
                for r in self.records
                if (logger is None or r.get("logger") == logger)
                and (level is None or r.get("level") == level)
            ]

    def decisions(self) -> list[dict[str, Any]]:
        return self.lines("mailbot.decisions")

    def transcript(self, last: int = 60) -> str:
        with self._changed:
            shown = [json.dumps(r, ensure_ascii=False) for r in self.records[-last:]]
            return "\n".join(self.plain[-20:] + shown)

    # --- waiting and acting

    def wait_for_lines(
        self, condition: Callable[[list[dict[str, Any]]], bool], timeout: float
    ) -> bool:
        """Until ``condition(records)`` holds (True), the process ends or time is up (False)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self.records):
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    return False
                self._changed.wait(min(left, 0.1))
            return True

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        """Poll ``condition`` until it holds; fail with the log when the process died."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                pytest.fail(
                    f"mailbot exited ({self.process.returncode}) before {what}:\n"
                    f"{self.transcript()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} after {timeout:.0f}s:\n{self.transcript()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or closed."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(STOP_BOUND)
        self._join()

    def terminate(self) -> int:
        """SIGTERM once the daemon handles it (its "started" line; before that, as for any
        process, SIGTERM ends it at once); the exit code, which must come within
        ``STOP_BOUND`` seconds."""
        self.wait_for_lines(
            lambda records: any(str(r.get("message", "")).startswith("started:") for r in records),
            WAIT,
        )
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(STOP_BOUND)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"mailbot still running {STOP_BOUND:.0f}s after SIGTERM")
        self._join()
        return code

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process has used so far (/proc/PID/stat)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        return ticks / os.sysconf("SC_CLK_TCK")

    def _join(self) -> None:
        if self._reader is not None:
            self._reader.join(10)


_STARTED: list[DaemonProcess] = []


def kill_leftovers() -> None:
    """SIGKILL the daemons a failed test left running (call it when a test ends)."""
    while _STARTED:
        daemon = _STARTED.pop()
        if daemon.process.poll() is None:
            daemon.kill()


# --- the mailbox -----------------------------------------------------------------------------


def deliver(account: ImapAccount, messages: Iterable[WorkloadMessage]) -> None:
    """The messages into INBOX, in their order (so the UIDs follow it)."""
    with closing_client(account) as client:
        for message in messages:
            client.append(INBOX, message.raw)


@contextmanager
def closing_client(account: ImapAccount) -> Iterator[IMAPClient]:
    """A connection of its own (the server may have been restarted since the last one)."""
    client = account.connect()
    try:
        yield client
    finally:
        with suppress(Exception):
            client.logout()


def folder_counts(account: ImapAccount) -> dict[str, int]:
    """Messages in INBOX and in each outcome folder (0 for a folder not created yet)."""
    with closing_client(account) as client:
        counts = {}
        for folder in (INBOX, *OUTCOME_FOLDERS):
            if folder != INBOX and not client.folder_exists(folder):
                counts[folder] = 0
                continue
            counts[folder] = int(client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])
        return counts


def filed_by_message_id(account: ImapAccount) -> dict[str, tuple[str, ...]]:
    """Message-ID -> the folders its copies are in (a message delivered twice has two)."""
    found: dict[str, list[str]] = {}
    with closing_client(account) as client:
        for folder in (INBOX, *OUTCOME_FOLDERS):
            if not client.folder_exists(folder):
                continue
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            if not uids:
                continue
            fetched = client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
            for data in fetched.values():
                header = email.message_from_bytes(data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"])
                found.setdefault(str(header["Message-ID"]).strip(), []).append(folder)
    return {message_id: tuple(sorted(folders)) for message_id, folders in found.items()}


# --- NetSuite --------------------------------------------------------------------------------


def netsuite_events(emulator: NetSuiteEmulator) -> dict[str, dict[str, Any]]:
    """The calendar events by external id, without the emulator's own bookkeeping."""
    events: dict[str, dict[str, Any]] = {}
    for record in emulator.records("calendarEvent"):
        events[record["externalId"]] = {k: v for k, v in record.items() if k not in BOOKKEEPING}
    return events


def duplicate_events(emulator: NetSuiteEmulator) -> list[str]:
    """What shows the same meeting twice: an external id or a (title, date, time) held by
    more than one event."""
    records = emulator.records("calendarEvent")
    by_id = Counter(record.get("externalId") for record in records)
    by_slot = Counter((r.get("title"), r.get("startDate"), r.get("startTime")) for r in records)
    return [f"externalId {key}" for key, n in by_id.items() if n > 1] + [
        f"title/start {key}" for key, n in by_slot.items() if n > 1
    ]


def write_requests(emulator: NetSuiteEmulator) -> list[str]:
    """The paths of the record writes NetSuite carried out (2xx), in order."""
    return [
        entry.path.partition("?")[0]
        for entry in emulator.request_log()
        if entry.method in WRITES
        and not entry.path.startswith(SUITEQL)
        and entry.status is not None
        and 200 <= entry.status < 300
    ]


# --- the state database ----------------------------------------------------------------------


@dataclass(frozen=True)
class StateSnapshot:
    """What the state database says about each message (by its UID in INBOX)."""

    processed: dict[str, tuple[str | None, str, int, str | None]]  # uid -> (msgid, outcome, ...)
    decisions: dict[str, tuple[tuple[Any, ...], ...]]  # uid -> its decisions, in log order

    def outcomes(self) -> Counter[str]:
        return Counter(outcome for _, outcome, _, _ in self.processed.values())


def read_state(path: Path) -> StateSnapshot:
    """The processed messages and the decision log, read with plain sqlite3; a database
    whose tables are not there yet (killed while creating them) reads as empty."""
    uri = f"file:{path}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        if not {"processed_messages", "decisions"} <= tables:
            return StateSnapshot({}, {})
        processed = {
            str(uid): (message_id, outcome, int(attempts), last_error)
            for uid, message_id, outcome, attempts, last_error in db.execute(
                "SELECT uid, message_id, outcome, attempts, last_error FROM processed_messages"
            )
        }
        decisions: dict[str, list[tuple[Any, ...]]] = {}
        for uid, *row in db.execute(
            "SELECT uid_in_mailbox, message_id, event_uid, recurrence_id, outcome, reason,"
            " written FROM decisions ORDER BY id"
        ):
            decisions.setdefault(str(uid), []).append(tuple(row))
    return StateSnapshot(processed, {uid: tuple(rows) for uid, rows in decisions.items()})

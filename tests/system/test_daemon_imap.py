"""`mailbot run` and `mailbot once` as real processes against a private Dovecot and the NetSuite
emulator: invitations end as events and their messages in the folder of their outcome; an
IMAP server restart or a NetSuite 503 storm in the middle of a run loses nothing and
duplicates nothing; dry-run changes nothing anywhere; SIGTERM in the middle of a batch stops
cleanly after the current message.

The emulator's account is the demo CRM plus the records that make the corpus matchable
(``tests/integration/engine_support.corpus_account``), so one configuration serves the demo
samples, corpus files and the meetings built here. Timing comes from the configuration
(``[daemon] backoff_cap``, ``[netsuite] max_attempts``) and from the emulator's fault plan;
every wait is for a condition, with a generous timeout.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from mailbot.sim.netsuite import FaultPlan, NetSuiteEmulator, load_data
from tests.imap_fixtures import DovecotServer, ImapAccount
from tests.integration.engine_support import (
    CORPUS,
    SYNC_MAILBOX,
    calendar,
    corpus_account,
    corpus_addresses,
    invitation_mail,
    vevent,
)
from tests.secret_guard import check_process_output
from tests.system.cli_support import (
    DEMO_SAMPLES,
    DEMO_SYNC_MAILBOX,
    mailbot_command,
    run_mailbot,
    secret_env,
)

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "fixtures" / "expected"
ORGANIZER = "sender@example.com"  # an employee in the corpus records
GUEST = "receiver@example.com"  # a contact of a customer in the corpus records
ID_SHIFT = 100_000  # corpus record ids moved past the demo's (the largest is 5060)
OUTCOME_FOLDERS = ("Synced", "Skipped", "Failed")
WAIT = 60.0  # seconds to wait for a condition; reached in a few seconds when all is well
STOP_BOUND = 20.0  # seconds from SIGTERM to exit: the current message, then out

# Corpus files whose decisions the golden files give, and whose CRM addresses the account
# knows: each create ends as one event titled as its golden `netsuite.title`.
CORPUS_SYNCED = (
    "comm-central__single-event.eml",
    "comm-central__meet-meeting-invite.eml",
    "comm-central__outlook-test-invite.eml",
    "comm-central__teams-meeting-invite.eml",
    "calmailproc__test-02-1.eml",
    "calmailproc__test-04-1.eml",
    "calmailproc__test-08.eml",
    "calmailproc__test-10.eml",
)
CORPUS_SKIPPED = (
    "calmailproc__test-0.eml",  # no_calendar_part
    "calmailproc__test-13.eml",  # multi_day
    "ccs-calendarserver__dsn_failure_with_ics.eml",  # bounce
    "ccs-calendarserver__reply_missing_attachment.eml",  # no_calendar_part
    "ccs-calendarserver__reply_missing_organizer.eml",  # reply_not_from_attendee
)
# The demo mailbox (see `mailbot demo`): a meeting updated, answered and cancelled, a
# forwarded invitation, a weekly series of four with one cancelled occurrence.
DEMO_SYNCED = (
    "01-new-meeting.eml",
    "02-update.eml",
    "03-calendar-reply.eml",
    "06-forward-as-attachment.eml",
    "07-weekly-check-in.eml",
    "08-cancel-one-check-in.eml",
    "10-cancel-product-demo.eml",
)
DEMO_SKIPPED = ("04-plain-reply.eml", "05-multi-day.eml", "09-forged-sender.eml")
DEMO_TITLES = Counter(
    {
        "Product demo for Alder Ventures": 1,
        "Integration review (Iris Software)": 1,
        "Weekly check-in (Alder Ventures)": 4,
    }
)
BACKOFF_LINE = re.compile(r"^(?P<phase>[a-z ]+) failed \((?P<count>\d+) in a row\)")
LEFT_LINE = re.compile(r"stop requested: (?P<left>\d+) messages left")


# --- the NetSuite account ---------------------------------------------------------------------


@cache
def _sync_account() -> dict[str, Any]:
    """The demo CRM plus the corpus records, their ids moved past the demo's."""
    data = copy.deepcopy(load_data(None))
    corpus = corpus_account().data

    def moved(row: dict[str, Any], *references: str) -> dict[str, Any]:
        row = {**row, "id": row["id"] + ID_SHIFT}
        for name in references:
            if row.get(name) is not None:
                row[name] += ID_SHIFT
        return row

    integration = corpus["integration_user"]
    data["employees"] += [moved(r) for r in corpus["employees"] if r["id"] != integration]
    data["customers"] += [moved(r) for r in corpus["customers"]]
    data["contacts"] += [moved(r, "company") for r in corpus["contacts"]]
    data["opportunities"] += [moved(r, "entity") for r in corpus["opportunities"]]
    return data


@pytest.fixture
def netsuite() -> Iterator[NetSuiteEmulator]:
    with NetSuiteEmulator(copy.deepcopy(_sync_account())) as emulator:
        yield emulator


# --- messages ---------------------------------------------------------------------------------


def meeting(label: str, number: int) -> bytes:
    """An employee's invitation to a customer contact: one event titled ``<label> <number>``."""
    day = number % 28 + 1
    event = vevent(
        uid=f"{label.lower().replace(' ', '-')}-{number:03d}@ourco.example.org",
        organizer=ORGANIZER,
        attendees=((GUEST, "NEEDS-ACTION"),),
        start=f"202507{day:02d}T100000",
        end=f"202507{day:02d}T110000",
        summary=meeting_title(label, number),
    )
    return invitation_mail(
        sender=ORGANIZER,
        method="REQUEST",
        ics=calendar("REQUEST", event),
        subject=meeting_title(label, number),
    )


def meeting_title(label: str, number: int) -> str:
    return f"{label} {number:03d}"


def golden(name: str) -> list[dict[str, Any]]:
    decisions: list[dict[str, Any]] = json.loads(
        (GOLDEN / f"{name}.json").read_text(encoding="utf-8")
    )["decisions"]
    return decisions


def corpus_file(name: str) -> Path:
    return CORPUS / "eml" / name


def digest(raw: bytes) -> str:
    """The message's hash with line ends made equal (the server hands out CRLF)."""
    return hashlib.sha256(raw.replace(b"\r\n", b"\n")).hexdigest()


# --- configuration and processes --------------------------------------------------------------


def write_config(
    tmp_path: Path,
    emulator: NetSuiteEmulator,
    account: ImapAccount,
    **daemon: int | float,
) -> Path:
    """A configuration for this account; ``daemon`` overrides keys of ``[daemon]``."""
    options: dict[str, int | float] = {"idle_timeout": 300, "backoff_cap": 2, **daemon}
    senders = ", ".join(f'"{domain}"' for domain in corpus_addresses().sender_domains)
    lines = [
        "[netsuite]",
        'timezone = "Europe/Berlin"',
        f'account = "{emulator.account}"',
        f'base_url = "{emulator.base_url}"',
        "max_attempts = 2",
        "read_timeout = 10.0",
        "[rules]",
        f"sender_domains = [{senders}]",
        "[matching]",
        f'mailbox_addresses = ["{DEMO_SYNC_MAILBOX}", "{SYNC_MAILBOX}"]',
        "[sync]",
        f'state_path = "{state_path(tmp_path)}"',
        "[imap]",
        f'host = "{account.host}"',
        f"port = {account.port}",
        f'username = "{account.username}"',
        'tls = "starttls"',
        f'ca_file = "{account.ca_file}"',
        "connect_timeout = 2.0",
        "read_timeout = 10.0",
        "[daemon]",
        "log_json = true",
        'metrics_address = "127.0.0.1:0"',
        *(f"{key} = {value}" for key, value in options.items()),
    ]
    config = tmp_path / "mailbot.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def state_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "state.sqlite3"


def mailbot_once(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_mailbot("once", "--config", str(config), *args, env=env)


def log_records(stderr: str) -> list[dict[str, Any]]:
    """The JSON log lines (lines written before logging was set up are plain text)."""
    records = []
    for line in stderr.splitlines():
        with suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                records.append(record)
    return records


def decision_lines(stderr: str) -> list[dict[str, Any]]:
    return [r for r in log_records(stderr) if r.get("logger") == "mailbot.decisions"]


@dataclass
class Daemon:
    """One ``mailbot run`` process; threads collect its stdout and stderr as they come."""

    process: subprocess.Popen[str]
    _out: list[str] = field(default_factory=list)
    _err: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _readers: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def start(cls, config: Path, env: dict[str, str], *args: str) -> Daemon:
        process = subprocess.Popen(
            mailbot_command("run", "--config", str(config), *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        daemon = cls(process)
        for stream, lines in ((process.stdout, daemon._out), (process.stderr, daemon._err)):
            reader = threading.Thread(target=daemon._read, args=(stream, lines), daemon=True)
            reader.start()
            daemon._readers.append(reader)
        return daemon

    def _read(self, stream: Any, lines: list[str]) -> None:
        for line in stream:
            check_process_output("output of mailbot run", line)
            with self._lock:
                lines.append(line)

    @property
    def stdout(self) -> str:
        with self._lock:
            return "".join(self._out)

    @property
    def stderr(self) -> str:
        with self._lock:
            return "".join(self._err)

    def decisions(self) -> list[dict[str, Any]]:
        return decision_lines(self.stderr)

    def backoffs(self) -> list[tuple[str, int]]:
        """(phase, failures in a row) of every backoff the daemon announced."""
        found = []
        for record in log_records(self.stderr):
            match = BACKOFF_LINE.match(str(record.get("message", "")))
            if record.get("logger") == "mailbot.daemon" and match:
                found.append((match["phase"], int(match["count"])))
        return found

    def messages(self, logger: str) -> list[str]:
        return [str(r["message"]) for r in log_records(self.stderr) if r.get("logger") == logger]

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                pytest.fail(
                    f"mailbot exited ({self.process.returncode}) before {what}:\n"
                    f"{self.stderr[-4000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} after {timeout:.0f}s:\n{self.stderr[-4000:]}")
            time.sleep(0.05)

    def terminate(self, timeout: float = STOP_BOUND) -> int:
        """SIGTERM; the exit code, which must come within ``timeout`` seconds."""
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"mailbot still running {timeout:.0f}s after SIGTERM:\n{self.stderr}")
        for reader in self._readers:
            reader.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def daemons() -> Iterator[Callable[..., Daemon]]:
    """Starts ``mailbot run`` processes; any still running at the end is killed."""
    started: list[Daemon] = []

    def start(config: Path, env: dict[str, str], *args: str) -> Daemon:
        daemon = Daemon.start(config, env, *args)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.kill()


# --- the mailbox, the state, NetSuite ---------------------------------------------------------


def folder_counts(account: ImapAccount) -> dict[str, int]:
    """Messages in INBOX and each outcome folder (0 for a folder not made yet)."""
    existing = account.folders()
    return {
        folder: len(account.folder_uids(folder)) if folder in existing else 0
        for folder in ("INBOX", *OUTCOME_FOLDERS)
    }


def all_filed(account: ImapAccount, total: int) -> Callable[[], bool]:
    def filed() -> bool:
        counts = folder_counts(account)
        return counts["INBOX"] == 0 and sum(counts[f] for f in OUTCOME_FOLDERS) == total

    return filed


def folder_digests(account: ImapAccount, folder: str) -> Counter[str]:
    """The messages of a folder by content (see ``digest``)."""
    if folder not in account.folders():
        return Counter()
    client = account.helper()
    client.select_folder(folder, readonly=True)
    uids = client.search(["ALL"])
    if not uids:
        return Counter()
    fetched = client.fetch(uids, ["BODY.PEEK[]"])
    return Counter(digest(data[b"BODY[]"]) for data in fetched.values())


def folder_message_ids(account: ImapAccount, folder: str) -> set[str]:
    if folder not in account.folders():
        return set()
    client = account.helper()
    client.select_folder(folder, readonly=True)
    uids = client.search(["ALL"])
    if not uids:
        return set()
    fetched = client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
    found = set()
    for data in fetched.values():
        header = data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode().strip()
        found.add(header.partition(":")[2].strip())
    return found


def reconnect_helper(account: ImapAccount) -> None:
    """Forget the helper connection (the server was restarted under it)."""
    with suppress(Exception):
        account.close()


@dataclass(frozen=True)
class StateRows:
    processed: list[tuple[str, str, int, str | None]]  # (uid, outcome, attempts, last_error)
    message_ids: list[str]
    decisions: Counter[str]  # decision rows per mailbox UID


def state_rows(path: Path) -> StateRows:
    """What the state database holds (read after the daemon has exited)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        processed = db.execute(
            "SELECT uid, outcome, attempts, last_error FROM processed_messages ORDER BY uid"
        ).fetchall()
        ids = [row[0] for row in db.execute("SELECT message_id FROM processed_messages")]
        decisions = Counter(
            str(row[0]) for row in db.execute("SELECT uid_in_mailbox FROM decisions")
        )
    finally:
        db.close()
    return StateRows(processed, ids, decisions)


def assert_each_event_once(emulator: NetSuiteEmulator, titles: Counter[str]) -> None:
    events = emulator.records("calendarEvent")
    external_ids = Counter(event["externalId"] for event in events)
    assert [eid for eid, n in external_ids.items() if n > 1] == []
    assert Counter(event["title"] for event in events) == titles


def assert_exactly_once(
    account: ImapAccount, emulator: NetSuiteEmulator, state: Path, sent: list[bytes], label: str
) -> None:
    """Each built meeting: one event, one message in Synced, one state row, one decision."""
    assert folder_counts(account) == {"INBOX": 0, "Synced": len(sent), "Skipped": 0, "Failed": 0}
    assert folder_digests(account, "Synced") == Counter(digest(raw) for raw in sent)
    assert_each_event_once(emulator, Counter(meeting_title(label, n) for n in range(len(sent))))
    rows = state_rows(state)
    assert len(rows.processed) == len(sent)
    assert {outcome for _, outcome, _, _ in rows.processed} == {"synced"}
    assert len(set(rows.message_ids)) == len(sent)
    assert rows.decisions == Counter({uid: 1 for uid, _, _, _ in rows.processed})


# --- 1. invitations in, events out ------------------------------------------------------------


def test_run_syncs_corpus_and_demo_invitations_and_those_that_come_while_it_idles(
    tmp_path: Path,
    netsuite: NetSuiteEmulator,
    imap_account: ImapAccount,
    daemons: Callable[..., Daemon],
) -> None:
    corpus_names = (*CORPUS_SYNCED, *CORPUS_SKIPPED)
    by_uid = {
        str(imap_account.append("INBOX", corpus_file(name).read_bytes())): name
        for name in corpus_names
    }
    config = write_config(tmp_path, netsuite, imap_account)
    daemon = daemons(config, secret_env(netsuite, imap_account))
    daemon.wait_for(all_filed(imap_account, len(corpus_names)), "corpus messages filed")

    # now the daemon waits in IDLE (idle_timeout is 300 s): new mail must wake it
    for path in sorted(DEMO_SAMPLES.glob("*.eml")):
        imap_account.append("INBOX", path.read_bytes())
    total = len(corpus_names) + len(DEMO_SYNCED) + len(DEMO_SKIPPED)
    daemon.wait_for(all_filed(imap_account, total), "demo messages filed after IDLE")
    assert daemon.terminate() == 0

    logged: dict[str, list[tuple[str, str | None]]] = {}
    for record in daemon.decisions():
        if record["mailbox_uid"] in by_uid:
            logged.setdefault(by_uid[record["mailbox_uid"]], []).append(
                (record["outcome"], record["reason"])
            )
    assert logged == {
        name: [(d["outcome"], d["reason"]) for d in golden(name)] for name in corpus_names
    }
    corpus_titles = Counter(golden(name)[0]["netsuite"]["title"] for name in CORPUS_SYNCED)
    assert_each_event_once(netsuite, corpus_titles + DEMO_TITLES)

    def contents(names: tuple[str, ...], folder: Path | None = None) -> Counter[str]:
        return Counter(
            digest((folder / name if folder else corpus_file(name)).read_bytes()) for name in names
        )

    assert folder_digests(imap_account, "Synced") == contents(CORPUS_SYNCED) + contents(
        DEMO_SYNCED, DEMO_SAMPLES
    )
    assert folder_digests(imap_account, "Skipped") == contents(CORPUS_SKIPPED) + contents(
        DEMO_SKIPPED, DEMO_SAMPLES
    )
    assert folder_counts(imap_account)["INBOX"] == 0
    assert "Failed" not in imap_account.folders()
    assert netsuite.credentials["token_secret"] not in daemon.stderr
    assert imap_account.password not in daemon.stderr


# --- 2. the IMAP server restarts in the middle of a run ---------------------------------------


def test_an_imap_server_restart_mid_run_loses_and_duplicates_nothing(
    tmp_path: Path,
    netsuite: NetSuiteEmulator,
    dovecot_factory: Callable[[], DovecotServer],
    daemons: Callable[..., Daemon],
) -> None:
    server = dovecot_factory()
    account = server.new_account()
    label = "Restart"
    sent = [meeting(label, n) for n in range(20)]
    for raw in sent[:12]:
        account.append("INBOX", raw)
    netsuite.set_faults(FaultPlan(latency_ms=250))  # the batch is being handled when it stops
    config = write_config(tmp_path, netsuite, account)
    daemon = daemons(config, secret_env(netsuite, account))
    daemon.wait_for(lambda: len(daemon.decisions()) >= 3, "three messages handled")

    # while it handles the batch
    server.stop()
    daemon.wait_for(lambda: len(daemon.backoffs()) >= 2, "two failed tries while it is down")
    server.start()
    netsuite.set_faults(FaultPlan())
    reconnect_helper(account)
    for raw in sent[12:17]:  # the stream goes on after the restart
        account.append("INBOX", raw)
    daemon.wait_for(all_filed(account, 17), "every message filed after the first restart")
    phases = [phase for phase, _ in daemon.backoffs()]
    assert phases[0] == "filing"  # a message committed, its MOVE cut off by the stop
    assert phases[-1] == "reconnecting"

    # while it waits in IDLE
    before = len(daemon.backoffs())
    server.stop()
    daemon.wait_for(lambda: len(daemon.backoffs()) > before, "the IDLE connection's loss seen")
    server.start()
    reconnect_helper(account)
    for raw in sent[17:]:
        account.append("INBOX", raw)
    daemon.wait_for(all_filed(account, len(sent)), "every message filed after the second")

    assert daemon.process.poll() is None  # it reconnected each time, it did not exit
    assert daemon.terminate() == 0
    assert daemon.backoffs()[before][0] == "waiting"
    assert len(daemon.decisions()) == len(sent)
    assert_exactly_once(account, netsuite, state_path(tmp_path), sent, label)
    account.close()


# --- 3. NetSuite answers 503 for a while ------------------------------------------------------


def test_a_netsuite_503_storm_mid_run_quarantines_nothing_and_syncs_everything_once(
    tmp_path: Path,
    netsuite: NetSuiteEmulator,
    imap_account: ImapAccount,
    daemons: Callable[..., Daemon],
) -> None:
    label = "Storm"
    sent = [meeting(label, n) for n in range(15)]
    for raw in sent[:10]:
        imap_account.append("INBOX", raw)
    netsuite.set_faults(FaultPlan(latency_ms=100))
    config = write_config(tmp_path, netsuite, imap_account, max_attempts=2)
    daemon = daemons(config, secret_env(netsuite, imap_account))
    daemon.wait_for(lambda: len(daemon.decisions()) >= 2, "two messages handled")

    netsuite.set_faults(FaultPlan(error_rate=1.0, error_statuses=(503,)))
    for raw in sent[10:]:
        imap_account.append("INBOX", raw)
    # three failed passes in a row: each after the client's own retries, and after two
    # pauses of the daemon: more than max_attempts, had they counted
    daemon.wait_for(
        lambda: any(count >= 3 for _, count in daemon.backoffs()), "three failed passes"
    )
    netsuite.set_faults(FaultPlan())
    daemon.wait_for(all_filed(imap_account, len(sent)), "every message filed")
    assert daemon.terminate() == 0

    assert netsuite.status_counts().get(503, 0) >= 6
    assert len(daemon.decisions()) == len(sent)
    assert any("503" in m for m in daemon.messages("mailbot.netsuite"))  # the client retried
    assert not any("quarantined" in m for m in daemon.messages("mailbot.daemon"))
    assert_exactly_once(imap_account, netsuite, state_path(tmp_path), sent, label)
    rows = state_rows(state_path(tmp_path))
    assert [(attempts, error) for _, _, attempts, error in rows.processed] == [(1, None)] * len(
        sent
    )  # the storm counted as no message's attempt


# --- 4. dry-run ---------------------------------------------------------------------------------


def world(
    account: ImapAccount, emulator: NetSuiteEmulator, state_dir: Path
) -> tuple[Any, Any, Any]:
    """Everything a run could change: folders, UIDs and flags; the state's files; NetSuite.

    ``\\Recent`` is left out: it belongs to an IMAP session, not to the message.
    """
    mailbox = {
        folder: {uid: flags - {b"\\Recent"} for uid, flags in messages.items()}
        for folder, messages in account.snapshot().items()
    }
    files = (
        {
            str(path.relative_to(state_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(state_dir.rglob("*"))
            if path.is_file()
        }
        if state_dir.exists()
        else None
    )
    records = {
        kind: emulator.records(kind)
        for kind in ("calendarEvent", "employee", "customer", "contact", "opportunity")
    }
    return mailbox, files, records


def test_dry_run_leaves_mailbox_state_and_netsuite_exactly_as_they_were(
    tmp_path: Path,
    netsuite: NetSuiteEmulator,
    imap_account: ImapAccount,
    daemons: Callable[..., Daemon],
) -> None:
    label = "Dry"
    earlier = [meeting(label, n) for n in range(3)]
    for raw in earlier:
        imap_account.append("INBOX", raw)
    config = write_config(tmp_path, netsuite, imap_account)
    env = secret_env(netsuite, imap_account)
    state_dir = state_path(tmp_path).parent

    before = world(imap_account, netsuite, state_dir)
    fresh = mailbot_once(config, env, "--dry-run")
    assert fresh.returncode == 0, fresh.stderr
    assert len(decision_lines(fresh.stderr)) == len(earlier)
    assert world(imap_account, netsuite, state_dir) == before  # no state file made either

    real = mailbot_once(config, env)
    assert real.returncode == 0, real.stderr
    assert len(netsuite.records("calendarEvent")) == len(earlier)

    new = [meeting(label, n) for n in range(3, 6)]
    imap_account.append("INBOX", new[0], flags=("\\Seen",))
    for raw in new[1:]:
        imap_account.append("INBOX", raw)
    imap_account.append("INBOX", corpus_file("calmailproc__test-0.eml").read_bytes())
    imap_account.append("INBOX", earlier[0])  # processed before, under another UID
    waiting = len(new) + 2
    before = world(imap_account, netsuite, state_dir)
    assert before[1] is not None and "state.sqlite3" in before[1]
    inbox = before[0]["INBOX"]
    assert len(inbox) == waiting
    assert sum(b"\\Seen" in flags for flags in inbox.values()) == 1

    once = mailbot_once(config, env, "--dry-run")
    assert once.returncode == 0, once.stderr
    assert world(imap_account, netsuite, state_dir) == before
    decided = [(d["outcome"], d["reason"], d["summary"]) for d in decision_lines(once.stderr)]
    expected = [("create", None, meeting_title(label, n)) for n in range(3, 6)]
    assert decided[: len(new)] == expected
    assert decided[len(new)][:2] == ("skip", "no_calendar_part")
    titles = [meeting_title(label, n) for n in range(3, 6)]
    assert all(title in once.stdout for title in titles)  # the decisions are shown

    daemon = daemons(config, env, "--dry-run")
    daemon.wait_for(
        lambda: sum("would file" in m for m in daemon.messages("mailbot.imap")) == waiting,
        "every waiting message handled",
    )
    assert daemon.terminate() == 0
    assert world(imap_account, netsuite, state_dir) == before
    assert all(title in daemon.stdout for title in titles)
    assert [(d["outcome"], d["reason"], d["summary"]) for d in daemon.decisions()] == decided


# --- 5. SIGTERM in the middle of a batch ------------------------------------------------------


def test_sigterm_mid_batch_finishes_the_current_message_and_a_second_run_does_the_rest(
    tmp_path: Path,
    netsuite: NetSuiteEmulator,
    imap_account: ImapAccount,
    daemons: Callable[..., Daemon],
) -> None:
    label = "Batch"
    sent = [meeting(label, n) for n in range(60)]
    for raw in sent:
        imap_account.append("INBOX", raw)
    netsuite.set_faults(FaultPlan(latency_ms=200))  # the batch takes seconds
    config = write_config(tmp_path, netsuite, imap_account, batch=100)
    env = secret_env(netsuite, imap_account)
    daemon = daemons(config, env)
    daemon.wait_for(lambda: len(daemon.decisions()) >= 5, "five messages handled")

    assert daemon.terminate() == 0
    left = [
        int(m["left"])
        for line in daemon.messages("mailbot.daemon")
        if (m := LEFT_LINE.search(line))
    ]
    counts = folder_counts(imap_account)
    assert left == [counts["INBOX"]]
    assert 0 < counts["INBOX"] < len(sent)
    done = len(sent) - counts["INBOX"]
    assert counts == {"INBOX": len(sent) - done, "Synced": done, "Skipped": 0, "Failed": 0}
    rows = state_rows(state_path(tmp_path))
    assert len(rows.processed) == done == len(daemon.decisions())
    assert set(rows.message_ids) == folder_message_ids(imap_account, "Synced")
    assert len(netsuite.records("calendarEvent")) == done

    netsuite.set_faults(FaultPlan())
    second = mailbot_once(config, env)
    assert second.returncode == 0, second.stderr
    assert len(decision_lines(second.stderr)) == len(sent) - done
    assert_exactly_once(imap_account, netsuite, state_path(tmp_path), sent, label)

"""Injected faults: ``mailbot run`` over a mailbox while everything around it misbehaves ends
with every message filed as a quiet run files it, NetSuite as a quiet run leaves it, and the
daemon neither spins nor retries without end.

One daemon (restarted as systemd would after an exit 75) works through the mailbox
(``mailbox_workload``) against:

* NetSuite (the emulator) failing about one request in five all the time: 429, 500 and 503
  answers, connections reset, answers held back past the client's 1 s read timeout (the
  write was done, the client never hears of it), and every answer slowed by 20 to 170 ms
  (each kind of fault is scripted once at the start, so that each surely happens);
* at 20 % of the mailbox filed: every IMAP connection to Dovecot dropped (its ``imap``
  processes killed: no BYE, the socket just closes);
* at 40 %: Dovecot stopped for ``DOWN_SECONDS`` and started again;
* at 60 %: the state database's file system full (a small tmpfs, filled up) until the
  daemon has met it and a little longer;
* at 80 %: NetSuite unreachable (connection refused) for ``OUTAGE_SECONDS``.

Then every message must be in the folder a quiet run files it to, NetSuite must hold exactly
the events of a quiet run (the engine in-process on a fresh account, no faults), every
message must have been committed exactly once with the decisions of the quiet run, each
fault must have left a WARNING line that names it, NetSuite must have been asked at most
three times as often as in the quiet run, and while something was down or full the
daemon's CPU time and its number of tries must stay small. Every fault here is temporary,
so nothing may be quarantined: a message in Failed fails the test, with its reason.

The disk is a tmpfs in a user and mount namespace (``unshare``), owned by a holder process,
so a full disk is ENOSPC and SQLite says ``database or disk is full`` (SQLITE_FULL). Where
user namespaces are not allowed, the daemon's RLIMIT_FSIZE is lowered instead (``prlimit``):
the kernel refuses the writes (EFBIG) and SQLite says ``disk I/O error``; the figures name
the mechanism used.

Figures: a line ``injected-faults figures {...}`` (``pytest -s``). The quick run (80
messages) is part of ``make test``; the full one (300 messages) is marked ``long``
(``make test-long``).
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mailbot.app import emulator_config, open_engine
from mailbot.core.policy import MatchPolicy
from mailbot.ports import MessageKey
from mailbot.service import MailItem
from mailbot.settings import Settings
from mailbot.sim.netsuite import FaultPlan, LoggedRequest, NetSuiteEmulator, load_data
from tests.imap_fixtures import DovecotServer, ImapAccount
from tests.integration.mailbox_workload import (
    SYNC_MAILBOX,
    ZONE_NAME,
    Workload,
    build_workload,
    meeting_with_reply,
    plain_note,
)
from tests.integration.reliability_support import (
    INBOX,
    OUTCOME_FOLDERS,
    WAIT,
    DaemonProcess,
    Setup,
    StateSnapshot,
    deliver,
    duplicate_events,
    filed_by_message_id,
    folder_counts,
    install,
    kill_leftovers,
    netsuite_events,
    read_state,
)

SEED = int(os.environ.get("MAILBOT_RELIABILITY_SEED", "7"))
EXIT_TEMPORARY = 75  # systemd restarts the service (Restart=on-failure)
CLIENT_ATTEMPTS = 5  # [netsuite] max_attempts
READ_TIMEOUT = 1.0  # [netsuite] read_timeout, seconds
STORM = FaultPlan(
    error_rate=0.16,
    error_statuses=(429, 500, 503),
    reset_rate=0.03,
    stall_rate=0.03,
    stall_seconds=2.0,
    latency_ms=20,
    latency_jitter_ms=150,
    script=("reset", None, "stall", None, 429, None, 500, None, 503),  # each kind at least once
    seed=SEED,
)
DOWN_SECONDS = 4.0  # Dovecot stopped
OUTAGE_SECONDS = 15.0  # NetSuite unreachable
DISK_SECONDS = 3.0  # the disk stays full this long after the daemon met it
MAX_CPU_SHARE = 0.1  # of the wall time of an outage, for a daemon that waits
FOLDERS = {"synced": "Synced", "skipped": "Skipped", "failed": "Failed"}
TMPFS, RLIMIT = "tmpfs-enospc", "rlimit-fsize"  # how the state's disk is made full
RETRY_LINE = re.compile(r"^(?P<method>[A-Z]+) (?P<path>\S+) -> (?P<status>.+) \(attempt (?P<n>\d+)")
BACKOFF_LINE = re.compile(r"^(?P<phase>[a-z ]+) failed \((?P<count>\d+) in a row\): (?P<why>.*)")


@pytest.fixture(autouse=True)
def _no_daemon_left() -> Iterator[None]:
    yield
    kill_leftovers()


# --- a quiet run to compare with -----------------------------------------------------------


@dataclass(frozen=True)
class QuietRun:
    """The same mailbox through the engine in-process, on a fresh account without faults."""

    events: dict[str, dict[str, Any]]
    folders: dict[str, tuple[str, ...]]  # Message-ID -> folders of its copies
    decisions: dict[str, tuple[tuple[Any, ...], ...]]  # mailbox UID -> decisions
    requests: int


def quiet_run(workload: Workload, folder: Path) -> QuietRun:
    settings = Settings(
        timezone=ZONE_NAME,
        state_path=str(folder / "quiet.sqlite3"),
        matching=MatchPolicy(mailbox_addresses=frozenset({SYNC_MAILBOX})),
    )
    items = [
        MailItem(MessageKey("imap:INBOX", 1, str(uid)), message.raw)
        for uid, message in enumerate(workload.messages, 1)
    ]
    with NetSuiteEmulator(load_data(None)) as emulator:
        with open_engine(settings, emulator_config(emulator), dry_run=False) as engine:
            handled = engine.service.handle_batch(items, datetime.now(UTC))
        folders: dict[str, list[str]] = {}
        decisions = {}
        for item, message, result in zip(items, workload.messages, handled, strict=True):
            folders.setdefault(message.message_id, []).append(FOLDERS[result.outcome])
            decisions[item.key.uid] = tuple(
                (
                    r["message_id"],
                    r["uid"],
                    r["recurrence_id"],
                    r["outcome"],
                    r["reason"],
                    int(r["written"]),
                )
                for r in result.records
            )
        return QuietRun(
            netsuite_events(emulator),
            {key: tuple(sorted(value)) for key, value in folders.items()},
            decisions,
            len(emulator.request_log()),
        )


# --- the state's small disk ------------------------------------------------------------------


class SmallDisk:
    """The state folder on a tmpfs of its own that a test fills up and frees again.

    A holder process owns a user and mount namespace with the tmpfs mounted on
    ``state_dir``; the daemon is started inside it (``nsenter``) and the test reaches the
    files through ``/proc/<holder>/root``. Without user namespaces (or when asked with
    ``tmpfs=False``): no tmpfs, and ``fill`` lowers the daemon's RLIMIT_FSIZE instead.
    """

    SIZE = "32m"

    def __init__(self, state_dir: Path, *, tmpfs: bool = True) -> None:
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.holder: subprocess.Popen[str] | None = None
        self.mechanism = RLIMIT
        self._limits: tuple[int, int] | None = None
        script = 'mount -t tmpfs -o size="$1" tmpfs "$2" && echo mounted && exec sleep 100000'
        unshare = shutil.which("unshare")
        if not tmpfs or unshare is None or shutil.which("nsenter") is None:
            return
        namespace = [unshare, "--user", "--map-root-user", "--mount"]
        holder = subprocess.Popen(
            [*namespace, "sh", "-c", script, "sh", self.SIZE, str(state_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert holder.stdout is not None
        if holder.stdout.readline().strip() == "mounted":
            self.holder = holder
            self.mechanism = TMPFS
        else:
            holder.wait(10)

    @property
    def wrapper(self) -> list[str]:
        if self.holder is None:
            return []
        return ["nsenter", f"--target={self.holder.pid}", "--user", "--mount"]

    def path(self, inside: Path) -> Path:
        """A path of the state folder as this process reaches it."""
        if self.holder is None:
            return inside
        return Path(f"/proc/{self.holder.pid}/root") / inside.relative_to("/")

    def copy_out(self, state_path: Path, folder: Path) -> Path:
        """The state database (and its WAL) copied to ``folder``: SQLite resolves the
        /proc/<pid>/root link to this namespace's root, so it cannot open the file there."""
        folder.mkdir(parents=True, exist_ok=True)
        for source in self.path(state_path).parent.glob(f"{state_path.name}*"):
            shutil.copyfile(source, folder / source.name)
        return folder / state_path.name

    def fill(self, daemon_pid: int) -> None:
        if self.holder is None:
            limits = resource.prlimit(daemon_pid, resource.RLIMIT_FSIZE)
            self._limits = limits
            resource.prlimit(daemon_pid, resource.RLIMIT_FSIZE, (1, limits[1]))
            return
        with self.path(self.state_dir / "filler").open("wb") as filler:
            chunk = b"\0" * (1 << 20)
            with suppress(OSError):  # ENOSPC: full
                while True:
                    filler.write(chunk)
                    filler.flush()

    def free(self, daemon_pid: int) -> None:
        if self.holder is None:
            if self._limits is not None:
                with suppress(ProcessLookupError):
                    resource.prlimit(daemon_pid, resource.RLIMIT_FSIZE, self._limits)
            return
        self.path(self.state_dir / "filler").unlink()

    def close(self) -> None:
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait(10)


@pytest.fixture
def small_disk(request: pytest.FixtureRequest) -> Iterator[SmallDisk]:
    """The tmpfs where it can be had; ``RLIMIT`` as the parameter asks for the fallback."""
    state_dir = Path(tempfile.mkdtemp(prefix="mailbot-state-"))
    disk = SmallDisk(state_dir, tmpfs=getattr(request, "param", TMPFS) == TMPFS)
    yield disk
    disk.close()
    shutil.rmtree(state_dir, ignore_errors=True)


# --- the daemon, restarted as systemd does --------------------------------------------------------


@dataclass
class Supervisor:
    """``mailbot run`` kept running: after exit 75 it is started again (systemd waits
    ``RestartSec``; here a second). Any other exit fails the test."""

    setup: Setup
    wrapper: list[str]
    runs: list[DaemonProcess] = field(default_factory=list)

    @property
    def daemon(self) -> DaemonProcess:
        return self.runs[-1]

    def start(self) -> None:
        self.runs.append(DaemonProcess.start(self.setup, wrapper=self.wrapper))

    def keep_running(self) -> None:
        code = self.daemon.process.poll()
        if code is None:
            return
        self.daemon.kill()  # joins the reader
        assert code == EXIT_TEMPORARY, f"mailbot exited {code}:\n{self.daemon.transcript()}"
        time.sleep(1.0)
        self.start()

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            self.keep_running()
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} after {timeout:.0f}s:\n{self.daemon.transcript()}")
            time.sleep(0.1)

    def records(self) -> list[dict[str, Any]]:
        return [record for run in self.runs for record in run.lines()]

    def cpu_seconds(self) -> float:
        return self.daemon.cpu_seconds()


# --- faults ------------------------------------------------------------------------------


def drop_imap_connections(server: DovecotServer) -> int:
    """SIGKILL every ``imap`` process of the server: its clients' sockets just close."""
    assert server.process is not None
    master = server.process.pid
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        if parent == master and name == "imap":
            with suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed


@dataclass
class Outage:
    """CPU time the daemon used and tries it made while something was down or full."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0
    tries: int = 0

    def figures(self) -> dict[str, float]:
        return {
            "seconds": round(self.seconds, 1),
            "daemon_cpu_seconds": round(self.cpu_seconds, 2),
            "tries": self.tries,
        }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def netsuite() -> Iterator[NetSuiteEmulator]:
    """The demo account on a fixed port, so that it can be stopped and started again."""
    emulator = NetSuiteEmulator(load_data(None), port=free_port())
    with emulator:
        yield emulator


# --- the scenario ------------------------------------------------------------------------


@dataclass
class Storm:
    """Everything that went wrong, for the assertions and the figures."""

    imap_processes_killed: int = 0
    dovecot_down: Outage = field(default_factory=Outage)
    netsuite_down: Outage = field(default_factory=Outage)
    disk_full: Outage = field(default_factory=Outage)
    seconds: float = 0.0  # from the daemon's start until every message was filed


def weather_the_storm(
    tmp_path: Path,
    dovecot: DovecotServer,
    netsuite: NetSuiteEmulator,
    disk: SmallDisk,
    workload: Workload,
) -> None:
    """The quiet run, the stormy one, and what must hold after it (see the module)."""
    quiet = quiet_run(workload, tmp_path)
    account = dovecot.new_account()
    deliver(account, workload.messages)
    setup = stormy_setup(tmp_path, netsuite, account, disk)
    supervisor = Supervisor(setup, disk.wrapper)
    storm = blow(supervisor, account, dovecot, netsuite, disk, len(workload))
    records = supervisor.records()
    state = read_state(disk.copy_out(setup.state_path, tmp_path / "state-copy"))

    assert folder_counts(account)[INBOX] == 0
    folders = filed_by_message_id(account)
    quarantined = [mid for mid, places in folders.items() if "Failed" in places]
    assert quarantined == [], quarantine_reasons(state, records)
    assert folders == quiet.folders, differences(folders, quiet, state, records)
    assert netsuite_events(netsuite) == quiet.events
    assert duplicate_events(netsuite) == []
    assert {attempts for _, _, attempts, _ in state.processed.values()} == {1}
    assert state.decisions == quiet.decisions

    assert_named(warnings(records), disk.mechanism)
    assert storm.imap_processes_killed >= 1
    requests = netsuite.request_log()
    assert len(requests) <= 3 * quiet.requests, "NetSuite asked far more often than needed"
    assert retries(records) and max(retries(records)) < CLIENT_ATTEMPTS
    for outage in (storm.dovecot_down, storm.disk_full, storm.netsuite_down):
        assert outage.cpu_seconds <= MAX_CPU_SHARE * outage.seconds, outage
    assert storm.netsuite_down.tries <= 4 * OUTAGE_SECONDS, storm.netsuite_down
    figures = storm_figures(storm, requests, records, quiet, disk.mechanism)
    figures.update(messages=len(workload), daemon_processes=len(supervisor.runs))
    print("injected-faults figures", json.dumps(figures))


def blow(
    supervisor: Supervisor,
    account: ImapAccount,
    dovecot: DovecotServer,
    netsuite: NetSuiteEmulator,
    disk: SmallDisk,
    total: int,
) -> Storm:
    """The daemon through the storm, a fault at each fifth of the mailbox, until every
    message is filed; then SIGTERM (exit 0)."""
    netsuite.set_faults(STORM)
    netsuite.reset_log()
    started = time.monotonic()
    supervisor.start()
    storm = Storm()

    def filed_share(share: float) -> Callable[[], bool]:
        return lambda: _filed(account) >= share * total

    supervisor.wait_for(filed_share(0.2), "a fifth of the mailbox filed")
    storm.imap_processes_killed = drop_imap_connections(dovecot)

    supervisor.wait_for(filed_share(0.4), "two fifths of the mailbox filed")
    storm.dovecot_down = while_down(supervisor, DOWN_SECONDS, dovecot.stop, dovecot.start)

    supervisor.wait_for(filed_share(0.6), "three fifths of the mailbox filed")
    storm.disk_full = fill_the_disk(supervisor, disk)

    supervisor.wait_for(filed_share(0.8), "four fifths of the mailbox filed")
    storm.netsuite_down = while_down(supervisor, OUTAGE_SECONDS, netsuite.stop, netsuite.start)
    netsuite.set_faults(STORM)

    supervisor.wait_for(lambda: _all_filed(account, total), "every message filed", 5 * WAIT)
    storm.seconds = time.monotonic() - started
    assert supervisor.daemon.terminate() == 0, supervisor.daemon.transcript()
    return storm


def storm_figures(
    storm: Storm,
    requests: list[LoggedRequest],
    records: list[dict[str, Any]],
    quiet: QuietRun,
    disk_mechanism: str,
) -> dict[str, Any]:
    """What was injected and what it cost (checks that each kind of fault happened)."""
    faults = Counter(entry.fault or "none" for entry in requests)
    assert faults["reset"] and faults["stall"], faults
    statuses = Counter(entry.status for entry in requests if entry.fault == "error")
    assert set(statuses) == {429, 500, 503}, statuses
    per_event = Counter(e.path.partition("?")[0] for e in requests if "/calendarEvent/" in e.path)
    return {
        "seed": SEED,
        "events": len(quiet.events),
        "disk": disk_mechanism,
        "netsuite_requests": len(requests),
        "netsuite_requests_quiet_run": quiet.requests,
        "netsuite_faults": {
            **{f"http_{status}": n for status, n in sorted(statuses.items())},
            "reset": faults["reset"],
            "stalled_past_read_timeout": faults["stall"],
            "concurrency_429": faults["concurrency"],
        },
        "faulty_share": round(1 - faults["none"] / len(requests), 3),
        "client_retries": len(retries(records)),
        "most_requests_for_one_event": max(per_event.values()),
        "imap_processes_killed": storm.imap_processes_killed,
        "dovecot_down": storm.dovecot_down.figures(),
        "netsuite_unreachable": storm.netsuite_down.figures(),
        "state_disk_full": storm.disk_full.figures(),
        "daemon_backoffs": dict(Counter(phase for phase, _ in backoffs(records))),
        "warning_lines": len(warnings(records)),
        "seconds": round(storm.seconds, 1),
    }


def stormy_setup(
    tmp_path: Path, netsuite: NetSuiteEmulator, account: ImapAccount, disk: SmallDisk
) -> Setup:
    """Short timeouts and pauses, the state on the small disk."""
    # The server's folder belongs to the user Dovecot runs as, whom the daemon's user
    # namespace does not map: the CA file is copied to where the daemon can read it.
    ca_file = shutil.copy(account.ca_file, tmp_path / "test-ca.pem")
    return install(
        tmp_path / "stormy",
        netsuite,
        account,
        state_dir=disk.state_dir,
        netsuite={"read_timeout": READ_TIMEOUT, "connect_timeout": 2.0},
        imap={"connect_timeout": 2.0, "read_timeout": 10.0, "ca_file": str(ca_file)},
        # Passes of five: a pass files its messages at its end, so with the default 50 the
        # mailbox would be filed in two jumps and the faults, triggered by the share filed,
        # would fall together instead of a fifth of the mailbox apart.
        daemon={"backoff_cap": 4, "batch": 5},
    )


def _filed(account: ImapAccount) -> int:
    counts = folder_counts(account)
    return sum(counts[folder] for folder in OUTCOME_FOLDERS)


def _all_filed(account: ImapAccount, total: int) -> bool:
    counts = folder_counts(account)
    return counts[INBOX] == 0 and sum(counts[f] for f in OUTCOME_FOLDERS) == total


def while_down(
    supervisor: Supervisor, seconds: float, stop: Callable[[], Any], start: Callable[[], Any]
) -> Outage:
    """Stop a server for ``seconds``: the daemon's CPU time and its tries meanwhile."""
    before_cpu = supervisor.cpu_seconds()
    before_tries = _tries(supervisor.records())
    began = time.monotonic()
    stop()
    try:
        deadline = began + seconds
        while time.monotonic() < deadline:
            assert supervisor.daemon.process.poll() is None, supervisor.daemon.transcript()
            time.sleep(0.1)
        outage = Outage(
            seconds=time.monotonic() - began,
            cpu_seconds=supervisor.cpu_seconds() - before_cpu,
        )
    finally:
        start()
    outage.tries = _tries(supervisor.records()) - before_tries
    return outage


def _tries(records: list[dict[str, Any]]) -> int:
    """Tries announced so far: the client's retries and the daemon's backoffs."""
    return len(retries(records)) + len(backoffs(records))


def fill_the_disk(supervisor: Supervisor, disk: SmallDisk) -> Outage:
    """Fill the state's file system until the daemon has met it, then a little longer."""
    daemon = supervisor.daemon
    before_cpu = daemon.cpu_seconds()
    before_tries = _tries(daemon.lines())
    began = time.monotonic()
    disk.fill(daemon.pid)
    try:
        met = daemon.wait_for_lines(lambda records: any(_disk_error(r) for r in records), WAIT)
        time.sleep(DISK_SECONDS)
        outage = Outage(time.monotonic() - began, daemon.cpu_seconds() - before_cpu)
    finally:
        disk.free(daemon.pid)
    assert met, f"the daemon never met the full disk:\n{daemon.transcript()}"
    outage.tries = _tries(daemon.lines()) - before_tries
    return outage


def _disk_error(record: dict[str, Any]) -> bool:
    text = f"{record.get('message', '')} {record.get('exception', '')}"
    return "disk is full" in text or "disk I/O error" in text


def warnings(records: list[dict[str, Any]]) -> list[str]:
    return [
        f"{r.get('logger')}: {r.get('message')}"
        for r in records
        if r.get("level") in ("WARNING", "ERROR")
    ]


def retries(records: list[dict[str, Any]]) -> list[int]:
    """The attempt numbers of the NetSuite client's retry lines."""
    found = []
    for record in records:
        match = RETRY_LINE.match(str(record.get("message", "")))
        if record.get("logger") == "mailbot.netsuite" and match:
            found.append(int(match["n"]))
    return found


def backoffs(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(phase, reason) of every backoff the daemon announced."""
    found = []
    for record in records:
        match = BACKOFF_LINE.match(str(record.get("message", "")))
        if record.get("logger") == "mailbot.daemon" and match:
            found.append((match["phase"], match["why"]))
    return found


def assert_named(lines: list[str], disk_mechanism: str) -> None:
    """Each fault left a WARNING line that says what it was."""
    text = "\n".join(lines)
    expected = {
        "HTTP 429": " -> 429 CONCURRENCY_LIMIT_EXCEEDED ",
        "HTTP 500": " -> 500 UNEXPECTED_ERROR ",
        "HTTP 503": " -> 503 UNEXPECTED_ERROR ",
        "read timeout": " -> no answer in time ",
        "connection reset": " -> connection failed or was reset ",
        "NetSuite unreachable": "NetSuite is unavailable",
        "IMAP connection lost": "connection to 127.0.0.1",
        "state disk full": "disk is full" if disk_mechanism == TMPFS else "disk I/O error",
    }
    missing = [what for what, needle in expected.items() if needle not in text]
    assert missing == [], f"no WARNING line for {missing}:\n{text[-6000:]}"


def differences(
    folders: dict[str, tuple[str, ...]],
    quiet: QuietRun,
    state: StateSnapshot,
    records: list[dict[str, Any]],
) -> str:
    """The messages filed elsewhere than in the quiet run, with both runs' decisions."""
    lines = []
    uids = {str(row[0]): uid for uid, row in state.processed.items()}
    for message_id, places in folders.items():
        if quiet.folders.get(message_id) == places:
            continue
        uid = uids.get(message_id, "?")
        quietly = quiet.folders.get(message_id)
        lines.append(f"{message_id} (UID {uid}): {places} here, {quietly} in the quiet run")
        lines.append(f"  here:  {state.decisions.get(uid)}")
        lines.append(f"  quiet: {quiet.decisions.get(uid)}")
    order = [r.get("mailbox_uid") for r in records if r.get("logger") == "mailbot.decisions"]
    lines.append(f"handled in this order: {order}")
    return "\n".join(lines)


def quarantine_reasons(state: StateSnapshot, records: list[dict[str, Any]]) -> str:
    failed = {uid: row for uid, row in state.processed.items() if row[1] == "failed"}
    lines = [r.get("message") for r in records if "quarantined" in str(r.get("message"))]
    return f"quarantined: {failed}\n{lines}"


# --- the tests ---------------------------------------------------------------------------


@pytest.mark.parametrize("small_disk", [TMPFS, RLIMIT], indirect=True)
def test_a_meeting_keeps_its_order_when_its_invitation_meets_a_full_disk(
    tmp_path: Path, imap_account: ImapAccount, netsuite: NetSuiteEmulator, small_disk: SmallDisk
) -> None:
    """The invitation's commit fails (the state's disk is full) and it is tried again after
    a pause; the guest's reply, behind it in the mailbox, must still come after it: ahead
    of it, the reply would find no event and the guest's answer would be lost."""
    invitation, answer, guest = meeting_with_reply(SEED)
    note = plain_note(SEED)
    setup = stormy_setup(tmp_path, netsuite, imap_account, small_disk)
    deliver(imap_account, [note])
    supervisor = Supervisor(setup, small_disk.wrapper)
    supervisor.start()
    supervisor.wait_for(lambda: _filed(imap_account) == 1, "the note filed")
    pid = supervisor.daemon.pid
    small_disk.fill(pid)
    try:
        deliver(imap_account, [invitation, answer])
        met = supervisor.daemon.wait_for_lines(lambda rs: any(_disk_error(r) for r in rs), WAIT)
    finally:
        small_disk.free(pid)
    assert met, supervisor.daemon.transcript()
    supervisor.wait_for(lambda: _all_filed(imap_account, 3), "every message filed")
    assert supervisor.daemon.terminate() == 0, supervisor.daemon.transcript()

    assert filed_by_message_id(imap_account) == {
        note.message_id: ("Skipped",),
        invitation.message_id: ("Synced",),
        answer.message_id: ("Synced",),
    }
    (event,) = netsuite.records("calendarEvent")
    contacts = {c["email"]: str(c["id"]) for c in load_data(None)["contacts"]}
    responses = {i["attendee"]["id"]: i["response"] for i in event["attendee"]["items"]}
    assert responses[contacts[guest.email]] == "ACCEPTED"


def test_a_mailbox_of_80_weathers_every_fault(
    tmp_path: Path,
    dovecot_factory: Callable[[], DovecotServer],
    netsuite: NetSuiteEmulator,
    small_disk: SmallDisk,
) -> None:
    workload = build_workload(SEED, messages=80)
    weather_the_storm(tmp_path, dovecot_factory(), netsuite, small_disk, workload)


@pytest.mark.long
def test_a_mailbox_of_300_weathers_every_fault(
    tmp_path: Path,
    dovecot_factory: Callable[[], DovecotServer],
    netsuite: NetSuiteEmulator,
    small_disk: SmallDisk,
) -> None:
    workload = build_workload(SEED, messages=300)
    weather_the_storm(tmp_path, dovecot_factory(), netsuite, small_disk, workload)

"""Benchmark of the whole daemon on a real Dovecot and the NetSuite emulator.

Run from the repository root (Dovecot 2.3 installed: ``make dovecot``)::

    .venv/bin/python bench/ingest.py            # a few minutes
    .venv/bin/python bench/ingest.py --quick    # fewer messages, about a minute

Prints one JSON object, every figure beside its limit, all measured in this run:

* ``bytes_per_invitation``: IMAP bytes received by the daemon's mailbox while it fetches an
  invitation that carries a 5 MiB PDF attachment, against the size of its calendar part
  (MIME header and body) plus the message header; at most 1.5 times.
* ``throughput``: messages per second through the whole daemon (``Daemon.run_once`` passes:
  SEARCH and FETCH, the core, the CRM look-up, the NetSuite write, the state commit with
  its fsync, the MOVE) until the folder is empty, the emulator answering at 0 ms; the best
  of 3 rounds (the machine may be shared), at least 100/s. A cProfile of one more round is
  added when the target is missed (or with ``--profile``).
* ``idle_latency``: seconds from an APPEND returning to the event stored by the emulator,
  while ``mailbot run`` waits in IDLE, one message at a time; p50 under 1 s.
* ``peak_rss``: peak RSS of ``mailbot once`` and ``mailbot run`` processes with 1,000 and
  20,000 messages in the folder; under 150 MB, and flat (20,000 / 1,000 at most 1.2).

The parts: a private Dovecot 2.3 (scripts/imap-test-server.sh through bench/imap_server.py)
with Dovecot's own defaults for IDLE and fsync, reached over implicit TLS; its mail and the
daemon's state database on disk, not tmpfs (``--tmpfs`` to change that); the NetSuite
emulator with its demo data in a process of its own, so that it never holds the daemon's
interpreter lock; the daemon wired by ``mailbot.app.open_daemon`` from a TOML file, as
``mailbot run`` wires it. Every measurement gets a fresh server, emulator and state.

The invitations are the demo's first sample (an Outlook REQUEST in a Windows zone) with
its UID, title, dates, organiser and attendee varied: organisers are the demo CRM's
employees, attendees its contacts, so every one of them is written to NetSuite.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import email
import email.policy
import imaplib
import io
import json
import logging
import math
import os
import platform
import pstats
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from imap_server import PrivateDovecot, free_port  # noqa: E402

from mailbot.app import DEMO_MAILBOX, DEMO_SYNC_ADDRESS, Running, imap_mailbox, open_daemon  # noqa: E402
from mailbot.logs import configure_logging  # noqa: E402
from mailbot.settings import (  # noqa: E402
    SECRET_NAMES,
    DaemonSettings,
    NetSuiteSettings,
    load_settings,
)
from mailbot.sim.netsuite import FaultPlan, NetSuiteEmulator, load_data  # noqa: E402

TARGET_BYTES_RATIO = 1.5
TARGET_RATE = 100.0
TARGET_P50_SECONDS = 1.0
TARGET_RSS_MB = 150.0
TARGET_RSS_RATIO = 1.2

ATTACHMENT_BYTES = 5 * 1024 * 1024
APPEND_CHUNK = 500  # messages per MULTIAPPEND
POLL_SECONDS = 0.002  # latency: how often the emulator is asked for its writes
LATENCY_TIMEOUT = 30.0
ZONE = "Europe/Berlin"
TEMPLATE = DEMO_MAILBOX / "01-new-meeting.eml"

# Dovecot 2.3's defaults, which the test script shortens (1 s, never) for fast tests
DOVECOT_DEFAULTS = {"mailbox_idle_check_interval": "30 secs", "mail_fsync": "optimized"}
DOVECOT_REPORTED = (
    "imap_idle_notify_interval",
    "mailbox_idle_check_interval",
    "mail_fsync",
    "imap_logout_format",
)
LOGOUT_LINE = re.compile(r"Logged out (.*)$", re.MULTILINE)
THROUGHPUT_METHOD = (
    "the invitations are APPENDed first; then Daemon.run_once passes (batches of 50: "
    "SEARCH, FETCH, core, one CRM look-up per batch, NetSuite PUT, SQLite commit with fsync, "
    "MOVE to Synced) until a pass finds nothing; seconds from the first pass to the empty "
    "one, the connection opened before. daemon_cpu: CPU time of this process (the daemon "
    "runs in it); machine_busy_share: share of both CPUs busy meanwhile (the daemon, Dovecot,"
    " the emulator and anything else running). profile (when the target is missed, or "
    "--profile): cProfile of one more round; its times are wall times, so a socket read "
    "holds the wait for Dovecot's or the emulator's answer"
)

# ``python -m mailbot ARGS`` that writes its peak RSS (VmHWM of /proc/self/status, kB) to
# $BENCH_PEAK_RSS_FILE when it exits. Not ru_maxrss: Linux keeps, across exec, the RSS high
# water mark of the memory the process had before, and a child spawned by vfork + exec (as
# subprocess does) had its parent's, so its ru_maxrss is at least this benchmark's own peak.
PEAK_RSS_WRAPPER = """
import atexit, os, runpy, sys
def peak():
    with open('/proc/self/status') as status:
        kilobytes = next(line for line in status if line.startswith('VmHWM:')).split()[1]
    with open(os.environ['BENCH_PEAK_RSS_FILE'], 'w') as out:
        out.write(kilobytes)
atexit.register(peak)
sys.argv[0] = 'mailbot'
runpy.run_module('mailbot', run_name='__main__', alter_sys=True)
"""


@dataclass(frozen=True)
class Plan:
    """How much each measurement does (``--quick`` and the options shrink it)."""

    throughput_messages: int
    throughput_rounds: int
    latency_messages: int
    latency_pause: float
    rss_sizes: tuple[int, int]
    rss_run_messages: int | None  # after `mailbot once`; None: the rest of each mailbox
    profile: bool
    tmpfs: bool
    quick: bool


def main() -> int:
    args = parse_arguments()
    if args.serve_emulator:
        return serve_emulator(args.emulator_latency_ms)
    plan = plan_from(args)
    started = time.perf_counter()
    load = os.getloadavg()
    with workspace(plan, keep=args.keep) as work, daemon_log(work):
        invitations = Invitations(datetime.now(UTC))
        bytes_figures = measure_bytes(work, invitations)
        throughput = measure_throughput(work, invitations, plan)
        latency = measure_latency(work, invitations, plan)
        rss = measure_rss(work, invitations, plan)
    settings = latency.pop("dovecot_settings")
    report = {
        "benchmark": "whole daemon against a private Dovecot and the NetSuite emulator",
        "bytes_per_invitation": bytes_figures,
        "bytes_ok": bytes_figures["ratio"] <= TARGET_BYTES_RATIO,
        "throughput": throughput,
        "throughput_ok": throughput["messages_per_second"] >= TARGET_RATE,
        "idle_latency": latency,
        "latency_ok": latency["p50_seconds"] is not None
        and latency["p50_seconds"] < TARGET_P50_SECONDS,
        "peak_rss": rss,
        "rss_ok": rss["ok"],
        "dovecot": settings,
        "setup": {
            "quick": plan.quick,
            "storage": "tmpfs (/dev/shm)" if plan.tmpfs else f"disk ({storage_base(plan)})",
            "imap": "implicit TLS to 127.0.0.1, certificate checked against its CA file",
            "netsuite": "emulator with the demo data in its own process, token-based auth",
            "daemon": "mailbot.app.open_daemon from a TOML file, defaults otherwise (batch "
            f"{DaemonSettings().batch}, NetSuite concurrency {NetSuiteSettings('-').concurrency},"
            " metrics endpoint on), logging to a file",
            "load_average_at_start": [round(value, 2) for value in load],
            "cpus": os.cpu_count(),
        },
        "python": platform.python_version(),
        "machine": platform.machine(),
        "run_seconds": round(time.perf_counter() - started, 1),
    }
    if args.keep:
        report["workspace"] = str(work.root)
    print(json.dumps(report, indent=2))
    return 0


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages (about a minute)")
    parser.add_argument("--messages", type=int, help="throughput: messages (default 1000)")
    parser.add_argument("--rounds", type=int, help="throughput: rounds, the best counts (3)")
    parser.add_argument("--latency-messages", type=int, help="IDLE latency: messages (30)")
    parser.add_argument("--latency-pause", type=float, default=1.0, help="seconds between")
    parser.add_argument(
        "--rss-sizes", type=int, nargs=2, metavar=("SMALL", "LARGE"), help="(1000 20000)"
    )
    parser.add_argument(
        "--rss-messages",
        type=int,
        help="messages `mailbot run` handles per mailbox (default: the small mailbox's rest)",
    )
    parser.add_argument("--rss-all", action="store_true", help="handle every message (slow)")
    parser.add_argument("--profile", action="store_true", help="always add the cProfile")
    parser.add_argument("--tmpfs", action="store_true", help="mail and state on /dev/shm")
    parser.add_argument("--keep", action="store_true", help="keep the workspace and logs")
    parser.add_argument("--serve-emulator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--emulator-latency-ms", type=float, default=0.0, help=argparse.SUPPRESS)
    return parser.parse_args()


def plan_from(args: argparse.Namespace) -> Plan:
    quick = bool(args.quick)
    sizes = tuple(args.rss_sizes) if args.rss_sizes else (1000, 20000)
    return Plan(
        throughput_messages=args.messages or (300 if quick else 1000),
        throughput_rounds=args.rounds or (1 if quick else 3),
        latency_messages=args.latency_messages or (10 if quick else 30),
        latency_pause=args.latency_pause,
        rss_sizes=(sizes[0], sizes[1]),
        rss_run_messages=None
        if args.rss_all
        else (args.rss_messages or (200 if quick else sizes[0] - DaemonSettings().batch)),
        profile=bool(args.profile),
        tmpfs=bool(args.tmpfs),
        quick=quick,
    )


# ----------------------------------------------------------------------------- invitations


@dataclass(frozen=True)
class Invitation:
    raw: bytes
    header_bytes: int  # the message header, up to and with its empty line
    calendar_part_bytes: int  # the text/calendar part: its MIME header and its body


class Invitations:
    """Distinct invitations made from the demo's first sample (see the module docstring).

    The calendar text is the sample's, with CRLF line ends and RFC 5545 folding; each
    invitation gets its own UID, title, Message-ID, DTSTAMP (now), start (1 to 150 days
    ahead, 09:00 to 16:00 in the sample's Windows zone), organiser (a CRM employee, also the
    sender) and attendee (a CRM contact).
    """

    def __init__(self, now: datetime) -> None:
        self.now = now.replace(microsecond=0)
        self.calendar = _template_calendar(TEMPLATE.read_bytes())
        data = load_data(None)
        integration = data.get("integration_user")
        self.organisers = [
            (f"{e['firstname']} {e['lastname']}", e["email"])
            for e in data["employees"]
            if not e["isinactive"] and e["id"] != integration and e.get("email")
        ]
        self.attendees = _unambiguous_contacts(data)

    def make(self, number: int, attachment: bytes | None = None) -> Invitation:
        name, address = self.organisers[number % len(self.organisers)]
        guest, guest_address = self.attendees[number % len(self.attendees)]
        start = (self.now + timedelta(days=1 + number % 150)).replace(
            hour=9 + number % 8, minute=0, second=0
        )
        summary = f"Product demo {number} with {guest}"
        calendar = _folded(
            self.calendar.format(
                uid=f"bench-{number}@lakeside-instruments.example.com",
                summary=summary,
                dtstamp=self.now.strftime("%Y%m%dT%H%M%SZ"),
                start=start.strftime("%Y%m%dT%H%M%S"),
                end=(start + timedelta(hours=1)).strftime("%Y%m%dT%H%M%S"),
                organiser=name,
                organiser_address=address,
                attendee=guest,
                attendee_address=guest_address,
            )
        )
        header = (
            f"From: {name} <{address}>\r\n"
            f"To: {DEMO_SYNC_ADDRESS}\r\n"
            f"Subject: {summary}\r\n"
            f"Date: {format_datetime(self.now)}\r\n"
            f"Message-ID: <bench-{number}@lakeside-instruments.example.com>\r\n"
            "MIME-Version: 1.0\r\n"
        )
        calendar_part = (
            'Content-Type: text/calendar; charset="utf-8"; method=REQUEST\r\n'
            "Content-Transfer-Encoding: 7bit\r\n\r\n" + calendar
        )
        text_part = (
            'Content-Type: text/plain; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: 7bit\r\n\r\n"
            f"{summary}: a demo of the data logger fleet.\r\n"
        )
        body = _multipart("alternative", f"alt-{number}", [text_part, calendar_part])
        if attachment is not None:
            pdf = (
                'Content-Type: application/pdf; name="brochure.pdf"\r\n'
                'Content-Disposition: attachment; filename="brochure.pdf"\r\n'
                "Content-Transfer-Encoding: base64\r\n\r\n"
                + base64.encodebytes(attachment).decode("ascii").replace("\n", "\r\n")
            )
            body = _multipart("mixed", f"mixed-{number}", [body, pdf])
        top, _, rest = body.partition("\r\n\r\n")
        message_header = header + top + "\r\n\r\n"
        raw = (message_header + rest).encode("utf-8")
        return Invitation(raw, len(message_header.encode()), len(calendar_part.encode()))


def _template_calendar(raw: bytes) -> str:
    """The sample's calendar text (quoted-printable decoded) with the varied fields as
    ``str.format`` fields."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    calendar = str(parts[0].get_content())
    calendar = calendar.replace("{", "{{").replace("}", "}}")
    replacements = [
        (r"(?m)^UID:.*$", "UID:{uid}"),
        (r"(?m)^SUMMARY:.*$", "SUMMARY:{summary}"),
        (r"(?m)^DTSTAMP:.*$", "DTSTAMP:{dtstamp}"),
        (r"(?m)^(DTSTART;TZID=[^:]*):2.*$", r"\1:{start}"),
        (r"(?m)^(DTEND;TZID=[^:]*):2.*$", r"\1:{end}"),
        (r"CN=Ada Weber", "CN={organiser}"),
        (r"ada\.weber@lakeside-instruments\.example\.com", "{organiser_address}"),
        (r"CN=Paula Moreau", "CN={attendee}"),
        (r"paula\.moreau@alder-ventures\.example\.org", "{attendee_address}"),
    ]
    for pattern, replacement in replacements:
        calendar, count = re.subn(pattern, replacement, calendar)
        if not count:
            raise SystemExit(f"bench: the template {TEMPLATE.name} has no {pattern!r}")
    return calendar.replace("\r\n", "\n").strip("\n")


def _unambiguous_contacts(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Contacts whose address no other contact or customer has (an ambiguous match is not
    written, by the rules, and every invitation here must be)."""
    seen: dict[str, int] = {}
    for row in (*data["contacts"], *data["customers"]):
        for key in ("email", "altemail"):
            if row.get(key):
                seen[row[key].lower()] = seen.get(row[key].lower(), 0) + 1
    return [
        (f"{c['firstname']} {c['lastname']}", c["email"])
        for c in data["contacts"]
        if c.get("email") and seen[c["email"].lower()] == 1 and not c.get("isinactive")
    ]


def _folded(calendar: str) -> str:
    """CRLF line ends, lines folded at 75 octets (RFC 5545 3.1)."""
    lines = []
    for line in calendar.split("\n"):
        rest = line
        while len(rest) > 75:
            lines.append(rest[:75])
            rest = " " + rest[75:]
        lines.append(rest)
    return "\r\n".join(lines) + "\r\n"


def _multipart(subtype: str, boundary: str, parts: list[str]) -> str:
    """A multipart entity: its Content-Type header line, an empty line, then the parts."""
    pieces = [f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n']
    for part in parts:
        pieces.append(f"--{boundary}\r\n{part}\r\n")
    pieces.append(f"--{boundary}--\r\n")
    return "".join(pieces)


# ----------------------------------------------------------------------------- the parts


@dataclass
class Work:
    root: Path
    base: Path  # where Dovecot's directories go (disk or tmpfs)
    servers: list[Path]


@contextmanager
def workspace(plan: Plan, *, keep: bool) -> Iterator[Work]:
    base = storage_base(plan)
    root = Path(tempfile.mkdtemp(prefix="mailbot-bench-", dir=base))
    work = Work(root, base, [])
    try:
        yield work
    finally:
        if not keep:
            for folder in [*work.servers, root]:
                shutil.rmtree(folder, ignore_errors=True)


def storage_base(plan: Plan) -> Path:
    shm = Path("/dev/shm")  # noqa: S108 - mkdtemp makes private folders there
    return shm if plan.tmpfs and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


@contextmanager
def daemon_log(work: Work) -> Iterator[None]:
    """The log of the daemons run in this process, as ``mailbot run`` configures it."""
    root = logging.getLogger()
    with (work.root / "daemon.log").open("a", encoding="utf-8") as stream:
        handler = configure_logging(stream=stream)
        try:
            yield
        finally:
            root.removeHandler(handler)


@contextmanager
def dovecot(work: Work) -> Iterator[PrivateDovecot]:
    """A fresh private Dovecot with Dovecot's defaults for IDLE and fsync."""
    folder = Path(tempfile.mkdtemp(prefix="mailbot-bench-imap-", dir=work.base))
    work.servers.append(folder)
    with PrivateDovecot(folder, DOVECOT_DEFAULTS) as server:
        yield server


def dovecot_settings(server: PrivateDovecot) -> dict[str, Any]:
    """The settings the benchmark's servers run with (as ``doveconf`` reads them)."""
    values: dict[str, Any] = server.effective(*DOVECOT_REPORTED)
    values["overridden_here"] = DOVECOT_DEFAULTS
    values["note"] = (
        "Dovecot wakes an IDLE client through inotify on the mailbox, then waits "
        "NOTIFY_DELAY_MSECS (500 ms, compiled in, src/lib-storage/mailbox-watch.c) to batch "
        "changes; mailbox_idle_check_interval is only the fallback poll when no inotify "
        "event comes; imap_idle_notify_interval is the '* OK Still here' keep-alive"
    )
    return values


class EmulatorProcess:
    """The NetSuite emulator with its demo data in a child process (this script with
    ``--serve-emulator``). :meth:`writes` asks it how many calendar event writes it answered
    with success; :meth:`stop` ends it and returns its resource usage."""

    def __init__(self, latency_ms: float = 0.0) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--serve-emulator",
                "--emulator-latency-ms",
                str(latency_ms),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.base_url = self.process.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            self.process.kill()
            self.process.wait()
            raise RuntimeError("the NetSuite emulator did not start")
        self.credentials: dict[str, str] = dict(load_data(None)["credentials"])

    def writes(self) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def stop(self) -> resource.struct_rusage:
        assert self.process.stdin is not None
        self.process.stdin.close()
        _, status, usage = os.wait4(self.process.pid, 0)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        return usage

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *_: object) -> None:
        if self.process.returncode is None:
            self.stop()


def serve_emulator(latency_ms: float) -> int:
    """The child of :class:`EmulatorProcess`: prints its base URL, then answers each line
    read with the number of successful calendar event writes; ends at end of input."""
    with NetSuiteEmulator(load_data(None)).start() as emulator:
        emulator.set_faults(FaultPlan(latency_ms=latency_ms))
        print(emulator.base_url, flush=True)
        for _ in sys.stdin:
            writes = sum(
                1
                for entry in emulator.request_log()
                if entry.method in {"PUT", "POST", "PATCH"}
                and "/calendarevent" in entry.path.lower()
                and entry.status is not None
                and entry.status < 300
            )
            print(writes, flush=True)
    return 0


def write_config(work: Work, name: str, server: PrivateDovecot, emulator: EmulatorProcess) -> Path:
    """The daemon's TOML configuration (the secrets go in the environment), with a state
    database of its own (a state that saw the same invitations would skip them)."""
    name = f"{name}-{len(work.servers)}"
    state = work.root / f"{name}.sqlite3"
    config = work.root / f"{name}.toml"
    config.write_text(
        f'[netsuite]\ntimezone = "{ZONE}"\naccount = "{emulator.credentials["account"]}"\n'
        f'base_url = "{emulator.base_url}"\n'
        f'[matching]\nmailbox_addresses = ["{DEMO_SYNC_ADDRESS}"]\n'
        f'[sync]\nstate_path = "{state}"\n'
        f'[imap]\nhost = "{server.host}"\nport = {server.tls_port}\n'
        f'username = "{server.username}"\ntls = "implicit"\nca_file = "{server.ca_file}"\n'
        f'[daemon]\nmetrics_address = "127.0.0.1:{free_port()}"\n',
        encoding="utf-8",
    )
    return config


def secrets(server: PrivateDovecot, emulator: EmulatorProcess) -> dict[str, str]:
    credentials = emulator.credentials
    return {
        SECRET_NAMES["netsuite-consumer-key"]: credentials["consumer_key"],
        SECRET_NAMES["netsuite-consumer-secret"]: credentials["consumer_secret"],
        SECRET_NAMES["netsuite-token-id"]: credentials["token_id"],
        SECRET_NAMES["netsuite-token-secret"]: credentials["token_secret"],
        SECRET_NAMES["imap-password"]: server.password,
    }


@contextmanager
def daemon_in_process(config: Path, environment: Mapping[str, str]) -> Iterator[Running]:
    """The daemon as ``mailbot run`` wires it, in this process (to count bytes, to time
    passes, to profile); the secrets are in the environment while it is opened."""
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    try:
        running = open_daemon(load_settings(config), dry_run=False)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    try:
        yield running
    finally:
        running.close()


def daemon_process(
    command: str,
    config: Path,
    environment: Mapping[str, str],
    log: Path,
    peak_rss_file: Path | None = None,
) -> Any:
    """``mailbot once`` or ``mailbot run`` as a process of its own (stderr to ``log``);
    with ``peak_rss_file``, through :data:`PEAK_RSS_WRAPPER`."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **environment}
    program = ["-m", "mailbot"]
    if peak_rss_file is not None:
        env["BENCH_PEAK_RSS_FILE"] = str(peak_rss_file)
        program = ["-c", PEAK_RSS_WRAPPER]
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [sys.executable, *program, command, "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
            cwd=ROOT,
        )


def reap(process: Any) -> tuple[int, resource.struct_rusage]:
    """Wait for a child; its exit code and its own resource usage (ru_maxrss in KiB)."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage


def append_all(server: PrivateDovecot, messages: Iterable[bytes]) -> float:
    """APPEND every message on one plaintext connection, MULTIAPPEND in chunks (one
    command, many literals: Dovecot saves each chunk in one transaction and updates its
    index as for any APPEND); the seconds it took."""
    started = time.perf_counter()
    client = server.connect()
    try:
        chunk: list[bytes] = []
        for raw in messages:
            chunk.append(raw)
            if len(chunk) == APPEND_CHUNK:
                client.multiappend("INBOX", chunk)
                chunk = []
        if chunk:
            client.multiappend("INBOX", chunk)
    finally:
        client.logout()
    return time.perf_counter() - started


def folder_counts(server: PrivateDovecot, *folders: str) -> dict[str, int]:
    client = server.connect()
    try:
        existing = {str(name) for _, _, name in client.list_folders()}
        return {
            folder: int(client.folder_status(folder, ["MESSAGES"])[b"MESSAGES"])
            if folder in existing
            else 0
            for folder in folders
        }
    finally:
        client.logout()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        time.sleep(0.05)


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[1] - before[1]
    return round((after[0] - before[0]) / total, 3) if total else 0.0


# ----------------------------------------------------------------------------- 1. bytes


@contextmanager
def counting_imap_reads() -> Iterator[list[int]]:
    """Counts every byte imapclient reads from its connections while active.

    imaplib reads the server's responses through exactly two methods, ``IMAP4.read`` (the
    literals) and ``IMAP4.readline`` (everything else), which no subclass used here
    (imapclient's TLS and timeout classes) overrides; wrapping them counts each byte of the
    IMAP protocol received, after TLS decryption (TLS adds about 22-29 bytes per record of
    up to 16 KiB on the wire).
    """
    counter = [0]
    read, readline = imaplib.IMAP4.read, imaplib.IMAP4.readline

    def counted_read(self: imaplib.IMAP4, size: int) -> bytes:
        data = read(self, size)
        counter[0] += len(data)
        return data

    def counted_readline(self: imaplib.IMAP4) -> bytes:
        line = readline(self)
        counter[0] += len(line)
        return line

    imaplib.IMAP4.read = counted_read  # type: ignore[method-assign]
    imaplib.IMAP4.readline = counted_readline  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        imaplib.IMAP4.read = read  # type: ignore[method-assign]
        imaplib.IMAP4.readline = readline  # type: ignore[method-assign]


def measure_bytes(work: Work, invitations: Invitations) -> dict[str, Any]:
    """One invitation with a 5 MiB PDF: the bytes of the adapter's fetch (a session of its
    own, so Dovecot's logout line counts it alone), then a whole daemon pass over it."""
    invitation = invitations.make(0, attachment=os.urandom(ATTACHMENT_BYTES))
    wanted = invitation.header_bytes + invitation.calendar_part_bytes
    with dovecot(work) as server, EmulatorProcess() as emulator:
        append_all(server, [invitation.raw])
        config = write_config(work, "bytes", server, emulator)
        environment = secrets(server, emulator)
        settings = load_settings(config)
        reader = imap_mailbox(settings, read_only=True, environ=environment)
        reader.reconnect()  # connect, TLS, LOGIN, EXAMINE: not counted
        with counting_imap_reads() as fetch_count:
            fetched = reader.fetch_new(settings.daemon.batch)
        sessions = len(LOGOUT_LINE.findall(server.log()))
        reader.close()
        wait_until(lambda: len(LOGOUT_LINE.findall(server.log())) > sessions, 10, "Dovecot's log")
        counters = _logout_counters(server.log())
        with daemon_in_process(config, environment) as running:
            running.mailbox.reconnect()
            with counting_imap_reads() as pass_count:
                handled = running.daemon.run_once()
        written = emulator.writes()
        left = folder_counts(server, "INBOX", "Synced")
    if len(fetched) != 1 or handled != 1 or written != 1 or left != {"INBOX": 0, "Synced": 1}:
        raise SystemExit(f"bench: the big invitation was not synced: {left}, {written} writes")
    return {
        "figure_bytes": fetch_count[0],
        "target_at_most_bytes": round(TARGET_BYTES_RATIO * wanted),
        "ratio": round(fetch_count[0] / wanted, 3),
        "target_ratio": TARGET_BYTES_RATIO,
        "calendar_part_plus_headers_bytes": wanted,
        "overhead_bytes": fetch_count[0] - wanted,
        "ratio_within_target_from_bytes": math.ceil(
            (fetch_count[0] - wanted) / (TARGET_BYTES_RATIO - 1)
        ),
        "message_header_bytes": invitation.header_bytes,
        "calendar_part_bytes": invitation.calendar_part_bytes,
        "message_bytes": len(invitation.raw),
        "attachment": f"application/pdf, {ATTACHMENT_BYTES} random bytes, base64",
        "whole_pass_bytes": pass_count[0],
        "attachments_left_on_server": fetched[0].ignored_parts,
        "dovecot_fetch_session": counters,
        "method": (
            "figure_bytes: bytes imaplib handed to imapclient (IMAP4.read/readline wrapped, "
            "after TLS) during ImapMailbox.fetch_new on a connection already logged in: "
            "its SEARCH, the FETCH of RFC822.SIZE INTERNALDATE BODYSTRUCTURE "
            "BODY.PEEK[HEADER], the FETCH of the calendar part's MIME header and body. "
            "whole_pass_bytes: the same count over one Daemon.run_once (fetch, NetSuite "
            "write, commit, MOVE). dovecot_fetch_session: Dovecot's own counters for the "
            "fetch's session (imap_logout_format: out = every byte the imap process sent, "
            "with the post-login greeting, EXAMINE and LOGOUT; hdr_bytes/body_bytes = "
            "message bytes served by FETCH). overhead_bytes: the figure less the calendar "
            "part and message header; ratio_within_target_from_bytes: the calendar part "
            "plus header size from which that overhead stays within the target ratio."
        ),
    }


def _logout_counters(log: str) -> dict[str, int]:
    line = LOGOUT_LINE.findall(log)[-1]
    return {
        key: int(value)
        for key, value in (item.split("=", 1) for item in line.split() if "=" in item)
        if value.isdigit()
    }


# ----------------------------------------------------------------------------- 2. rate


def measure_throughput(work: Work, invitations: Invitations, plan: Plan) -> dict[str, Any]:
    """The best of a few rounds (others may share the machine), each on fresh parts."""
    rounds = [
        throughput_run(work, invitations, plan.throughput_messages, profiler=None)
        for _ in range(plan.throughput_rounds)
    ]
    rates = [row["messages_per_second"] for row in rounds]
    best = rounds[rates.index(max(rates))]
    result = {
        "messages_per_second": best["messages_per_second"],
        "target_at_least": TARGET_RATE,
        "median_messages_per_second": round(statistics.median(rates), 1),
        "figure_is": f"the best of {len(rounds)} rounds",
        **{key: value for key, value in best.items() if key != "messages_per_second"},
        "rounds": [
            {key: row[key] for key in ("messages_per_second", "machine_busy_share")}
            for row in rounds
        ],
        "method": THROUGHPUT_METHOD,
    }
    missed = best["messages_per_second"] < TARGET_RATE
    if plan.profile or missed:
        profiler = cProfile.Profile()
        profiled = throughput_run(work, invitations, plan.throughput_messages, profiler)
        result["profile"] = {
            "why": "target missed" if missed else "--profile",
            "messages_per_second_under_cprofile": profiled["messages_per_second"],
            **profile_summary(profiler, plan.throughput_messages),
        }
    return result


def throughput_run(
    work: Work, invitations: Invitations, count: int, profiler: cProfile.Profile | None
) -> dict[str, Any]:
    with dovecot(work) as server, EmulatorProcess() as emulator:
        append_seconds = append_all(server, (invitations.make(n).raw for n in range(count)))
        config = write_config(work, "throughput", server, emulator)
        with daemon_in_process(config, secrets(server, emulator)) as running:
            running.mailbox.reconnect()  # connect, TLS, LOGIN, SELECT: not timed
            passes, handled = 0, 0
            ticks, cpu = cpu_ticks(), time.process_time()
            started = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            while done := running.daemon.run_once():
                passes += 1
                handled += done
            if profiler is not None:
                profiler.disable()
            elapsed = time.perf_counter() - started
            cpu, busy = time.process_time() - cpu, busy_share(ticks, cpu_ticks())
        written = emulator.writes()
        left = folder_counts(server, "INBOX", "Synced")
        emulator_usage = emulator.stop()
    if handled != count or written != count or left != {"INBOX": 0, "Synced": count}:
        raise SystemExit(f"bench: {count} invitations, {written} written, folders {left}")
    emulator_cpu = emulator_usage.ru_utime + emulator_usage.ru_stime
    return {
        "messages_per_second": round(count / elapsed, 1),
        "messages": count,
        "passes": passes,
        "seconds": round(elapsed, 2),
        "ms_per_message": round(1000 * elapsed / count, 2),
        "daemon_cpu_ms_per_message": round(1000 * cpu / count, 2),
        "emulator_cpu_ms_per_message": round(1000 * emulator_cpu / count, 2),
        "machine_busy_share": busy,
        "append_messages_per_second": round(count / append_seconds),
    }


def profile_summary(profiler: cProfile.Profile, messages: int) -> dict[str, Any]:
    """The top functions by own time and by cumulative time, per message."""
    stats = pstats.Stats(profiler, stream=io.StringIO())
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(tottime for _, _, tottime, _, _ in entries.values())

    def row(key: tuple[str, int, str], value: tuple[Any, ...]) -> dict[str, Any]:
        calls, _, tottime, cumtime, _ = value
        where = f"{_short(key[0])}:{key[1]}({key[2]})"
        return {
            "function": where,
            "calls": calls,
            "own_ms_per_message": round(1000 * tottime / messages, 3),
            "cumulative_ms_per_message": round(1000 * cumtime / messages, 3),
        }

    by_own = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:15]
    by_cumulative = sorted(entries.items(), key=lambda item: item[1][3], reverse=True)[:25]
    return {
        "profiled_ms_per_message": round(1000 * total / messages, 2),
        "top_own_time": [row(k, v) for k, v in by_own],
        "top_cumulative_time": [row(k, v) for k, v in by_cumulative],
    }


def _short(path: str) -> str:
    for marker in ("site-packages/", "/mailbot/", "/lib/python3"):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return ("mailbot/" + tail) if marker == "/mailbot/" else tail
    return path


# ----------------------------------------------------------------------------- 3. latency


def measure_latency(work: Work, invitations: Invitations, plan: Plan) -> dict[str, Any]:
    """``mailbot run`` in IDLE; one invitation at a time, the next after a pause."""
    latencies: list[float] = []
    timeouts = 0
    with dovecot(work) as server, EmulatorProcess() as emulator:
        config = write_config(work, "latency", server, emulator)
        daemon = daemon_process("run", config, secrets(server, emulator), work.root / "run.log")
        client = server.connect()
        try:
            client.append("INBOX", invitations.make(0).raw)  # warm-up: start-up, first pass
            wait_until(lambda: emulator.writes() >= 1, 60, "the daemon's first write")
            time.sleep(max(plan.latency_pause, 1.0))
            inotify = imap_inotify(server)
            settings = dovecot_settings(server)
            for number in range(1, plan.latency_messages + 1):
                before = emulator.writes()
                client.append("INBOX", invitations.make(number).raw)
                appended = time.perf_counter()
                seen = _first_write_after(emulator, before, appended)
                if seen is None:
                    timeouts += 1
                else:
                    latencies.append(seen)
                time.sleep(plan.latency_pause)
        finally:
            client.logout()
            daemon.send_signal(signal.SIGTERM)
            code, _ = reap(daemon)
    ordered = sorted(latencies)
    return {
        "p50_seconds": round(statistics.median(ordered), 3) if ordered else None,
        "target_p50_under_seconds": TARGET_P50_SECONDS,
        "p95_seconds": round(ordered[int(0.95 * (len(ordered) - 1))], 3) if ordered else None,
        "min_seconds": round(ordered[0], 3) if ordered else None,
        "max_seconds": round(ordered[-1], 3) if ordered else None,
        "messages": plan.latency_messages,
        "pause_seconds": plan.latency_pause,
        "timeouts": timeouts,
        "daemon_exit_code": code,
        "dovecot_imap_processes_with_inotify": inotify,
        "all_seconds": [round(value, 3) for value in latencies],
        "dovecot_settings": settings,
        "method": (
            "mailbot run in its own process, IDLE on INBOX (implicit TLS); after a warm-up "
            "message, each invitation is APPENDed on another connection; the time runs from "
            "APPEND's tagged OK to the emulator's log holding the successful PUT, asked every "
            "2 ms over a pipe; then a pause"
        ),
    }


def _first_write_after(emulator: EmulatorProcess, before: int, since: float) -> float | None:
    deadline = since + LATENCY_TIMEOUT
    while time.perf_counter() < deadline:
        if emulator.writes() > before:
            return time.perf_counter() - since
        time.sleep(POLL_SECONDS)
    return None


def imap_inotify(server: PrivateDovecot) -> str:
    """How many of the server's imap processes hold an inotify instance (the mailbox watch
    that wakes IDLE), read from /proc: "n of m" (the daemon's IDLE session has one; the
    benchmark's APPEND connection, which does not IDLE, has none)."""
    master = server.process.pid if server.process else -1
    imap_pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
        if name == "imap" and int(rest.split()[1]) == master:
            imap_pids.append(entry)
    watching = 0
    for entry in imap_pids:
        try:
            links = [str(fd.readlink()) for fd in (entry / "fd").iterdir()]
        except OSError:
            continue
        watching += any("inotify" in link for link in links)
    return f"{watching} of {len(imap_pids)}"


# ----------------------------------------------------------------------------- 4. memory


def measure_rss(work: Work, invitations: Invitations, plan: Plan) -> dict[str, Any]:
    batch = DaemonSettings().batch
    small, large = plan.rss_sizes
    empty = rss_of_empty_pass(work)
    figures = {
        f"mailbox_{size}": rss_run(work, invitations, size, plan.rss_run_messages)
        for size in (small, large)
    }
    rows = list(figures.values())
    once = [row["once"]["peak_rss_mb"] for row in rows]
    run = [row["run"]["peak_rss_mb"] for row in rows]
    ratios = {"once": round(once[1] / once[0], 3), "run": round(run[1] / run[0], 3)}
    peak = max(once + run)
    return {
        "peak_rss_mb": peak,
        "target_under_mb": TARGET_RSS_MB,
        "ratio_large_to_small": ratios,
        "target_ratio_at_most": TARGET_RSS_RATIO,
        "ok": peak < TARGET_RSS_MB and max(ratios.values()) <= TARGET_RSS_RATIO,
        "empty_folder_once_peak_rss_mb": empty,
        "run_handles": "every message"
        if plan.rss_run_messages is None
        else f"{plan.rss_run_messages} messages per mailbox (--rss-all: every message)",
        **figures,
        "method": (
            "for each mailbox size, the invitations are APPENDed, then `mailbot once` (one "
            f"pass: SEARCH over the whole folder, one batch of {batch} handled), then "
            "`mailbot run` until it has written the given number of further events, then "
            "SIGTERM (it finishes the current message and exits 0). Peak RSS: VmHWM of each "
            "daemon process, read by the process itself at exit (see PEAK_RSS_WRAPPER: "
            "ru_maxrss of a child would carry this benchmark's own peak). MB = 10^6 bytes. "
            "empty_folder_once: `mailbot once` on an empty folder (imports, TLS, LOGIN, "
            "NetSuite metadata), for scale"
        ),
    }


def rss_of_empty_pass(work: Work) -> float:
    with dovecot(work) as server, EmulatorProcess() as emulator:
        config = write_config(work, "rss-empty", server, emulator)
        peak, code = daemon_peak_rss("once", config, secrets(server, emulator), work, None)
    if code != 0:
        raise SystemExit(f"bench: mailbot once on an empty folder exited {code}")
    return peak


def daemon_peak_rss(
    command: str,
    config: Path,
    environment: Mapping[str, str],
    work: Work,
    until: Callable[[], bool] | None,
) -> tuple[float, int]:
    """Peak RSS (MB) and exit code of ``mailbot once``, or of ``mailbot run`` stopped with
    SIGTERM once ``until()`` holds."""
    peak_file = work.root / f"{config.stem}-{command}.peak"
    log = work.root / f"{config.stem}.log"
    daemon = daemon_process(command, config, environment, log, peak_file)
    try:
        if until is not None:
            wait_until(until, 3600, f"{config.stem}: the daemon's writes")
    finally:
        if until is not None:
            daemon.send_signal(signal.SIGTERM)
        code, _ = reap(daemon)
    return round(int(peak_file.read_text()) * 1024 / 1e6, 1), code


def rss_run(
    work: Work, invitations: Invitations, size: int, run_messages: int | None
) -> dict[str, Any]:
    with dovecot(work) as server, EmulatorProcess() as emulator:
        offset = 100_000 * (1 + size // 1000)  # UIDs of their own, not the latency run's
        append_seconds = append_all(server, (invitations.make(offset + n).raw for n in range(size)))
        config = write_config(work, f"rss-{size}", server, emulator)
        environment = secrets(server, emulator)
        started = time.perf_counter()
        peak, code = daemon_peak_rss("once", config, environment, work, None)
        written_once = emulator.writes()
        once = {
            "peak_rss_mb": peak,
            "exit_code": code,
            "events_written": written_once,
            "seconds": round(time.perf_counter() - started, 2),
        }
        target = size if run_messages is None else min(size, written_once + run_messages)
        started = time.perf_counter()
        peak, code = daemon_peak_rss(
            "run", config, environment, work, lambda: emulator.writes() >= target
        )
        run = {
            "peak_rss_mb": peak,
            "exit_code": code,
            "events_written": emulator.writes() - written_once,
            "seconds": round(time.perf_counter() - started, 2),
        }
        left = folder_counts(server, "INBOX")["INBOX"]
    if once["exit_code"] or run["exit_code"]:
        raise SystemExit(f"bench: a daemon failed with {size} messages: {once}, {run}")
    return {
        "messages_in_folder": size,
        "append_seconds": round(append_seconds, 1),
        "once": once,
        "run": run,
        "left_in_folder_after": left,
        "all_handled": left == 0,
    }


if __name__ == "__main__":
    sys.exit(main())

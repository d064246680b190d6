"""The daemon's loop, with a real SyncService on the NetSuite emulator and SQLite in tmp_path.

The mailbox here is ``MailboxDouble``, a test double of the ``Mailbox`` port over an
in-memory list: it gives the precise control these tests need (a fault on the third fetch,
a signal while waiting, time that passes only when the daemon waits or sleeps). The real
IMAP adapter is exercised against Dovecot by its own tests. Everything else is real: the
engine as ``mailbot.app.open_engine`` wires it, sd_notify over an AF_UNIX datagram socket,
signals sent to this process, log lines through ``mailbot.logs``.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import signal
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mailbot.adapters.metrics import PrometheusMetrics
from mailbot.adapters.notify import SystemdNotifier
from mailbot.adapters.sqlite_state import StateStorageError
from mailbot.app import Engine, emulator_config, open_engine
from mailbot.daemon import EXIT_CONFIG, EXIT_OK, EXIT_TEMPORARY, Daemon
from mailbot.logs import REDACTED, configure_logging
from mailbot.ports import FatalError, FetchedMail, MessageKey, TemporaryError
from mailbot.reports import decision_log_report, status_report
from mailbot.service import SyncService
from mailbot.sim.netsuite import NetSuiteEmulator
from mailbot.sim.netsuite.faults import FaultPlan
from tests.integration.engine_support import (
    calendar,
    corpus_account,
    invitation_mail,
    settings_for,
    vevent,
)

ACCOUNT = corpus_account()
ORGANIZER = "sender@example.com"  # an employee of the corpus account
GUEST = "receiver@example.com"  # a contact of a customer
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
FOLDER = "imap:INBOX"


# ----------------------------------------------------------------------------- doubles


class FakeClock:
    """Time that moves only when the daemon sleeps or the mailbox double waits."""

    def __init__(self, start: datetime = NOW) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[float], None] | None = None

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)


class MailboxDouble:
    """A test double of the Mailbox port: an inbox list and one list of keys per outcome.

    ``faults`` holds (operation, error) pairs raised in order, once each, by the next
    call of that operation ("fetch", "file", "wait"). ``on_wait(timeout)`` replaces the
    default wait (time passes, nothing arrives); ``on_file(key, outcome)`` runs before a
    message is moved; with ``moves=False`` messages stay in the inbox (a broken mailbox).
    """

    def __init__(self, clock: FakeClock, mails: list[FetchedMail] | None = None) -> None:
        self.clock = clock
        self.inbox: list[FetchedMail] = list(mails or [])
        self.folders: dict[str, list[str]] = defaultdict(list)
        self.faults: list[tuple[str, BaseException]] = []
        self.reconnects = 0
        self.waits: list[float] = []
        self.on_wait: Callable[[float], bool] | None = None
        self.on_file: Callable[[MessageKey, str], None] | None = None
        self.moves = True
        self.closed = False
        self.source = "imap:INBOX"
        self.uidvalidity: int | None = 7

    def fetch_new(self, limit: int) -> list[FetchedMail]:
        self._fault("fetch")
        return self.inbox[:limit]

    def file_away(self, key: MessageKey, outcome: str) -> None:
        self._fault("file")
        if self.on_file is not None:
            self.on_file(key, outcome)
        if self.moves:
            self.inbox = [mail for mail in self.inbox if mail.key != key]
        self.folders[outcome].append(key.uid)

    def file_away_all(self, keys: Sequence[MessageKey], outcome: str) -> None:
        for key in keys:
            self.file_away(key, outcome)

    def wait_for_mail(self, timeout: float) -> bool:
        self._fault("wait")
        self.waits.append(timeout)
        if len(self.waits) > 500:
            pytest.fail("the daemon kept waiting: the test's stop condition never came")
        if self.on_wait is not None:
            return self.on_wait(timeout)
        self.clock.advance(timeout)
        return False

    def reconnect(self) -> None:
        self.reconnects += 1

    def close(self) -> None:
        self.closed = True

    def deliver(self, mail: FetchedMail) -> None:
        self.inbox.append(mail)

    def _fault(self, operation: str) -> None:
        for index, (name, error) in enumerate(self.faults):
            if name == operation:
                del self.faults[index]
                raise error


class NotifierDouble:
    """Records the notifications (the real sd_notify adapter has its own tests below)."""

    def __init__(self, watchdog_interval: float | None = None) -> None:
        self.watchdog_interval = watchdog_interval
        self.sent: list[str] = []

    def ready(self) -> None:
        self.sent.append("READY=1")

    def status(self, text: str) -> None:
        self.sent.append(f"STATUS={text}")

    def watchdog(self) -> None:
        self.sent.append("WATCHDOG=1")

    def stopping(self) -> None:
        self.sent.append("STOPPING=1")


class CalendarHook:
    """The real NetSuite calendar with something done before each write (a signal sent to
    this process, a temporary fault for one meeting), for the tests that need the moment
    a message is half-way through."""

    def __init__(self, calendar: Any, before: Callable[[dict[str, Any]], None]) -> None:
        self._calendar = calendar
        self._before = before

    def upsert(self, external_id: str, body: dict[str, Any]) -> str:
        self._before(body)
        return str(self._calendar.upsert(external_id, body))

    def patch(self, external_id: str, body: dict[str, Any]) -> str | None:
        self._before(body)
        result = self._calendar.patch(external_id, body)
        return None if result is None else str(result)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def emulator() -> Iterator[NetSuiteEmulator]:
    with NetSuiteEmulator(ACCOUNT.data) as started:
        yield started


@pytest.fixture
def engine(emulator: NetSuiteEmulator, tmp_path: Path) -> Iterator[Engine]:
    """The engine as app.open_engine wires it; the client tries each call once."""
    config = emulator_config(emulator, max_attempts=1)
    with open_engine(settings_for(tmp_path / "state.sqlite3"), config, dry_run=False) as opened:
        yield opened


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def with_calendar(engine: Engine, calendar_port: Any) -> SyncService:
    service = engine.service
    return SyncService(
        service.policy,
        service.directory,
        calendar_port,
        engine.state,
        horizon=service.horizon,
        past=service.past,
    )


def daemon_for(
    mailbox: MailboxDouble,
    service: SyncService,
    clock: FakeClock,
    **options: Any,
) -> Daemon:
    options.setdefault("jitter", lambda low, high: high)  # the longest pause: predictable
    return Daemon(mailbox, service, clock=clock, sleep=clock.sleep, **options)


def stop_when(daemon: Daemon, mailbox: MailboxDouble, done: Callable[[], bool]) -> None:
    """While waiting: stop once ``done()``, else let the time pass."""

    def wait(timeout: float) -> bool:
        if done():
            daemon.request_stop()
            return False
        mailbox.clock.advance(timeout)
        return False

    mailbox.on_wait = wait


# ----------------------------------------------------------------------------- messages

_uids = iter(range(100, 100000))


def request(summary: str = "Quarterly review", *, uid: str | None = None) -> bytes:
    """An employee's invitation with a customer contact: it syncs."""
    event = vevent(
        uid=uid or f"daemon-{uuid.uuid4()}@ourco.example.org",
        organizer=ORGANIZER,
        attendees=((GUEST, "NEEDS-ACTION"),),
        summary=summary,
    )
    return invitation_mail(sender=ORGANIZER, method="REQUEST", ics=calendar("REQUEST", event))


def reply(uid: str) -> bytes:
    event = vevent(
        uid=uid, organizer=ORGANIZER, attendees=((GUEST, "ACCEPTED"),), dtstamp="20250602T090000Z"
    )
    return invitation_mail(sender=GUEST, method="REPLY", ics=calendar("REPLY", event), to=ORGANIZER)


def plain_mail() -> bytes:
    return (
        b"From: sender@example.com\r\nTo: crm-sync@ourco.example.org\r\n"
        b"Subject: lunch?\r\nMessage-ID: <lunch-1@example.com>\r\n\r\nNo calendar here.\r\n"
    )


def fetched(raw: bytes, *, arrived: datetime | None = None) -> FetchedMail:
    key = MessageKey(FOLDER, 7, str(next(_uids)))
    return FetchedMail(key, raw, len(raw), received_at=arrived or NOW - timedelta(seconds=30))


def writes(emulator: NetSuiteEmulator, method: str = "PUT") -> int:
    return sum(entry.method == method for entry in emulator.request_log())


# ----------------------------------------------------------------------------- one pass


def test_one_pass_files_each_message_after_its_commit(
    engine: Engine, emulator: NetSuiteEmulator, clock: FakeClock
) -> None:
    meeting, note, stranger = fetched(request()), fetched(plain_mail()), fetched(request())
    mailbox = MailboxDouble(clock, [meeting, note])
    committed_first: list[bool] = []
    mailbox.on_file = lambda key, _: committed_first.append(engine.state.processed(key) is not None)
    daemon = daemon_for(mailbox, engine.service, clock)

    assert daemon.run_once() == 2

    assert committed_first == [True, True]  # moved only once its decisions were committed
    assert mailbox.folders == {"synced": [meeting.key.uid], "skipped": [note.key.uid]}
    assert mailbox.inbox == []
    assert writes(emulator) == 1
    mailbox.deliver(stranger)
    assert daemon.run_once() == 1 and mailbox.folders["synced"][-1] == stranger.key.uid


def test_one_decision_line_per_decision_with_its_identifiers(
    engine: Engine, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    meeting = fetched(request("Pricing call"))
    daemon = daemon_for(MailboxDouble(clock, [meeting]), engine.service, clock)

    with caplog.at_level(logging.INFO, logger="mailbot.decisions"):
        daemon.run_once()

    (line,) = [r for r in caplog.records if r.name == "mailbot.decisions"]
    fields = vars(line)
    assert fields["outcome"] == "create" and fields["reason"] is None
    assert fields["mailbox_uid"] == meeting.key.uid and fields["mailbox"] == FOLDER
    assert fields["message_id"].startswith("<") and fields["event_uid"].startswith("daemon-")
    assert fields["netsuite_id"] and fields["external_id"].startswith("mailbot-")
    assert fields["summary"] == "Pricing call"
    message = line.getMessage()
    assert f"mailbox_uid={meeting.key.uid}" in message and "outcome=create" in message
    assert f"netsuite_id={fields['netsuite_id']}" in message


def test_a_message_committed_but_not_filed_is_filed_by_the_next_pass_without_a_write(
    engine: Engine, emulator: NetSuiteEmulator, clock: FakeClock
) -> None:
    meeting = fetched(request())
    mailbox = MailboxDouble(clock, [meeting])
    mailbox.faults.append(("file", TemporaryError("connection lost while moving")))
    daemon = daemon_for(mailbox, engine.service, clock)

    with pytest.raises(TemporaryError):
        daemon.run_once()
    assert engine.state.processed(meeting.key) is not None and mailbox.inbox == [meeting]

    assert daemon.run_once() == 1
    assert mailbox.folders == {"synced": [meeting.key.uid]}
    assert writes(emulator) == 1  # the second pass found it done and only filed it


def test_a_pass_files_its_committed_messages_together_at_its_end(
    engine: Engine, clock: FakeClock
) -> None:
    meetings = [fetched(request(f"Meeting {n}")) for n in range(3)]
    mailbox = MailboxDouble(clock, list(meetings))
    calls: list[int] = []
    mailbox.file_away_all = lambda keys, outcome: calls.append(len(keys))  # type: ignore[method-assign]

    assert daemon_for(mailbox, engine.service, clock).run_once() == 3

    assert calls == [3]  # one MOVE for the three


def test_an_error_mid_pass_files_what_was_committed_and_keeps_its_own_handling(
    engine: Engine, emulator: NetSuiteEmulator, clock: FakeClock
) -> None:
    """The second message meets a full state disk (no port error) and the mailbox is lost as
    the first one is filed: the daemon backs off as for any error while handling (it does
    not stop), and the first message, committed but not filed, is filed by a later pass
    without being written again."""
    first, second = fetched(request("First")), fetched(request("Second"))
    mailbox = MailboxDouble(clock, [first, second])
    outage = [True]

    def before(body: dict[str, Any]) -> None:
        if body.get("title") == "Second" and outage.pop() if outage else False:
            mailbox.faults.append(("file", TemporaryError("connection to the mailbox lost")))
            raise StateStorageError("database or disk is full", code="SQLITE_FULL")

    daemon = daemon_for(
        mailbox, with_calendar(engine, CalendarHook(engine.calendar, before)), clock
    )
    stop_when(daemon, mailbox, lambda: not mailbox.inbox)

    assert daemon.run_forever() == EXIT_OK

    assert sorted(mailbox.folders["synced"]) == sorted([first.key.uid, second.key.uid])
    assert writes(emulator) == 2  # the first was not written again
    assert len(clock.sleeps) == 1  # one backoff, for the outage


def test_a_message_the_mailbox_does_not_move_is_left_alone_instead_of_looping(
    engine: Engine, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    mailbox = MailboxDouble(clock, [fetched(request())])
    mailbox.moves = False
    daemon = daemon_for(mailbox, engine.service, clock)

    assert daemon.run_once() == 1
    with caplog.at_level(logging.WARNING, logger="mailbot.daemon"):
        assert daemon.run_once() == 0
        assert daemon.run_once() == 0
    assert sum("still in the folder" in r.getMessage() for r in caplog.records) == 1


# ----------------------------------------------------------------------------- signals


def test_sigterm_mid_batch_finishes_the_current_message_then_exits_0(
    engine: Engine, emulator: NetSuiteEmulator, clock: FakeClock
) -> None:
    first, second, third = (fetched(request(f"Meeting {n}")) for n in (1, 2, 3))
    mailbox = MailboxDouble(clock, [first, second, third])
    sent: list[bool] = []

    def terminate_once(_: dict[str, Any]) -> None:
        if not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)  # while the first message is being written

    notifier = NotifierDouble()
    daemon = daemon_for(
        mailbox,
        with_calendar(engine, CalendarHook(engine.calendar, terminate_once)),
        clock,
        notifier=notifier,
    )
    previous = signal.getsignal(signal.SIGTERM)

    assert daemon.run_forever() == EXIT_OK

    assert mailbox.folders == {"synced": [first.key.uid]}  # written, committed, filed
    assert mailbox.inbox == [second, third]
    assert engine.state.processed(second.key) is None
    assert writes(emulator) == 1
    assert notifier.sent[-1] == "STOPPING=1"
    assert signal.getsignal(signal.SIGTERM) == previous  # handlers restored


def test_sigterm_while_waiting_ends_the_wait_at_once(engine: Engine, clock: FakeClock) -> None:
    mailbox = MailboxDouble(clock)

    def blocking_wait(timeout: float) -> bool:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # resumed by Python after a mere flag (PEP 475): the handler raises
        return False

    mailbox.on_wait = blocking_wait
    daemon = daemon_for(mailbox, engine.service, clock)
    started = time.monotonic()

    assert daemon.run_forever() == EXIT_OK
    assert time.monotonic() - started < 10


def test_sighup_is_ignored(engine: Engine, clock: FakeClock) -> None:
    mailbox = MailboxDouble(clock)
    calls: list[float] = []

    def wait(timeout: float) -> bool:
        calls.append(timeout)
        os.kill(os.getpid(), signal.SIGHUP if len(calls) == 1 else signal.SIGTERM)
        clock.advance(timeout)
        return False

    mailbox.on_wait = wait
    assert daemon_for(mailbox, engine.service, clock).run_forever() == EXIT_OK
    assert len(calls) == 2  # still running after SIGHUP


# ----------------------------------------------------------------------------- faults


def test_mailbox_outages_back_off_exponentially_and_reconnect(
    engine: Engine, clock: FakeClock
) -> None:
    meeting = fetched(request())
    mailbox = MailboxDouble(clock, [meeting])
    mailbox.faults = [("fetch", TemporaryError("IMAP server unreachable"))] * 5
    notifier = NotifierDouble()
    metrics = PrometheusMetrics()
    daemon = daemon_for(
        mailbox, engine.service, clock, notifier=notifier, metrics=metrics, backoff_cap=5.0
    )
    stop_when(daemon, mailbox, lambda: bool(mailbox.folders["synced"]))

    assert daemon.run_forever() == EXIT_OK

    assert clock.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]  # doubled each time, capped
    assert mailbox.reconnects == 5
    assert mailbox.folders["synced"] == [meeting.key.uid]
    assert notifier.sent.count("READY=1") == 1  # ready stays ready through the outage
    assert notifier.sent[0] == "READY=1"
    assert any(s.startswith("STATUS=retrying in 4s; fetching failed: IMAP") for s in notifier.sent)
    assert 'mailbot_backoffs_total{phase="fetching"} 5' in metrics.render()


def test_backoff_pauses_are_jittered_between_half_and_the_whole_ceiling(
    engine: Engine, clock: FakeClock
) -> None:
    mailbox = MailboxDouble(clock, [fetched(request())])
    mailbox.faults = [("fetch", TemporaryError("down"))] * 3
    bounds: list[tuple[float, float]] = []

    def jitter(low: float, high: float) -> float:
        bounds.append((low, high))
        return (low + high) / 2

    daemon = daemon_for(mailbox, engine.service, clock, jitter=jitter)
    stop_when(daemon, mailbox, lambda: not mailbox.inbox)

    assert daemon.run_forever() == EXIT_OK
    assert bounds == [(0.5, 1.0), (1.0, 2.0), (2.0, 4.0)]
    assert clock.sleeps == [0.75, 1.5, 3.0]


def test_a_netsuite_outage_is_waited_out_and_counts_no_attempt(
    engine: Engine, emulator: NetSuiteEmulator, clock: FakeClock
) -> None:
    meetings = [fetched(request(f"Meeting {n}")) for n in (1, 2)]
    mailbox = MailboxDouble(clock, list(meetings))
    emulator.set_faults(FaultPlan(error_rate=1.0, error_statuses=(503,)))
    clock.on_sleep = lambda _: emulator.set_faults(FaultPlan()) if len(clock.sleeps) == 3 else None
    metrics = PrometheusMetrics()
    daemon = daemon_for(mailbox, engine.service, clock, metrics=metrics)
    stop_when(daemon, mailbox, lambda: not mailbox.inbox)

    assert daemon.run_forever() == EXIT_OK

    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert mailbox.reconnects == 0  # NetSuite failed, not the mailbox
    assert sorted(mailbox.folders["synced"]) == sorted(m.key.uid for m in meetings)
    for meeting in meetings:
        seen = engine.state.processed(meeting.key)
        assert seen is not None and seen.attempts == 1  # the outage was not held against it
    assert 'mailbot_backoffs_total{phase="looking up"} 3' in metrics.render()


def test_a_refused_message_is_retried_later_then_quarantined_with_its_reason(
    engine: Engine, emulator: NetSuiteEmulator, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    meeting_uid = f"refused-{uuid.uuid4()}@ourco.example.org"
    first = daemon_for(
        MailboxDouble(clock, [fetched(request(uid=meeting_uid))]), engine.service, clock
    )
    assert first.run_once() == 1
    (event,) = emulator.records("calendarEvent")
    engine.client.delete_event(str(event["id"]))  # someone deleted it in NetSuite
    answer = fetched(reply(meeting_uid))
    mailbox = MailboxDouble(clock, [answer])
    metrics = PrometheusMetrics()
    daemon = daemon_for(
        mailbox, engine.service, clock, metrics=metrics, max_attempts=3, failure_delay=120.0
    )
    stop_when(daemon, mailbox, lambda: bool(mailbox.folders["failed"]))
    started = clock.now

    with caplog.at_level(logging.INFO):
        assert daemon.run_forever() == EXIT_OK

    assert mailbox.folders == {"failed": [answer.key.uid]}
    seen = engine.state.processed(answer.key)
    assert seen is not None and seen.outcome == "failed" and seen.attempts == 3
    assert writes(emulator, "PATCH") == 3
    assert clock.now - started >= timedelta(seconds=240)  # two pauses between three attempts
    (quarantine,) = [r for r in caplog.records if r.getMessage().startswith("quarantined")]
    assert "404 NONEXISTENT_ID" in quarantine.getMessage() and vars(quarantine)["attempts"] == 3
    assert "mailbot_quarantined_total 1" in metrics.render()
    report = status_report(engine.state, max_attempts=3)
    assert "Quarantined (filed to Failed after 3 attempts): 1" in report
    assert "404 NONEXISTENT_ID" in report


def test_a_message_that_fails_while_others_go_through_is_quarantined(
    engine: Engine, clock: FakeClock
) -> None:
    """A poison message (its write fails every time, others' do not) does not hold up the
    others and is quarantined; a failure that nothing else survived is not counted."""

    def poison(body: dict[str, Any]) -> None:
        if body.get("title") == "Poison":
            raise TemporaryError("NetSuite answered 500 for this payload")

    bad = fetched(request("Poison"))
    mailbox = MailboxDouble(clock, [bad, fetched(request("Good 1"))])
    daemon = daemon_for(
        mailbox,
        with_calendar(engine, CalendarHook(engine.calendar, poison)),
        clock,
        max_attempts=2,
        failure_delay=60.0,
    )
    deliveries = iter(range(2, 10))

    def wait(timeout: float) -> bool:
        if mailbox.folders["failed"]:
            daemon.request_stop()
            return False
        mailbox.deliver(fetched(request(f"Good {next(deliveries)}")))
        clock.advance(timeout)
        return True

    mailbox.on_wait = wait

    assert daemon.run_forever() == EXIT_OK

    assert mailbox.folders["failed"] == [bad.key.uid]
    assert len(mailbox.folders["synced"]) >= 2 and [m.key for m in mailbox.inbox] == []
    assert clock.sleeps == [1.0]  # only the first failure, with nothing gone through yet
    seen = engine.state.processed(bad.key)
    assert seen is not None and seen.outcome == "failed" and seen.attempts == 2


def test_a_failing_message_holds_back_the_later_messages_of_its_meeting(
    engine: Engine, clock: FakeClock
) -> None:
    """The reply behind a failing invitation waits for it (here until it is quarantined)
    instead of going first and finding no event; other meetings' messages do not wait."""
    meeting_uid = f"held-{uuid.uuid4()}@ourco.example.org"

    def poison(body: dict[str, Any]) -> None:
        if body.get("title") == "Poison":
            raise TemporaryError("NetSuite answered 500 for this payload")

    bad = fetched(request("Poison", uid=meeting_uid))
    answer = fetched(reply(meeting_uid))
    mailbox = MailboxDouble(clock, [bad, answer, fetched(request("Good 1"))])
    filed: list[tuple[str, str]] = []
    mailbox.on_file = lambda key, outcome: filed.append((key.uid, outcome))
    daemon = daemon_for(
        mailbox,
        with_calendar(engine, CalendarHook(engine.calendar, poison)),
        clock,
        max_attempts=2,
        failure_delay=60.0,
    )

    def wait(timeout: float) -> bool:
        if not mailbox.inbox:
            daemon.request_stop()
            return False
        mailbox.deliver(fetched(request("Good 2")))
        clock.advance(timeout)
        return True

    mailbox.on_wait = wait

    assert daemon.run_forever() == EXIT_OK

    assert [outcome for _, outcome in filed] == ["synced", "synced", "failed", "skipped"]
    assert filed[2:] == [(bad.key.uid, "failed"), (answer.key.uid, "skipped")]
    assert clock.sleeps == [1.0]  # only the first failure, with nothing gone through yet


def test_fatal_errors_exit_78_and_unexpected_ones_75(engine: Engine, clock: FakeClock) -> None:
    mailbox = MailboxDouble(clock, [fetched(request())])
    mailbox.faults.append(("fetch", FatalError("IMAP login refused")))
    notifier = NotifierDouble()
    assert daemon_for(mailbox, engine.service, clock, notifier=notifier).run_forever() == 78
    assert "READY=1" not in notifier.sent  # a start that cannot work is not reported ready

    mailbox.faults.append(("fetch", RuntimeError("a bug in the mailbox adapter")))
    assert daemon_for(mailbox, engine.service, clock).run_forever() == EXIT_TEMPORARY

    def refused(_: dict[str, Any]) -> None:
        raise FatalError("NetSuite refused the credentials: 401")

    service = with_calendar(engine, CalendarHook(engine.calendar, refused))
    assert daemon_for(mailbox, service, clock).run_forever() == EXIT_CONFIG
    assert engine.state.processed(mailbox.inbox[0].key) is None


def test_once_runs_one_pass_and_tells_the_timer_what_happened(
    engine: Engine, clock: FakeClock
) -> None:
    mailbox = MailboxDouble(clock, [fetched(request()), fetched(request())])
    assert daemon_for(mailbox, engine.service, clock, batch=1).once() == EXIT_OK
    assert len(mailbox.inbox) == 1 and mailbox.waits == []
    mailbox.faults.append(("fetch", TemporaryError("IMAP server unreachable")))
    assert daemon_for(mailbox, engine.service, clock).once() == EXIT_TEMPORARY
    mailbox.faults.append(("fetch", FatalError("IMAP login refused")))
    assert daemon_for(mailbox, engine.service, clock).once() == EXIT_CONFIG


# ----------------------------------------------------------------------------- watchdog


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """What systemd listens on: an AF_UNIX datagram socket."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        listener.setblocking(False)
        yield str(path), listener


def received(listener: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(listener.recv(4096).decode("utf-8"))
        except BlockingIOError:
            return messages


def test_the_watchdog_is_pinged_while_waiting_and_backing_off(
    engine: Engine, clock: FakeClock, notify_socket: tuple[str, socket.socket]
) -> None:
    path, listener = notify_socket
    notifier = SystemdNotifier(path, watchdog_usec=20_000_000)  # WatchdogSec=20s: ping by 10s
    mailbox = MailboxDouble(clock, [fetched(request())])
    mailbox.faults.append(("fetch", TemporaryError("down")))
    daemon = daemon_for(
        mailbox,
        engine.service,
        clock,
        notifier=notifier,
        idle_timeout=60.0,
        backoff_base=25.0,
        backoff_cap=25.0,
    )
    messages: list[str] = []  # read as systemd does, while the daemon runs
    pinged: list[datetime] = []

    def note(_: float) -> None:
        for message in received(listener):
            messages.append(message)
            if message == "WATCHDOG=1":
                pinged.append(clock.now)

    def wait(timeout: float) -> bool:
        note(timeout)
        if clock.now - NOW > timedelta(seconds=200):
            daemon.request_stop()
            return False
        clock.advance(timeout)
        return False

    clock.on_sleep = note
    mailbox.on_wait = wait

    assert daemon.run_forever() == EXIT_OK
    note(0)

    assert clock.sleeps == [10.0, 10.0, 5.0]  # the 25 s backoff, in slices of 10 s
    assert max(mailbox.waits) <= 10.0  # IDLE in slices of 10 s, never past the next ping
    gaps = [later - earlier for earlier, later in itertools.pairwise(pinged)]
    assert len(pinged) > 20 and max(gaps) <= timedelta(seconds=10)
    assert messages.count("READY=1") == 1 and messages[-1] == "STOPPING=1"
    assert "STATUS=retrying in 25s; fetching failed: down" in messages


def test_a_full_notification_queue_never_blocks(notify_socket: tuple[str, socket.socket]) -> None:
    path, listener = notify_socket
    notifier = SystemdNotifier(path, watchdog_usec=1_000_000)
    started = time.monotonic()
    for _ in range(200):  # far more than the queue holds (net.unix.max_dgram_qlen)
        notifier.watchdog()
    assert time.monotonic() - started < 5
    assert received(listener)[0] == "WATCHDOG=1"


# ----------------------------------------------------------------------------- sd_notify


def test_sd_notify_sends_datagrams_and_keeps_status_on_one_line(
    notify_socket: tuple[str, socket.socket],
) -> None:
    path, listener = notify_socket
    notifier = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    )
    assert notifier.watchdog_interval == 15.0
    notifier.ready()
    notifier.status("retrying: Subject line\nREADY=1\r\nMAINPID=1")
    notifier.watchdog()
    notifier.stopping()
    notifier.close()

    assert received(listener) == [
        "READY=1",
        "STATUS=retrying: Subject line READY=1 MAINPID=1",  # one line: no forged assignment
        "WATCHDOG=1",
        "STOPPING=1",
    ]


def test_sd_notify_reaches_an_abstract_socket() -> None:
    name = f"mailbot-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(b"\0" + name.encode())
        listener.settimeout(5)
        with SystemdNotifier(f"@{name}") as notifier:
            notifier.ready()
        assert listener.recv(64) == b"READY=1"


def test_sd_notify_does_nothing_without_systemd(tmp_path: Path) -> None:
    unset = SystemdNotifier.from_environment({})
    assert not unset.enabled and unset.watchdog_interval is None
    unset.ready()  # no socket, no error
    other_process = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": str(tmp_path / "x"), "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
    )
    assert other_process.watchdog_interval is None  # the watchdog is another process's
    other_process.ready()  # the socket is missing: logged, not raised


# ----------------------------------------------------------------------------- log lines


def run_logged(engine: Engine, clock: FakeClock, raw: bytes, *, as_json: bool) -> list[str]:
    stream = io.StringIO()
    handler = configure_logging(json=as_json, stream=stream, redact=["s3cr3t-token-value"])
    try:
        daemon_for(MailboxDouble(clock, [fetched(raw)]), engine.service, clock).run_once()
        logging.getLogger("mailbot.test").warning("token leaked: s3cr3t-token-value")
    finally:
        logging.getLogger().removeHandler(handler)
    return stream.getvalue().splitlines()


FORGED = "Planning\\nINFO mailbot.decisions: decision outcome=create forged=yes\\r\\u2028\x85"


def test_a_line_break_in_a_title_cannot_forge_a_log_line(engine: Engine, clock: FakeClock) -> None:
    lines = run_logged(engine, clock, request(FORGED), as_json=False)

    decisions = [line for line in lines if "mailbot.decisions:" in line]
    assert len(decisions) == 1
    forged = "INFO mailbot.decisions: decision outcome=create forged"
    assert not any(line.startswith(forged) for line in lines)
    assert "\\nINFO mailbot.decisions" in decisions[0]
    assert "s3cr3t-token-value" not in "\n".join(lines) and "[redacted]" in lines[-1]


def test_json_log_lines_carry_the_decision_fields(engine: Engine, clock: FakeClock) -> None:
    lines = run_logged(engine, clock, request(FORGED), as_json=True)

    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    (decision,) = [e for e in entries if e["logger"] == "mailbot.decisions"]
    assert decision["outcome"] == "create" and decision["level"] == "INFO"
    assert decision["summary"].startswith("Planning\nINFO mailbot.decisions")
    assert decision["netsuite_id"] and decision["mailbox"] == FOLDER
    assert "\u2028" not in lines[entries.index(decision)]  # escaped as \u2028 in the text
    assert entries[-1]["message"] == "token leaked: [redacted]"


def test_json_logs_redact_fields_that_look_like_secrets() -> None:
    stream = io.StringIO()
    handler = configure_logging(json=True, stream=stream)
    try:
        logging.getLogger("mailbot.test").info(
            "configured", extra={"token_secret": "abc", "settings": {"password": "x", "host": "h"}}
        )
    finally:
        logging.getLogger().removeHandler(handler)
    entry = json.loads(stream.getvalue())
    assert entry["token_secret"] == REDACTED
    assert entry["settings"] == {"password": REDACTED, "host": "h"}


# ----------------------------------------------------------------------------- reports


def test_status_and_log_reports(engine: Engine, clock: FakeClock) -> None:
    meeting, note = fetched(request("Budget \x1b[31mred")), fetched(plain_mail())
    daemon_for(MailboxDouble(clock, [meeting, note]), engine.service, clock).run_once()

    status = status_report(engine.state)
    assert "Messages:      2 (skipped 1, synced 1)" in status
    assert "Quarantined (filed to Failed after 5 attempts): 0" in status
    assert f"Last pass:     {NOW.isoformat(timespec='seconds')} over imap:INBOX" in status
    summary = json.loads(status_report(engine.state, as_json=True))
    assert summary["by_outcome"] == {"skipped": 1, "synced": 1}
    assert summary["last_passes"] == [
        {
            "mailbox": "imap:INBOX",
            "uidvalidity": 7,
            "last_uid": int(note.key.uid),
            "at": NOW.isoformat(),
        }
    ]

    table = decision_log_report(engine.state, outcome="create")
    assert "Budget \\x1b[31mred" in table and "\x1b" not in table  # no terminal escapes
    assert table.rstrip().endswith("1 decisions")
    lines = decision_log_report(engine.state, message_id="<lunch-1@example.com>", as_json=True)
    (entry,) = [json.loads(line) for line in lines.splitlines()]
    assert entry["outcome"] == "skip" and entry["logged_at"]
    assert decision_log_report(engine.state, reason="no_such_reason") == "no decisions match\n"

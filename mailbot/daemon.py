"""The daemon: ``mailbot run`` (wait for mail with IMAP IDLE, forever) and ``mailbot once``.

One pass (:meth:`Daemon.run_once`): fetch the waiting messages (at most ``batch``), ask the
CRM about all their addresses in one look-up, then handle them one at a time
(``SyncService.handle``: decide, write to NetSuite, commit), then file the committed
messages away, one MOVE per outcome folder (a MOVE costs the server about the same for one
UID or fifty, and tens of milliseconds in a folder of tens of thousands). Filing always comes
after the commit; a message committed but not filed (the mailbox failed, the process died) is
found processed by the next pass and filed without being handled again. Between two messages
the daemon checks its stop flag and pings the watchdog, so a stop never cuts a message in
half (the messages committed so far are filed before it exits) and a long batch does not
look like a hung process.

The loop (:meth:`Daemon.run_forever`) is split into named hooks: ``_one_iteration`` (one
pass), ``_wait`` (IDLE until mail arrives or ``idle_timeout``; skipped after a pass that did
work, since more may be waiting) and ``_backoff`` (after a failure). What happens on a fault:

* NetSuite refused a write (outcome ``failed``): the message stays in the mailbox and is
  tried again after ``failure_delay``; once the state store counts ``max_attempts``
  attempts it is filed to Failed (quarantined) and its reason logged.
* ``TemporaryError`` (mailbox or NetSuite unreachable) and any other error while looking up
  or handling a message: exponential backoff with jitter up to ``backoff_cap``, STATUS tells
  why, READY stays; the mailbox is reconnected when it was the mailbox that failed. The
  message that was being handled goes last in the next pass, and the failure counts as one
  of its attempts (``StateStore.record_failure``) only when another message has gone
  through since it last failed: an outage must not quarantine the messages that meet it.

A message whose handling raised holds back the later messages of its meetings (the same
iCalendar UID) until it is handled or quarantined: they go last with it, or wait while it
waits, so that a meeting's messages are handled in the order they arrived whatever failed
in between (a reply handled before its invitation would find no event, and the answer
would be lost). A refused message holds nothing back: a later update may be what lets it
through.
* ``FatalError`` (credentials refused, configuration an admin must fix): exit 78.
* Anything else (a fault outside any message, say the state database): exit 75, and
  systemd starts a fresh process (``Restart=on-failure``).

Signals: SIGTERM and SIGINT set the stop flag; the current message is finished (committed
and filed) and the process exits 0. A blocking wait is resumed by Python after a signal
(PEP 475), so while the daemon only waits (IDLE, a backoff pause) the handler also raises,
which ends the wait at once; while a message is handled it never does. SIGHUP is ignored
(change the configuration, then restart the service).

Every decision is logged once, after its commit, on the logger ``mailbot.decisions``: the
line reads ``key=value`` and the same fields are the record's ``extra`` (JSON output).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import Any, Final, Protocol

from mailbot.core.model import Invitation
from mailbot.core.pipeline import ReadMessage
from mailbot.ports import FatalError, FetchedMail, Mailbox, MessageKey, PortError
from mailbot.service import Handled, MailItem, SyncService

LOG = logging.getLogger("mailbot.daemon")
DECISIONS = logging.getLogger("mailbot.decisions")

EXIT_OK: Final = 0
EXIT_TEMPORARY: Final = 75  # EX_TEMPFAIL: try again later (systemd restarts the service)
EXIT_CONFIG: Final = 78  # EX_CONFIG: an admin must act (RestartPreventExitStatus=78)

# What the daemon was doing when something failed; the mailbox ones call for a reconnect.
FETCHING, LOOKING_UP, HANDLING, FILING, WAITING, RECONNECTING = (
    "fetching",
    "looking up",
    "handling",
    "filing",
    "waiting",
    "reconnecting",
)
MAILBOX_PHASES: Final = frozenset({FETCHING, FILING, WAITING, RECONNECTING})
RETRIED_PHASES: Final = frozenset({LOOKING_UP, HANDLING})  # any error there is retried
SUMMARY_MAX: Final = 200  # characters of a meeting title in a log line
FILED_MEMORY: Final = 10_000  # keys remembered as filed, to notice a message that stays


class Notifier(Protocol):
    """systemd's notifications (``mailbot.adapters.notify.SystemdNotifier``)."""

    @property
    def watchdog_interval(self) -> float | None:
        """Longest pause between two ``watchdog()`` calls, in seconds; None: no watchdog."""
        ...

    def ready(self) -> None: ...

    def status(self, text: str) -> None: ...

    def watchdog(self) -> None: ...

    def stopping(self) -> None: ...


class Metrics(Protocol):
    """What the daemon reports (``mailbot.adapters.metrics.PrometheusMetrics``)."""

    def observe_message(
        self, outcome: str, decisions: Iterable[tuple[str, str | None]], sync_delay: float | None
    ) -> None: ...

    def observe_quarantine(self) -> None: ...

    def observe_backoff(self, phase: str) -> None: ...

    def observe_success(self, at: datetime) -> None: ...


class NullNotifier:
    """No systemd to tell (the default)."""

    watchdog_interval: float | None = None

    def ready(self) -> None:
        pass

    def status(self, text: str) -> None:
        pass

    def watchdog(self) -> None:
        pass

    def stopping(self) -> None:
        pass


class NullMetrics:
    """No metrics endpoint (the default)."""

    def observe_message(
        self, outcome: str, decisions: Iterable[tuple[str, str | None]], sync_delay: float | None
    ) -> None:
        pass

    def observe_quarantine(self) -> None:
        pass

    def observe_backoff(self, phase: str) -> None:
        pass

    def observe_success(self, at: datetime) -> None:
        pass


class _Interrupted(BaseException):
    """Raised by the signal handler, only while the daemon waits (see ``_interruptible``).

    A BaseException, as KeyboardInterrupt is, so that an adapter's ``except Exception``
    around its blocking read cannot take it for a failure of its own.
    """


def utc_now() -> datetime:
    return datetime.now(UTC)


class Daemon:
    """The loop around ``SyncService`` (see the module docstring).

    ``clock`` gives the aware current time, ``sleep`` pauses (both replaceable in tests);
    ``jitter(low, high)`` draws a backoff pause between two bounds; ``on_handled`` is told
    of every message handled, after its commit (the CLI prints dry-run decisions with it).
    """

    def __init__(
        self,
        mailbox: Mailbox,
        service: SyncService,
        *,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        notifier: Notifier | None = None,
        metrics: Metrics | None = None,
        batch: int = 50,
        max_attempts: int = 5,
        idle_timeout: float = 600.0,
        failure_delay: float = 60.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        jitter: Callable[[float, float], float] = random.uniform,
        on_handled: Callable[[Handled], None] | None = None,
    ) -> None:
        if batch < 1 or max_attempts < 1:
            raise ValueError("batch and max_attempts must be at least 1")
        if idle_timeout <= 0 or failure_delay < 0 or not 0 < backoff_base <= backoff_cap:
            raise ValueError("idle_timeout > 0, failure_delay >= 0, 0 < backoff_base <= cap")
        self.mailbox = mailbox
        self.service = service
        self.notifier: Notifier = notifier or NullNotifier()
        self.metrics: Metrics = metrics or NullMetrics()
        self.batch = batch
        self.max_attempts = max_attempts
        self.idle_timeout = idle_timeout
        self.failure_delay = failure_delay
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._on_handled = on_handled
        self._stop = False
        self._stop_signal: str | None = None
        self._waiting = False
        self._ready = False
        self._phase = FETCHING
        self._failures = 0  # failed passes in a row: the backoff's exponent
        self._reconnect = False
        self._handled = 0  # messages handled since start
        self._successes = 0  # messages handled without an error since start
        self._suspects: dict[MessageKey, int] = {}  # failed to handle: _successes back then
        self._retry_at: dict[MessageKey, float] = {}  # refused: not before this time
        self._holds: dict[MessageKey, frozenset[str]] = {}  # failed: the meetings it holds
        self._filed: dict[MessageKey, bool] = {}  # filed by this process: seen again since?
        self._pending: dict[str, list[MessageKey]] = {}  # committed, filed at the pass's end

    # ------------------------------------------------------------------ entry points

    @property
    def stop_requested(self) -> bool:
        return self._stop

    def request_stop(self) -> None:
        """Finish the current message, then return (what SIGTERM does)."""
        self._stop = True

    def run_forever(self) -> int:
        """``mailbot run``: passes until stopped; the exit code (0, 75 or 78)."""
        with self._signals_handled():
            LOG.info(  # once SIGTERM is handled: a stop from here on is a clean one
                "started: batches of %d, IDLE up to %.0fs, quarantine after %d attempts%s",
                self.batch,
                self.idle_timeout,
                self.max_attempts,
                f", watchdog every {interval:.0f}s"
                if (interval := self.notifier.watchdog_interval)
                else "",
            )
            try:
                code = self._loop()
            finally:
                self.notifier.stopping()
        LOG.info("stopped (%s), exit code %d", self._stop_signal or "no stop signal", code)
        return code

    def once(self) -> int:
        """``mailbot once``: one pass with the signals handled; the exit code (0, 75, 78)."""
        with self._signals_handled():
            try:
                handled = self.run_once()
            except FatalError as error:
                LOG.error("stopped: %s", error)
                return EXIT_CONFIG
            except Exception as error:
                LOG.error("stopped: %s", _summary(error), exc_info=not isinstance(error, PortError))
                return EXIT_TEMPORARY
            finally:
                self.notifier.stopping()
        LOG.info("one pass: %d messages handled", handled)
        return EXIT_OK

    def run_once(self) -> int:
        """One pass over the mailbox; the number of messages handled.

        Raises what the mailbox or the service raised and could not be set aside
        (``TemporaryError``, ``FatalError``, others): the caller decides what follows.
        """
        self._phase = FETCHING
        fetched = self.mailbox.fetch_new(self.batch)
        self._notice_renumbering()
        self._announce_ready()
        due = self._due(fetched)
        reads = self._look_up_together(due) if due else {}
        due = self._in_meeting_order(due, reads)
        self.notifier.watchdog()
        handled = 0
        for position, mail in enumerate(due, 1):
            if self._stop:
                LOG.info("stop requested: %d messages left for the next run", len(due) - handled)
                break
            if self._held_back(mail, reads):
                continue
            self.notifier.status(f"handling message {position} of {len(due)}")
            try:
                self._handle(mail, reads.get(mail.key))
            except BaseException:
                self._file_pending_after_error()
                raise
            handled += 1
            self._handled += 1
            self.notifier.watchdog()
        self._file_pending()
        self._record_pass(fetched)
        self.metrics.observe_success(self._clock())
        return handled

    def _notice_renumbering(self) -> None:
        """Say so when the folder's UIDVALIDITY is not the one the last pass saw. Nothing
        else is needed: a message's key holds the UIDVALIDITY, and a message whose content
        was processed under an old key is recognised by ``SyncService`` (Message-ID and
        content hash), so a renumbered folder is rescanned without a second sync."""
        validity = self.mailbox.uidvalidity
        if validity is None:
            return
        cursor = self.service.state.cursor(self.mailbox.source)
        if cursor is not None and cursor.uidvalidity != validity:
            LOG.warning(
                "%s: UIDVALIDITY changed from %d to %d (the server renumbered its messages); "
                "rescanning: messages processed before are recognised by their content",
                self.mailbox.source,
                cursor.uidvalidity,
                validity,
            )

    def _record_pass(self, fetched: list[FetchedMail]) -> None:
        """Note the pass in the state (for ``mailbot status``); bookkeeping only, so a
        failure to write it is logged, not a failure of the pass."""
        validity = self.mailbox.uidvalidity
        if validity is None:
            return
        uids = [int(mail.key.uid) for mail in fetched if mail.key.uid.isdigit()]
        try:
            self.service.state.record_pass(
                self.mailbox.source, validity, max(uids, default=0), self._clock()
            )
        except Exception as error:  # noqa: BLE001 - the pass's own work is committed
            LOG.warning("could not note the pass in the state: %s", _summary(error))

    # ------------------------------------------------------------------ the loop's hooks

    def _loop(self) -> int:
        while not self._stop:
            try:
                handled = self._one_iteration()
                if not self._stop:
                    self._wait(handled)
            except _Interrupted:
                break
            except FatalError as error:
                LOG.error("stopping: %s (an admin must act; not restarted)", error)
                self.notifier.status(f"stopped: {error}")
                return EXIT_CONFIG
            except Exception as error:
                if self._stop:
                    break
                if not (isinstance(error, PortError) or self._phase in RETRIED_PHASES):
                    LOG.exception("stopping after an unexpected error while %s", self._phase)
                    self.notifier.status(f"stopped: {_summary(error)}")
                    return EXIT_TEMPORARY
                try:
                    self._backoff(error)
                except _Interrupted:
                    break
        self.notifier.status(f"stopping ({self._stop_signal or 'asked to'})")
        return EXIT_OK

    def _one_iteration(self) -> int:
        """One pass, after reconnecting the mailbox when it was what failed last."""
        if self._reconnect:
            self._phase = RECONNECTING
            reconnect = getattr(self.mailbox, "reconnect", None)
            if callable(reconnect):
                reconnect()
            self._reconnect = False
        handled = self.run_once()
        if self._failures:
            LOG.info("working again after %d failed attempts", self._failures)
            self._failures = 0
        return handled

    def _wait(self, handled: int) -> None:
        """IDLE until mail arrives, ``idle_timeout`` passes or a refused message is due;
        nothing after a pass that did work. The watchdog is pinged in between."""
        if handled:
            return
        now = self._clock().timestamp()
        timeout = self.idle_timeout
        if self._retry_at:
            timeout = min(timeout, max(0.0, min(self._retry_at.values()) - now))
        self.notifier.status(
            f"waiting for mail; {self._handled} messages handled since start, "
            f"last pass {_moment(self._clock())}"
        )
        self._phase = WAITING
        deadline = now + timeout
        while not self._stop:
            remaining = deadline - self._clock().timestamp()
            if remaining <= 0:
                return
            self.notifier.watchdog()
            with self._interruptible():
                if self.mailbox.wait_for_mail(min(remaining, self._watchdog_slice())):
                    return

    def _backoff(self, error: Exception) -> None:
        """Wait ever longer after failures in a row (equal jitter), up to ``backoff_cap``."""
        self._failures += 1
        phase = self._phase
        self._reconnect = self._reconnect or phase in MAILBOX_PHASES
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** min(self._failures - 1, 30))
        delay = self._jitter(ceiling / 2, ceiling)
        reason = _summary(error)
        LOG.warning(
            "%s failed (%d in a row): %s; retrying in %.0fs",
            phase,
            self._failures,
            reason,
            delay,
            exc_info=not isinstance(error, PortError),
        )
        self.metrics.observe_backoff(phase)
        self._announce_ready()  # an outage at start-up must not hold the start forever
        self.notifier.status(f"retrying in {delay:.0f}s; {phase} failed: {reason}")
        self._pause(delay)

    # ------------------------------------------------------------------ one pass

    def _due(self, fetched: list[FetchedMail]) -> list[FetchedMail]:
        """The fetched messages to handle now, in mailbox order: not a refused one before
        its time, not one this process filed already."""
        now = self._clock().timestamp()
        keys = {mail.key for mail in fetched}
        self._retry_at = {k: t for k, t in self._retry_at.items() if k in keys}
        self._holds = {k: uids for k, uids in self._holds.items() if k in keys}
        due = []
        for mail in fetched:
            if self._retry_at.get(mail.key, 0.0) > now:
                continue
            if mail.key in self._filed:  # the mailbox did not move it: do not loop on it
                if not self._filed[mail.key]:
                    LOG.warning("%s is still in the folder after being filed; left alone", mail.key)
                    self._filed[mail.key] = True
                continue
            due.append(mail)
        return due

    def _in_meeting_order(
        self, due: list[FetchedMail], reads: dict[MessageKey, ReadMessage]
    ) -> list[FetchedMail]:
        """The messages that failed to be handled go last, and with them the later messages
        of their meetings; each group keeps the mailbox order."""
        behind: set[str] = set()
        ahead, last = [], []
        for mail in due:
            meetings = self._meetings(mail, reads.get(mail.key))
            if mail.key in self._suspects or meetings & behind:
                behind |= meetings
                last.append(mail)
            else:
                ahead.append(mail)
        return ahead + last

    def _held_back(self, mail: FetchedMail, reads: dict[MessageKey, ReadMessage]) -> bool:
        """An earlier message of one of its meetings failed and waits to be tried again."""
        now = self._clock().timestamp()
        meetings = self._meetings(mail, reads.get(mail.key))
        return any(
            meetings & self._holds.get(key, frozenset())
            for key, due_at in self._retry_at.items()
            if due_at > now and key != mail.key
        )

    def _meetings(self, mail: FetchedMail, read: ReadMessage | None) -> frozenset[str]:
        """The iCalendar UIDs the message is about (as read, or as it failed before)."""
        held = self._holds.get(mail.key, frozenset())
        if read is None:
            return held
        return held | {item.uid for item in read.objects if isinstance(item, Invitation)}

    def _look_up_together(self, mails: list[FetchedMail]) -> dict[MessageKey, ReadMessage]:
        """Each message not processed yet, read by the core, and one CRM look-up for the
        addresses of them all (``SyncService.handle_batch`` does the same for one batch;
        the daemon hands each read to ``SyncService.handle`` so it can stop in between)."""
        self._phase = LOOKING_UP
        return self.service.prepare([_item(mail) for mail in mails])

    def _handle(self, mail: FetchedMail, read: ReadMessage | None) -> None:
        self._phase = HANDLING
        item = _item(mail)
        try:
            handled = self.service.handle(item, self._clock(), read)
        except FatalError:
            raise
        except Exception as error:  # noqa: BLE001 - set aside or raised again, never lost
            self._holds[mail.key] = self._meetings(mail, read)
            self._set_aside(mail, error)
            return
        self._successes += 1
        self._suspects.pop(mail.key, None)
        self._log_decisions(mail, handled)
        self._observe(mail, handled)
        if self._on_handled is not None:
            self._on_handled(handled)
        self._dispose(mail, handled)

    def _set_aside(self, mail: FetchedMail, error: Exception) -> None:
        """A message whose handling raised goes last from now on. The failure is one of its
        attempts only when another message has gone through since it last failed (then the
        pass goes on); otherwise it may be an outage, and the error is raised again."""
        since = self._suspects.get(mail.key)
        self._suspects[mail.key] = self._successes
        if since is None or self._successes <= since:
            raise error
        reason = _summary(error)
        LOG.warning(
            "%s failed while others went through: %s",
            mail.key,
            reason,
            exc_info=not isinstance(error, PortError),
        )
        digest = hashlib.sha256(mail.raw).hexdigest()
        attempts = self.service.state.record_failure(mail.key, digest, reason, self._clock())
        self._after_failure(mail, attempts, reason, message_id=None)

    def _dispose(self, mail: FetchedMail, handled: Handled) -> None:
        """File the message to the folder of its outcome, or keep a refused one for later."""
        outcome = handled.outcome
        if outcome == "already-processed":  # committed before, not filed (a crash, a fault)
            seen = self.service.state.processed(mail.key)
            outcome = seen.outcome if seen is not None else "skipped"
        if outcome != "failed":
            self._file(mail, outcome)
            return
        seen = self.service.state.processed(mail.key)
        attempts = seen.attempts if seen is not None else self.max_attempts
        errors = [str(r["error"]) for r in handled.records if r.get("error")]
        message_id = next((r.get("message_id") for r in handled.records), None)
        self._holds.pop(mail.key, None)  # refused: a later message may be what lets it through
        self._after_failure(mail, attempts, "; ".join(errors) or "refused", message_id)

    def _after_failure(
        self, mail: FetchedMail, attempts: int, reason: str, message_id: str | None
    ) -> None:
        if attempts < self.max_attempts:
            self._retry_at[mail.key] = self._clock().timestamp() + self.failure_delay
            LOG.info(
                "%s: attempt %d of %d failed, retrying in %.0fs: %s",
                mail.key,
                attempts,
                self.max_attempts,
                self.failure_delay,
                reason,
            )
            return
        self._file(mail, "failed")
        self._retry_at.pop(mail.key, None)
        self._suspects.pop(mail.key, None)
        self.metrics.observe_quarantine()
        LOG.warning(
            "quarantined %s",
            _fields(
                mailbox=mail.key.source,
                mailbox_uid=mail.key.uid,
                message_id=message_id,
                attempts=attempts,
                reason=reason,
            ),
            extra={
                "mailbox": mail.key.source,
                "uidvalidity": mail.key.uidvalidity,
                "mailbox_uid": mail.key.uid,
                "message_id": message_id,
                "attempts": attempts,
                "reason": reason,
            },
        )

    def _file(self, mail: FetchedMail, outcome: str) -> None:
        """Filed at the end of the pass, with the other committed messages of its outcome."""
        self._pending.setdefault(outcome, []).append(mail.key)
        self._holds.pop(mail.key, None)

    def _file_pending(self) -> None:
        """File the pass's committed messages: one command per outcome folder. A message
        left unfiled (the mailbox failed, the process died) is in the state already: the
        next pass finds it processed and files it without handling it again."""
        self._phase = FILING
        try:
            for outcome, keys in self._pending.items():
                self.mailbox.file_away_all(keys, outcome)
                for key in keys:
                    self._filed[key] = False
        finally:
            self._pending = {}
            while len(self._filed) > FILED_MEMORY:
                del self._filed[next(iter(self._filed))]

    def _file_pending_after_error(self) -> None:
        """An error is on its way out of the pass: file what was committed before it, if
        the mailbox lets us; if not, the next pass does (the error that ended the pass is
        the one reported, and the phase stays the one it came from)."""
        phase = self._phase
        try:
            self._file_pending()
        except Exception as error:  # noqa: BLE001 - the error in flight is what counts
            LOG.warning("committed messages left unfiled until the next pass: %s", error)
        finally:
            self._phase = phase

    def _log_decisions(self, mail: FetchedMail, handled: Handled) -> None:
        for record in handled.records:
            fields = decision_fields(mail.key, record)
            level = logging.WARNING if record.get("error") else logging.INFO
            DECISIONS.log(level, "decision %s", _fields(**fields), extra=fields)
        if not handled.records:
            LOG.debug("%s: %s", mail.key, handled.outcome)

    def _observe(self, mail: FetchedMail, handled: Handled) -> None:
        delay = None
        if handled.outcome == "synced" and mail.received_at is not None:
            arrived = mail.received_at
            if arrived.tzinfo is None:  # IMAP libraries give INTERNALDATE as local time
                arrived = arrived.astimezone()
            delay = (self._clock() - arrived).total_seconds()
        decisions = [(str(r.get("outcome")), r.get("reason")) for r in handled.records]
        self.metrics.observe_message(handled.outcome, decisions, delay)

    # ------------------------------------------------------------------ waiting, signals

    def _announce_ready(self) -> None:
        if not self._ready:
            self._ready = True
            self.notifier.ready()

    def _watchdog_slice(self) -> float:
        interval = self.notifier.watchdog_interval
        return interval if interval else float("inf")

    def _pause(self, seconds: float) -> None:
        deadline = self._clock().timestamp() + seconds
        while not self._stop:
            remaining = deadline - self._clock().timestamp()
            if remaining <= 0:
                return
            self.notifier.watchdog()
            with self._interruptible():
                self._sleep(min(remaining, self._watchdog_slice()))

    @contextmanager
    def _interruptible(self) -> Iterator[None]:
        self._waiting = True
        try:
            if self._stop:  # the signal came just before
                raise _Interrupted
            yield
        finally:
            self._waiting = False

    @contextmanager
    def _signals_handled(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach the main thread only; request_stop() still works
            return
        previous = {
            signal.SIGTERM: signal.signal(signal.SIGTERM, self._on_signal),
            signal.SIGINT: signal.signal(signal.SIGINT, self._on_signal),
            signal.SIGHUP: signal.signal(signal.SIGHUP, signal.SIG_IGN),
        }
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        # No logging here: the signal may arrive while the main thread is writing a log
        # line, and a buffered stream refuses a re-entrant write.
        del frame
        if not self._stop:
            self._stop = True
            self._stop_signal = signal.Signals(number).name
        if self._waiting:
            raise _Interrupted


# ---------------------------------------------------------------------- log lines


def decision_fields(key: MessageKey, record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of one decision's log line (never a body, an address list or a secret)."""
    summary = record.get("summary")
    if isinstance(summary, str) and len(summary) > SUMMARY_MAX:
        summary = summary[: SUMMARY_MAX - 1] + "…"
    return {
        "outcome": record.get("outcome"),
        "reason": record.get("reason"),
        "message_id": record.get("message_id"),
        "mailbox": key.source,
        "uidvalidity": key.uidvalidity,
        "mailbox_uid": key.uid,
        "event_uid": record.get("uid"),
        "recurrence_id": record.get("recurrence_id"),
        "external_id": record.get("external_id"),
        "netsuite_id": record.get("netsuite_id"),
        "written": bool(record.get("written")),
        "error": record.get("error"),
        "summary": summary,
    }


def _fields(**fields: Any) -> str:
    """``key=value`` pairs; a value with a space, quote, '=' or control character is quoted
    as a JSON string (so a line break in a Subject stays ``\\n`` on one line)."""
    parts = []
    for name, value in fields.items():
        if value is None or value == "":
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        plain = text.isprintable() and not any(c in text for c in ' "=\\')
        parts.append(f"{name}={text if plain else json.dumps(text, ensure_ascii=False)}")
    return " ".join(parts)


def _summary(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if isinstance(error, PortError) else f"{type(error).__name__}: {text}"


def _moment(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _item(mail: FetchedMail) -> MailItem:
    return MailItem(mail.key, mail.raw, mail.received_at, ignored_parts=mail.ignored_parts)

"""``mailbot backfill``: the mail already in a folder, through the same engine as the daemon.

The daemon handles what arrives; a backfill handles what is there: the watched folder, or
any other (an "Archive", "Sent"), optionally only what reached it since a day.

Order and NetSuite's concurrency: the folder is walked oldest UID first, in batches of the
daemon's size. For each batch the messages are fetched (the same partial fetch), the CRM is
asked about all their addresses in one look-up (``SyncService.prepare``), then the messages
are handled one at a time, in mailbox order (``SyncService.handle``: decide, write, commit).
So an update is never handled before its invitation, and the robot never has more NetSuite
requests in flight than the client's limit (``[netsuite] concurrency``) allows.

Filing: a message of the watched folder is filed as the daemon files it (to the folder of
its outcome, or marked), right after its commit; one NetSuite refused stays for the daemon
to retry and, after ``max_attempts``, to quarantine. A message of any other folder stays
where it is: that folder is the user's archive, opened read-only.

Resuming: each message is committed on its own, under the key (``imap:<folder>``,
UIDVALIDITY, UID). A message already committed (synced or skipped) is not fetched again, so
running the same command after Ctrl-C, SIGTERM or a crash goes on where the last run
stopped, and a run after a complete one does nothing. A message NetSuite refused is tried
again. SIGINT and SIGTERM finish the current message and end the run (the caller exits 0);
a second signal ends the process at once, which is safe too (see above).
"""

from __future__ import annotations

import hashlib
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import FrameType
from typing import Any, Final, Protocol

from mailbot.core.pipeline import ReadMessage
from mailbot.ports import FetchedMail, MessageKey, PortError
from mailbot.service import Handled, MailItem, SyncService

LOG = logging.getLogger("mailbot.backfill")

ALREADY_PROCESSED: Final = "already-processed"
GONE: Final = "gone"  # expunged by someone else between listing and fetching
ERROR: Final = "error"  # handling raised; recorded as a failed attempt, tried on the next run
ERRORS_IN_A_ROW: Final = 3  # then the fault is not the messages' own: stop


class FolderMailbox(Protocol):
    """What a backfill needs of a mailbox folder (``mailbot.adapters.imap.ImapMailbox``)."""

    @property
    def source(self) -> str:
        """``MessageKey.source`` of the folder's messages ("imap:Archive")."""
        ...

    def message_keys(self, since: date | None = None) -> list[MessageKey]:
        """The folder's messages, oldest UID first; with ``since``, those that reached it
        on or after that day."""
        ...

    def fetch_messages(self, keys: Sequence[MessageKey]) -> list[FetchedMail]:
        """These messages, in the order given (one gone meanwhile is left out)."""
        ...

    def file_away(self, key: MessageKey, outcome: str) -> None: ...


class Progress(Protocol):
    """Where the progress is shown (``mailbot.adapters.progress``)."""

    def start(self, total: int, completed: int) -> None:
        """``total`` messages in the run's range, ``completed`` of them done before."""
        ...

    def advance(self, count: int = 1) -> None: ...

    def stop(self) -> None: ...


class NullProgress:
    """No progress shown."""

    def start(self, total: int, completed: int) -> None:
        pass

    def advance(self, count: int = 1) -> None:
        pass

    def stop(self) -> None:
        pass


@dataclass
class BackfillReport:
    """What a run did, kept up to date while it runs (an error leaves it as it stood)."""

    source: str
    since: date | None = None
    listed: int = 0  # messages in the folder's range (since the day)
    done_before: int = 0  # committed by an earlier run (or the daemon)
    outcomes: Counter[str] = field(default_factory=Counter)  # this run's, by message
    elapsed: float = 0.0
    stopped_by: str | None = None  # "SIGINT", "SIGTERM" or "asked to": the run was interrupted

    @property
    def handled(self) -> int:
        return sum(self.outcomes.values())

    @property
    def done(self) -> int:
        return self.done_before + self.handled

    @property
    def interrupted(self) -> bool:
        return self.stopped_by is not None

    def summary(self) -> str:
        """One line: what was done, by outcome, and how long it took."""
        since = f" since {self.since.isoformat()}" if self.since else ""
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(self.outcomes.items()))
        before = f"; {self.done_before} done by an earlier run" if self.done_before else ""
        return (
            f"backfill of {self.source}{since}: {self.handled} messages handled "
            f"in {_duration(self.elapsed)}{f' ({counts})' if counts else ''}{before}; "
            f"{self.done} of {self.listed} done"
        )


def utc_now() -> datetime:
    return datetime.now(UTC)


class Backfill:
    """One backfill of one folder (see the module docstring).

    ``file_messages``: file each message as the daemon does (the watched folder), or leave
    it where it is (any other folder). ``clock`` gives the decision time, ``timer`` measures
    the run (both replaceable in tests).
    """

    def __init__(
        self,
        mailbox: FolderMailbox,
        service: SyncService,
        *,
        file_messages: bool,
        since: date | None = None,
        batch: int = 50,
        progress: Progress | None = None,
        clock: Callable[[], datetime] = utc_now,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.mailbox = mailbox
        self.service = service
        self.file_messages = file_messages
        self.since = since
        self.batch = batch
        self.progress: Progress = progress or NullProgress()
        self.report = BackfillReport(mailbox.source, since)
        self._clock = clock
        self._timer = timer
        self._stop_signal: str | None = None
        self._stop = False
        self._errors_in_a_row = 0
        self._previous_handlers: dict[signal.Signals, Any] = {}

    def request_stop(self, reason: str = "asked to") -> None:
        """Finish the current message, then end the run (what SIGINT and SIGTERM do)."""
        if not self._stop:
            self._stop = True
            self._stop_signal = reason

    def run(self, emit: Callable[[Sequence[dict[str, Any]]], None]) -> BackfillReport:
        """Backfill the folder; ``emit`` gets each message's decision rows after its commit.

        Raises what the mailbox or the service raised and could not be set aside
        (``TemporaryError``, ``FatalError``, others); ``self.report`` then says how far it got.
        """
        started = self._timer()
        with self._signals_handled():
            try:
                pending = self._pending(self.mailbox.message_keys(self.since))
                LOG.info(
                    "backfill of %s%s: %d messages, %d done before, %d to handle, batches of %d",
                    self.report.source,
                    f" since {self.since.isoformat()}" if self.since else "",
                    self.report.listed,
                    self.report.done_before,
                    len(pending),
                    self.batch,
                )
                self.progress.start(self.report.listed, self.report.done_before)
                for batch in _chunks(pending, self.batch):
                    if self._stop:
                        break
                    self._handle_batch(batch, emit)
            finally:
                self.progress.stop()
                self.report.elapsed = self._timer() - started
                self.report.stopped_by = self._stop_signal
        return self.report

    # ------------------------------------------------------------------ the steps

    def _pending(self, keys: list[MessageKey]) -> list[MessageKey]:
        """The keys still to handle. A message committed before (synced or skipped) is not
        fetched again: an IMAP key (UIDVALIDITY, UID) names one message for good. One of
        the watched folder that a crash left unfiled is filed now, as the daemon would."""
        self.report.listed = len(keys)
        pending = []
        for key in keys:
            seen = self.service.state.processed(key)
            if seen is None or seen.outcome == "failed":
                pending.append(key)
                continue
            self.report.done_before += 1
            if self.file_messages:
                self.mailbox.file_away(key, seen.outcome)
        return pending

    def _handle_batch(
        self, keys: Sequence[MessageKey], emit: Callable[[Sequence[dict[str, Any]]], None]
    ) -> None:
        fetched = self.mailbox.fetch_messages(keys)
        if gone := len(keys) - len(fetched):
            self.report.outcomes[GONE] += gone
            self.progress.advance(gone)
        items = [_item(mail) for mail in fetched]
        reads = self.service.prepare(items)
        for item in items:
            if self._stop:
                return
            outcome = self._handle(item, reads.get(item.key), emit)
            self.report.outcomes[outcome] += 1
            self.progress.advance()

    def _handle(
        self,
        item: MailItem,
        read: ReadMessage | None,
        emit: Callable[[Sequence[dict[str, Any]]], None],
    ) -> str:
        """Handle, then file; the message's outcome. A fault of the outside world (a
        ``PortError``) ends the run; any other error is this message's, unless it repeats."""
        try:
            handled = self.service.handle(item, self._clock(), read)
        except PortError:
            raise
        except Exception as error:  # noqa: BLE001 - set aside, or raised again
            self._set_aside(item, error)
            return ERROR
        self._errors_in_a_row = 0
        if self.file_messages:
            self._file(handled)
        emit(decision_rows(handled))
        return handled.outcome

    def _set_aside(self, item: MailItem, error: Exception) -> None:
        """Count the error as a failed attempt of the message (a later run tries it again,
        ``mailbot status`` shows it); raise it again after several in a row."""
        self._errors_in_a_row += 1
        if self._errors_in_a_row >= ERRORS_IN_A_ROW:
            raise error
        LOG.warning("%s: %s: %s", item.key, type(error).__name__, error, exc_info=True)
        digest = hashlib.sha256(item.raw).hexdigest()
        reason = f"{type(error).__name__}: {error}"
        self.service.state.record_failure(item.key, digest, reason, self._clock())

    def _file(self, handled: Handled) -> None:
        outcome = handled.outcome
        if outcome == ALREADY_PROCESSED:  # committed meanwhile (the daemon), maybe not filed
            seen = self.service.state.processed(handled.key)
            outcome = seen.outcome if seen is not None else "skipped"
        if outcome != "failed":  # a refused one stays for the daemon's retries
            self.mailbox.file_away(handled.key, outcome)

    # ------------------------------------------------------------------ signals

    @contextmanager
    def _signals_handled(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach the main thread only; request_stop() still works
            return
        previous = {
            number: signal.getsignal(number) or signal.SIG_DFL
            for number in (signal.SIGINT, signal.SIGTERM)
        }
        self._previous_handlers = previous
        for number in previous:
            signal.signal(number, self._on_signal)
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        # No logging here: the signal may arrive while a log line is being written.
        del frame
        self.request_stop(signal.Signals(number).name)
        for restored, handler in self._previous_handlers.items():
            signal.signal(restored, handler)  # a second signal ends the process at once


def decision_rows(handled: Handled) -> tuple[dict[str, Any], ...]:
    """The message's decision records with where it lives: ``file`` ("imap:Archive/42",
    the table's first column), ``mailbox``, ``uidvalidity``, ``mailbox_uid``."""
    key = handled.key
    where = {
        "file": f"{key.source}/{key.uid}",
        "mailbox": key.source,
        "uidvalidity": key.uidvalidity,
        "mailbox_uid": key.uid,
    }
    return tuple({**record, **where} for record in handled.records)


def _chunks(keys: list[MessageKey], size: int) -> Iterator[list[MessageKey]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def _item(mail: FetchedMail) -> MailItem:
    return MailItem(mail.key, mail.raw, mail.received_at, ignored_parts=mail.ignored_parts)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"

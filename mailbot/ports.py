"""The ports: what the service needs from the outside world, as typing.Protocol.

Implementations say their technology (``NetSuiteDirectory``, ``SqliteStateStore``); the
service and the core know only these shapes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from mailbot.core.crm import DirectoryAnswer

Revision = tuple[int, datetime]


class Directory(Protocol):
    """CRM look-ups by e-mail address (batched and cached by the implementation)."""

    def lookup(self, addresses: Collection[str]) -> DirectoryAnswer:
        """Employees, contacts, companies of these addresses, and open opportunities."""
        ...


class Calendar(Protocol):
    """Where events are written. Every write is idempotent (upsert by external id)."""

    def upsert(self, external_id: str, body: dict[str, Any]) -> str:
        """Create or replace the event; returns the NetSuite internal id."""
        ...

    def patch(self, external_id: str, body: dict[str, Any]) -> str | None:
        """Change some fields of an existing event (attendees replaced as a whole).

        Returns the internal id when the system tells it, else None.
        """
        ...


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """What was last written for one instance (UID + RECURRENCE-ID) of an event."""

    external_id: str
    uid: str
    recurrence_key: str  # "" for the master / a single event, else the instance's UTC stamp
    netsuite_id: str | None
    revision: Revision
    body_hash: str
    body: dict[str, Any]
    cancelled: bool = False
    reply_revisions: dict[str, Revision] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MessageKey:
    """Where a message came from: a mailbox folder (IMAP) or a file (replay)."""

    source: str  # "imap:INBOX" or "file"
    uidvalidity: int
    uid: str  # the IMAP UID, or the file path for replays


@dataclass(frozen=True, slots=True)
class ProcessedMessage:
    key: MessageKey
    message_id: str | None
    content_hash: str
    outcome: str
    attempts: int
    processed_at: datetime
    last_error: str | None = None  # why the last attempt failed (outcome "failed")


@dataclass(frozen=True, slots=True)
class MailboxCursor:
    """Where the last pass over a mailbox folder ended."""

    source: str
    uidvalidity: int
    last_uid: int  # the highest UID seen under this UIDVALIDITY
    passed_at: datetime


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """Everything one message changed, committed in one transaction."""

    key: MessageKey
    message_id: str | None
    content_hash: str
    outcome: str  # the message's summary outcome: "synced", "skipped", "failed"
    processed_at: datetime
    events: Sequence[StoredEvent] = ()
    decisions: Sequence[dict[str, Any]] = ()  # the decision log: one record per decision


class StateStore(Protocol):
    """Durable state: processed messages, the event map, replies, the decision log."""

    def processed(self, key: MessageKey) -> ProcessedMessage | None: ...

    def processed_content(self, content_hash: str) -> ProcessedMessage | None: ...

    def processed_copy(self, key: MessageKey, content_hash: str) -> ProcessedMessage | None:
        """A message of the key's folder under another UIDVALIDITY with this content and a
        final outcome (synced or skipped)."""
        ...

    def cursor(self, source: str) -> MailboxCursor | None: ...

    def record_pass(self, source: str, uidvalidity: int, last_uid: int, at: datetime) -> None:
        """A pass over the folder ended (its UIDVALIDITY, highest UID seen, the time)."""
        ...

    def events(self, external_ids: Collection[str]) -> dict[str, StoredEvent]: ...

    def series_events(self, uid: str) -> list[StoredEvent]: ...

    def record(self, record: MessageRecord) -> None: ...

    def record_failure(self, key: MessageKey, content_hash: str, detail: str, at: datetime) -> int:
        """Count a failed attempt; returns the number of attempts so far."""
        ...

    def decision_log(
        self,
        *,
        message_id: str | None = None,
        uid: str | None = None,
        outcome: str | None = None,
        reason: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]: ...


class PortError(Exception):
    """Root of the errors an adapter raises through a port, grouped by what the caller does."""


class TemporaryError(PortError):
    """Worth trying again later (a server busy or down, a timeout): the message stays unread."""


class RejectedError(PortError):
    """The outside system refused this piece of work for good: the message fails."""


class FatalError(PortError):
    """Nothing can work until an admin acts (credentials refused): stop."""


@dataclass(frozen=True, slots=True)
class FetchedMail:
    """One message as fetched from a mailbox: what the core needs, and where it lives.

    ``raw`` holds the headers and the calendar parts (a partial fetch rebuilds a message
    without the other attachments); ``size`` is the whole message's size on the server.
    """

    key: MessageKey
    raw: bytes
    size: int
    received_at: datetime | None = None
    ignored_parts: int = 0  # attachments left on the server


class Mailbox(Protocol):
    """The shared mailbox: new messages in, each filed away once its decision is committed."""

    @property
    def source(self) -> str:
        """``MessageKey.source`` of the watched folder's messages."""
        ...

    @property
    def uidvalidity(self) -> int | None:
        """The watched folder's UIDVALIDITY as last seen (None before the first fetch)."""
        ...

    def fetch_new(self, limit: int) -> list[FetchedMail]:
        """Messages waiting in the watched folder (oldest first, at most ``limit``)."""
        ...

    def file_away_all(self, keys: Sequence[MessageKey], outcome: str) -> None:
        """Move these messages to the folder of their outcome (or flag them), after their
        commits, with one command."""
        ...

    def wait_for_mail(self, timeout: float) -> bool:
        """Block until new mail may have arrived (IDLE) or the timeout; True when woken."""
        ...

    def close(self) -> None: ...

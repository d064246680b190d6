"""The ``StateStore`` port on SQLite (standard library): one file, WAL mode, versioned schema.

What is kept:

* ``processed_messages``: one row per message seen (mailbox folder, UIDVALIDITY, UID), with
  its Message-ID, content hash, outcome and the number of attempts;
* ``events``: the event map, one row per instance (UID + RECURRENCE-ID) that was written,
  with its NetSuite id, revision (SEQUENCE, DTSTAMP), payload hash and payload;
* ``reply_revisions``: the last reply applied per attendee of an instance;
* ``decisions``: the decision log, every decision as its full JSON record plus the columns it
  is searched by.

Everything one message changed is committed in one ``BEGIN IMMEDIATE`` transaction
(:meth:`SqliteStateStore.record`), so a crash leaves either all of it or none of it.

The schema version lives in the ``meta`` table. :data:`MIGRATIONS` is the ordered list of
scripts, each applied in its own transaction when the store is opened; a database written
by a newer version of mailbot is refused with :class:`StateSchemaError`.

Times are stored as ISO 8601 UTC text of fixed width (so text order is time order) and are
read back as aware UTC datetimes; ``datetime.min`` in UTC ("no DTSTAMP") round-trips.

Durability: ``synchronous=FULL``. In WAL mode ``NORMAL`` survives a crash of the process,
but a power loss may undo the last commits; mailbot moves the message in the mailbox (on
another machine) right after the commit, so the commit has to be on disk first. The cost is
one fsync per message, which is nothing at the rate invitations arrive.

Errors: every ``sqlite3`` error is translated here. :class:`StateStorageError` (locked, busy,
disk full, read-only, I/O) is worth retrying later; :class:`StateSchemaError` means the file
is not a state database this code can use; anything else is a :class:`StateError`. Errors
that are not SQLite's (a decision that cannot be serialised to JSON, a naive datetime) roll
the transaction back and propagate unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from mailbot.ports import (
    MailboxCursor,
    MessageKey,
    MessageRecord,
    ProcessedMessage,
    Revision,
    StoredEvent,
)

logger = logging.getLogger(__name__)

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SqliteStateStore",
    "StateError",
    "StateSchemaError",
    "StateStorageError",
]


class StateError(Exception):
    """Root of the state store's errors. ``code`` is SQLite's error name, when there is one."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class StateSchemaError(StateError):
    """The file is not a state database this code can use (newer schema, foreign file)."""


class StateStorageError(StateError):
    """The database cannot be used right now (locked, disk full, read-only, I/O): transient."""


# Primary result codes (the low byte of an extended code).
_TRANSIENT_CODES: Final = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_PROTOCOL,
    }
)
_SCHEMA_CODES: Final = frozenset({sqlite3.SQLITE_NOTADB})

# One tuple of statements per schema version; version N is MIGRATIONS[N - 1]. Append, never
# edit: a database at version N has run exactly the first N entries.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE processed_messages (
            source TEXT NOT NULL,
            uidvalidity INTEGER NOT NULL,
            uid TEXT NOT NULL,
            message_id TEXT,
            content_hash TEXT NOT NULL,
            outcome TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            last_error TEXT,
            processed_at TEXT NOT NULL,
            PRIMARY KEY (source, uidvalidity, uid)
        )
        """,
        "CREATE INDEX processed_messages_content_hash"
        " ON processed_messages (content_hash, processed_at)",
        "CREATE INDEX processed_messages_message_id ON processed_messages (message_id)",
        """
        CREATE TABLE events (
            external_id TEXT PRIMARY KEY,
            uid TEXT NOT NULL,
            recurrence_key TEXT NOT NULL DEFAULT '',
            netsuite_id TEXT,
            sequence INTEGER NOT NULL,
            dtstamp TEXT NOT NULL,
            body_hash TEXT NOT NULL,
            body TEXT NOT NULL,
            cancelled INTEGER NOT NULL DEFAULT 0 CHECK (cancelled IN (0, 1)),
            updated_at TEXT NOT NULL
        )
        """,
        "CREATE INDEX events_uid ON events (uid, recurrence_key)",
        """
        CREATE TABLE reply_revisions (
            external_id TEXT NOT NULL REFERENCES events (external_id) ON DELETE CASCADE,
            attendee TEXT NOT NULL,
            sequence INTEGER NOT NULL,
            dtstamp TEXT NOT NULL,
            PRIMARY KEY (external_id, attendee)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE decisions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            logged_at TEXT NOT NULL,
            source TEXT NOT NULL,
            uid_in_mailbox TEXT NOT NULL,
            message_id TEXT,
            event_uid TEXT,
            recurrence_id TEXT,
            outcome TEXT,
            reason TEXT,
            detail TEXT,
            netsuite_id TEXT,
            written INTEGER NOT NULL DEFAULT 0 CHECK (written IN (0, 1)),
            record TEXT NOT NULL
        )
        """,
        "CREATE INDEX decisions_message_id ON decisions (message_id)",
        "CREATE INDEX decisions_event_uid ON decisions (event_uid)",
        "CREATE INDEX decisions_outcome ON decisions (outcome)",
        "CREATE INDEX decisions_reason ON decisions (reason)",
    ),
    (
        """
        CREATE TABLE mailbox_cursors (
            source TEXT PRIMARY KEY,
            uidvalidity INTEGER NOT NULL,
            last_uid INTEGER NOT NULL DEFAULT 0,
            passed_at TEXT NOT NULL
        )
        """,
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

_IN_CHUNK: Final = 500  # ids per IN (...) query, well below SQLite's variable limit
_MEMORY: Final = ":memory:"
_VERSION_KEY: Final = "schema_version"

_MESSAGE_COLUMNS: Final = (
    "source, uidvalidity, uid, message_id, content_hash, outcome, attempts, processed_at,"
    " last_error"
)
_EVENT_COLUMNS: Final = (
    "external_id, uid, recurrence_key, netsuite_id, sequence, dtstamp, body_hash, body, cancelled"
)


class SqliteStateStore:
    """Durable state in one SQLite file (``":memory:"`` for a throwaway store, without WAL).

    Thread-safe: one connection, every call under one lock. The daemon writes from its own
    thread; a metrics endpoint may read from another.
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0) -> None:
        self._path = os.fspath(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        with self._lock, _translated(f"cannot open the state database {self._path}"):
            db = sqlite3.connect(
                self._path,
                timeout=busy_timeout,
                isolation_level=None,  # autocommit: the transactions are explicit
                check_same_thread=False,
            )
            try:
                _configure(db, self._path, busy_timeout)
                _migrate(db, self._path)
            except BaseException:
                db.close()
                raise
            self._db = db

    # ------------------------------------------------------------------ lifecycle

    @property
    def path(self) -> str:
        return self._path

    def close(self) -> None:
        """Close the connection; further calls raise ``StateError``. Idempotent."""
        with self._lock:
            db, self._db = self._db, None
            if db is not None:
                with _translated("cannot close the state database"):
                    db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ processed messages

    def processed(self, key: MessageKey) -> ProcessedMessage | None:
        with self._transaction("BEGIN", "cannot read a processed message") as db:
            row = db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM processed_messages"  # noqa: S608
                " WHERE source = ? AND uidvalidity = ? AND uid = ?",
                (key.source, key.uidvalidity, key.uid),
            ).fetchone()
        return _processed_message(row) if row is not None else None

    def processed_content(self, content_hash: str) -> ProcessedMessage | None:
        """The most recently processed message with this content hash."""
        with self._transaction("BEGIN", "cannot read a processed message") as db:
            row = db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM processed_messages"  # noqa: S608
                " WHERE content_hash = ? ORDER BY processed_at DESC, rowid DESC LIMIT 1",
                (content_hash,),
            ).fetchone()
        return _processed_message(row) if row is not None else None

    def processed_copy(self, key: MessageKey, content_hash: str) -> ProcessedMessage | None:
        """A message of the same folder under another UIDVALIDITY with the same content (so
        the same Message-ID) that reached a final outcome (synced or skipped): the newest,
        else None. A folder whose UIDVALIDITY changed shows its old messages under new keys;
        this recognises them. (Two equal copies under one UIDVALIDITY are two deliveries,
        each decided: the second is ``unchanged``.)
        """
        with self._transaction("BEGIN", "cannot read a processed message") as db:
            row = db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM processed_messages"  # noqa: S608
                " WHERE content_hash = ? AND source = ? AND uidvalidity != ?"
                " AND outcome != 'failed'"
                " ORDER BY processed_at DESC, rowid DESC LIMIT 1",
                (content_hash, key.source, key.uidvalidity),
            ).fetchone()
        return _processed_message(row) if row is not None else None

    def quarantined(self, min_attempts: int) -> list[ProcessedMessage]:
        """Failed messages with at least ``min_attempts`` attempts, oldest first."""
        with self._transaction("BEGIN", "cannot read the quarantined messages") as db:
            rows = db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM processed_messages"  # noqa: S608
                " WHERE outcome = 'failed' AND attempts >= ?"
                " ORDER BY processed_at, source, uidvalidity, uid",
                (min_attempts,),
            ).fetchall()
        return [_processed_message(row) for row in rows]

    def record_failure(self, key: MessageKey, content_hash: str, detail: str, at: datetime) -> int:
        """Count a failed attempt (outcome "failed", ``last_error`` = detail); the attempts."""
        processed_at = _utc_text(at)
        with self._transaction("BEGIN IMMEDIATE", "cannot record a failure") as db:
            db.execute(
                "INSERT INTO processed_messages"
                " (source, uidvalidity, uid, content_hash, outcome, attempts, last_error,"
                "  processed_at)"
                " VALUES (?, ?, ?, ?, 'failed', 1, ?, ?)"
                " ON CONFLICT (source, uidvalidity, uid) DO UPDATE SET"
                "  content_hash = excluded.content_hash, outcome = 'failed',"
                "  attempts = processed_messages.attempts + 1,"
                "  last_error = excluded.last_error, processed_at = excluded.processed_at",
                (key.source, key.uidvalidity, key.uid, content_hash, detail, processed_at),
            )
            (attempts,) = db.execute(
                "SELECT attempts FROM processed_messages"
                " WHERE source = ? AND uidvalidity = ? AND uid = ?",
                (key.source, key.uidvalidity, key.uid),
            ).fetchone()
        return int(attempts)

    # ------------------------------------------------------------------ mailbox cursors

    def cursor(self, source: str) -> MailboxCursor | None:
        """Where the last pass over this folder ended (None before the first pass)."""
        with self._transaction("BEGIN", "cannot read the mailbox cursor") as db:
            row = db.execute(
                "SELECT source, uidvalidity, last_uid, passed_at FROM mailbox_cursors"
                " WHERE source = ?",
                (source,),
            ).fetchone()
        return _cursor(row) if row is not None else None

    def cursors(self) -> list[MailboxCursor]:
        with self._transaction("BEGIN", "cannot read the mailbox cursors") as db:
            rows = db.execute(
                "SELECT source, uidvalidity, last_uid, passed_at FROM mailbox_cursors ORDER BY 1"
            ).fetchall()
        return [_cursor(row) for row in rows]

    def record_pass(self, source: str, uidvalidity: int, last_uid: int, at: datetime) -> None:
        """A pass over the folder ended: its UIDVALIDITY, the highest UID seen under it (kept
        when higher; reset when the UIDVALIDITY changed) and the time."""
        with self._transaction("BEGIN IMMEDIATE", "cannot record a pass") as db:
            db.execute(
                "INSERT INTO mailbox_cursors (source, uidvalidity, last_uid, passed_at)"
                " VALUES (?, ?, ?, ?)"
                " ON CONFLICT (source) DO UPDATE SET"
                "  last_uid = CASE WHEN mailbox_cursors.uidvalidity = excluded.uidvalidity"
                "   THEN max(mailbox_cursors.last_uid, excluded.last_uid)"
                "   ELSE excluded.last_uid END,"
                "  uidvalidity = excluded.uidvalidity, passed_at = excluded.passed_at",
                (source, uidvalidity, last_uid, _utc_text(at)),
            )

    # ------------------------------------------------------------------ the event map

    def events(self, external_ids: Collection[str]) -> dict[str, StoredEvent]:
        """The stored events among these external ids (absent ids are left out)."""
        wanted = list(dict.fromkeys(external_ids))
        found: dict[str, StoredEvent] = {}
        with self._transaction("BEGIN", "cannot read events") as db:
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                marks = ", ".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT {_EVENT_COLUMNS} FROM events"  # noqa: S608
                    f" WHERE external_id IN ({marks})",
                    chunk,
                ).fetchall()
                replies = _reply_revisions(db, f"external_id IN ({marks})", chunk)
                for row in rows:
                    event = _stored_event(row, replies.get(row[0], {}))
                    found[event.external_id] = event
        return found

    def series_events(self, uid: str) -> list[StoredEvent]:
        """Every stored instance of this UID, the master ("" recurrence key) first."""
        with self._transaction("BEGIN", "cannot read events") as db:
            rows = db.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE uid = ?"  # noqa: S608
                " ORDER BY recurrence_key, external_id",
                (uid,),
            ).fetchall()
            replies = _reply_revisions(
                db, "external_id IN (SELECT external_id FROM events WHERE uid = ?)", (uid,)
            )
        return [_stored_event(row, replies.get(row[0], {})) for row in rows]

    # ------------------------------------------------------------------ one message

    def record(self, record: MessageRecord) -> None:
        """Everything one message changed, in one transaction: all of it or none of it.

        The processed message is upserted (attempts + 1). Each event is upserted; its reply
        revisions are replaced by the event's map, which is the full current map. A
        ``netsuite_id`` of None keeps the id already stored. Every decision is appended to
        the log.
        """
        key = record.key
        processed_at = _utc_text(record.processed_at)
        with self._transaction("BEGIN IMMEDIATE", "cannot record a message") as db:
            db.execute(
                "INSERT INTO processed_messages"
                " (source, uidvalidity, uid, message_id, content_hash, outcome, attempts,"
                "  last_error, processed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)"
                " ON CONFLICT (source, uidvalidity, uid) DO UPDATE SET"
                "  message_id = coalesce(excluded.message_id, processed_messages.message_id),"
                "  content_hash = excluded.content_hash, outcome = excluded.outcome,"
                "  attempts = processed_messages.attempts + 1,"
                "  last_error = CASE WHEN excluded.outcome = 'failed'"
                "   THEN coalesce(excluded.last_error, processed_messages.last_error) END,"
                "  processed_at = excluded.processed_at",
                (
                    key.source,
                    key.uidvalidity,
                    key.uid,
                    record.message_id,
                    record.content_hash,
                    record.outcome,
                    _last_error(record),
                    processed_at,
                ),
            )
            for event in record.events:
                _upsert_event(db, event, processed_at)
            db.executemany(
                "INSERT INTO decisions"
                " (logged_at, source, uid_in_mailbox, message_id, event_uid, recurrence_id,"
                "  outcome, reason, detail, netsuite_id, written, record)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _decision_rows(record, processed_at),
            )

    # ------------------------------------------------------------------ the decision log

    def decision_log(
        self,
        *,
        message_id: str | None = None,
        uid: str | None = None,
        outcome: str | None = None,
        reason: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Logged decisions, newest first, each its stored record plus ``logged_at``.

        ``uid`` is the event's UID (iCalendar), not the message's UID in the mailbox.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        filters = {"message_id": message_id, "event_uid": uid, "outcome": outcome, "reason": reason}
        used = {column: value for column, value in filters.items() if value is not None}
        where = " AND ".join(f"{column} = ?" for column in used) or "1"
        with self._transaction("BEGIN", "cannot read the decision log") as db:
            rows = db.execute(
                f"SELECT logged_at, record FROM decisions WHERE {where}"  # noqa: S608
                " ORDER BY id DESC LIMIT ?",
                (*used.values(), limit),
            ).fetchall()
        entries = []
        for logged_at, text in rows:
            entry: dict[str, Any] = json.loads(text)
            entry["logged_at"] = _utc_datetime(logged_at).isoformat()
            entries.append(entry)
        return entries

    def counts(self) -> dict[str, Any]:
        """Messages (total and by outcome), events, and decisions by outcome."""
        with self._transaction("BEGIN", "cannot count the state") as db:
            (messages,) = db.execute("SELECT count(*) FROM processed_messages").fetchone()
            by_outcome = db.execute(
                "SELECT outcome, count(*) FROM processed_messages GROUP BY outcome ORDER BY 1"
            ).fetchall()
            (events,) = db.execute("SELECT count(*) FROM events").fetchone()
            decisions = db.execute(
                "SELECT outcome, count(*) FROM decisions WHERE outcome IS NOT NULL"
                " GROUP BY outcome ORDER BY 1"
            ).fetchall()
        return {
            "messages": int(messages),
            "by_outcome": {str(name): int(n) for name, n in by_outcome},
            "events": int(events),
            "decisions_by_outcome": {str(name): int(n) for name, n in decisions},
        }

    # ------------------------------------------------------------------ internals

    @contextmanager
    def _transaction(self, begin: str, action: str) -> Iterator[sqlite3.Connection]:
        """Under the lock, one transaction: committed at the end, rolled back on any error."""
        with self._lock, _translated(action):
            db = self._db
            if db is None:
                raise StateError(f"{action}: the state store is closed")
            db.execute(begin)
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                with suppress(sqlite3.Error):
                    db.rollback()
                raise


# ---------------------------------------------------------------------- opening


def _configure(db: sqlite3.Connection, path: str, busy_timeout: float) -> None:
    db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    db.execute("PRAGMA foreign_keys = ON")
    if path != _MEMORY:
        (mode,) = db.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            logger.warning(
                "state database %s: journal mode %s, not WAL (does the file system support"
                " shared memory?); readers will block the writer",
                path,
                mode,
            )
    db.execute("PRAGMA synchronous = FULL")


def _migrate(db: sqlite3.Connection, path: str) -> None:
    """Apply the pending migrations, each in its own transaction, re-checking under lock."""
    while True:
        db.execute("BEGIN IMMEDIATE")
        try:
            version = _schema_version(db, path)
            if version == SCHEMA_VERSION:
                db.execute("COMMIT")
                return
            for statement in MIGRATIONS[version]:
                db.execute(statement)
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (_VERSION_KEY, str(version + 1)),
            )
            db.execute("COMMIT")
        except BaseException:
            with suppress(sqlite3.Error):
                db.rollback()
            raise
        logger.info("state database %s: schema version %d", path, version + 1)


def _schema_version(db: sqlite3.Connection, path: str) -> int:
    tables = {
        name
        for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    }
    if "meta" not in tables:
        if tables:
            raise StateSchemaError(
                f"{path} is an SQLite database but not mailbot's state (no meta table);"
                " point the state path at another file"
            )
        return 0
    row = db.execute("SELECT value FROM meta WHERE key = ?", (_VERSION_KEY,)).fetchone()
    try:
        version = int(row[0]) if row is not None else -1
    except ValueError:
        version = -1
    if version < 0:
        raise StateSchemaError(f"{path}: the meta table has no valid schema version")
    if version > SCHEMA_VERSION:
        raise StateSchemaError(
            f"{path} has schema version {version}, newer than this mailbot knows"
            f" ({SCHEMA_VERSION}); upgrade mailbot or use another state file"
        )
    return version


# ---------------------------------------------------------------------- errors


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """Turn ``sqlite3`` errors into ``StateError`` and its kinds."""
    try:
        yield
    except sqlite3.Error as error:
        raise _state_error(error, action) from error


def _state_error(error: sqlite3.Error, action: str) -> StateError:
    code: int | None = getattr(error, "sqlite_errorcode", None)
    name: str | None = getattr(error, "sqlite_errorname", None)
    message = f"{action}: {error}"
    primary = code & 0xFF if code is not None else None
    if primary in _TRANSIENT_CODES:
        return StateStorageError(message, code=name)
    if primary in _SCHEMA_CODES:
        return StateSchemaError(message, code=name)
    return StateError(message, code=name)


# ---------------------------------------------------------------------- rows and values


def _upsert_event(db: sqlite3.Connection, event: StoredEvent, updated_at: str) -> None:
    sequence, dtstamp = event.revision
    db.execute(
        "INSERT INTO events"
        " (external_id, uid, recurrence_key, netsuite_id, sequence, dtstamp, body_hash, body,"
        "  cancelled, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (external_id) DO UPDATE SET"
        "  uid = excluded.uid, recurrence_key = excluded.recurrence_key,"
        "  netsuite_id = coalesce(excluded.netsuite_id, events.netsuite_id),"
        "  sequence = excluded.sequence, dtstamp = excluded.dtstamp,"
        "  body_hash = excluded.body_hash, body = excluded.body,"
        "  cancelled = excluded.cancelled, updated_at = excluded.updated_at",
        (
            event.external_id,
            event.uid,
            event.recurrence_key,
            event.netsuite_id,
            int(sequence),
            _utc_text(dtstamp),
            event.body_hash,
            _json(event.body),
            int(event.cancelled),
            updated_at,
        ),
    )
    db.execute("DELETE FROM reply_revisions WHERE external_id = ?", (event.external_id,))
    db.executemany(
        "INSERT INTO reply_revisions (external_id, attendee, sequence, dtstamp)"
        " VALUES (?, ?, ?, ?)",
        [
            (event.external_id, attendee, int(seq), _utc_text(stamp))
            for attendee, (seq, stamp) in event.reply_revisions.items()
        ],
    )


def _decision_rows(record: MessageRecord, logged_at: str) -> Iterator[tuple[Any, ...]]:
    """One row per decision; serialised lazily, so a bad one fails inside the transaction."""
    for decision in record.decisions:
        yield (
            logged_at,
            record.key.source,
            record.key.uid,
            _text(decision.get("message_id")) or record.message_id,
            _text(decision.get("uid")),
            _text(decision.get("recurrence_id")),
            _text(decision.get("outcome")),
            _text(decision.get("reason")),
            _text(decision.get("detail")),
            _text(decision.get("netsuite_id")),
            int(bool(decision.get("written"))),
            _json(decision),
        )


def _reply_revisions(
    db: sqlite3.Connection, where: str, parameters: Sequence[Any]
) -> dict[str, dict[str, Revision]]:
    replies: dict[str, dict[str, Revision]] = {}
    rows = db.execute(
        "SELECT external_id, attendee, sequence, dtstamp FROM reply_revisions"  # noqa: S608
        f" WHERE {where} ORDER BY external_id, attendee",
        parameters,
    )
    for external_id, attendee, sequence, dtstamp in rows:
        replies.setdefault(external_id, {})[attendee] = (int(sequence), _utc_datetime(dtstamp))
    return replies


def _stored_event(row: Sequence[Any], replies: Mapping[str, Revision]) -> StoredEvent:
    (
        external_id,
        uid,
        recurrence_key,
        netsuite_id,
        sequence,
        dtstamp,
        body_hash,
        body,
        cancelled,
    ) = row
    return StoredEvent(
        external_id=external_id,
        uid=uid,
        recurrence_key=recurrence_key,
        netsuite_id=netsuite_id,
        revision=(int(sequence), _utc_datetime(dtstamp)),
        body_hash=body_hash,
        body=json.loads(body),
        cancelled=bool(cancelled),
        reply_revisions=dict(replies),
    )


def _last_error(record: MessageRecord) -> str | None:
    """The errors of a failed message's decisions (what NetSuite said), else None."""
    if record.outcome != "failed":
        return None
    errors = [str(d["error"]) for d in record.decisions if d.get("error")]
    return "; ".join(errors) or None


def _cursor(row: Sequence[Any]) -> MailboxCursor:
    source, uidvalidity, last_uid, passed_at = row
    return MailboxCursor(source, int(uidvalidity), int(last_uid), _utc_datetime(passed_at))


def _processed_message(row: Sequence[Any]) -> ProcessedMessage:
    (
        source,
        uidvalidity,
        uid,
        message_id,
        content_hash,
        outcome,
        attempts,
        processed_at,
        last_error,
    ) = row
    return ProcessedMessage(
        key=MessageKey(source=source, uidvalidity=int(uidvalidity), uid=uid),
        message_id=message_id,
        content_hash=content_hash,
        outcome=outcome,
        attempts=int(attempts),
        processed_at=_utc_datetime(processed_at),
        last_error=last_error,
    )


def _utc_text(value: datetime) -> str:
    """Fixed-width ISO 8601 in UTC (text order is time order); naive datetimes are refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: the state stores aware times")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _utc_datetime(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _json(value: Any) -> str:
    """Strict JSON (no NaN, no fallback for unknown types), key order kept."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))

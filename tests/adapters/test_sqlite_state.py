"""The SQLite state store on real database files (no mocks)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.adapters import sqlite_state
from mailbot.adapters.sqlite_state import (
    SCHEMA_VERSION,
    SqliteStateStore,
    StateError,
    StateSchemaError,
    StateStorageError,
)
from mailbot.ports import (
    MessageKey,
    MessageRecord,
    ProcessedMessage,
    Revision,
    StateStore,
    StoredEvent,
)

EARLIEST = datetime.min.replace(tzinfo=UTC)
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
PARIS_WINTER = timezone(timedelta(hours=1))


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStateStore]:
    with SqliteStateStore(db_path) as opened:
        yield opened


def key(uid: str | int, source: str = "imap:INBOX", uidvalidity: int = 7) -> MessageKey:
    return MessageKey(source=source, uidvalidity=uidvalidity, uid=str(uid))


def event(
    external_id: str = "mailbot-abc",
    *,
    uid: str = "abc@example.com",
    recurrence_key: str = "",
    netsuite_id: str | None = "101",
    revision: Revision = (0, T0),
    body: dict[str, Any] | None = None,
    cancelled: bool = False,
    replies: dict[str, Revision] | None = None,
) -> StoredEvent:
    body = body if body is not None else {"title": "Quarterly review", "externalId": external_id}
    return StoredEvent(
        external_id=external_id,
        uid=uid,
        recurrence_key=recurrence_key,
        netsuite_id=netsuite_id,
        revision=revision,
        body_hash=f"hash-of-{external_id}-{revision[0]}",
        body=body,
        cancelled=cancelled,
        reply_revisions=replies or {},
    )


def decision(outcome: str = "create", reason: str | None = None, **more: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "file": "imap:INBOX/1",
        "outcome": outcome,
        "reason": reason,
        "detail": "",
        "uid": "abc@example.com",
        "recurrence_id": None,
        "netsuite": {"title": "Quarterly review"},
    }
    entry.update(more)
    return entry


def message(
    uid: str | int,
    *,
    message_id: str | None = None,
    content_hash: str | None = None,
    outcome: str = "synced",
    at: datetime = T0,
    events: tuple[StoredEvent, ...] = (),
    decisions: tuple[dict[str, Any], ...] = (),
) -> MessageRecord:
    return MessageRecord(
        key=key(uid),
        message_id=message_id if message_id is not None else f"<{uid}@mail.example.com>",
        content_hash=content_hash or f"content-{uid}",
        outcome=outcome,
        processed_at=at,
        events=events,
        decisions=decisions,
    )


def raw(path: Path) -> sqlite3.Connection:
    """A second, plain connection to look at the file as SQLite sees it."""
    return sqlite3.connect(path, isolation_level=None)


def schema_version(path: Path) -> int:
    with raw(path) as db:
        (value,) = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(value)


# ----------------------------------------------------------------------------- round trips


def test_it_is_a_state_store(store: SqliteStateStore) -> None:
    port: StateStore = store  # checked by mypy against the protocol
    assert port.processed(key(1)) is None


def test_processed_message_round_trip(store: SqliteStateStore) -> None:
    at = datetime(2025, 3, 3, 10, 30, 15, 123456, tzinfo=PARIS_WINTER)
    store.record(message(42, message_id="<m42@x>", content_hash="h42", outcome="skipped", at=at))

    got = store.processed(key(42))

    assert got == ProcessedMessage(
        key=key(42),
        message_id="<m42@x>",
        content_hash="h42",
        outcome="skipped",
        attempts=1,
        processed_at=at,
    )
    assert got.processed_at.utcoffset() == timedelta(0)
    assert store.processed(key(42, uidvalidity=8)) is None
    assert store.processed(key(42, source="file")) is None


def test_processed_content_is_the_most_recent(store: SqliteStateStore) -> None:
    store.record(message(1, content_hash="same", at=T0))
    store.record(message(3, content_hash="same", at=T0 + timedelta(hours=2)))
    store.record(message(2, content_hash="same", at=T0 + timedelta(hours=1)))

    latest = store.processed_content("same")

    assert latest is not None and latest.key == key(3)
    assert store.processed_content("other") is None


def test_a_copy_is_found_under_another_uidvalidity_only(store: SqliteStateStore) -> None:
    store.record(message(1, content_hash="same", at=T0))
    store.record_failure(key(2), "broken", "NetSuite said 400", T0)

    renumbered = key(5, uidvalidity=8)
    copy = store.processed_copy(renumbered, "same")

    assert copy is not None and copy.key == key(1) and copy.outcome == "synced"
    assert store.processed_copy(key(9), "same") is None  # same UIDVALIDITY: a new delivery
    assert store.processed_copy(key(5, source="imap:Other", uidvalidity=8), "same") is None
    assert store.processed_copy(renumbered, "broken") is None  # failed: to be tried again


def test_the_last_error_is_kept_with_a_failed_message(store: SqliteStateStore) -> None:
    store.record_failure(key(2), "hash", "NetSuite said 400: bad field", T0)

    failed = store.processed(key(2))

    assert failed is not None and failed.last_error == "NetSuite said 400: bad field"
    refused = {"outcome": "create", "error": "NetSuite said 400: no such field"}
    store.record(message(2, content_hash="hash", outcome="failed", decisions=(refused,)))
    again = store.processed(key(2))
    assert again is not None and again.last_error == "NetSuite said 400: no such field"
    store.record(message(2, content_hash="hash"))
    synced = store.processed(key(2))
    assert synced is not None and synced.last_error is None


def test_a_pass_keeps_the_highest_uid_of_its_uidvalidity(store: SqliteStateStore) -> None:
    assert store.cursor("imap:INBOX") is None
    store.record_pass("imap:INBOX", 7, 40, T0)
    store.record_pass("imap:INBOX", 7, 0, T0 + timedelta(minutes=10))  # an empty pass

    cursor = store.cursor("imap:INBOX")
    assert cursor is not None
    assert (cursor.uidvalidity, cursor.last_uid) == (7, 40)
    assert cursor.passed_at == T0 + timedelta(minutes=10)

    store.record_pass("imap:INBOX", 9, 3, T0 + timedelta(minutes=20))  # renumbered
    renumbered = store.cursor("imap:INBOX")
    assert renumbered is not None and (renumbered.uidvalidity, renumbered.last_uid) == (9, 3)
    assert [c.source for c in store.cursors()] == ["imap:INBOX"]


def test_stored_event_round_trip(store: SqliteStateStore) -> None:
    stored = event(
        "mailbot-r1",
        recurrence_key="20250310T090000Z",
        netsuite_id=None,
        revision=(3, datetime(2025, 3, 1, 8, 0, 0, 5, tzinfo=UTC)),
        body={"title": "Réunion ☕", "attendees": [{"email": "a@x"}], "n": 1.5, "ok": None},
        cancelled=True,
        replies={"a@x": (3, T0), "b@x": (2, EARLIEST)},
    )
    store.record(message(1, events=(stored,)))

    assert store.events(["mailbot-r1"]) == {"mailbot-r1": stored}
    assert store.series_events("abc@example.com") == [stored]


def test_earliest_dtstamp_round_trips(store: SqliteStateStore) -> None:
    stored = event(revision=(0, EARLIEST), replies={"a@x": (0, EARLIEST)})
    store.record(message(1, events=(stored,)))

    got = store.events([stored.external_id])[stored.external_id]

    assert got.revision == (0, EARLIEST)
    assert got.revision[1].tzinfo is not None
    assert got.reply_revisions == {"a@x": (0, EARLIEST)}


@settings(max_examples=60, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, PARIS_WINTER, timezone(timedelta(hours=-9, minutes=-30))]),
    ),
    sequence=st.integers(min_value=0, max_value=2**31),
)
def test_revisions_round_trip_as_aware_utc(moment: datetime, sequence: int) -> None:
    with SqliteStateStore(":memory:") as memory:
        memory.record(message(1, events=(event(revision=(sequence, moment)),)))
        got = memory.events(["mailbot-abc"])["mailbot-abc"]

    assert got.revision == (sequence, moment)
    assert got.revision[1].utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(store: SqliteStateStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.record(message(1, events=(event(revision=(0, datetime(2025, 3, 1))),)))
    with pytest.raises(ValueError, match="naive"):
        store.record(message(2, at=datetime(2025, 3, 1)))

    assert store.counts()["messages"] == 0


def test_memory_store_works_without_a_file(tmp_path: Path) -> None:
    with SqliteStateStore(":memory:") as memory:
        memory.record(message(1, events=(event(),), decisions=(decision(),)))
        assert memory.counts()["events"] == 1
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- one transaction


def test_a_failure_inside_record_leaves_nothing_of_that_message(store: SqliteStateStore) -> None:
    before = event(revision=(1, T0), replies={"a@x": (1, T0)})
    store.record(message(1, events=(before,), decisions=(decision(),)))
    log_before = store.decision_log()

    changed = event(revision=(2, T0), body={"title": "Moved"}, replies={"b@x": (2, T0)})
    broken = message(
        2,
        events=(changed, event("mailbot-new", uid="new@example.com")),
        decisions=(decision("update"), decision("create", matches={"unserialisable"})),
    )
    with pytest.raises(TypeError):
        store.record(broken)

    assert store.processed(key(2)) is None
    assert store.events(["mailbot-abc", "mailbot-new"]) == {"mailbot-abc": before}
    assert store.decision_log() == log_before
    assert store.counts() == {
        "messages": 1,
        "by_outcome": {"synced": 1},
        "events": 1,
        "decisions_by_outcome": {"create": 1},
    }
    # The same message, retried with a good record, goes through whole.
    store.record(message(2, events=(changed,), decisions=(decision("update"),)))
    assert store.events(["mailbot-abc"]) == {"mailbot-abc": changed}


def test_a_failed_record_does_not_count_an_attempt(store: SqliteStateStore) -> None:
    store.record(message(1))
    with pytest.raises(ValueError, match="Out of range float"):
        store.record(message(1, decisions=(decision(score=float("nan")),)))

    got = store.processed(key(1))
    assert got is not None and got.attempts == 1


# ----------------------------------------------------------------------------- the file


def test_file_database_is_in_wal_mode(store: SqliteStateStore, db_path: Path) -> None:
    store.record(message(1))

    with raw(db_path) as db:
        (mode,) = db.execute("PRAGMA journal_mode").fetchone()
    assert mode == "wal"
    assert db_path.with_name(db_path.name + "-wal").exists()


def test_migrations_run_on_an_empty_file(db_path: Path) -> None:
    db_path.touch()

    with SqliteStateStore(db_path):
        pass

    assert schema_version(db_path) == SCHEMA_VERSION
    with raw(db_path) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert {"meta", "processed_messages", "events", "reply_revisions", "decisions"} <= tables
    assert {
        "processed_messages_content_hash",
        "processed_messages_message_id",
        "events_uid",
        "decisions_message_id",
        "decisions_event_uid",
        "decisions_outcome",
        "decisions_reason",
    } <= tables


def test_reopening_keeps_the_data_and_the_version(db_path: Path) -> None:
    stored = event(replies={"a@x": (0, T0)})
    with SqliteStateStore(db_path) as first:
        first.record(message(1, events=(stored,), decisions=(decision(),)))

    with SqliteStateStore(db_path) as second:
        assert second.events([stored.external_id]) == {stored.external_id: stored}
        assert len(second.decision_log()) == 1
    assert schema_version(db_path) == SCHEMA_VERSION


def test_a_newer_schema_is_refused(db_path: Path) -> None:
    with SqliteStateStore(db_path):
        pass
    with raw(db_path) as db:
        db.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
        )

    with pytest.raises(StateSchemaError, match=r"schema version \d+, newer"):
        SqliteStateStore(db_path)
    assert schema_version(db_path) == SCHEMA_VERSION + 1


def test_a_foreign_database_is_refused(db_path: Path) -> None:
    with raw(db_path) as db:
        db.execute("CREATE TABLE contacts (email TEXT)")

    with pytest.raises(StateSchemaError, match="not mailbot's state"):
        SqliteStateStore(db_path)


def test_a_file_that_is_no_database_is_refused(db_path: Path) -> None:
    db_path.write_bytes(b"From: someone\r\n" * 100)

    with pytest.raises(StateSchemaError) as caught:
        SqliteStateStore(db_path)
    assert caught.value.code == "SQLITE_NOTADB"


def test_a_pending_migration_is_applied_at_open(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SqliteStateStore(db_path) as v1:
        v1.record(message(1, events=(event(),)))
    later = (*sqlite_state.MIGRATIONS, ("ALTER TABLE events ADD COLUMN note TEXT",))
    monkeypatch.setattr(sqlite_state, "MIGRATIONS", later)
    monkeypatch.setattr(sqlite_state, "SCHEMA_VERSION", len(later))

    with SqliteStateStore(db_path) as v2:
        assert set(v2.events(["mailbot-abc"])) == {"mailbot-abc"}

    assert schema_version(db_path) == len(later)
    with raw(db_path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
    assert "note" in columns


def test_a_failing_migration_is_rolled_back(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with SqliteStateStore(db_path):
        pass
    later = (
        *sqlite_state.MIGRATIONS,
        ("CREATE TABLE notes (text TEXT)", "INSERT INTO nowhere VALUES (1)"),
    )
    monkeypatch.setattr(sqlite_state, "MIGRATIONS", later)
    monkeypatch.setattr(sqlite_state, "SCHEMA_VERSION", len(later))

    with pytest.raises(StateError, match="no such table: nowhere"):
        SqliteStateStore(db_path)

    assert schema_version(db_path) == len(later) - 1
    with raw(db_path) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'notes'").fetchall() == []


# ----------------------------------------------------------------------------- the event map


def test_reply_revisions_are_replaced_as_a_map(store: SqliteStateStore) -> None:
    store.record(message(1, events=(event(replies={"a@x": (1, T0), "b@x": (1, T0)}),)))
    later = T0 + timedelta(hours=1)
    store.record(message(2, events=(event(replies={"b@x": (2, later), "c@x": (2, later)}),)))

    got = store.events(["mailbot-abc"])["mailbot-abc"]
    assert got.reply_revisions == {"b@x": (2, later), "c@x": (2, later)}

    store.record(message(3, events=(event(replies={}),)))
    assert store.events(["mailbot-abc"])["mailbot-abc"].reply_revisions == {}


def test_an_unknown_netsuite_id_keeps_the_stored_one(store: SqliteStateStore) -> None:
    store.record(message(1, events=(event(netsuite_id="555"),)))
    store.record(message(2, events=(event(netsuite_id=None, revision=(1, T0)),)))

    got = store.events(["mailbot-abc"])["mailbot-abc"]
    assert (got.netsuite_id, got.revision) == ("555", (1, T0))


def test_series_events_lists_every_instance_master_first(store: SqliteStateStore) -> None:
    instances = (
        event("s-2", uid="series@x", recurrence_key="20250317T090000Z"),
        event("s-0", uid="series@x", recurrence_key=""),
        event("s-1", uid="series@x", recurrence_key="20250310T090000Z"),
        event("other", uid="other@x"),
    )
    store.record(message(1, events=instances))

    series = store.series_events("series@x")

    assert [e.external_id for e in series] == ["s-0", "s-1", "s-2"]
    assert store.series_events("nobody@x") == []


def test_events_with_more_ids_than_one_query_takes(store: SqliteStateStore) -> None:
    stored = tuple(
        event(f"ev-{n:04d}", uid=f"u{n}@x", replies={"a@x": (n, T0)}) for n in range(1200)
    )
    store.record(message(1, events=stored))
    wanted = [f"ev-{n:04d}" for n in range(1200)] + ["missing-1", "ev-0001", "missing-2"]

    found = store.events(wanted)

    assert len(found) == 1200
    assert found["ev-1199"] == stored[1199]
    assert found["ev-0600"].reply_revisions == {"a@x": (600, T0)}
    assert store.events([]) == {}


# ----------------------------------------------------------------------------- failures


def test_record_failure_counts_attempts(store: SqliteStateStore, db_path: Path) -> None:
    attempts = [
        store.record_failure(key(9), "h9", f"NetSuite said no ({n})", T0 + timedelta(minutes=n))
        for n in range(3)
    ]

    assert attempts == [1, 2, 3]
    got = store.processed(key(9))
    assert got is not None
    assert (got.outcome, got.attempts, got.content_hash) == ("failed", 3, "h9")
    assert got.processed_at == T0 + timedelta(minutes=2)
    assert [m.key for m in store.quarantined(3)] == [key(9)]
    assert store.quarantined(4) == []
    with raw(db_path) as db:
        (last_error,) = db.execute("SELECT last_error FROM processed_messages").fetchone()
    assert last_error == "NetSuite said no (2)"

    store.record(message(9, content_hash="h9"))

    got = store.processed(key(9))
    assert got is not None and (got.outcome, got.attempts) == ("synced", 4)
    assert store.quarantined(1) == []
    with raw(db_path) as db:
        assert db.execute("SELECT last_error FROM processed_messages").fetchone() == (None,)


def test_quarantined_lists_failed_messages_oldest_first(store: SqliteStateStore) -> None:
    for uid, minutes in (("b", 5), ("a", 1), ("c", 9)):
        for _ in range(2):
            store.record_failure(key(uid), f"h-{uid}", "boom", T0 + timedelta(minutes=minutes))
    store.record_failure(key("once"), "h", "boom", T0)

    assert [m.key.uid for m in store.quarantined(2)] == ["a", "b", "c"]


# ----------------------------------------------------------------------------- decision log


def test_decision_log_filters_newest_first_with_limit(store: SqliteStateStore) -> None:
    store.record(
        message(
            1,
            message_id="<one@x>",
            at=T0,
            decisions=(
                decision("create", uid="u1@x", netsuite_id="101", written=True),
                decision("skip", "no_crm_match", uid="u2@x", detail="no address matches"),
            ),
        )
    )
    store.record(
        message(
            2,
            message_id="<two@x>",
            at=T0 + timedelta(minutes=1),
            decisions=(
                decision("update", uid="u1@x", matches=[{"contact": 7, "why": "attendee"}]),
                decision("skip", "stale", uid="u1@x", message_id="<explicit@x>"),
            ),
        )
    )

    everything = store.decision_log()
    assert [(d["outcome"], d["uid"]) for d in everything] == [
        ("skip", "u1@x"),
        ("update", "u1@x"),
        ("skip", "u2@x"),
        ("create", "u1@x"),
    ]
    assert everything[1]["matches"] == [{"contact": 7, "why": "attendee"}]
    assert everything[1]["logged_at"] == (T0 + timedelta(minutes=1)).isoformat()
    assert {k: v for k, v in everything[3].items() if k != "logged_at"} == decision(
        "create", uid="u1@x", netsuite_id="101", written=True
    )

    assert [d["outcome"] for d in store.decision_log(message_id="<one@x>")] == ["skip", "create"]
    assert [d["reason"] for d in store.decision_log(message_id="<explicit@x>")] == ["stale"]
    assert [d["outcome"] for d in store.decision_log(uid="u1@x")] == ["skip", "update", "create"]
    assert [d["uid"] for d in store.decision_log(outcome="skip")] == ["u1@x", "u2@x"]
    assert [d["uid"] for d in store.decision_log(reason="no_crm_match")] == ["u2@x"]
    assert [d["outcome"] for d in store.decision_log(uid="u1@x", outcome="skip")] == ["skip"]
    assert [d["outcome"] for d in store.decision_log(uid="u1@x", limit=2)] == ["skip", "update"]
    assert store.decision_log(uid="nobody@x") == []
    with pytest.raises(ValueError, match="limit"):
        store.decision_log(limit=0)


def test_decision_columns_are_queryable(store: SqliteStateStore, db_path: Path) -> None:
    store.record(
        message(
            5,
            message_id="<five@x>",
            decisions=(
                decision("create", recurrence_id="2025-03-10T09:00:00+00:00", written=True),
            ),
        )
    )

    with raw(db_path) as db:
        row = db.execute(
            "SELECT source, uid_in_mailbox, message_id, event_uid, recurrence_id, outcome,"
            " written FROM decisions"
        ).fetchone()
    assert row == (
        "imap:INBOX",
        "5",
        "<five@x>",
        "abc@example.com",
        "2025-03-10T09:00:00+00:00",
        "create",
        1,
    )


def test_counts(store: SqliteStateStore) -> None:
    store.record(message(1, events=(event("e1"), event("e2")), decisions=(decision(),) * 2))
    store.record(message(2, outcome="skipped", decisions=(decision("skip", "not_single_day"),)))
    store.record_failure(key(3), "h3", "boom", T0)

    assert store.counts() == {
        "messages": 3,
        "by_outcome": {"failed": 1, "skipped": 1, "synced": 1},
        "events": 2,
        "decisions_by_outcome": {"create": 2, "skip": 1},
    }


# ----------------------------------------------------------------------------- errors, threads


def test_a_locked_database_is_a_storage_error(db_path: Path) -> None:
    with SqliteStateStore(db_path, busy_timeout=0.05) as store:
        other = raw(db_path)
        other.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StateStorageError) as caught:
                store.record(message(1))
            assert caught.value.code == "SQLITE_BUSY"
            assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        finally:
            other.execute("ROLLBACK")
            other.close()

        store.record(message(1))
        assert store.processed(key(1)) is not None


def test_a_closed_store_refuses_calls(db_path: Path) -> None:
    store = SqliteStateStore(db_path)
    store.close()
    store.close()

    with pytest.raises(StateError, match="closed"):
        store.processed(key(1))
    with pytest.raises(StateError, match="closed"), SqliteStateStore(db_path) as scoped:
        scoped.close()
        scoped.counts()


def test_reads_from_other_threads_while_writing(db_path: Path) -> None:
    messages = 60
    errors: list[BaseException] = []
    done = threading.Event()

    def write(store: SqliteStateStore) -> None:
        for n in range(messages):
            store.record(
                message(
                    n,
                    at=T0 + timedelta(seconds=n),
                    events=(event(f"ev-{n}", uid="series@x", recurrence_key=f"{n:03d}"),),
                    decisions=(decision("create"), decision("skip", "duplicate")),
                )
            )

    def read(store: SqliteStateStore) -> None:
        while not done.is_set():
            counts = store.counts()
            # A message is there with all of its rows, or not at all.
            assert counts["events"] == counts["messages"]
            assert sum(counts["decisions_by_outcome"].values()) == 2 * counts["messages"]
            assert len(store.series_events("series@x")) >= counts["events"]
            store.decision_log(outcome="skip", limit=5)

    def guarded(target: Any, *args: Any) -> None:
        try:
            target(*args)
        except BaseException as error:  # noqa: BLE001 - reported to the test thread
            errors.append(error)
            done.set()

    with SqliteStateStore(db_path) as writer, SqliteStateStore(db_path) as other_connection:
        readers = [
            threading.Thread(target=guarded, args=(read, writer)),
            threading.Thread(target=guarded, args=(read, other_connection)),
        ]
        for thread in readers:
            thread.start()
        guarded(write, writer)
        done.set()
        for thread in readers:
            thread.join(timeout=10)

        assert errors == []
        assert other_connection.counts()["messages"] == messages

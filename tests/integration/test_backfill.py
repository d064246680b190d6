"""The backfill loop in this process, on real parts: Dovecot (tests/imap_fixtures.py), the
NetSuite emulator with the demo account, SQLite in tmp_path, the engine as
``mailbot.app.open_engine`` wires it. (The command as a process: tests/system.)"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mailbot.adapters.imap import ImapMailbox, UidValidityChangedError
from mailbot.app import Engine, emulator_config, open_engine
from mailbot.backfill import Backfill
from mailbot.core.policy import MatchPolicy
from mailbot.service import MailItem
from mailbot.settings import Settings
from mailbot.sim.netsuite import NetSuiteEmulator, load_data
from tests.imap_fixtures import ImapAccount

SAMPLES = sorted((Path(__file__).parents[2] / "mailbot" / "samples" / "demo" / "cur").glob("*.eml"))
SYNC_MAILBOX = "crm-sync@lakeside-instruments.example.com"
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.fixture
def demo_account() -> Iterator[NetSuiteEmulator]:
    with NetSuiteEmulator(load_data(None)).start() as emulator:
        yield emulator


@pytest.fixture
def engine(tmp_path: Path, demo_account: NetSuiteEmulator) -> Iterator[Engine]:
    settings = Settings(
        timezone="Europe/Berlin",
        state_path=str(tmp_path / "state.sqlite3"),
        matching=MatchPolicy(mailbox_addresses=frozenset({SYNC_MAILBOX})),
    )
    with open_engine(settings, emulator_config(demo_account), dry_run=False) as opened:
        yield opened


@pytest.fixture
def inbox(imap_account: ImapAccount) -> Iterator[ImapMailbox]:
    for path in SAMPLES:
        imap_account.append("INBOX", path.read_bytes())
    with ImapMailbox(imap_account.config(), password=imap_account.password) as mailbox:
        yield mailbox


class Emitted:
    """The decision rows a run emits; optionally asks the run to stop after N messages."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.messages: list[tuple[dict[str, Any], ...]] = []
        self.stop_after = stop_after
        self.backfill: Backfill | None = None

    def __call__(self, rows: Sequence[dict[str, Any]]) -> None:
        self.messages.append(tuple(rows))
        if self.backfill is not None and len(self.messages) == self.stop_after:
            self.backfill.request_stop()

    @property
    def uids(self) -> list[int]:
        return [int(rows[0]["mailbox_uid"]) for rows in self.messages]


def _record_writes(emulator: NetSuiteEmulator) -> int:
    return sum(
        1
        for request in emulator.request_log()
        if request.method in {"PUT", "PATCH", "POST"} and "/record/" in request.path
    )


def test_a_stop_finishes_the_current_message_and_the_next_run_goes_on_from_there(
    engine: Engine, inbox: ImapMailbox, imap_account: ImapAccount
) -> None:
    first = Backfill(inbox, engine.service, file_messages=True, batch=4, clock=lambda: NOW)
    emitted = Emitted(stop_after=3)
    emitted.backfill = first

    report = first.run(emitted)

    assert report.interrupted and report.handled == 3 and report.listed == 10
    assert emitted.uids == [1, 2, 3]
    assert imap_account.folder_uids("INBOX") == list(range(4, 11))  # the three were filed

    second = Backfill(inbox, engine.service, file_messages=True, batch=4, clock=lambda: NOW)
    rest = Emitted()
    again = second.run(rest)

    assert not again.interrupted and again.done_before == 0  # filed: no longer listed
    assert rest.uids == list(range(4, 11)) and again.done == again.listed == 7
    assert imap_account.folder_uids("INBOX") == []


def test_a_message_committed_but_not_filed_is_filed_without_being_handled_again(
    engine: Engine,
    inbox: ImapMailbox,
    imap_account: ImapAccount,
    demo_account: NetSuiteEmulator,
) -> None:
    # the daemon committed three messages, then died before filing them
    fetched = inbox.fetch_new(3)
    items = [MailItem(mail.key, mail.raw, mail.received_at) for mail in fetched]
    committed = engine.service.handle_batch(items, NOW)
    writes = _record_writes(demo_account)

    backfill = Backfill(inbox, engine.service, file_messages=True, clock=lambda: NOW)
    emitted = Emitted()
    report = backfill.run(emitted)

    assert report.done_before == 3 and report.handled == 7
    assert emitted.uids == list(range(4, 11))  # the three were not handled again
    assert imap_account.folder_uids("INBOX") == []  # the three filed by their outcome too
    assert [handled.outcome for handled in committed] == ["synced", "synced", "synced"]
    assert len(imap_account.folder_uids("Synced")) == 7
    assert len(imap_account.folder_uids("Skipped")) == 3
    assert _record_writes(demo_account) > writes


def test_another_folder_is_read_only_and_left_as_it_is(
    engine: Engine, imap_account: ImapAccount
) -> None:
    imap_account.helper().create_folder("Archive")
    for path in SAMPLES[:4]:
        imap_account.append("Archive", path.read_bytes())
    before = imap_account.snapshot()
    config = imap_account.config(folder="Archive")
    with ImapMailbox(config, password=imap_account.password, read_only=True) as archive:
        report = Backfill(archive, engine.service, file_messages=False).run(Emitted())

    assert report.handled == 4 and report.outcomes["synced"] == 3
    assert imap_account.snapshot() == before
    assert engine.state.processed(archive.message_keys()[0]) is not None


def test_listing_since_a_day_and_fetching_by_key(imap_account: ImapAccount) -> None:
    old = datetime(2021, 3, 1, 8, 0, tzinfo=UTC)
    raw = SAMPLES[0].read_bytes()
    uids = [
        imap_account.helper().append("INBOX", raw, msg_time=when) for when in (old, None, old, None)
    ]
    assert len(uids) == 4
    deleted = imap_account.append("INBOX", raw, flags=("\\Deleted",))
    with ImapMailbox(imap_account.config(), password=imap_account.password) as mailbox:
        every = mailbox.message_keys()
        recent = mailbox.message_keys(since=datetime(2024, 1, 1).date())
        fetched = mailbox.fetch_messages(list(reversed(recent)))

    assert [key.uid for key in every] == ["1", "2", "3", "4"]  # oldest first, not deleted
    assert str(deleted) not in {key.uid for key in every}
    assert [key.uid for key in recent] == ["2", "4"]
    assert [mail.key.uid for mail in fetched] == ["4", "2"]  # in the order asked
    assert all(b"BEGIN:VCALENDAR" in mail.raw for mail in fetched)


def test_fetching_keys_of_a_renumbered_folder_is_refused(imap_account: ImapAccount) -> None:
    imap_account.helper().create_folder("Archive")
    imap_account.append("Archive", SAMPLES[0].read_bytes())
    config = imap_account.config(folder="Archive")
    with ImapMailbox(config, password=imap_account.password, read_only=True) as archive:
        keys = archive.message_keys()
        archive.close()
        helper = imap_account.helper()
        helper.delete_folder("Archive")
        helper.create_folder("Archive")
        imap_account.append("Archive", SAMPLES[1].read_bytes())
        with pytest.raises(UidValidityChangedError):
            archive.fetch_messages(keys)

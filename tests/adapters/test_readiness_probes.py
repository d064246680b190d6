"""What `mailbot check` asks the adapters: ``ImapMailbox.describe`` against a real Dovecot and
``NetSuiteClient.clock_skew`` against the emulator with its clock set off."""

from __future__ import annotations

import socket
import time
from datetime import timedelta

import pytest

from mailbot.adapters.imap import ImapMailbox
from mailbot.adapters.netsuite.client import NetSuiteClient
from mailbot.adapters.netsuite.config import NetSuiteConfig
from mailbot.adapters.netsuite.errors import NetSuiteTransientError
from mailbot.app import emulator_config
from mailbot.ports import FatalError
from mailbot.sim.netsuite import NetSuiteEmulator
from tests.imap_fixtures import PASSWORD, ImapAccount
from tests.netsuite_fixtures import small_test_data

MESSAGE = b"From: a@example.org\r\nSubject: hello\r\n\r\nbody\r\n"


def test_describe_reports_capabilities_folder_and_outcome_folders_and_changes_nothing(
    imap_account: ImapAccount,
) -> None:
    imap_account.append("INBOX", MESSAGE)
    imap_account.append("INBOX", MESSAGE)
    imap_account.helper().create_folder("Skipped")
    before = imap_account.snapshot()
    with ImapMailbox(imap_account.config(), password=PASSWORD, read_only=True) as mailbox:
        facts = mailbox.describe()
    assert {"IDLE", "MOVE", "UIDPLUS", "CONDSTORE"} <= facts.capabilities
    assert facts.uidvalidity == imap_account.uidvalidity("INBOX")
    assert facts.messages == 2
    assert facts.outcome_folders == {"Synced": False, "Skipped": True, "Failed": False}
    assert imap_account.snapshot() == before


def test_a_missing_folder_fails_but_the_capabilities_of_the_login_stay(
    imap_account: ImapAccount,
) -> None:
    config = imap_account.config(folder="Nowhere")
    with ImapMailbox(config, password=PASSWORD, read_only=True) as mailbox:
        assert mailbox.capabilities == frozenset()
        with pytest.raises(FatalError, match="Nowhere"):
            mailbox.describe()
        assert "IDLE" in mailbox.capabilities


def _client(emulator: NetSuiteEmulator) -> NetSuiteClient:
    return NetSuiteClient(emulator_config(emulator, max_attempts=1))


@pytest.mark.parametrize("skew", [0.0, 42.0, -400.0])
def test_clock_skew_is_read_from_the_date_header_even_when_signatures_fail(skew: float) -> None:
    with (
        NetSuiteEmulator(small_test_data(), clock=lambda: time.time() + skew) as emulator,
        _client(emulator) as client,
    ):
        measured = client.clock_skew()
        log = emulator.request_log()
    assert abs(measured - timedelta(seconds=skew)) <= timedelta(seconds=2)
    assert [(entry.method, entry.auth_scheme) for entry in log] == [("GET", None)]


def test_clock_skew_without_an_answer_is_a_transient_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with NetSuiteEmulator(small_test_data()) as emulator:
        config = emulator_config(emulator, max_attempts=1)
    closed = NetSuiteConfig(
        config.account, auth=config.auth, base_url=f"http://127.0.0.1:{port}", connect_timeout=2
    )
    with NetSuiteClient(closed) as client, pytest.raises(NetSuiteTransientError):
        client.clock_skew()

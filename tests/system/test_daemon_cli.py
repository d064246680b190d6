"""`mailbot once` and `mailbot status`/`log` as an admin runs them: a real Dovecot, the
NetSuite emulator, real SQLite, real processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mailbot.sim.netsuite import NetSuiteEmulator
from tests.imap_fixtures import ImapAccount
from tests.system.cli_support import DEMO_SAMPLES, demo_config, run_mailbot, secret_env


def _config(
    tmp_path: Path, emulator: NetSuiteEmulator, account: ImapAccount, imap_extra: str = ""
) -> Path:
    return demo_config(
        tmp_path,
        emulator,
        f'[imap]\nhost = "{account.host}"\nport = {account.port}\n'
        f'username = "{account.username}"\ntls = "starttls"\n'
        f'ca_file = "{account.ca_file}"\n'
        f"{imap_extra}"
        '[daemon]\nlog_json = true\nmetrics_address = ""\n',
    )


def test_once_syncs_the_mailbox_files_every_message_and_reports(
    tmp_path: Path, demo_account: NetSuiteEmulator, imap_account: ImapAccount
) -> None:
    for path in sorted(DEMO_SAMPLES.glob("*.eml")):
        imap_account.append("INBOX", path.read_bytes())
    config = _config(tmp_path, demo_account, imap_account)
    env = secret_env(demo_account, imap_account)
    dry = run_mailbot("once", "--dry-run", "--config", str(config), env=env)
    assert dry.returncode == 0, dry.stderr
    assert demo_account.records("calendarEvent") == []
    assert len(imap_account.folder_uids("INBOX")) == 10
    table = dry.stdout.splitlines()
    assert table[0].split()[:3] == ["UID", "OUTCOME", "REASON"]
    assert "unauthorized_sender" in dry.stdout, dry.stderr[-3000:]
    assert table[-1].startswith(("11 decisions:", "12 decisions:", "13 decisions:"))
    as_json = run_mailbot("once", "--dry-run", "--json", "--config", str(config), env=env)
    decisions = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert len(decisions) == int(table[-1].split()[0])
    assert {d["outcome"] for d in decisions} >= {"create", "skip"}
    assert demo_account.records("calendarEvent") == []

    result = run_mailbot("once", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    assert len(demo_account.records("calendarEvent")) == 6
    assert imap_account.folder_uids("INBOX") == []
    assert len(imap_account.folder_uids("Synced")) == 7
    assert len(imap_account.folder_uids("Skipped")) == 3
    assert demo_account.credentials["token_secret"] not in result.stderr
    assert imap_account.password not in result.stderr

    status = run_mailbot("status", "--json", "--config", str(config), env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)
    log = run_mailbot("log", "--reason", "unauthorized_sender", "--config", str(config), env=env)
    assert log.returncode == 0 and "unauthorized_sender" in log.stdout


def test_a_renumbered_folder_is_rescanned_without_a_second_sync(
    tmp_path: Path, demo_account: NetSuiteEmulator, imap_account: ImapAccount
) -> None:
    """Keywords mode keeps processed messages in the folder. The folder is then deleted and
    made again with the same messages (what a server migration or a rebuilt index does): a
    new UIDVALIDITY, new UIDs, no keywords. The rescan recognises the old messages by their
    content and writes only the new one."""
    account: Any = imap_account
    old = [DEMO_SAMPLES / "01-new-meeting.eml", DEMO_SAMPLES / "07-weekly-check-in.eml"]
    new = DEMO_SAMPLES / "05-multi-day.eml"
    account.helper().create_folder("Invites")
    for path in old:
        account.append("Invites", path.read_bytes())
    config = _config(
        tmp_path,
        demo_account,
        account,
        'folder = "Invites"\nmark_with_keywords = true\n',
    )
    env = secret_env(demo_account, account)
    first = run_mailbot("once", "--config", str(config), env=env)
    assert first.returncode == 0, first.stderr
    events = demo_account.records("calendarEvent")
    writes = _writes(demo_account)
    assert events and writes
    validity = account.uidvalidity("Invites")
    decided = _decision_count(config, env)

    helper = account.helper()
    helper.select_folder("INBOX")
    helper.delete_folder("Invites")
    helper.create_folder("Invites")
    for path in [*old, new]:
        account.append("Invites", path.read_bytes())
    assert account.uidvalidity("Invites") != validity

    second = run_mailbot("once", "--config", str(config), env=env)
    assert second.returncode == 0, second.stderr
    assert "UIDVALIDITY changed" in second.stderr
    assert second.stderr.count("not handled again") == len(old)
    assert _writes(demo_account) == writes  # 05 is a multi-day meeting: skipped, no write
    assert demo_account.records("calendarEvent") == events
    assert _decision_count(config, env) == decided + 1  # only the new message was decided
    flags = account.flags("Invites")
    assert len(flags) == 3
    assert all(b"$MailbotDone" in marks for marks in flags.values())
    assert sum(b"$MailbotSynced" in marks for marks in flags.values()) == len(old)
    assert sum(b"$MailbotSkipped" in marks for marks in flags.values()) == 1


def _decision_count(config: Path, env: dict[str, str]) -> int:
    status = run_mailbot("status", "--json", "--config", str(config), env=env)
    assert status.returncode == 0, status.stderr
    return sum(json.loads(status.stdout)["decisions_by_outcome"].values())


def _writes(emulator: NetSuiteEmulator) -> int:
    return sum(
        1
        for request in emulator.request_log()
        if request.method != "GET" and "suiteql" not in request.path
    )

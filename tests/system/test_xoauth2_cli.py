"""`mailbot once` and `mailbot check` with ``[imap] auth = "xoauth2"``, as an admin runs them
against Microsoft 365: real processes, a Dovecot that takes only tokens from the test's
OAuth 2.0 authority for XOAUTH2, the NetSuite emulator, real SQLite."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from mailbot.sim.netsuite import NetSuiteEmulator
from tests.imap_fixtures import DovecotServer
from tests.oauth2_fixtures import CLIENT_ID, CLIENT_SECRET, SCOPE, OAuth2Authority
from tests.system.cli_support import DEMO_SAMPLES, demo_config, run_mailbot, secret_env


def _config(
    tmp_path: Path, emulator: NetSuiteEmulator, server: DovecotServer, authority: OAuth2Authority
) -> Path:
    imap = {
        "host": server.host,
        "port": server.port,
        "username": server.username,
        "tls": "starttls",
        "ca_file": str(server.ca_file),
        "auth": "xoauth2",
        "oauth2_token_url": authority.token_url,
        "oauth2_client_id": CLIENT_ID,
        "oauth2_scope": [SCOPE],
        "oauth2_ca_file": str(authority.ca_file),
    }
    imap_lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in imap.items())
    return demo_config(tmp_path, emulator, f"[imap]\n{imap_lines}")


def _env(emulator: NetSuiteEmulator, client_secret: str = CLIENT_SECRET) -> dict[str, str]:
    """No IMAP password: the client secret is what gets mailbot its access tokens."""
    return secret_env(emulator, MAILBOT_IMAP_OAUTH2_CLIENT_SECRET=client_secret)


def _assert_nothing_secret_shown(
    result: subprocess.CompletedProcess[str], authority: OAuth2Authority, secret: str
) -> None:
    shown = result.stdout + result.stderr
    assert secret not in shown
    for token in authority.issued:
        assert token not in shown


def test_once_syncs_the_mailbox_logged_in_with_xoauth2(
    tmp_path: Path,
    demo_account: NetSuiteEmulator,
    xoauth2_dovecot: DovecotServer,
    oauth2_authority: OAuth2Authority,
) -> None:
    for path in sorted(DEMO_SAMPLES.glob("*.eml")):
        xoauth2_dovecot.append("INBOX", path.read_bytes())
    config = _config(tmp_path, demo_account, xoauth2_dovecot, oauth2_authority)

    result = run_mailbot("once", "--config", str(config), env=_env(demo_account))

    assert result.returncode == 0, result.stderr
    assert len(demo_account.records("calendarEvent")) == 6
    assert xoauth2_dovecot.folder_uids("INBOX") == []
    assert len(xoauth2_dovecot.folder_uids("Synced")) == 7
    assert len(xoauth2_dovecot.folder_uids("Skipped")) == 3
    assert oauth2_authority.token_requests == 1
    assert "method=XOAUTH2" in xoauth2_dovecot.log()
    _assert_nothing_secret_shown(result, oauth2_authority, CLIENT_SECRET)


def test_check_reports_the_client_secret_and_the_xoauth2_login(
    tmp_path: Path,
    demo_account: NetSuiteEmulator,
    xoauth2_dovecot: DovecotServer,
    oauth2_authority: OAuth2Authority,
) -> None:
    config = _config(tmp_path, demo_account, xoauth2_dovecot, oauth2_authority)

    result = run_mailbot("check", "--config", str(config), env=_env(demo_account))

    shown = result.stdout + result.stderr
    lines = result.stdout.splitlines()
    secret = [line for line in lines if "secret imap-oauth2-client-secret" in line]
    assert secret and "MAILBOT_IMAP_OAUTH2_CLIENT_SECRET" in secret[0], shown
    assert "imap-password" not in shown
    connection = [line for line in lines if "imap connection" in line]
    assert connection and connection[0].split()[0] == "OK", shown
    assert oauth2_authority.token_requests == 1
    _assert_nothing_secret_shown(result, oauth2_authority, CLIENT_SECRET)


def test_a_refused_client_secret_stops_with_the_configuration_exit_code(
    tmp_path: Path,
    demo_account: NetSuiteEmulator,
    xoauth2_dovecot: DovecotServer,
    oauth2_authority: OAuth2Authority,
) -> None:
    config = _config(tmp_path, demo_account, xoauth2_dovecot, oauth2_authority)
    wrong = "not~the~client~secret~4321"

    result = run_mailbot("once", "--config", str(config), env=_env(demo_account, wrong))

    assert result.returncode == 78, result.stderr  # an admin must fix it: no restart loop
    assert "invalid_client: Invalid client secret provided." in result.stderr
    assert oauth2_authority.token_requests == 1
    _assert_nothing_secret_shown(result, oauth2_authority, wrong)


def test_the_token_endpoint_down_is_temporary_trouble(
    tmp_path: Path,
    demo_account: NetSuiteEmulator,
    xoauth2_dovecot: DovecotServer,
    oauth2_authority: OAuth2Authority,
) -> None:
    xoauth2_dovecot.append("INBOX", (DEMO_SAMPLES / "01-new-meeting.eml").read_bytes())
    config = _config(tmp_path, demo_account, xoauth2_dovecot, oauth2_authority)
    oauth2_authority.stop()

    result = run_mailbot("once", "--config", str(config), env=_env(demo_account))

    assert result.returncode == 75, result.stderr  # systemd restarts it later
    assert "unreachable" in result.stderr
    assert len(xoauth2_dovecot.folder_uids("INBOX")) == 1

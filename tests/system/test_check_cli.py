"""`mailbot check` as an admin runs it before starting the service: a real process, a real
Dovecot and the NetSuite emulator (with its clock set off or a required custom field where a
test needs one)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailbot.sim.netsuite import NetSuiteEmulator
from tests.imap_fixtures import ImapAccount
from tests.netsuite_fixtures import OAuth2TestClient, small_test_data
from tests.system.cli_support import path_env, run_mailbot, secret_env

INVITATION = b"From: a@example.org\r\nSubject: hello\r\n\r\nbody\r\n"
# "secret" may appear in the output only in the names of secrets, never as a value.
SECRET_NAMES = re.compile(r"secret (?=(?:netsuite|imap)-)|-secret\b")


@pytest.fixture
def account() -> Iterator[NetSuiteEmulator]:
    with NetSuiteEmulator(small_test_data()) as emulator:
        yield emulator


def _config(
    tmp_path: Path,
    emulator: NetSuiteEmulator,
    imap: ImapAccount,
    netsuite_lines: str = "",
    **imap_keys: Any,
) -> Path:
    keys: dict[str, Any] = {
        "host": imap.host,
        "port": imap.port,
        "username": imap.username,
        "tls": "starttls",
        "ca_file": str(imap.ca_file),
        "connect_timeout": 5,
        **imap_keys,
    }
    imap_lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in keys.items())
    config = tmp_path / "mailbot.toml"
    config.write_text(
        f'[netsuite]\ntimezone = "Europe/Berlin"\naccount = "{emulator.account}"\n'
        f'base_url = "{emulator.base_url}"\nconnect_timeout = 5\n{netsuite_lines}'
        f'[sync]\nstate_path = "{tmp_path / "state.sqlite3"}"\n'
        f"[imap]\n{imap_lines}",
        encoding="utf-8",
    )
    return config


def _check(config: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    result = run_mailbot("check", "--config", str(config), *extra, env=env)
    _assert_no_secret_shown(result, env)
    return result


def _assert_no_secret_shown(result: subprocess.CompletedProcess[str], env: dict[str, str]) -> None:
    shown = result.stdout + result.stderr
    for name, value in env.items():
        if name.startswith("MAILBOT_") and len(value) > 8:
            assert value not in shown, f"the value of {name} was shown"
    # The test IMAP password is the word "secret": it may appear only in secrets' names.
    assert re.search(r"\bsecret\b", SECRET_NAMES.sub("", shown)) is None


def _lines(stdout: str) -> dict[str, tuple[str, str]]:
    """Check name -> (status, detail), from the table."""
    rows = {}
    for line in stdout.splitlines()[:-1]:
        status, rest = line.split(None, 1)
        name, detail = re.split(r"\s{2,}", rest, maxsplit=1)
        rows[name] = (status, detail)
    return rows


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


IMAP_CHECKS = ("imap connection", "imap capabilities", "imap folder", "imap outcome folders")
NETSUITE_CHECKS = (
    "netsuite authentication",
    "netsuite recurrence",
    "netsuite required fields",
    "clock skew",
)


def test_everything_ready_is_all_ok_and_nothing_changes(
    tmp_path: Path, account: NetSuiteEmulator, imap_account: ImapAccount
) -> None:
    imap_account.append("INBOX", INVITATION)
    imap_account.helper().create_folder("Synced")
    before = imap_account.snapshot()
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "imap-password").write_text(imap_account.password, encoding="utf-8")
    config = _config(tmp_path, account, imap_account)
    env = secret_env(account, imap_account, CREDENTIALS_DIRECTORY=str(credentials))
    del env["MAILBOT_IMAP_PASSWORD"]

    result = _check(config, env)

    assert result.returncode == 0, result.stdout + result.stderr
    rows = _lines(result.stdout)
    assert list(rows) == [
        "configuration",
        "secret netsuite-consumer-key",
        "secret netsuite-consumer-secret",
        "secret netsuite-token-id",
        "secret netsuite-token-secret",
        "secret imap-password",
        *IMAP_CHECKS,
        *NETSUITE_CHECKS,
    ]
    assert {status for status, _ in rows.values()} == {"OK"}
    assert result.stdout.splitlines()[-1] == "0 failed, 0 warnings, 14 ok"
    assert rows["secret imap-password"][1] == (
        f"systemd credential {credentials / 'imap-password'}"
    )
    assert rows["secret netsuite-token-secret"][1] == (
        "environment variable MAILBOT_NETSUITE_TOKEN_SECRET"
    )
    assert rows["imap capabilities"][1] == "IDLE yes, MOVE yes, UIDPLUS yes, CONDSTORE yes"
    assert rows["imap folder"][1].startswith("INBOX: 1 message, UIDVALIDITY ")
    assert rows["imap outcome folders"][1] == (
        "Synced exists, Skipped will be created, Failed will be created"
    )
    assert "writes occurrences" in rows["netsuite recurrence"][1]
    assert rows["netsuite required fields"][1].startswith("required: title (all set by mailbot)")
    assert "STARTTLS" in rows["imap connection"][1]
    # Read-only: no folder created, no flag changed, nothing written to NetSuite.
    assert imap_account.snapshot() == before
    assert account.records("calendarEvent") == []
    calls = {(entry.method, entry.path.split("?")[0]) for entry in account.request_log()}
    assert {method for method, _ in calls} <= {"GET", "POST"}
    assert {path for method, path in calls if method == "POST"} == {
        "/services/rest/query/v1/suiteql"
    }


def test_json_has_every_check_and_the_counts(
    tmp_path: Path, account: NetSuiteEmulator, imap_account: ImapAccount
) -> None:
    result = _check(
        _config(tmp_path, account, imap_account), secret_env(account, imap_account), "--json"
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["counts"] == {"ok": 14, "warn": 0, "fail": 0}
    assert {check["status"] for check in document["checks"]} == {"ok"}
    assert {check["name"] for check in document["checks"]} >= {*IMAP_CHECKS, *NETSUITE_CHECKS}


def test_oauth2_client_credentials(
    tmp_path: Path,
    netsuite_emulator: NetSuiteEmulator,
    netsuite_oauth2_client: OAuth2TestClient,
    imap_account: ImapAccount,
) -> None:
    integration = netsuite_oauth2_client
    config = _config(
        tmp_path,
        netsuite_emulator,
        imap_account,
        f'auth = "oauth2"\nclient_id = "{integration.client_id}"\n'
        f'certificate_id = "{integration.certificate_id}"\nalgorithm = "{integration.algorithm}"\n',
    )
    key = integration.private_key_pem.decode("ascii")
    env = path_env(
        MAILBOT_NETSUITE_OAUTH2_PRIVATE_KEY=key, MAILBOT_IMAP_PASSWORD=imap_account.password
    )
    result = _check(config, env)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _lines(result.stdout)
    assert rows["secret netsuite-oauth2-private-key"] == (
        "OK",
        "environment variable MAILBOT_NETSUITE_OAUTH2_PRIVATE_KEY",
    )
    assert "secret netsuite-token-id" not in rows
    assert rows["netsuite authentication"] == (
        "OK",
        f"OAuth 2.0 client credentials accepted by account {netsuite_emulator.account}",
    )
    assert key.splitlines()[1] not in result.stdout + result.stderr


def test_an_unreachable_imap_server_fails_and_netsuite_is_still_checked(
    tmp_path: Path, account: NetSuiteEmulator, imap_account: ImapAccount
) -> None:
    config = _config(tmp_path, account, imap_account, port=_free_port())
    result = _check(config, secret_env(account, imap_account))
    assert result.returncode == 1, result.stderr
    rows = _lines(result.stdout)
    assert rows["imap connection"][0] == "FAIL"
    assert "connection to 127.0.0.1" in rows["imap connection"][1]
    assert not set(IMAP_CHECKS[1:]) & rows.keys()
    assert [rows[name][0] for name in NETSUITE_CHECKS] == ["OK"] * 4


def test_a_missing_watched_folder_fails_after_a_good_login(
    tmp_path: Path, account: NetSuiteEmulator, imap_account: ImapAccount
) -> None:
    config = _config(tmp_path, account, imap_account, folder="Invitations")
    result = _check(config, secret_env(account, imap_account))
    assert result.returncode == 1
    rows = _lines(result.stdout)
    assert rows["imap connection"][0] == "OK"
    assert rows["imap capabilities"][0] == "OK"
    assert rows["imap folder"][0] == "FAIL"
    assert "'Invitations'" in rows["imap folder"][1]
    assert "Invitations" not in imap_account.folders()


def test_wrong_netsuite_credentials_fail_authentication(
    tmp_path: Path, account: NetSuiteEmulator, imap_account: ImapAccount
) -> None:
    wrong = "not-the-token-secret-0000"
    env = secret_env(account, imap_account, MAILBOT_NETSUITE_TOKEN_SECRET=wrong)
    result = _check(_config(tmp_path, account, imap_account), env)
    assert result.returncode == 1
    rows = _lines(result.stdout)
    assert rows["netsuite authentication"][0] == "FAIL"
    assert "HTTP 401 INVALID_LOGIN" in rows["netsuite authentication"][1]
    assert "clocks" not in rows["netsuite authentication"][1]
    assert rows["netsuite schema"][0] == "FAIL"
    assert rows["clock skew"][0] == "OK"  # read from an unsigned answer
    assert [rows[name][0] for name in IMAP_CHECKS] == ["OK"] * 4
    signed = [entry for entry in account.request_log() if entry.auth_scheme == "OAuth"]
    assert [entry.audit for entry in signed] == ["InvalidSignature", "InvalidSignature"]


def test_a_required_custom_field_fails_naming_it(tmp_path: Path, imap_account: ImapAccount) -> None:
    data = small_test_data()
    data["custom_fields"] = [
        {"id": "custevent_region", "label": "Region", "type": "string", "required": True},
        {"id": "custevent_billable", "label": "Billable", "type": "boolean"},
    ]
    with NetSuiteEmulator(data) as emulator:
        result = _check(
            _config(tmp_path, emulator, imap_account), secret_env(emulator, imap_account)
        )
    assert result.returncode == 1
    status, detail = _lines(result.stdout)["netsuite required fields"]
    assert status == "FAIL"
    assert "custom field custevent_region (Region)" in detail
    assert "custevent_billable" not in detail


@pytest.mark.parametrize(
    ("skew", "status", "exit_code"),
    [(600.0, "FAIL", 1), (-120.0, "WARN", 0)],
)
def test_a_skewed_netsuite_clock(
    tmp_path: Path, imap_account: ImapAccount, skew: float, status: str, exit_code: int
) -> None:
    with NetSuiteEmulator(small_test_data(), clock=lambda: time.time() + skew) as emulator:
        result = _check(
            _config(tmp_path, emulator, imap_account), secret_env(emulator, imap_account)
        )
    assert result.returncode == exit_code, result.stdout
    rows = _lines(result.stdout)
    found, detail = rows["clock skew"]
    assert found == status
    seconds = int(re.search(r"is (\d+) s", detail).group(1))  # type: ignore[union-attr]
    assert abs(seconds - abs(skew)) <= 3
    assert ("ahead of" if skew > 0 else "behind") in detail
    if status == "FAIL":  # a real NetSuite refuses the signatures too
        assert rows["netsuite authentication"][0] == "FAIL"
        assert "more than 5 minutes apart" in rows["netsuite authentication"][1]
    else:
        assert rows["netsuite authentication"][0] == "OK"
        assert result.stdout.splitlines()[-1] == "0 failed, 1 warning, 13 ok"


def test_a_bad_configuration_lists_every_problem_and_exits_78(tmp_path: Path) -> None:
    config = tmp_path / "mailbot.toml"
    config.write_text(
        '[netsuite]\naccount = "not an account"\nbase_url = "http://netsuite.example.com"\n'
        '[imap]\nhost = "mail.example.com"\ntls = "none"\n'
        '[sync]\nrecurrence = "sometimes"\n'
        '[daemon]\npassword = "hunter2"\n',
        encoding="utf-8",
    )
    env = path_env()
    result = _check(config, env)
    assert result.returncode == 78
    assert result.stdout == ""
    problems = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert len(problems) == 6, result.stderr
    for expected in (
        "netsuite.account",
        "netsuite.base_url: plain http is allowed only to a loopback address",
        "imap.username: required",
        "imap.tls = 'none' is allowed only to a loopback address",
        "sync.recurrence",
        "daemon.password: secrets do not belong in the configuration file",
    ):
        assert any(expected in problem for problem in problems), expected
    assert "hunter2" not in result.stderr

    as_json = _check(config, env, "--json")
    assert as_json.returncode == 78
    assert len(json.loads(as_json.stdout)["configuration"]) == 6


def test_missing_secrets_are_listed_together_and_exit_78(
    tmp_path: Path, account: NetSuiteEmulator, imap_account: ImapAccount
) -> None:
    env = path_env()
    result = _check(_config(tmp_path, account, imap_account), env)
    assert result.returncode == 78
    missing = re.findall(r"^  - secret ([a-z0-9-]+):", result.stderr, flags=re.MULTILINE)
    assert missing == [
        "netsuite-consumer-key",
        "netsuite-consumer-secret",
        "netsuite-token-id",
        "netsuite-token-secret",
        "imap-password",
    ]
    assert account.request_log() == []

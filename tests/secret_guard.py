"""No known secret value in any log record or captured process output of the test session.

A pytest plugin, registered in tests/conftest.py with ``pytest_plugins``:

* a handler on the root logger, which is set to DEBUG for the whole session (and set back
  after each test, since some tests configure logging themselves), renders every record the
  way a formatter would (message with its arguments, exception and stack text, the
  ``extra`` fields) and keeps each one holding a known secret;
* ``subprocess.run`` is wrapped so that the output a test captures from a process (the
  system tests run ``mailbot`` as a real process, its logs on stderr) is searched as well;
  a test that reads a long-running process line by line (``subprocess.Popen``: the daemon
  runs of the reliability and daemon tests) hands each line to :func:`check_process_output`;
* at the end, the offending records are printed and the session fails, whatever the tests
  themselves said.

The known secrets: the NetSuite emulator's credentials (the demo account shipped in
mailbot/sim and the test accounts of tests/netsuite_fixtures.py and the engine scenarios),
the test IMAP password, the test OAuth 2.0 authority's client secret and the demo OAuth 2.0
private key. tests/unit/test_secret_guard.py proves that a leak fails a session.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mailbot.sim
from tests.imap_fixtures import PASSWORD as IMAP_PASSWORD
from tests.integration.engine_support import CREDENTIALS as SCENARIO_CREDENTIALS
from tests.netsuite_fixtures import small_test_data
from tests.oauth2_fixtures import CLIENT_SECRET

SIM = Path(mailbot.sim.__file__).parent
NOT_SECRET = frozenset({"account"})  # the account ID is in every URL
MIN_KEY_LINE = 40  # lines of a PEM body at least this long are searched for


def known_secrets() -> tuple[str, ...]:
    """Every secret value the tests hand to the code, longest first."""
    demo = json.loads((SIM / "demo_data.json").read_text(encoding="utf-8"))["credentials"]
    values = {IMAP_PASSWORD, CLIENT_SECRET}
    for credentials in (demo, small_test_data()["credentials"], SCENARIO_CREDENTIALS):
        values |= {value for key, value in credentials.items() if key not in NOT_SECRET}
    values |= set(_pem_body_lines((SIM / "demo_oauth2_key.pem").read_text(encoding="ascii")))
    return tuple(sorted(values, key=len, reverse=True))


def _pem_body_lines(pem: str) -> Iterator[str]:
    body = pem.split("-----BEGIN PRIVATE KEY-----", 1)[1].split("-----END", 1)[0]
    return (line.strip() for line in body.splitlines() if len(line.strip()) >= MIN_KEY_LINE)


class SecretGuard(logging.Handler):
    """Keeps what was logged or printed with a known secret in it."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__(logging.DEBUG)
        self.secrets = secrets
        self.findings: list[str] = []
        self.test = "(outside any test)"
        self.records = 0
        self.outputs = 0
        self.lines = 0  # read line by line from long-running processes

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        self.check(f"log record of {record.name} ({record.levelname})", _rendered(record))

    def check(self, where: str, text: str) -> None:
        for secret in self.secrets:
            if secret in text:
                start = max(text.index(secret) - 80, 0)
                excerpt = text[start : start + 200].replace(secret, "<SECRET>")
                self.findings.append(f"{self.test}: {where}: ...{excerpt!r}...")
                return


def _rendered(record: logging.LogRecord) -> str:
    """Everything a formatter could write about ``record``."""
    parts = [str(record.msg)]
    try:
        parts.append(record.getMessage())
    except Exception as error:  # noqa: BLE001 - a bad format string is not this plugin's concern
        parts.append(repr(error))
    parts.extend(repr(arg) for arg in _args(record))
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    parts.extend(text for text in (record.exc_text, record.stack_info) if text)
    standard = vars(logging.makeLogRecord({}))
    parts.extend(repr(v) for k, v in vars(record).items() if k not in standard)
    return "\n".join(parts)


def _args(record: logging.LogRecord) -> tuple[Any, ...]:
    if isinstance(record.args, dict):
        return tuple(record.args.values())
    return tuple(record.args or ())


GUARD_KEY = pytest.StashKey[SecretGuard]()
_ACTIVE: list[SecretGuard] = []  # the session's guard, for check_process_output


def check_process_output(where: str, text: str) -> None:
    """Search output read from a ``subprocess.Popen`` process (a no-op outside a session)."""
    for guard in _ACTIVE:
        guard.lines += 1
        guard.check(where, text)


def pytest_configure(config: pytest.Config) -> None:
    guard = SecretGuard(known_secrets())
    config.stash[GUARD_KEY] = guard
    _ACTIVE.append(guard)
    config.add_cleanup(lambda: _ACTIVE.remove(guard))
    root = logging.getLogger()
    root.addHandler(guard)
    root.setLevel(logging.DEBUG)
    original_run = subprocess.run

    def run_and_check(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        result = original_run(*args, **kwargs)
        for name in ("stdout", "stderr"):
            output = getattr(result, name)
            if isinstance(output, bytes):
                output = output.decode("utf-8", "replace")
            if output:
                guard.outputs += 1
                guard.check(f"{name} of {_command(result.args)}", output)
        return result

    subprocess.run = run_and_check  # type: ignore[assignment]
    config.add_cleanup(lambda: setattr(subprocess, "run", original_run))
    config.add_cleanup(lambda: root.removeHandler(guard))


def _command(args: Any) -> str:
    words = args if isinstance(args, list | tuple) else [args]
    return " ".join(str(word) for word in words)[:120]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    guard = item.config.stash[GUARD_KEY]
    guard.test = item.nodeid
    root = logging.getLogger()
    try:
        return (yield)
    finally:
        guard.test = "(between tests)"
        if guard not in root.handlers:
            root.addHandler(guard)
        root.setLevel(logging.DEBUG)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    guard = config.stash[GUARD_KEY]
    if guard.findings:
        terminalreporter.section("secret guard: known secret values were logged or printed")
        for finding in guard.findings:
            terminalreporter.line(finding)
    terminalreporter.write_line(
        f"secret guard: {guard.records} log records, {guard.outputs} process outputs and "
        f"{guard.lines} lines of long-running processes "
        f"searched for {len(guard.secrets)} known secrets, {len(guard.findings)} found"
    )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.stash[GUARD_KEY].findings and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

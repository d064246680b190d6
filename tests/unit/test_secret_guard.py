"""tests/secret_guard.py proven: a session in which a known secret is logged or printed by a
process fails, although its tests pass; a clean one passes.

Each case runs a pytest session of its own (pytest's ``pytester``) in a new process with
the guard loaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.engine_support import CREDENTIALS
from tests.secret_guard import known_secrets

ROOT = Path(__file__).resolve().parents[2]
TOKEN_SECRET = CREDENTIALS["token_secret"]


@pytest.fixture
def session(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(pytester.path)
    return pytester


def _run(session: pytest.Pytester, test_source: str) -> pytest.RunResult:
    session.makepyfile(test_source)
    return session.runpytest_subprocess("-p", "tests.secret_guard", "-p", "no:cacheprovider")


def test_a_secret_in_a_log_record_fails_the_session(session: pytest.Pytester) -> None:
    result = _run(
        session,
        f"""
import logging

def test_leaks() -> None:
    logging.getLogger("mailbot.adapters").debug("signed with %s", {TOKEN_SECRET!r})
""",
    )
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*secret guard: known secret values were logged or printed*",
            "*test_leaks: log record of mailbot.adapters (DEBUG)*signed with <SECRET>*",
        ]
    )
    assert TOKEN_SECRET not in result.stdout.str()  # the report does not repeat it


def test_a_secret_in_an_exception_or_an_extra_field_is_found(session: pytest.Pytester) -> None:
    result = _run(
        session,
        f"""
import logging

def test_in_traceback() -> None:
    try:
        raise RuntimeError("refused: " + {TOKEN_SECRET!r})
    except RuntimeError:
        logging.getLogger("x").exception("call failed")

def test_in_extra() -> None:
    logging.getLogger("x").info("configured", extra={{"auth": {{"t": {TOKEN_SECRET!r}}}}})
""",
    )
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*test_in_traceback: *", "*test_in_extra: *"])


def test_a_secret_printed_by_a_process_fails_the_session(session: pytest.Pytester) -> None:
    result = _run(
        session,
        f"""
import subprocess, sys

def test_child_prints() -> None:
    code = "import sys; sys.stderr.write(" + repr({TOKEN_SECRET!r}) + ")"
    subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
""",
    )
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*test_child_prints: stderr of *"])


def test_a_clean_session_passes(session: pytest.Pytester) -> None:
    result = _run(
        session,
        """
import logging

def test_clean() -> None:
    logging.getLogger("mailbot").debug("secret netsuite-token-secret: from the environment")
""",
    )
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK


def test_every_kind_of_test_credential_is_known() -> None:
    secrets = known_secrets()
    assert TOKEN_SECRET in secrets and CREDENTIALS["consumer_secret"] in secrets
    assert "imap-test-password-5b8e1d" in secrets
    assert all(len(secret) >= 16 for secret in secrets)  # no ordinary word among them


def test_a_secret_in_a_line_read_from_a_running_process_fails_the_session(
    session: pytest.Pytester,
) -> None:
    result = _run(
        session,
        f"""
import subprocess
import sys

from tests.secret_guard import check_process_output

def test_daemon_prints() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "print('token ' + {TOKEN_SECRET!r})"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        check_process_output("stdout of a daemon", line)
    process.wait()
""",
    )
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*test_daemon_prints: stdout of a daemon: *<SECRET>*"])

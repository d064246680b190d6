"""Hostile values in what is logged: a Subject, a Message-ID, an attachment's file name, an
event's UID and title carrying line breaks, terminal escapes, U+2028, NUL and very long
runs, through `mailbot once` (text and JSON log lines), `mailbot log` and `mailbot status`,
as real processes against Dovecot and the NetSuite emulator. Every record stays one line,
no line can be forged, and no control character reaches the terminal or the journal raw.
"""

from __future__ import annotations

import json
import re
from email.header import Header
from pathlib import Path
from typing import Any

import pytest

from mailbot.sim.netsuite import NetSuiteEmulator
from tests.system.cli_support import DEMO_SYNC_MAILBOX, run_mailbot, secret_env
from tests.system.test_daemon_cli import _config

FORGED = "INFO mailbot.decisions: decision outcome=create forged=yes"
HOSTILE = f"Review\r\n{FORGED}\n\x1b[2J\x1b]0;owned\x07\u2028\u2029\x85\x00\t" + "x" * 5000
# raw control characters, as they would reach a terminal or the journal
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR) ")
ORGANIZER = "ada.weber@lakeside-instruments.example.com"
CUSTOMER = "paula.moreau@alder-ventures.example.org"


def _ical_text(value: str) -> str:
    """An iCalendar TEXT value: backslash, comma, semicolon and line breaks escaped; the
    other control characters are left in, as a hostile sender would."""
    escaped = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return escaped.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "")


def _calendar(uid: str, summary: str, filler: int = 0) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//hostile//EN\r\nMETHOD:REQUEST\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261120T090000Z\r\n"
        + "X-FILL:1\r\n"
        * filler
        + "DTSTART:20261203T100000Z\r\nDTEND:20261203T110000Z\r\n"
        f"SUMMARY:{_ical_text(summary)}\r\nORGANIZER:mailto:{ORGANIZER}\r\n"
        f"ATTENDEE:mailto:{CUSTOMER}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def _message(number: int, calendar: str, filename: str, *, message_id: str) -> bytes:
    subject = Header(HOSTILE, "utf-8").encode()  # encoded words carry what a header cannot
    attachment_name = Header(filename, "utf-8").encode()
    body = calendar.encode("utf-8")
    return (
        (
            f"From: Ada Weber <{ORGANIZER}>\r\nTo: {DEMO_SYNC_MAILBOX}\r\n"
            f"Subject: {subject}\r\nDate: Fri, 20 Nov 2026 09:0{number}:00 +0000\r\n"
            f"Message-ID: {message_id}\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\nHello.\r\n"
            f"--b\r\nContent-Type: text/calendar; method=REQUEST; charset=utf-8\r\n"
            f'Content-Disposition: attachment; filename="{attachment_name}"\r\n\r\n'
        ).encode()
        + body
        + b"\r\n--b--\r\n"
    )


def _hostile_mailbox(account: Any) -> list[bytes]:
    escape_id = "<esc\x1b[31mred\x7f\x08@hostile.example>"
    long_id = "<" + "L" * 20_000 + "@hostile.example>"
    synced = _message(
        1,
        _calendar("uid\x1b[2J\u2028" + "u" * 300 + "@hostile.example", HOSTILE),
        "invite\r\nINFO forged.ics",
        message_id=escape_id,
    )
    oversized = _message(  # over [limits] max_calendar_lines: the detail names the file
        2,
        _calendar("big@hostile.example", "Big", filler=100),
        f"big\r\n{FORGED}\x1b[2J\u2028.ics",
        message_id=long_id,
    )
    messages = [synced, oversized]
    for raw in messages:
        account.append("INBOX", raw)
    return messages


def _assert_one_line_each(lines: list[str], where: str) -> None:
    for line in lines:
        assert not RAW_CONTROL.search(line), f"{where}: raw control character in {line[:200]!r}"
        assert not line.lstrip("<0123456789>").startswith(("INFO", "WARNING", "forged")), where


def _text_log_lines(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    _assert_one_line_each(lines, "text log")
    strays = [line[:200] for line in lines if not TEXT_LINE.match(line)]
    assert not strays, f"lines that are not log records: {strays}"
    return lines


@pytest.mark.parametrize("as_json", [False, True])
def test_hostile_values_stay_one_escaped_line_in_every_output(
    tmp_path: Path, demo_account: NetSuiteEmulator, imap_account: Any, as_json: bool
) -> None:
    _hostile_mailbox(imap_account)
    config = _config(tmp_path, demo_account, imap_account)
    text = config.read_text(encoding="utf-8")
    text = text.replace("log_json = true", f"log_json = {str(as_json).lower()}")
    config.write_text(text + "[limits]\nmax_calendar_lines = 50\n", encoding="utf-8")
    env = secret_env(demo_account, imap_account)

    run = run_mailbot("once", "--config", str(config), env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    _assert_one_line_each(run.stdout.splitlines(), "once stdout")
    if as_json:
        entries = [json.loads(line) for line in run.stderr.splitlines()]  # one object a line
        _assert_one_line_each(run.stderr.splitlines(), "JSON log")
        decisions = [e for e in entries if e["logger"] == "mailbot.decisions"]
        by_outcome = {e["outcome"]: e for e in decisions}
        assert by_outcome["create"]["message_id"] == "<esc\x1b[31mred\x7f\x08@hostile.example>"
        assert by_outcome["create"]["summary"].startswith(f"Review\n{FORGED}\n\x1b[2J")
        assert by_outcome["skip"]["reason"] == "too_large"
        assert by_outcome["skip"]["message_id"] == "<" + "L" * 20_000 + "@hostile.example>"
    else:
        lines = _text_log_lines(run.stderr)
        decisions = [line for line in lines if " mailbot.decisions: " in line]
        assert len(decisions) == 2
        escaped_id = "<esc\\u001b[31mred\\x7f\\b@hostile.example>"  # quoted, then escaped
        assert any(escaped_id in line for line in decisions), decisions
        assert any("\\n" + FORGED in line for line in decisions)
    assert len(decisions) == 2
    assert len(demo_account.records("calendarEvent")) == 1

    table = run_mailbot("log", "--config", str(config), env=env)
    assert table.returncode == 0, table.stderr
    rows = table.stdout.splitlines()
    _assert_one_line_each(rows, "mailbot log")
    assert rows[-1] == "2 decisions"
    detail = next(row for row in rows if "calendar part" in row)
    assert detail.startswith("    calendar part 2/big")  # the file name, on the detail line
    assert FORGED + "\\x1b[2J" in detail
    as_lines = run_mailbot("log", "--json", "--config", str(config), env=env).stdout.splitlines()
    _assert_one_line_each(as_lines, "mailbot log --json")
    logged = [json.loads(line) for line in as_lines]
    assert {entry["outcome"] for entry in logged} == {"create", "skip"}
    for command in (["status"], ["status", "--json"]):
        status = run_mailbot(*command, "--config", str(config), env=env)
        assert status.returncode == 0, status.stderr
        _assert_one_line_each(status.stdout.splitlines(), " ".join(command))

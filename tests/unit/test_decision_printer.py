"""How ``mailbot run``/``once`` print decisions (dry-run, or --json): real decision records
of bundled samples, read by the core."""

from __future__ import annotations

import io
import json
from pathlib import Path

from mailbot.app import explain_bytes
from mailbot.cli import DecisionPrinter
from mailbot.core.policy import Policy
from mailbot.ports import MessageKey
from mailbot.service import Handled

SAMPLES = Path(__file__).resolve().parents[2] / "mailbot" / "samples" / "demo" / "cur"
KEY = MessageKey("imap:INBOX", 1, "1")


def _handled(name: str) -> Handled:
    explained = explain_bytes("1", (SAMPLES / name).read_bytes(), Policy())
    records = tuple(dict(record, written=False, netsuite_id=None) for record in explained.records)
    return Handled(KEY, "skipped", records)


def test_once_prints_one_table_at_the_end() -> None:
    out = io.StringIO()
    printer = DecisionPrinter(out, "UTC", as_json=False, streaming=False)
    printer.add(_handled("01-new-meeting.eml"))
    printer.add(_handled("09-forged-sender.eml"))
    assert out.getvalue() == ""
    printer.finish()
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:2] == ["UID", "OUTCOME"]
    assert lines[-1].startswith("2 decisions:")


def test_run_prints_a_line_per_decision_as_it_comes() -> None:
    out = io.StringIO()
    printer = DecisionPrinter(out, "UTC", as_json=False, streaming=True)
    printer.add(_handled("01-new-meeting.eml"))
    first = out.getvalue().splitlines()
    assert first[0].split()[:2] == ["UID", "OUTCOME"] and len(first) >= 2
    printer.add(_handled("05-multi-day.eml"))
    later = out.getvalue().splitlines()
    assert later[: len(first)] == first and later.count(first[0]) == 1  # one header
    assert "multi_day" in out.getvalue()


def test_json_lines_carry_the_whole_record() -> None:
    out = io.StringIO()
    printer = DecisionPrinter(out, "UTC", as_json=True, streaming=True)
    handled = _handled("01-new-meeting.eml")
    printer.add(handled)
    printer.finish()
    decoded = [json.loads(line) for line in out.getvalue().splitlines()]
    assert decoded == [json.loads(json.dumps(r, default=str)) for r in handled.records]

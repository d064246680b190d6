"""The plain progress lines of ``mailbot backfill`` where stderr is not a terminal."""

from __future__ import annotations

import io
import logging

import pytest

from mailbot.adapters.progress import LineProgress, TerminalProgress, progress_for


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "mailbot.progress"]


def test_a_line_at_every_tenth_with_rate_and_time_left(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    progress = LineProgress("imap:Archive", timer=clock)
    progress.start(total=95, completed=0)
    for _ in range(95):
        clock.now += 0.5  # two messages a second
        progress.advance()
    progress.stop()

    lines = _lines(caplog)
    counts = [int(line.split(": ")[1].split(" of ")[0]) for line in lines]
    assert counts == [0, 10, 19, 29, 38, 48, 57, 67, 76, 86, 95]  # no repeat at the end
    assert "imap:Archive: 48 of 95 messages done (50%), 2.0 messages/s, about 24s left" in lines
    assert lines[-1] == "imap:Archive: 95 of 95 messages done (100%), 2.0 messages/s"
    record = next(r for r in caplog.records if r.getMessage() == lines[5])
    assert (record.done, record.total, record.rate, record.eta_seconds) == (48, 95, 2.0, 24)  # type: ignore[attr-defined]


def test_slow_messages_get_a_line_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    progress = LineProgress("imap:INBOX", timer=clock, interval=10.0)
    progress.start(total=1000, completed=400)  # 400 done by an earlier run
    for _ in range(3):
        clock.now += 11.0
        progress.advance()
    progress.stop()  # interrupted: the last count was shown already

    lines = _lines(caplog)
    assert lines[0] == "imap:INBOX: 400 of 1000 messages done (40%)"
    assert [line.split(": ")[1].split(" (")[0] for line in lines[1:]] == [
        "401 of 1000 messages done",
        "402 of 1000 messages done",
        "403 of 1000 messages done",
    ]


def test_a_terminal_gets_the_bar_anything_else_the_lines() -> None:
    assert isinstance(progress_for("imap:INBOX", io.StringIO(), io.StringIO()), LineProgress)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(progress_for("imap:INBOX", Terminal(), io.StringIO()), TerminalProgress)

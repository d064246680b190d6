"""How far a long command has got (``mailbot backfill``), on stderr.

On a terminal: rich's live progress bar, with the count, the rate, the time taken and the
time left. rich estimates the rate over the last 30 seconds, keeps the bar at the bottom
while log lines scroll above it, and follows the terminal's width and colour settings
(``NO_COLOR``, ``TERM=dumb``).

Anywhere else (journald, a pipe, a file, CI): plain log lines, because a live display there
is drawn only once, at its end, or leaves control characters in the log. A line is written
at the start, at every tenth of the total, at most ``interval`` seconds after the previous
one when messages are going through, and at the end; the rate and the time left are still
rich's estimates, read from a progress that draws nothing.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Final, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

LOG = logging.getLogger("mailbot.progress")

STEPS: Final = 10  # a plain line at every tenth of the total
INTERVAL: Final = 10.0  # and at least this often (seconds) while messages go through


def progress_for(
    label: str, stream: TextIO | None = None, stdout: TextIO | None = None
) -> TerminalProgress | LineProgress:
    """A bar when ``stream`` (default: stderr) is a terminal, plain log lines otherwise."""
    stream = sys.stderr if stream is None else stream
    stdout = sys.stdout if stdout is None else stdout
    if _is_terminal(stream):
        return TerminalProgress(label, stream, stdout_too=_is_terminal(stdout))
    return LineProgress(label)


class RateColumn(ProgressColumn):
    """Messages per second, as rich estimates it."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text("" if speed is None else f"{speed:.1f} msg/s", style="progress.data.speed")


class TerminalProgress:
    """rich's live bar on a terminal.

    While it is shown, text written to stderr (the log) is printed above it. When stdout is
    the terminal too, output written through ``sys.stdout`` (JSON Lines) is as well; when it
    is not, stdout is left alone so that a redirected output stays clean.
    """

    def __init__(self, label: str, stream: TextIO, *, stdout_too: bool) -> None:
        self._progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(file=stream, soft_wrap=True),  # JSON and log lines stay whole
            redirect_stdout=stdout_too,
            redirect_stderr=True,
        )
        self._label = label
        self._stream = stream
        self._task: TaskID | None = None
        self._moved: list[logging.StreamHandler[TextIO]] = []

    def start(self, total: int, completed: int) -> None:
        self._task = self._progress.add_task(self._label, total=total, completed=completed)
        self._progress.start()
        self._log_above_the_bar()

    def advance(self, count: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, count)

    def stop(self) -> None:
        for handler in self._moved:
            handler.setStream(self._stream)
        self._moved = []
        self._progress.stop()

    def _log_above_the_bar(self) -> None:
        """Point the log handlers that write to this terminal at rich's stand-in for
        ``sys.stderr``: a handler keeps the stream it was given, so rich alone cannot."""
        if sys.stderr is self._stream:
            return  # not redirected (stream is another terminal than stderr)
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is self._stream:
                handler.setStream(sys.stderr)
                self._moved.append(handler)


class LineProgress:
    """Plain log lines (see the module docstring)."""

    def __init__(
        self,
        label: str,
        *,
        interval: float = INTERVAL,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._label = label
        self._interval = interval
        self._timer = timer
        self._estimator = Progress(disable=True, get_time=timer)  # rate and time left only
        self._task: TaskID | None = None
        self._next_step = 0
        self._last_line = 0.0
        self._last_done = -1  # the count the last line showed

    def start(self, total: int, completed: int) -> None:
        self._task = self._estimator.add_task(self._label, total=total, completed=completed)
        self._line()

    def advance(self, count: int = 1) -> None:
        if self._task is None:
            return
        self._estimator.advance(self._task, count)
        task = self._estimator.tasks[0]
        if task.completed >= self._next_step or self._timer() - self._last_line >= self._interval:
            self._line()

    def stop(self) -> None:
        """The last line, unless the one before already showed the final count."""
        if self._task is not None and self._estimator.tasks[0].completed != self._last_done:
            self._line()
        self._task = None

    def _line(self) -> None:
        task = self._estimator.tasks[0]
        total = int(task.total or 0)
        done = int(task.completed)
        self._next_step = _next_step(done, total)
        self._last_line = self._timer()
        self._last_done = done
        speed, left = task.speed, task.time_remaining
        rate = f", {speed:.1f} messages/s" if speed else ""
        eta = f", about {_duration(left)} left" if left and done < total else ""
        percent = f" ({100 * done // total}%)" if total else ""
        LOG.info(
            "%s: %d of %d messages done%s%s%s",
            self._label,
            done,
            total,
            percent,
            rate,
            eta,
            extra={
                "folder": self._label,
                "done": done,
                "total": total,
                "rate": round(speed, 2) if speed else None,
                "eta_seconds": left if done < total else None,
            },
        )


def _next_step(done: int, total: int) -> int:
    """The first count past ``done`` that completes another tenth of ``total``."""
    if total <= 0:
        return sys.maxsize
    tenth = done * STEPS // total + 1
    return -(-tenth * total // STEPS)  # ceiling division


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"

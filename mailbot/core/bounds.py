"""Raw input measured against the limits before any parser sees it.

The parsers under the core spend time and memory per line, per header field, per level of
MIME nesting and per iCalendar content line, and some costs grow faster than the input: the
standard library's email parser recurses once per level (ten thousand levels raise
RecursionError, nine hundred take seconds), decoding a header of many encoded words takes
time quadratic in its length, icalendar spends about 0.1 ms per content line. The checks
here read bytes only, with searches that run in C, so their cost is linear in the size
whatever the structure; what passes them is small enough for the parsers
(``bench/limits.py`` measures both).

The structure is read from the text, not parsed: a part is counted from its boundary line,
a header section runs from the part's start to its first empty line, and a boundary is
read from a ``Content-Type`` header with the same parameter parser the email package uses.
Text that only quotes such lines may be counted as structure, so a count can be high but
not low; the parsed walk in ``mime.py`` then applies the exact MIME limits.
"""

from __future__ import annotations

import email.message
import re
from dataclasses import dataclass, field

from mailbot.core.policy import Limits

# a line that may open a part or declare one: "--boundary" or a Content-Type header; the
# email package also ends a line at a lone CR, so a line may follow one
_MARK = re.compile(rb"(?:^|(?<=\r))(?:--|content-type:)", re.IGNORECASE | re.MULTILINE)
_LINE_END = re.compile(rb"\r\n|\r|\n")
_HEADER_REST = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)?(?:[ \t][^\r\n]*(?:\r\n|\r|\n)?)*")
_EMPTY_LINE = re.compile(rb"(?:\r\n|\n|\r(?!\n))(\r\n|\n|\r)")
_VEVENT = re.compile(rb"^BEGIN:VEVENT[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)


def message_problem(raw: bytes, limits: Limits) -> str | None:
    """Why an e-mail is over a limit, told before it is parsed; None when it is not."""
    if len(raw) > limits.max_message_bytes:
        return f"{len(raw)} bytes > {limits.max_message_bytes}"
    return _lines_problem(raw, limits) or _Structure(raw, limits).problem()


def header_section(raw: bytes, limits: Limits) -> bytes | None:
    """The message's own header section, up to its empty line; None when it is over a limit
    (it is then not worth reading at all)."""
    structure = _Structure(raw, limits)
    if structure.section_problem(0, len(raw)) is not None:
        return None
    return raw[: structure.section_end(0, len(raw))]


@dataclass(frozen=True, slots=True)
class CalendarSize:
    """What iCalendar data will cost to parse: its bytes, VEVENTs and content lines."""

    bytes: int = 0
    events: int = 0
    lines: int = 0

    def __add__(self, other: CalendarSize) -> CalendarSize:
        return CalendarSize(
            self.bytes + other.bytes, self.events + other.events, self.lines + other.lines
        )


def calendar_size(data: bytes) -> CalendarSize:
    """The size of one piece of iCalendar data, read without parsing it."""
    events = sum(1 for _ in _VEVENT.finditer(data))
    # icalendar splits content lines at LF and joins a line that starts with a blank
    lines = data.count(b"\n") - data.count(b"\n ") - data.count(b"\n\t") + 1
    return CalendarSize(len(data), events, lines)


def calendar_problem(part: CalendarSize, message: CalendarSize, limits: Limits) -> str | None:
    """Why a calendar part is over a limit, told before it is parsed: its VEVENTs, or the
    bytes and content lines of the message's calendar data so far (``message``, this part
    included), which bound what icalendar spends on the message."""
    if message.bytes > limits.max_calendar_bytes:
        return f"{message.bytes} bytes of calendar data > {limits.max_calendar_bytes}"
    if part.events > limits.max_events_per_message:
        return f"{part.events} events > {limits.max_events_per_message}"
    if message.lines > limits.max_calendar_lines:
        return f"{message.lines} content lines of calendar data > {limits.max_calendar_lines}"
    return None


# --- lines -------------------------------------------------------------------------------


def _lines_problem(raw: bytes, limits: Limits) -> str | None:
    lines = raw.count(b"\n") + raw.count(b"\r") - raw.count(b"\r\n") + 1
    if lines > limits.max_message_lines:
        return f"{lines} lines > {limits.max_message_lines}"
    if _has_long_line(raw, limits.max_line_bytes):
        return f"a line longer than {limits.max_line_bytes} bytes"
    return None


def _has_long_line(raw: bytes, most: int) -> bool:
    """Whether a line (between two line feeds) is longer than ``most`` bytes.

    Every window of ``most + 1`` bytes from a line's start must hold a line feed; jumping to
    the last one each time checks the whole message in about ``2 * len(raw) / most`` steps.
    """
    start = 0
    while len(raw) - start > most:
        newline = raw.rfind(b"\n", start, start + most + 1)
        if newline < 0:
            return True
        start = newline + 1
    return False


# --- MIME structure ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Container:
    """A multipart (its boundary) or an encapsulated message (no boundary: it ends with the
    part that holds it). The parts of a multipart/digest are messages by default, so each
    such part is two levels and two parts."""

    boundary: bytes | None
    digest: bool = False


@dataclass
class _Structure:
    """One pass over the lines that make MIME structure, stopped at the first limit crossed.

    ``open`` holds the containers around the current line, outermost first; ``sections``
    are where header sections start.
    """

    raw: bytes
    limits: Limits
    open: list[_Container] = field(default_factory=list)
    parts: int = 1
    sections: list[int] = field(default_factory=lambda: [0])

    def problem(self) -> str | None:
        for mark in _MARK.finditer(self.raw):
            found = self._read_mark(mark.start())
            if found is not None:
                return found
        return self._sections_problem()

    def _read_mark(self, start: int) -> str | None:
        if self.raw.startswith(b"--", start):
            self._delimiter(start)
        else:
            declared = self._content_type(start)
            if declared is not None:
                return declared
        depth = len(self.open) + sum(container.digest for container in self.open)
        if depth > self.limits.max_mime_depth:
            return f"MIME nesting deeper than {self.limits.max_mime_depth}"
        if self.parts > self.limits.max_mime_parts:
            return f"more than {self.limits.max_mime_parts} parts"
        return None

    def _delimiter(self, start: int) -> None:
        """A "--boundary" line of an open multipart starts a part; "--boundary--" ends it.
        Either closes whatever was open inside (the email package does the same)."""
        after = _after_line(self.raw, start)
        text = self.raw[start + 2 : after].rstrip(b"\r\n").rstrip(b" \t")
        for level in range(len(self.open) - 1, -1, -1):
            container = self.open[level]
            if container.boundary is None:
                continue
            if text == container.boundary:
                del self.open[level + 1 :]
                self.parts += 1
                self.sections.append(after)
                if container.digest:
                    self._encapsulated(after, opens=False)
                return
            if text == container.boundary + b"--":
                del self.open[level:]
                return

    def _content_type(self, start: int) -> str | None:
        value_start = start + len(b"content-type:")
        rest = _HEADER_REST.match(self.raw, value_start)
        end = rest.end() if rest else value_start
        if end - start > self.limits.max_header_bytes:
            return f"a header of more than {self.limits.max_header_bytes} bytes"
        probe = email.message.Message()
        text = self.raw[value_start:end].decode("ascii", "surrogateescape")
        probe["Content-Type"] = text.lstrip(" \t").rstrip("\r\n")
        if probe.get_content_maintype() == "message":
            self._encapsulated(end, opens=True)
        elif probe.get_content_maintype() == "multipart":
            boundary = probe.get_boundary()
            if boundary is not None:
                digest = probe.get_content_subtype() == "digest"
                self.open.append(_Container(_as_line_bytes(boundary), digest))
        return None

    def _encapsulated(self, line_start: int, *, opens: bool) -> None:
        """A message inside a part: it starts after the part's header section (the one
        ``line_start`` is in), with a header section of its own."""
        if opens:
            self.open.append(_Container(None))
        self.parts += 1
        limit = min(len(self.raw), line_start + self.limits.max_header_bytes + 1)
        empty = self._empty_line(line_start, limit)
        if empty is not None:
            self.sections.append(empty[1])

    def _sections_problem(self) -> str | None:
        starts = sorted(set(self.sections))
        fields = 0
        for index, start in enumerate(starts):
            stop = starts[index + 1] if index + 1 < len(starts) else len(self.raw)
            end = self.section_end(start, stop)
            if end - start > self.limits.max_header_bytes:
                return f"a header section of more than {self.limits.max_header_bytes} bytes"
            fields += self._fields(start, end)
            if fields > self.limits.max_header_fields:
                return f"more than {self.limits.max_header_fields} header fields"
        return None

    def section_problem(self, start: int, stop: int) -> str | None:
        """Why the header section starting at ``start`` (and ending by ``stop``) is too big."""
        end = self.section_end(start, stop)
        if end - start > self.limits.max_header_bytes:
            return f"a header section of more than {self.limits.max_header_bytes} bytes"
        if self._fields(start, end) > self.limits.max_header_fields:
            return f"more than {self.limits.max_header_fields} header fields"
        return None

    def section_end(self, start: int, stop: int) -> int:
        """Where the header section starting at ``start`` ends: its empty line, else ``stop``
        (or just past the most it may hold, which is then over the limit)."""
        limit = min(stop, start + self.limits.max_header_bytes + 1)
        empty = self._empty_line(start, limit)
        return empty[0] if empty is not None else limit

    def _empty_line(self, line_start: int, limit: int) -> tuple[int, int] | None:
        """Start and end of the first empty line from the line starting at ``line_start``."""
        at_once = _LINE_END.match(self.raw, line_start, limit)
        if at_once is not None:
            return line_start, at_once.end()
        found = _EMPTY_LINE.search(self.raw, line_start, limit)
        return (found.start(1), found.end(1)) if found is not None else None

    def _fields(self, start: int, end: int) -> int:
        """Header fields between ``start`` and ``end``: lines, less folded continuations."""
        if end <= start:
            return 0
        raw = self.raw
        breaks = raw.count(b"\n", start, end) + raw.count(b"\r", start, end)
        breaks -= raw.count(b"\r\n", start, end)
        folded = sum(raw.count(fold, start, end) for fold in (b"\n ", b"\n\t", b"\r ", b"\r\t"))
        unended = raw[end - 1 : end] not in (b"\n", b"\r")
        return max(breaks - folded, 0) + unended


def _after_line(raw: bytes, start: int) -> int:
    """Where the line starting at ``start`` ends, its line break included."""
    found = _LINE_END.search(raw, start)
    return found.end() if found is not None else len(raw)


def _as_line_bytes(boundary: str) -> bytes:
    """A boundary as the lines carry it. The email package reads lines as ASCII (other bytes
    escaped), so a boundary with other characters matches no line: a line feed, which no
    line's text holds, stands for it, and the multipart stays open as it does there."""
    try:
        return boundary.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return b"\n"

"""Log output: one physical line per record, as text or as JSON, for journald and log shippers.

* Every record is one line, whatever it carries: control characters (CR, LF, TAB, the C1
  range, U+2028/U+2029) are escaped, so a Subject or Message-ID holding a line break
  cannot forge a second log line. Tracebacks are escaped too (``\\n`` between frames).
* JSON output (``configure_logging(json=True)``) is one object per line: ``time``,
  ``level``, ``logger``, ``message``, the record's ``extra`` fields, and ``exception``.
* Secrets never appear: ``extra`` fields whose names look like secrets are replaced with
  ``[redacted]``, and the secret values handed to :func:`configure_logging` are replaced
  wherever they would show up (a library echoing a token in an error, say).
* Under journald (``JOURNAL_STREAM`` names the stream) each line starts with the syslog
  priority (``<4>``), which journald turns into the entry's priority, and carries no time
  stamp (journald adds its own).
"""

from __future__ import annotations

import json as json_module
import logging
import os
import re
import sys
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any, Final, TextIO

REDACTED: Final = "[redacted]"
SECRET_FIELD: Final = re.compile(
    r"secret|passw|private|token|credential|authori[sz]ation|cookie|api_?key|consumer_key",
    re.IGNORECASE,
)
_STANDARD_FIELDS: Final = frozenset(
    {*vars(logging.LogRecord("", 0, "", 0, "", (), None)), "message", "asctime", "taskName"}
)
_PRIORITIES: Final = (
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
)
_ESCAPES: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_JSON_UNSAFE: Final = re.compile("[\x7f-\x9f\u2028\u2029]")
_MIN_SECRET: Final = 4  # shorter values would redact ordinary words


def configure_logging(
    json: bool = False,
    *,
    level: int = logging.INFO,
    stream: TextIO | None = None,
    redact: Collection[str] = (),
) -> logging.Handler:
    """One handler on the root logger (replacing one installed before by this function).

    ``redact`` holds secret values never to be written (the credentials read at start-up).
    """
    stream = sys.stderr if stream is None else stream
    journald = under_journald(stream)
    formatter: logging.Formatter = (
        JsonFormatter(journald=journald, redact=redact)
        if json
        else TextFormatter(journald=journald, redact=redact)
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.set_name("mailbot")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "mailbot"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def under_journald(stream: TextIO) -> bool:
    """True when ``stream`` is the journal stream systemd connected (``JOURNAL_STREAM``)."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = expected.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (status.st_dev, status.st_ino) == (int(device), int(inode))


def one_line(text: str) -> str:
    """``text`` with every control character escaped (``\\n``, ``\\x1b``, ``\\u2028``)."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def syslog_priority(levelno: int) -> int:
    for threshold, priority in _PRIORITIES:
        if levelno >= threshold:
            return priority
    return 7  # debug


class _SafeFormatter(logging.Formatter):
    def __init__(self, fmt: str | None, *, journald: bool, redact: Collection[str]) -> None:
        super().__init__(fmt)
        self._journald = journald
        pieces = {piece.strip() for secret in redact for piece in (secret, *secret.splitlines())}
        # longest first, so that a secret containing another is replaced whole
        self._secrets = sorted((p for p in pieces if len(p) >= _MIN_SECRET), key=len, reverse=True)

    def redacted(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def _finish(self, record: logging.LogRecord, line: str) -> str:
        return f"<{syslog_priority(record.levelno)}>{line}" if self._journald else line


class TextFormatter(_SafeFormatter):
    """``2025-06-01T12:00:00.000Z WARNING mailbot.daemon: ...``; tracebacks on the same line."""

    def __init__(self, *, journald: bool = False, redact: Collection[str] = ()) -> None:
        fmt = (
            "%(name)s: %(message)s"
            if journald
            else "%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        super().__init__(fmt, journald=journald, redact=redact)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return _timestamp(record)

    def format(self, record: logging.LogRecord) -> str:
        return self._finish(record, one_line(self.redacted(super().format(record))))


class JsonFormatter(_SafeFormatter):
    """One JSON object per line; the record's ``extra`` fields are top-level keys."""

    def __init__(self, *, journald: bool = False, redact: Collection[str] = ()) -> None:
        super().__init__(None, journald=journald, redact=redact)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redacted(record.getMessage()),
        }
        for name, value in vars(record).items():
            if name in _STANDARD_FIELDS or name.startswith("_") or name in entry:
                continue
            if SECRET_FIELD.search(name):
                entry[name] = REDACTED
            else:
                entry[name] = self._redacted_value(value)
        if record.exc_info:
            entry["exception"] = self.redacted(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = self.redacted(record.exc_text)
        if record.stack_info:
            entry["stack"] = self.redacted(self.formatStack(record.stack_info))
        text = json_module.dumps(entry, ensure_ascii=False, default=self._unknown)
        # json.dumps escapes C0 controls but leaves C1 ones and U+2028/U+2029 as they are
        return self._finish(record, _JSON_UNSAFE.sub(_json_escape, text))

    def _redacted_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redacted(value)
        if isinstance(value, dict):
            return {
                str(k): REDACTED if SECRET_FIELD.search(str(k)) else self._redacted_value(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self._redacted_value(item) for item in value]
        return value

    def _unknown(self, value: Any) -> str:
        return self.redacted(str(value))


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

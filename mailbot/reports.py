"""What ``mailbot status`` and ``mailbot log`` print, from the state store alone.

Both read the state database (safe while the daemon runs: WAL readers do not block it) and
return text: a readable report, or JSON (one object, or one object per line). Text taken
from mail (titles, Message-IDs, NetSuite's error details) is printed with its control
characters escaped, so that no message can move the cursor or forge a line on a terminal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from mailbot.logs import one_line
from mailbot.ports import MailboxCursor, ProcessedMessage

LOG_COLUMNS = ("LOGGED (UTC)", "OUTCOME", "REASON", "NETSUITE", "MESSAGE-ID", "UID", "SUMMARY")


class StateReader(Protocol):
    """The read side of ``SqliteStateStore`` that the reports use."""

    def counts(self) -> dict[str, Any]: ...

    def quarantined(self, min_attempts: int) -> list[ProcessedMessage]: ...

    def cursors(self) -> list[MailboxCursor]: ...

    def decision_log(
        self,
        *,
        message_id: str | None = None,
        uid: str | None = None,
        outcome: str | None = None,
        reason: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]: ...


def status_report(state: StateReader, *, max_attempts: int = 5, as_json: bool = False) -> str:
    """Counts (messages by outcome, events, decisions by outcome), the last pass over each
    watched folder and the last decision, and the quarantined messages (failed
    ``max_attempts`` times or more) with the reason they failed."""
    counts = state.counts()
    latest = state.decision_log(limit=1)
    last = latest[0]["logged_at"] if latest else None
    passes = state.cursors()
    held = [
        (message, _failure_reason(state, message)) for message in state.quarantined(max_attempts)
    ]
    if as_json:
        return json_line(
            {
                **counts,
                "last_decision_at": last,
                "last_passes": [
                    {
                        "mailbox": cursor.source,
                        "uidvalidity": cursor.uidvalidity,
                        "last_uid": cursor.last_uid,
                        "at": cursor.passed_at.isoformat(),
                    }
                    for cursor in passes
                ],
                "quarantined": [
                    {
                        "mailbox": message.key.source,
                        "uidvalidity": message.key.uidvalidity,
                        "uid": message.key.uid,
                        "message_id": message.message_id,
                        "attempts": message.attempts,
                        "last_attempt": message.processed_at.isoformat(),
                        "reason": reason,
                    }
                    for message, reason in held
                ],
            }
        )
    lines = [
        f"Messages:      {counts['messages']}{_breakdown(counts['by_outcome'])}",
        f"Events:        {counts['events']}",
        f"Decisions:     {sum(counts['decisions_by_outcome'].values())}"
        f"{_breakdown(counts['decisions_by_outcome'])}",
        *(
            f"Last pass:     {cursor.passed_at.isoformat(timespec='seconds')} over "
            f"{one_line(cursor.source)} (UIDVALIDITY {cursor.uidvalidity}, "
            f"highest UID seen {cursor.last_uid})"
            for cursor in passes
        ),
        f"Last decision: {last or 'never'}",
        f"Quarantined (filed to Failed after {_attempts(max_attempts)}): {len(held)}",
    ]
    for message, reason in held:
        key = message.key
        lines.append(
            f"  {one_line(f'{key.source} {key.uidvalidity}/{key.uid}')}"
            f"  {one_line(message.message_id or '(no Message-ID)')}"
            f"  {_attempts(message.attempts)}, last {message.processed_at.isoformat()}"
        )
        lines.append(f"    {one_line(reason)}")
    return "\n".join(lines) + "\n"


def decision_log_report(
    state: StateReader,
    *,
    message_id: str | None = None,
    uid: str | None = None,
    outcome: str | None = None,
    reason: str | None = None,
    limit: int = 50,
    as_json: bool = False,
) -> str:
    """The logged decisions matching every filter given, newest first, at most ``limit``.

    ``uid`` is the event's iCalendar UID. JSON: one decision record per line, as stored,
    with ``logged_at``.
    """
    entries = state.decision_log(
        message_id=message_id, uid=uid, outcome=outcome, reason=reason, limit=limit
    )
    if as_json:
        return "".join(json_line(entry) + "\n" for entry in entries)
    if not entries:
        return "no decisions match\n"
    rows = [_log_row(entry) for entry in entries]
    widths = [max(len(row[i]) for row in [LOG_COLUMNS, *rows]) for i in range(len(LOG_COLUMNS))]
    lines = [_line(LOG_COLUMNS, widths)]
    for entry, row in zip(entries, rows, strict=True):
        lines.append(_line(row, widths))
        for extra in (entry.get("error"), entry.get("detail")):
            if extra:
                lines.append(f"    {one_line(str(extra))}")
    lines.append(
        f"{len(entries)} decisions" + (" (limit reached)" if len(entries) >= limit else "")
    )
    return "\n".join(lines) + "\n"


def json_line(value: Any) -> str:
    """One line of JSON with every control character escaped (C1 and U+2028/9 included)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return "".join(f"\\u{ord(c):04x}" if _unsafe(c) else c for c in text)


def _unsafe(char: str) -> bool:
    code = ord(char)
    return 0x7F <= code <= 0x9F or code in (0x2028, 0x2029)


def _failure_reason(state: StateReader, message: ProcessedMessage) -> str:
    if message.last_error:
        return message.last_error
    if message.message_id:
        for entry in state.decision_log(message_id=message.message_id, limit=20):
            if entry.get("error"):
                return str(entry["error"])
    return "no refusal in the decision log: see the daemon's journal (journalctl -u mailbot)"


def _attempts(count: int) -> str:
    return f"{count} attempt" if count == 1 else f"{count} attempts"


def _breakdown(by_name: dict[str, int]) -> str:
    if not by_name:
        return ""
    return " (" + ", ".join(f"{name} {n}" for name, n in sorted(by_name.items())) + ")"


def _log_row(entry: dict[str, Any]) -> tuple[str, ...]:
    summary = one_line(str(entry.get("summary") or ""))
    return (
        str(entry.get("logged_at") or "")[:19].replace("T", " "),
        str(entry.get("outcome") or ""),
        str(entry.get("reason") or ""),
        _netsuite(entry),
        one_line(str(entry.get("message_id") or "")),
        one_line(str(entry.get("uid") or "")),
        summary if len(summary) <= 40 else summary[:39] + "…",
    )


def _netsuite(entry: dict[str, Any]) -> str:
    if entry.get("error"):
        return "refused"
    if entry.get("netsuite_id"):
        return f"#{entry['netsuite_id']}"
    return "written" if entry.get("written") else ""


def _line(cells: Sequence[str], widths: list[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

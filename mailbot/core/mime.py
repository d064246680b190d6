"""Raw message bytes to every calendar payload in it, plus the envelope.

The envelope comes from mail-parser (it copes with broken headers and reports defects);
the MIME tree is walked on the ``email.message.Message`` that mail-parser already built, so
each message is parsed once. Nothing here acts on the data: it only finds and decodes it.
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.message
import email.policy
import email.utils
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import mailparser

from mailbot.core.bounds import header_section, message_problem
from mailbot.core.model import CalendarPart, Envelope, MimeScan, Reason, Skip
from mailbot.core.policy import Limits
from mailbot.core.tnef import looks_like_tnef, read_tnef

CALENDAR_TYPES = frozenset(
    {"text/calendar", "application/ics", "text/x-vcalendar", "application/x-ics"}
)
CALENDAR_EXTENSIONS = (".ics", ".vcs", ".ical", ".icalendar")
TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
TEXT_BODY_TYPES = frozenset({"text/plain", "text/html", "text/enriched", "text/rtf"})
BOM = b"\xef\xbb\xbf"


@dataclass
class _Walk:
    """Mutable accumulator of one MIME walk (local to scan_message)."""

    limits: Limits
    parts: list[CalendarPart] = field(default_factory=list)
    attachments_ignored: int = 0
    part_count: int = 0
    problem: Skip | None = None
    unreadable_tnef: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def looks_like_icalendar(raw: bytes) -> bool:
    """True when the bytes are a bare iCalendar object rather than an e-mail."""
    head = raw[:512].removeprefix(BOM).lstrip()
    return head[:15].upper() == b"BEGIN:VCALENDAR"


def scan_file(raw: bytes, limits: Limits) -> MimeScan:
    """Any input file: an e-mail, a bare iCalendar object, or a bare TNEF container."""
    bare = looks_like_icalendar(raw) or looks_like_tnef(raw)
    if bare and len(raw) > limits.max_message_bytes:
        return _too_large(Envelope(), f"{len(raw)} bytes > {limits.max_message_bytes}")
    if looks_like_icalendar(raw):
        part = CalendarPart(data=raw.removeprefix(BOM), content_type="text/calendar")
        return MimeScan(envelope=Envelope(), parts=(part,))
    if looks_like_tnef(raw):
        walk = _Walk(limits)
        _add_tnef(walk, raw, "file", forwarded=False)
        return _finish(walk, Envelope())
    return scan_message(raw, limits)


def scan_message(raw: bytes, limits: Limits) -> MimeScan:
    """An RFC 5322 message: its envelope and every calendar part, at any depth."""
    problem = message_problem(raw, limits)
    if problem is not None:
        return _too_large(_envelope_if_safe(raw, limits), problem)
    parsed = _parse_with_mailparser(raw)
    envelope = _envelope(parsed, raw)
    walk = _Walk(limits)
    _walk_part(walk, parsed.message, depth=0, location="", forwarded=False)
    return _finish(walk, envelope)


def _finish(walk: _Walk, envelope: Envelope) -> MimeScan:
    problem = walk.problem or _missing_calendar_problem(walk)
    return MimeScan(
        envelope=envelope,
        parts=tuple(walk.parts) if problem is None else (),
        attachments_ignored=walk.attachments_ignored,
        problem=problem,
        notes=tuple(walk.notes),
    )


def _missing_calendar_problem(walk: _Walk) -> Skip | None:
    if walk.parts:
        return None
    if walk.unreadable_tnef:
        return Skip(Reason.UNSUPPORTED_FORMAT, "; ".join(walk.unreadable_tnef))
    return Skip(Reason.NO_CALENDAR_PART, "no calendar data in the message")


def _too_large(envelope: Envelope, what: str) -> MimeScan:
    return MimeScan(envelope=envelope, problem=Skip(Reason.TOO_LARGE, f"message: {what}"))


# --- parsing -----------------------------------------------------------------------------


def _parse_with_mailparser(raw: bytes) -> Any:
    """mail-parser's view of the message; its own failures fall back to the stdlib parser."""
    try:
        return mailparser.parse_from_bytes(raw)
    except Exception:  # noqa: BLE001 - mail-parser raises assorted errors on broken mail
        return _StdlibOnly(email.message_from_bytes(raw))


class _StdlibOnly:
    """The subset of MailParser used here, for mail that mail-parser could not digest."""

    def __init__(self, message: email.message.Message) -> None:
        self.message = message
        self.defects: list[Any] = [{"MailParserFailure": ["mail-parser could not parse"]}]


def _envelope_if_safe(raw: bytes, limits: Limits) -> Envelope:
    """The envelope of a message too large to parse whole, read from its header section
    alone when that is small enough (it names the sender in the decision log)."""
    section = header_section(raw, limits)
    if section is None:
        return Envelope()
    return _envelope(_StdlibOnly(email.message_from_bytes(section)), raw)


def _envelope(parsed: Any, raw: bytes) -> Envelope:
    message: email.message.Message = parsed.message
    sender_name, sender = _first_address(message.get_all("From") or [])
    return Envelope(
        sender=sender,
        sender_name=sender_name,
        to=_addresses(message.get_all("To") or []),
        cc=_addresses(message.get_all("Cc") or []),
        date=_date(message.get("Date")),
        message_id=_clean_header(message.get("Message-ID")) or None,
        subject=_decoded_subject(message.get("Subject")),
        defects=_defect_names(parsed),
        authentication_results=tuple(
            _clean_header(value) for value in message.get_all("Authentication-Results") or []
        ),
    )


def _first_address(values: list[Any]) -> tuple[str, str | None]:
    for name, address in _parsed_addresses(values):
        normalized = normalize_address(address)
        if normalized:
            return _decode_words(name), normalized
    return "", None


def _addresses(values: list[Any]) -> tuple[str, ...]:
    found = _parsed_addresses(values)
    return tuple(a for a in (normalize_address(address) for _, address in found) if a)


def _parsed_addresses(values: list[Any]) -> list[tuple[str, str]]:
    """(name, address) pairs; none from a header the parser cannot get through (it recurses
    once per nested comment, so a thousand "(" exhaust the stack)."""
    try:
        return email.utils.getaddresses([str(value) for value in values])
    except RecursionError:
        return []


def normalize_address(value: str | None) -> str | None:
    """Lower-case bare address from "mailto:X", "MAILTO:X", "<X>"; None when not an address."""
    if not value:
        return None
    text = value.strip().strip("<>").strip()
    scheme = text.lower().rfind("mailto:")
    if scheme >= 0:  # also "CN=Name:mailto:x@y", a parameter written into the value
        text = text[scheme + 7 :].strip()
    if "@" not in text or any(char.isspace() for char in text):
        return None
    return text.lower()


def _date(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _decoded_subject(value: Any) -> str:
    return _decode_words(_clean_header(value))


def _decode_words(text: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except (LookupError, ValueError, UnicodeError, email.errors.MessageError):
        return text


def _clean_header(value: Any) -> str:
    if value is None:
        return ""
    return " ".join(str(value).split())


def _defect_names(parsed: Any) -> tuple[str, ...]:
    names: list[str] = []
    for defect in getattr(parsed, "defects", []) or []:
        if isinstance(defect, dict):
            names.extend(str(key) for key in defect)
        else:
            names.append(str(defect))
    return tuple(dict.fromkeys(names))


# --- the MIME walk -----------------------------------------------------------------------


def _walk_part(
    walk: _Walk, part: email.message.Message, depth: int, location: str, forwarded: bool
) -> None:
    if walk.problem is not None:
        return
    walk.part_count += 1
    if depth > walk.limits.max_mime_depth:
        walk.problem = Skip(Reason.TOO_LARGE, f"MIME nesting deeper than {depth - 1}")
        return
    if walk.part_count > walk.limits.max_mime_parts:
        walk.problem = Skip(Reason.TOO_LARGE, f"more than {walk.limits.max_mime_parts} parts")
        return
    content_type = part.get_content_type()
    if _is_bounce(part, content_type):
        walk.problem = Skip(Reason.BOUNCE, f"delivery status notification ({content_type})")
        return
    if content_type == "message/rfc822" or part.is_multipart():
        _walk_children(walk, part, depth, location, forwarded or content_type == "message/rfc822")
        return
    _read_leaf(walk, part, content_type, location or "body", forwarded)


def _walk_children(
    walk: _Walk, part: email.message.Message, depth: int, location: str, forwarded: bool
) -> None:
    children = part.get_payload()
    if not isinstance(children, list):
        return
    for index, child in enumerate(children, start=1):
        if isinstance(child, email.message.Message):
            child_location = f"{location}.{index}" if location else str(index)
            _walk_part(walk, child, depth + 1, child_location, forwarded)


def _is_bounce(part: email.message.Message, content_type: str) -> bool:
    if content_type == "message/delivery-status":
        return True
    return (
        content_type == "multipart/report"
        and str(part.get_param("report-type", "")).lower() == "delivery-status"
    )


def _read_leaf(
    walk: _Walk, part: email.message.Message, content_type: str, location: str, forwarded: bool
) -> None:
    filename = _filename(part)
    if _is_calendar(content_type, filename):
        _add_calendar(walk, part, content_type, filename, location, forwarded=forwarded)
    elif content_type in TNEF_TYPES or (filename or "").lower() == "winmail.dat":
        payload = _payload_bytes(part)
        _add_tnef(walk, payload, f"{location}/{filename or 'winmail.dat'}", forwarded)
    elif not _is_text_body(part, content_type, filename):
        walk.attachments_ignored += 1


def _filename(part: email.message.Message) -> str | None:
    try:
        name = part.get_filename() or part.get_param("name", header="content-type")
    except (LookupError, ValueError, TypeError):
        return None
    if isinstance(name, tuple):  # RFC 2231 value the stdlib could not collapse
        name = email.utils.collapse_rfc2231_value(name)
    return _decode_words(str(name)) if name else None


def _is_calendar(content_type: str, filename: str | None) -> bool:
    if content_type in CALENDAR_TYPES:
        return True
    return bool(filename) and str(filename).lower().endswith(CALENDAR_EXTENSIONS)


def _is_text_body(part: email.message.Message, content_type: str, filename: str | None) -> bool:
    if content_type not in TEXT_BODY_TYPES or filename:
        return False
    return part.get_content_disposition() != "attachment"


def _payload_bytes(part: email.message.Message) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _add_calendar(
    walk: _Walk,
    part: email.message.Message,
    content_type: str,
    filename: str | None,
    location: str,
    *,
    forwarded: bool,
) -> None:
    payload = _payload_bytes(part)
    if len(payload) > walk.limits.max_calendar_bytes:
        walk.problem = Skip(Reason.TOO_LARGE, f"calendar part {location}: {len(payload)} B")
        return
    text, note = decode_text(payload, part.get_content_charset())
    if note:
        walk.notes.append(f"{location}: {note}")
    method = part.get_param("method")
    walk.parts.append(
        CalendarPart(
            data=text.encode("utf-8"),
            content_type=content_type,
            method_param=_clean_method(method),
            filename=filename,
            location=location if not filename else f"{location}/{filename}",
            forwarded=forwarded,
        )
    )


def _clean_method(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    cleaned = value.strip().strip('"').strip().upper()
    return cleaned or None


def _add_tnef(walk: _Walk, payload: bytes, location: str, forwarded: bool) -> None:
    contents = read_tnef(payload)
    walk.attachments_ignored += contents.attachments
    if not contents.calendars:
        walk.unreadable_tnef.append(
            f"{location}: TNEF without readable calendar ({contents.detail})"
        )
        return
    for calendar in contents.calendars:
        text, _ = decode_text(calendar, None)
        walk.parts.append(
            CalendarPart(
                data=text.encode("utf-8"),
                content_type="application/ms-tnef",
                location=location,
                forwarded=forwarded,
            )
        )


def decode_text(payload: bytes, declared: str | None) -> tuple[str, str | None]:
    """Bytes to text: the declared charset, else UTF-8, else Windows-1252 (never fails)."""
    payload = payload.removeprefix(BOM)
    if declared:
        try:
            return payload.decode(declared), None
        except (LookupError, ValueError):  # unknown, wrong, or malformed charset name
            pass
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = payload.decode("cp1252", errors="replace")
        return text, _fallback_note(declared, "windows-1252")
    return text, _fallback_note(declared, "utf-8") if declared else None


def _fallback_note(declared: str | None, used: str) -> str | None:
    if declared is None or declared.lower().replace("_", "-") in {used, "us-ascii", "ascii"}:
        return None
    return f"declared charset {declared!r} does not fit the bytes; read as {used}"

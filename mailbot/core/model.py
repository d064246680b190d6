"""The values the pure core passes around: frozen, typed, free of I/O.

Vocabulary:

* a *message* is one raw e-mail (or a bare iCalendar file) as bytes;
* a *calendar part* is one piece of iCalendar data found inside it;
* an *invitation* is one VEVENT of a calendar part, with its scheduling METHOD;
* a *decision* is what the robot does about one calendar object (or about the whole
  message when it carries none), with a reason code when it does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """What happens to one calendar object (event-sync-spec.md section 2)."""

    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    CANCEL = "cancel"
    RESPONSE = "response"
    SKIP = "skip"


class Reason(StrEnum):
    """Why a calendar object is skipped: stable identifiers used in logs, metrics and JSON."""

    NO_CALENDAR_PART = "no_calendar_part"
    INVALID_CALENDAR = "invalid_calendar"
    MULTI_DAY = "multi_day"
    UNSUPPORTED_METHOD = "unsupported_method"
    UNSUPPORTED_RECURRENCE = "unsupported_recurrence"
    STALE = "stale"
    NO_CRM_MATCH = "no_crm_match"
    UNKNOWN_EVENT = "unknown_event"
    REPLY_NOT_FROM_ATTENDEE = "reply_not_from_attendee"
    UNAUTHORIZED_SENDER = "unauthorized_sender"
    TOO_LARGE = "too_large"
    BOUNCE = "bounce"
    UNSUPPORTED_FORMAT = "unsupported_format"


class Method(StrEnum):
    """iTIP methods (RFC 5546) the robot recognises."""

    REQUEST = "REQUEST"
    PUBLISH = "PUBLISH"
    REPLY = "REPLY"
    CANCEL = "CANCEL"
    ADD = "ADD"
    REFRESH = "REFRESH"
    COUNTER = "COUNTER"
    DECLINECOUNTER = "DECLINECOUNTER"


@dataclass(frozen=True, slots=True)
class Envelope:
    """The headers of the outer message: who sent it, to whom, when, and how it was checked."""

    sender: str | None = None
    sender_name: str = ""
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    date: datetime | None = None
    message_id: str | None = None
    subject: str = ""
    defects: tuple[str, ...] = ()
    authentication_results: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CalendarPart:
    """One piece of iCalendar data found in a message, already transfer-decoded.

    ``method_param`` is the Content-Type ``method=`` parameter (upper case) when present.
    ``location`` names where the part was found ("body", "1.2", "1.2/attachment.ics"),
    ``forwarded`` tells that it sat inside a nested message/rfc822.
    """

    data: bytes
    content_type: str
    method_param: str | None = None
    filename: str | None = None
    location: str = "body"
    forwarded: bool = False


@dataclass(frozen=True, slots=True)
class Skip:
    """Why something is not acted on: a reason code and a sentence for the admin."""

    reason: Reason
    detail: str


@dataclass(frozen=True, slots=True)
class MimeScan:
    """Everything the MIME layer learnt about one message."""

    envelope: Envelope
    parts: tuple[CalendarPart, ...] = ()
    attachments_ignored: int = 0
    problem: Skip | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Organizer:
    email: str
    name: str = ""
    sent_by: str | None = None


@dataclass(frozen=True, slots=True)
class Attendee:
    email: str
    partstat: str = "NEEDS-ACTION"
    role: str = "REQ-PARTICIPANT"
    name: str = ""


@dataclass(frozen=True, slots=True)
class ZoneChoice:
    """How a TZID was resolved: the zone used and the way it was found (for the audit log)."""

    tzid: str
    zone_name: str
    how: str


@dataclass(frozen=True, slots=True)
class Invitation:
    """One VEVENT with the scheduling method that applies to it.

    Times are as found: ``start``/``end`` are timezone-aware datetimes, naive datetimes
    (floating time, interpreted in the sync zone by the rules) or dates (all-day).
    ``end`` is exclusive and already derived from DURATION when DTEND is absent. Both are
    None only for a CANCEL or REPLY without DTSTART (RFC 5546 allows it there).
    ``recurrence_id`` is a UTC instant (timed) or a date (all-day series).
    """

    method: Method
    uid: str
    start: datetime | date | None
    end: datetime | date | None
    all_day: bool
    sequence: int = 0
    dtstamp: datetime | None = None
    recurrence_id: datetime | date | None = None
    rrule: str | None = None
    rdates: tuple[datetime | date, ...] = ()
    exdates: tuple[datetime | date, ...] = ()
    status: str | None = None
    klass: str | None = None
    summary: str = ""
    description: str = ""
    location: str = ""
    organizer: Organizer | None = None
    attendees: tuple[Attendee, ...] = ()
    attach_count: int = 0
    zone: ZoneChoice | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BrokenComponent:
    """A calendar object that could not become an Invitation, and why.

    ``readable`` holds what could still be read of it (fields that failed are empty), so
    that the admin can tell which meeting it was.
    """

    reason: Reason
    detail: str
    uid: str | None = None
    method: str | None = None
    recurrence_id: datetime | date | None = None
    readable: Invitation | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    """Start and end of an event in the sync time zone, as NetSuite will hold them.

    Timed events have aware datetimes in the sync zone; all-day events have dates
    (``end`` exclusive).
    """

    start: datetime | date
    end: datetime | date
    all_day: bool
    ends_at_midnight: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision about one calendar object (or about a message that carries none)."""

    outcome: Outcome
    reason: Reason | None = None
    detail: str = ""
    invitation: Invitation | None = None
    broken: BrokenComponent | None = None
    schedule: Schedule | None = None
    netsuite: dict[str, Any] | None = None
    attachments_ignored: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def uid(self) -> str | None:
        if self.invitation is not None:
            return self.invitation.uid
        return self.broken.uid if self.broken is not None else None

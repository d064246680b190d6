"""The NetSuite ``calendarEvent`` body for a decision (event-sync-spec.md section 4)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from typing import Any

from mailbot.core.model import Attendee, Invitation, Outcome, Schedule
from mailbot.core.policy import Policy

UNTITLED = "(no title)"
RESPONSES = {"ACCEPTED": "ACCEPTED", "DECLINED": "DECLINED", "TENTATIVE": "TENTATIVE"}
PRIVATE_CLASSES = frozenset({"PRIVATE", "CONFIDENTIAL"})
EXTERNAL_ID_PREFIX = "mailbot-"


def external_id(uid: str, recurrence_id: datetime | date | None) -> str:
    """A stable NetSuite external id: letters, digits and '-' only, from UID (+ instance)."""
    key = uid if recurrence_id is None else f"{uid}\x1f{instant_text(recurrence_id)}"
    return EXTERNAL_ID_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def instant_text(moment: datetime | date) -> str:
    """A RECURRENCE-ID as one canonical text: UTC instant, or the date of an all-day one."""
    if isinstance(moment, datetime):
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return moment.strftime("%Y%m%d")


def event_body(
    invitation: Invitation, schedule: Schedule | None, outcome: Outcome, policy: Policy
) -> dict[str, Any]:
    """The body written with ``PUT calendarEvent/eid:<externalId>`` (create, update, cancel)."""
    body: dict[str, Any] = {
        "externalId": external_id(invitation.uid, invitation.recurrence_id),
        "title": _bounded(invitation.summary, policy.max_text_length) or UNTITLED,
        **_when(schedule),
        "timedEvent": True,
        "status": "CANCELLED" if outcome is Outcome.CANCEL else "CONFIRMED",
        "message": _bounded(invitation.description, policy.max_text_length),
        "location": _bounded(invitation.location, policy.max_text_length),
        "accessLevel": "PRIVATE" if invitation.klass in PRIVATE_CLASSES else "PUBLIC",
        "attendee": {"items": [attendee_item(a) for a in invitation.attendees]},
    }
    return body


def response_body(invitation: Invitation, attendee: Attendee) -> dict[str, Any]:
    """The change a REPLY makes: only the replying attendee's response."""
    return {
        "externalId": external_id(invitation.uid, invitation.recurrence_id),
        "attendee": {"items": [attendee_item(attendee)]},
    }


def attendee_item(attendee: Attendee) -> dict[str, Any]:
    """One attendee, still keyed by address; CRM matching replaces it with the record id."""
    return {
        "attendee": {"email": attendee.email},
        "response": RESPONSES.get(attendee.partstat, "NO_RESPONSE"),
        "attendance": "OPTIONAL" if attendee.role == "OPT-PARTICIPANT" else "REQUIRED",
    }


def _when(schedule: Schedule | None) -> dict[str, Any]:
    if schedule is None:  # a CANCEL without DTSTART: the stored dates stay as they are
        return {}
    start, end = schedule.start, schedule.end
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        return {"startDate": start.isoformat(), "allDayEvent": True}
    return {
        "startDate": start.date().isoformat(),
        "startTime": start.strftime("%H:%M"),
        "endTime": "23:59" if schedule.ends_at_midnight else end.strftime("%H:%M"),
        "allDayEvent": False,
    }


def _bounded(text: str, limit: int) -> str:
    text = text.replace("\r\n", "\n").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def body_hash(body: dict[str, Any]) -> str:
    """A digest of what would be written: equal digests mean no write is needed."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

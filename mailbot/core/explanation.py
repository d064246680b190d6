"""A decision as a flat record: the JSON line of ``mailbot explain`` and the audit log."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from mailbot.core.model import Attendee, Decision, Envelope, Invitation
from mailbot.core.policy import Policy

RECORD_KEYS = (
    "file",
    "outcome",
    "reason",
    "detail",
    "method",
    "uid",
    "recurrence_id",
    "sequence",
    "dtstamp",
    "start",
    "end",
    "all_day",
    "source_tzid",
    "resolved_tz",
    "summary",
    "organizer",
    "sender",
    "attendees",
    "attachments_ignored",
    "recurrence",
    "netsuite",
)


def decision_record(
    source: str, envelope: Envelope, decision: Decision, policy: Policy, notes: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Every key of RECORD_KEYS, with JSON-ready values (ISO 8601 times, null when absent)."""
    record: dict[str, Any] = dict.fromkeys(RECORD_KEYS)
    record.update(
        file=source,
        outcome=decision.outcome.value,
        reason=decision.reason.value if decision.reason else None,
        detail=_detail(decision, notes),
        sender=envelope.sender,
        attachments_ignored=decision.attachments_ignored,
        netsuite=decision.netsuite,
    )
    if decision.broken is not None:
        record.update(uid=decision.broken.uid, method=decision.broken.method)
        if decision.broken.readable is not None:
            record.update(_invitation_fields(decision.broken.readable, policy))
            record.update(_readable_times(decision.broken.readable, policy))
    if decision.invitation is not None:
        record.update(_invitation_fields(decision.invitation, policy))
    if decision.schedule is not None:
        record.update(start=_moment(decision.schedule.start), end=_moment(decision.schedule.end))
    return record


def _readable_times(invitation: Invitation, policy: Policy) -> dict[str, Any]:
    return {
        "start": _moment(_in_sync_zone(invitation.start, policy)),
        "end": _moment(_in_sync_zone(invitation.end, policy)),
    }


def _in_sync_zone(value: datetime | date | None, policy: Policy) -> datetime | date | None:
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=policy.sync_zone)
    return value.astimezone(policy.sync_zone)


def _detail(decision: Decision, notes: tuple[str, ...]) -> str:
    parts = [decision.detail, *decision.notes, *notes]
    return "; ".join(part for part in dict.fromkeys(parts) if part)


def _invitation_fields(invitation: Invitation, policy: Policy) -> dict[str, Any]:
    return {
        "method": invitation.method.value,
        "uid": invitation.uid or None,
        "recurrence_id": _recurrence_id(invitation.recurrence_id, policy),
        "sequence": invitation.sequence,
        "dtstamp": _moment(invitation.dtstamp),
        "all_day": invitation.all_day,
        "source_tzid": (invitation.zone.tzid or None) if invitation.zone else None,
        "resolved_tz": _resolved_zone(invitation, policy),
        "summary": invitation.summary,
        "organizer": invitation.organizer.email if invitation.organizer else None,
        "attendees": [_attendee(a) for a in invitation.attendees],
        "recurrence": invitation.rrule,
    }


def _resolved_zone(invitation: Invitation, policy: Policy) -> str | None:
    if invitation.all_day or invitation.start is None:
        return None
    if invitation.zone is not None:
        return invitation.zone.zone_name or None
    return policy.sync_zone_name  # floating time: already the sync zone's wall clock


def _recurrence_id(value: datetime | date | None, policy: Policy) -> str | None:
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=policy.sync_zone).astimezone(UTC)
    return _moment(value)


def _moment(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return value.isoformat()


def _attendee(attendee: Attendee) -> dict[str, str]:
    return {"email": attendee.email, "partstat": attendee.partstat, "role": attendee.role}

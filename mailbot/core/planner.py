"""From a judged invitation (and what is known of earlier ones) to one Decision.

The planner takes the earlier state as an argument and never fetches it. ``NO_STATE``
means no state store is involved (``mailbot explain``): a passing REQUEST is then a
``create``, a CANCEL a ``cancel`` and a REPLY a ``response``. With a state store the caller
passes the ``KnownEvent`` for the instance, or ``None`` when it was never synced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final

from mailbot.core.model import Decision, Outcome, Reason, Skip
from mailbot.core.payload import body_hash, event_body, response_body
from mailbot.core.policy import Policy
from mailbot.core.rules import Judgement

EARLIEST: Final = datetime.min.replace(tzinfo=UTC)


class _NoState(Enum):
    NO_STATE = "no state"


NO_STATE: Final = _NoState.NO_STATE

Revision = tuple[int, datetime]


def revision(sequence: int, dtstamp: datetime | None) -> Revision:
    """Ordering key of iTIP messages: SEQUENCE first, DTSTAMP breaks ties (RFC 5546)."""
    return (sequence, dtstamp or EARLIEST)


@dataclass(frozen=True, slots=True)
class KnownEvent:
    """What was synced for one instance (UID + RECURRENCE-ID)."""

    revision: Revision
    body_hash: str
    cancelled: bool = False
    reply_revisions: dict[str, Revision] = field(default_factory=dict)
    in_netsuite: bool = True  # False for a remembered CANCEL of an event never written


def plan_action(
    judgement: Judgement,
    policy: Policy,
    known: KnownEvent | _NoState | None = NO_STATE,
    crm_matched: bool | None = None,
    *,
    attachments_ignored: int = 0,
    link: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Decision:
    """One decision. ``crm_matched`` False means no address matched a CRM record.

    ``link`` turns the body's addresses into CRM record references (the matches); the
    result is what is compared with the stored body and written.
    """
    counted = attachments_ignored + judgement.invitation.attach_count
    if judgement.skip is not None:
        return _skipped(judgement, judgement.skip, counted)
    if crm_matched is False and judgement.intent is Outcome.CREATE:
        skip = Skip(Reason.NO_CRM_MATCH, "no address matches a customer, contact or opportunity")
        return _skipped(judgement, skip, counted)
    if judgement.intent is Outcome.RESPONSE:
        return _plan_response(judgement, known, counted)
    return _plan_write(judgement, policy, known, counted, link)


def _plan_write(
    judgement: Judgement,
    policy: Policy,
    known: KnownEvent | _NoState | None,
    counted: int,
    link: Callable[[dict[str, Any]], dict[str, Any]] | None,
) -> Decision:
    invitation = judgement.invitation
    body = event_body(invitation, judgement.schedule, judgement.intent, policy)
    if link is not None:
        body = link(body)
    incoming = revision(invitation.sequence, invitation.dtstamp)
    outcome, skip = _write_outcome(judgement.intent, incoming, body_hash(body), known)
    if skip is not None:
        return _skipped(judgement, skip, counted)
    return Decision(
        outcome=outcome,
        invitation=invitation,
        schedule=judgement.schedule,
        netsuite=body if outcome is not Outcome.UNCHANGED else None,
        attachments_ignored=counted,
        notes=invitation.notes,
    )


def _write_outcome(
    intent: Outcome, incoming: Revision, digest: str, known: KnownEvent | _NoState | None
) -> tuple[Outcome, Skip | None]:
    if known is NO_STATE:
        return intent, None
    if known is None:
        unknown = Skip(Reason.UNKNOWN_EVENT, "CANCEL for an event never synced")
        return (Outcome.SKIP, unknown) if intent is Outcome.CANCEL else (Outcome.CREATE, None)
    assert isinstance(known, KnownEvent)
    if incoming < known.revision:
        return Outcome.SKIP, Skip(Reason.STALE, _stale_detail(incoming, known.revision))
    if intent is Outcome.CANCEL:
        return (Outcome.UNCHANGED if known.cancelled else Outcome.CANCEL), None
    if not known.in_netsuite:  # a CANCEL came first; this newer REQUEST creates the event
        return (Outcome.UNCHANGED if incoming == known.revision else Outcome.CREATE), None
    same = incoming == known.revision or digest == known.body_hash
    return (Outcome.UNCHANGED if same else Outcome.UPDATE), None


def _plan_response(
    judgement: Judgement, known: KnownEvent | _NoState | None, counted: int
) -> Decision:
    invitation, attendee = judgement.invitation, judgement.replying
    assert attendee is not None  # reply_problem() skipped replies without one
    if known is None:
        return _skipped(
            judgement, Skip(Reason.UNKNOWN_EVENT, "REPLY for an event never synced"), counted
        )
    if isinstance(known, KnownEvent):
        incoming = revision(invitation.sequence, invitation.dtstamp)
        last = known.reply_revisions.get(attendee.email)
        if last is not None and incoming < last:
            return _skipped(judgement, Skip(Reason.STALE, _stale_detail(incoming, last)), counted)
        if last is not None and incoming == last:  # this very reply was applied already
            return Decision(
                outcome=Outcome.UNCHANGED,
                invitation=invitation,
                schedule=judgement.schedule,
                attachments_ignored=counted,
                notes=invitation.notes,
            )
    return Decision(
        outcome=Outcome.RESPONSE,
        invitation=invitation,
        schedule=judgement.schedule,
        netsuite=response_body(invitation, attendee),
        attachments_ignored=counted,
        notes=invitation.notes,
    )


def _skipped(judgement: Judgement, skip: Skip, counted: int) -> Decision:
    return Decision(
        outcome=Outcome.SKIP,
        reason=skip.reason,
        detail=skip.detail,
        invitation=judgement.invitation,
        schedule=judgement.schedule,
        attachments_ignored=counted,
        notes=judgement.invitation.notes,
    )


def _stale_detail(incoming: Revision, stored: Revision) -> str:
    return f"revision {_revision_text(incoming)} is older than {_revision_text(stored)}"


def _revision_text(value: Revision) -> str:
    sequence, stamp = value
    when = "no DTSTAMP" if stamp == EARLIEST else stamp.isoformat()
    return f"(SEQUENCE {sequence}, {when})"

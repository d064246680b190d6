"""One message in, its decisions out: mime → ical → rules → planner, with no state.

This is what ``mailbot explain`` runs. The sync engine runs the same steps with the state
store and the CRM directory supplying ``known`` and ``crm_matched`` to the planner.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from mailbot.core.bounds import CalendarSize, calendar_problem, calendar_size
from mailbot.core.ical import read_part
from mailbot.core.mime import scan_file
from mailbot.core.model import (
    BrokenComponent,
    Decision,
    Envelope,
    Invitation,
    MimeScan,
    Outcome,
    Reason,
    Skip,
)
from mailbot.core.planner import plan_action
from mailbot.core.policy import Policy
from mailbot.core.rules import judge, sender_problem

CalendarObject = Invitation | BrokenComponent


@dataclass(frozen=True, slots=True)
class MessageDecisions:
    """The envelope of one message and one decision per calendar object in it."""

    envelope: Envelope
    decisions: tuple[Decision, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReadMessage:
    """A message read by the core, before any look-up."""

    envelope: Envelope
    objects: tuple[CalendarObject, ...] = ()
    problem: Skip | None = None
    attachments_ignored: int = 0
    notes: tuple[str, ...] = ()


def read_message(raw: bytes, policy: Policy) -> ReadMessage:
    scan = scan_file(raw, policy.limits)
    if scan.problem is None:
        scan = replace(scan, problem=_oversized_part(scan, policy))
    if scan.problem is not None:
        return ReadMessage(scan.envelope, (), scan.problem, scan.attachments_ignored, scan.notes)
    objects = calendar_objects(scan, policy)
    limit = policy.limits.max_events_per_message
    problem = (
        Skip(Reason.TOO_LARGE, f"{len(objects)} events > {limit}") if len(objects) > limit else None
    )
    return ReadMessage(
        scan.envelope,
        tuple(objects) if problem is None else (),
        problem,
        scan.attachments_ignored,
        scan.notes,
    )


def _oversized_part(scan: MimeScan, policy: Policy) -> Skip | None:
    """The calendar part at which the message's calendar data goes over a limit, found
    before icalendar spends time on it."""
    so_far = CalendarSize()
    for part in scan.parts:
        size = calendar_size(part.data)
        so_far += size
        problem = calendar_problem(size, so_far, policy.limits)
        if problem is not None:
            return Skip(Reason.TOO_LARGE, f"calendar part {part.location}: {problem}")
    return None


def decide_message(raw: bytes, policy: Policy) -> MessageDecisions:
    """Every decision for one input file (e-mail, bare iCalendar or TNEF), without state."""
    return decide_read(read_message(raw, policy), policy)


def decide_read(read: ReadMessage, policy: Policy) -> MessageDecisions:
    """Every decision for a message already read, without state."""
    if read.problem is not None:
        return _message_skip(read, read.problem)
    sender_skip = sender_problem(read.envelope, policy)
    decisions = tuple(_decide(obj, read, policy, sender_skip) for obj in read.objects)
    return MessageDecisions(read.envelope, decisions, read.notes)


def calendar_objects(scan: MimeScan, policy: Policy) -> list[CalendarObject]:
    """Every VEVENT of every calendar part, copies inside the message collapsed."""
    found: list[CalendarObject] = []
    for part in scan.parts:
        found.extend(read_part(part, policy.limits))
    return collapse_copies(found)


def collapse_copies(objects: Iterable[CalendarObject]) -> list[CalendarObject]:
    """Google and Horde send each invitation twice (inline and invite.ics): keep one.

    Copies are recognised by (METHOD, UID, RECURRENCE-ID, SEQUENCE, ORGANIZER), not by
    bytes, because Exchange regenerates the second copy. A broken copy of an event that
    was read fine elsewhere in the message adds nothing and is dropped.
    """
    kept: dict[tuple[object, ...], CalendarObject] = {}
    for item in objects:
        kept.setdefault(_copy_key(item), item)
    readable_uids = {item.uid for item in kept.values() if isinstance(item, Invitation)}
    return [
        item
        for item in kept.values()
        if isinstance(item, Invitation) or item.uid is None or item.uid not in readable_uids
    ]


def _copy_key(item: CalendarObject) -> tuple[object, ...]:
    if isinstance(item, BrokenComponent):
        return ("broken", item.reason, item.uid, item.detail, item.readable)
    organizer = item.organizer.email if item.organizer else None
    return (item.method, item.uid, item.recurrence_id, item.sequence, organizer)


def _decide(
    item: CalendarObject, read: ReadMessage, policy: Policy, sender_skip: Skip | None
) -> Decision:
    if isinstance(item, BrokenComponent):
        return Decision(
            outcome=Outcome.SKIP,
            reason=item.reason,
            detail=item.detail,
            broken=item,
            attachments_ignored=read.attachments_ignored,
        )
    judgement = judge(item, read.envelope, policy)
    if sender_skip is not None:  # forged mail must not write, whatever else it would do
        judgement = replace(judgement, skip=sender_skip)
    return plan_action(judgement, policy, attachments_ignored=read.attachments_ignored)


def _message_skip(read: ReadMessage, skip: Skip) -> MessageDecisions:
    decision = Decision(
        outcome=Outcome.SKIP,
        reason=skip.reason,
        detail=skip.detail,
        attachments_ignored=read.attachments_ignored,
    )
    return MessageDecisions(read.envelope, (decision,), read.notes)

"""The sync engine's pure half: a read message, the CRM's answer and the stored state in,
one planned decision (with the write it needs) per event instance out.

The service gathers what this module asks for (addresses for the directory, external ids
and series for the state store), then calls ``plan_message``; it never decides anything.

Recurring events are written as occurrences: every instance in the horizon becomes its
own NetSuite event with its own external id. The horizon is anchored at the invitation's
DTSTAMP (the moment the organizer sent this version), not at the clock, so replaying old
mail gives the same events as processing it when it arrived.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from mailbot.core.crm import DirectoryAnswer
from mailbot.core.matching import (
    Matches,
    addresses_of,
    attendee_item,
    match,
    matches_record,
    with_records,
)
from mailbot.core.model import (
    BrokenComponent,
    Decision,
    Envelope,
    Invitation,
    Method,
    Outcome,
    Reason,
    Skip,
)
from mailbot.core.payload import body_hash, external_id
from mailbot.core.pipeline import ReadMessage
from mailbot.core.planner import KnownEvent, plan_action, revision
from mailbot.core.policy import Policy, RecurrenceMode
from mailbot.core.recurrence import Expansion, expand
from mailbot.core.rules import Judgement, judge, recurrence_problem, sender_problem
from mailbot.core.series import series_fields


@dataclass(frozen=True, slots=True)
class Instance:
    """One event instance to decide about: a single event, an occurrence, or an override."""

    invitation: Invitation
    external_id: str
    series_uid: str | None = None  # set for occurrences of an expanded series
    skip: Skip | None = None  # a series that cannot be written as occurrences
    fields: tuple[tuple[str, Any], ...] = ()  # extra body fields (native recurrence)


@dataclass(frozen=True, slots=True)
class Write:
    """What to send: an upsert of the whole event, or a patch of some fields."""

    kind: str  # "upsert" or "patch"
    external_id: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Planned:
    """A decision with its matches and the write that carries it out (if any)."""

    decision: Decision
    external_id: str | None = None
    matches: Matches | None = None
    write: Write | None = None
    stored_body: dict[str, Any] | None = None  # the body the state keeps after the write
    replying: str | None = None  # the attendee whose calendar reply this is
    tombstone: bool = False  # a CANCEL seen before its event: remembered, nothing written


@dataclass(frozen=True, slots=True)
class Stored:
    """What the state store knows, as the planner needs it."""

    events: dict[str, KnownEvent]
    bodies: dict[str, dict[str, Any]]
    series: dict[str, tuple[str, ...]]  # uid -> external ids of its stored instances


def could_write(read: ReadMessage, policy: Policy) -> bool:
    """True when some VEVENT passes the rules that need neither the CRM nor the state."""
    if read.problem is not None:
        return False
    return any(
        judge(item, read.envelope, policy, authorized_forwarder=True).skip is None
        for item in read.objects
        if isinstance(item, Invitation)
    )


def addresses_to_look_up(read: ReadMessage) -> set[str]:
    found = {read.envelope.sender} if read.envelope.sender else set()
    for item in read.objects:
        if isinstance(item, Invitation):
            found |= addresses_of(item, read.envelope)
    return found


def instances(
    read: ReadMessage, policy: Policy, horizon: timedelta, past: timedelta
) -> list[Instance]:
    """Every instance this message speaks about, series expanded into occurrences."""
    invitations = [item for item in read.objects if isinstance(item, Invitation)]
    masters = {i.uid: i for i in invitations if i.recurrence_id is None and i.rrule}
    found: list[Instance] = []
    for invitation in invitations:
        master = masters.get(invitation.uid)
        if invitation is master and invitation.method is not Method.CANCEL:
            overrides = [i for i in invitations if i.uid == invitation.uid and i.recurrence_id]
            if policy.recurrence is RecurrenceMode.SERIES:
                found.extend(_series(invitation, overrides, policy))
            else:
                found.extend(_occurrences(invitation, overrides, policy, horizon, past))
        elif master is None or master.method is Method.CANCEL or invitation.recurrence_id is None:
            key = external_id(invitation.uid, invitation.recurrence_id)
            found.append(Instance(invitation, key))
    return found


def series_uids(read: ReadMessage) -> set[str]:
    """UIDs whose stored occurrences must be reconciled: every whole-event version (a series,
    a series cancel, or a plain event that replaces a series of the same UID)."""
    return {
        item.uid
        for item in read.objects
        if isinstance(item, Invitation) and item.recurrence_id is None
    }


def _occurrences(
    master: Invitation,
    overrides: Sequence[Invitation],
    policy: Policy,
    horizon: timedelta,
    past: timedelta,
) -> list[Instance]:
    refused = recurrence_problem(master)
    if refused is not None:
        return [Instance(master, external_id(master.uid, None), skip=refused)]
    first, last = _window(master.dtstamp or _start_instant(master, policy), past, horizon)
    expansion: Expansion = expand(
        master,
        overrides,
        first,
        last,
        floating_zone=policy.sync_zone,
        max_instances=policy.limits.max_occurrences,
    )
    if expansion.truncated:  # written whole or not at all: a partial series would mislead
        skip = Skip(Reason.TOO_LARGE, _too_many(expansion, policy, first, last))
        return [Instance(master, external_id(master.uid, None), skip=skip)]
    if expansion.problem or not expansion.occurrences:
        why = expansion.problem or f"no occurrence between {first.date()} and {last.date()}"
        skip = Skip(Reason.UNSUPPORTED_RECURRENCE, why)
        return [Instance(master, external_id(master.uid, None), skip=skip)]
    result = []
    for occurrence in expansion.occurrences:
        base = occurrence.override or replace(master, rrule=None, rdates=(), exdates=())
        instance = replace(
            base,
            start=occurrence.start,
            end=occurrence.end,
            recurrence_id=occurrence.recurrence_id,
            status="CANCELLED" if occurrence.cancelled else base.status,
        )
        key = external_id(master.uid, occurrence.recurrence_id)
        result.append(Instance(instance, key, series_uid=master.uid))
    return result


def _window(anchor: datetime, past: timedelta, horizon: timedelta) -> tuple[datetime, datetime]:
    """[anchor - past, anchor + horizon), cut at the ends of the calendar (a DTSTAMP in year 1
    is still a DTSTAMP)."""
    earliest, latest = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    first = anchor - past if anchor - earliest > past else earliest
    last = anchor + horizon if latest - anchor > horizon else latest
    return first, last


def _too_many(expansion: Expansion, policy: Policy, first: datetime, last: datetime) -> str:
    most = policy.limits.max_occurrences
    if len(expansion.occurrences) >= most:
        return f"more than {most} occurrences between {first.date()} and {last.date()}"
    return (
        f"the rule repeats too often before {first.date()} to reach the occurrences "
        f"(the steps allowed grow with limits.max_occurrences = {most})"
    )


def _series(master: Invitation, overrides: Sequence[Invitation], policy: Policy) -> list[Instance]:
    """Series mode: the master with NetSuite's recurrence fields; each moved or changed
    occurrence is excluded from the series and written as an event of its own
    (netsuite-rest.md 3d); a cancelled one is only excluded."""
    key = external_id(master.uid, None)
    refused = recurrence_problem(master)
    mapped = refused.detail if refused else series_fields(master, overrides, zone=policy.sync_zone)
    if isinstance(mapped, str):
        return [Instance(master, key, skip=Skip(Reason.UNSUPPORTED_RECURRENCE, mapped))]
    found = [Instance(master, key, fields=tuple(sorted(mapped.fields.items())))]
    for override in overrides:
        if override.status != "CANCELLED" and override.method is not Method.CANCEL:
            found.append(Instance(override, external_id(override.uid, override.recurrence_id)))
    return found


def _start_instant(invitation: Invitation, policy: Policy) -> datetime:
    start = invitation.start
    if isinstance(start, datetime):
        aware = start if start.tzinfo else start.replace(tzinfo=policy.sync_zone)
        return aware.astimezone(UTC)
    if isinstance(start, date):
        return datetime(start.year, start.month, start.day, tzinfo=policy.sync_zone).astimezone(UTC)
    return datetime.min.replace(tzinfo=UTC)


# --- planning ----------------------------------------------------------------------------


def plan_message(
    read: ReadMessage,
    found: Sequence[Instance],
    answer: DirectoryAnswer,
    stored: Stored,
    policy: Policy,
) -> list[Planned]:
    """One planned decision per instance (and per broken object), in message order."""
    if read.problem is not None:
        return [Planned(_skip_decision(read.problem, read.attachments_ignored))]
    gate = sender_gate(read.envelope, answer, policy)
    planned = [
        Planned(_broken_decision(item, read.attachments_ignored))
        for item in read.objects
        if isinstance(item, BrokenComponent)
    ]
    for instance in found:
        if _covered_by_reconcile(instance, stored):
            continue
        planned.append(_plan_instance(instance, read, answer, stored, policy, gate=gate))
    planned.extend(_reconcile(read, found, stored, policy, gate))
    return planned


def sender_gate(envelope: Envelope, answer: DirectoryAnswer, policy: Policy) -> Skip | None:
    """Spec section 6: an active employee or an allowed domain, authenticated when checked."""
    authentication = sender_problem(envelope, policy)
    if authentication is not None:
        return authentication
    sender = envelope.sender
    if sender is None:
        return Skip(Reason.UNAUTHORIZED_SENDER, "the message has no sender")
    if any(e.active for e in answer.employees.get(sender, ())):
        return None
    if sender.rpartition("@")[2] in policy.sender_domains:
        return None
    return Skip(
        Reason.UNAUTHORIZED_SENDER,
        f"{sender} is neither an active employee nor in an allowed sender domain",
    )


def _plan_instance(
    instance: Instance,
    read: ReadMessage,
    answer: DirectoryAnswer,
    stored: Stored,
    policy: Policy,
    *,
    gate: Skip | None,
) -> Planned:
    invitation = instance.invitation
    authorized = gate is None
    judged = judge(invitation, read.envelope, policy, authorized_forwarder=authorized)
    if instance.skip is not None:
        judged = replace(judged, skip=instance.skip)
    judged = _gated(judged, gate, read.envelope, policy)
    matches = match(invitation, read.envelope, answer, policy.matching)
    known = stored.events.get(instance.external_id)
    judged = _against_whole_event(judged, instance, stored)
    crm_matched = matches.external or policy.matching.allow_internal_only
    decision = plan_action(
        judged,
        policy,
        known,
        crm_matched,
        attachments_ignored=read.attachments_ignored,
        link=lambda body: {**with_records(body, matches), **dict(instance.fields)},
    )
    if decision.outcome is Outcome.RESPONSE:
        return _plan_response(decision, judged, instance, matches, stored)
    return _with_write(decision, instance, matches, stored)


def _against_whole_event(judged: Judgement, instance: Instance, stored: Stored) -> Judgement:
    """An occurrence is stale when a newer version of the whole event (a plain event, or a
    series CANCEL remembered before its series) was received earlier."""
    if instance.series_uid is None or judged.skip is not None:
        return judged
    whole = stored.events.get(external_id(instance.series_uid, None))
    incoming = revision(instance.invitation.sequence, instance.invitation.dtstamp)
    if whole is None or incoming >= whole.revision:
        return judged
    what = "a cancellation of the series" if whole.cancelled else "a newer version of the event"
    detail = f"{what} (SEQUENCE {whole.revision[0]}) was received earlier"
    return replace(judged, skip=Skip(Reason.STALE, detail))


def _gated(judged: Judgement, gate: Skip | None, envelope: Envelope, policy: Policy) -> Judgement:
    """A REPLY is judged by the reply rule; everything else must pass the sender gate."""
    if judged.skip is not None or gate is None:
        return judged
    if judged.intent is Outcome.RESPONSE and gate.reason is Reason.UNAUTHORIZED_SENDER:
        authentication = sender_problem(envelope, policy)
        return judged if authentication is None else replace(judged, skip=authentication)
    return replace(judged, skip=gate)


def _with_write(
    decision: Decision, instance: Instance, matches: Matches, stored: Stored
) -> Planned:
    eid = instance.external_id
    body = decision.netsuite
    if decision.outcome in (Outcome.CREATE, Outcome.UPDATE) and body is not None:
        return Planned(decision, eid, matches, Write("upsert", eid, body), body)
    if decision.outcome is Outcome.CANCEL:
        previous = stored.bodies.get(eid, body or {})
        return Planned(
            decision,
            eid,
            matches,
            Write("patch", eid, {"status": "CANCELLED"}),
            {**previous, "status": "CANCELLED"},
        )
    if decision.reason is Reason.UNKNOWN_EVENT and instance.invitation.method is Method.CANCEL:
        # Outlook may deliver the CANCEL before the REQUEST it cancels: remembering it makes
        # the late, older REQUEST stale instead of creating a meeting that was called off.
        return Planned(decision, eid, matches, stored_body={"status": "CANCELLED"}, tombstone=True)
    return Planned(decision, eid, matches)


def _plan_response(
    decision: Decision, judged: Judgement, instance: Instance, matches: Matches, stored: Stored
) -> Planned:
    eid = instance.external_id
    replying = judged.replying
    record = next((a for a in matches.attendees if replying and a.email == replying.email), None)
    if record is None:
        skip = Skip(Reason.NO_CRM_MATCH, "the replying attendee matches no NetSuite record")
        return Planned(_as_skip(decision, skip), eid, matches)
    body = stored.bodies.get(eid, {})
    items = [dict(item) for item in body.get("attendee", {}).get("items", [])]
    updated = attendee_item(record)
    for index, item in enumerate(items):
        if item.get("attendee", {}).get("id") == record.record_id:
            items[index] = {**item, "response": updated["response"]}
            break
    else:
        items.append(updated)
    patch = {"attendee": {"items": items}}
    answered = replace(decision, netsuite=patch)
    write = Write("patch", eid, patch)
    return Planned(answered, eid, matches, write, {**body, **patch}, replying=record.email)


def _covered_by_reconcile(instance: Instance, stored: Stored) -> bool:
    """A series CANCEL without RECURRENCE-ID cancels the stored occurrences one by one."""
    invitation = instance.invitation
    return (
        invitation.method is Method.CANCEL
        and invitation.recurrence_id is None
        and instance.series_uid is None
        and instance.external_id not in stored.events
        and bool(stored.series.get(invitation.uid))
    )


def _reconcile(
    read: ReadMessage,
    found: Sequence[Instance],
    stored: Stored,
    policy: Policy,
    gate: Skip | None,
) -> list[Planned]:
    """Stored occurrences that a newer series version (or a series cancel) no longer has."""
    if gate is not None:
        return []
    present = {instance.external_id for instance in found}
    planned = []
    for item in read.objects:
        if not isinstance(item, Invitation) or item.uid not in series_uids(read):
            continue
        if item.recurrence_id is not None:
            continue
        incoming = revision(item.sequence, item.dtstamp)
        for eid in stored.series.get(item.uid, ()):
            known = stored.events.get(eid)
            if eid in present or known is None or known.cancelled or incoming < known.revision:
                continue
            detail = (
                "the series was cancelled"
                if item.method is Method.CANCEL
                else "no longer an occurrence of the updated series"
            )
            decision = Decision(outcome=Outcome.CANCEL, detail=detail, invitation=item)
            previous = stored.bodies.get(eid, {})
            planned.append(
                Planned(
                    decision,
                    eid,
                    None,
                    Write("patch", eid, {"status": "CANCELLED"}),
                    {**previous, "status": "CANCELLED"},
                )
            )
    return planned


def _skip_decision(skip: Skip, attachments: int) -> Decision:
    return Decision(Outcome.SKIP, skip.reason, skip.detail, attachments_ignored=attachments)


def _broken_decision(item: BrokenComponent, attachments: int) -> Decision:
    return Decision(
        Outcome.SKIP, item.reason, item.detail, broken=item, attachments_ignored=attachments
    )


def _as_skip(decision: Decision, skip: Skip) -> Decision:
    return replace(
        decision, outcome=Outcome.SKIP, reason=skip.reason, detail=skip.detail, netsuite=None
    )


def known_event(
    revision_value: tuple[int, datetime],
    body: dict[str, Any],
    cancelled: bool,
    replies: dict[str, tuple[int, datetime]],
    in_netsuite: bool = True,
) -> KnownEvent:
    """A stored event as the planner sees it."""
    return KnownEvent(revision_value, body_hash(body), cancelled, dict(replies), in_netsuite)


def planned_record(planned: Planned) -> dict[str, Any]:
    """The decision-log fields this module adds to a decision record."""
    return {
        "external_id": planned.external_id,
        "matches": matches_record(planned.matches) if planned.matches else None,
    }

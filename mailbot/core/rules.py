"""The Event Sync rules, applied to one Invitation: what it asks for and whether it may.

Each rule is a small named function that returns ``None`` when the invitation passes, or a
``Skip`` with its reason code and a human-readable detail. ``judge`` applies them in the
documented order; the first that fails decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from mailbot.core.model import (
    Attendee,
    Envelope,
    Invitation,
    Method,
    Outcome,
    Reason,
    Schedule,
    Skip,
)
from mailbot.core.policy import Policy

SUB_DAILY_FREQUENCIES = frozenset({"SECONDLY", "MINUTELY", "HOURLY"})
ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Judgement:
    """An invitation with what it asks for, where it falls in the sync zone, and any skip."""

    invitation: Invitation
    intent: Outcome
    schedule: Schedule | None
    skip: Skip | None = None
    replying: Attendee | None = None


def intent_of(invitation: Invitation) -> Outcome | None:
    """What the calendar object asks for, or None when its method is not supported."""
    method = invitation.method
    if method in (Method.REQUEST, Method.PUBLISH):
        if invitation.recurrence_id is not None and invitation.status == "CANCELLED":
            return Outcome.CANCEL
        return Outcome.CREATE
    if method is Method.CANCEL:
        return Outcome.CANCEL
    if method is Method.REPLY:
        return Outcome.RESPONSE
    return None


def judge(
    invitation: Invitation,
    envelope: Envelope,
    policy: Policy,
    *,
    authorized_forwarder: bool = False,
) -> Judgement:
    """Apply every rule in order; the first failing one gives the skip.

    ``authorized_forwarder``: the sender passed the sender gate (an active employee or an
    allowed domain), so a calendar reply it forwards speaks for its single attendee.
    """
    schedule = place_in_sync_zone(invitation, policy)
    intent = intent_of(invitation)
    if intent is None:
        unsupported = Skip(Reason.UNSUPPORTED_METHOD, f"{invitation.method.value} is not acted on")
        return Judgement(invitation, Outcome.SKIP, schedule, unsupported)
    replying = (
        replying_attendee(invitation, envelope, policy, authorized_forwarder)
        if intent is Outcome.RESPONSE
        else None
    )
    checks: tuple[Callable[[], Skip | None], ...] = (
        lambda: reply_problem(invitation, intent, replying),
        lambda: recurrence_problem(invitation),
        lambda: single_day_problem(schedule, intent),
    )
    for check in checks:
        skip = check()
        if skip is not None:
            return Judgement(invitation, intent, schedule, skip, replying)
    return Judgement(invitation, intent, schedule, None, replying)


# --- time --------------------------------------------------------------------------------


def place_in_sync_zone(invitation: Invitation, policy: Policy) -> Schedule | None:
    """Start and end as the sync zone's wall clock (floating times are already in it)."""
    start, end = invitation.start, invitation.end
    if start is None or end is None:
        return None
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        return Schedule(start=start, end=end, all_day=True)
    local_start = _in_zone(start, policy)
    local_end = max(_in_zone(end, policy), local_start)
    midnight = local_end.time() == time(0) and local_end.date() == local_start.date() + timedelta(1)
    return Schedule(local_start, local_end, all_day=False, ends_at_midnight=midnight)


def _in_zone(moment: datetime, policy: Policy) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=policy.sync_zone)
    return moment.astimezone(policy.sync_zone)


def single_day_problem(schedule: Schedule | None, intent: Outcome) -> Skip | None:
    """Seed: only events that start and end on the same calendar day (sync zone) are synced."""
    if intent is not Outcome.CREATE or schedule is None:
        return None
    start, end = schedule.start, schedule.end
    if isinstance(start, datetime) and isinstance(end, datetime):
        last_moment = end - ONE_MICROSECOND if end > start else end
        if start.date() == last_moment.date():
            return None
        return Skip(Reason.MULTI_DAY, f"{_stamp(start)} to {_stamp(end)} spans more than one day")
    days = (_as_date(end) - _as_date(start)).days
    if days <= 1:
        return None
    return Skip(Reason.MULTI_DAY, f"all-day event over {days} days ({start} to {end}, exclusive)")


def _as_date(value: datetime | date) -> date:
    return value.date() if isinstance(value, datetime) else value


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="minutes")


# --- recurrence --------------------------------------------------------------------------


def recurrence_problem(invitation: Invitation) -> Skip | None:
    """NetSuite holds no sub-daily series; expanding one would flood the CRM with events.

    A rule repeats within a day through its frequency (FREQ=HOURLY) or by listing several
    hours, minutes or seconds (FREQ=DAILY;BYHOUR=9,15).
    """
    if invitation.rrule is None:
        return None
    frequency = rrule_part(invitation.rrule, "FREQ")
    if frequency in SUB_DAILY_FREQUENCIES:
        return Skip(Reason.UNSUPPORTED_RECURRENCE, f"FREQ={frequency} repeats within a day")
    for name in ("BYHOUR", "BYMINUTE", "BYSECOND"):
        value = rrule_part(invitation.rrule, name)
        if value is not None and "," in value:
            return Skip(Reason.UNSUPPORTED_RECURRENCE, f"{name}={value} repeats within a day")
    return None


def rrule_part(rrule: str, name: str) -> str | None:
    for item in rrule.split(";"):
        key, _, value = item.partition("=")
        if key.strip().upper() == name:
            return value.strip().upper()
    return None


# --- replies -----------------------------------------------------------------------------


def replying_attendee(
    invitation: Invitation, envelope: Envelope, policy: Policy, authorized_forwarder: bool = False
) -> Attendee | None:
    """The attendee a REPLY speaks for: the sender itself, or the one a colleague forwarded."""
    sender = envelope.sender
    if sender is None:  # a bare .ics file: no envelope to hold it against
        return invitation.attendees[0] if len(invitation.attendees) == 1 else None
    for attendee in invitation.attendees:
        if attendee.email == sender:
            return attendee
    forwarded = authorized_forwarder or _domain(sender) in policy.sender_domains
    if forwarded and len(invitation.attendees) == 1:
        return invitation.attendees[0]
    return None


def reply_problem(
    invitation: Invitation, intent: Outcome, replying: Attendee | None
) -> Skip | None:
    if intent is not Outcome.RESPONSE or replying is not None:
        return None
    if not invitation.attendees:
        return Skip(Reason.REPLY_NOT_FROM_ATTENDEE, "REPLY names no attendee")
    named = ", ".join(a.email for a in invitation.attendees)
    return Skip(Reason.REPLY_NOT_FROM_ATTENDEE, f"REPLY for {named}, not sent by them")


def _domain(address: str) -> str:
    return address.rpartition("@")[2]


# --- sender authentication ---------------------------------------------------------------


def sender_problem(envelope: Envelope, policy: Policy) -> Skip | None:
    """DMARC (or aligned DKIM/SPF) as recorded by a trusted receiving server, when present.

    Only the topmost header under a trusted authserv-id counts: the receiving server adds
    its own on top, so one further down was written before it, by the sender (RFC 8601
    section 5 asks servers to remove those; not all do).
    """
    if envelope.sender is None or not policy.trusted_authserv_ids:
        return None
    trusted = [
        header
        for header in envelope.authentication_results
        if _authserv_id(header) in policy.trusted_authserv_ids
    ]
    if not trusted:
        return None
    verdict = _authentication_verdict(trusted[0], envelope.sender)
    return None if verdict is None else Skip(Reason.UNAUTHORIZED_SENDER, verdict)


def _authserv_id(header: str) -> str:
    return header.split(";", 1)[0].strip().split()[0].lower() if header.strip() else ""


def _authentication_verdict(header: str, sender: str) -> str | None:
    """None when the header shows the sender authenticated, else what failed."""
    results = _method_results(header)
    sender_domain = _domain(sender)
    if "dmarc" in results:
        result, _ = results["dmarc"]
        return None if result == "pass" else f"dmarc={result} for {sender_domain}"
    for method, key in (("dkim", "header.d"), ("spf", "smtp.mailfrom")):
        result, properties = results.get(method, ("none", {}))
        if result == "pass" and _aligned(_domain(properties.get(key, "")), sender_domain):
            return None
    return f"no DMARC, and no DKIM or SPF pass aligned with {sender_domain}"


def _method_results(header: str) -> dict[str, tuple[str, dict[str, str]]]:
    results: dict[str, tuple[str, dict[str, str]]] = {}
    for clause in header.split(";")[1:]:
        words = clause.split()
        if not words or "=" not in words[0]:
            continue
        method, _, result = words[0].partition("=")
        properties = dict(word.split("=", 1) for word in words[1:] if "=" in word)
        results.setdefault(
            method.lower(), (result.lower(), {k.lower(): v for k, v in properties.items()})
        )
    return results


def _aligned(domain: str, sender_domain: str) -> bool:
    """Relaxed alignment: the same domain, or one a subdomain of the other."""
    domain, sender_domain = domain.lower().strip("."), sender_domain.lower().strip(".")
    if "." not in domain:
        return False
    return (
        domain == sender_domain
        or domain.endswith("." + sender_domain)
        or sender_domain.endswith("." + domain)
    )

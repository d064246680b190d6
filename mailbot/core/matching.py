"""Which NetSuite records an invitation belongs to (event-sync-spec.md section 5).

Pure: the directory's answer for the message's addresses comes in, the matches and the
reason each one won come out. Tie-breaks are deterministic and documented here:

* one address with several records of one kind: the lowest internal id (the oldest record)
  wins, the others are noted as an ambiguity;
* an address that is both an employee and a CRM record is taken as the employee;
  otherwise a contact wins over a company for the same address (a person's address);
* company: a company matched directly by an attendee's address, else the company of a
  matched contact; among several, the one with the most matched addresses, then the
  lowest id;
* contact: the first matched contact (in attendee order) of the chosen company, else the
  first matched contact;
* opportunity: per ``MatchPolicy.opportunity`` among the company's open opportunities.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from fnmatch import fnmatchcase
from typing import Any, TypeVar

from mailbot.core.crm import Company, Contact, DirectoryAnswer, Employee, Opportunity
from mailbot.core.model import Attendee, Envelope, Invitation
from mailbot.core.payload import RESPONSES
from mailbot.core.policy import MatchPolicy, OpportunityChoice

Record = TypeVar("Record", Employee, Contact, Company)


@dataclass(frozen=True, slots=True)
class AttendeeMatch:
    email: str
    kind: str  # "employee", "contact" or "company"
    record_id: str
    response: str = "NO_RESPONSE"
    attendance: str = "REQUIRED"


@dataclass(frozen=True, slots=True)
class Choice:
    """A record chosen for a field of the event, and why."""

    record_id: str
    why: str


@dataclass(frozen=True, slots=True)
class Matches:
    organizer: Choice | None = None
    attendees: tuple[AttendeeMatch, ...] = ()
    company: Choice | None = None
    contact: Choice | None = None
    opportunity: Choice | None = None
    unmatched: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()
    ambiguities: tuple[str, ...] = field(default=())

    @property
    def external(self) -> bool:
        """True when a customer, lead, prospect or contact matched."""
        return any(a.kind != "employee" for a in self.attendees) or self.company is not None


def addresses_of(invitation: Invitation, envelope: Envelope) -> set[str]:
    """Every address the directory is asked about: organizer, attendees and the sender."""
    found = {a.email for a in invitation.attendees}
    if invitation.organizer is not None:
        found.add(invitation.organizer.email)
    if envelope.sender:
        found.add(envelope.sender)
    return found


def considered(address: str, policy: MatchPolicy) -> bool:
    """False for the sync mailbox itself and for addresses matching an ignore pattern."""
    if address in policy.mailbox_addresses:
        return False
    return not any(fnmatchcase(address, pattern.lower()) for pattern in policy.ignore_patterns)


def match(
    invitation: Invitation, envelope: Envelope, answer: DirectoryAnswer, policy: MatchPolicy
) -> Matches:
    notes: list[str] = []
    people = [a for a in _event_people(invitation) if considered(a.email, policy)]
    left_out = tuple(a.email for a in _event_people(invitation) if not considered(a.email, policy))
    attendees, unmatched = _attendees(people, answer, notes)
    company = _company(attendees, answer, notes)
    return Matches(
        organizer=_organizer(invitation, envelope, answer, policy),
        attendees=tuple(attendees),
        company=company,
        contact=_contact(attendees, answer, company),
        opportunity=_opportunity(company, answer, policy.opportunity, notes),
        unmatched=tuple(unmatched),
        left_out=left_out,
        ambiguities=tuple(notes),
    )


def _event_people(invitation: Invitation) -> list[Attendee]:
    """The attendees, with the organizer first when the attendee list lacks it."""
    people = list(invitation.attendees)
    organizer = invitation.organizer
    if organizer is not None and all(a.email != organizer.email for a in people):
        people.insert(0, Attendee(organizer.email, partstat="ACCEPTED", role="CHAIR"))
    return people


# --- organizer ---------------------------------------------------------------------------


def _organizer(
    invitation: Invitation, envelope: Envelope, answer: DirectoryAnswer, policy: MatchPolicy
) -> Choice | None:
    candidates = []
    if invitation.organizer is not None:
        candidates.append((invitation.organizer.email, "ORGANIZER"))
    if envelope.sender:
        candidates.append((envelope.sender, "forwarded by"))
    for address, role in candidates:
        employee = _first(e for e in answer.employees.get(address, ()) if e.active)
        if employee is not None:
            return Choice(
                employee.id, f"{role} {address} is employee {employee.name or employee.id}"
            )
    if policy.default_employee_id:
        return Choice(policy.default_employee_id, "no employee organized or forwarded it: default")
    return None


# --- attendees ---------------------------------------------------------------------------


def _attendees(
    people: list[Attendee], answer: DirectoryAnswer, notes: list[str]
) -> tuple[list[AttendeeMatch], list[str]]:
    matched: list[AttendeeMatch] = []
    unmatched: list[str] = []
    for person in people:
        found = _record_for(person.email, answer, notes)
        if found is None:
            unmatched.append(person.email)
            continue
        kind, record_id = found
        matched.append(
            AttendeeMatch(
                email=person.email,
                kind=kind,
                record_id=record_id,
                response=RESPONSES.get(person.partstat, "NO_RESPONSE"),
                attendance="OPTIONAL" if person.role == "OPT-PARTICIPANT" else "REQUIRED",
            )
        )
    return matched, unmatched


def _record_for(address: str, answer: DirectoryAnswer, notes: list[str]) -> tuple[str, str] | None:
    kinds: tuple[tuple[str, tuple[Any, ...]], ...] = (
        ("employee", tuple(e for e in answer.employees.get(address, ()) if e.active)),
        ("contact", answer.contacts.get(address, ())),
        ("company", answer.companies.get(address, ())),
    )
    for kind, records in kinds:
        if records:
            chosen = _lowest_id(records)
            if len(records) > 1:
                others = ", ".join(r.id for r in records if r.id != chosen.id)
                notes.append(
                    f"{address}: {len(records)} {kind} records, took {chosen.id} over {others}"
                )
            return kind, chosen.id
    return None


def _lowest_id(records: Iterable[Record]) -> Record:
    return min(records, key=lambda record: _id_order(record.id))


def _id_order(record_id: str) -> tuple[int, int | str]:
    return (0, int(record_id)) if record_id.lstrip("-").isdigit() else (1, record_id)


def _first(items: Iterable[Employee]) -> Employee | None:
    ordered = sorted(items, key=lambda employee: _id_order(employee.id))
    return ordered[0] if ordered else None


# --- company, contact, opportunity -------------------------------------------------------


def _company(
    attendees: list[AttendeeMatch], answer: DirectoryAnswer, notes: list[str]
) -> Choice | None:
    direct = Counter(a.record_id for a in attendees if a.kind == "company")
    through = Counter(
        contact.company_id
        for a in attendees
        if a.kind == "contact"
        for contact in answer.contacts.get(a.email, ())
        if contact.id == a.record_id and contact.company_id
    )
    votes, how = (direct, "matched directly") if direct else (through, "company of a contact")
    if not votes:
        return None
    ranked = sorted(votes, key=lambda cid: (-votes[cid], _id_order(cid)))
    if len(ranked) > 1:
        notes.append(f"{len(ranked)} companies matched ({', '.join(ranked)}): took {ranked[0]}")
    return Choice(ranked[0], f"{how} ({votes[ranked[0]]} address(es))")


def _contact(
    attendees: list[AttendeeMatch], answer: DirectoryAnswer, company: Choice | None
) -> Choice | None:
    contacts = [a for a in attendees if a.kind == "contact"]
    for candidate in contacts:
        records = answer.contacts.get(candidate.email, ())
        if company is not None and any(
            c.id == candidate.record_id and c.company_id == company.record_id for c in records
        ):
            return Choice(candidate.record_id, f"{candidate.email}, a contact of the company")
    if contacts:
        return Choice(contacts[0].record_id, f"{contacts[0].email}, the first matched contact")
    return None


def _opportunity(
    company: Choice | None,
    answer: DirectoryAnswer,
    choice: OpportunityChoice,
    notes: list[str],
) -> Choice | None:
    if company is None or choice is OpportunityChoice.NEVER:
        return None
    open_ones = [o for o in answer.opportunities.get(company.record_id, ()) if o.status in "AB"]
    if not open_ones:
        return None
    if choice is OpportunityChoice.ONLY_ONE:
        if len(open_ones) == 1:
            return Choice(open_ones[0].id, "the company's only open opportunity")
        notes.append(
            f"company {company.record_id} has {len(open_ones)} open opportunities: none linked"
        )
        return None
    latest = max(open_ones, key=_recency)
    return Choice(latest.id, f"the most recent of {len(open_ones)} open opportunities")


def _recency(opportunity: Opportunity) -> tuple[date, tuple[int, int | str]]:
    return (opportunity.expected_close or date.min, _id_order(opportunity.id))


# --- the NetSuite body -------------------------------------------------------------------


def with_records(body: dict[str, Any], matches: Matches) -> dict[str, Any]:
    """The event body with record references instead of addresses."""
    linked = {key: value for key, value in body.items() if key != "attendee"}
    for name, chosen in (
        ("organizer", matches.organizer),
        ("company", matches.company),
        ("contact", matches.contact),
        ("transaction", matches.opportunity),
    ):
        if chosen is not None:
            linked[name] = {"id": chosen.record_id}
    linked["attendee"] = {"items": [attendee_item(a) for a in matches.attendees]}
    return linked


def attendee_item(attendee: AttendeeMatch) -> dict[str, Any]:
    return {
        "attendee": {"id": attendee.record_id},
        "response": attendee.response,
        "attendance": attendee.attendance,
    }


def matches_record(matches: Matches) -> dict[str, Any]:
    """The matches for the decision log: what won, and why."""

    def chosen(choice: Choice | None) -> dict[str, str] | None:
        return None if choice is None else {"id": choice.record_id, "why": choice.why}

    return {
        "organizer": chosen(matches.organizer),
        "company": chosen(matches.company),
        "contact": chosen(matches.contact),
        "opportunity": chosen(matches.opportunity),
        "attendees": [
            {"email": a.email, "kind": a.kind, "id": a.record_id, "response": a.response}
            for a in matches.attendees
        ],
        "unmatched": list(matches.unmatched),
        "left_out": list(matches.left_out),
        "ambiguities": list(matches.ambiguities),
    }

"""CRM matching policy: who organizes, who attends, which company, contact and opportunity."""

from __future__ import annotations

from datetime import UTC, date, datetime

from mailbot.core.crm import Company, Contact, DirectoryAnswer, Employee, Opportunity
from mailbot.core.matching import match, with_records
from mailbot.core.model import Attendee, Envelope, Invitation, Method, Organizer
from mailbot.core.policy import MatchPolicy, OpportunityChoice

REP = Employee("7", "rep@seller.example", "Rita Rep")
ANNA = Contact("1001", "anna@client.example", "Anna Buyer", company_id="501")
BOB = Contact("1002", "bob@client.example", "Bob Buyer", company_id="501")
CLIENT = Company("501", "office@client.example", "Client GmbH")
OTHER = Company("502", "info@other.example", "Other Ltd")


def _invitation(*attendees: str, organizer: str = "rep@seller.example") -> Invitation:
    return Invitation(
        method=Method.REQUEST,
        uid="u",
        start=datetime(2026, 3, 10, 9, tzinfo=UTC),
        end=datetime(2026, 3, 10, 10, tzinfo=UTC),
        all_day=False,
        organizer=Organizer(organizer),
        attendees=tuple(Attendee(a, partstat="ACCEPTED") for a in attendees),
    )


def _answer(**extra: object) -> DirectoryAnswer:
    base: dict[str, object] = {
        "employees": {REP.email: (REP,)},
        "contacts": {ANNA.email: (ANNA,), BOB.email: (BOB,)},
        "companies": {CLIENT.email: (CLIENT,), OTHER.email: (OTHER,)},
        "opportunities": {"501": (Opportunity("9001", "501", "Fleet", "A"),)},
    }
    base.update(extra)
    return DirectoryAnswer(**base)  # type: ignore[arg-type]


def test_organizer_contact_company_and_the_only_open_opportunity() -> None:
    matches = match(
        _invitation("anna@client.example"), Envelope(sender=REP.email), _answer(), MatchPolicy()
    )
    assert matches.organizer is not None and matches.organizer.record_id == "7"
    assert matches.contact is not None and matches.contact.record_id == "1001"
    assert matches.company is not None and matches.company.record_id == "501"
    assert matches.opportunity is not None and matches.opportunity.record_id == "9001"
    assert [a.record_id for a in matches.attendees] == ["7", "1001"]  # organizer added first
    assert matches.external


def test_an_external_organizer_falls_back_to_the_forwarding_employee_then_the_default() -> None:
    invitation = _invitation("anna@client.example", organizer="anna@client.example")
    forwarded = match(invitation, Envelope(sender=REP.email), _answer(), MatchPolicy())
    assert forwarded.organizer is not None and forwarded.organizer.record_id == "7"
    assert "forwarded by" in forwarded.organizer.why
    default = match(
        invitation,
        Envelope(sender="x@client.example"),
        _answer(),
        MatchPolicy(default_employee_id="3"),
    )
    assert default.organizer is not None and default.organizer.record_id == "3"


def test_the_sync_mailbox_and_ignored_addresses_are_left_out() -> None:
    invitation = _invitation("anna@client.example", "crm@seller.example", "room-4@seller.example")
    policy = MatchPolicy(
        mailbox_addresses=frozenset({"crm@seller.example"}),
        ignore_patterns=("room-*@seller.example",),
    )
    matches = match(invitation, Envelope(sender=REP.email), _answer(), policy)
    assert set(matches.left_out) == {"crm@seller.example", "room-4@seller.example"}
    assert matches.unmatched == ()


def test_unknown_addresses_are_dropped_and_reported() -> None:
    matches = match(
        _invitation("stranger@nowhere.example"),
        Envelope(sender=REP.email),
        _answer(),
        MatchPolicy(),
    )
    assert matches.unmatched == ("stranger@nowhere.example",)
    assert not matches.external


def test_several_records_for_one_address_take_the_lowest_id_and_say_so() -> None:
    twin = Contact("999", "anna@client.example", "Anna (old)", company_id="502")
    answer = _answer(contacts={ANNA.email: (ANNA, twin)})
    matches = match(
        _invitation("anna@client.example"), Envelope(sender=REP.email), answer, MatchPolicy()
    )
    assert [a.record_id for a in matches.attendees if a.kind == "contact"] == ["999"]
    assert any("took 999" in note for note in matches.ambiguities)


def test_a_company_matched_directly_wins_over_a_contacts_company() -> None:
    matches = match(
        _invitation("anna@client.example", "info@other.example"),
        Envelope(sender=REP.email),
        _answer(),
        MatchPolicy(),
    )
    assert matches.company is not None and matches.company.record_id == "502"


def test_several_open_opportunities_link_none_by_default_or_the_most_recent() -> None:
    two = {
        "501": (
            Opportunity("9001", "501", status="A", expected_close=date(2026, 5, 1)),
            Opportunity("9002", "501", status="B", expected_close=date(2026, 9, 1)),
        )
    }
    invitation = _invitation("anna@client.example")
    none = match(invitation, Envelope(sender=REP.email), _answer(opportunities=two), MatchPolicy())
    assert none.opportunity is None and any("2 open" in n for n in none.ambiguities)
    recent = match(
        invitation,
        Envelope(sender=REP.email),
        _answer(opportunities=two),
        MatchPolicy(opportunity=OpportunityChoice.MOST_RECENT),
    )
    assert recent.opportunity is not None and recent.opportunity.record_id == "9002"
    never = match(
        invitation,
        Envelope(sender=REP.email),
        _answer(),
        MatchPolicy(opportunity=OpportunityChoice.NEVER),
    )
    assert never.opportunity is None


def test_inactive_employees_do_not_organize() -> None:
    gone = Employee("8", "gone@seller.example", active=False)
    answer = _answer(employees={gone.email: (gone,)})
    matches = match(
        _invitation("anna@client.example", organizer=gone.email),
        Envelope(sender="x@client.example"),
        answer,
        MatchPolicy(),
    )
    assert matches.organizer is None


def test_the_body_carries_record_references() -> None:
    matches = match(
        _invitation("anna@client.example"), Envelope(sender=REP.email), _answer(), MatchPolicy()
    )
    body = with_records({"title": "Demo", "attendee": {"items": []}}, matches)
    assert body["organizer"] == {"id": "7"} and body["company"] == {"id": "501"}
    assert body["contact"] == {"id": "1001"} and body["transaction"] == {"id": "9001"}
    assert body["attendee"]["items"][1] == {
        "attendee": {"id": "1001"},
        "response": "ACCEPTED",
        "attendance": "REQUIRED",
    }

"""Shared parts of the engine scenario tests: a CRM account derived from the corpus, the
engine wired as ``mailbot.app.open_engine`` wires it, and builders for messages the corpus
does not have.

The account is built from the fixture files themselves (read with the project's own core),
so that the corpus messages are matchable:

* each From address and ORGANIZER becomes an active employee;
* each ATTENDEE becomes a contact of one company per domain (stage CUSTOMER); the company
  of ``OPPORTUNITY_DOMAIN`` has exactly one open opportunity;
* an address that is both (the calmailproc mails use one person's two work addresses as
  organizer and as invited guest of each other) is a contact only, since the matching
  policy takes an address that is an employee as internal and the meeting would then
  match no CRM record; its domain is an allowed sender domain instead, so that the mail
  it sends still passes the sender gate. An organizer or sender who lists itself among
  the attendees does not count as an attendee here.
"""

from __future__ import annotations

import email.policy
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import cache
from pathlib import Path
from typing import Any

from mailbot.adapters.netsuite.config import NetSuiteConfig
from mailbot.app import Engine, emulator_config, open_engine, quiet_libraries
from mailbot.core.pipeline import decide_message
from mailbot.core.policy import MatchPolicy, Policy
from mailbot.ports import MessageKey
from mailbot.service import Handled, MailItem
from mailbot.settings import Settings
from mailbot.sim.netsuite import NetSuiteEmulator

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CORPUS = FIXTURES / "corpus"
HANDMADE = FIXTURES / "handmade"
ZONE = "Europe/Berlin"
SYNC_MAILBOX = "crm-sync@ourco.example.org"
INTEGRATION_EMAIL = "integration@ourco.example.org"
OPPORTUNITY_DOMAIN = "example.com"
STRANGER = "mallory@unknown-sender.example.net"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
WRITE_METHODS = frozenset({"PUT", "PATCH", "POST", "DELETE"})
SUITEQL_PATH = "/services/rest/query/v1/suiteql"
CREDENTIALS = {
    "account": "1234567_SB1",
    "consumer_key": "scenario-consumer-key-" + "c" * 42,
    "consumer_secret": "scenario-consumer-secret-" + "s" * 39,
    "token_id": "scenario-token-id-" + "t" * 46,
    "token_secret": "scenario-token-secret-" + "x" * 42,
}
# The fields that make two NetSuite states "the same" (status compared separately).
COMPARED_FIELDS = ("title", "startDate", "startTime", "endTime", "allDayEvent", "status")


def corpus_files() -> list[Path]:
    """Every .eml and .ics file of the corpus, in file-name order (eml first)."""
    return sorted(CORPUS.glob("eml/*.eml")) + sorted(CORPUS.glob("ics/*.ics"))


def corpus(name: str) -> Path:
    """A corpus file by its name (looked up under eml/ and ics/)."""
    for folder in ("eml", "ics"):
        path = CORPUS / folder / name
        if path.exists():
            return path
    raise FileNotFoundError(name)


def fixture(name: str) -> Path:
    """A corpus file, or a hand-made one when the name carries the ``handmade/`` prefix."""
    if name.startswith("handmade/"):
        return HANDMADE / name.removeprefix("handmade/")
    return corpus(name)


# --- the CRM account -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CorpusAddresses:
    employees: tuple[str, ...]  # From and ORGANIZER addresses that are nobody's guest
    attendees: tuple[str, ...]  # ATTENDEE addresses (contacts)
    sender_domains: tuple[str, ...]  # domains of senders that are contacts


@cache
def corpus_addresses() -> CorpusAddresses:
    """The addresses of every corpus file, as the core reads them (see the module docstring)."""
    quiet_libraries()
    policy = Policy.for_zone(ZONE)
    senders: set[str] = set()
    organizers: set[str] = set()
    attendees: set[str] = set()
    for path in corpus_files():
        result = decide_message(path.read_bytes(), policy)
        sender = result.envelope.sender
        if sender:
            senders.add(sender)
        for decision in result.decisions:
            invitation = decision.invitation or (
                decision.broken.readable if decision.broken else None
            )
            if invitation is None:
                continue
            organizer = invitation.organizer.email if invitation.organizer else None
            if organizer:
                organizers.add(organizer)
            attendees.update(
                a.email for a in invitation.attendees if a.email not in {organizer, sender}
            )
    attendees.discard(SYNC_MAILBOX)
    employees = (senders | organizers) - attendees - {SYNC_MAILBOX}
    guests_who_send = senders & attendees
    return CorpusAddresses(
        tuple(sorted(employees)),
        tuple(sorted(attendees)),
        tuple(sorted({_domain(a) for a in guests_who_send})),
    )


@dataclass(frozen=True, slots=True)
class Account:
    """The seed data and the ids the tests need to name records."""

    data: dict[str, Any]
    employee_ids: dict[str, str]
    contact_ids: dict[str, str]
    company_ids: dict[str, str]  # by domain
    opportunity_id: str


def _domain(address: str) -> str:
    return address.rpartition("@")[2]


def _person(address: str) -> tuple[str, str]:
    local = address.partition("@")[0]
    words = [w for w in local.replace(".", " ").replace("_", " ").split() if w] or ["x"]
    return words[0].title()[:30], (" ".join(words[1:]).title() or "Corpus")[:30]


def corpus_account() -> Account:
    """The emulator's data set (see the module docstring)."""
    found = corpus_addresses()
    employees = [INTEGRATION_EMAIL, *found.employees]
    next_id = iter(range(1000, 100000))
    employee_ids: dict[str, str] = {}
    employee_rows = []
    for address in dict.fromkeys(employees):
        record_id = 1 if address == INTEGRATION_EMAIL else next(next_id)
        first, last = _person(address)
        employee_ids[address] = str(record_id)
        employee_rows.append(
            {
                "id": record_id,
                "entityid": f"{first} {last} ({record_id})",
                "firstname": first,
                "lastname": last,
                "email": address,
            }
        )
    company_ids: dict[str, str] = {}
    customer_rows = []
    for domain in sorted({_domain(a) for a in found.attendees}):
        record_id = next(next_id)
        company_ids[domain] = str(record_id)
        customer_rows.append(
            {
                "id": record_id,
                "entityid": f"Company {domain}",
                "companyname": f"Company {domain}",
                "stage": "CUSTOMER",
                "email": f"company-office@{domain}",
            }
        )
    contact_ids: dict[str, str] = {}
    contact_rows = []
    for address in found.attendees:
        record_id = next(next_id)
        first, last = _person(address)
        contact_ids[address] = str(record_id)
        contact_rows.append(
            {
                "id": record_id,
                "entityid": f"{first} {last} ({record_id})",
                "firstname": first,
                "lastname": last,
                "email": address,
                "company": int(company_ids[_domain(address)]),
            }
        )
    opportunity_id = 900001
    data = {
        "credentials": dict(CREDENTIALS),
        "timezone": ZONE,
        "integration_user": 1,
        "employees": employee_rows,
        "customers": customer_rows,
        "contacts": contact_rows,
        "opportunities": [
            {
                "id": opportunity_id,
                "tranid": "OPP1",
                "title": "Corpus pilot",
                "entity": int(company_ids[OPPORTUNITY_DOMAIN]),
                "status": "A",
                "expectedclosedate": "2026-06-30",
            }
        ],
    }
    return Account(data, employee_ids, contact_ids, company_ids, str(opportunity_id))


# --- the engine ----------------------------------------------------------------------------


def netsuite_config(emulator: NetSuiteEmulator) -> NetSuiteConfig:
    return emulator_config(emulator, max_attempts=2)


def settings_for(state_path: Path) -> Settings:
    return Settings(
        timezone=ZONE,
        state_path=str(state_path),
        sender_domains=frozenset(corpus_addresses().sender_domains),
        matching=MatchPolicy(mailbox_addresses=frozenset({SYNC_MAILBOX})),
    )


@contextmanager
def engine(
    emulator: NetSuiteEmulator, state_path: Path, *, dry_run: bool = False
) -> Iterator[Engine]:
    with open_engine(
        settings_for(state_path), netsuite_config(emulator), dry_run=dry_run
    ) as opened:
        yield opened


@dataclass
class Runner:
    """Feeds messages to one engine; every message gets a new key unless one is given."""

    engine: Engine
    prefix: str = "msg"
    handled: list[Handled] = field(default_factory=list)
    _count: int = 0

    def key(self, label: str) -> MessageKey:
        self._count += 1
        return MessageKey("file", 1, f"{self.prefix}-{self._count:04d}-{label}")

    def handle(self, raw: bytes, label: str = "message", key: MessageKey | None = None) -> Handled:
        item = MailItem(key or self.key(label), raw)
        result = self.engine.service.handle(item, NOW)
        self.handled.append(result)
        return result

    def handle_file(self, name: str) -> Handled:
        return self.handle(fixture(name).read_bytes(), name)

    def handle_files(self, names: Sequence[str]) -> list[Handled]:
        return [self.handle_file(name) for name in names]


def suiteql_calls(emulator: NetSuiteEmulator) -> int:
    return sum(entry.path.startswith(SUITEQL_PATH) for entry in emulator.request_log())


def record_writes(emulator: NetSuiteEmulator) -> int:
    """Requests that change records (SuiteQL reads are POSTs too, and are not counted)."""
    return sum(
        entry.method in WRITE_METHODS and not entry.path.startswith(SUITEQL_PATH)
        for entry in emulator.request_log()
    )


def confirmed_state(emulator: NetSuiteEmulator) -> dict[str, tuple[Any, ...]]:
    """The CONFIRMED events by external id (a CANCELLED event counts as absent)."""
    return {
        event["externalId"]: tuple(event.get(name) for name in COMPARED_FIELDS)
        for event in emulator.records("calendarEvent")
        if event.get("status") == "CONFIRMED"
    }


def events_by_external_id(emulator: NetSuiteEmulator) -> dict[str, dict[str, Any]]:
    return {event["externalId"]: event for event in emulator.records("calendarEvent")}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- messages the corpus does not have -------------------------------------------------------


def vevent(
    *,
    uid: str,
    organizer: str,
    attendees: Sequence[tuple[str, str]] = (),
    start: str = "20250610T100000",
    end: str = "20250610T110000",
    tzid: str = ZONE,
    sequence: int = 0,
    dtstamp: str = "20250601T080000Z",
    summary: str = "Scenario meeting",
    rrule: str | None = None,
    recurrence_id: str | None = None,
    status: str | None = None,
    extra: Sequence[str] = (),
) -> str:
    """One VEVENT (CRLF lines); ``attendees`` are (address, PARTSTAT) pairs, ``extra`` more
    property lines as written."""
    lines = [
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTAMP:{dtstamp}",
        f"SEQUENCE:{sequence}",
        f"DTSTART;TZID={tzid}:{start}",
        f"DTEND;TZID={tzid}:{end}",
        f"SUMMARY:{summary}",
        f"ORGANIZER;CN=Organizer:mailto:{organizer}",
    ]
    if recurrence_id is not None:
        lines.append(f"RECURRENCE-ID;TZID={tzid}:{recurrence_id}")
    if rrule is not None:
        lines.append(f"RRULE:{rrule}")
    if status is not None:
        lines.append(f"STATUS:{status}")
    lines.extend(
        f"ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT={partstat};RSVP=TRUE:mailto:{address}"
        for address, partstat in attendees
    )
    lines.extend(extra)
    lines.append("END:VEVENT")
    return "\r\n".join(lines)


def calendar(method: str, *events: str) -> str:
    body = "\r\n".join(events)
    return (
        "BEGIN:VCALENDAR\r\nPRODID:-//mailbot tests//scenarios//EN\r\nVERSION:2.0\r\n"
        f"METHOD:{method}\r\n{body}\r\nEND:VCALENDAR\r\n"
    )


def invitation_mail(
    *,
    sender: str,
    method: str,
    ics: str,
    subject: str = "Scenario meeting",
    to: str = SYNC_MAILBOX,
) -> bytes:
    """A plain text note plus a text/calendar part, as calendar clients send it."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(NOW)
    message["Message-ID"] = make_msgid(domain="scenario.example.org")
    message.set_content("Please see the calendar part.\n")
    message.add_alternative(
        ics.encode("utf-8"),
        maintype="text",
        subtype="calendar",
        params={"method": method, "charset": "utf-8"},
    )
    return message.as_bytes()


def forward_as_attachment(original: bytes, *, sender: str, note: str = "FYI") -> bytes:
    """``original`` forwarded by ``sender`` as a message/rfc822 attachment."""
    inner = message_from_bytes(original, policy=email.policy.default)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = SYNC_MAILBOX
    message["Subject"] = f"Fwd: {inner.get('Subject', '')}"
    message["Date"] = format_datetime(NOW)
    message["Message-ID"] = make_msgid(domain="scenario.example.org")
    message.set_content(f"{note}\n")
    message.add_attachment(inner)
    return message.as_bytes()

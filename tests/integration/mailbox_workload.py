"""A realistic shared mailbox for the reliability tests, the same for a given seed and day.

The people come from the emulator's demo CRM (``mailbot/sim/demo_data.json``): active
employees organize and forward, contacts of active companies are invited and reply, so the
invitations really match CRM records and are written to NetSuite. Meetings fall on working
days between 3 and 120 days after ``today`` (inside the default sync horizon), because the
daemon judges them against the real clock.

What a mailbox holds (each kind counted in ``Workload.counts``):

* ``request``: an employee's invitation with the sync mailbox on CC (Outlook's shape: a
  Windows time zone with its VTIMEZONE, quoted-printable ``text/calendar``), or a customer's
  invitation (Google's shape: an IANA zone, ``text/calendar`` plus ``invite.ics``) that
  reaches the mailbox only as ``forward``s;
* ``forward``: the same invitation forwarded by one to three salespeople, each as a
  ``message/rfc822`` attachment with a Message-ID of its own (same UID inside);
* ``update``: a later SEQUENCE with another time or title;
* ``reply``: METHOD:REPLY from an invited contact (sent to the mailbox, or forwarded by the
  organizer as Outlook's "Accepted: ..." messages are);
* ``cancel``: METHOD:CANCEL from the organizer;
* ``series`` and ``occurrence-cancel``: a weekly series and the cancellation of one date;
* ``duplicate``: a message delivered twice (the same bytes under two mailbox UIDs);
* ``plain``, ``forged``, ``multi-day``, ``unknown-guests``: mail the robot must skip.

Messages of one meeting usually arrive in order; now and then the last two swap (an update
overtaking its predecessor), as happens with real mail.
"""

from __future__ import annotations

import email.policy
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo

from mailbot.sim.netsuite import load_data

SYNC_MAILBOX = "crm-sync@lakeside-instruments.example.com"
COMPANY_DOMAIN = "lakeside-instruments.example.com"
ZONE_NAME = "Europe/Berlin"
ZONE = ZoneInfo(ZONE_NAME)
WINDOWS_ZONE = "W. Europe Standard Time"
SMTP = email.policy.SMTP  # CRLF line ends, as messages travel
FIRST_DAY, LAST_DAY = 3, 120  # days after today: inside the default horizon of 180 days
TOPICS = (
    "Product demo",
    "Pricing call",
    "Onboarding session",
    "Quarterly review",
    "Service planning",
    "Technical deep dive",
    "Contract walkthrough",
    "Pilot kick-off",
)
VTIMEZONE_WINDOWS = (
    f"BEGIN:VTIMEZONE\r\nTZID:{WINDOWS_ZONE}\r\n"
    "BEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
    "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\n"
    "BEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n"
    "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE"
)
VTIMEZONE_IANA = (
    f"BEGIN:VTIMEZONE\r\nTZID:{ZONE_NAME}\r\nX-LIC-LOCATION:{ZONE_NAME}\r\n"
    "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\n"
    "DTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
    "BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\n"
    "DTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n"
    "END:VTIMEZONE"
)
REPLIES = ("ACCEPTED", "ACCEPTED", "TENTATIVE", "DECLINED")


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    email: str

    @property
    def header(self) -> str:
        return f"{self.name} <{self.email}>"


@dataclass(frozen=True, slots=True)
class Crm:
    """The people of the demo CRM the mailbox is written by."""

    employees: tuple[Person, ...]  # active, not the integration user
    contacts: tuple[Person, ...]  # of active companies

    @classmethod
    def demo(cls) -> Crm:
        data = load_data(None)
        active_companies = {c["id"] for c in data["customers"] if not c.get("isinactive")}
        employees = tuple(
            _person(e)
            for e in data["employees"]
            if not e.get("isinactive") and e["id"] != data["integration_user"]
        )
        contacts = tuple(
            _person(c)
            for c in data["contacts"]
            if c.get("company") in active_companies and not c.get("isinactive")
        )
        return cls(employees, contacts)


def _person(row: dict[str, Any]) -> Person:
    return Person(f"{row['firstname']} {row['lastname']}", row["email"])


@dataclass(frozen=True, slots=True)
class WorkloadMessage:
    """One message as it lands in the mailbox."""

    raw: bytes
    message_id: str
    kind: str
    event_uid: str | None = None


@dataclass(frozen=True, slots=True)
class Workload:
    seed: int
    today: date
    messages: tuple[WorkloadMessage, ...]

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(message.kind for message in self.messages).items()))

    def __len__(self) -> int:
        return len(self.messages)


def build_workload(seed: int, *, messages: int = 300, today: date | None = None) -> Workload:
    """At least ``messages`` messages (meetings are whole, so a few more may come)."""
    day = today or datetime.now(UTC).date()
    composer = _Composer(random.Random(seed), Crm.demo(), day, seed)  # noqa: S311 - test data
    arrivals: list[tuple[float, int, int, WorkloadMessage]] = []
    story = 0
    while len(arrivals) < messages:
        start = composer.rng.uniform(0, 10_000)
        for position, (offset, message) in enumerate(composer.story(story)):
            arrivals.append((start + offset, story, position, message))
        story += 1
    arrivals.sort(key=lambda arrival: arrival[:3])
    return Workload(seed, day, tuple(message for *_, message in arrivals))


# --- one meeting's messages ---------------------------------------------------------------


@dataclass
class _Meeting:
    uid: str
    title: str
    organizer: Person
    attendees: list[tuple[Person, str]]  # (person, ROLE)
    day: date
    start: time
    minutes: int
    outlook: bool  # Outlook's shape (Windows zone); else Google's
    sequence: int = 0
    responses: dict[str, str] = field(default_factory=dict)

    def moved(self, day: date, start: time, minutes: int, title: str) -> None:
        self.day, self.start, self.minutes, self.title = day, start, minutes, title
        self.sequence += 1


@dataclass
class _Composer:
    rng: random.Random
    crm: Crm
    today: date
    seed: int
    _ids: int = 0

    # --- stories (lists of (minutes after the story's start, message))

    def story(self, number: int) -> list[tuple[float, WorkloadMessage]]:
        roll = self.rng.random()
        if roll < 0.50:
            messages = self._employee_meeting(number)
        elif roll < 0.80:
            messages = self._customer_meeting(number)
        elif roll < 0.88:
            messages = self._series(number)
        else:
            messages = [self._noise(number)]
        timed, clock = [], 0.0
        for message in messages:
            timed.append((clock, message))
            clock += self.rng.uniform(5, 600)
        if len(timed) > 2 and self.rng.random() < 0.1:  # the last two overtake each other
            (t1, m1), (t2, m2) = timed[-2], timed[-1]
            timed[-2:] = [(t1, m2), (t2, m1)]
        return timed

    def _employee_meeting(self, number: int) -> list[WorkloadMessage]:
        """An employee invites contacts, the mailbox on CC; replies, updates, a cancel."""
        organizer = self.rng.choice(self.crm.employees)
        guests = self.rng.sample(self.crm.contacts, self.rng.randint(1, 3))
        colleagues = [e for e in self.crm.employees if e != organizer]
        attendees = [(organizer, "CHAIR")] + [(g, "REQ-PARTICIPANT") for g in guests]
        if self.rng.random() < 0.3:
            attendees.append((self.rng.choice(colleagues), "OPT-PARTICIPANT"))
        meeting = self._meeting(number, organizer, attendees, outlook=True)
        sent = [self._request(meeting, organizer, kind="request")]
        if self.rng.random() < 0.08:
            sent.append(_again(sent[0]))
        sent += self._follow_ups(meeting, forwarder=None)
        return sent

    def _customer_meeting(self, number: int) -> list[WorkloadMessage]:
        """A contact invites salespeople; they forward it (several of them, each once)."""
        organizer = self.rng.choice(self.crm.contacts)
        invited = self.rng.sample(self.crm.employees, self.rng.randint(1, 3))
        attendees = [(organizer, "CHAIR")] + [(e, "REQ-PARTICIPANT") for e in invited]
        meeting = self._meeting(number, organizer, attendees, outlook=False)
        original = self._invitation(meeting, "REQUEST", organizer, invited)
        sent = [self._forward(original, by, kind="forward", uid=meeting.uid) for by in invited]
        sent += self._follow_ups(meeting, forwarder=invited[0])
        return sent

    def _follow_ups(self, meeting: _Meeting, forwarder: Person | None) -> list[WorkloadMessage]:
        """Replies from the guests, perhaps an update (and its replies), perhaps a cancel."""
        sent = self._replies(meeting, forwarder)
        if self.rng.random() < 0.45:
            day, start, minutes = self._slot()
            title = meeting.title if self.rng.random() < 0.6 else f"{meeting.title} (moved)"
            meeting.moved(day, start, minutes, title)
            sent.append(self._revision(meeting, "update", forwarder))
            sent += self._replies(meeting, forwarder, share=0.5)
        if self.rng.random() < 0.2:
            meeting.sequence += 1
            sent.append(self._revision(meeting, "cancel", forwarder))
        return sent

    def _replies(
        self, meeting: _Meeting, forwarder: Person | None, share: float = 0.8
    ) -> list[WorkloadMessage]:
        guests = [p for p, _ in meeting.attendees[1:] if _domain(p) != COMPANY_DOMAIN]
        if forwarder is not None:  # a customer's meeting: the customer's colleagues are absent
            guests = []
        sent = []
        for guest in guests:
            if self.rng.random() >= share:
                continue
            partstat = self.rng.choice(REPLIES)
            reply = self._reply(meeting, guest, partstat)
            if self.rng.random() < 0.3:  # the organizer forwards the "Accepted: ..." message
                sent.append(self._forward(reply.raw, meeting.organizer, "reply", meeting.uid))
            else:
                sent.append(reply)
        return sent

    def _series(self, number: int) -> list[WorkloadMessage]:
        """A weekly check-in of four dates; sometimes one date is cancelled."""
        organizer = self.rng.choice(self.crm.employees)
        guest = self.rng.choice(self.crm.contacts)
        meeting = self._meeting(
            number, organizer, [(organizer, "CHAIR"), (guest, "REQ-PARTICIPANT")], outlook=True
        )
        meeting.title = f"Weekly check-in {number:03d} ({guest.name})"
        rule = ["RRULE:FREQ=WEEKLY;COUNT=4"]
        sent = [self._request(meeting, organizer, kind="series", extra=rule)]
        if self.rng.random() < 0.5:
            meeting.sequence += 1
            cancelled = datetime.combine(
                meeting.day + timedelta(weeks=self.rng.randint(1, 3)), meeting.start
            )
            recurrence_id = f"RECURRENCE-ID;TZID={WINDOWS_ZONE}:{_local(cancelled)}"
            sent.append(
                self._request(
                    meeting,
                    organizer,
                    kind="occurrence-cancel",
                    method="CANCEL",
                    extra=[recurrence_id, "STATUS:CANCELLED"],
                )
            )
        return sent

    def _noise(self, number: int) -> WorkloadMessage:
        """Mail the robot reads and skips, each for its own reason."""
        kind = self.rng.choice(("plain", "forged", "multi-day", "unknown-guests"))
        employee = self.rng.choice(self.crm.employees)
        guest = self.rng.choice(self.crm.contacts)
        if kind == "plain":
            return self._plain(employee, f"Re: Product demo {number:03d}")
        if kind == "forged":
            mallory = Person("Mallory Outsider", f"mallory{number}@outsider.example.net")
            meeting = self._meeting(
                number, mallory, [(mallory, "CHAIR"), (guest, "REQ-PARTICIPANT")], outlook=False
            )
            return self._request(meeting, mallory, kind="forged")
        if kind == "unknown-guests":
            stranger = Person("Sam Stranger", f"sam{number}@no-such-customer.example.org")
            meeting = self._meeting(
                number, employee, [(employee, "CHAIR"), (stranger, "REQ-PARTICIPANT")], True
            )
            return self._request(meeting, employee, kind="unknown-guests")
        meeting = self._meeting(
            number, employee, [(employee, "CHAIR"), (guest, "REQ-PARTICIPANT")], outlook=True
        )
        meeting.minutes = 60 * 24 + 8 * 60  # into the next day
        return self._request(meeting, employee, kind="multi-day")

    # --- messages

    def _meeting(
        self, number: int, organizer: Person, attendees: list[tuple[Person, str]], outlook: bool
    ) -> _Meeting:
        day, start, minutes = self._slot()
        topic = self.rng.choice(TOPICS)
        customers = [p for p, _ in attendees if _domain(p) != COMPANY_DOMAIN]
        guest = customers[0] if customers else attendees[-1][0]
        return _Meeting(
            uid=f"wl{self.seed}-{number:04d}-{self.rng.getrandbits(32):08x}@{_domain(organizer)}",
            title=f"{topic} {number:03d} with {guest.name}",
            organizer=organizer,
            attendees=attendees,
            day=day,
            start=start,
            minutes=minutes,
            outlook=outlook,
        )

    def _slot(self) -> tuple[date, time, int]:
        day = self.today + timedelta(days=self.rng.randint(FIRST_DAY, LAST_DAY))
        while day.weekday() >= 5:
            day += timedelta(days=1)
        start = time(self.rng.randint(8, 16), self.rng.choice((0, 15, 30, 45)))
        return day, start, self.rng.choice((30, 45, 60, 90))

    def _request(
        self,
        meeting: _Meeting,
        sender: Person,
        *,
        kind: str,
        method: str = "REQUEST",
        extra: Sequence[str] = (),
    ) -> WorkloadMessage:
        """The organizer's own message, the sync mailbox on CC."""
        people = [person for person, _ in meeting.attendees]
        ics = self._calendar(meeting, method, extra)
        raw, message_id = self._mail(
            sender,
            to=people[1:],
            subject=_subject(meeting, method),
            note="Please find the meeting details below.",
            calendar=(ics, method),
            outlook=meeting.outlook,
        )
        return WorkloadMessage(raw, message_id, kind, meeting.uid)

    def _invitation(
        self, meeting: _Meeting, method: str, sender: Person, to: Sequence[Person]
    ) -> bytes:
        """The invitation as the invited salespeople received it (not sent to the mailbox)."""
        ics = self._calendar(meeting, method, ())
        raw, _ = self._mail(
            sender,
            to=to,
            subject=_subject(meeting, method),
            note="Looking forward to talking to you.",
            calendar=(ics, method),
            outlook=meeting.outlook,
            cc_mailbox=False,
        )
        return raw

    def _revision(self, meeting: _Meeting, kind: str, forwarder: Person | None) -> WorkloadMessage:
        method = "CANCEL" if kind == "cancel" else "REQUEST"
        extra = ["STATUS:CANCELLED"] if kind == "cancel" else []
        if forwarder is None:
            return self._request(meeting, meeting.organizer, kind=kind, method=method, extra=extra)
        ics = self._calendar(meeting, method, extra)
        raw, _ = self._mail(
            meeting.organizer,
            to=[p for p, _ in meeting.attendees[1:]],
            subject=_subject(meeting, method),
            note="The plan changed.",
            calendar=(ics, method),
            outlook=meeting.outlook,
            cc_mailbox=False,
        )
        return self._forward(raw, forwarder, kind, meeting.uid)

    def _reply(self, meeting: _Meeting, guest: Person, partstat: str) -> WorkloadMessage:
        meeting.responses[guest.email] = partstat
        ics = self._calendar(meeting, "REPLY", (), replying=(guest, partstat))
        raw, message_id = self._mail(
            guest,
            to=[meeting.organizer],
            subject=f"{partstat.title()}: {meeting.title}",
            note=f"{guest.name} has {partstat.lower()} this invitation.",
            calendar=(ics, "REPLY"),
            outlook=meeting.outlook,
        )
        return WorkloadMessage(raw, message_id, "reply", meeting.uid)

    def _forward(self, original: bytes, by: Person, kind: str, uid: str) -> WorkloadMessage:
        """``original`` forwarded as a message/rfc822 attachment, with a Message-ID of its own."""
        inner = email.message_from_bytes(original, policy=SMTP)
        message, message_id = self._envelope(by, [Person("CRM sync", SYNC_MAILBOX)])
        message["Subject"] = f"Fwd: {inner['Subject']}"
        message.set_content("Forwarded for the CRM.\n")
        message.add_attachment(inner)
        return WorkloadMessage(message.as_bytes(policy=SMTP), message_id, kind, uid)

    def _plain(self, sender: Person, subject: str) -> WorkloadMessage:
        message, message_id = self._envelope(sender, [Person("CRM sync", SYNC_MAILBOX)])
        message["Subject"] = subject
        message.set_content("Thanks, see you there.\n")
        return WorkloadMessage(message.as_bytes(policy=SMTP), message_id, "plain")

    def _mail(
        self,
        sender: Person,
        *,
        to: Sequence[Person],
        subject: str,
        note: str,
        calendar: tuple[str, str],
        outlook: bool,
        cc_mailbox: bool = True,
    ) -> tuple[bytes, str]:
        message, message_id = self._envelope(sender, to or [sender])
        if cc_mailbox:
            message["Cc"] = SYNC_MAILBOX
        message["Subject"] = subject
        ics, method = calendar
        message.set_content(note + "\n")
        params = {"method": method, "charset": "utf-8"}
        if outlook:
            message.add_alternative(ics, subtype="calendar", params=params, cte="quoted-printable")
        else:
            message.add_alternative(ics, subtype="calendar", params=params)
            message.add_attachment(
                ics.encode("utf-8"),
                maintype="application",
                subtype="ics",
                filename="invite.ics",
                params={"name": "invite.ics"},
            )
        return message.as_bytes(policy=SMTP), message_id

    def _envelope(self, sender: Person, to: Sequence[Person]) -> tuple[EmailMessage, str]:
        self._ids += 1
        serial = f"wl{self.seed}.{self._ids:05d}.{self.rng.getrandbits(40):010x}"
        message_id = f"<{serial}@{_domain(sender)}>"
        message = EmailMessage(policy=SMTP)
        message["From"] = sender.header
        message["To"] = ", ".join(person.header for person in to)
        message["Date"] = format_datetime(self._sent_at())
        message["Message-ID"] = message_id
        return message, message_id

    def _sent_at(self) -> datetime:
        """Later for each message built, so every revision has a newer DTSTAMP."""
        base = datetime.combine(self.today, time(0), UTC) - timedelta(days=2)
        return base + timedelta(seconds=37 * self._ids)

    def _calendar(
        self,
        meeting: _Meeting,
        method: str,
        extra: Sequence[str],
        replying: tuple[Person, str] | None = None,
    ) -> str:
        begins = datetime.combine(meeting.day, meeting.start)
        ends = begins + timedelta(minutes=meeting.minutes)
        zone = WINDOWS_ZONE if meeting.outlook else ZONE_NAME
        lines = [
            "BEGIN:VEVENT",
            f"UID:{meeting.uid}",
            f"SEQUENCE:{meeting.sequence}",
            f"DTSTAMP:{self._sent_at().strftime('%Y%m%dT%H%M%SZ')}",
            f"DTSTART;TZID={zone}:{_local(begins)}",
            f"DTEND;TZID={zone}:{_local(ends)}",
            f"SUMMARY:{meeting.title}",
            "LOCATION:Teams meeting" if meeting.outlook else "LOCATION:Google Meet",
            f"ORGANIZER;CN={meeting.organizer.name}:mailto:{meeting.organizer.email}",
        ]
        if replying is not None:
            guest, partstat = replying
            lines.append(f"ATTENDEE;CN={guest.name};PARTSTAT={partstat}:mailto:{guest.email}")
        else:
            lines += [
                f"ATTENDEE;CN={person.name};ROLE={role};"
                f"PARTSTAT={_partstat(meeting, person, role)};RSVP=TRUE:mailto:{person.email}"
                for person, role in meeting.attendees
            ]
        lines += list(extra)
        lines.append("END:VEVENT")
        product = (
            "-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN"
            if meeting.outlook
            else ("-//Google Inc//Google Calendar 70.9054//EN")
        )
        timezone = VTIMEZONE_WINDOWS if meeting.outlook else VTIMEZONE_IANA
        return (
            f"BEGIN:VCALENDAR\r\nPRODID:{product}\r\nVERSION:2.0\r\nMETHOD:{method}\r\n"
            f"{timezone}\r\n" + "\r\n".join(lines) + "\r\nEND:VCALENDAR\r\n"
        )


def _again(message: WorkloadMessage) -> WorkloadMessage:
    """The same message delivered a second time (same bytes, another mailbox UID)."""
    return WorkloadMessage(message.raw, message.message_id, "duplicate", message.event_uid)


def _partstat(meeting: _Meeting, person: Person, role: str) -> str:
    if role == "CHAIR":
        return "ACCEPTED"
    return meeting.responses.get(person.email, "NEEDS-ACTION")


def _subject(meeting: _Meeting, method: str) -> str:
    if method == "CANCEL":
        return f"Canceled: {meeting.title}"
    return f"{'Updated invitation' if meeting.sequence else 'Invitation'}: {meeting.title}"


def _local(value: datetime) -> str:
    return value.strftime("%Y%m%dT%H%M%S")


def _domain(person: Person) -> str:
    return person.email.rpartition("@")[2]


def meeting_with_reply(
    seed: int, *, today: date | None = None
) -> tuple[WorkloadMessage, WorkloadMessage, Person]:
    """An employee's invitation to one contact, that contact's acceptance (a REPLY), and
    the contact."""
    day = today or datetime.now(UTC).date()
    composer = _Composer(random.Random(seed), Crm.demo(), day, seed)  # noqa: S311 - test data
    organizer = composer.rng.choice(composer.crm.employees)
    guest = composer.rng.choice(composer.crm.contacts)
    meeting = composer._meeting(
        0, organizer, [(organizer, "CHAIR"), (guest, "REQ-PARTICIPANT")], outlook=True
    )
    invitation = composer._request(meeting, organizer, kind="request")
    return invitation, composer._reply(meeting, guest, "ACCEPTED"), guest


def plain_note(seed: int) -> WorkloadMessage:
    """A note without calendar data (the robot skips it)."""
    day = datetime.now(UTC).date()
    composer = _Composer(random.Random(seed), Crm.demo(), day, seed)  # noqa: S311 - test data
    return composer._plain(composer.crm.employees[0], "Lunch on Friday?")

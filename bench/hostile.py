"""Hostile input for the pure core: corpus files mutated at random, and messages built to
cross each limit by far.

Shared by the benchmarks (``bench/fuzz_core.py``, ``bench/limits.py``) and the tests that
hold the same promises (``tests/unit/test_limits.py``, ``tests/unit/test_fuzz_long.py``),
so that what is measured is what is tested.
"""

from __future__ import annotations

import collections
import random
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from mailbot.core.crm import Company, Contact, DirectoryAnswer, Employee
from mailbot.core.pipeline import ReadMessage, decide_read, read_message
from mailbot.core.policy import Policy, RecurrenceMode
from mailbot.core.sync import Planned, Stored, addresses_to_look_up, instances, plan_message

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
HORIZON = timedelta(days=180)  # the defaults of [sync]
PAST = timedelta(days=30)

# --- mutation fuzzing ----------------------------------------------------------------------

TOKENS = (
    b"\r\n",
    b":",
    b";",
    b"=",
    b"BEGIN:VEVENT\r\n",
    b"END:VEVENT\r\n",
    b"BEGIN:VTIMEZONE\r\n",
    b"END:VCALENDAR",
    b"\x00",
    b"TZID=",
    b"--",
    b"Content-Type: message/rfc822\r\n\r\n",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n",
    b"\xff\xfe",
    b"RRULE:FREQ=SECONDLY;COUNT=1000000000\r\n",
    b"RRULE:FREQ=DAILY;BYHOUR=1,2,3;BYMINUTE=1,2,3,4,5;BYSECOND=1,2,3,4,5\r\n",
    b"RRULE:FREQ=WEEKLY;BYDAY=MO,TU\r\n",
    b"=?utf-8?b?",
    b'charset="x"',
    b"DTSTART:",
    b"RECURRENCE-ID:",
    b"EXDATE:",
    b"Content-Transfer-Encoding: base64\r\n",
    b"boundary=",
    b";VALUE=DATE",
    b"BEGIN:DAYLIGHT\r\n",
    b"METHOD:REPLY\r\n",
    b"METHOD:CANCEL\r\n",
    b"ATTENDEE;PARTSTAT=ACCEPTED:mailto:x@client.example\r\n",
    b"Authentication-Results: mx.example.com; dmarc=pass header.from=example.com\r\n",
)


def seed_files() -> list[bytes]:
    """Every e-mail and iCalendar file of the test corpus (real-world and handmade)."""
    return [p.read_bytes() for p in sorted(FIXTURES.rglob("*")) if p.suffix in {".eml", ".ics"}]


def generate(seeds: list[bytes], rng: random.Random) -> bytes:
    """A new input from the corpus: one file, or (one time in four) one with a slice of
    another spliced in, then mutated."""
    data = rng.choice(seeds)
    if rng.random() < 0.25:
        donor = rng.choice(seeds)
        start = rng.randrange(max(len(donor), 1))
        piece = donor[start : start + rng.randint(1, 2000)]
        position = rng.randrange(max(len(data), 1))
        data = data[:position] + piece + data[position:]
    return mutate(data, rng)


def mutate(seed: bytes, rng: random.Random) -> bytes:
    """One to ten random edits: byte flips, cuts, inserted tokens, repeats, truncation."""
    data = bytearray(seed)
    for _ in range(rng.randint(1, 10)):
        position = rng.randrange(max(len(data), 1))
        roll = rng.random()
        if roll < 0.3 and data:
            data[position] = rng.randrange(256)
        elif roll < 0.5:
            del data[position : position + rng.randint(1, 80)]
        elif roll < 0.8:
            data[position:position] = rng.choice(TOKENS)
        elif roll < 0.9:
            data[position:position] = data[position : position + rng.randint(1, 300)]
        else:
            del data[position:]
    return bytes(data)


def fuzz_policies() -> tuple[Policy, ...]:
    """The policies inputs are tried under: both recurrence modes, a trusted mail server."""
    trusted = frozenset({"mx.example.com"})
    return tuple(
        Policy.for_zone(
            "Europe/Berlin",
            recurrence=mode,
            trusted_authserv_ids=trusted,
            sender_domains=frozenset({"example.com"}),
        )
        for mode in RecurrenceMode
    )


def through_the_core(raw: bytes, policy: Policy) -> int:
    """One input through every pure step the daemon and ``mailbot explain`` run: MIME and
    iCalendar reading, the rules, recurrence expansion, CRM matching (every address known:
    the sender an employee, everyone else a customer's contact) and both planners."""
    read = read_message(raw, policy)
    return len(plan_read(read, policy)) + len(decide_read(read, policy).decisions)


def plan_read(read: ReadMessage, policy: Policy) -> list[Planned]:
    """The daemon's pure work on a message read: expansion, matching, planning."""
    found = instances(read, policy, HORIZON, PAST)
    return plan_message(read, found, everyone_known(read), Stored({}, {}, {}), policy)


def everyone_known(read: ReadMessage) -> DirectoryAnswer:
    """Every address of the message known to the CRM: the sender an active employee,
    everyone else a contact of one customer."""
    addresses = sorted(addresses_to_look_up(read))
    sender = read.envelope.sender
    employees = {sender: (Employee("1", sender),)} if sender else {}
    contacts = {
        address: (Contact(str(10 + n), address, company_id="2"),)
        for n, address in enumerate(addresses)
        if address != sender
    }
    companies = {address: (Company("2", address),) for address in addresses[:1]}
    return DirectoryAnswer(employees=employees, contacts=contacts, companies=companies)


class SlowInputError(Exception):
    """Raised by the alarm when one input takes longer than allowed."""


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise SlowInputError


@dataclass
class FuzzReport:
    """What a fuzzing run found: exceptions that escaped (by type and place) and slow inputs."""

    inputs: int = 0
    escaped: collections.Counter[str] = field(default_factory=collections.Counter)
    examples: dict[str, bytes] = field(default_factory=dict)  # one input per place
    slow: list[bytes] = field(default_factory=list)
    slowest_s: float = 0.0
    elapsed_s: float = 0.0


def fuzz(
    count: int,
    seed: int,
    policies: Sequence[Policy],
    *,
    slow_seconds: float,
    target: Callable[[bytes, Policy], object] = through_the_core,
) -> FuzzReport:
    """``count`` inputs generated from the corpus through ``target``, each under one of
    ``policies``; an input running longer than ``slow_seconds`` is stopped by SIGALRM and
    kept (so this runs in the main thread)."""
    seeds = seed_files()
    rng = random.Random(seed)  # noqa: S311 - reproducible mutations, not cryptography
    report = FuzzReport()
    previous = signal.signal(signal.SIGALRM, _alarm)
    started = time.perf_counter()
    try:
        for _ in range(count):
            data = generate(seeds, rng)
            _one(data, rng.choice(policies), target, slow_seconds, report)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    report.elapsed_s = time.perf_counter() - started
    return report


def _one(
    data: bytes,
    policy: Policy,
    target: Callable[[bytes, Policy], object],
    slow_seconds: float,
    report: FuzzReport,
) -> None:
    report.inputs += 1
    began = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, slow_seconds)
    try:
        target(data, policy)
    except SlowInputError:
        report.slow.append(data)
    except Exception as error:  # noqa: BLE001 - counting what escapes is the point
        frame = traceback.extract_tb(error.__traceback__)[-1]
        place = f"{type(error).__name__} at {Path(frame.filename).name}:{frame.lineno}"
        report.escaped[place] += 1
        report.examples.setdefault(place, data)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    report.slowest_s = max(report.slowest_s, time.perf_counter() - began)


# --- messages built to cross one limit -------------------------------------------------------

SENDER = b"anna@client.example"
BUYER = b"buyer@client.example"
HEADERS = (
    b"From: Anna <" + SENDER + b">\r\nTo: crm-sync@example.com\r\nSubject: Hostile\r\n"
    b"Date: Mon, 05 Jan 2026 10:00:00 +0000\r\nMessage-ID: <hostile@client.example>\r\n"
    b"MIME-Version: 1.0\r\n"
)


def vevent(uid: str, extra: bytes = b"") -> bytes:
    return (
        b"BEGIN:VEVENT\r\nUID:" + uid.encode() + b"\r\nDTSTAMP:20260105T100000Z\r\n"
        b"DTSTART:20260112T090000Z\r\nDTEND:20260112T100000Z\r\nSUMMARY:Review\r\n"
        b"ORGANIZER:mailto:"
        + SENDER
        + b"\r\nATTENDEE:mailto:"
        + BUYER
        + b"\r\n"
        + extra
        + b"END:VEVENT\r\n"
    )


def calendar(*events: bytes) -> bytes:
    return (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//hostile//EN\r\nMETHOD:REQUEST\r\n"
        + b"".join(events)
        + b"END:VCALENDAR\r\n"
    )


def invitation(body: bytes, headers: bytes = HEADERS) -> bytes:
    """An e-mail whose only body is the calendar ``body``."""
    return headers + b"Content-Type: text/calendar; method=REQUEST; charset=utf-8\r\n\r\n" + body


def plain(body: bytes, headers: bytes = HEADERS) -> bytes:
    return headers + b"Content-Type: text/plain\r\n\r\n" + body


def oversized(size: int) -> bytes:
    return plain(b"x" * size)


def many_lines(lines: int) -> bytes:
    return plain(b"x\r\n" * lines)


def long_line(size: int) -> bytes:
    return plain(b"y" * size + b"\r\n")


def many_header_fields(fields: int) -> bytes:
    return invitation(calendar(vevent("fields@x")), b"X-H: v\r\n" * fields + HEADERS)


def encoded_words_subject(words: int) -> bytes:
    """A Subject of many MIME encoded words: the email package decodes them in time
    quadratic in their number."""
    folded = b"\r\n ".join([b"=?utf-8?b?QUJD?="] * words)
    return invitation(calendar(vevent("words@x")), b"Subject: " + folded + b"\r\n" + HEADERS)


def nested_comments_from(depth: int) -> bytes:
    """A From of nested comments: the address parser recurses once per "("."""
    return invitation(calendar(vevent("comments@x")), b"From: " + b"(" * depth + b"\r\n" + HEADERS)


def deep_multipart(depth: int) -> bytes:
    opening = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (level, level)
        for level in range(depth)
    )
    inner = b"Content-Type: text/calendar; method=REQUEST\r\n\r\n" + calendar(vevent("deep@x"))
    closing = b"".join(b"\r\n--b%d--\r\n" % level for level in reversed(range(depth)))
    return HEADERS + opening + inner + closing


def deep_forwarding(depth: int) -> bytes:
    """Messages forwarded as attachments inside each other (message/rfc822, no boundary)."""
    inner = b"Content-Type: text/calendar; method=REQUEST\r\n\r\n" + calendar(vevent("fwd@x"))
    return HEADERS + b"Content-Type: message/rfc822\r\n\r\n" * depth + inner


def many_parts(parts: int) -> bytes:
    body = b"--p\r\nContent-Type: text/plain\r\n\r\nx\r\n" * parts
    calendar_part = b"--p\r\nContent-Type: text/calendar\r\n\r\n" + calendar(vevent("parts@x"))
    return (
        HEADERS
        + b"Content-Type: multipart/mixed; boundary=p\r\n\r\n"
        + body
        + calendar_part
        + b"--p--\r\n"
    )


def big_calendar(size: int) -> bytes:
    description = b"DESCRIPTION:" + b"d" * 70 + b"".join([b"\r\n " + b"d" * 74] * (size // 77))
    return invitation(calendar(vevent("big@x", description + b"\r\n")))


def many_content_lines(lines: int) -> bytes:
    return invitation(calendar(vevent("lines@x", b"X-FILL:1\r\n" * lines)))


def many_events(events: int) -> bytes:
    return invitation(calendar(*(vevent(f"e{n}@x") for n in range(events))))


def many_attendees(attendees: int) -> bytes:
    lines = b"".join(b"ATTENDEE:mailto:a%d@client.example\r\n" % n for n in range(attendees))
    return invitation(calendar(vevent("crowd@x", lines)))


def recurring(rule: bytes) -> bytes:
    return invitation(calendar(vevent("series@x", b"RRULE:" + rule + b"\r\n")))


def listed_dates(rdates: int, exdates: int) -> bytes:
    """A series with ``rdates`` extra instants (one a minute from its start) and ``exdates``
    excluded dates (from 2030 on, so none of the instants), each list one property folded
    over many lines, as RFC 5545 allows."""
    first = datetime(2026, 1, 12, 9, tzinfo=UTC)
    added = b",".join(
        (first + timedelta(minutes=n)).strftime("%Y%m%dT%H%M%SZ").encode() for n in range(rdates)
    )
    lines = b"RRULE:FREQ=DAILY;COUNT=2\r\n" + _folded(b"RDATE:" + added)
    if exdates:
        later = datetime(2030, 1, 1, tzinfo=UTC)
        removed = (later + timedelta(days=n) for n in range(exdates))
        dates = b",".join(day.strftime("%Y%m%d").encode() for day in removed)
        lines += _folded(b"EXDATE;VALUE=DATE:" + dates)
    return invitation(calendar(vevent("listed@x", lines)))


def _folded(line: bytes) -> bytes:
    return b"\r\n ".join(line[n : n + 74] for n in range(0, len(line), 74)) + b"\r\n"


EVERY_SECOND_OF_THE_DAY = (
    b"FREQ=DAILY;BYHOUR="
    + b",".join(b"%d" % n for n in range(24))
    + b";BYMINUTE="
    + b",".join(b"%d" % n for n in range(60))
    + b";BYSECOND="
    + b",".join(b"%d" % n for n in range(60))
    + b";COUNT=1000000000"
)

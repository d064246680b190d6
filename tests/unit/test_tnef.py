"""mailbot.core.tnef: finding iCalendar data in Outlook winmail.dat (TNEF) containers.

The corpus sample is real (MimeKit's test data); the small containers are built here, since
tnefparse has no writer: just enough of MS-OXTNEF to exercise each rule.
"""

from __future__ import annotations

import hashlib
import random
import struct
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from icalendar import Calendar, vRecur

from mailbot.core.tnef import (
    MAX_EMBEDDING_DEPTH,
    MAX_PARSE_STEPS,
    MAX_TNEF_BYTES,
    TNEF_SIGNATURE,
    TnefContents,
    _Budget,
    _scan_tnef,
    looks_like_tnef,
    read_tnef,
)

SAMPLE_PATH = Path(__file__).parents[1] / "fixtures/corpus/tnef/mimekit__christmas.tnef"
SAMPLE_SHA256 = "ee87ed34b7b4df2b2998febe65753e733edea8f7b2ced03d4afec765f74046f8"

SAMPLE_CALENDAR = (
    b"BEGIN:VCALENDAR\r\n"
    b"VERSION:2.0\r\n"
    b"PRODID:-//Apple Inc.//Apple WebDAV Outlook Store 4.9.10//EN\r\n"
    b"CALSCALE:GREGORIAN\r\n"
    b"BEGIN:VEVENT\r\n"
    b"X-APPLE-OL-MAPPING-INFO:1\r\n"
    b"SEQUENCE:0\r\n"
    b"CREATED:20181215T144923Z\r\n"
    b"DTSTAMP:20181215T144904Z\r\n"
    b"UID:4447-07E20C0F-019F-0E31-FF17-00739\r\n"
    b"LOCATION:Home\r\n"
    b"SUMMARY:Christmas Celebration!\r\n"
    b"DESCRIPTION:It's time for everyone to open their Christmas presents!\r\n"
    b"DTSTART:20181225T120000Z\r\n"
    b"DTEND:20181225T140000Z\r\n"
    b"BEGIN:VALARM\r\n"
    b"X-WR-ALARMUID:GEEP-07E20C0F-019F-0E31-FF17-00739\r\n"
    b"UID:GEEP-07E20C0F-019F-0E31-FF17-00739\r\n"
    b"TRIGGER:-PT10M\r\n"
    b"ACTION:DISPLAY\r\n"
    b"DESCRIPTION:This is an event reminder.\r\n"
    b"END:VALARM\r\n"
    b"RRULE:FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=25;WKST=SU\r\n"
    b"LAST-MODIFIED:20181215T144904Z\r\n"
    b"END:VEVENT\r\n"
    b"END:VCALENDAR\r\n"
)

ICS = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nMETHOD:REQUEST\r\n"
    b"BEGIN:VEVENT\r\nUID:built-1\r\nDTSTAMP:20240101T000000Z\r\n"
    b"DTSTART:20240102T100000Z\r\nDTEND:20240102T110000Z\r\nSUMMARY:Built\r\n"
    b"END:VEVENT\r\nEND:VCALENDAR\r\n"
)
OTHER_ICS = ICS.replace(b"built-1", b"built-2")


@pytest.fixture(scope="module")
def sample() -> bytes:
    return SAMPLE_PATH.read_bytes()


@pytest.fixture(scope="module")
def sample_contents(sample: bytes) -> TnefContents:
    return read_tnef(sample)


# ------------------------------------------------------------------ a minimal TNEF writer

IMESSAGE_SIG = b"\x07\x03\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46"
APPLE_SET = uuid.UUID("00c0ffee-1111-1111-beef-00aabbccddee").bytes_le


def attribute(level: int, name: int, kind: int, payload: bytes) -> bytes:
    header = struct.pack("<BHHI", level, name, kind, len(payload))
    return header + payload + struct.pack("<H", sum(payload) & 0xFFFF)


def container(*parts: bytes, message_class: str = "IPM.Note") -> bytes:
    codepage = attribute(1, 0x9007, 0x0006, struct.pack("<II", 1252, 0))
    klass = attribute(1, 0x8008, 0x0007, message_class.encode("ascii") + b"\x00")
    return TNEF_SIGNATURE + b"\x01\x00" + codepage + klass + b"".join(parts)


def file_attachment(title: str, data: bytes) -> bytes:
    return (
        attribute(2, 0x9002, 0x0006, bytes(14))  # attRenddata opens an attachment
        + attribute(2, 0x8010, 0x0001, title.encode("ascii") + b"\x00")
        + attribute(2, 0x800F, 0x0006, data)
    )


def _padded(value: bytes) -> bytes:
    return struct.pack("<I", len(value)) + value + b"\x00" * (-len(value) % 4)


def binary_property(prop_id: int, value: bytes, kind: int = 0x0102) -> bytes:
    return struct.pack("<HHI", kind, prop_id, 1) + _padded(value)


def unicode_property(prop_id: int, text: str) -> bytes:
    return binary_property(prop_id, (text + "\x00").encode("utf-16-le"), kind=0x001F)


def named_binary_property(lid: int, value: bytes) -> bytes:
    return (
        struct.pack("<HH", 0x0102, 0x8000)
        + APPLE_SET
        + struct.pack("<III", 0, lid, 1)
        + (_padded(value))
    )


def properties(*props: bytes) -> bytes:
    return struct.pack("<I", len(props)) + b"".join(props)


def message_properties(*props: bytes) -> bytes:
    return attribute(1, 0x9003, 0x0006, properties(*props))


def embedded_message(inner: bytes) -> bytes:
    inner += attribute(1, 0x0006, 0x0006, b"pad!")  # tnefparse strips trailing NULs
    return attribute(2, 0x9002, 0x0006, bytes(14)) + attribute(
        2, 0x9005, 0x0006, properties(binary_property(0x3701, IMESSAGE_SIG + inner, 0x000D))
    )


# ----------------------------------------------------------------------------- detection


def test_signature_and_detection(sample: bytes) -> None:
    assert TNEF_SIGNATURE == b"\x78\x9f\x3e\x22"
    assert looks_like_tnef(sample)
    assert looks_like_tnef(TNEF_SIGNATURE)
    assert not looks_like_tnef(b"")
    assert not looks_like_tnef(TNEF_SIGNATURE[:3])
    assert not looks_like_tnef(ICS)
    assert not looks_like_tnef(b"From: someone\r\n\r\n" + TNEF_SIGNATURE)


# ------------------------------------------------------------------------- the sample


def test_fixture_is_the_corpus_sample_byte_for_byte(sample: bytes) -> None:
    assert len(sample) == 821_421
    assert hashlib.sha256(sample).hexdigest() == SAMPLE_SHA256


def test_sample_yields_the_apple_calendar_of_the_embedded_appointment(
    sample_contents: TnefContents,
) -> None:
    # An IPM.Note holding a JPEG, an embedded IPM.Task and an embedded IPM.Appointment; the
    # appointment keeps its event as iCalendar in a named MAPI property of Apple's set.
    assert sample_contents.calendars == (SAMPLE_CALENDAR,)
    assert sample_contents.message_class == "IPM.Microsoft Mail.Note"
    assert sample_contents.attachments == 2  # JPEG and task; the appointment carried the calendar
    detail = sample_contents.detail
    assert "named property 0x9001" in detail
    assert "00c0ffee-1111-1111-beef-00aabbccddee" in detail
    assert "embedded IPM.Appointment (attachment 3)" in detail


def test_sample_calendar_is_method_less_utc_and_yearly(sample_contents: TnefContents) -> None:
    (calendar,) = sample_contents.calendars
    assert b"RRULE:FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=25;WKST=SU\r\n" in calendar
    assert b"SUMMARY:Christmas Celebration!\r\n" in calendar
    assert b"METHOD" not in calendar
    assert b"TZID" not in calendar and b"VTIMEZONE" not in calendar  # times are UTC
    assert calendar.startswith(b"BEGIN:VCALENDAR\r\n")
    assert calendar.endswith(b"END:VCALENDAR\r\n")


def test_sample_calendar_parses_with_icalendar(sample_contents: TnefContents) -> None:
    parsed = Calendar.from_ical(sample_contents.calendars[0])
    assert parsed.get("METHOD") is None
    events = list(parsed.walk("VEVENT"))
    assert len(events) == 1
    event = events[0]
    assert str(event["SUMMARY"]) == "Christmas Celebration!"
    assert str(event["LOCATION"]) == "Home"
    assert str(event["UID"]) == "4447-07E20C0F-019F-0E31-FF17-00739"
    assert event.decoded("DTSTART") == datetime(2018, 12, 25, 12, 0, tzinfo=UTC)
    assert event.decoded("DTEND") == datetime(2018, 12, 25, 14, 0, tzinfo=UTC)
    rule = event["RRULE"]
    assert isinstance(rule, vRecur)
    assert rule["FREQ"] == ["YEARLY"]
    assert rule["BYMONTH"] == [12]
    assert rule["BYMONTHDAY"] == [25]
    assert len(list(event.walk("VALARM"))) == 1


def test_sample_costs_far_less_than_the_work_budget(sample: bytes) -> None:
    budget = _Budget(MAX_PARSE_STEPS)
    _scan_tnef(sample, budget, depth=0, do_checksum=False)
    assert MAX_PARSE_STEPS - budget.left < MAX_PARSE_STEPS // 20  # 3 920 steps in tnefparse 1.4


# ------------------------------------------------------------------- unreadable input


def _random_with_signature(seed: int, size: int) -> bytes:
    return TNEF_SIGNATURE + random.Random(seed).randbytes(size)  # noqa: S311


@pytest.mark.parametrize(
    ("label", "make"),
    [
        ("empty", lambda sample: b""),
        ("signature only", lambda sample: TNEF_SIGNATURE),
        ("signature and key", lambda sample: TNEF_SIGNATURE + b"\x01\x00"),
        ("truncated sample", lambda sample: sample[:1000]),
        ("not TNEF", lambda sample: ICS),
        ("random 64", lambda sample: _random_with_signature(1, 64)),
        ("random 4096", lambda sample: _random_with_signature(2, 4096)),
        ("random 100000", lambda sample: _random_with_signature(3, 100_000)),
    ],
)
def test_unreadable_input_gives_no_calendar_and_does_not_raise(
    sample: bytes, label: str, make: object
) -> None:
    data = make(sample)  # type: ignore[operator]
    contents = read_tnef(data)
    assert contents.calendars == (), label
    assert contents.detail


def test_fuzzed_input_never_raises(sample: bytes) -> None:
    rng = random.Random(20181225)  # noqa: S311
    for size in [*range(0, 40), *rng.sample(range(40, 3000), 60)]:
        contents = read_tnef(TNEF_SIGNATURE + b"\x01\x00" + rng.randbytes(size))
        assert isinstance(contents, TnefContents)
    for _ in range(8):  # corrupt the real sample in a few places
        mutated = bytearray(sample)
        for _ in range(16):
            mutated[rng.randrange(6, len(mutated))] = rng.randrange(256)
        contents = read_tnef(bytes(mutated))
        assert all(c.startswith(b"BEGIN:VCALENDAR") for c in contents.calendars)


def test_oversized_input_is_not_parsed() -> None:
    contents = read_tnef(TNEF_SIGNATURE + bytes(MAX_TNEF_BYTES))
    assert contents.calendars == ()
    assert contents.message_class is None
    assert "64 MiB" in contents.detail


# -------------------------------------------------------------------- built containers


def test_ics_attachment_is_read_and_other_attachments_counted() -> None:
    data = container(file_attachment("notes.txt", b"hello"), file_attachment("invite.ics", ICS))
    contents = read_tnef(data)
    assert contents.calendars == (ICS,)
    assert contents.message_class == "IPM.Note"
    assert contents.attachments == 1
    assert "invite.ics" in contents.detail


def test_vcs_attachment_and_unnamed_calendar_data_are_read() -> None:
    vcs = ICS.replace(b"VERSION:2.0", b"VERSION:1.0")
    unnamed = b"\xef\xbb\xbf" + OTHER_ICS  # a BOM is not part of the calendar
    contents = read_tnef(container(file_attachment("x.vcs", vcs), file_attachment("", unnamed)))
    assert contents.calendars == (vcs, OTHER_ICS)
    assert contents.attachments == 0


def test_calendar_block_is_cut_out_of_a_mapi_string_property() -> None:
    text = "preamble\r\n" + ICS.decode("ascii") + "trailing text\r\n"
    data = container(message_properties(unicode_property(0x0E98, text)))
    contents = read_tnef(data)
    assert contents.calendars == (ICS,)
    assert "property 0x0e98 of the outer message (IPM.Note)" in contents.detail


def test_calendar_in_binary_named_property_of_embedded_appointment() -> None:
    appointment = container(
        message_properties(named_binary_property(0x9001, ICS)),
        file_attachment("photo.jpg", b"\xff\xd8\xff\xe0 not really a jpeg"),
        message_class="IPM.Appointment",
    )
    contents = read_tnef(container(embedded_message(appointment)))
    assert contents.calendars == (ICS,)
    assert contents.message_class == "IPM.Note"
    assert contents.attachments == 0  # the appointment carried the calendar, photo and all
    assert "embedded IPM.Appointment (attachment 1)" in contents.detail


def test_attachments_win_over_mapi_properties() -> None:
    data = container(
        message_properties(binary_property(0x0E99, OTHER_ICS)),
        file_attachment("invite.ics", ICS),
    )
    assert read_tnef(data).calendars == (ICS,)


def test_several_blocks_in_one_property_and_duplicates() -> None:
    value = ICS + b"\r\n" + OTHER_ICS + b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"  # last: no END
    data = container(message_properties(binary_property(0x0E99, value)))
    assert read_tnef(data).calendars == (ICS, OTHER_ICS)
    twice = container(file_attachment("a.ics", ICS), file_attachment("b.ics", ICS))
    assert read_tnef(twice).calendars == (ICS,)


def test_no_calendar_says_why() -> None:
    data = container(
        message_properties(unicode_property(0x0037, "Lunch? BEGIN:VCALENDAR is not a line start")),
        file_attachment("agenda.docx", b"PK\x03\x04"),
        file_attachment("empty.ics", b"not a calendar"),
    )
    contents = read_tnef(data)
    assert contents.calendars == ()
    assert contents.message_class == "IPM.Note"
    assert contents.attachments == 2
    assert contents.detail.startswith("no calendar in IPM.Note")


# ------------------------------------------------------------------------ hostile input


def _message_with_mapi(payload: bytes) -> bytes:
    return container(attribute(1, 0x9003, 0x0006, payload))


@pytest.mark.parametrize(
    ("label", "data"),
    [
        ("4 billion properties", _message_with_mapi(struct.pack("<I", 0xFFFFFFFF))),
        (
            "4 billion short values",
            _message_with_mapi(struct.pack("<IHHI", 1, 0x1002, 0x0001, 0xFFFFFFFF)),
        ),
        (
            "recipient row with 4 billion properties",
            container(attribute(1, 0x9004, 0x0006, struct.pack("<II", 2, 0xFFFFFFFF))),
        ),
        ("a million tiny attributes", container(attribute(1, 0x0001, 0x0006, b"") * 1_000_000)),
    ],
)
def test_containers_costing_too_much_are_refused_quickly(label: str, data: bytes) -> None:
    started = time.perf_counter()
    contents = read_tnef(data)
    assert time.perf_counter() - started < 1.0, label
    assert contents.calendars == ()
    assert "refused unread" in contents.detail


def test_messages_embedded_too_deep_are_refused() -> None:
    message = container(file_attachment("deep.ics", ICS))
    for _ in range(MAX_EMBEDDING_DEPTH):
        message = container(embedded_message(message))
    assert read_tnef(message).calendars == (ICS,)
    too_deep = container(embedded_message(message))
    contents = read_tnef(too_deep)
    assert contents.calendars == ()
    assert f"embedded over {MAX_EMBEDDING_DEPTH} deep" in contents.detail

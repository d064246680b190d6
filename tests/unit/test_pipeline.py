"""Whole messages through the core: limits, forged senders, copies and message-level skips."""

from __future__ import annotations

from email.message import EmailMessage

from mailbot.core.model import Outcome, Reason
from mailbot.core.pipeline import decide_message
from mailbot.core.policy import Limits, Policy

POLICY = Policy.for_zone("Europe/Berlin")


def _vevent(uid: str, attendees: int = 1) -> str:
    people = "".join(
        f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:guest{n}@client.example\r\n" for n in range(attendees)
    )
    return (
        "BEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260301T090000Z\r\nSEQUENCE:0\r\n"
        "DTSTART;TZID=Europe/Berlin:20260310T100000\r\nDTEND;TZID=Europe/Berlin:20260310T110000\r\n"
        "SUMMARY:Pipeline review\r\nORGANIZER:mailto:rep@seller.example\r\n"
        f"{people}END:VEVENT\r\n"
    )


def _calendar(*events: str, method: str = "REQUEST") -> str:
    body = "".join(events)
    head = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nMETHOD:{method}\r\n"
    return f"{head}{body}END:VCALENDAR\r\n"


def _message(calendar: str, *, headers: dict[str, str] | None = None, copies: int = 1) -> bytes:
    message = EmailMessage()
    message["From"] = "Anna Buyer <anna@client.example>"
    message["To"] = "crm-sync@seller.example"
    message["Subject"] = "Invitation: Pipeline review"
    message["Message-ID"] = "<pipeline-1@client.example>"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content("You are invited.")
    for index in range(copies):
        message.add_attachment(
            calendar.encode(),
            maintype="text",
            subtype="calendar",
            params={"method": "REQUEST"},
            filename=f"invite{index}.ics",
        )
    return message.as_bytes()


def test_a_plain_invitation_is_one_create() -> None:
    result = decide_message(_message(_calendar(_vevent("a@x"))), POLICY)
    assert [d.outcome for d in result.decisions] == [Outcome.CREATE]
    assert result.envelope.sender == "anna@client.example"
    assert result.envelope.message_id == "<pipeline-1@client.example>"


def test_copies_of_one_invitation_are_one_decision() -> None:
    result = decide_message(_message(_calendar(_vevent("a@x")), copies=3), POLICY)
    assert len(result.decisions) == 1


def test_forged_sender_is_unauthorized_when_the_trusted_server_says_dmarc_failed() -> None:
    policy = Policy.for_zone("Europe/Berlin", trusted_authserv_ids=frozenset({"mx.seller.example"}))
    forged = _message(
        _calendar(_vevent("a@x")),
        headers={
            "Authentication-Results": "mx.seller.example; dmarc=fail header.from=client.example"
        },
    )
    decision = decide_message(forged, policy).decisions[0]
    assert (decision.outcome, decision.reason) == (Outcome.SKIP, Reason.UNAUTHORIZED_SENDER)
    assert "dmarc=fail" in decision.detail
    genuine = _message(
        _calendar(_vevent("a@x")),
        headers={
            "Authentication-Results": "mx.seller.example; dmarc=pass header.from=client.example"
        },
    )
    assert decide_message(genuine, policy).decisions[0].outcome is Outcome.CREATE


def test_too_many_events_is_one_message_level_too_large() -> None:
    limits = Limits(max_events_per_message=3)
    policy = Policy.for_zone("UTC", limits=limits)
    many = _calendar(*(_vevent(f"e{n}@x") for n in range(4)))
    decisions = decide_message(_message(many), policy).decisions
    assert [(d.outcome, d.reason) for d in decisions] == [(Outcome.SKIP, Reason.TOO_LARGE)]


def test_too_many_attendees_is_too_large_for_that_event() -> None:
    policy = Policy.for_zone("UTC", limits=Limits(max_attendees=5))
    decision = decide_message(_message(_calendar(_vevent("a@x", attendees=6))), policy).decisions[0]
    assert decision.reason is Reason.TOO_LARGE
    assert decision.uid == "a@x"


def test_oversized_message_is_too_large_without_being_parsed() -> None:
    policy = Policy.for_zone("UTC", limits=Limits(max_message_bytes=1000))
    raw = _message(_calendar(_vevent("a@x", attendees=40)))
    result = decide_message(raw, policy)
    assert [d.reason for d in result.decisions] == [Reason.TOO_LARGE]
    assert result.envelope.sender == "anna@client.example"


def test_too_many_mime_parts_is_too_large() -> None:
    policy = Policy.for_zone("UTC", limits=Limits(max_mime_parts=4))
    raw = _message(_calendar(_vevent("a@x")), copies=5)
    assert [d.reason for d in decide_message(raw, policy).decisions] == [Reason.TOO_LARGE]


def test_a_calendar_with_only_a_task_is_unsupported_method() -> None:
    todo = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTODO\r\nUID:t\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
    decision = decide_message(todo.encode(), POLICY).decisions[0]
    assert decision.reason is Reason.UNSUPPORTED_METHOD


def test_refresh_without_dtstart_is_unsupported_method_not_invalid() -> None:
    refresh = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REFRESH\r\nBEGIN:VEVENT\r\nUID:r@x\r\n"
        "DTSTAMP:20260301T090000Z\r\nORGANIZER:mailto:rep@seller.example\r\n"
        "ATTENDEE:mailto:anna@client.example\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    decision = decide_message(refresh.encode(), POLICY).decisions[0]
    assert decision.reason is Reason.UNSUPPORTED_METHOD


def test_unreadable_calendar_is_invalid_calendar() -> None:
    garbage = b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:notadate\r\n"
    decision = decide_message(garbage, POLICY).decisions[0]
    assert (decision.outcome, decision.reason) == (Outcome.SKIP, Reason.INVALID_CALENDAR)


def test_empty_input_is_no_calendar_part() -> None:
    assert decide_message(b"", POLICY).decisions[0].reason is Reason.NO_CALENDAR_PART

"""Forged mail cannot write to the CRM: the real engine on the emulator, with the receiving
server's Authentication-Results trusted (event-sync-spec.md section 6).

Elsewhere: tests/unit/test_rules.py (the verdict of each header form, a REPLY from someone
else), tests/unit/test_pipeline.py (a forged From with dmarc=fail), and the scenarios
``unauthorized-sender-*`` and ``reply-not-from-attendee*`` of test_engine_scenarios.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mailbot.app import open_engine
from mailbot.service import Handled
from mailbot.sim.netsuite import NetSuiteEmulator
from tests.integration.engine_support import (
    Runner,
    calendar,
    corpus_account,
    invitation_mail,
    netsuite_config,
    record_writes,
    settings_for,
    vevent,
)

ACCOUNT = corpus_account()
MX = "mx.ourco.example.org"  # the receiving server, trusted
ORGANIZER = "sender@example.com"  # an active employee of the corpus account
GUEST_A = "receiver@example.com"  # contacts of a customer
GUEST_B = "other@example.com"
UID = "security-0001@ourco.example.org"


@pytest.fixture
def run(tmp_path: Path) -> Iterator[tuple[Runner, NetSuiteEmulator]]:
    settings = replace(
        settings_for(tmp_path / "state.sqlite3"), trusted_authserv_ids=frozenset({MX})
    )
    with (
        NetSuiteEmulator(ACCOUNT.data) as emulator,
        open_engine(settings, netsuite_config(emulator), dry_run=False) as engine,
    ):
        yield Runner(engine), emulator


def received(raw: bytes, *authentication_results: str) -> bytes:
    """``raw`` as delivered: each header is put on top, as each server adds its own (the
    last one given is the topmost, the receiving server's)."""
    for header in authentication_results:
        raw = f"Authentication-Results: {header}\r\n".encode() + raw
    return raw


def invitation() -> bytes:
    event = vevent(
        uid=UID,
        organizer=ORGANIZER,
        attendees=((GUEST_A, "NEEDS-ACTION"), (GUEST_B, "NEEDS-ACTION")),
    )
    return invitation_mail(sender=ORGANIZER, method="REQUEST", ics=calendar("REQUEST", event))


def reply(*, attendee: str, sender: str) -> bytes:
    event = vevent(
        uid=UID,
        organizer=ORGANIZER,
        attendees=((attendee, "DECLINED"),),
        dtstamp="20250602T090000Z",
    )
    return invitation_mail(
        sender=sender,
        method="REPLY",
        ics=calendar("REPLY", event),
        subject="Declined",
        to=ORGANIZER,
    )


def outcomes(handled: Handled) -> set[tuple[str, str | None]]:
    return {(record["outcome"], record["reason"]) for record in handled.records}


PASS = f"{MX}; dkim=pass header.d=example.com; dmarc=pass header.from=example.com"
FAIL = f"{MX}; spf=fail smtp.mailfrom=example.com; dmarc=fail (p=reject) header.from=example.com"
UNAUTHORIZED = {("skip", "unauthorized_sender")}


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ((FAIL,), "the receiving server saw DMARC fail"),
        ((f"{MX}; dmarc=pass header.from=example.com", FAIL), "a pass forged below the real one"),
        ((FAIL, "mx.attacker.example; dmarc=pass"), "a pass under an id that is not trusted"),
        ((f"{MX}; dmarc=none header.from=example.com",), "no DMARC policy, nothing aligned"),
    ],
)
def test_a_forged_employee_invitation_writes_nothing(
    run: tuple[Runner, NetSuiteEmulator], headers: tuple[str, ...], why: str
) -> None:
    runner, emulator = run
    handled = runner.handle(received(invitation(), *headers))
    assert outcomes(handled) == UNAUTHORIZED, why
    assert record_writes(emulator) == 0
    assert emulator.records("calendarEvent") == []


def test_the_same_invitation_authenticated_is_synced(run: tuple[Runner, NetSuiteEmulator]) -> None:
    runner, emulator = run
    assert outcomes(runner.handle(received(invitation(), PASS))) == {("create", None)}
    assert len(emulator.records("calendarEvent")) == 1


def test_a_reply_is_taken_only_from_that_attendee_and_only_authenticated(
    run: tuple[Runner, NetSuiteEmulator],
) -> None:
    runner, emulator = run
    runner.handle(received(invitation(), PASS))
    (event,) = emulator.records("calendarEvent")
    writes = record_writes(emulator)

    impostor = reply(attendee=GUEST_A, sender=GUEST_B)  # B answers in A's name
    assert outcomes(runner.handle(received(impostor, PASS))) == {
        ("skip", "reply_not_from_attendee")
    }
    forged = reply(attendee=GUEST_A, sender=GUEST_A)  # from A's address, but not from A
    assert outcomes(runner.handle(received(forged, FAIL))) == UNAUTHORIZED
    assert record_writes(emulator) == writes
    assert emulator.records("calendarEvent") == [event]

    genuine = reply(attendee=GUEST_A, sender=GUEST_A)
    assert outcomes(runner.handle(received(genuine, PASS))) == {("response", None)}
    assert record_writes(emulator) == writes + 1

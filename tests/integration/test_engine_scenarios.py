"""The sync engine end to end: the NetSuite emulator over HTTP, SQLite state in tmp_path, the
real NetSuite client, directory and calendar, wired by ``mailbot.app.open_engine``.

The CRM account is derived from the corpus when this module is collected (see
``engine_support``); messages the corpus lacks are built here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailbot.adapters.recording import RecordingCalendar
from mailbot.core.model import Outcome, Reason
from mailbot.service import Handled
from mailbot.sim.netsuite import NetSuiteEmulator
from tests.integration.engine_support import (
    CORPUS,
    OPPORTUNITY_DOMAIN,
    STRANGER,
    WRITE_METHODS,
    Runner,
    calendar,
    confirmed_state,
    corpus_account,
    corpus_files,
    engine,
    events_by_external_id,
    fixture,
    forward_as_attachment,
    invitation_mail,
    record_writes,
    sha256_of,
    suiteql_calls,
    vevent,
)

ACCOUNT = corpus_account()  # read from the fixture files at collection time

ORGANIZER = "sender@example.com"  # an employee (organizer of the comm-central mails)
GUEST_A = "receiver@example.com"  # contacts of the example.com company
GUEST_B = "other@example.com"
FORWARDERS = ("marge@example.com", "john@example.com", "example@example.com")  # employees
UNKNOWN_GUESTS = ("nobody@no-such-customer.example.net", "else@no-such-customer.example.net")


@pytest.fixture
def emulator() -> Iterator[NetSuiteEmulator]:
    """A fresh account per test: NetSuite state never leaks between scenarios."""
    with NetSuiteEmulator(ACCOUNT.data) as started:
        yield started


@pytest.fixture
def run(emulator: NetSuiteEmulator, tmp_path: Path) -> Iterator[Runner]:
    """The real engine on the fresh account, its state in tmp_path."""
    with engine(emulator, tmp_path / "state.sqlite3") as opened:
        yield Runner(opened)


def outcomes(handled: Handled) -> set[tuple[str, str | None]]:
    return {(record["outcome"], record["reason"]) for record in handled.records}


def decision_list(handled: Handled) -> list[tuple[str, str | None, str | None]]:
    return [(r["outcome"], r["reason"], r["external_id"]) for r in handled.records]


# --- messages the corpus does not have ----------------------------------------------------

MEETING_UID = "scenario-meeting-0001@ourco.example.org"


def request_two_guests(*, sequence: int = 0, dtstamp: str = "20250601T080000Z") -> bytes:
    """An employee's invitation with two customer contacts."""
    event = vevent(
        uid=MEETING_UID,
        organizer=ORGANIZER,
        attendees=((GUEST_A, "NEEDS-ACTION"), (GUEST_B, "NEEDS-ACTION")),
        sequence=sequence,
        dtstamp=dtstamp,
    )
    return invitation_mail(sender=ORGANIZER, method="REQUEST", ics=calendar("REQUEST", event))


def reply_from(guest: str, partstat: str = "ACCEPTED") -> bytes:
    """The guest's calendar client answering the invitation above."""
    event = vevent(
        uid=MEETING_UID,
        organizer=ORGANIZER,
        attendees=((guest, partstat),),
        dtstamp="20250602T090000Z",
    )
    return invitation_mail(
        sender=guest,
        method="REPLY",
        ics=calendar("REPLY", event),
        subject=f"Accepted: Scenario meeting ({guest})",
        to=ORGANIZER,
    )


def request_from_stranger() -> bytes:
    """Looks like a fine invitation, but its sender is no employee and no allowed domain."""
    event = vevent(
        uid="forged-0001@unknown-sender.example.net",
        organizer=STRANGER,
        attendees=((GUEST_A, "NEEDS-ACTION"),),
    )
    return invitation_mail(sender=STRANGER, method="REQUEST", ics=calendar("REQUEST", event))


def request_unknown_guests() -> bytes:
    """An employee's invitation whose guests match no CRM record."""
    event = vevent(
        uid="internal-0001@ourco.example.org",
        organizer=ORGANIZER,
        attendees=tuple((guest, "NEEDS-ACTION") for guest in UNKNOWN_GUESTS),
    )
    return invitation_mail(sender=ORGANIZER, method="REQUEST", ics=calendar("REQUEST", event))


def hourly_series() -> bytes:
    """An employee's meeting every two hours: NetSuite holds no sub-daily series."""
    event = vevent(
        uid="hourly-0001@ourco.example.org",
        organizer=ORGANIZER,
        attendees=((GUEST_A, "NEEDS-ACTION"),),
        rrule="FREQ=HOURLY;INTERVAL=2;COUNT=4",
    )
    return invitation_mail(sender=ORGANIZER, method="REQUEST", ics=calendar("REQUEST", event))


def series_beyond_horizon() -> bytes:
    """A weekly series sent in January 2025 whose two meetings are in 2026."""
    event = vevent(
        uid="far-future-0001@ourco.example.org",
        organizer=ORGANIZER,
        attendees=((GUEST_A, "NEEDS-ACTION"),),
        start="20260112T100000",
        end="20260112T110000",
        dtstamp="20250110T080000Z",
        rrule="FREQ=WEEKLY;COUNT=2",
    )
    return invitation_mail(sender=ORGANIZER, method="REQUEST", ics=calendar("REQUEST", event))


BUILT: dict[str, Callable[[], bytes]] = {
    "built:hourly-series": hourly_series,
    "built:series-beyond-horizon": series_beyond_horizon,
    "built:request-two-guests": request_two_guests,
    "built:reply-accepted-guest-a": lambda: reply_from(GUEST_A),
    "built:request-from-stranger": request_from_stranger,
    "built:request-unknown-guests": request_unknown_guests,
}


def message_bytes(name: str) -> bytes:
    return BUILT[name]() if name in BUILT else fixture(name).read_bytes()


def process(runner: Runner, name: str) -> Handled:
    return runner.handle(message_bytes(name), name)


# --- 1. scenario tables: earlier state x message -> (outcome, reason) -------------------------

SINGLE = "comm-central__single-event.eml"
MINOR = "comm-central__update-minor.eml"
MAJOR = "comm-central__update-major.eml"
CANCEL_SINGLE = "comm-central__cancel-single-event.eml"
REPEAT = "comm-central__repeat-event.eml"
EXCEPTION = "comm-central__exception-major.eml"
CANCEL_REPEAT = "comm-central__cancel-repeat-event.eml"
CREATE, UPDATE, UNCHANGED, CANCEL, RESPONSE = (
    ("create", None),
    ("update", None),
    ("unchanged", None),
    ("cancel", None),
    ("response", None),
)


def skip(reason: Reason) -> tuple[str, str]:
    return ("skip", reason.value)


def case(
    earlier: list[str],
    message: str,
    expected: set[tuple[str, str | None]],
    case_id: str,
) -> Any:
    return pytest.param(earlier, message, expected, id=case_id)


SCENARIOS = [
    # create
    case([], SINGLE, {CREATE}, "create-single-event"),
    case([], REPEAT, {CREATE}, "create-series-occurrences"),
    case([], "calmailproc__test-04-1.eml", {CREATE}, "create-horde-duplicate-parts"),
    case([], "built:request-two-guests", {CREATE}, "create-built-request"),
    # update
    case([SINGLE], MINOR, {UPDATE}, "update-same-sequence-newer-dtstamp"),
    case([SINGLE], MAJOR, {UPDATE}, "update-sequence-bumped"),
    case(["calmailproc__test-02-1.eml"], "calmailproc__test-02-2.eml", {UPDATE}, "update-moved"),
    case([REPEAT], EXCEPTION, {UPDATE}, "update-one-occurrence"),
    case(["calmailproc__test-18-1.eml"], "calmailproc__test-18-0.eml", {UPDATE}, "update-override"),
    # unchanged
    case([SINGLE], SINGLE, {UNCHANGED}, "unchanged-same-request-twice"),
    case(
        ["calmailproc__test-04-1.eml"],
        "calmailproc__test-04-2.eml",
        {UNCHANGED},
        "unchanged-same-invite-to-another-recipient",
    ),
    case([SINGLE, CANCEL_SINGLE], CANCEL_SINGLE, {UNCHANGED}, "unchanged-cancel-twice"),
    case(
        ["built:request-two-guests"],
        "built:request-two-guests",
        {UNCHANGED},
        "unchanged-built-request-twice",
    ),
    case(
        ["calmailproc__test-05-1.eml", "calmailproc__test-05-2.eml"],
        "calmailproc__test-05-2.eml",
        {UNCHANGED},
        "unchanged-same-reply-twice",
    ),
    # cancel
    case([SINGLE], CANCEL_SINGLE, {CANCEL}, "cancel-single-event"),
    case(["calmailproc__test-01-1.eml"], "calmailproc__test-01-2.eml", {CANCEL}, "cancel-exchange"),
    case(["calmailproc__test-03-1.eml"], "calmailproc__test-03-2.eml", {CANCEL}, "cancel-one-occ"),
    case([REPEAT], CANCEL_REPEAT, {CANCEL}, "cancel-whole-series"),
    case(
        [REPEAT],
        MAJOR,
        {CREATE, CANCEL},
        "series-turned-into-single-event-cancels-occurrences",
    ),
    case(
        ["calmailproc__test-11-2.eml"],
        "calmailproc__test-11-1.eml",
        {CANCEL},
        "cancel-same-sequence-newer-dtstamp",
    ),
    # response
    case(
        ["calmailproc__test-05-1.eml"],
        "calmailproc__test-05-2.eml",
        {RESPONSE},
        "response-outlook-accept-without-organizer",
    ),
    case(
        ["built:request-two-guests"],
        "built:reply-accepted-guest-a",
        {RESPONSE},
        "response-built-reply",
    ),
    # skip: every reason code
    case([], "calmailproc__test-0.eml", {skip(Reason.NO_CALENDAR_PART)}, "no-calendar-plain"),
    case(
        [],
        "ccs-calendarserver__reply_missing_attachment.eml",
        {skip(Reason.NO_CALENDAR_PART)},
        "no-calendar-typed-accept",
    ),
    case(
        [SINGLE],
        "handmade/outlook-typed-accepted.eml",
        {skip(Reason.NO_CALENDAR_PART)},
        "no-calendar-typed-accept-after-event",
    ),
    case(
        [],
        "handmade/invalid-calendar-missing-uid.eml",
        {skip(Reason.INVALID_CALENDAR)},
        "invalid-calendar-no-uid",
    ),
    case(
        [],
        "handmade/invalid-calendar-garbage-dtstart.eml",
        {skip(Reason.INVALID_CALENDAR)},
        "invalid-calendar-garbage-dtstart",
    ),
    case([], "ical4j__blankTzid.ics", {skip(Reason.INVALID_CALENDAR)}, "invalid-calendar-ics"),
    case([], "calmailproc__test-13.eml", {skip(Reason.MULTI_DAY)}, "multi-day-corpus"),
    case(
        [],
        "handmade/new-york-evening-crosses-berlin-midnight.eml",
        {skip(Reason.MULTI_DAY)},
        "multi-day-in-sync-zone",
    ),
    *(
        case([], f"handmade/unsupported-method-{m}.eml", {skip(Reason.UNSUPPORTED_METHOD)}, m)
        for m in ("counter", "refresh", "declinecounter", "add")
    ),
    case(
        [],
        "built:series-beyond-horizon",
        {skip(Reason.UNSUPPORTED_RECURRENCE)},
        "unsupported-recurrence-no-occurrence-in-horizon",
    ),
    case(
        [],
        "built:hourly-series",
        {skip(Reason.UNSUPPORTED_RECURRENCE)},
        "unsupported-recurrence-hourly-built",
    ),
    case(
        [],
        "handmade/unsupported-recurrence-hourly.eml",
        {skip(Reason.UNSUPPORTED_RECURRENCE)},
        "unsupported-recurrence-hourly",
    ),
    case([MAJOR], SINGLE, {skip(Reason.STALE)}, "stale-older-sequence"),
    case(
        [MAJOR],
        REPEAT,
        {skip(Reason.STALE)},
        "stale-old-series-after-newer-single-version",
    ),
    case([SINGLE, MAJOR], CANCEL_SINGLE, {skip(Reason.STALE)}, "stale-cancel-older-than-update"),
    case(
        ["calmailproc__test-11-1.eml"],
        "calmailproc__test-11-2.eml",
        {skip(Reason.STALE)},
        "stale-request-after-its-cancel",
    ),
    case([], "built:request-unknown-guests", {skip(Reason.NO_CRM_MATCH)}, "no-crm-match-built"),
    case([], "calmailproc__test-16-1.eml", {skip(Reason.NO_CRM_MATCH)}, "no-crm-match-rail"),
    case([], CANCEL_SINGLE, {skip(Reason.UNKNOWN_EVENT)}, "unknown-event-cancel"),
    case([], "calmailproc__test-03-2.eml", {skip(Reason.UNKNOWN_EVENT)}, "unknown-event-occ"),
    case([], "calmailproc__test-05-2.eml", {skip(Reason.UNKNOWN_EVENT)}, "unknown-event-reply"),
    case(
        [],
        "built:reply-accepted-guest-a",
        {skip(Reason.UNKNOWN_EVENT)},
        "unknown-event-built-reply",
    ),
    case(
        [],
        CANCEL_REPEAT,
        {skip(Reason.UNKNOWN_EVENT)},
        "unknown-event-series-cancel-without-dtstart",
    ),
    case(
        [],
        "handmade/reply-not-from-attendee.eml",
        {skip(Reason.REPLY_NOT_FROM_ATTENDEE)},
        "reply-not-from-attendee",
    ),
    case(
        ["calmailproc__test-05-1.eml"],
        "ccs-calendarserver__reply_missing_organizer.eml",
        {skip(Reason.REPLY_NOT_FROM_ATTENDEE)},
        "reply-not-from-attendee-corpus",
    ),
    case(
        [],
        "built:request-from-stranger",
        {skip(Reason.UNAUTHORIZED_SENDER)},
        "unauthorized-sender-built",
    ),
    case(
        [SINGLE],
        "built:request-from-stranger",
        {skip(Reason.UNAUTHORIZED_SENDER)},
        "unauthorized-sender-with-state",
    ),
    case(
        [],
        "biweekly__outlook-2010.ics",
        {skip(Reason.UNAUTHORIZED_SENDER)},
        "unauthorized-bare-ics",
    ),
    case([], "handmade/too-large-deep-nesting.eml", {skip(Reason.TOO_LARGE)}, "too-large-nesting"),
    case([], "handmade/bounce-with-invitation.eml", {skip(Reason.BOUNCE)}, "bounce-handmade"),
    case(
        [SINGLE],
        "ccs-calendarserver__dsn_failure_with_ics.eml",
        {skip(Reason.BOUNCE)},
        "bounce-corpus-after-event",
    ),
    case(
        [],
        "handmade/unsupported-format-tnef.eml",
        {skip(Reason.UNSUPPORTED_FORMAT)},
        "unsupported-format-tnef",
    ),
]


@pytest.mark.parametrize(("earlier", "message", "expected"), SCENARIOS)
def test_scenario_table(
    run: Runner,
    emulator: NetSuiteEmulator,
    earlier: list[str],
    message: str,
    expected: set[tuple[str, str | None]],
) -> None:
    for name in earlier:
        assert process(run, name).outcome != "failed", name
    emulator.reset_log()
    handled = process(run, message)
    assert outcomes(handled) == expected, handled.records
    written = any(o in {"create", "update", "cancel", "response"} for o, _ in expected)
    assert (record_writes(emulator) > 0) == written
    assert handled.outcome == ("synced" if written else "skipped")


def test_scenario_table_covers_every_outcome_and_reason() -> None:
    expected = {pair for param in SCENARIOS for pair in param.values[2]}
    assert {outcome for outcome, _ in expected} == {o.value for o in Outcome}
    assert {reason for _, reason in expected if reason} == {r.value for r in Reason}


# --- 2. chains in file order and in reverse order ---------------------------------------------


def chain_files(number: str) -> list[str]:
    return sorted(p.name for p in (CORPUS / "eml").glob(f"calmailproc__test-{number}-*.eml"))


# chain id -> (files in order, CONFIRMED events at the end)
CHAINS: dict[str, tuple[list[str], int]] = {
    "comm-central-single": ([SINGLE, MINOR, MAJOR, CANCEL_SINGLE], 1),
    "comm-central-repeat": ([REPEAT, EXCEPTION, CANCEL_REPEAT], 1),
    "calmailproc-01": (chain_files("01"), 0),  # created, then cancelled
    "calmailproc-02": (chain_files("02"), 1),
    "calmailproc-03": (chain_files("03"), 24),  # weekly series in the horizon, one cancelled
    "calmailproc-04": (chain_files("04"), 1),
    "calmailproc-05": (chain_files("05"), 1),
    "calmailproc-11": (chain_files("11"), 0),  # the CANCEL wins by DTSTAMP
    "calmailproc-16": (chain_files("16"), 0),  # rail tickets: no CRM address at all
    "calmailproc-17": (chain_files("17"), 23),
    "calmailproc-18": (chain_files("18"), 10),
}


def final_state(files: list[str], tmp_path: Path) -> dict[str, tuple[Any, ...]]:
    """The CONFIRMED events after processing ``files`` on a fresh account and fresh state."""
    with NetSuiteEmulator(ACCOUNT.data) as account, engine(account, tmp_path) as opened:
        runner = Runner(opened)
        for name in files:
            assert runner.handle_file(name).outcome != "failed", name
        return confirmed_state(account)


@pytest.mark.parametrize(
    ("files", "confirmed"), [pytest.param(*chain, id=name) for name, chain in CHAINS.items()]
)
def test_chain_in_file_order_and_reverse_order_ends_in_the_same_state(
    tmp_path: Path, files: list[str], confirmed: int
) -> None:
    assert len(files) >= 2
    forward = final_state(files, tmp_path / "forward.sqlite3")
    backward = final_state(files[::-1], tmp_path / "reverse.sqlite3")
    assert backward == forward
    assert len(forward) == confirmed


def test_a_newer_unchanged_override_still_outranks_an_older_series_update(
    run: Runner, emulator: NetSuiteEmulator
) -> None:
    """test-17: the 9 May occurrence moved to 7 May at SEQUENCE 1, re-sent unchanged at
    SEQUENCE 6; the master at SEQUENCE 5 must not move it back."""
    run.handle_files(chain_files("17")[1:4])  # the series, then overrides at SEQUENCE 2 and 1
    override = run.handle_file("calmailproc__test-17-6.eml")
    assert outcomes(override) == {UNCHANGED}  # same content as SEQUENCE 1: nothing to write
    (eid,) = {r["external_id"] for r in override.records}
    master = run.handle_file("calmailproc__test-17-7.eml")
    decided = {r["external_id"]: (r["outcome"], r["reason"]) for r in master.records}
    assert events_by_external_id(emulator)[eid]["startDate"] == "2025-05-07"
    assert decided[eid] == skip(Reason.STALE)


# --- 3. three forwards of one meeting ----------------------------------------------------------


def forwards_as_attachment() -> list[bytes]:
    original = fixture(SINGLE).read_bytes()
    return [forward_as_attachment(original, sender=sender) for sender in FORWARDERS]


def forwards_inline_customer_organizer() -> list[bytes]:
    """The same calendar part, organized by a customer contact, sent on by three employees:
    the event's organizer then comes from the forwarder, which differs each time."""
    event = vevent(
        uid="customer-organized-0001@example.com",
        organizer="homer@example.org",
        attendees=((GUEST_A, "NEEDS-ACTION"),),
    )
    ics = calendar("REQUEST", event)
    return [invitation_mail(sender=sender, method="REQUEST", ics=ics) for sender in FORWARDERS]


@pytest.mark.parametrize(
    "build", [forwards_as_attachment, forwards_inline_customer_organizer], ids=lambda f: f.__name__
)
def test_three_forwards_of_one_meeting_make_exactly_one_event(
    run: Runner, emulator: NetSuiteEmulator, build: Callable[[], list[bytes]]
) -> None:
    results = [run.handle(raw, f"forward-{n}") for n, raw in enumerate(build())]
    assert [outcomes(r) for r in results] == [{CREATE}, {UNCHANGED}, {UNCHANGED}]
    assert len(emulator.records("calendarEvent")) == 1
    assert record_writes(emulator) == 1
    (first,) = results[0].records
    assert first["sender"] == FORWARDERS[0]
    assert first["netsuite_id"] == str(emulator.records("calendarEvent")[0]["id"])


# --- 4. replaying the whole corpus a second time ------------------------------------------------


def replay_corpus_twice(run: Runner, emulator: NetSuiteEmulator) -> list[Handled]:
    for path in corpus_files():
        assert run.handle(path.read_bytes(), f"first:{path.name}").outcome != "failed"
    emulator.reset_log()
    return [run.handle(path.read_bytes(), f"second:{path.name}") for path in corpus_files()]


def test_second_corpus_replay_needs_no_directory_query(
    run: Runner, emulator: NetSuiteEmulator
) -> None:
    second = replay_corpus_twice(run, emulator)
    assert all(handled.outcome != "already-processed" for handled in second)
    assert suiteql_calls(emulator) == 0  # every address is cached within the TTL


def test_second_corpus_replay_makes_zero_netsuite_writes(
    run: Runner, emulator: NetSuiteEmulator
) -> None:
    second = replay_corpus_twice(run, emulator)
    rewritten = [
        (handled.key.uid, record["outcome"], record["recurrence_id"])
        for handled in second
        for record in handled.records
        if record["written"]
    ]
    assert rewritten == []
    assert sum(entry.method in WRITE_METHODS for entry in emulator.request_log()) == 0


# --- 5. a REPLY changes one attendee -------------------------------------------------------


def test_reply_changes_only_the_replying_attendees_response(
    run: Runner, emulator: NetSuiteEmulator
) -> None:
    created = run.handle(request_two_guests(), "request")
    assert outcomes(created) == {CREATE}
    (before,) = emulator.records("calendarEvent")
    guest_a, guest_b = ACCOUNT.contact_ids[GUEST_A], ACCOUNT.contact_ids[GUEST_B]
    responses = {i["attendee"]["id"]: i["response"] for i in before["attendee"]["items"]}
    assert responses == {
        ACCOUNT.employee_ids[ORGANIZER]: "ACCEPTED",
        guest_a: "NO_RESPONSE",
        guest_b: "NO_RESPONSE",
    }

    replied = run.handle(reply_from(GUEST_A), "reply")
    assert outcomes(replied) == {RESPONSE}
    (after,) = emulator.records("calendarEvent")

    changed = {
        i["attendee"]["id"]: i["response"]
        for i in after["attendee"]["items"]
        if i not in before["attendee"]["items"]
    }
    assert changed == {guest_a: "ACCEPTED"}
    items = {i["attendee"]["id"]: i for i in after["attendee"]["items"]}
    assert items.keys() == responses.keys()
    for record_id, item in items.items():
        old = next(i for i in before["attendee"]["items"] if i["attendee"]["id"] == record_id)
        assert {k: v for k, v in item.items() if k != "response"} == {
            k: v for k, v in old.items() if k != "response"
        }
    server_kept = {"lastModifiedDate"}
    assert {k: v for k, v in after.items() if k not in {"attendee", *server_kept}} == {
        k: v for k, v in before.items() if k not in {"attendee", *server_kept}
    }


# --- 6. cancelling one occurrence leaves the others ----------------------------------------

SERIES_UID = "weekly-0001@ourco.example.org"
OCCURRENCES = ("20250602T100000", "20250609T100000", "20250616T100000", "20250623T100000")


def weekly(
    method: str,
    *,
    sequence: int,
    dtstamp: str,
    count: int = 0,
    start: str = OCCURRENCES[0],
    **extra: Any,
) -> bytes:
    """The weekly meeting at 10:00 (Berlin); ``count`` 0 leaves the RRULE out."""
    event = vevent(
        uid=SERIES_UID,
        organizer=ORGANIZER,
        attendees=((GUEST_A, "NEEDS-ACTION"),),
        start=start,
        end=start[:-6] + "110000",
        sequence=sequence,
        dtstamp=dtstamp,
        rrule=f"FREQ=WEEKLY;COUNT={count}" if count else None,
        **extra,
    )
    return invitation_mail(sender=ORGANIZER, method=method, ics=calendar(method, event))


def statuses(emulator: NetSuiteEmulator) -> dict[str, str]:
    """Status by start date."""
    return {e["startDate"]: e["status"] for e in emulator.records("calendarEvent")}


def test_cancelling_one_occurrence_leaves_the_others(
    run: Runner, emulator: NetSuiteEmulator
) -> None:
    series = run.handle(weekly("REQUEST", sequence=0, dtstamp="20250520T080000Z", count=4))
    assert [r["outcome"] for r in series.records] == ["create"] * 4
    eids = {r["start"][:10]: r["external_id"] for r in series.records}
    dates = ["2025-06-02", "2025-06-09", "2025-06-16", "2025-06-23"]
    assert statuses(emulator) == dict.fromkeys(dates, "CONFIRMED")

    third = OCCURRENCES[2]
    cancel = weekly(
        "CANCEL",
        sequence=1,
        dtstamp="20250521T080000Z",
        start=third,
        recurrence_id=third,
        status="CANCELLED",
    )
    assert outcomes(run.handle(cancel)) == {CANCEL}
    assert statuses(emulator) == {**dict.fromkeys(dates, "CONFIRMED"), dates[2]: "CANCELLED"}

    # The organizer's new version: three weeks, the cancelled one excluded.
    updated = weekly(
        "REQUEST",
        sequence=2,
        dtstamp="20250522T080000Z",
        count=3,
        extra=(f"EXDATE;TZID=Europe/Berlin:{third}",),
    )
    handled = run.handle(updated)
    decided = {r["external_id"]: (r["outcome"], r["detail"]) for r in handled.records}
    fourth = eids["2025-06-23"]
    assert decided[fourth][0] == "cancel"
    assert "no longer an occurrence" in decided[fourth][1]
    assert decided.get(eids["2025-06-16"], ("unchanged",))[0] == "unchanged"  # stays cancelled
    assert statuses(emulator) == {
        dates[0]: "CONFIRMED",
        dates[1]: "CONFIRMED",
        dates[2]: "CANCELLED",
        dates[3]: "CANCELLED",
    }


# --- 7. a dry-run replay writes nothing ------------------------------------------------------

REAL_FIRST = [SINGLE, REPEAT, "calmailproc__test-02-1.eml"]
DRY_THEN_REAL = [
    MAJOR,
    EXCEPTION,
    CANCEL_REPEAT,
    "calmailproc__test-02-2.eml",
    "calmailproc__test-05-1.eml",
    "built:request-from-stranger",
]


def test_dry_run_writes_nothing_and_decides_as_a_real_run(
    emulator: NetSuiteEmulator, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite3"
    with engine(emulator, state) as real:
        Runner(real, prefix="earlier").handle_files(REAL_FIRST)
    before = sha256_of(state)
    emulator.reset_log()

    with engine(emulator, state, dry_run=True) as dry:
        runner = Runner(dry, prefix="later")
        dry_decisions = [decision_list(process(runner, name)) for name in DRY_THEN_REAL]
        assert isinstance(dry.calendar, RecordingCalendar)
        recorded = list(dry.calendar.writes)
    assert record_writes(emulator) == 0
    assert not any(e.method in WRITE_METHODS - {"POST"} for e in emulator.request_log())
    assert sha256_of(state) == before
    wal = state.with_name(state.name + "-wal")  # a reader may leave an empty one behind
    assert not wal.exists() or wal.stat().st_size == 0
    assert recorded  # the dry run did decide to write, it only did not

    with engine(emulator, state) as real:
        runner = Runner(real, prefix="later")
        real_decisions = [decision_list(process(runner, name)) for name in DRY_THEN_REAL]
    assert dry_decisions == real_decisions
    assert record_writes(emulator) == len(recorded)


# --- 8. the decision log ---------------------------------------------------------------------


def test_decision_log_holds_matches_and_netsuite_ids(
    run: Runner, emulator: NetSuiteEmulator
) -> None:
    created = run.handle_file(SINGLE)
    uid = created.records[0]["uid"]
    run.handle_file(MAJOR)
    run.handle_file(CANCEL_SINGLE)  # SEQUENCE 1 after 2: stale

    log = run.engine.state.decision_log(uid=uid)
    assert [(e["outcome"], e["reason"]) for e in log] == [skip(Reason.STALE), UPDATE, CREATE]
    (event,) = emulator.records("calendarEvent")
    for entry in log[1:]:
        assert entry["written"] is True
        assert entry["netsuite_id"] == str(event["id"])
        assert entry["external_id"] == event["externalId"]
    assert log[0]["written"] is False and log[0]["netsuite_id"] is None

    company_id = ACCOUNT.company_ids[OPPORTUNITY_DOMAIN]
    for entry in log:
        matches = entry["matches"]
        assert matches["organizer"]["id"] == ACCOUNT.employee_ids[ORGANIZER]
        assert f"ORGANIZER {ORGANIZER}" in matches["organizer"]["why"]
        assert matches["company"]["id"] == company_id
        assert "company of a contact" in matches["company"]["why"]
        assert matches["contact"]["id"] == ACCOUNT.contact_ids[GUEST_A]
        assert GUEST_A in matches["contact"]["why"]
        assert matches["opportunity"] == {
            "id": ACCOUNT.opportunity_id,
            "why": "the company's only open opportunity",
        }
        kinds = {a["email"]: a["kind"] for a in matches["attendees"]}
        assert kinds == {ORGANIZER: "employee", GUEST_A: "contact", GUEST_B: "contact"}
    assert event["organizer"]["id"] == ACCOUNT.employee_ids[ORGANIZER]
    assert event["company"]["id"] == company_id
    assert event["transaction"]["id"] == ACCOUNT.opportunity_id

    assert [e["outcome"] for e in run.engine.state.decision_log(reason="stale")] == ["skip"]
    assert run.engine.state.decision_log(uid=uid, outcome="create")[0]["written"] is True


# --- series mode: an account whose schema has NetSuite's recurrence fields -----------------


def test_series_mode_is_chosen_from_the_schema_and_writes_one_event(tmp_path: Path) -> None:
    with (
        NetSuiteEmulator(ACCOUNT.data, recurrence_fields=True) as account,
        engine(account, tmp_path / "state.sqlite3") as opened,
    ):
        assert opened.service.policy.recurrence.value == "series"
        runner = Runner(opened)
        series = runner.handle(weekly("REQUEST", sequence=0, dtstamp="20250520T080000Z", count=4))
        assert outcomes(series) == {CREATE}
        [event] = account.records("calendarEvent")
        assert (event["frequency"], event["period"]) == ("WEEK", 1)
        assert event["seriesStartDate"] == "2025-06-02"
        assert event["endByDate"] == "2025-06-23"
        assert event["recurrenceDowMaskList"] == ["MONDAY"]
        event = vevent(
            uid="hourly-series@example.com",
            organizer=ORGANIZER,
            attendees=((GUEST_A, "NEEDS-ACTION"),),
            start=OCCURRENCES[0],
            end=OCCURRENCES[0][:-6] + "103000",
            sequence=0,
            dtstamp="20250521T080000Z",
            rrule="FREQ=HOURLY;COUNT=3",
        )
        hourly = invitation_mail(sender=ORGANIZER, method="REQUEST", ics=calendar("REQUEST", event))
        assert outcomes(runner.handle(hourly)) == {skip(Reason.UNSUPPORTED_RECURRENCE)}
        assert len(account.records("calendarEvent")) == 1


def test_occurrences_mode_on_the_documented_2026_1_schema(run: Runner) -> None:
    assert run.engine.service.policy.recurrence.value == "occurrences"

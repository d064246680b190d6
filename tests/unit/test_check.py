"""The pure parts of `mailbot check`: clock skew, the calendarEvent schema, IMAP capabilities,
the report; and that its list of written fields agrees with the bodies mailbot builds."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mailbot.check import (
    SERIES_FIELDS,
    WRITTEN_ALWAYS,
    WRITTEN_SOMETIMES,
    CheckResult,
    Status,
    capability_finding,
    render_checks,
    schema_findings,
    skew_finding,
)
from mailbot.core.matching import AttendeeMatch, Choice, Matches, with_records
from mailbot.core.model import Attendee, Invitation, Method, Outcome, Schedule
from mailbot.core.payload import event_body
from mailbot.core.policy import Policy
from mailbot.core.series import SeriesFields, series_fields
from mailbot.sim.netsuite.schema import calendar_event_fields, custom_field, json_schema

BERLIN = ZoneInfo("Europe/Berlin")
POLICY = Policy.for_zone("Europe/Berlin")


# --- clock skew --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "status"),
    [
        (0.4, Status.OK),
        (-60.0, Status.OK),
        (61.0, Status.WARN),
        (-299.0, Status.WARN),
        (300.0, Status.WARN),
        (301.0, Status.FAIL),
        (-3600.0, Status.FAIL),
    ],
)
def test_skew_limits(seconds: float, status: Status) -> None:
    assert skew_finding(timedelta(seconds=seconds)).status is status


def test_skew_says_which_clock_is_ahead_and_what_to_do() -> None:
    ahead = skew_finding(timedelta(seconds=420))
    assert ahead.detail.startswith("NetSuite's clock is 420 s ahead of this machine's")
    assert "NTP" in ahead.detail
    assert "90 s behind" in skew_finding(timedelta(seconds=-90)).detail
    assert "agree to the second" in skew_finding(timedelta(seconds=0.3)).detail


# --- the calendarEvent schema ------------------------------------------------------------


def _emulated_schema(recurrence_fields: bool = False, **custom: bool) -> dict[str, Any]:
    """The emulator's metadata (the shape NetSuite's catalog has), with custom fields whose
    names map to whether they are required."""
    fields = tuple(
        custom_field(name, name.removeprefix("custevent_").title(), "string", required=required)
        for name, required in custom.items()
    )
    return json_schema("calendarEvent", recurrence_fields, fields)


def _by_name(findings: list[CheckResult]) -> dict[str, CheckResult]:
    return {finding.name: finding for finding in findings}


def test_the_standard_schema_is_ready_and_auto_picks_occurrences() -> None:
    found = _by_name(schema_findings(_emulated_schema(), "auto"))
    assert found["netsuite required fields"].status is Status.OK
    assert found["netsuite required fields"].detail.startswith("required: title")
    recurrence = found["netsuite recurrence"]
    assert recurrence.status is Status.OK
    assert "'auto' writes occurrences" in recurrence.detail


def test_recurrence_fields_make_auto_pick_series() -> None:
    found = _by_name(schema_findings(_emulated_schema(recurrence_fields=True), "auto"))
    assert found["netsuite recurrence"].status is Status.OK
    assert "'auto' writes series" in found["netsuite recurrence"].detail
    assert found["netsuite required fields"].status is Status.OK


def test_series_configured_without_the_fields_fails() -> None:
    found = _by_name(schema_findings(_emulated_schema(), "series"))
    assert found["netsuite recurrence"].status is Status.FAIL
    assert "'auto' or 'occurrences'" in found["netsuite recurrence"].detail
    # The series fields mailbot would send are unknown properties: strict names refuse them.
    fields = found["netsuite required fields"]
    assert fields.status is Status.FAIL
    assert "frequency" in fields.detail


def test_occurrences_configured_is_kept_even_when_series_are_possible() -> None:
    found = _by_name(schema_findings(_emulated_schema(recurrence_fields=True), "occurrences"))
    assert "'occurrences' writes occurrences" in found["netsuite recurrence"].detail


def test_a_required_custom_field_fails_by_name_and_an_optional_one_does_not() -> None:
    schema = _emulated_schema(custevent_region=True, custevent_billable=False)
    fields = _by_name(schema_findings(schema, "auto"))["netsuite required fields"]
    assert fields.status is Status.FAIL
    assert "custom field custevent_region (Region)" in fields.detail
    assert "billable" not in fields.detail


def test_a_required_field_mailbot_fills_only_sometimes_warns() -> None:
    schema = _emulated_schema()
    schema["required"] = ["title", "company"]
    fields = _by_name(schema_findings(schema, "auto"))["netsuite required fields"]
    assert fields.status is Status.WARN
    assert "company (Company): only when a customer matches" in fields.detail


def test_a_field_mailbot_writes_that_the_schema_lacks_fails() -> None:
    schema = _emulated_schema()
    del schema["properties"]["location"]
    fields = _by_name(schema_findings(schema, "auto"))["netsuite required fields"]
    assert fields.status is Status.FAIL
    assert "not in the schema" in fields.detail
    assert "location" in fields.detail


def test_every_field_mailbot_may_write_is_in_the_emulated_schema() -> None:
    emulated = calendar_event_fields(recurrence_fields=True)
    assert set(WRITTEN_ALWAYS) | set(WRITTEN_SOMETIMES) | SERIES_FIELDS <= emulated.keys()


# --- the written fields agree with the bodies mailbot builds -----------------------------


def _invitation(**changes: Any) -> Invitation:
    base = Invitation(
        method=Method.REQUEST,
        uid="uid-1@example.com",
        start=datetime(2026, 3, 10, 9, 0, tzinfo=UTC),
        end=datetime(2026, 3, 10, 10, 0, tzinfo=UTC),
        all_day=False,
        summary="Review",
        attendees=(Attendee("buyer@customer.example"),),
    )
    return replace(base, **changes)


def test_the_fields_of_every_body_are_listed_and_the_always_ones_always_set() -> None:
    hour = Schedule(
        datetime(2026, 3, 10, 10, 0, tzinfo=BERLIN),
        datetime(2026, 3, 10, 11, 0, tzinfo=BERLIN),
        all_day=False,
    )
    timed = event_body(
        _invitation(description="agenda", location="room 1"), hour, Outcome.CREATE, POLICY
    )
    all_day = event_body(
        _invitation(summary=""),
        Schedule(date(2026, 3, 10), date(2026, 3, 11), all_day=True),
        Outcome.CREATE,
        POLICY,
    )
    matched = with_records(
        timed,
        Matches(
            organizer=Choice("2", "employee"),
            attendees=(AttendeeMatch("buyer@customer.example", "contact", "201"),),
            company=Choice("101", "customer"),
            contact=Choice("201", "contact"),
            opportunity=Choice("301", "only open opportunity"),
        ),
    )
    listed = set(WRITTEN_ALWAYS) | set(WRITTEN_SOMETIMES)
    for body in (timed, all_day, matched):
        assert body.keys() <= listed
        assert all(body.get(name) not in (None, "") for name in WRITTEN_ALWAYS)
    assert set(WRITTEN_SOMETIMES) <= timed.keys() | matched.keys()


@pytest.mark.parametrize(
    "rule",
    ["FREQ=WEEKLY;BYDAY=MO,WE;COUNT=6", "FREQ=MONTHLY;BYDAY=2TU", "FREQ=DAILY;INTERVAL=2"],
)
def test_the_series_fields_are_listed(rule: str) -> None:
    master = _invitation(
        start=datetime(2026, 3, 9, 9, 0, tzinfo=BERLIN),
        end=datetime(2026, 3, 9, 10, 0, tzinfo=BERLIN),
        rrule=rule,
    )
    if "MONTHLY" in rule:
        master = replace(
            master,
            start=datetime(2026, 3, 10, 9, 0, tzinfo=BERLIN),
            end=datetime(2026, 3, 10, 10, 0, tzinfo=BERLIN),
        )
    found = series_fields(master, (), zone=BERLIN)
    assert isinstance(found, SeriesFields), found
    assert found.fields.keys() <= SERIES_FIELDS


# --- IMAP capabilities -------------------------------------------------------------------

EVERYTHING = frozenset({"IMAP4REV1", "IDLE", "MOVE", "UIDPLUS", "CONDSTORE"})


def test_all_capabilities_are_ok() -> None:
    found = capability_finding(EVERYTHING, poll_interval=30, files_with_keywords=False)
    assert found.status is Status.OK
    assert found.detail == "IDLE yes, MOVE yes, UIDPLUS yes, CONDSTORE yes"


def test_without_idle_mailbot_polls() -> None:
    found = capability_finding(EVERYTHING - {"IDLE"}, poll_interval=30, files_with_keywords=False)
    assert found.status is Status.WARN
    assert "no IDLE: will poll every 30 s" in found.detail


def test_without_move_mailbot_copies_and_expunges() -> None:
    found = capability_finding(EVERYTHING - {"MOVE"}, poll_interval=30, files_with_keywords=False)
    assert found.status is Status.WARN
    assert found.detail.endswith("no MOVE: COPY+EXPUNGE fallback")
    bare = capability_finding(
        EVERYTHING - {"MOVE", "UIDPLUS"}, poll_interval=30, files_with_keywords=False
    )
    assert "flagged \\Deleted" in bare.detail


def test_keywords_need_no_move() -> None:
    found = capability_finding(
        EVERYTHING - {"MOVE", "UIDPLUS"}, poll_interval=30, files_with_keywords=True
    )
    assert found.status is Status.OK
    assert "MOVE no" in found.detail


def test_condstore_is_reported_but_not_needed() -> None:
    found = capability_finding(
        EVERYTHING - {"CONDSTORE"}, poll_interval=30, files_with_keywords=False
    )
    assert (found.status, "CONDSTORE no" in found.detail) == (Status.OK, True)


# --- the report --------------------------------------------------------------------------

RESULTS = [
    CheckResult("configuration", Status.OK, "/etc/mailbot/mailbot.toml"),
    CheckResult("imap capabilities", Status.WARN, "no IDLE: will poll every 30 s"),
    CheckResult("clock skew", Status.FAIL, "NetSuite's clock is 400 s ahead"),
]


def test_the_table_has_one_aligned_line_per_check_and_the_counts() -> None:
    lines = render_checks(RESULTS, as_json=False).splitlines()
    assert lines == [
        "OK    configuration      /etc/mailbot/mailbot.toml",
        "WARN  imap capabilities  no IDLE: will poll every 30 s",
        "FAIL  clock skew         NetSuite's clock is 400 s ahead",
        "1 failed, 1 warning, 1 ok",
    ]


def test_the_json_report() -> None:
    document = json.loads(render_checks(RESULTS, as_json=True))
    assert document["counts"] == {"ok": 1, "warn": 1, "fail": 1}
    assert document["checks"][2] == {
        "name": "clock skew",
        "status": "fail",
        "detail": "NetSuite's clock is 400 s ahead",
    }

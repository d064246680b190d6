"""Hostile input far over each limit: a ``too_large`` decision, in bounded time and memory.

The bounds asserted here (10 s, 200 MB) are safety nets against a hang or a blow-up, far
above what bench/limits.py measures (docs/reliability.md has the figures). The messages
are built by bench/hostile.py, which the benchmark measures too.
"""

from __future__ import annotations

import time
import tomllib
import tracemalloc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from itertools import islice, takewhile
from pathlib import Path
from typing import Any

import pytest
from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import hostile
from mailbot.core import recurrence
from mailbot.core.model import Outcome, Reason
from mailbot.core.pipeline import ReadMessage, decide_message, read_message
from mailbot.core.policy import Limits, Policy, RecurrenceMode
from mailbot.core.sync import instances
from mailbot.settings import KNOWN_KEYS, ConfigurationError, settings_from_mapping

POLICY = Policy.for_zone("Europe/Berlin")
MOST_SECONDS = 10.0
MOST_BYTES = 200 * 1024 * 1024
EXAMPLE_CONFIG = Path(__file__).parents[2] / "config" / "mailbot.example.toml"
MB = 1024 * 1024


@dataclass(frozen=True)
class Measured:
    value: Any
    seconds: float
    peak_bytes: int


def measured(work: Callable[[], Any]) -> Measured:
    """Run ``work``, timing it and taking the peak of what Python allocated meanwhile."""
    tracemalloc.start()
    try:
        began = time.perf_counter()
        value = work()
        seconds = time.perf_counter() - began
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return Measured(value, seconds, peak)


def assert_bounded(run: Measured) -> None:
    assert run.seconds < MOST_SECONDS, f"took {run.seconds:.1f} s"
    assert run.peak_bytes < MOST_BYTES, f"peaked at {run.peak_bytes / MB:.0f} MB"


HOSTILE = [
    pytest.param(lambda: hostile.oversized(30 * MB), "bytes > 26214400", id="30-MB-message"),
    pytest.param(lambda: hostile.many_lines(2_000_000), "lines > 1000000", id="2M-lines"),
    pytest.param(lambda: hostile.long_line(10 * MB), "a line longer than", id="10-MB-line"),
    pytest.param(lambda: hostile.many_header_fields(100_000), "header", id="100k-header-lines"),
    pytest.param(
        lambda: hostile.many_header_fields(6000), "more than 5000 header fields", id="6000-fields"
    ),
    pytest.param(
        lambda: hostile.encoded_words_subject(40_000),
        "a header section of more than",
        id="40k-encoded-words",
    ),
    pytest.param(
        lambda: hostile.deep_multipart(10_000), "nesting deeper than 10", id="10k-deep-multipart"
    ),
    pytest.param(
        lambda: hostile.deep_forwarding(10_000), "nesting deeper than 10", id="10k-deep-rfc822"
    ),
    pytest.param(lambda: hostile.many_parts(100_000), "more than 500 parts", id="100k-parts"),
    pytest.param(lambda: hostile.big_calendar(5 * MB), "calendar part", id="5-MB-calendar"),
    pytest.param(
        lambda: hostile.many_content_lines(100_000),
        "content lines of calendar data > 20000",
        id="100k-ical-lines",
    ),
    pytest.param(lambda: hostile.many_events(10_000), "10000 events > 200", id="10k-VEVENTs"),
    pytest.param(
        lambda: hostile.many_attendees(100_000),
        "content lines of calendar data > 20000",
        id="100k-attendees",
    ),
]


@pytest.mark.parametrize(("build", "detail"), HOSTILE)
def test_hostile_message_is_one_bounded_too_large_decision(
    build: Callable[[], bytes], detail: str
) -> None:
    raw = build()
    run = measured(lambda: decide_message(raw, POLICY))
    decisions = run.value.decisions
    assert [(d.outcome, d.reason) for d in decisions] == [(Outcome.SKIP, Reason.TOO_LARGE)]
    assert detail in decisions[0].detail
    assert_bounded(run)


def test_too_many_attendees_is_too_large_for_that_event_within_bounds() -> None:
    raw = hostile.many_attendees(5000)  # under the content-line limit: parsed, then refused
    run = measured(lambda: decide_message(raw, POLICY))
    (decision,) = run.value.decisions
    assert (decision.reason, decision.uid) == (Reason.TOO_LARGE, "crowd@x")
    assert decision.detail == "5001 attendees > 500"  # and the buyer every event has
    assert_bounded(run)


def test_the_envelope_of_a_message_too_large_to_parse_still_names_the_sender() -> None:
    result = decide_message(hostile.many_parts(100_000), POLICY)
    assert result.envelope.sender == hostile.SENDER.decode()
    assert result.envelope.message_id == "<hostile@client.example>"


def test_hostile_headers_are_not_read_even_for_the_envelope() -> None:
    result = decide_message(hostile.many_header_fields(100_000), POLICY)
    assert result.envelope.sender is None  # the header section itself is over the limit


def test_nested_comments_in_from_do_not_exhaust_the_stack() -> None:
    run = measured(lambda: decide_message(hostile.nested_comments_from(100_000), POLICY))
    assert run.value.envelope.sender is None  # unreadable: no sender, so no trusted one
    assert run.value.envelope.message_id == "<hostile@client.example>"
    assert len(run.value.decisions) == 1
    assert_bounded(run)


# --- the structure count cannot be evaded ---------------------------------------------------


def _nest(depth: int, content_type: Callable[[int], bytes], newline: bytes = b"\r\n") -> bytes:
    opening = b"".join(
        b"Content-Type: " + content_type(level) + newline + newline + b"--b%d" % level + newline
        for level in range(depth)
    )
    return hostile.HEADERS.replace(b"\r\n", newline) + opening + b"Content-Type: text/plain"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (
            _nest(10_000, lambda n: b'multipart/mixed; boundary*0="b"; boundary*1="%d"' % n),
            "boundaries in RFC 2231 pieces",
        ),
        (_nest(10_000, lambda n: b"multipart/mixed; boundary=b%d" % n, b"\r"), "lone CR lines"),
        (_nest(10_000, lambda n: b"multipart/mixed; boundary=b%d" % n, b"\n"), "bare LF lines"),
        (
            _nest(10_000, lambda n: b'multipart/mixed;\r\n\tboundary="b%d"' % n),
            "folded Content-Type",
        ),
        (_nest(10_000, lambda n: b"MULTIPART/Digest; BOUNDARY=b%d" % n), "upper-case digests"),
    ],
)
def test_deep_nesting_in_any_spelling_is_caught_before_parsing(raw: bytes, why: str) -> None:
    run = measured(lambda: decide_message(raw, POLICY))
    assert [d.reason for d in run.value.decisions] == [Reason.TOO_LARGE], why
    assert "nesting deeper than 10" in run.value.decisions[0].detail, why
    assert_bounded(run)


def test_the_calendar_limits_hold_for_the_calendar_parts_together() -> None:
    policy = Policy.for_zone("Europe/Berlin", limits=Limits(max_calendar_lines=40))
    part = hostile.calendar(hostile.vevent("twice@x", b"X-FILL:1\r\n" * 10))  # 24 lines
    one = hostile.HEADERS + b"Content-Type: multipart/mixed; boundary=c\r\n\r\n"
    one += b"--c\r\nContent-Type: text/calendar\r\n\r\n" + part
    assert decide_message(one + b"--c--\r\n", policy).decisions[0].outcome is Outcome.CREATE
    two = one + b"--c\r\nContent-Type: application/ics\r\n\r\n" + part + b"--c--\r\n"
    (decision,) = decide_message(two, policy).decisions
    assert decision.reason is Reason.TOO_LARGE
    assert decision.detail == "calendar part 2: 48 content lines of calendar data > 40"


def test_many_sibling_multiparts_are_not_counted_as_depth() -> None:
    siblings = b"".join(
        b"--top\r\nContent-Type: multipart/alternative; boundary=s%d\r\n\r\n"
        b"--s%d\r\nContent-Type: text/plain\r\n\r\nhello\r\n--s%d--\r\n" % (n, n, n)
        for n in range(40)
    )
    calendar = b"--top\r\nContent-Type: text/calendar\r\n\r\n" + hostile.calendar(
        hostile.vevent("siblings@x")
    )
    raw = (
        hostile.HEADERS
        + b"Content-Type: multipart/mixed; boundary=top\r\n\r\n"
        + siblings
        + calendar
        + b"--top--\r\n"
    )
    assert [d.outcome for d in decide_message(raw, POLICY).decisions] == [Outcome.CREATE]


def test_a_message_at_every_limit_is_still_read() -> None:
    limits = Limits(max_mime_depth=3, max_mime_parts=8, max_header_fields=40)
    policy = Policy.for_zone("Europe/Berlin", limits=limits)
    assert decide_message(hostile.deep_multipart(3), policy).decisions[0].outcome is Outcome.CREATE
    assert decide_message(hostile.deep_multipart(4), policy).decisions[0].reason is Reason.TOO_LARGE
    assert decide_message(hostile.many_parts(6), policy).decisions[0].outcome is Outcome.CREATE
    assert decide_message(hostile.many_parts(7), policy).decisions[0].reason is Reason.TOO_LARGE


def test_a_25_mb_message_with_a_large_attachment_is_synced() -> None:
    attachment = (b"QUJD" * 19 + b"\r\n") * 300_000  # 23 MB of base64 in 78-byte lines
    raw = (
        hostile.HEADERS
        + b"Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n"
        + b"Content-Type: text/calendar; method=REQUEST\r\n\r\n"
        + hostile.calendar(hostile.vevent("big-attachment@x"))
        + b"--m\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + attachment
        + b"--m--\r\n"
    )
    run = measured(lambda: decide_message(raw, POLICY))
    assert [d.outcome for d in run.value.decisions] == [Outcome.CREATE]
    assert_bounded(run)


# --- recurrence expansion -------------------------------------------------------------------


def _expanded(rule: bytes, mode: RecurrenceMode) -> tuple[ReadMessage, Measured]:
    policy = Policy.for_zone("Europe/Berlin", recurrence=mode)
    read = read_message(hostile.recurring(rule), policy)
    return read, measured(lambda: instances(read, policy, hostile.HORIZON, hostile.PAST))


@pytest.mark.parametrize("mode", list(RecurrenceMode))
def test_a_secondly_rule_with_a_billion_instances_is_refused_at_once(mode: RecurrenceMode) -> None:
    _, run = _expanded(b"FREQ=SECONDLY;COUNT=1000000000", mode)
    (instance,) = run.value
    assert instance.skip is not None
    assert instance.skip.reason is Reason.UNSUPPORTED_RECURRENCE  # sub-daily: spec section 7
    assert_bounded(run)


@pytest.mark.parametrize("mode", list(RecurrenceMode))
def test_a_daily_rule_listing_every_second_is_refused_at_once(mode: RecurrenceMode) -> None:
    _, run = _expanded(hostile.EVERY_SECOND_OF_THE_DAY, mode)
    (instance,) = run.value
    assert instance.skip is not None
    assert instance.skip.reason is Reason.UNSUPPORTED_RECURRENCE
    assert_bounded(run)


def test_many_rules_that_never_match_are_found_empty_quickly() -> None:
    """dateutil walks a rule that never matches up to the year 9999 (seconds each, unless
    the walk is moved near that year); two hundred of them in one message."""
    never = [
        b"FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
        b"FREQ=DAILY;BYMONTHDAY=31;BYMONTH=6;BYSETPOS=-1",
    ]
    events = (hostile.vevent(f"never{n}@x", b"RRULE:" + never[n % 2] + b"\r\n") for n in range(200))
    read = read_message(hostile.invitation(hostile.calendar(*events)), POLICY)
    run = measured(lambda: instances(read, POLICY, hostile.HORIZON, hostile.PAST))
    assert len(run.value) == 200
    assert {i.skip.reason for i in run.value if i.skip} == {Reason.UNSUPPORTED_RECURRENCE}
    assert_bounded(run)


@pytest.mark.parametrize("mode", list(RecurrenceMode))
@pytest.mark.parametrize(("rdates", "exdates"), [(100_000, 0), (30_000, 30_000)])
def test_long_lists_of_dates_are_bounded(mode: RecurrenceMode, rdates: int, exdates: int) -> None:
    policy = Policy.for_zone("Europe/Berlin", recurrence=mode)
    read = read_message(hostile.listed_dates(rdates, exdates), policy)
    run = measured(lambda: instances(read, policy, hostile.HORIZON, hostile.PAST))
    (instance,) = run.value
    assert instance.skip is not None
    expected = (
        Reason.TOO_LARGE if mode is RecurrenceMode.OCCURRENCES else Reason.UNSUPPORTED_RECURRENCE
    )
    assert instance.skip.reason is expected
    assert_bounded(run)


def test_a_billion_daily_occurrences_are_cut_by_the_horizon_not_refused() -> None:
    _, run = _expanded(b"FREQ=DAILY;COUNT=1000000000", RecurrenceMode.OCCURRENCES)
    assert all(instance.skip is None for instance in run.value)
    assert 150 < len(run.value) <= 211  # one a day inside [DTSTAMP - 30 d, DTSTAMP + 180 d)
    assert_bounded(run)


def test_a_billion_daily_instances_cannot_be_a_netsuite_series() -> None:
    _, run = _expanded(b"FREQ=DAILY;COUNT=1000000000", RecurrenceMode.SERIES)
    (instance,) = run.value
    assert instance.skip is not None
    assert instance.skip.reason is Reason.UNSUPPORTED_RECURRENCE
    assert_bounded(run)


def test_a_series_over_max_occurrences_is_written_whole_or_not_at_all() -> None:
    limits = Limits(max_occurrences=100)
    policy = Policy.for_zone("Europe/Berlin", limits=limits)
    read = read_message(hostile.recurring(b"FREQ=DAILY"), policy)
    (instance,) = instances(read, policy, hostile.HORIZON, hostile.PAST)
    assert instance.skip is not None and instance.skip.reason is Reason.TOO_LARGE
    assert instance.skip.detail == "more than 100 occurrences between 2025-12-06 and 2026-07-04"


@settings(max_examples=40, deadline=None)  # 3,000 examples pass too (slower)
@given(
    first=st.datetimes(min_value=datetime(1583, 1, 1), max_value=datetime(2200, 12, 31)),
    frequency=st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]),
    interval=st.integers(1, 5),
    by=st.sampled_from(
        [
            "",
            ";BYDAY=MO,FR",
            ";BYDAY=-1SU",
            ";BYMONTHDAY=29,31",
            ";BYMONTH=2;BYMONTHDAY=29",
            ";BYWEEKNO=53;BYDAY=TH",
            ";BYYEARDAY=366,-1",
            ";BYDAY=TU;BYSETPOS=2",
        ]
    ),
    span=st.integers(0, 150),
)
def test_rules_walked_on_moved_dates_give_the_same_instances(
    first: datetime, frequency: str, interval: int, by: str, span: int
) -> None:
    rule, last = f"FREQ={frequency};INTERVAL={interval}{by}", first.year + span
    years = recurrence._cycle_shift(first.year, last)
    direct = rrulestr(rule, dtstart=first, cache=False)
    moved = rrulestr(rule, dtstart=first.replace(year=first.year + years), cache=False)
    assert _until(last, recurrence._moved_back(moved, years, last)) == _until(last, direct)
    assert 9998 - 400 < last + years <= 9998  # where dateutil stops soon after the horizon


def test_a_leap_day_past_the_copied_years_ends_the_walk_without_error() -> None:
    policy = Policy.for_zone("UTC")
    rule = b"FREQ=YEARLY;INTERVAL=3;BYMONTH=2;BYMONTHDAY=29"  # from 2026: 2032, 2044, ...
    read = read_message(hostile.recurring(rule), policy)
    (instance,) = instances(read, policy, hostile.HORIZON, hostile.PAST)
    assert instance.skip is not None
    assert instance.skip.reason is Reason.UNSUPPORTED_RECURRENCE
    assert instance.skip.detail.endswith("yields no instance")


def _until(last_year: int, values: Iterable[datetime]) -> list[datetime]:
    return list(islice(takewhile(lambda value: value.year <= last_year, values), 60))


# --- configuration --------------------------------------------------------------------------


def test_every_limit_is_a_key_of_the_limits_table_with_its_default_in_the_example() -> None:
    names = {f.name for f in fields(Limits)}
    assert KNOWN_KEYS["limits"] == names
    example = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))["limits"]
    assert example == {f.name: f.default for f in fields(Limits)}


def test_each_limit_is_read_from_the_configuration() -> None:
    values = {f.name: index + 2 for index, f in enumerate(fields(Limits))}
    settings = settings_from_mapping({"limits": values}, "test.toml")
    assert {f.name: getattr(settings.limits, f.name) for f in fields(Limits)} == values


def test_mime_depth_beyond_what_the_parsers_can_recurse_is_refused() -> None:
    with pytest.raises(ConfigurationError) as refused:
        settings_from_mapping({"limits": {"max_mime_depth": 5000}}, "test.toml")
    assert "limits.max_mime_depth: at most 100" in str(refused.value)

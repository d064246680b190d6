"""Occurrences mode: the instances of a recurring event inside a window."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.core.ical import read_part
from mailbot.core.mime import scan_file
from mailbot.core.model import CalendarPart, Invitation, Method
from mailbot.core.policy import Limits
from mailbot.core.recurrence import Expansion, expand, instance_key

CORPUS = Path(__file__).parent.parent / "fixtures" / "corpus"
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2040, 1, 1, tzinfo=UTC))


def _components(name: str) -> list[Invitation]:
    """Every VEVENT of a corpus file (.ics or .eml) that reads as an Invitation."""
    if name.endswith(".ics"):
        data = (CORPUS / "ics" / name).read_bytes()
        parts = [CalendarPart(data=data, content_type="text/calendar")]
    else:
        parts = list(scan_file((CORPUS / "eml" / name).read_bytes(), Limits()).parts)
    return [i for p in parts for i in read_part(p, Limits()) if isinstance(i, Invitation)]


def _calendar(name: str) -> tuple[Invitation, list[Invitation]]:
    """The last master of a corpus file and its overrides."""
    found = _components(name)
    masters = [i for i in found if i.recurrence_id is None]
    return masters[-1], [i for i in found if i.recurrence_id is not None]


def _overrides(name: str) -> list[Invitation]:
    return [i for i in _components(name) if i.recurrence_id is not None]


def _series(
    start: datetime | date, end: datetime | date, rrule: str | None, **extra: object
) -> Invitation:
    return Invitation(
        method=Method.REQUEST,
        uid="series",
        start=start,
        end=end,
        all_day=not isinstance(start, datetime),
        rrule=rrule,
        **extra,  # type: ignore[arg-type]
    )


def _override(
    recurrence_id: datetime | date, start: datetime | date, end: datetime | date, **extra: object
) -> Invitation:
    return _series(start, end, None, recurrence_id=recurrence_id, **extra)


def _run(
    master: Invitation,
    overrides: list[Invitation] | None = None,
    window: tuple[datetime, datetime] = EVER,
    zone: ZoneInfo = BERLIN,
    max_instances: int = 500,
) -> Expansion:
    return expand(master, overrides or [], *window, floating_zone=zone, max_instances=max_instances)


def _keys(expansion: Expansion) -> list[str]:
    assert expansion.problem is None
    return [instance_key(o.recurrence_id) for o in expansion.occurrences]


# --- keys -------------------------------------------------------------------------------


def test_instance_key_is_utc_text_or_a_date() -> None:
    assert instance_key(datetime(2026, 3, 10, 10, tzinfo=BERLIN)) == "20260310T090000Z"
    assert instance_key(datetime(2026, 3, 10, 9, tzinfo=UTC)) == "20260310T090000Z"
    assert instance_key(date(2026, 3, 10)) == "20260310"
    assert instance_key(datetime(2026, 3, 10, 9)) == "20260310T090000"


# --- the rule ---------------------------------------------------------------------------


def test_weekly_meeting_keeps_its_wall_clock_across_the_march_change() -> None:
    master = _series(
        datetime(2026, 3, 16, 9, tzinfo=BERLIN),
        datetime(2026, 3, 16, 10, tzinfo=BERLIN),
        "FREQ=WEEKLY;COUNT=4",
    )
    occurrences = _run(master).occurrences
    assert [o.start for o in occurrences] == [
        datetime(2026, 3, d, 9, tzinfo=BERLIN) for d in (16, 23, 30)
    ] + [datetime(2026, 4, 6, 9, tzinfo=BERLIN)]
    assert [o.start.utcoffset() for o in occurrences] == [  # type: ignore[union-attr]
        timedelta(hours=1),
        timedelta(hours=1),
        timedelta(hours=2),
        timedelta(hours=2),
    ]
    assert [instance_key(o.recurrence_id) for o in occurrences] == [
        "20260316T080000Z",
        "20260323T080000Z",
        "20260330T070000Z",
        "20260406T070000Z",
    ]
    for occurrence in occurrences:
        assert isinstance(occurrence.recurrence_id, datetime)
        assert occurrence.recurrence_id.tzinfo is UTC
        assert isinstance(occurrence.start, datetime)
        assert occurrence.end == occurrence.start + timedelta(hours=1)


def test_outlook_weekly_series_across_dst_until_in_utc() -> None:
    master, _ = _calendar("calmailproc__test-03-1.eml")  # Thursdays 15:00 Berlin
    occurrences = _run(master).occurrences
    assert {(o.start.hour, o.start.minute) for o in occurrences} == {(15, 0)}  # type: ignore[union-attr]
    assert occurrences[0].start == datetime(2025, 3, 13, 15, tzinfo=BERLIN)
    # UNTIL=20250828T130000Z is exactly the last instance (15:00 CEST): included
    assert occurrences[-1].start == datetime(2025, 8, 28, 15, tzinfo=BERLIN)
    assert len(occurrences) == 25


def test_series_in_a_zone_known_only_from_its_vtimezone() -> None:
    master, _ = _calendar("node-ical__bad_ms_tz.ics")  # Tue/Thu 10:35, US Eastern rules
    occurrences = _run(master).occurrences
    assert {(o.start.hour, o.start.minute) for o in occurrences} == {(10, 35)}  # type: ignore[union-attr]
    by_key = {instance_key(o.recurrence_id): o for o in occurrences}
    assert "20201029T143500Z" in by_key  # EDT
    assert "20201103T153500Z" in by_key  # EST after 1 November
    assert instance_key(occurrences[-1].recurrence_id) == "20201217T153500Z"  # UNTIL itself


def test_wall_time_skipped_by_the_spring_change_is_read_with_the_earlier_offset() -> None:
    master = _series(
        datetime(2026, 3, 28, 2, 30, tzinfo=BERLIN),
        datetime(2026, 3, 28, 3, 0, tzinfo=BERLIN),
        "FREQ=DAILY;COUNT=3",
    )
    occurrences = _run(master).occurrences
    assert [instance_key(o.recurrence_id) for o in occurrences] == [
        "20260328T013000Z",
        "20260329T013000Z",  # 02:30 does not exist that day: 03:30 CEST
        "20260330T003000Z",
    ]
    assert occurrences[1].start == datetime(2026, 3, 29, 3, 30, tzinfo=BERLIN)


def test_until_in_utc_against_a_zoned_start() -> None:
    master, _ = _calendar("khal__event_rrule_recuid_cancelled.ics")  # Mondays 07:00 Berlin
    keys = _keys(_run(master))
    assert keys[0] == "20140630T050000Z"
    assert keys[-1] == "20140804T050000Z"  # UNTIL=20140806T060000Z
    assert len(keys) == 6


def test_until_as_a_date_includes_that_day() -> None:
    master = _series(
        datetime(2026, 1, 5, 18, tzinfo=NEW_YORK),
        datetime(2026, 1, 5, 19, tzinfo=NEW_YORK),
        "FREQ=DAILY;UNTIL=20260107",
    )
    assert _keys(_run(master)) == ["20260105T230000Z", "20260106T230000Z", "20260107T230000Z"]


def test_count_is_counted_from_the_series_start() -> None:
    master, _ = _calendar("calmailproc__test-18-1.eml")  # FREQ=WEEKLY;COUNT=10;BYDAY=FR
    assert len(_run(master).occurrences) == 10
    later = (datetime(2025, 11, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC))
    keys = _keys(_run(master, window=later))
    assert keys == ["20251107T100000Z", "20251114T100000Z", "20251121T100000Z", "20251128T100000Z"]


def test_dtstart_off_the_rule_is_the_first_instance_and_counts() -> None:
    master = _series(  # a Thursday, rule on Mondays
        datetime(2026, 1, 1, 9, tzinfo=UTC),
        datetime(2026, 1, 1, 10, tzinfo=UTC),
        "FREQ=WEEKLY;BYDAY=MO;COUNT=3",
    )
    assert _keys(_run(master)) == ["20260101T090000Z", "20260105T090000Z", "20260112T090000Z"]


def test_exdate_in_utc_removes_the_zoned_instance() -> None:
    master = _series(
        datetime(2026, 3, 16, 9, tzinfo=BERLIN),
        datetime(2026, 3, 16, 10, tzinfo=BERLIN),
        "FREQ=WEEKLY;COUNT=4",
        exdates=(datetime(2026, 3, 23, 8, tzinfo=UTC), datetime(2026, 3, 30, 7, tzinfo=UTC)),
    )
    assert _keys(_run(master)) == ["20260316T080000Z", "20260406T070000Z"]


def test_exdate_at_the_wrong_instant_removes_nothing() -> None:
    master = _series(
        datetime(2026, 3, 16, 9, tzinfo=BERLIN),
        datetime(2026, 3, 16, 10, tzinfo=BERLIN),
        "FREQ=WEEKLY;COUNT=2",
        exdates=(datetime(2026, 3, 23, 9, tzinfo=UTC),),  # 10:00 Berlin: no instance then
    )
    assert len(_keys(_run(master))) == 2


def test_exdate_as_a_date_in_a_timed_series_removes_that_day() -> None:
    master = _series(
        datetime(2026, 1, 5, 23, 30, tzinfo=BERLIN),
        datetime(2026, 1, 5, 23, 45, tzinfo=BERLIN),
        "FREQ=DAILY;COUNT=3",
        exdates=(date(2026, 1, 6),),  # the Berlin date, although 22:30 UTC
    )
    assert _keys(_run(master)) == ["20260105T223000Z", "20260107T223000Z"]


def test_rdate_adds_an_instance_and_duplicates_collapse() -> None:
    master, overrides = _calendar("rie__issue_75_range_parameter.ics")
    window = (datetime(2024, 9, 12, tzinfo=UTC), datetime(2024, 9, 16, tzinfo=UTC))
    added = [o for o in _run(master, overrides, window).occurrences if o.override is None]
    assert [(instance_key(o.recurrence_id), o.start, o.end) for o in added] == [
        (
            "20240914T090000Z",
            datetime(2024, 9, 14, 9, tzinfo=UTC),
            datetime(2024, 9, 14, 11, tzinfo=UTC),
        )
    ]
    same = _series(
        datetime(2026, 1, 5, 9, tzinfo=UTC),
        datetime(2026, 1, 5, 10, tzinfo=UTC),
        "FREQ=DAILY;COUNT=2",
        rdates=(datetime(2026, 1, 6, 9, tzinfo=UTC), datetime(2026, 1, 9, 9, tzinfo=UTC)),
    )
    assert _keys(_run(same)) == ["20260105T090000Z", "20260106T090000Z", "20260109T090000Z"]


def test_all_day_until_in_utc_is_read_in_the_floating_zone() -> None:
    master, _ = _calendar("node-ical__exchange_whole_day_moved_recurrence.ics")
    # UNTIL=20260817T220000Z is midnight of Tuesday 18 August in Berlin
    assert _run(master, zone=BERLIN).occurrences[-1].start == date(2026, 8, 18)
    assert _run(master, zone=ZoneInfo("UTC")).occurrences[-1].start == date(2026, 8, 13)


# --- overrides --------------------------------------------------------------------------


def test_moved_instance_listed_once_at_its_new_time_keyed_by_its_original_start() -> None:
    master, overrides = _calendar("rie__issue_62_moved_event.ics")  # last Friday, 21:30
    window = (datetime(2021, 12, 1, tzinfo=UTC), datetime(2022, 1, 31, tzinfo=UTC))
    occurrences = _run(master, overrides, window).occurrences
    assert [(instance_key(o.recurrence_id), o.start) for o in occurrences] == [
        ("20211231T203000Z", datetime(2021, 12, 17, 21, 30, tzinfo=BERLIN)),
        ("20220128T203000Z", datetime(2022, 1, 28, 21, 30, tzinfo=BERLIN)),
    ]
    assert occurrences[0].override is overrides[0]
    assert occurrences[1].override is None


def test_exception_sent_alone_replaces_the_instance_of_the_earlier_series() -> None:
    master, _ = _calendar("comm-central__repeat-event.eml")  # DAILY;COUNT=3 at 11:00Z
    moved = _overrides("comm-central__exception-major.eml")
    occurrences = _run(master, moved).occurrences
    assert [(instance_key(o.recurrence_id), o.start) for o in occurrences] == [
        ("20220316T110000Z", datetime(2022, 3, 16, 11, tzinfo=UTC)),
        ("20220317T110000Z", datetime(2022, 3, 17, 5, tzinfo=UTC)),
        ("20220318T110000Z", datetime(2022, 3, 18, 11, tzinfo=UTC)),
    ]
    assert occurrences[1].end == datetime(2022, 3, 17, 5, 30, tzinfo=UTC)
    assert occurrences[1].override is moved[0]


def test_cancelled_override_is_listed_as_cancelled() -> None:
    master, overrides = _calendar("rie__issue_18_cancel_status.ics")
    occurrences = _run(master, overrides).occurrences
    assert [(instance_key(o.recurrence_id), o.cancelled) for o in occurrences] == [
        ("20200128T210000Z", False),
        ("20200129T210000Z", True),
        ("20200130T210000Z", False),
    ]
    master, overrides = _calendar("khal__event_rrule_recuid_cancelled.ics")
    by_key = {instance_key(o.recurrence_id): o for o in _run(master, overrides).occurrences}
    assert by_key["20140714T050000Z"].cancelled
    assert by_key["20140707T050000Z"].start == datetime(2014, 7, 7, 9, tzinfo=BERLIN)
    assert not by_key["20140707T050000Z"].cancelled


def test_cancel_method_for_one_instance_cancels_it() -> None:
    master = _series(
        datetime(2026, 1, 5, 9, tzinfo=UTC),
        datetime(2026, 1, 5, 10, tzinfo=UTC),
        "FREQ=DAILY;COUNT=2",
    )
    cancel = Invitation(
        method=Method.CANCEL,
        uid="series",
        start=None,
        end=None,
        all_day=False,
        recurrence_id=datetime(2026, 1, 6, 9, tzinfo=UTC),
    )
    second = _run(master, [cancel]).occurrences[1]
    assert second.cancelled and second.override is cancel
    assert second.start == datetime(2026, 1, 6, 9, tzinfo=UTC)  # no DTSTART: the original
    assert second.end == datetime(2026, 1, 6, 10, tzinfo=UTC)


def test_override_of_an_exdated_instance_is_not_listed() -> None:
    master, overrides = _calendar("rie__issue_163_deleted_modification.ics")
    assert master.exdates  # the newer master deletes the modified instance
    keys = _keys(_run(master, overrides, (EVER[0], datetime(2024, 10, 1, tzinfo=UTC))))
    assert keys == ["20240729", "20240909", "20240930"]


def test_all_day_weekly_with_an_all_day_instance_of_a_lower_sequence() -> None:
    master, overrides = _calendar("rie__recurrence_sequence_number.ics")
    window = (datetime(2020, 9, 1, tzinfo=UTC), datetime(2020, 10, 1, tzinfo=UTC))
    occurrences = _run(master, overrides, window).occurrences
    assert [o.recurrence_id for o in occurrences] == [date(2020, 9, d) for d in (8, 15, 22, 29)]
    assert [o.start for o in occurrences] == [date(2020, 9, d) for d in (8, 15, 22, 29)]
    assert occurrences[2].override is overrides[0]
    assert occurrences[2].override.summary == "Modified event"
    assert occurrences[0].end == date(2020, 9, 9)


def test_all_day_instance_moved_with_an_exchange_recurrence_id() -> None:
    master, overrides = _calendar("node-ical__exchange_whole_day_moved_recurrence.ics")
    # RECURRENCE-ID;TZID=W. Europe Standard Time:20260226T000000 is 25 Feb 23:00 UTC
    window = (datetime(2026, 2, 23, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
    for zone in (BERLIN, ZoneInfo("UTC"), NEW_YORK):
        occurrences = _run(master, overrides, window, zone=zone).occurrences
        assert [(o.recurrence_id, o.start) for o in occurrences] == [
            (date(2026, 2, 24), date(2026, 2, 24)),
            (date(2026, 2, 26), date(2026, 2, 27)),
        ], zone


def test_override_moved_out_of_and_into_the_window_is_judged_by_its_actual_start() -> None:
    master = _series(
        datetime(2026, 1, 5, 9, tzinfo=UTC),
        datetime(2026, 1, 5, 10, tzinfo=UTC),
        "FREQ=DAILY;COUNT=10",
    )
    out = _override(
        datetime(2026, 1, 6, 9, tzinfo=UTC),
        datetime(2026, 2, 1, 9, tzinfo=UTC),
        datetime(2026, 2, 1, 10, tzinfo=UTC),
    )
    into = _override(
        datetime(2026, 1, 12, 9, tzinfo=UTC),
        datetime(2026, 1, 7, 15, tzinfo=UTC),
        datetime(2026, 1, 7, 16, tzinfo=UTC),
    )
    window = (datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 8, tzinfo=UTC))
    occurrences = _run(master, [out, into], window).occurrences
    assert [(instance_key(o.recurrence_id), o.override is not None) for o in occurrences] == [
        ("20260105T090000Z", False),
        ("20260107T090000Z", False),
        ("20260112T090000Z", True),
    ]


def test_override_of_no_instance_is_listed_when_it_starts_in_the_window() -> None:
    master = _series(
        datetime(2026, 1, 5, 9, tzinfo=UTC),
        datetime(2026, 1, 5, 10, tzinfo=UTC),
        "FREQ=WEEKLY;COUNT=3",
    )
    stray = _override(
        datetime(2026, 1, 7, 9, tzinfo=UTC),  # a Wednesday: not an instance
        datetime(2026, 1, 8, 9, tzinfo=UTC),
        datetime(2026, 1, 8, 10, tzinfo=UTC),
    )
    keys = _keys(_run(master, [stray]))
    assert keys == ["20260105T090000Z", "20260107T090000Z", "20260112T090000Z", "20260119T090000Z"]
    elsewhere = (datetime(2026, 1, 12, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    assert "20260107T090000Z" not in _keys(_run(master, [stray], elsewhere))


def test_recurrence_id_as_a_date_in_a_timed_series_designates_that_day() -> None:
    master = _series(
        datetime(2026, 1, 5, 23, 30, tzinfo=BERLIN),
        datetime(2026, 1, 5, 23, 45, tzinfo=BERLIN),
        "FREQ=DAILY;COUNT=3",
    )
    moved = _override(
        date(2026, 1, 6),
        datetime(2026, 1, 6, 20, tzinfo=BERLIN),
        datetime(2026, 1, 6, 21, tzinfo=BERLIN),
    )
    occurrences = _run(master, [moved]).occurrences
    assert [(instance_key(o.recurrence_id), o.override is moved) for o in occurrences] == [
        ("20260105T223000Z", False),
        ("20260106T223000Z", True),
        ("20260107T223000Z", False),
    ]


def test_of_two_versions_of_one_override_the_later_wins_and_other_uids_are_ignored() -> None:
    master = _series(
        datetime(2026, 1, 5, 9, tzinfo=UTC),
        datetime(2026, 1, 5, 10, tzinfo=UTC),
        "FREQ=DAILY;COUNT=2",
    )
    rid = datetime(2026, 1, 6, 9, tzinfo=UTC)
    old = _override(rid, datetime(2026, 1, 6, 11, tzinfo=UTC), datetime(2026, 1, 6, 12, tzinfo=UTC))
    new = _override(
        rid, datetime(2026, 1, 6, 14, tzinfo=UTC), datetime(2026, 1, 6, 15, tzinfo=UTC), sequence=2
    )
    alien = Invitation(
        method=Method.REQUEST,
        uid="other",
        start=datetime(2026, 1, 5, 20, tzinfo=UTC),
        end=datetime(2026, 1, 5, 21, tzinfo=UTC),
        all_day=False,
        recurrence_id=datetime(2026, 1, 5, 9, tzinfo=UTC),
    )
    occurrences = _run(master, [new, old, alien]).occurrences
    assert [o.override for o in occurrences] == [None, new]


# --- the window -------------------------------------------------------------------------


def test_window_clipping_is_half_open() -> None:
    master = _series(
        datetime(2026, 1, 5, 9, tzinfo=UTC), datetime(2026, 1, 5, 10, tzinfo=UTC), "FREQ=DAILY"
    )
    window = (datetime(2026, 1, 7, 9, tzinfo=UTC), datetime(2026, 1, 10, 9, tzinfo=UTC))
    expansion = _run(master, window=window)
    assert _keys(expansion) == ["20260107T090000Z", "20260108T090000Z", "20260109T090000Z"]
    assert not expansion.truncated


def test_all_day_window_compares_dates_in_the_floating_zone() -> None:
    master = _series(date(2026, 1, 5), date(2026, 1, 6), "FREQ=DAILY;COUNT=10")
    # 6 Jan 23:30 UTC is already 7 Jan in Berlin; 9 Jan 12:00 excludes 9 Jan itself
    window = (datetime(2026, 1, 6, 23, 30, tzinfo=UTC), datetime(2026, 1, 9, 12, tzinfo=UTC))
    assert _keys(_run(master, window=window, zone=BERLIN)) == ["20260107", "20260108"]
    assert _keys(_run(master, window=window, zone=ZoneInfo("UTC"))) == [
        "20260106",
        "20260107",
        "20260108",
    ]


def test_more_instances_than_allowed_are_truncated_in_order() -> None:
    master = _series(
        datetime(2026, 1, 5, 9, tzinfo=UTC), datetime(2026, 1, 5, 10, tzinfo=UTC), "FREQ=DAILY"
    )
    expansion = _run(master, max_instances=5)
    assert expansion.truncated
    assert _keys(expansion) == [f"202601{d:02d}T090000Z" for d in range(5, 10)]
    exact = _run(master, window=(EVER[0], datetime(2026, 1, 10, tzinfo=UTC)), max_instances=5)
    assert len(exact.occurrences) == 5 and not exact.truncated


def test_floating_series_repeats_on_the_floating_zone_wall_clock() -> None:
    master = _series(datetime(2026, 3, 27, 9), datetime(2026, 3, 27, 9, 30), "FREQ=DAILY;COUNT=3")
    occurrences = _run(master, zone=BERLIN).occurrences
    assert [o.start for o in occurrences] == [datetime(2026, 3, d, 9) for d in (27, 28, 29)]
    assert [o.end for o in occurrences] == [datetime(2026, 3, d, 9, 30) for d in (27, 28, 29)]
    assert [instance_key(o.recurrence_id) for o in occurrences] == [
        "20260327T080000Z",
        "20260328T080000Z",
        "20260329T070000Z",
    ]
    in_new_york = _run(master, zone=NEW_YORK).occurrences
    assert instance_key(in_new_york[0].recurrence_id) == "20260327T130000Z"


# --- refusals and protection ------------------------------------------------------------


def test_unparseable_rrule_is_a_problem() -> None:
    master = _series(
        datetime(2026, 1, 5, 9, tzinfo=UTC),
        datetime(2026, 1, 5, 10, tzinfo=UTC),
        "FREQ=WEEKLY;BYDAY=XX",
    )
    expansion = _run(master)
    assert expansion.occurrences == ()
    assert expansion.problem is not None
    assert expansion.problem.startswith("RRULE FREQ=WEEKLY;BYDAY=XX: ")
    for bad in (
        "FREQ=SOMETIMES",
        "INTERVAL=2",
        "FREQ=DAILY;COUNT=many",
        "FREQ=DAILY;COUNT=²",
        "FREQ=DAILY;UNTIL=soon",
    ):
        problem = _run(_series(master.start, master.end, bad)).problem  # type: ignore[arg-type]
        assert problem is not None and problem.startswith(f"RRULE {bad}: ")


def test_rule_that_yields_nothing_is_a_problem_unless_rdates_remain() -> None:
    start, end = datetime(2026, 1, 5, 9, tzinfo=UTC), datetime(2026, 1, 5, 10, tzinfo=UTC)
    never = "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"
    expansion = _run(_series(start, end, never))
    assert expansion.occurrences == () and expansion.problem == f"RRULE {never}: yields no instance"
    extra = datetime(2026, 1, 9, 9, tzinfo=UTC)
    assert _keys(_run(_series(start, end, never, rdates=(extra,)))) == [
        "20260105T090000Z",
        "20260109T090000Z",
    ]


def test_master_without_dtstart_is_a_problem() -> None:
    master = _series(date(2026, 1, 5), date(2026, 1, 6), "FREQ=DAILY")
    no_start = Invitation(
        method=Method.CANCEL, uid="series", start=None, end=None, all_day=False, rrule="FREQ=DAILY"
    )
    assert _run(no_start).problem is not None
    assert _run(master).problem is None


def test_secondly_rule_with_a_huge_count_returns_truncated() -> None:
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    master = _series(start, start, "FREQ=SECONDLY;COUNT=1000000000")
    expansion = _run(master, window=(start, datetime(2026, 2, 1, tzinfo=UTC)), max_instances=50)
    assert expansion.truncated
    assert 0 < len(expansion.occurrences) <= 50
    far = _run(master, window=(start + timedelta(days=1), datetime(2026, 2, 1, tzinfo=UTC)))
    assert far.truncated and far.occurrences == ()  # the step budget ran out before the window


def test_a_single_event_is_one_instance() -> None:
    start = datetime(2026, 1, 5, 9, tzinfo=BERLIN)
    occurrences = _run(_series(start, start + timedelta(hours=1), None)).occurrences
    assert [(o.start, o.end) for o in occurrences] == [(start, start + timedelta(hours=1))]


# --- properties -------------------------------------------------------------------------

ZONES = [ZoneInfo("UTC"), BERLIN, NEW_YORK, ZoneInfo("Australia/Sydney")]
DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


@st.composite
def series_and_window(draw: st.DrawFn) -> tuple[Invitation, datetime, datetime, int]:
    frequency = draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY"]))
    parts = [f"FREQ={frequency}", f"INTERVAL={draw(st.integers(1, 6))}"]
    count = draw(st.none() | st.integers(1, 400))
    if count is not None:
        parts.append(f"COUNT={count}")
    days = draw(st.lists(st.sampled_from(DAYS), max_size=3, unique=True))
    if days:
        parts.append("BYDAY=" + ",".join(days))
    zone = draw(st.sampled_from(ZONES))
    all_day = draw(st.booleans())
    first = datetime(2024, 1, 1) + timedelta(minutes=15 * draw(st.integers(0, 4 * 24 * 365 * 3)))
    if all_day:
        master = _series(first.date(), first.date() + timedelta(days=1), ";".join(parts))
    else:
        aware = first.replace(tzinfo=zone)
        master = _series(aware, aware + timedelta(hours=1), ";".join(parts))
    near = first.replace(tzinfo=UTC) + timedelta(hours=draw(st.integers(-24 * 60, 24 * 800)))
    window_start = near + timedelta(minutes=draw(st.integers(-59, 59)))
    window_end = window_start + timedelta(hours=draw(st.integers(0, 24 * 400)))
    return master, window_start, window_end, draw(st.integers(0, 300))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series_and_window(), st.sampled_from(ZONES))
def test_random_rules_never_raise_nor_exceed_the_limit(
    case: tuple[Invitation, datetime, datetime, int], zone: ZoneInfo
) -> None:
    master, window_start, window_end, limit = case
    expansion = expand(
        master, [], window_start, window_end, floating_zone=zone, max_instances=limit
    )
    assert expansion.problem is None
    assert len(expansion.occurrences) <= limit
    keys = [instance_key(o.recurrence_id) for o in expansion.occurrences]
    assert keys == sorted(set(keys))
    for occurrence in expansion.occurrences:
        start = occurrence.start
        if isinstance(start, datetime):
            assert window_start <= start < window_end
            assert start.tzinfo is master.start.tzinfo  # type: ignore[union-attr]
        else:
            assert (
                window_start.astimezone(zone).date() <= start < window_end.astimezone(zone).date()
            )
    if not expansion.truncated:
        assert keys == _reference_keys(master, window_start, window_end, zone)


def _reference_keys(
    master: Invitation, window_start: datetime, window_end: datetime, zone: ZoneInfo
) -> list[str]:
    """The same instances from dateutil iterating an aware DTSTART (DTSTART first, COUNT
    counting it)."""
    text = master.rrule or ""
    count = re.search(r"COUNT=(\d+)", text)
    limit = int(count.group(1)) if count else None
    text = re.sub(r";COUNT=\d+", "", text)
    start = master.start
    if isinstance(start, datetime):
        first = start
    else:
        assert start is not None
        first = datetime.combine(start, datetime.min.time(), tzinfo=zone)
    found: list[datetime] = []
    for value in rrulestr(text, dtstart=first, cache=False):
        if not found and value != first:
            found.append(first)
        found.append(value)
        if (limit is not None and len(found) >= limit) or value >= window_end + timedelta(days=1):
            break
    found = found[:limit] if limit is not None else found
    if isinstance(start, datetime):
        return [instance_key(v) for v in found if window_start <= v < window_end]
    days = [v.date() for v in found]
    first_day, end_day = (window_start.astimezone(zone).date(), window_end.astimezone(zone).date())
    return [instance_key(d) for d in days if first_day <= d < end_day]

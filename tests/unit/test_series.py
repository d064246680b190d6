"""Series mode: a recurring invitation as NetSuite recurrence fields."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailbot.core.ical import read_part
from mailbot.core.mime import scan_file
from mailbot.core.model import CalendarPart, Invitation, Method
from mailbot.core.policy import Limits
from mailbot.core.series import (
    FREQUENCY_VALUES,
    MAX_COUNT,
    ORDINAL_VALUES,
    WEEKDAY_VALUES,
    SeriesFields,
    series_fields,
)
from mailbot.sim.netsuite.schema import RECURRENCE_FIELDS

FIXTURES = Path(__file__).parent.parent / "fixtures"
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
AUCKLAND = ZoneInfo("Pacific/Auckland")
FIELD_NAMES = {spec.name for spec in RECURRENCE_FIELDS}


def _read(path: Path) -> tuple[Invitation, list[Invitation]]:
    """The (last) master of a fixture and its overrides."""
    if path.suffix == ".ics":
        data = path.read_bytes()
    else:
        data = scan_file(path.read_bytes(), Limits()).parts[0].data
    part = CalendarPart(data=data, content_type="text/calendar")
    found = [i for i in read_part(part, Limits()) if isinstance(i, Invitation)]
    masters = [i for i in found if i.recurrence_id is None]
    return masters[-1], [i for i in found if i.recurrence_id is not None]


def _corpus(name: str) -> tuple[Invitation, list[Invitation]]:
    folder = "ics" if name.endswith(".ics") else "eml"
    return _read(FIXTURES / "corpus" / folder / name)


def _handmade(name: str) -> tuple[Invitation, list[Invitation]]:
    return _read(FIXTURES / "handmade" / name)


def _series(
    start: datetime | date, rrule: str | None, end: datetime | date | None = None, **extra: object
) -> Invitation:
    if end is None:
        end = start + (timedelta(hours=1) if isinstance(start, datetime) else timedelta(days=1))
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
    recurrence_id: datetime | date, start: datetime | date | None, **extra: object
) -> Invitation:
    end = None
    if start is not None:
        end = start + (timedelta(hours=1) if isinstance(start, datetime) else timedelta(days=1))
    return Invitation(
        method=extra.pop("method", Method.REQUEST),  # type: ignore[arg-type]
        uid=extra.pop("uid", "series"),  # type: ignore[arg-type]
        start=start,
        end=end,
        all_day=not isinstance(start, datetime),
        recurrence_id=recurrence_id,
        **extra,  # type: ignore[arg-type]
    )


def _fields(
    master: Invitation, overrides: list[Invitation] | None = None, zone: ZoneInfo = BERLIN
) -> dict[str, object]:
    result = series_fields(master, overrides or [], zone=zone)
    assert isinstance(result, SeriesFields), result
    assert set(result.fields) <= FIELD_NAMES
    assert result.fields["exclusionDateList"] == [day.isoformat() for day in result.excluded]
    assert list(result.excluded) == sorted(set(result.excluded))
    return result.fields


def _refusal(
    master: Invitation, overrides: list[Invitation] | None = None, zone: ZoneInfo = BERLIN
) -> str:
    result = series_fields(master, overrides or [], zone=zone)
    assert isinstance(result, str), result
    return result


BERLIN_9 = datetime(2026, 3, 2, 9, 0, tzinfo=BERLIN)  # a Monday


# --- the vocabulary -----------------------------------------------------------------------


def test_vocabulary_follows_the_soap_values_without_underscore() -> None:
    assert FREQUENCY_VALUES == {
        "DAILY": "DAY",
        "WEEKLY": "WEEK",
        "MONTHLY": "MONTH",
        "YEARLY": "YEAR",
    }
    assert WEEKDAY_VALUES[date(2026, 3, 2).weekday()] == "MONDAY"
    assert WEEKDAY_VALUES[date(2026, 3, 8).weekday()] == "SUNDAY"
    assert ORDINAL_VALUES == {1: "FIRST", 2: "SECOND", 3: "THIRD", 4: "FOURTH", -1: "LAST"}


# --- fixtures -----------------------------------------------------------------------------


def test_weekly_until_from_a_windows_zone() -> None:
    master, overrides = _corpus("calmailproc__test-03-1.eml")
    assert master.zone is not None and master.zone.how == "windows"
    assert _fields(master, overrides) == {
        "frequency": "WEEK",
        "period": 1,
        "seriesStartDate": "2025-03-13",
        "recurrenceDowMaskList": ["THURSDAY"],
        "endByDate": "2025-08-28",  # UNTIL=20250828T130000Z is the last instance's start
        "noEndDate": False,
        "exclusionDateList": [],
    }


def test_a_constant_move_across_midnight_shifts_the_weekly_mask() -> None:
    # Thursday 15:00 Berlin is Friday 03:00 (NZDT) or 01:00 (NZST) in Auckland
    master, _ = _corpus("calmailproc__test-03-1.eml")
    fields = _fields(master, zone=AUCKLAND)
    assert fields["seriesStartDate"] == "2025-03-14"
    assert fields["recurrenceDowMaskList"] == ["FRIDAY"]
    assert fields["endByDate"] == "2025-08-29"


def test_count_ends_on_the_date_of_the_last_instance() -> None:
    master, _ = _corpus("calmailproc__test-18-1.eml")
    assert master.rrule is not None and "COUNT=10" in master.rrule
    fields = _fields(master)
    assert fields["seriesStartDate"] == "2025-09-26"
    assert fields["endByDate"] == "2025-11-28"  # the tenth Friday
    assert fields["noEndDate"] is False
    assert fields["recurrenceDowMaskList"] == ["FRIDAY"]


def test_daily_count() -> None:
    master, _ = _corpus("comm-central__repeat-event.eml")
    assert _fields(master) == {
        "frequency": "DAY",
        "period": 1,
        "seriesStartDate": "2022-03-16",
        "endByDate": "2022-03-18",
        "noEndDate": False,
        "exclusionDateList": [],
    }


def test_monthly_last_friday_with_a_moved_instance() -> None:
    master, overrides = _corpus("rie__issue_62_moved_event.ics")
    result = series_fields(master, overrides, zone=BERLIN)
    assert isinstance(result, SeriesFields)
    assert result.fields == {
        "frequency": "MONTH",
        "period": 1,
        "seriesStartDate": "2021-11-26",
        "recurrenceDowim": "LAST",
        "recurrenceDow": "FRIDAY",
        "noEndDate": True,
        "exclusionDateList": ["2021-12-31"],
    }
    assert result.excluded == (date(2021, 12, 31),)


def test_monthly_rule_that_moves_across_midnight_is_refused() -> None:
    master, overrides = _corpus("rie__issue_62_moved_event.ics")
    why = _refusal(master, overrides, zone=AUCKLAND)
    assert "starts on 2021-11-27 in Pacific/Auckland" in why
    assert "monthly rule cannot be moved across midnight" in why


def test_cancelled_and_moved_overrides_are_excluded() -> None:
    master, overrides = _handmade("recurring-with-overrides.eml")
    result = series_fields(master, overrides, zone=BERLIN)
    assert isinstance(result, SeriesFields)
    assert result.fields["frequency"] == "WEEK"
    assert result.fields["recurrenceDowMaskList"] == ["MONDAY"]
    assert result.fields["seriesStartDate"] == "2026-03-30"
    assert result.fields["endByDate"] == "2026-06-01"  # COUNT=10
    # 13 April is cancelled, 20 April moved to Tuesday 21 April
    assert result.excluded == (date(2026, 4, 13), date(2026, 4, 20))
    assert result.fields["exclusionDateList"] == ["2026-04-13", "2026-04-20"]


def test_hourly_is_refused() -> None:
    master, _ = _handmade("unsupported-recurrence-hourly.eml")
    assert _refusal(master) == "FREQ=HOURLY repeats within a day"


# --- frequency, period, start, end ----------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "value"),
    [
        ("FREQ=DAILY", "DAY"),
        ("FREQ=WEEKLY", "WEEK"),
        ("FREQ=MONTHLY", "MONTH"),
        ("FREQ=YEARLY", "YEAR"),
    ],
)
def test_frequency(rule: str, value: str) -> None:
    fields = _fields(_series(BERLIN_9, rule))
    assert fields["frequency"] == value
    assert fields["period"] == 1
    assert fields["seriesStartDate"] == "2026-03-02"
    assert fields["noEndDate"] is True
    assert "endByDate" not in fields


@pytest.mark.parametrize("frequency", ["HOURLY", "MINUTELY", "SECONDLY"])
def test_sub_daily_frequencies_are_refused(frequency: str) -> None:
    why = _refusal(_series(BERLIN_9, f"FREQ={frequency};INTERVAL=2"))
    assert why == f"FREQ={frequency} repeats within a day"


def test_unknown_or_missing_frequency_is_refused() -> None:
    assert "FREQ='FORTNIGHTLY'" in _refusal(_series(BERLIN_9, "FREQ=FORTNIGHTLY"))
    assert "FREQ=''" in _refusal(_series(BERLIN_9, "INTERVAL=2"))


def test_interval_is_the_period() -> None:
    assert _fields(_series(BERLIN_9, "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO"))["period"] == 2
    assert _fields(_series(BERLIN_9, "RRULE:FREQ=DAILY;INTERVAL=3"))["period"] == 3
    assert _refusal(_series(BERLIN_9, "FREQ=DAILY;INTERVAL=0")) == "INTERVAL=0 is out of range"


def test_series_start_is_the_first_instance_in_the_sync_zone() -> None:
    late = datetime(2026, 3, 5, 20, 30, tzinfo=NEW_YORK)  # Friday 02:30 in Berlin
    fields = _fields(_series(late, "FREQ=DAILY;COUNT=2"))
    assert fields["seriesStartDate"] == "2026-03-06"
    assert fields["endByDate"] == "2026-03-07"


def test_floating_series_is_read_in_the_sync_zone() -> None:
    fields = _fields(_series(datetime(2026, 3, 2, 23, 30), "FREQ=WEEKLY;COUNT=3"), zone=NEW_YORK)
    assert fields["seriesStartDate"] == "2026-03-02"
    assert fields["recurrenceDowMaskList"] == ["MONDAY"]
    assert fields["endByDate"] == "2026-03-16"


def test_until_ends_on_the_last_instance_not_after_it() -> None:
    # the instance of 16 March is at 09:00 CET, 08:00 UTC: an UNTIL a minute earlier leaves it out
    fields = _fields(_series(BERLIN_9, "FREQ=WEEKLY;UNTIL=20260316T075900Z"))
    assert fields["endByDate"] == "2026-03-09"
    fields = _fields(_series(BERLIN_9, "FREQ=WEEKLY;UNTIL=20260316T080000Z"))
    assert fields["endByDate"] == "2026-03-16"
    # an UNTIL between instances: the last one before it
    fields = _fields(_series(BERLIN_9, "FREQ=WEEKLY;UNTIL=20260320T000000Z"))
    assert fields["endByDate"] == "2026-03-16"


def test_until_is_read_in_the_sync_zone() -> None:
    late = datetime(2026, 3, 5, 20, 30, tzinfo=NEW_YORK)  # Thursdays, Fridays in Berlin
    fields = _fields(_series(late, "FREQ=WEEKLY;UNTIL=20260320T003000Z"))
    assert fields["recurrenceDowMaskList"] == ["FRIDAY"]
    assert fields["endByDate"] == "2026-03-20"


def test_count_limits() -> None:
    fields = _fields(_series(date(2026, 3, 2), f"FREQ=DAILY;COUNT={MAX_COUNT}"))
    assert fields["endByDate"] == (date(2026, 3, 2) + timedelta(days=MAX_COUNT - 1)).isoformat()
    why = _refusal(_series(date(2026, 3, 2), f"FREQ=DAILY;COUNT={MAX_COUNT + 1}"))
    assert why == (
        f"COUNT={MAX_COUNT + 1}: more than {MAX_COUNT} instances (NetSuite series end by a date)"
    )
    assert _refusal(_series(BERLIN_9, "FREQ=DAILY;COUNT=0")) == "COUNT=0 is out of range"
    why = _refusal(_series(BERLIN_9, "FREQ=DAILY;COUNT=3;UNTIL=20260310T000000Z"))
    assert why.endswith("COUNT and UNTIL together")


def test_a_bounded_series_too_long_to_expand_is_refused() -> None:
    why = _refusal(_series(date(2026, 1, 1), "FREQ=DAILY;UNTIL=20450101"))
    assert why == "RRULE FREQ=DAILY;UNTIL=20450101: more than 5000 instances before UNTIL"


def test_a_series_without_instances_is_refused() -> None:
    why = _refusal(_series(BERLIN_9, "FREQ=DAILY;UNTIL=20200101T000000Z"))
    assert why == "RRULE FREQ=DAILY;UNTIL=20200101T000000Z: the series has no instance"


# --- weekly ---------------------------------------------------------------------------------


def test_weekly_mask_lists_the_days_monday_first() -> None:
    fields = _fields(_series(BERLIN_9, "FREQ=WEEKLY;BYDAY=WE,MO"))
    assert fields["recurrenceDowMaskList"] == ["MONDAY", "WEDNESDAY"]
    assert "recurrenceDow" not in fields
    assert "recurrenceDowim" not in fields


def test_weekly_without_byday_takes_the_start_weekday() -> None:
    tuesday = datetime(2026, 3, 3, 14, 0, tzinfo=BERLIN)
    assert _fields(_series(tuesday, "FREQ=WEEKLY"))["recurrenceDowMaskList"] == ["TUESDAY"]


def test_daily_on_weekdays_is_a_weekly_mask() -> None:
    fields = _fields(_series(BERLIN_9, "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;COUNT=10"))
    assert fields["frequency"] == "WEEK"
    assert fields["recurrenceDowMaskList"] == list(WEEKDAY_VALUES[:5])
    assert fields["endByDate"] == "2026-03-13"
    why = _refusal(_series(BERLIN_9, "FREQ=DAILY;INTERVAL=2;BYDAY=MO,TU"))
    assert why == "BYDAY with FREQ=DAILY;INTERVAL=2 has no NetSuite equivalent"


def test_weekly_refusals() -> None:
    why = _refusal(_series(BERLIN_9, "FREQ=WEEKLY;BYDAY=1MO"))
    assert why == "BYDAY=1MO: week numbers need FREQ=MONTHLY"
    why = _refusal(_series(BERLIN_9, "FREQ=WEEKLY;BYMONTH=3"))
    assert why == "BYMONTH=3 with FREQ=WEEKLY has no NetSuite equivalent"
    why = _refusal(_series(BERLIN_9, "FREQ=DAILY;BYMONTHDAY=2"))
    assert why == "BYMONTHDAY=2 with FREQ=DAILY has no NetSuite equivalent"
    why = _refusal(_series(BERLIN_9, "FREQ=WEEKLY;BYDAY=XX"))
    assert why == "BYDAY=XX is not a list of weekdays"


def test_every_other_week_on_several_days() -> None:
    fields = _fields(_series(BERLIN_9, "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;WKST=SU"))
    assert fields["recurrenceDowMaskList"] == ["MONDAY", "WEDNESDAY"]
    # with Sunday among them, the week start decides which week the Sunday belongs to
    why = _refusal(_series(BERLIN_9, "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,SU"))
    assert why == (
        "MONDAY, SUNDAY every 2 weeks: which week the Sunday belongs to depends on the week "
        "start, which NetSuite does not take"
    )
    assert _fields(_series(BERLIN_9, "FREQ=WEEKLY;BYDAY=MO,SU"))["recurrenceDowMaskList"] == [
        "MONDAY",
        "SUNDAY",
    ]
    # a week start that puts Monday and Wednesday in different weeks follows no pattern
    why = _refusal(_series(BERLIN_9, "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;WKST=TU"))
    assert "follow no NetSuite pattern" in why


def test_dtstart_off_the_rule_is_refused() -> None:
    why = _refusal(_series(BERLIN_9, "FREQ=WEEKLY;BYDAY=WE"))
    assert why == (
        "DTSTART (2026-03-02 09:00:00+01:00) does not follow RRULE FREQ=WEEKLY;BYDAY=WE: a "
        "NetSuite series starts on an instance of its pattern"
    )


def test_a_meeting_that_changes_date_with_daylight_saving_is_refused() -> None:
    # Thursday 18:30 New York is Friday 00:30 in Berlin, except between the American and
    # the European change of clocks (8 to 29 March 2026), when it is Thursday 23:30
    start = datetime(2026, 1, 8, 18, 30, tzinfo=NEW_YORK)
    why = _refusal(_series(start, "FREQ=WEEKLY;BYDAY=TH"))
    assert why == (
        "in Europe/Berlin the instance dates follow no NetSuite pattern: after 2026-03-06 "
        "the rule gives 2026-03-12, the pattern 2026-03-13"
    )


# --- monthly --------------------------------------------------------------------------------


def test_monthly_on_a_month_day() -> None:
    start = datetime(2026, 3, 15, 10, 0, tzinfo=BERLIN)
    fields = _fields(_series(start, "FREQ=MONTHLY;BYMONTHDAY=15;COUNT=3"))
    assert fields == {
        "frequency": "MONTH",
        "period": 1,
        "seriesStartDate": "2026-03-15",
        "endByDate": "2026-05-15",
        "noEndDate": False,
        "exclusionDateList": [],
    }
    assert _fields(_series(start, "FREQ=MONTHLY;INTERVAL=3"))["period"] == 3


def test_monthly_month_day_refusals() -> None:
    start = datetime(2026, 3, 15, 10, 0, tzinfo=BERLIN)
    why = _refusal(_series(start, "FREQ=MONTHLY;BYMONTHDAY=1,15"))
    assert why == "BYMONTHDAY=1,15: NetSuite repeats on one day a month"
    why = _refusal(_series(start, "FREQ=MONTHLY;BYMONTHDAY=30"))
    assert why == "BYMONTHDAY=30: NetSuite repeats monthly on days 1 to 28 only"
    why = _refusal(_series(start, "FREQ=MONTHLY;BYMONTHDAY=-1"))
    assert why == "BYMONTHDAY=-1: NetSuite repeats monthly on days 1 to 28 only"
    why = _refusal(_series(start, "FREQ=MONTHLY;BYMONTHDAY=0"))
    assert why == "BYMONTHDAY=0 is out of range"
    why = _refusal(_series(start, "FREQ=MONTHLY;BYMONTHDAY=10"))
    assert why.startswith("DTSTART (2026-03-15 10:00:00+01:00) does not follow RRULE")
    why = _refusal(_series(date(2026, 1, 31), "FREQ=MONTHLY"))
    assert why == "monthly on day 31: NetSuite repeats on days 1 to 28 only"
    why = _refusal(_series(start, "FREQ=MONTHLY;BYMONTH=3,6"))
    assert why == "BYMONTH=3,6 with FREQ=MONTHLY has no NetSuite equivalent"


@pytest.mark.parametrize(
    ("start", "byday", "dowim", "dow"),
    [
        (date(2026, 3, 3), "1TU", "FIRST", "TUESDAY"),
        (date(2026, 3, 10), "2TU", "SECOND", "TUESDAY"),
        (date(2026, 3, 19), "+3TH", "THIRD", "THURSDAY"),
        (date(2026, 3, 28), "4SA", "FOURTH", "SATURDAY"),
        (date(2026, 3, 27), "-1FR", "LAST", "FRIDAY"),
    ],
)
def test_monthly_on_a_weekday_of_the_month(start: date, byday: str, dowim: str, dow: str) -> None:
    fields = _fields(_series(start, f"FREQ=MONTHLY;BYDAY={byday};COUNT=12"))
    assert fields["frequency"] == "MONTH"
    assert fields["recurrenceDowim"] == dowim
    assert fields["recurrenceDow"] == dow
    assert "recurrenceDowMaskList" not in fields


def test_monthly_weekday_refusals() -> None:
    start = date(2026, 3, 10)
    why = _refusal(_series(start, "FREQ=MONTHLY;BYDAY=5TU"))
    assert why == "BYDAY=5TU: NetSuite knows the first to fourth and last weekday"
    why = _refusal(_series(start, "FREQ=MONTHLY;BYDAY=-2TU"))
    assert why == "BYDAY=-2TU: NetSuite knows the first to fourth and last weekday"
    why = _refusal(_series(start, "FREQ=MONTHLY;BYDAY=TU"))
    assert why == "BYDAY=TU (every such weekday of the month) has no NetSuite equivalent"
    why = _refusal(_series(start, "FREQ=MONTHLY;BYDAY=2TU,4TU"))
    assert why == "BYDAY=2TU,4TU: NetSuite repeats monthly on one weekday"
    why = _refusal(_series(start, "FREQ=MONTHLY;BYDAY=2TU;BYMONTHDAY=10"))
    assert why == "BYDAY and BYMONTHDAY together have no NetSuite equivalent"
    why = _refusal(_series(start, "FREQ=MONTHLY;BYDAY=3TU"))
    assert why.startswith("DTSTART (2026-03-10) does not follow RRULE")


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ("FREQ=MONTHLY;BYDAY=TU;BYSETPOS=2", "BYSETPOS=2 has no NetSuite equivalent"),
        ("FREQ=YEARLY;BYWEEKNO=11", "BYWEEKNO=11 has no NetSuite equivalent"),
        ("FREQ=YEARLY;BYYEARDAY=69", "BYYEARDAY=69 has no NetSuite equivalent"),
        ("FREQ=DAILY;BYHOUR=9,15", "BYHOUR=9,15 has no NetSuite equivalent"),
        ("FREQ=DAILY;X-NAME=1", "RRULE part X-NAME=1 is not supported"),
        ("FREQ=DAILY;WKST=XX", "WKST=XX is not a weekday"),
    ],
)
def test_rule_parts_without_equivalent_are_named(rule: str, why: str) -> None:
    assert _refusal(_series(date(2026, 3, 10), rule)) == why


# --- yearly ---------------------------------------------------------------------------------


def test_yearly() -> None:
    start = date(2026, 3, 14)
    fields = _fields(_series(start, "FREQ=YEARLY;COUNT=3"))
    assert fields["frequency"] == "YEAR"
    assert fields["endByDate"] == "2028-03-14"
    assert _fields(_series(start, "FREQ=YEARLY;BYMONTH=3"))["frequency"] == "YEAR"
    # as Outlook writes it
    assert _fields(_series(start, "FREQ=YEARLY;BYMONTHDAY=14;BYMONTH=3"))["frequency"] == "YEAR"


def test_yearly_refusals() -> None:
    start = date(2026, 3, 14)
    why = _refusal(_series(start, "FREQ=YEARLY;BYMONTH=4"))
    assert why == "BYMONTH=4 is not the month of DTSTART (2026-03-14)"
    why = _refusal(_series(start, "FREQ=YEARLY;BYMONTH=3,9"))
    assert why == "BYMONTH=3,9 is not the month of DTSTART (2026-03-14)"
    why = _refusal(_series(start, "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=15"))
    assert why == "BYMONTHDAY=15 is not the day of DTSTART (2026-03-14)"
    why = _refusal(_series(start, "FREQ=YEARLY;BYDAY=2SA;BYMONTH=3"))
    assert why == "BYDAY=2SA with FREQ=YEARLY has no NetSuite equivalent"
    why = _refusal(_series(date(2028, 2, 29), "FREQ=YEARLY"))
    assert why == "yearly on 29 February: NetSuite's handling of other years is unknown"


# --- exclusions -----------------------------------------------------------------------------


def test_exdates_and_overrides_make_the_exclusion_list() -> None:
    master = _series(
        BERLIN_9,
        "FREQ=WEEKLY;COUNT=6",
        exdates=(
            datetime(2026, 3, 23, 8, 0, tzinfo=UTC),  # an instance (09:00 CET)
            datetime(2026, 3, 30, 9, 0, tzinfo=UTC),  # no instance at that time: ignored
        ),
    )
    moved = _override(
        datetime(2026, 3, 9, 8, 0, tzinfo=UTC), datetime(2026, 3, 10, 15, 0, tzinfo=BERLIN)
    )
    cancelled = _override(
        datetime(2026, 3, 16, 8, 0, tzinfo=UTC), None, method=Method.CANCEL, status="CANCELLED"
    )
    other = _override(
        datetime(2026, 4, 6, 7, 0, tzinfo=UTC), datetime(2026, 4, 6, 9, 0, tzinfo=BERLIN), uid="x"
    )
    result = series_fields(master, [cancelled, moved, other], zone=BERLIN)
    assert isinstance(result, SeriesFields)
    assert result.excluded == (date(2026, 3, 9), date(2026, 3, 16), date(2026, 3, 23))
    assert result.fields["exclusionDateList"] == ["2026-03-09", "2026-03-16", "2026-03-23"]
    assert result.fields["endByDate"] == "2026-04-06"


def test_an_excluded_last_instance_still_ends_the_series() -> None:
    master = _series(BERLIN_9, "FREQ=DAILY;COUNT=3", exdates=(date(2026, 3, 4),))
    result = series_fields(master, [], zone=BERLIN)
    assert isinstance(result, SeriesFields)
    assert result.fields["endByDate"] == "2026-03-04"
    assert result.excluded == (date(2026, 3, 4),)


def test_all_day_series() -> None:
    master = _series(
        date(2026, 3, 2), "FREQ=WEEKLY;BYDAY=MO,TH;UNTIL=20260326", exdates=(date(2026, 3, 5),)
    )
    moved = _override(date(2026, 3, 12), date(2026, 3, 13))
    result = series_fields(master, [moved], zone=NEW_YORK)
    assert isinstance(result, SeriesFields)
    assert result.fields == {
        "frequency": "WEEK",
        "period": 1,
        "seriesStartDate": "2026-03-02",
        "recurrenceDowMaskList": ["MONDAY", "THURSDAY"],
        "endByDate": "2026-03-26",
        "noEndDate": False,
        "exclusionDateList": ["2026-03-05", "2026-03-12"],
    }


def test_an_exclusion_far_beyond_the_checked_span_is_found() -> None:
    master = _series(BERLIN_9, "FREQ=WEEKLY", exdates=(datetime(2031, 3, 3, 8, 0, tzinfo=UTC),))
    fields = _fields(master)
    assert fields["exclusionDateList"] == ["2031-03-03"]
    assert fields["noEndDate"] is True
    far = _series(date(2026, 1, 1), "FREQ=DAILY", exdates=(date(2045, 1, 1),))
    assert _refusal(far) == (
        "EXDATE or RECURRENCE-ID 2045-01-01 lies more than 5000 instances after DTSTART"
    )


# --- what is not a series -------------------------------------------------------------------


def test_rdate_is_refused() -> None:
    master = _series(BERLIN_9, "FREQ=WEEKLY", rdates=(datetime(2026, 3, 4, 8, 0, tzinfo=UTC),))
    assert _refusal(master).startswith("RDATE adds instances outside the rule")


def test_what_is_no_series_master() -> None:
    assert _refusal(_series(BERLIN_9, None)) == "not a series: no RRULE"
    override = _override(datetime(2026, 3, 9, 8, 0, tzinfo=UTC), BERLIN_9, rrule="FREQ=DAILY")
    assert _refusal(override) == "not a series master: it carries a RECURRENCE-ID"
    startless = Invitation(Method.CANCEL, "series", None, None, False, rrule="FREQ=DAILY")
    assert _refusal(startless) == "the series has no DTSTART"


def test_dates_at_the_end_of_the_calendar() -> None:
    why = _refusal(_series(date(9999, 12, 20), "FREQ=DAILY"))
    assert why.startswith("date out of range")

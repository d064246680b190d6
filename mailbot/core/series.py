"""Series mode: a recurring invitation as the recurrence fields of one NetSuite event.

In *series* mode (event-sync-spec.md section 7) a recurring meeting becomes one NetSuite
``calendarEvent`` carrying NetSuite's own recurrence fields. This module computes those
fields from the series master and its RECURRENCE-ID overrides, or says why NetSuite cannot
hold the rule (the caller turns that into ``skip: unsupported_recurrence``). It is pure: the
sync zone is passed in, nothing is read from the clock.

The field names and values follow SOAP (``CalendarEvent``, ``RecurrenceFrequency``) and
SuiteScript (netsuite-rest.md 3d). The REST 2026.1 schema has none of these fields, so what
REST accepts is UNVERIFIED. SOAP writes enum values with a leading underscore (``_week``);
REST most likely takes the enum id without it. Every value written lives in the vocabulary
table below (``FREQUENCY_VALUES``, ``WEEKDAY_VALUES``, ``ORDINAL_VALUES``), so a different
spelling is changed there and nowhere else.

Mapping (all dates are ISO dates in the sync zone; all-day series follow the same rules on
their dates):

======================  ===================================================================
iCalendar               NetSuite field
======================  ===================================================================
FREQ=DAILY              ``frequency`` = ``FREQUENCY_VALUES["DAILY"]`` ("DAY", SOAP ``_day``)
FREQ=WEEKLY             ``frequency`` "WEEK" (``_week``)
FREQ=MONTHLY            ``frequency`` "MONTH" (``_month``)
FREQ=YEARLY             ``frequency`` "YEAR" (``_year``)
INTERVAL (default 1)    ``period``
DTSTART                 ``seriesStartDate``: the date of the first instance (DTSTART)
UNTIL                   ``endByDate``: the date of the last instance on or before UNTIL,
                        with ``noEndDate`` false
COUNT (at most 1000)    ``endByDate``: the date of the COUNT-th instance (NetSuite has no
                        occurrence count), with ``noEndDate`` false
neither                 ``noEndDate`` true
WEEKLY BYDAY            ``recurrenceDowMaskList``: day names (``WEEKDAY_VALUES``), Monday
                        first; without BYDAY, DTSTART's weekday
DAILY;BYDAY (INTERVAL   the same as WEEKLY with that BYDAY (the two rules are equal)
of 1)
MONTHLY, BYMONTHDAY=N   nothing more: NetSuite repeats on the series start's day (N must
(one value, 1 to 28)    be that day); also without BYMONTHDAY
MONTHLY, BYDAY=2TU or   ``recurrenceDowim`` (``ORDINAL_VALUES``: FIRST to FOURTH, LAST) and
-1FR (one value)        ``recurrenceDow`` (a day name)
YEARLY (BYMONTH and     nothing more: NetSuite repeats on the series start's month and day
BYMONTHDAY, if given,
those of DTSTART)
EXDATE, overrides       ``exclusionDateList``: the sorted dates of EXDATE'd instances and of
                        every instance a RECURRENCE-ID override replaces (moved, changed or
                        cancelled: it becomes an event of its own, netsuite-rest.md 3d);
                        always written, empty included, so that an update clears old ones.
                        EXDATEs and overrides are matched to instances as
                        ``recurrence.expand`` matches them; one that names no instance
                        adds nothing
======================  ===================================================================

Refused (the string returned names the part): sub-daily FREQ; RDATE; BYSETPOS, BYWEEKNO,
BYYEARDAY, BYHOUR, BYMINUTE, BYSECOND and unknown rule parts; COUNT over ``MAX_COUNT``;
BYMONTH or BYMONTHDAY outside YEARLY and MONTHLY as above; BYDAY with several values, without
or with an unsupported week number in MONTHLY, with any in YEARLY; several BYMONTHDAY values
or one above 28, and monthly series on a day above 28 (NetSuite is reported to skip short
months differently: third-party note in netsuite-rest.md 3d); yearly series on 29 February
(what NetSuite does in other years is unknown); an INTERVAL above 1 with several weekdays
including Sunday (which week a Sunday belongs to depends on the week start, which NetSuite
does not take; the pattern is modelled with weeks from Monday, so a WKST that groups the
days otherwise fails the comparison below); monthly and yearly series whose first instance falls on
another date in the sync zone than in its own zone; a bounded series of more than
``MAX_INSTANCES`` instances, and an EXDATE or RECURRENCE-ID further out than that.

NetSuite repeats a series on the sync zone's calendar, the iCalendar rule on the clock of
DTSTART's zone. The rule's instances are therefore expanded (``recurrence.expand``) and
their dates in the sync zone compared with those NetSuite's pattern gives, modelled as the
equivalent rule anchored on ``seriesStartDate``: over the whole of a bounded series, over
``CHECK_SPAN`` of an open-ended one. Any difference is refused: meetings that change date
in the sync zone with daylight-saving time, week starts that group days otherwise. A DTSTART
the rule does not produce (RFC 5545 still counts it as the first instance) is refused before,
since a NetSuite series starts on an instance of its pattern. A weekly or daily series that
moves across midnight by a constant number of days keeps its mask, shifted by that number.
The time of day is not part of these fields; across daylight-saving changes NetSuite keeps
the sync zone's wall clock, where the rule keeps that of its own zone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrule, rrulestr, weekdays

from mailbot.core.model import Invitation
from mailbot.core.recurrence import Expansion, expand, instance_key

# --- the vocabulary: the values written to NetSuite -------------------------------------

# iCalendar FREQ -> NetSuite ``frequency`` (SOAP ``_day`` ... without the underscore)
FREQUENCY_VALUES: dict[str, str] = {
    "DAILY": "DAY",
    "WEEKLY": "WEEK",
    "MONTHLY": "MONTH",
    "YEARLY": "YEAR",
}
# ``recurrenceDow`` and ``recurrenceDowMaskList`` values, in ``date.weekday()`` order
WEEKDAY_VALUES: tuple[str, ...] = (
    "MONDAY",
    "TUESDAY",
    "WEDNESDAY",
    "THURSDAY",
    "FRIDAY",
    "SATURDAY",
    "SUNDAY",
)
# BYDAY week number -> ``recurrenceDowim``
ORDINAL_VALUES: dict[int, str] = {1: "FIRST", 2: "SECOND", 3: "THIRD", 4: "FOURTH", -1: "LAST"}

# --- limits -------------------------------------------------------------------------------

MAX_COUNT = 1000  # a COUNT above this is refused: its end date would cost too long a walk
LAST_MONTH_DAY = 28  # the last day every month has
MAX_INSTANCES = 5000  # instances expanded to find the end date and place the exclusions
CHECK_SPAN = timedelta(days=800)  # open-ended series: compared over two years of seasons
FAR = datetime(9000, 1, 1, tzinfo=UTC)  # "no window end" for series that end by themselves

ICAL_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
SUNDAY = 6
SUB_DAILY = frozenset({"HOURLY", "MINUTELY", "SECONDLY"})
UNSUPPORTED_PARTS = frozenset(
    {"BYSETPOS", "BYWEEKNO", "BYYEARDAY", "BYHOUR", "BYMINUTE", "BYSECOND"}
)
KNOWN_PARTS = frozenset({"INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "WKST"})
RULE_FREQUENCIES: dict[str, int] = {
    "DAILY": DAILY,
    "WEEKLY": WEEKLY,
    "MONTHLY": MONTHLY,
    "YEARLY": YEARLY,
}

_BYDAY = re.compile(r"([+-]?[0-9]{1,2})?(MO|TU|WE|TH|FR|SA|SU)")


@dataclass(frozen=True, slots=True)
class SeriesFields:
    """The recurrence of one series as NetSuite holds it.

    ``fields`` are the ``calendarEvent`` properties to add to the event body; ``excluded``
    the dates (sync zone) of the instances left out of the series: EXDATE'd, and those a
    RECURRENCE-ID override replaces or cancels. They also make ``exclusionDateList``.
    """

    fields: dict[str, Any]
    excluded: tuple[date, ...]


class _UnsupportedError(Exception):
    """NetSuite cannot hold this series; the message says why."""


def series_fields(
    master: Invitation, overrides: Sequence[Invitation], *, zone: tzinfo
) -> SeriesFields | str:
    """The NetSuite recurrence fields of ``master``, or why NetSuite cannot hold its rule.

    ``overrides`` are the RECURRENCE-ID VEVENTs of the series (others are ignored);
    ``zone`` is the sync zone, in which dates are given and floating times are read.
    """
    try:
        return _series_fields(master, overrides, zone)
    except _UnsupportedError as refusal:
        return str(refusal)
    except OverflowError as error:  # a date at the very end of the calendar
        return f"date out of range: {error}"


def _series_fields(
    master: Invitation, overrides: Sequence[Invitation], zone: tzinfo
) -> SeriesFields:
    start = master.start
    if start is None:
        raise _UnsupportedError("the series has no DTSTART")
    if master.recurrence_id is not None:
        raise _UnsupportedError("not a series master: it carries a RECURRENCE-ID")
    if master.rrule is None:
        raise _UnsupportedError("not a series: no RRULE")
    if master.rdates:
        raise _UnsupportedError("RDATE adds instances outside the rule; a NetSuite series cannot")
    rule = _parse(master.rrule)
    own_start = start.date() if isinstance(start, datetime) else start
    own_shape = _shape(rule, own_start)
    if not _on_rule(rule, start):
        raise _UnsupportedError(
            f"DTSTART ({start}) does not follow RRULE {rule.text}: a NetSuite series starts "
            "on an instance of its pattern"
        )
    plain, full = _expanded(master, overrides, start, rule, zone)
    days = [_day(occurrence.start, zone) for occurrence in plain.occurrences]
    shape = _in_zone(own_shape, rule, days[0], (days[0] - own_start).days, zone)
    _check(shape, rule, days, zone)
    excluded = _excluded(master, overrides, plain, full, zone)
    fields = _fields(shape, rule, days)
    fields["exclusionDateList"] = [day.isoformat() for day in excluded]
    return SeriesFields(fields, excluded)


# --- the rule ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    """An RRULE's parts, upper case; BYDAY as (week number or None, weekday index)."""

    text: str
    repeat: str  # the rule without COUNT and UNTIL
    frequency: str
    interval: int
    count: int | None
    until: str | None
    byday: tuple[tuple[int | None, int], ...]
    bymonthday: tuple[int, ...]
    bymonth: tuple[int, ...]


def _parse(text: str) -> _Rule:
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[len("RRULE:") :]
    parts: dict[str, str] = {}
    for item in body.split(";"):
        if not item.strip():
            continue
        name, _, value = item.partition("=")
        key = name.strip().upper()
        if key in parts:
            raise _UnsupportedError(f"RRULE {body}: {key} given twice")
        parts[key] = value.strip().upper()
    frequency = parts.pop("FREQ", "")
    if frequency in SUB_DAILY:
        raise _UnsupportedError(f"FREQ={frequency} repeats within a day")
    if frequency not in FREQUENCY_VALUES:
        raise _UnsupportedError(f"RRULE {body}: FREQ={frequency!r} is no frequency NetSuite knows")
    for key, value in parts.items():
        if key in UNSUPPORTED_PARTS:
            raise _UnsupportedError(f"{key}={value} has no NetSuite equivalent")
        if key not in KNOWN_PARTS:
            raise _UnsupportedError(f"RRULE part {key}={value} is not supported")
    count = _number("COUNT", parts["COUNT"], 1, None) if "COUNT" in parts else None
    if count is not None and count > MAX_COUNT:
        raise _UnsupportedError(
            f"COUNT={count}: more than {MAX_COUNT} instances (NetSuite series end by a date)"
        )
    if count is not None and "UNTIL" in parts:
        raise _UnsupportedError(f"RRULE {body}: COUNT and UNTIL together")
    wkst = parts.get("WKST", "MO")
    if wkst not in ICAL_WEEKDAYS:
        raise _UnsupportedError(f"WKST={wkst} is not a weekday")
    return _Rule(
        text=body,
        repeat=";".join(
            [f"FREQ={frequency}"]
            + [f"{key}={value}" for key, value in parts.items() if key not in ("COUNT", "UNTIL")]
        ),
        frequency=frequency,
        interval=_number("INTERVAL", parts.get("INTERVAL", "1"), 1, None),
        count=count,
        until=parts.get("UNTIL"),
        byday=_days(parts.get("BYDAY")),
        bymonthday=_numbers("BYMONTHDAY", parts.get("BYMONTHDAY"), -31, 31),
        bymonth=_numbers("BYMONTH", parts.get("BYMONTH"), 1, 12),
    )


def _number(name: str, text: str, low: int, high: int | None) -> int:
    digits = text.lstrip("+-")
    valid = digits.isascii() and digits.isdecimal()
    value = int(text) if valid else 0
    if not valid or value < low or (high is not None and value > high) or value == 0:
        raise _UnsupportedError(f"{name}={text} is out of range")
    return value


def _numbers(name: str, text: str | None, low: int, high: int) -> tuple[int, ...]:
    if text is None:
        return ()
    try:
        return tuple(_number(name, item.strip(), low, high) for item in text.split(","))
    except _UnsupportedError:
        raise _UnsupportedError(f"{name}={text} is out of range") from None


def _days(text: str | None) -> tuple[tuple[int | None, int], ...]:
    if text is None:
        return ()
    found: list[tuple[int | None, int]] = []
    for item in text.split(","):
        match = _BYDAY.fullmatch(item.strip())
        ordinal = int(match.group(1)) if match is not None and match.group(1) else None
        if match is None or ordinal == 0:
            raise _UnsupportedError(f"BYDAY={text} is not a list of weekdays")
        found.append((ordinal, ICAL_WEEKDAYS.index(match.group(2))))
    return tuple(found)


# --- the NetSuite pattern -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Shape:
    """The NetSuite pattern: its frequency (an iCalendar FREQ), weekdays (WEEKLY: the mask;
    MONTHLY by weekday: the one weekday) and week number (MONTHLY by weekday only)."""

    frequency: str
    weekdays: tuple[int, ...] = ()
    ordinal: int | None = None


def _shape(rule: _Rule, start: date) -> _Shape:
    """The pattern on the series' own calendar (before moving it to the sync zone)."""
    if rule.frequency == "DAILY":
        return _daily(rule)
    if rule.frequency == "WEEKLY":
        return _weekly(rule, start)
    if rule.frequency == "MONTHLY":
        return _monthly(rule)
    return _yearly(rule, start)


def _daily(rule: _Rule) -> _Shape:
    if rule.bymonth or rule.bymonthday:
        raise _UnsupportedError(f"{_by_text(rule)} with FREQ=DAILY has no NetSuite equivalent")
    if not rule.byday:
        return _Shape("DAILY")
    if rule.interval != 1:
        raise _UnsupportedError(
            f"BYDAY with FREQ=DAILY;INTERVAL={rule.interval} has no NetSuite equivalent"
        )
    return _weekly(rule, date.min)  # every day of those weekdays: a weekly mask


def _weekly(rule: _Rule, start: date) -> _Shape:
    if rule.bymonth or rule.bymonthday:
        raise _UnsupportedError(
            f"{_by_text(rule)} with FREQ={rule.frequency} has no NetSuite equivalent"
        )
    if any(ordinal is not None for ordinal, _ in rule.byday):
        raise _UnsupportedError(f"BYDAY={_byday_text(rule)}: week numbers need FREQ=MONTHLY")
    days = tuple(sorted({day for _, day in rule.byday} or {start.weekday()}))
    return _Shape("WEEKLY", weekdays=days)


def _monthly(rule: _Rule) -> _Shape:
    if rule.bymonth:
        raise _UnsupportedError(
            f"BYMONTH={_list(rule.bymonth)} with FREQ=MONTHLY has no NetSuite equivalent"
        )
    if rule.byday and rule.bymonthday:
        raise _UnsupportedError("BYDAY and BYMONTHDAY together have no NetSuite equivalent")
    if len(rule.bymonthday) > 1:
        raise _UnsupportedError(
            f"BYMONTHDAY={_list(rule.bymonthday)}: NetSuite repeats on one day a month"
        )
    if rule.bymonthday and not 1 <= rule.bymonthday[0] <= LAST_MONTH_DAY:
        raise _UnsupportedError(
            f"BYMONTHDAY={rule.bymonthday[0]}: NetSuite repeats monthly on days 1 to "
            f"{LAST_MONTH_DAY} only"
        )
    if not rule.byday:
        return _Shape("MONTHLY")
    if len(rule.byday) > 1:
        raise _UnsupportedError(
            f"BYDAY={_byday_text(rule)}: NetSuite repeats monthly on one weekday"
        )
    ordinal, weekday = rule.byday[0]
    if ordinal is None:
        raise _UnsupportedError(
            f"BYDAY={_byday_text(rule)} (every such weekday of the month) has no NetSuite "
            "equivalent"
        )
    if ordinal not in ORDINAL_VALUES:
        raise _UnsupportedError(
            f"BYDAY={_byday_text(rule)}: NetSuite knows the first to fourth and last weekday"
        )
    return _Shape("MONTHLY", weekdays=(weekday,), ordinal=ordinal)


def _yearly(rule: _Rule, start: date) -> _Shape:
    if rule.byday:
        raise _UnsupportedError(
            f"BYDAY={_byday_text(rule)} with FREQ=YEARLY has no NetSuite equivalent"
        )
    if rule.bymonth not in ((), (start.month,)):
        raise _UnsupportedError(
            f"BYMONTH={_list(rule.bymonth)} is not the month of DTSTART ({start})"
        )
    if rule.bymonthday not in ((), (start.day,)):
        raise _UnsupportedError(
            f"BYMONTHDAY={_list(rule.bymonthday)} is not the day of DTSTART ({start})"
        )
    return _Shape("YEARLY")


def _in_zone(shape: _Shape, rule: _Rule, first: date, shift: int, zone: tzinfo) -> _Shape:
    """The pattern on the sync zone's calendar, whose first date is ``first``, ``shift``
    days from DTSTART's date in its own zone."""
    if shape.frequency == "WEEKLY":
        days = tuple(sorted((day + shift) % 7 for day in shape.weekdays))
        if rule.interval > 1 and len(days) > 1 and SUNDAY in days:
            raise _UnsupportedError(
                f"{', '.join(WEEKDAY_VALUES[day] for day in days)} every {rule.interval} weeks: "
                "which week the Sunday belongs to depends on the week start, which NetSuite "
                "does not take"
            )
        return replace(shape, weekdays=days)
    if shape.frequency == "DAILY":
        return shape
    if shift:
        raise _UnsupportedError(
            f"the series starts on {first} in {_zone_name(zone)}, another date than in its "
            f"own zone: a {shape.frequency.lower()} rule cannot be moved across midnight"
        )
    if shape.frequency == "MONTHLY" and shape.ordinal is None and first.day > LAST_MONTH_DAY:
        raise _UnsupportedError(
            f"monthly on day {first.day}: NetSuite repeats on days 1 to {LAST_MONTH_DAY} only"
        )
    if shape.frequency == "YEARLY" and (first.month, first.day) == (2, 29):
        raise _UnsupportedError(
            "yearly on 29 February: NetSuite's handling of other years is unknown"
        )
    return shape


def _fields(shape: _Shape, rule: _Rule, days: list[date]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "frequency": FREQUENCY_VALUES[shape.frequency],
        "period": rule.interval,
        "seriesStartDate": days[0].isoformat(),
    }
    if shape.frequency == "WEEKLY":
        fields["recurrenceDowMaskList"] = [WEEKDAY_VALUES[day] for day in shape.weekdays]
    if shape.ordinal is not None:
        fields["recurrenceDowim"] = ORDINAL_VALUES[shape.ordinal]
        fields["recurrenceDow"] = WEEKDAY_VALUES[shape.weekdays[0]]
    bounded = rule.count is not None or rule.until is not None
    if bounded:
        fields["endByDate"] = days[-1].isoformat()
    fields["noEndDate"] = not bounded
    return fields


def _check(shape: _Shape, rule: _Rule, days: list[date], zone: tzinfo) -> None:
    """Refuses unless NetSuite's pattern from ``days[0]`` gives exactly ``days`` (the rule's
    instance dates in the sync zone, in order)."""
    pattern = _pattern_days(shape, rule, days[0], days[-1])
    if pattern == days:
        return
    index = next(
        i
        for i, (mine, theirs) in enumerate(zip([*days, None], [*pattern, None], strict=False))
        if mine != theirs
    )
    given = days[index] if index < len(days) else "nothing"
    expected = pattern[index] if index < len(pattern) else "nothing"
    where = f"after {days[index - 1]}" if index else "first"
    raise _UnsupportedError(
        f"in {_zone_name(zone)} the instance dates follow no NetSuite pattern: {where} "
        f"the rule gives {given}, the pattern {expected}"
    )


def _on_rule(rule: _Rule, start: datetime | date) -> bool:
    """Whether the rule itself gives DTSTART (RFC 5545 makes DTSTART the first instance
    even when it does not, which a NetSuite pattern cannot follow)."""
    if isinstance(start, datetime):
        wall = start.replace(tzinfo=None)
    else:
        wall = datetime.combine(start, time())
    try:
        first = next(iter(rrulestr(rule.repeat, dtstart=wall)), None)
    except (ValueError, TypeError):  # left to recurrence.expand to explain
        return True
    return bool(first == wall)


def _pattern_days(shape: _Shape, rule: _Rule, first: date, last: date) -> list[date]:
    """The dates NetSuite's pattern gives from ``first`` to ``last``, modelled as the
    iCalendar rule it stands for."""
    extra: dict[str, Any] = {}
    if shape.frequency == "WEEKLY":
        extra["byweekday"] = [weekdays[day] for day in shape.weekdays]
    elif shape.ordinal is not None:
        extra["byweekday"] = weekdays[shape.weekdays[0]](shape.ordinal)
    elif shape.frequency == "MONTHLY":
        extra["bymonthday"] = first.day
    elif shape.frequency == "YEARLY":
        extra["bymonth"], extra["bymonthday"] = first.month, first.day
    found = rrule(
        RULE_FREQUENCIES[shape.frequency],
        dtstart=datetime.combine(first, time()),
        interval=rule.interval,
        wkst=0,  # Monday; for the masks let through, Sunday would give the same weeks
        until=datetime.combine(last, time()),
        cache=False,
        **extra,
    )
    return [moment.date() for moment in found]


# --- the instances ------------------------------------------------------------------------


def _expanded(
    master: Invitation,
    overrides: Sequence[Invitation],
    start: datetime | date,
    rule: _Rule,
    zone: tzinfo,
) -> tuple[Expansion, Expansion]:
    """The rule's instances alone, and with EXDATE and overrides applied.

    A bounded series is expanded to its end (``max_instances`` COUNT + 1 for a COUNT), an
    open-ended one over ``CHECK_SPAN`` and as far as its last EXDATE or RECURRENCE-ID.
    """
    first = _instant(start, zone)
    window_start = first - timedelta(days=1)
    if rule.count is not None or rule.until is not None:
        window_end = max(FAR, first + timedelta(days=2))
    else:
        marks = [*master.exdates, *_recurrence_ids(master, overrides)]
        latest = max((_instant(mark, zone) for mark in marks), default=first)
        window_end = max(window_start + CHECK_SPAN, latest + timedelta(days=2))
    most = rule.count + 1 if rule.count is not None else MAX_INSTANCES
    plain_master = replace(master, exdates=(), rdates=())
    plain = expand(
        plain_master, (), window_start, window_end, floating_zone=zone, max_instances=most
    )
    if plain.problem is not None:
        raise _UnsupportedError(plain.problem)
    if not plain.occurrences:
        raise _UnsupportedError(f"RRULE {rule.text}: the series has no instance")
    if plain.truncated and rule.count is not None:
        raise _UnsupportedError(f"RRULE {rule.text}: the COUNT-th instance is out of reach")
    if plain.truncated and rule.until is not None:
        raise _UnsupportedError(
            f"RRULE {rule.text}: more than {MAX_INSTANCES} instances before UNTIL"
        )
    full = expand(
        master,
        overrides,
        window_start,
        window_end,
        floating_zone=zone,
        max_instances=most + len(overrides),
    )
    if full.problem is not None:
        raise _UnsupportedError(full.problem)
    return plain, full


def _excluded(
    master: Invitation,
    overrides: Sequence[Invitation],
    plain: Expansion,
    full: Expansion,
    zone: tzinfo,
) -> tuple[date, ...]:
    """The dates of the instances EXDATE removes or an override replaces, as placed by
    ``recurrence.expand`` (the same matching as occurrences mode)."""
    if plain.truncated:
        reach = _instant(plain.occurrences[-1].start, zone)
        for mark in [*master.exdates, *_recurrence_ids(master, overrides)]:
            if _instant(mark, zone) > reach:
                raise _UnsupportedError(
                    f"EXDATE or RECURRENCE-ID {mark} lies more than {MAX_INSTANCES} instances "
                    "after DTSTART"
                )
    kept = {
        instance_key(occurrence.recurrence_id)
        for occurrence in full.occurrences
        if occurrence.override is None
    }
    found = {
        _day(occurrence.start, zone)
        for occurrence in plain.occurrences
        if instance_key(occurrence.recurrence_id) not in kept
    }
    return tuple(sorted(found))


def _recurrence_ids(master: Invitation, overrides: Sequence[Invitation]) -> list[datetime | date]:
    return [
        override.recurrence_id
        for override in overrides
        if override.recurrence_id is not None and override.uid == master.uid
    ]


# --- small helpers ----------------------------------------------------------------------


def _day(value: datetime | date, zone: tzinfo) -> date:
    """The date of an instance start in the sync zone (a naive one is already there)."""
    if isinstance(value, datetime):
        return value.astimezone(zone).date() if value.tzinfo is not None else value.date()
    return value


def _instant(value: datetime | date, zone: tzinfo) -> datetime:
    """A value as an instant in UTC: naive values and dates are read in ``zone``."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=zone)
    else:
        aware = datetime.combine(value, time(), tzinfo=zone)
    return aware.astimezone(UTC)


def _zone_name(zone: tzinfo) -> str:
    return str(getattr(zone, "key", None) or zone)


def _list(values: tuple[int, ...]) -> str:
    return ",".join(str(value) for value in values)


def _byday_text(rule: _Rule) -> str:
    return ",".join(
        f"{'' if ordinal is None else ordinal}{ICAL_WEEKDAYS[day]}" for ordinal, day in rule.byday
    )


def _by_text(rule: _Rule) -> str:
    return " and ".join(
        f"{name}={_list(values)}"
        for name, values in (("BYMONTH", rule.bymonth), ("BYMONTHDAY", rule.bymonthday))
        if values
    )

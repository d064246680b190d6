"""Occurrences of a recurring event inside a window (event-sync-spec.md section 7).

In *occurrences* mode every instance of a series that starts inside the sync horizon becomes
its own NetSuite event. This module lists those instances: RRULE (read by dateutil) plus
RDATE, minus EXDATE, with the RECURRENCE-ID overrides put in place of the instances they
replace. It is pure: the window is passed in, nothing is read from the clock.

Conventions (those of ``Invitation``):

* a *timed* series repeats on the wall clock of its DTSTART zone, so a weekly 09:00
  Europe/Berlin meeting stays at 09:00 across daylight-saving changes; a floating series
  (naive DTSTART) repeats on the wall clock of ``floating_zone``;
* an *all-day* series repeats dates;
* an instance is identified by its original start: an aware UTC instant for timed series,
  a date for all-day ones. Overrides, EXDATEs and RDATEs are matched by that value, never by
  the text they were written with.

RFC 5545 section 3.8.5.3: DTSTART is always the first instance and counts towards COUNT,
even when it does not match the rule.
"""

from __future__ import annotations

from calendar import isleap
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import islice
from typing import Any

from dateutil.rrule import rrulestr

from mailbot.core.model import Invitation, Method

Point = datetime | date  # an instance's identity: aware UTC (timed) or a date (all-day)

STEP_ALLOWANCE = 10_000  # rule steps allowed beyond max_instances * STEP_FACTOR
STEP_FACTOR = 4
REACH_LIMIT = timedelta(days=400)  # how far past the window a RECURRENCE-ID is looked for

# dateutil stops a rule that yields nothing more only after the year 9999: a rule that never
# matches (FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30) is walked day by day until then, seconds of
# work. So the rule is walked on its dates moved by as many years as keep every weekday and
# leap day (the calendar repeats itself every 400 years, and nearby years often match too),
# to just before 9999, where dateutil gives up soon after the horizon.
LAST_YEAR = 9999
GREGORIAN_CYCLE = 400
NEAR_YEARS = 100  # a walk over more years is moved by whole 400-year cycles only


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One instance of a series, as it will be written.

    ``recurrence_id`` is the instance's original start (aware UTC for timed series, a date
    for all-day ones); ``start``/``end`` are where it actually is: the generated values (of
    the same kind as the master's start) or the override's own.
    """

    recurrence_id: datetime | date
    start: datetime | date
    end: datetime | date
    override: Invitation | None
    cancelled: bool


@dataclass(frozen=True, slots=True)
class Expansion:
    """The occurrences inside a window, ordered by recurrence_id.

    ``truncated`` tells that the list is incomplete: more instances fell in the window than
    ``max_instances``, or the rule needed more steps than allowed to reach the window's end.
    ``problem`` tells why the series cannot be expanded (``occurrences`` is then empty).
    """

    occurrences: tuple[Occurrence, ...]
    truncated: bool = False
    problem: str | None = None


def instance_key(recurrence_id: datetime | date) -> str:
    """Canonical text of an instance: ``20260310T090000Z`` (timed) or ``20260310`` (all-day).

    An aware value is written in UTC; a naive one (floating) without the ``Z``.
    """
    if isinstance(recurrence_id, datetime):
        moment = recurrence_id
        suffix = ""
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
            suffix = "Z"
        day = _date_text(moment.date())
        return f"{day}T{moment.hour:02d}{moment.minute:02d}{moment.second:02d}{suffix}"
    return _date_text(recurrence_id)


def expand(
    master: Invitation,
    overrides: Sequence[Invitation],
    window_start: datetime,
    window_end: datetime,
    *,
    floating_zone: tzinfo,
    max_instances: int = 500,
) -> Expansion:
    """The occurrences of ``master`` whose (actual) start lies in [window_start, window_end).

    Timed starts are compared as instants; all-day dates with the window's dates in
    ``floating_zone`` (``window_start`` date included, ``window_end`` date excluded).
    ``overrides`` are the RECURRENCE-ID VEVENTs of the same UID; others are ignored. An
    override is listed, in place of the instance it replaces, when its own start is in the
    window, also when its RECURRENCE-ID is no instance of the rule; an override of an
    EXDATE'd instance is not listed. The rule is walked at most
    ``max_instances * 4 + 10000`` steps.
    """
    if window_start.tzinfo is None or window_end.tzinfo is None:
        raise ValueError("the window bounds must be timezone-aware")
    if max_instances < 0:
        raise ValueError("max_instances must not be negative")
    try:
        return _expand(
            master, overrides, _window(window_start, window_end, floating_zone), max_instances
        )
    except OverflowError as error:  # a date-time at the very end of the calendar
        return Expansion((), problem=f"date out of range: {error}")


def _expand(
    master: Invitation, overrides: Sequence[Invitation], window: _Window, max_instances: int
) -> Expansion:
    problem_or_series = _series(master, window.floating_zone)
    if isinstance(problem_or_series, str):
        return Expansion((), problem=problem_or_series)
    series = problem_or_series
    mine = [o for o in overrides if o.recurrence_id is not None and o.uid == master.uid]
    # instances past the window are only needed to place an override's RECURRENCE-ID
    latest = max((series.reach(o.recurrence_id) for o in mine), default=window.end)
    horizon = max(window.end, min(latest, window.end + REACH_LIMIT))
    bounds = _Bounds(
        window=window,
        horizon=horizon,
        budget=max_instances * STEP_FACTOR + STEP_ALLOWANCE,
        # past this many instances inside the window, truncation is certain whatever the
        # overrides move out and the EXDATEs remove
        stop_after=max_instances + len(mine) + len(master.exdates),
    )
    walked = _walk(master, series, bounds)
    if isinstance(walked, str):
        return Expansion((), problem=walked)
    instances = _instances(series, walked.walls, master.rdates)
    days = _days(instances)
    excluded = _excluded(series, instances, days, master.exdates)
    replaced = _by_point(series, instances, days, mine)
    occurrences = _occurrences(series, window, instances, excluded, replaced)
    occurrences.sort(key=lambda occurrence: instance_key(occurrence.recurrence_id))
    truncated = walked.incomplete or len(occurrences) > max_instances
    return Expansion(tuple(occurrences[:max_instances]), truncated=truncated)


# --- the series -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Series:
    """How one series' instances are placed: a wall clock (naive) in ``zone``.

    Timed: ``zone`` is DTSTART's zone (``floating_zone`` for a floating series), ``length``
    the exact duration (RFC 5545: the same exact duration for every instance). All-day: the
    wall clock is midnight, ``zone`` the floating zone, ``length`` whole days.
    """

    all_day: bool
    floating: bool
    zone: tzinfo
    floating_zone: tzinfo
    first: datetime
    length: timedelta

    def instant(self, wall: datetime) -> datetime:
        """The UTC instant of a wall-clock value (skipped times read with the earlier offset)."""
        return wall.replace(tzinfo=self.zone).astimezone(UTC)

    def point(self, wall: datetime) -> Point:
        return wall.date() if self.all_day else self.instant(wall)

    def start(self, wall: datetime) -> datetime | date:
        if self.all_day:
            return wall.date()
        if self.floating:
            return wall
        return self.instant(wall).astimezone(self.zone)

    def end(self, wall: datetime) -> datetime | date:
        if self.all_day:
            return wall.date() + self.length
        if self.floating:
            return wall + self.length
        return (self.instant(wall) + self.length).astimezone(self.zone)

    def wall_of(self, value: datetime | date) -> datetime:
        """A DATE or DATE-TIME value (RDATE, RECURRENCE-ID) on this series' wall clock."""
        if self.all_day:
            return datetime.combine(_day_of(value, self.zone), time())
        if not isinstance(value, datetime):
            return datetime.combine(value, self.first.time())
        if value.tzinfo is None:
            return value
        return value.astimezone(self.zone).replace(tzinfo=None)

    def reach(self, recurrence_id: datetime | date | None) -> datetime:
        """An instant past which no instance can carry ``recurrence_id``."""
        try:
            if recurrence_id is None:
                return datetime.min.replace(tzinfo=UTC)
            if isinstance(recurrence_id, datetime) and recurrence_id.tzinfo is not None:
                return recurrence_id.astimezone(UTC) + timedelta(days=2)
            day = recurrence_id.date() if isinstance(recurrence_id, datetime) else recurrence_id
            return _midnight_after(day, self.zone)
        except OverflowError:
            return datetime.max.replace(tzinfo=UTC)


def _series(master: Invitation, floating_zone: tzinfo) -> _Series | str:
    start, end = master.start, master.end
    if start is None:
        return "the series has no DTSTART"
    if master.recurrence_id is not None:
        return "not a series master: it carries a RECURRENCE-ID"
    if not isinstance(start, datetime):
        length = timedelta(days=1)
        if isinstance(end, date) and not isinstance(end, datetime) and end >= start:
            length = end - start
        first = datetime.combine(start, time())
        return _Series(True, False, floating_zone, floating_zone, first, length)
    zone = start.tzinfo if start.tzinfo is not None else floating_zone
    return _Series(
        all_day=False,
        floating=start.tzinfo is None,
        zone=zone,
        floating_zone=floating_zone,
        first=start.replace(tzinfo=None),
        length=_timed_length(start, end, floating_zone),
    )


def _timed_length(start: datetime, end: datetime | date | None, floating_zone: tzinfo) -> timedelta:
    if not isinstance(end, datetime):
        return timedelta(0)
    if (start.tzinfo is None) and (end.tzinfo is None):
        length = end - start
    else:
        length = _aware(end, floating_zone) - _aware(start, floating_zone)
    return max(length, timedelta(0))


def _aware(moment: datetime, zone: tzinfo) -> datetime:
    """An instant in UTC; a naive (floating) value is read in ``zone``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


# --- the window -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Window:
    start: datetime
    end: datetime
    floating_zone: tzinfo
    first_day: date  # the window's dates in floating_zone, end excluded
    end_day: date

    def holds(self, value: datetime | date) -> bool:
        """Whether an actual start lies in the window (a naive one read in floating_zone)."""
        if isinstance(value, datetime):
            return self.start <= _aware(value, self.floating_zone) < self.end
        return self.first_day <= value < self.end_day


def _window(start: datetime, end: datetime, floating_zone: tzinfo) -> _Window:
    return _Window(
        start=start.astimezone(UTC),
        end=end.astimezone(UTC),
        floating_zone=floating_zone,
        first_day=start.astimezone(floating_zone).date(),
        end_day=end.astimezone(floating_zone).date(),
    )


# --- the rule ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    """The RRULE minus COUNT and UNTIL, which are applied here (dateutil cannot mix a naive
    DTSTART with a UTC UNTIL, and its COUNT would not count an unsynchronised DTSTART)."""

    text: str
    count: int | None
    until: Callable[[datetime], bool] | None


def _rule(master: Invitation, series: _Series) -> _Rule | str:
    text = (master.rrule or "").strip()
    if text.upper().startswith("RRULE:"):
        text = text[len("RRULE:") :]
    kept: list[str] = []
    count: int | None = None
    until: Callable[[datetime], bool] | None = None
    for item in text.split(";"):
        name, _, value = item.partition("=")
        key = name.strip().upper()
        if key == "COUNT":
            if not (value.strip().isascii() and value.strip().isdecimal()):
                return f"RRULE {master.rrule}: COUNT {value!r} is not a number"
            count = int(value)
        elif key == "UNTIL":
            until = _until(value.strip(), series)
            if until is None:
                return f"RRULE {master.rrule}: UNTIL {value!r} is not a date or date-time"
        elif item.strip():
            kept.append(item.strip())
    return _Rule(";".join(kept), count, until)


def _until(text: str, series: _Series) -> Callable[[datetime], bool] | None:
    """A test that a wall-clock instance is not after UNTIL, whatever UNTIL's kind.

    UTC: compared as instants (an all-day instance starts at midnight of ``floating_zone``);
    floating: on the series' wall clock; a date: the whole date is included.
    """
    utc = text.upper().endswith("Z")
    digits = text[:-1] if utc else text
    if len(digits) == 15 and digits[8] in "Tt":
        digits = digits[:8] + digits[9:]
    elif len(digits) != 8 or utc:
        return None
    if not (digits.isascii() and digits.isdecimal()):
        return None
    year, month, day = int(digits[:4]), int(digits[4:6]), int(digits[6:8])
    try:
        if len(digits) == 8:
            last_day = date(year, month, day)
            return lambda wall: wall.date() <= last_day
        hour, minute, second = int(digits[8:10]), int(digits[10:12]), int(digits[12:14])
        moment = datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    if not utc:
        return lambda wall: wall <= moment
    limit = moment.replace(tzinfo=UTC)
    return lambda wall: series.instant(wall) <= limit


@dataclass(frozen=True, slots=True)
class _Walked:
    walls: list[datetime]  # wall-clock instances from DTSTART up to the horizon
    incomplete: bool  # stopped short of the window's end (budget spent, or too many inside)
    empty: bool  # the rule itself yields nothing at all


@dataclass(frozen=True, slots=True)
class _Bounds:
    window: _Window
    horizon: datetime  # no instance needed from here on (window end, latest RECURRENCE-ID)
    budget: int  # rule steps allowed
    stop_after: int  # instances inside the window that prove truncation


def _walk(master: Invitation, series: _Series, bounds: _Bounds) -> _Walked | str:
    """The RRULE's instances (DTSTART first) before ``horizon``, or why there are none."""
    if master.rrule is None:
        return _Walked([series.first], incomplete=False, empty=False)
    parsed = _rule(master, series)
    if isinstance(parsed, str):
        return parsed
    last_year = max(series.first.year, bounds.horizon.year)
    years = _cycle_shift(series.first.year, last_year)
    try:
        rule = rrulestr(parsed.text, dtstart=_moved(series.first, years), cache=False)
        values = _moved_back(rule, years, last_year)
        walked = _take(series, parsed, _steps(series.first, values, bounds.budget), bounds)
    except Exception as error:  # noqa: BLE001 - dateutil raises many kinds on hostile rules
        return f"RRULE {master.rrule}: {error}"
    if walked.empty and not master.rdates:
        return f"RRULE {master.rrule}: yields no instance"
    if walked.empty:  # RFC 5545: DTSTART is an instance whatever the rule says
        return _Walked([series.first], incomplete=False, empty=True)
    return walked


def _cycle_shift(first_year: int, last_year: int) -> int:
    """Years to add to every date walked from ``first_year`` to ``last_year`` (the horizon's)
    so that the walk ends close to the year 9999 on an exact copy of the calendar (see
    LAST_YEAR); the copy holds from the year before the first to the year after the last."""
    room = LAST_YEAR - 1 - last_year  # the year after the walk stays a real year
    if room <= 0:
        return 0
    gregorian = room // GREGORIAN_CYCLE * GREGORIAN_CYCLE  # always an exact copy
    years = range(max(first_year - 1, 1), last_year + 2)  # ISO weeks look at the years around
    if len(years) > NEAR_YEARS:
        return gregorian
    return next((shift for shift in range(room, gregorian, -1) if _same(years, shift)), gregorian)


def _same(years: range, shift: int) -> bool:
    """Whether these years, moved by ``shift``, have the same weekdays and leap days."""
    first = years[0]
    if (date(first + shift, 1, 1) - date(first, 1, 1)).days % 7:
        return False
    return all(isleap(year) == isleap(year + shift) for year in years)


def _moved_back(values: Iterable[datetime], years: int, last_year: int) -> Iterator[datetime]:
    """The values of a rule walked ``years`` later, on their own dates. Past the years the
    copy holds for, which are past the horizon, one date a year later stands for the rest.
    A rule with no value before the year 9999 on the moved dates has none up to the year
    after the horizon: it is taken as yielding none (a rule whose first instance lies years
    after DTSTART and the horizon has no occurrence to write either way)."""
    for value in values:
        if value.year - years > last_year + 1:
            yield datetime(last_year + 2, 1, 1)
            return
        yield _moved(value, -years)


def _moved(wall: datetime, years: int) -> datetime:
    return wall.replace(year=wall.year + years) if years else wall


def _steps(first: datetime, rule: Iterable[Any], budget: int) -> Iterator[tuple[datetime, int]]:
    """The rule's values with the number of rule steps taken so far; DTSTART comes first
    even when the rule does not produce it (it then costs no step)."""
    for taken, value in enumerate(islice(rule, budget), start=1):
        if taken == 1 and value != first:
            yield first, 0
        yield value, taken


def _take(
    series: _Series, rule: _Rule, steps: Iterator[tuple[datetime, int]], bounds: _Bounds
) -> _Walked:
    """Instances until COUNT, UNTIL or the horizon; or until more than ``stop_after`` lie in
    the window (the list is then known to be truncated) or the step budget is spent."""
    walls: list[datetime] = []
    inside = 0
    steps_taken = 0
    for wall, step in steps:
        steps_taken = step
        if _past_end(rule, series, wall, len(walls), bounds.horizon):
            return _Walked(walls, incomplete=False, empty=False)
        walls.append(wall)
        if bounds.window.holds(series.start(wall)):
            inside += 1
            if inside > bounds.stop_after:
                return _Walked(walls, incomplete=True, empty=False)
    if steps_taken == 0:
        return _Walked([], incomplete=False, empty=True)
    spent = steps_taken >= bounds.budget and series.instant(walls[-1]) < bounds.window.end
    return _Walked(walls, incomplete=spent, empty=False)


def _past_end(rule: _Rule, series: _Series, wall: datetime, found: int, horizon: datetime) -> bool:
    if rule.count is not None and found >= rule.count:
        return True
    if rule.until is not None and not rule.until(wall):
        return True
    return series.instant(wall) >= horizon


# --- RDATE, EXDATE, overrides -----------------------------------------------------------


def _instances(
    series: _Series, walls: list[datetime], rdates: Sequence[datetime | date]
) -> dict[Point, datetime]:
    found: dict[Point, datetime] = {}
    for wall in [*walls, *(series.wall_of(value) for value in rdates)]:
        found.setdefault(series.point(wall), wall)
    return found


def _days(instances: dict[Point, datetime]) -> dict[date, list[Point]]:
    """The instances by the date of their wall clock, for an EXDATE or a RECURRENCE-ID
    written as a DATE (one look-up each: a message may hold many thousands of both)."""
    found: dict[date, list[Point]] = {}
    for point, wall in instances.items():
        found.setdefault(wall.date(), []).append(point)
    return found


def _excluded(
    series: _Series,
    instances: dict[Point, datetime],
    days: dict[date, list[Point]],
    exdates: Sequence[datetime | date],
) -> set[Point]:
    """The instances EXDATE removes (a DATE removes every instance of a timed series that
    day, in the series' zone)."""
    excluded: set[Point] = set()
    for value in exdates:
        if not series.all_day and not isinstance(value, datetime):
            excluded.update(days.get(value, ()))
        else:
            excluded.add(_resolve(series, instances, days, value))
    return excluded


def _by_point(
    series: _Series,
    instances: dict[Point, datetime],
    days: dict[date, list[Point]],
    overrides: list[Invitation],
) -> dict[Point, Invitation]:
    """Overrides by the instance they replace; of two for one instance, the later version."""
    chosen: dict[Point, Invitation] = {}
    for override in overrides:
        if override.recurrence_id is None:
            continue
        point = _resolve(series, instances, days, override.recurrence_id)
        current = chosen.get(point)
        if current is None or _version(override) > _version(current):
            chosen[point] = override
    return chosen


def _version(invitation: Invitation) -> tuple[int, datetime]:
    stamp = invitation.dtstamp
    return invitation.sequence, _aware(stamp, UTC) if stamp else datetime.min.replace(tzinfo=UTC)


def _resolve(
    series: _Series,
    instances: dict[Point, datetime],
    days: dict[date, list[Point]],
    value: datetime | date,
) -> Point:
    """The instance a RECURRENCE-ID or EXDATE designates (or the point it would have)."""
    if series.all_day:
        if not isinstance(value, datetime):
            return value
        if value.tzinfo is None:
            return value.date()
        candidates = _day_candidates(value, series.zone)
        return next((day for day in candidates if day in instances), candidates[0])
    if isinstance(value, datetime):
        return _aware(value, series.zone)
    same_day = sorted(days.get(value, ()), key=instance_key)
    return same_day[0] if same_day else series.point(series.wall_of(value))


def _day_of(value: datetime | date, zone: tzinfo) -> date:
    """The date a DATE or DATE-TIME stands for in an all-day series (no instance to match)."""
    if not isinstance(value, datetime):
        return value
    return value.date() if value.tzinfo is None else _day_candidates(value, zone)[0]


def _day_candidates(moment: datetime, zone: tzinfo) -> list[date]:
    """Dates a DATE-TIME may stand for in an all-day series, most likely first.

    Exchange writes the RECURRENCE-ID of an all-day instance as midnight of the organizer's
    zone, which UTC places on the day before in zones east of Greenwich. Midnight in the
    floating zone is taken as meant; otherwise the nearest UTC midnight, then the local and
    UTC dates and the day after the UTC date (zones past UTC+12).
    """
    local = moment.astimezone(zone)
    utc = moment.astimezone(UTC)
    found: list[date] = [local.date()] if local.time() == time() else []
    for day in (
        (utc + timedelta(hours=12)).date(),
        local.date(),
        utc.date(),
        utc.date() + timedelta(days=1),
    ):
        if day not in found:
            found.append(day)
    return found


def _occurrences(
    series: _Series,
    window: _Window,
    instances: dict[Point, datetime],
    excluded: set[Point],
    overrides: dict[Point, Invitation],
) -> list[Occurrence]:
    listed: list[Occurrence] = []
    for point, wall in instances.items():
        if point in excluded or point in overrides:
            continue
        start = series.start(wall)
        if window.holds(start):
            listed.append(Occurrence(point, start, series.end(wall), None, cancelled=False))
    for point, override in overrides.items():
        if point in excluded:
            continue
        wall = instances.get(point) or _wall_of_point(series, point)
        start, end = series.start(wall), series.end(wall)  # a CANCEL may carry no DTSTART
        if override.start is not None:
            start = override.start
            end = override.end if override.end is not None else override.start
        if window.holds(start):
            cancelled = override.status == "CANCELLED" or override.method is Method.CANCEL
            listed.append(Occurrence(point, start, end, override, cancelled=cancelled))
    return listed


def _wall_of_point(series: _Series, point: Point) -> datetime:
    if isinstance(point, datetime):
        return point.astimezone(series.zone).replace(tzinfo=None)
    return datetime.combine(point, time())


# --- small helpers ----------------------------------------------------------------------


def _midnight_after(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day + timedelta(days=2), time(), tzinfo=zone).astimezone(UTC)


def _date_text(day: date) -> str:
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"

"""iCalendar text to Invitation values: the only module that imports icalendar.

One Invitation per VEVENT, with the scheduling method resolved, times resolved to real
time zones (or left floating for the rules to place in the sync zone), attendees with
normalised addresses. Anything that cannot become an Invitation becomes a BrokenComponent
with its reason: this module never raises on bad data.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import icalendar

from mailbot.core.mime import normalize_address
from mailbot.core.model import (
    Attendee,
    BrokenComponent,
    CalendarPart,
    Invitation,
    Method,
    Organizer,
    Reason,
    ZoneChoice,
)
from mailbot.core.policy import Limits
from mailbot.core.timezones import ResolvedZone, ZoneDefinition, resolve_zone
from mailbot.core.vtimezone import Observance, check_observance_rule, observed_zone

UNSUPPORTED_COMPONENTS = ("VTODO", "VJOURNAL", "VFREEBUSY")
KNOWN_METHODS = frozenset(method.value for method in Method)
# RFC 5546 section 3.2: DTSTART is "0 or 1" in these (and absent from REFRESH)
DTSTART_OPTIONAL = frozenset({Method.CANCEL, Method.REPLY, Method.REFRESH, Method.DECLINECOUNTER})

Component = Any  # icalendar components are untyped
T = TypeVar("T")


class InvalidEventError(ValueError):
    """Raised inside this module only: the VEVENT at hand cannot become an Invitation."""


class EventTooLargeError(InvalidEventError):
    """Raised inside this module only: the VEVENT at hand is over a configured limit."""


@dataclass(frozen=True, slots=True)
class MethodChoice:
    method: str
    note: str | None


@dataclass(frozen=True, slots=True)
class _Context:
    """What every VEVENT of one calendar object shares."""

    method: Method
    zones: dict[str, ZoneDefinition]
    floating_zone: ResolvedZone | None
    limits: Limits
    notes: tuple[str, ...]
    repairs: list[str] = field(default_factory=list)


def read_part(part: CalendarPart, limits: Limits) -> list[Invitation | BrokenComponent]:
    """Every calendar object of one calendar part, as Invitations or BrokenComponents."""
    try:
        calendars = icalendar.Calendar.from_ical(part.data, multiple=True)
    except Exception as error:  # noqa: BLE001 - icalendar raises many kinds on malformed input
        return [BrokenComponent(Reason.INVALID_CALENDAR, f"unreadable iCalendar: {error!r}")]
    results: list[Invitation | BrokenComponent] = []
    for calendar in calendars:
        results.extend(_read_calendar(calendar, part.method_param, limits))
    if not results:
        results.append(BrokenComponent(Reason.INVALID_CALENDAR, "no VCALENDAR with any component"))
    return results


def resolve_method(param: str | None, body: str | None) -> MethodChoice:
    """The documented rule: the iCalendar METHOD wins over the Content-Type parameter."""
    if param and body and param != body:
        return MethodChoice(body, f"Content-Type says method={param}, the iCalendar {body}")
    if body or param:
        return MethodChoice(body or param or "", None)
    return MethodChoice(Method.REQUEST.value, "no METHOD anywhere: treated as REQUEST")


def _read_calendar(
    calendar: Component, method_param: str | None, limits: Limits
) -> list[Invitation | BrokenComponent]:
    body_method = _text(calendar.get("METHOD")).upper() or None
    choice = resolve_method(method_param, body_method)
    events = [c for c in calendar.subcomponents if c.name == "VEVENT"]
    if not events:
        return _without_events(calendar, choice.method)
    if choice.method not in KNOWN_METHODS:
        return [_broken(e, Reason.UNSUPPORTED_METHOD, f"method {choice.method!r}") for e in events]
    try:
        context = _context(calendar, Method(choice.method), limits, choice.note)
    except InvalidEventError as error:
        return [_broken(event, Reason.INVALID_CALENDAR, str(error)) for event in events]
    return [_read_event(event, context) for event in events]


def _without_events(calendar: Component, method: str) -> list[Invitation | BrokenComponent]:
    others = sorted({c.name for c in calendar.subcomponents if c.name in UNSUPPORTED_COMPONENTS})
    if others:
        detail = f"only {', '.join(others)}: not an event"
        return [BrokenComponent(Reason.UNSUPPORTED_METHOD, detail, method=method)]
    return []


def _context(calendar: Component, method: Method, limits: Limits, note: str | None) -> _Context:
    zones = _zone_definitions(calendar)
    floating_name = _text(calendar.get("X-WR-TIMEZONE"))
    floating_zone = None
    if floating_name:
        resolved = resolve_zone(floating_name, zones.get(floating_name))
        if not isinstance(resolved, ResolvedZone):
            raise InvalidEventError(f"X-WR-TIMEZONE: {resolved.detail}")
        floating_zone = resolved
    return _Context(method, zones, floating_zone, limits, (note,) if note else ())


def _zone_definitions(calendar: Component) -> dict[str, ZoneDefinition]:
    definitions: dict[str, ZoneDefinition] = {}
    for vtimezone in calendar.walk("VTIMEZONE"):
        tzid = _text(vtimezone.get("TZID"))
        location = _text(vtimezone.get("X-LIC-LOCATION")) or None
        definitions[tzid] = ZoneDefinition(tzid, zone_rules(vtimezone), location)
    return definitions


def zone_rules(vtimezone: Component) -> tzinfo | None:
    """The VTIMEZONE's own rules; None when an observance cannot be read."""
    try:
        observances = tuple(
            _observance(component)
            for component in vtimezone.subcomponents
            if component.name in ("STANDARD", "DAYLIGHT")
        )
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, OverflowError):
        return None
    return observed_zone(_text(vtimezone.get("TZID")), observances)


def _observance(component: Component) -> Observance:
    start = component.get("DTSTART").dt
    if not isinstance(start, datetime):
        raise ValueError("observance DTSTART is not a date-time")
    rdates = tuple(
        item.dt.replace(tzinfo=None)
        for prop in _as_list(component.get("RDATE"))
        for item in prop.dts
        if isinstance(item.dt, datetime)
    )
    rule = _rrule(component)
    if rule is not None:
        check_observance_rule(rule)
    return Observance(
        start=start.replace(tzinfo=None),
        offset_from=component.get("TZOFFSETFROM").td,
        offset_to=component.get("TZOFFSETTO").td,
        rrule=rule,
        rdates=rdates,
        name=_text(component.get("TZNAME")),
        daylight=component.name == "DAYLIGHT",
    )


# --- one VEVENT --------------------------------------------------------------------------


def _read_event(event: Component, shared: _Context) -> Invitation | BrokenComponent:
    context = replace(shared, repairs=[])
    try:
        return _invitation(event, context)
    except EventTooLargeError as error:
        return _broken(event, Reason.TOO_LARGE, str(error), context.method.value)
    except InvalidEventError as error:
        broken = _broken(event, Reason.INVALID_CALENDAR, str(error), context.method.value)
        return replace(broken, readable=_salvage(event, replace(shared, repairs=[])))


def _salvage(event: Component, context: _Context) -> Invitation:
    """What can still be read of a VEVENT that cannot be synced, for the admin's report."""
    unreadable: tuple[datetime | date | None, ZoneChoice | None] = (None, None)
    start, zone = _attempt(lambda: _start(event, context), unreadable)
    end = _attempt(lambda: _end(event, start, context), None) if start is not None else None
    tzid = _tzid(event.get("DTSTART"))
    if zone is None and tzid is not None:
        zone = ZoneChoice(tzid, "", "unresolved")
    return Invitation(
        method=context.method,
        uid=_text(event.get("UID")),
        start=start,
        end=end,
        all_day=start is not None and not isinstance(start, datetime),
        sequence=_sequence(event),
        dtstamp=_dtstamp(event, context),
        recurrence_id=_attempt(lambda: _recurrence_id(event, context), None),
        rrule=_attempt(lambda: _rrule(event), None),
        summary=_raw_text(event.get("SUMMARY")),
        organizer=_organizer(event.get("ORGANIZER")),
        attendees=_attendees(event),
        attach_count=len(_as_list(event.get("ATTACH"))),
        zone=zone,
    )


def _attempt(read: Callable[[], T], fallback: T) -> T:
    try:
        return read()
    except InvalidEventError:
        return fallback


def _invitation(event: Component, context: _Context) -> Invitation:
    uid = _text(event.get("UID"))
    if not uid:
        raise InvalidEventError("VEVENT without UID")
    start, zone = _start(event, context)
    end = _end(event, start, context) if start is not None else None
    attendees = _attendees(event)
    if len(attendees) > context.limits.max_attendees:
        raise EventTooLargeError(f"{len(attendees)} attendees > {context.limits.max_attendees}")
    return Invitation(
        method=context.method,
        uid=uid,
        start=start,
        end=end,
        all_day=start is not None and not isinstance(start, datetime),
        sequence=_sequence(event),
        dtstamp=_dtstamp(event, context),
        recurrence_id=_recurrence_id(event, context),
        rrule=_rrule(event),
        rdates=_date_list(event, "RDATE"),
        exdates=_date_list(event, "EXDATE"),
        status=_text(event.get("STATUS")).upper() or None,
        klass=_text(event.get("CLASS")).upper() or None,
        summary=_raw_text(event.get("SUMMARY")),
        description=_raw_text(event.get("DESCRIPTION")),
        location=_raw_text(event.get("LOCATION")),
        organizer=_organizer(event.get("ORGANIZER")),
        attendees=attendees,
        attach_count=len(_as_list(event.get("ATTACH"))),
        zone=zone,
        notes=context.notes + tuple(context.repairs),
    )


def _broken(
    event: Component, reason: Reason, detail: str, method: str | None = None
) -> BrokenComponent:
    return BrokenComponent(reason, detail, uid=_text(event.get("UID")) or None, method=method)


def _start(event: Component, context: _Context) -> tuple[datetime | date | None, ZoneChoice | None]:
    prop = event.get("DTSTART")
    if prop is None and context.method in DTSTART_OPTIONAL:
        return None, None
    if prop is None:
        raise InvalidEventError("VEVENT without DTSTART")
    return _moment(prop, "DTSTART", context)


def _end(event: Component, start: datetime | date, context: _Context) -> datetime | date:
    if event.get("DTEND") is not None:
        end, _ = _moment(event.get("DTEND"), "DTEND", context)
    elif event.get("DURATION") is not None:
        end = start + _duration(event.get("DURATION"))
    else:
        end = start if isinstance(start, datetime) else start + timedelta(days=1)
    _check_order(start, end)
    return end


def _check_order(start: datetime | date, end: datetime | date) -> None:
    if isinstance(start, datetime) != isinstance(end, datetime):
        raise InvalidEventError("DTSTART and DTEND mix a date with a date-time")
    if isinstance(start, datetime) and isinstance(end, datetime):
        if (start.tzinfo is None) != (end.tzinfo is None):
            return  # floating one side: the rules place both in the sync zone
        if end < start:
            raise InvalidEventError(f"DTEND {end.isoformat()} before DTSTART {start.isoformat()}")
    elif end < start:
        raise InvalidEventError(f"DTEND {end} before DTSTART {start}")


def _duration(prop: Any) -> timedelta:
    value = _value(prop, "DURATION")
    if not isinstance(value, timedelta):
        raise InvalidEventError(f"DURATION is not a duration: {value!r}")
    if value < timedelta(0):
        raise InvalidEventError(f"negative DURATION {value}")
    return value


def _moment(prop: Any, name: str, context: _Context) -> tuple[datetime | date, ZoneChoice | None]:
    """A DATE or DATE-TIME property, with its TZID resolved by our rules (never silently)."""
    value = _date_value(prop, name, context)
    if not isinstance(value, date):
        raise InvalidEventError(f"{name} is not a date or date-time: {value!r}")
    if isinstance(value, datetime) and _declared_date(prop):
        context.repairs.append(f"{name} declared VALUE=DATE but holds a time: read as a date")
        value = value.date()
    if not isinstance(value, datetime):
        return value, None
    tzid = _tzid(prop)
    if tzid is not None:
        return _zoned(value.replace(tzinfo=None), tzid, name, context)
    if value.tzinfo is not None:
        return value.astimezone(UTC), ZoneChoice("", "UTC", "utc")
    if context.floating_zone is not None:
        zone = context.floating_zone
        return value.replace(tzinfo=zone.tzinfo), _floating_choice(zone.choice)
    return value, None


def _floating_choice(choice: ZoneChoice) -> ZoneChoice:
    return ZoneChoice("", choice.zone_name, f"X-WR-TIMEZONE ({choice.how})")


def _zoned(wall: datetime, tzid: str, name: str, context: _Context) -> tuple[datetime, ZoneChoice]:
    resolved = resolve_zone(tzid, context.zones.get(tzid), wall)
    if not isinstance(resolved, ResolvedZone):
        raise InvalidEventError(f"{name}: {resolved.detail}")
    if tzid.upper() in {"UTC", "Z", "GMT", "ETC/UTC"} and isinstance(resolved.tzinfo, ZoneInfo):
        return wall.replace(tzinfo=UTC), resolved.choice
    return wall.replace(tzinfo=resolved.tzinfo), resolved.choice


def _declared_date(prop: Any) -> bool:
    params = getattr(prop, "params", None)
    return params is not None and str(params.get("VALUE", "")).upper() == "DATE"


ISO_EXTENDED = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):?(\d{2}):?(\d{2})(Z?))?$", re.IGNORECASE
)


def _date_value(prop: Any, name: str, context: _Context) -> Any:
    """The property's value; ISO 8601 extended forms ("2023-07-01T125700") are repaired."""
    try:
        return _value(prop, name)
    except InvalidEventError:
        repaired = _iso_extended(str(prop[0] if isinstance(prop, list) else prop).strip())
        if repaired is None:
            raise
        context.repairs.append(f"{name} in ISO 8601 extended form read as {repaired.isoformat()}")
        return repaired


def _iso_extended(text: str) -> datetime | date | None:
    match = ISO_EXTENDED.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, utc = match.groups()
    try:
        if hour is None:
            return date(int(year), int(month), int(day))
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if utc else moment


def _tzid(prop: Any) -> str | None:
    params = getattr(prop, "params", None)
    if params is None or "TZID" not in params:
        return None
    value = params.get("TZID")
    return str(value) if value is not None else ""


def _value(prop: Any, name: str) -> Any:
    if isinstance(prop, list):
        prop = prop[0]
    try:
        return prop.dt
    except (ValueError, AttributeError, TypeError) as error:
        raise InvalidEventError(f"{name}: {error}") from error


def _sequence(event: Component) -> int:
    for name in ("SEQUENCE", "X-MICROSOFT-CDO-APPT-SEQUENCE"):
        value = event.get(name)
        if value is None:
            continue
        try:
            return int(str(value).strip())
        except ValueError:
            continue
    return 0


def _dtstamp(event: Component, context: _Context) -> datetime | None:
    prop = event.get("DTSTAMP")
    if prop is None:
        return None
    try:
        value = _date_value(prop, "DTSTAMP", context)
    except InvalidEventError:
        context.repairs.append("DTSTAMP unreadable: ignored")
        return None
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _recurrence_id(event: Component, context: _Context) -> datetime | date | None:
    prop = event.get("RECURRENCE-ID")
    if prop is None:
        return None
    value, _ = _moment(prop, "RECURRENCE-ID", context)
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value
    return value


def _rrule(event: Component) -> str | None:
    rules = _as_list(event.get("RRULE"))
    if not rules:
        return None
    try:
        return bytes(rules[0].to_ical()).decode("ascii", errors="replace")
    except (ValueError, AttributeError, TypeError) as error:
        raise InvalidEventError(f"RRULE: {error}") from error


def _date_list(event: Component, name: str) -> tuple[datetime | date, ...]:
    values: list[datetime | date] = []
    for prop in _as_list(event.get(name)):
        try:
            items = prop.dts
        except (ValueError, AttributeError, TypeError) as error:
            raise InvalidEventError(f"{name} unreadable: {error}") from error
        for item in items:
            moment = getattr(item, "dt", None)
            if isinstance(moment, datetime) and moment.tzinfo is not None:
                values.append(moment.astimezone(UTC))
            elif isinstance(moment, date):
                values.append(moment)
    return tuple(values)


def _organizer(prop: Any) -> Organizer | None:
    prop = _as_list(prop)[0] if _as_list(prop) else None
    if prop is None:
        return None
    address = normalize_address(str(prop))
    if address is None:
        return None
    params = getattr(prop, "params", {})
    return Organizer(
        email=address,
        name=_text(params.get("CN")),
        sent_by=normalize_address(_text(params.get("SENT-BY"))),
    )


def _attendees(event: Component) -> tuple[Attendee, ...]:
    found: dict[str, Attendee] = {}
    for prop in _as_list(event.get("ATTENDEE")):
        address = normalize_address(str(prop))
        if address is None or address in found:
            continue
        params = getattr(prop, "params", {})
        found[address] = Attendee(
            email=address,
            partstat=_text(params.get("PARTSTAT")).upper() or "NEEDS-ACTION",
            role=_text(params.get("ROLE")).upper() or "REQ-PARTICIPANT",
            name=_text(params.get("CN")),
        )
    return tuple(found.values())


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _raw_text(value: Any) -> str:
    """A text property as written (unescaped by icalendar), surrounding blanks kept."""
    if isinstance(value, list):
        value = value[0] if value else None
    return "" if value is None else str(value)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value).strip()

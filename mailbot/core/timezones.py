"""TZID resolution: from the text a sender wrote to a usable ``tzinfo`` (docs/decisions.md).

Order: an IANA name; a Windows zone id (CLDR, with the variants seen in the wild); an
Outlook/Exchange display name; a globally unique TZID whose tail is an IANA name; a fixed
"UTC+hh:mm" offset; then the embedded VTIMEZONE (its X-LIC-LOCATION, else its own rules).
When a name and the VTIMEZONE disagree about the UTC offset at the event's start, the
VTIMEZONE wins. Nothing here ever falls back silently to UTC.

The name lookups are pure functions of the TZID text and are cached: the same few TZIDs
repeat across thousands of messages.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from mailbot.core.model import ZoneChoice
from mailbot.core.windows_zones import (
    DISPLAY_NAME_TO_WINDOWS,
    EXTRA_NAMES_TO_IANA,
    WINDOWS_ALIASES,
    WINDOWS_TO_IANA,
)

__all__ = ["ResolvedZone", "UnresolvedZone", "ZoneDefinition", "resolve_zone"]


@dataclass(frozen=True, slots=True)
class ZoneDefinition:
    """An embedded VTIMEZONE, as the iCalendar layer hands it over."""

    tzid: str
    rules: tzinfo | None
    location: str | None = None


@dataclass(frozen=True, slots=True)
class ResolvedZone:
    """A TZID that could be resolved, and how (for the audit log)."""

    tzinfo: tzinfo
    choice: ZoneChoice


@dataclass(frozen=True, slots=True)
class UnresolvedZone:
    """A TZID that could not be resolved: the caller reports ``invalid_calendar``."""

    tzid: str
    detail: str


# --- name lookups (cached) -----------------------------------------------------------------

# The year whose January and July offsets define a zone's standard offset when a display name's
# "(UTC+hh:mm)" prefix is checked against a city's zone. Windows display names describe the
# current rules, so the current rules are the reference (no clock in the core: a constant).
_REFERENCE_YEAR = 2025
_MAX_OFFSET_MINUTES = 14 * 60
# Not zones a sender can mean: "localtime" is the host's own zone, "Factory" a placeholder.
_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})
# Preferred over backward-compatible names ("US/...", "Brazil/...") when a city matches both.
_ZONE_AREAS = frozenset(
    {
        "Africa",
        "America",
        "Antarctica",
        "Asia",
        "Atlantic",
        "Australia",
        "Europe",
        "Indian",
        "Pacific",
    }
)
_UTC_NAMES = frozenset({"z", "ut"})  # RFC 5545 / RFC 5322 spellings of UTC

_ESCAPE = re.compile(r"\\([,;\\:\"])")
_TRAILING_NUMBER = re.compile(r"[\s_]+[0-9]+$")
_DAYLIGHT_SUFFIX = re.compile(r"\s+(?:daylight|summer)\s+time$", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
_DISPLAY_PREFIX = re.compile(
    r"^\(\s*(?:UTC|GMT)\s*(?:([+\-\u2212])\s*([0-9]{1,2})(?:\s*[:.]\s*([0-9]{2}))?)?\s*\)\s*(.*)$",
    re.IGNORECASE | re.DOTALL,
)
_FIXED_OFFSET = re.compile(
    r"^(?:(?:UTC|GMT)\s*)?([+\-\u2212])\s*([0-9]{1,2})(?:\s*[:.]?\s*([0-9]{2}))?$", re.IGNORECASE
)
_SEPARATORS = re.compile(r"[,;/:|]")
_PARENTHESISED = re.compile(r"\(([^()]*)\)")


@dataclass(frozen=True, slots=True)
class _NameHit:
    how: str
    zone_name: str
    tzinfo: tzinfo


@dataclass(frozen=True, slots=True)
class _NameMiss:
    """No zone for the name; ``detail`` explains why (empty: simply unknown)."""

    detail: str = ""


def _clean_tzid(tzid: str) -> str:
    """Strip quotes and whitespace, undo iCalendar text escapes, NFC-normalise."""
    text = tzid.strip()
    while len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    text = _ESCAPE.sub(r"\1", text)
    return unicodedata.normalize("NFC", text).strip()


def _fold(text: str) -> str:
    """Case- and accent-insensitive form: "Brasília" and "BRASILIA" compare equal."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@cache
def _iana_names() -> dict[str, str]:
    """Case-folded IANA name -> the name as zoneinfo spells it."""
    names = {n for n in available_timezones() if n not in _NOT_ZONES}
    return {name.casefold(): name for name in sorted(names)}


@cache
def _city_index() -> dict[str, tuple[str, ...]]:
    """Folded last path component ("mexico_city") -> IANA names ending with it."""
    index: dict[str, list[str]] = {}
    for name in _iana_names().values():
        if name.startswith(("Etc/", "SystemV/")):
            continue
        index.setdefault(_fold(name.rsplit("/", 1)[-1]), []).append(name)
    return {
        city: tuple(sorted(names, key=lambda n: (n.split("/", 1)[0] not in _ZONE_AREAS, n)))
        for city, names in index.items()
    }


def _display_key(text: str) -> str:
    """Normalise a display-name text: no case, accents, dots, spaces; one kind of separator."""
    folded = _fold(text).replace("&", "and").replace(".", "").replace("co-ordinated", "coordinated")
    parts = (_WHITESPACE.sub("", part) for part in _SEPARATORS.split(folded))
    return ",".join(part for part in parts if part)


@cache
def _display_index() -> dict[str, str]:
    return {_display_key(text): windows for text, windows in DISPLAY_NAME_TO_WINDOWS.items()}


@cache
def _windows_index() -> dict[str, str]:
    """Folded Windows id, alias or extra name (whitespace collapsed) -> IANA name."""
    index = {_windows_key(name): iana for name, iana in EXTRA_NAMES_TO_IANA.items()}
    for alias, windows in WINDOWS_ALIASES.items():
        index[_windows_key(alias)] = WINDOWS_TO_IANA[windows]
    for windows, iana in WINDOWS_TO_IANA.items():
        index[_windows_key(windows)] = iana
    return index


def _windows_key(name: str) -> str:
    return _WHITESPACE.sub(" ", _fold(name)).strip()


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _iana_hit(name: str, how: str) -> _NameHit | None:
    if name.casefold() in _UTC_NAMES:
        name = "UTC"
    canonical = _iana_names().get(name.casefold())
    if canonical is None:
        return None
    zone = _zone(canonical)
    return None if zone is None else _NameHit(how, canonical, zone)


def _windows_hit(name: str) -> _NameHit | None:
    index = _windows_index()
    key = _windows_key(name)
    candidates = [key]
    stripped = _TRAILING_NUMBER.sub("", key)
    if stripped != key and "time" in stripped:  # "Eastern Standard Time 1", not "UTC-02"
        candidates.append(stripped)
    for candidate in list(candidates):
        standard = _DAYLIGHT_SUFFIX.sub(" standard time", candidate)
        if standard != candidate:  # "Pacific Daylight Time", "GMT Summer Time"
            candidates.append(standard)
        elif "time" not in candidate:  # Lotus Domino writes the id without " Standard Time"
            candidates.append(candidate + " standard time")
    for candidate in candidates:
        iana = index.get(candidate)
        if iana is not None:
            return _iana_hit(iana, "windows")
    return None


def _offset_minutes(sign: str, hours: str, minutes: str | None) -> int | None:
    total = int(hours) * 60 + int(minutes or 0)
    if int(minutes or 0) >= 60 or total > _MAX_OFFSET_MINUTES:
        return None
    return -total if sign in "-\u2212" else total


def _format_offset(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{rest:02d}"


def _standard_offset(zone: tzinfo) -> timedelta | None:
    offsets = [datetime(_REFERENCE_YEAR, month, 1, 12, tzinfo=zone).utcoffset() for month in (1, 7)]
    known = [offset for offset in offsets if offset is not None]
    return min(known) if known else None


def _cities(text: str) -> list[str]:
    """City candidates of a display name: each separated part, and any text in parentheses."""
    cities: list[str] = []
    for part in re.split(r"[,;/]| - ", text):
        for inner in _PARENTHESISED.findall(part):
            cities.append(inner)
        cities.append(_PARENTHESISED.sub(" ", part))
    return [c for c in (_WHITESPACE.sub(" ", c).strip(" .") for c in cities) if c]


def _display_hit(name: str) -> _NameHit | _NameMiss | None:
    """Outlook/Exchange display names: "(UTC+01:00) Amsterdam, Berlin, ..." and older forms."""
    match = _DISPLAY_PREFIX.match(name)
    text = match.group(4) if match else name
    windows = _display_index().get(_display_key(text)) if text else None
    if windows is not None:
        return _iana_hit(WINDOWS_TO_IANA[windows], "display-name")
    if match is None:
        return None
    sign, hours, minutes = match.group(1, 2, 3)
    offset = _offset_minutes(sign, hours, minutes) if sign else 0
    if offset is None:
        return _NameMiss(f"display name {name!r} has an impossible UTC offset")
    wanted = timedelta(minutes=offset)
    cities = _cities(text)
    index = _city_index()
    for city in cities:
        for candidate in index.get(_fold(city).replace(" ", "_"), ()):
            zone = _zone(candidate)
            if zone is not None and _standard_offset(zone) == wanted:
                return _NameHit("display-name", candidate, zone)
    if not cities:
        return _NameMiss(f"display name {name!r} names no place (an offset alone is ambiguous)")
    return _NameMiss(
        f"display name {name!r} names no place whose time zone has the offset "
        f"{_format_offset(wanted)}"
    )


def _globally_unique_hit(name: str) -> _NameHit | None:
    """Globally unique TZIDs ("/mozilla.org/20070129_1/America/New_York"): the IANA tail."""
    if "/" not in name:
        return None
    parts = [part for part in name.split("/") if part]
    for start in range(1, len(parts)):
        hit = _iana_hit("/".join(parts[start:]), "globally-unique")
        if hit is not None:
            return hit
    return None


def _fixed_offset_hit(name: str) -> _NameHit | None:
    match = _FIXED_OFFSET.match(name)
    if match is None:
        return None
    minutes = _offset_minutes(*match.group(1, 2, 3))
    if minutes is None:
        return None
    offset = timedelta(minutes=minutes)
    return _NameHit("fixed-offset", f"UTC{_format_offset(offset)}", timezone(offset))


@lru_cache(maxsize=4096)
def _lookup(tzid: str) -> tuple[str, _NameHit | _NameMiss]:
    """The cleaned TZID and what its name alone resolves to (steps 1-6)."""
    name = _clean_tzid(tzid)
    if not name:
        return name, _NameMiss("empty TZID")
    for step in (_iana_hit_plain, _windows_hit, _display_hit, _globally_unique_hit):
        result = step(name)
        if result is not None:
            return name, result
    return name, _fixed_offset_hit(name) or _NameMiss()


def _iana_hit_plain(name: str) -> _NameHit | None:
    return _iana_hit(name, "iana")


# --- resolution ----------------------------------------------------------------------------


def _offsets_at(zone: tzinfo, wall_time: datetime) -> frozenset[timedelta] | None:
    """The UTC offsets a zone gives a wall time (both folds, so a DST edge is no conflict)."""
    offsets: set[timedelta] = set()
    try:
        for fold in (0, 1):
            wall = wall_time.replace(tzinfo=None, fold=fold)
            localize = getattr(zone, "localize", None)  # pytz zones need localize()
            aware = localize(wall) if callable(localize) else wall.replace(tzinfo=zone)
            offset = aware.utcoffset()
            if not isinstance(offset, timedelta):
                return None
            offsets.add(offset)
    except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError):
        return None
    return frozenset(offsets)


def _with_conflict_check(
    tzid: str, name: str, hit: _NameHit, definition: ZoneDefinition | None, wall: datetime | None
) -> ResolvedZone:
    """Keep the name's zone unless the embedded VTIMEZONE disagrees about the offset."""
    rules = definition.rules if definition is not None else None
    if rules is not None and wall is not None:
        named = _offsets_at(hit.tzinfo, wall)
        embedded = _offsets_at(rules, wall)
        if named is not None and embedded is not None and not named & embedded:
            by_location = hit.how == "x-lic-location"
            source = "X-LIC-LOCATION" if by_location else "name"
            shown = hit.zone_name if by_location else name
            how = (
                f"vtimezone-rules ({source} {shown!r} says {_format_offset(min(named))}, "
                f"its VTIMEZONE {_format_offset(min(embedded))})"
            )
            return ResolvedZone(rules, ZoneChoice(tzid, f"VTIMEZONE:{name}", how))
    return ResolvedZone(hit.tzinfo, ZoneChoice(tzid, hit.zone_name, hit.how))


def resolve_zone(
    tzid: str, definition: ZoneDefinition | None, wall_time: datetime | None = None
) -> ResolvedZone | UnresolvedZone:
    """Resolve a TZID as written, with the VTIMEZONE of the same TZID when the object has one.

    ``wall_time`` is the naive local wall-clock time of the event start; it is used to check
    that a resolved name and the embedded VTIMEZONE agree (an aware value is read as naive).
    """
    name, result = _lookup(tzid)
    if isinstance(result, _NameHit):
        return _with_conflict_check(tzid, name, result, definition, wall_time)
    why = result.detail or f"unknown time zone {name!r}"
    if definition is None:
        return UnresolvedZone(tzid, f"{why} and no VTIMEZONE defines it")
    if definition.location:
        location = _iana_hit(_clean_tzid(definition.location), "x-lic-location")
        if location is not None:
            return _with_conflict_check(tzid, name, location, definition, wall_time)
    if definition.rules is None:
        return UnresolvedZone(tzid, f"{why} and its VTIMEZONE could not be read")
    if wall_time is not None and _offsets_at(definition.rules, wall_time) is None:
        return UnresolvedZone(
            tzid, f"{why} and its VTIMEZONE gives no UTC offset at {wall_time:%Y-%m-%d %H:%M}"
        )
    choice = ZoneChoice(tzid, f"VTIMEZONE:{name}", "vtimezone-rules")
    return ResolvedZone(definition.rules, choice)

"""A tzinfo from a VTIMEZONE's own rules (RFC 5545 section 3.6.5), computed near the date asked.

Outlook writes its VTIMEZONE blocks with ``DTSTART:16010101T...`` and a yearly RRULE. A
general-purpose reader (dateutil's tzical) answers an offset by walking that rule from 1601,
four hundred onsets per question. Here each observance's onsets are computed only for the
years around the date asked, cached per year, and identical VTIMEZONE blocks across messages
share one zone object.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from functools import lru_cache
from itertools import islice

from dateutil.rrule import rrulestr

YEARS_BEFORE = 2  # onsets of the two previous years settle which observance is in force
OBSERVANCE_FREQUENCIES = frozenset({"YEARLY", "MONTHLY"})  # what real zones use; others refused
MAX_ONSETS_SCANNED = 6000  # bounds the work one hostile rule can cause


@dataclass(frozen=True, slots=True)
class Observance:
    """One STANDARD or DAYLIGHT sub-component: onsets are local wall times in offset_from."""

    start: datetime
    offset_from: timedelta
    offset_to: timedelta
    rrule: str | None = None
    rdates: tuple[datetime, ...] = ()
    name: str = ""
    daylight: bool = False


class ObservedZone(tzinfo):
    """Offsets from observances; ambiguous and skipped wall times follow ``fold`` (PEP 495)."""

    def __init__(self, tzid: str, observances: tuple[Observance, ...]) -> None:
        super().__init__()
        self.tzid = tzid
        self._observances = observances
        self._years: dict[int, tuple[list[datetime], list[timedelta]]] = {}

    def __repr__(self) -> str:
        return f"ObservedZone({self.tzid!r})"

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        if dt is None:
            return None
        wall = dt.replace(tzinfo=None)
        offsets = self._candidate_offsets(wall.year)
        valid = [o for o in offsets if self._offset_at_utc(wall - o) == o]
        if len(valid) == 1:
            return valid[0]
        if valid:  # repeated hour: fold 0 is the earlier instant, so the larger offset
            return max(valid) if dt.fold == 0 else min(valid)
        before = self._offset_at_utc(wall - max(offsets))  # skipped hour: as the clock read
        after = self._offset_at_utc(wall - min(offsets))
        return before if dt.fold == 0 else after

    def dst(self, dt: datetime | None) -> timedelta | None:
        offset = self.utcoffset(dt)
        if offset is None or dt is None:
            return None
        standard = min(self._candidate_offsets(dt.year))
        return offset - standard

    def tzname(self, dt: datetime | None) -> str | None:
        return self.tzid

    def _candidate_offsets(self, year: int) -> set[timedelta]:
        _, offsets = self._transitions(year)
        return set(offsets)

    def _offset_at_utc(self, moment: datetime) -> timedelta:
        instants, offsets = self._transitions(moment.year)
        index = bisect_right(instants, moment)
        return offsets[max(index - 1, 0)]

    def _transitions(self, year: int) -> tuple[list[datetime], list[timedelta]]:
        """UTC instants of the onsets from YEARS_BEFORE years back to the end of ``year``."""
        cached = self._years.get(year)
        if cached is None:
            cached = self._compute(year)
            self._years[year] = cached
        return cached

    def _compute(self, year: int) -> tuple[list[datetime], list[timedelta]]:
        low = datetime(max(year - YEARS_BEFORE, 1), 1, 1)
        high = datetime(min(year + 1, 9999), 1, 1)
        onsets = sorted(
            (
                (local - observance.offset_from, observance)
                for observance in self._observances
                for local in _onsets(observance, low, high)
            ),
            key=lambda onset: onset[0],
        )
        instants = [datetime.min, *(instant for instant, _ in onsets)]
        offsets = [self._before_any_onset(), *(observance.offset_to for _, observance in onsets)]
        return instants, offsets

    def _before_any_onset(self) -> timedelta:
        """Before the first onset RFC 5545 says nothing: standard time, as dateutil reads it."""
        standard = [o for o in self._observances if not o.daylight] or list(self._observances)
        return min(standard, key=lambda observance: observance.start).offset_to


def _onsets(observance: Observance, low: datetime, high: datetime) -> list[datetime]:
    """Onsets (local wall time) in [low, high), plus the latest one before ``low``."""
    found = [observance.start, *observance.rdates]
    if observance.rrule:
        found.extend(_rule_onsets(observance, low, high))
    inside = [onset for onset in found if low <= onset < high]
    earlier = [onset for onset in found if onset < low]
    if earlier:
        inside.append(max(earlier))
    return sorted(set(inside))


def _rule_onsets(observance: Observance, low: datetime, high: datetime) -> list[datetime]:
    rule_text = observance.rrule or ""
    start = observance.start
    if _yearly_phase_free(rule_text) and start < low:
        start = _same_day_in_year(start, low.year - 1) or start
    rule = rrulestr(rule_text, dtstart=start, ignoretz=True, cache=False)
    onsets = []
    for onset in islice(rule, MAX_ONSETS_SCANNED):
        if onset >= high:
            break
        if onset >= low - timedelta(days=366):
            onsets.append(onset)
    return onsets


def _rule_parts(rule_text: str) -> dict[str, str]:
    return dict(part.partition("=")[::2] for part in rule_text.upper().split(";"))


def check_observance_rule(rule_text: str) -> None:
    """Raise ValueError for a rule no real time zone uses (FREQ=SECONDLY and the like)."""
    frequency = _rule_parts(rule_text).get("FREQ")
    if frequency not in OBSERVANCE_FREQUENCIES:
        raise ValueError(f"VTIMEZONE observance with FREQ={frequency}")


def _yearly_phase_free(rule_text: str) -> bool:
    """True when moving DTSTART to a later year leaves the rule's onsets as they were."""
    parts = _rule_parts(rule_text)
    return (
        parts.get("FREQ") == "YEARLY" and "COUNT" not in parts and parts.get("INTERVAL", "1") == "1"
    )


def _same_day_in_year(moment: datetime, year: int) -> datetime | None:
    try:
        return moment.replace(year=year)
    except ValueError:  # 29 February
        return None


@lru_cache(maxsize=256)
def observed_zone(tzid: str, observances: tuple[Observance, ...]) -> ObservedZone | None:
    """One shared zone per distinct VTIMEZONE; None when it has no observance."""
    if not observances:
        return None
    return ObservedZone(tzid, observances)

"""VTIMEZONE rules computed near the date asked agree with a full reader, everywhere."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest

from mailbot.core.ical import zone_rules
from mailbot.core.vtimezone import Observance, ObservedZone

FIXTURES = Path(__file__).parent.parent / "fixtures"


def _vtimezones() -> list[tuple[str, object]]:
    """Every VTIMEZONE block of the fixtures that dateutil can read, with where it is from."""
    found: dict[bytes, tuple[str, object]] = {}
    for path in sorted(FIXTURES.rglob("*")):
        if path.suffix not in {".eml", ".ics"}:
            continue
        raw = path.read_bytes()
        for chunk in raw.split(b"BEGIN:VTIMEZONE")[1:]:
            block = b"BEGIN:VTIMEZONE" + chunk.split(b"END:VTIMEZONE")[0] + b"END:VTIMEZONE\r\n"
            if b"=0D" in block or b"=\n" in block:  # quoted-printable copy: the decoded one counts
                continue
            try:
                component = icalendar.Timezone.from_ical(block)
                component.to_tz(lookup_tzid=False)
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                continue
            found.setdefault(component.to_ical(), (path.name, component))
    return list(found.values())


VTIMEZONES = _vtimezones()


def _wall_times() -> list[datetime]:
    moments = []
    moment = datetime(1998, 1, 1, 0, 30)
    while moment.year < 2032:
        moments.append(moment)
        moment += timedelta(days=9, hours=7)
    for year in (2008, 2019, 2026):  # every hour of the weeks where clocks change somewhere
        for month, day in ((3, 8), (3, 24), (10, 24), (11, 1), (4, 1), (9, 28), (2, 14)):
            base = datetime(year, month, day)
            moments.extend(base + timedelta(hours=h) for h in range(24 * 8))
    return moments


WALL_TIMES = _wall_times()


def test_the_fixtures_offer_many_vtimezones() -> None:
    assert len(VTIMEZONES) >= 15


@pytest.mark.parametrize(("source", "component"), VTIMEZONES, ids=lambda v: str(v)[:40])
def test_offsets_agree_with_dateutil_for_every_wall_time(source: str, component: object) -> None:
    reference = component.to_tz(lookup_tzid=False)  # type: ignore[attr-defined]
    ours = zone_rules(component)
    assert ours is not None
    for wall in WALL_TIMES:
        for fold in (0, 1):
            moment = wall.replace(fold=fold)
            expected = moment.replace(tzinfo=reference).utcoffset()
            got = moment.replace(tzinfo=ours).utcoffset()
            if expected != got:
                # dateutil resolves skipped and repeated hours its own way; accept only
                # differences inside the hour around a transition
                earlier = (moment - timedelta(hours=2)).replace(tzinfo=ours).utcoffset()
                later = (moment + timedelta(hours=2)).replace(tzinfo=ours).utcoffset()
                assert earlier != later, f"{source}: {moment} fold={fold}: {got} != {expected}"


BERLIN_RULES = (
    Observance(
        datetime(1970, 3, 29, 2),
        timedelta(hours=1),
        timedelta(hours=2),
        "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
        name="CEST",
    ),
    Observance(
        datetime(1970, 10, 25, 3),
        timedelta(hours=2),
        timedelta(hours=1),
        "FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
        name="CET",
    ),
)


def test_matches_zoneinfo_for_berlin_including_folds_and_gaps() -> None:
    ours = ObservedZone("Berlin", BERLIN_RULES)
    berlin = ZoneInfo("Europe/Berlin")
    for wall in WALL_TIMES:
        if wall.year < 1996:
            continue
        for fold in (0, 1):
            moment = wall.replace(fold=fold)
            assert (
                moment.replace(tzinfo=ours).utcoffset() == moment.replace(tzinfo=berlin).utcoffset()
            ), moment


def test_utc_round_trip_lands_on_the_same_instant() -> None:
    ours = ObservedZone("Berlin", BERLIN_RULES)
    for wall in WALL_TIMES[::17]:
        aware = wall.replace(tzinfo=ours)
        assert (
            aware.astimezone(ZoneInfo("UTC"))
            == wall.replace(tzinfo=ZoneInfo("Europe/Berlin")).astimezone(ZoneInfo("UTC"))
            or wall.replace(fold=0).replace(tzinfo=ZoneInfo("Europe/Berlin")).utcoffset()
            != wall.replace(fold=1).replace(tzinfo=ZoneInfo("Europe/Berlin")).utcoffset()
        )


def test_a_zone_without_daylight_saving_has_one_offset() -> None:
    bangkok = ObservedZone(
        "Bangkok", (Observance(datetime(1601, 1, 1), timedelta(hours=7), timedelta(hours=7)),)
    )
    assert datetime(2026, 7, 1, 12, tzinfo=bangkok).utcoffset() == timedelta(hours=7)
    assert datetime(1500, 7, 1, 12, tzinfo=bangkok).utcoffset() == timedelta(hours=7)


HOSTILE_VTIMEZONE = (
    b"BEGIN:VTIMEZONE\r\nTZID:Hostile\r\nBEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\n"
    b"RRULE:FREQ=SECONDLY;COUNT=1000000000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n"
    b"END:DAYLIGHT\r\nEND:VTIMEZONE\r\n"
)


def test_a_sub_daily_observance_rule_is_refused_not_expanded() -> None:
    component = icalendar.Timezone.from_ical(HOSTILE_VTIMEZONE)
    assert zone_rules(component) is None


def test_a_daily_rule_from_1601_is_bounded() -> None:
    daily = Observance(
        datetime(1601, 1, 1, 2),
        timedelta(hours=1),
        timedelta(hours=2),
        "FREQ=MONTHLY;BYMONTHDAY=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19",
    )
    zone = ObservedZone("bounded", (daily,))
    assert datetime(2026, 1, 1, 12, tzinfo=zone).utcoffset() is not None

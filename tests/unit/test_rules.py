"""Rules one by one: single-day in the sync zone, recurrence, replies, sender authentication."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from mailbot.core.model import Attendee, Envelope, Invitation, Method, Outcome, Reason
from mailbot.core.policy import Policy
from mailbot.core.rules import judge, sender_problem

BERLIN = Policy.for_zone("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def _event(start: datetime | date, end: datetime | date, **extra: object) -> Invitation:
    return Invitation(
        method=extra.pop("method", Method.REQUEST),
        uid="u",
        start=start,
        end=end,  # type: ignore[arg-type]
        all_day=not isinstance(start, datetime),
        **extra,
    )  # type: ignore[arg-type]


NOBODY = Envelope()


def _skip(invitation: Invitation, envelope: Envelope = NOBODY, policy: Policy = BERLIN):
    judged = judge(invitation, envelope, policy)
    return judged.skip.reason if judged.skip else None


def test_ending_exactly_at_midnight_is_single_day_and_written_2359() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    judged = judge(
        _event(datetime(2026, 1, 5, 22, tzinfo=berlin), datetime(2026, 1, 6, tzinfo=berlin)),
        Envelope(),
        BERLIN,
    )
    assert judged.skip is None
    assert judged.schedule is not None and judged.schedule.ends_at_midnight


def test_one_minute_past_midnight_is_multi_day() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    event = _event(
        datetime(2026, 1, 5, 22, tzinfo=berlin), datetime(2026, 1, 6, 0, 1, tzinfo=berlin)
    )
    assert _skip(event) is Reason.MULTI_DAY


def test_crossing_midnight_only_in_the_sync_zone() -> None:
    evening_in_new_york = _event(
        datetime(2026, 1, 5, 17, tzinfo=NEW_YORK), datetime(2026, 1, 5, 19, tzinfo=NEW_YORK)
    )
    assert _skip(evening_in_new_york) is Reason.MULTI_DAY
    assert _skip(evening_in_new_york, policy=Policy.for_zone("America/New_York")) is None


def test_zero_length_event_at_midnight_is_single_day() -> None:
    moment = datetime(2026, 1, 5, 23, tzinfo=UTC)  # 00:00 in Berlin
    assert _skip(_event(moment, moment)) is None


def test_all_day_one_day_passes_two_days_do_not() -> None:
    assert _skip(_event(date(2026, 1, 5), date(2026, 1, 6))) is None
    assert _skip(_event(date(2026, 1, 5), date(2026, 1, 7))) is Reason.MULTI_DAY


def test_floating_time_is_taken_in_the_sync_zone() -> None:
    judged = judge(_event(datetime(2026, 1, 5, 9), datetime(2026, 1, 5, 10)), Envelope(), BERLIN)
    assert judged.schedule is not None
    assert judged.schedule.start == datetime(2026, 1, 5, 9, tzinfo=ZoneInfo("Europe/Berlin"))


@pytest.mark.parametrize("frequency", ["SECONDLY", "MINUTELY", "HOURLY"])
def test_sub_daily_recurrence_is_unsupported(frequency: str) -> None:
    event = _event(
        datetime(2026, 1, 5, 9, tzinfo=UTC),
        datetime(2026, 1, 5, 10, tzinfo=UTC),
        rrule=f"FREQ={frequency};COUNT=1000000000",
    )
    assert _skip(event) is Reason.UNSUPPORTED_RECURRENCE


def test_weekly_recurrence_is_judged_by_its_first_instance() -> None:
    event = _event(
        datetime(2026, 1, 5, 9, tzinfo=UTC),
        datetime(2026, 1, 5, 10, tzinfo=UTC),
        rrule="FREQ=WEEKLY;BYDAY=MO",
    )
    assert _skip(event) is None


def _reply(attendee: str) -> Invitation:
    return _event(
        datetime(2026, 1, 5, 9, tzinfo=UTC),
        datetime(2026, 1, 5, 10, tzinfo=UTC),
        method=Method.REPLY,
        attendees=(Attendee(attendee, partstat="ACCEPTED"),),
    )


def test_reply_from_the_attendee_is_a_response() -> None:
    judged = judge(_reply("anna@client.example"), Envelope(sender="anna@client.example"), BERLIN)
    assert (judged.intent, judged.skip) == (Outcome.RESPONSE, None)


def test_reply_from_someone_else_is_refused_unless_forwarded_from_our_domain() -> None:
    reply = _reply("anna@client.example")
    assert _skip(reply, Envelope(sender="mallory@evil.example")) is Reason.REPLY_NOT_FROM_ATTENDEE
    ours = Policy.for_zone("Europe/Berlin", sender_domains=frozenset({"seller.example"}))
    assert _skip(reply, Envelope(sender="rep@seller.example"), ours) is None


TRUSTING = Policy.for_zone("UTC", trusted_authserv_ids=frozenset({"mx.seller.example"}))


@pytest.mark.parametrize(
    ("header", "authorized"),
    [
        ("mx.seller.example; dmarc=pass header.from=client.example", True),
        ("mx.seller.example; dmarc=fail (p=reject) header.from=client.example", False),
        ("mx.seller.example; dkim=pass header.d=client.example; spf=fail", True),
        (
            "mx.seller.example; dkim=pass header.d=other.example;"
            " spf=pass smtp.mailfrom=x@bulk.example",
            False,
        ),
        ("mx.seller.example; spf=pass smtp.mailfrom=bounce@mail.client.example", True),
        ("forged.example; dmarc=pass", True),  # not a trusted id: no opinion, so not refused
    ],
)
def test_sender_authentication_from_trusted_servers_only(header: str, authorized: bool) -> None:
    envelope = Envelope(sender="anna@client.example", authentication_results=(header,))
    problem = sender_problem(envelope, TRUSTING)
    assert (problem is None) is authorized
    if problem is not None:
        assert problem.reason is Reason.UNAUTHORIZED_SENDER


def test_forged_header_from_untrusted_id_does_not_override_a_trusted_fail() -> None:
    envelope = Envelope(
        sender="anna@client.example",
        authentication_results=(
            "mx.seller.example; dmarc=fail header.from=client.example",
            "attacker.example; dmarc=pass header.from=client.example",
        ),
    )
    assert sender_problem(envelope, TRUSTING) is not None

"""The planner with and without earlier state: every outcome, and the state-bound reasons."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from mailbot.core.model import Attendee, Envelope, Invitation, Method, Outcome, Reason
from mailbot.core.payload import body_hash, event_body
from mailbot.core.planner import NO_STATE, KnownEvent, plan_action, revision
from mailbot.core.policy import Policy
from mailbot.core.rules import judge

POLICY = Policy.for_zone("Europe/Berlin")
CUSTOMER = "buyer@customer.example"
SENDER = Envelope(sender=CUSTOMER)
STAMP = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _invitation(method: Method = Method.REQUEST, **changes: object) -> Invitation:
    base = Invitation(
        method=method,
        uid="uid-1@example.com",
        start=datetime(2026, 3, 10, 9, 0, tzinfo=UTC),
        end=datetime(2026, 3, 10, 10, 0, tzinfo=UTC),
        all_day=False,
        sequence=2,
        dtstamp=STAMP,
        summary="Demo",
        attendees=(Attendee(CUSTOMER, partstat="ACCEPTED"),),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _known(invitation: Invitation, **changes: object) -> KnownEvent:
    judged = judge(invitation, SENDER, POLICY)
    body = event_body(invitation, judged.schedule, Outcome.CREATE, POLICY)
    known = KnownEvent(revision(invitation.sequence, invitation.dtstamp), body_hash(body))
    return replace(known, **changes)  # type: ignore[arg-type]


def _plan(invitation: Invitation, known: object = NO_STATE, matched: bool | None = None):
    return plan_action(judge(invitation, SENDER, POLICY), POLICY, known, matched)  # type: ignore[arg-type]


def test_without_state_a_request_is_a_create_with_its_body() -> None:
    decision = _plan(_invitation())
    assert decision.outcome is Outcome.CREATE
    assert decision.netsuite is not None
    assert decision.netsuite["startTime"] == "10:00"
    assert decision.netsuite["status"] == "CONFIRMED"


def test_never_synced_request_is_create_and_cancel_is_unknown_event() -> None:
    assert _plan(_invitation(), known=None).outcome is Outcome.CREATE
    cancel = _plan(_invitation(Method.CANCEL), known=None)
    assert (cancel.outcome, cancel.reason) == (Outcome.SKIP, Reason.UNKNOWN_EVENT)


def test_reply_for_an_event_never_synced_is_unknown_event() -> None:
    reply = _plan(_invitation(Method.REPLY), known=None)
    assert (reply.outcome, reply.reason) == (Outcome.SKIP, Reason.UNKNOWN_EVENT)


def test_older_revision_is_stale_and_names_both_revisions() -> None:
    known = _known(_invitation(sequence=5))
    decision = _plan(_invitation(sequence=4), known)
    assert (decision.outcome, decision.reason) == (Outcome.SKIP, Reason.STALE)
    assert "SEQUENCE 4" in decision.detail and "SEQUENCE 5" in decision.detail


def test_same_sequence_older_dtstamp_is_stale() -> None:
    known = _known(_invitation())
    earlier = _invitation(dtstamp=datetime(2026, 2, 1, tzinfo=UTC), summary="Changed")
    assert _plan(earlier, known).reason is Reason.STALE


def test_same_revision_is_unchanged_without_a_body() -> None:
    decision = _plan(_invitation(), _known(_invitation()))
    assert decision.outcome is Outcome.UNCHANGED
    assert decision.netsuite is None


def test_newer_revision_with_identical_content_is_unchanged() -> None:
    newer = _invitation(sequence=3)
    assert _plan(newer, _known(_invitation())).outcome is Outcome.UNCHANGED


def test_newer_revision_with_changed_content_is_update() -> None:
    moved = _invitation(
        sequence=3,
        start=datetime(2026, 3, 10, 12, 0, tzinfo=UTC),
        end=datetime(2026, 3, 10, 13, 0, tzinfo=UTC),
    )
    decision = _plan(moved, _known(_invitation()))
    assert decision.outcome is Outcome.UPDATE
    assert decision.netsuite is not None and decision.netsuite["startTime"] == "13:00"


def test_outlook_cancel_without_sequence_bump_wins_by_dtstamp() -> None:
    later = datetime(2026, 3, 2, tzinfo=UTC)
    cancel = _invitation(Method.CANCEL, dtstamp=later)
    decision = _plan(cancel, _known(_invitation()))
    assert decision.outcome is Outcome.CANCEL
    assert decision.netsuite is not None and decision.netsuite["status"] == "CANCELLED"


def test_cancel_of_an_already_cancelled_event_is_unchanged() -> None:
    known = _known(_invitation(), cancelled=True)
    later = _invitation(Method.CANCEL, dtstamp=datetime(2026, 3, 2, tzinfo=UTC))
    assert _plan(later, known).outcome is Outcome.UNCHANGED


def test_reply_older_than_the_last_reply_of_that_attendee_is_stale() -> None:
    known = _known(_invitation(), reply_revisions={CUSTOMER: (2, datetime(2026, 3, 5, tzinfo=UTC))})
    old_reply = _invitation(Method.REPLY, dtstamp=datetime(2026, 3, 4, tzinfo=UTC))
    new_reply = _invitation(Method.REPLY, dtstamp=datetime(2026, 3, 6, tzinfo=UTC))
    assert _plan(old_reply, known).reason is Reason.STALE
    accepted = _plan(new_reply, known)
    assert accepted.outcome is Outcome.RESPONSE
    assert accepted.netsuite is not None
    assert accepted.netsuite["attendee"]["items"] == [
        {"attendee": {"email": CUSTOMER}, "response": "ACCEPTED", "attendance": "REQUIRED"}
    ]


def test_no_crm_match_skips_a_create_but_not_a_cancel() -> None:
    skipped = _plan(_invitation(), known=None, matched=False)
    assert (skipped.outcome, skipped.reason) == (Outcome.SKIP, Reason.NO_CRM_MATCH)
    cancel = _plan(
        _invitation(Method.CANCEL, dtstamp=datetime(2026, 3, 2, tzinfo=UTC)),
        _known(_invitation()),
        matched=False,
    )
    assert cancel.outcome is Outcome.CANCEL


@pytest.mark.parametrize(
    "method", [Method.COUNTER, Method.DECLINECOUNTER, Method.REFRESH, Method.ADD]
)
def test_unsupported_methods_are_skipped(method: Method) -> None:
    decision = _plan(_invitation(method))
    assert (decision.outcome, decision.reason) == (Outcome.SKIP, Reason.UNSUPPORTED_METHOD)

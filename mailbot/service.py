"""The unit of work: one message in, its decisions made, written, and recorded.

``SyncService.handle`` is straight-line: read (core) → look up (directory, state) → plan
(core) → write (calendar) → record (state, one transaction). Every write is an idempotent
upsert or patch by external id, and the state is committed only after the writes, so a
crash anywhere is repaired by handling the message again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from mailbot.core.crm import DirectoryAnswer
from mailbot.core.explanation import decision_record
from mailbot.core.model import Outcome
from mailbot.core.payload import body_hash, external_id, instant_text
from mailbot.core.pipeline import ReadMessage, read_message
from mailbot.core.planner import revision
from mailbot.core.policy import Policy
from mailbot.core.sync import (
    Instance,
    Planned,
    Stored,
    addresses_to_look_up,
    could_write,
    instances,
    known_event,
    plan_message,
    planned_record,
    series_uids,
)
from mailbot.ports import (
    Calendar,
    Directory,
    MessageKey,
    MessageRecord,
    ProcessedMessage,
    RejectedError,
    StateStore,
    StoredEvent,
)

LOG = logging.getLogger("mailbot.service")
WRITING = frozenset({Outcome.CREATE, Outcome.UPDATE, Outcome.CANCEL, Outcome.RESPONSE})


@dataclass(frozen=True, slots=True)
class MailItem:
    key: MessageKey
    raw: bytes
    received_at: datetime | None = None
    ignored_parts: int = 0  # attachments a partial fetch left on the server


@dataclass(frozen=True, slots=True)
class Handled:
    """What handling one message did: its summary outcome and one record per decision."""

    key: MessageKey
    outcome: str  # "synced", "skipped", "failed" or "already-processed"
    records: tuple[dict[str, Any], ...] = ()
    writes: int = 0


@dataclass(frozen=True, slots=True)
class _Done:
    planned: Planned
    netsuite_id: str | None
    written: bool
    error: str | None = None


class SyncService:
    def __init__(
        self,
        policy: Policy,
        directory: Directory,
        calendar: Calendar,
        state: StateStore,
        *,
        horizon: timedelta = timedelta(days=180),
        past: timedelta = timedelta(days=30),
    ) -> None:
        self.policy = policy
        self.directory = directory
        self.calendar = calendar
        self.state = state
        self.horizon = horizon
        self.past = past

    def handle_batch(self, items: Sequence[MailItem], now: datetime) -> list[Handled]:
        """Several messages: one directory look-up for all their addresses, then each in turn.

        Messages are still planned one after the other, each against the state the previous
        one left, so a batch holding an invitation and its update is handled correctly.
        """
        reads = self.prepare(items)
        return [self.handle(item, now, reads.get(item.key)) for item in items]

    def prepare(self, items: Sequence[MailItem]) -> dict[MessageKey, ReadMessage]:
        """Each message not processed yet, read by the core, and one directory look-up for
        the addresses of them all (it fills the directory's cache for the batch)."""
        reads: dict[MessageKey, ReadMessage] = {}
        for item in items:
            try:
                read = self._read(item)
            except Exception:  # noqa: BLE001, S112 - read again, and blamed, when handled
                continue
            if read is not None:
                reads[item.key] = read
        addresses = set().union(
            *(addresses_to_look_up(read) for read in reads.values() if self._worth_asking(read))
        )
        if addresses:
            self.directory.lookup(addresses)
        return reads

    def handle(self, item: MailItem, now: datetime, read: ReadMessage | None = None) -> Handled:
        digest = hashlib.sha256(item.raw).hexdigest()
        seen = self.state.processed(item.key)
        if seen is not None and seen.content_hash == digest and seen.outcome != "failed":
            return Handled(item.key, "already-processed")
        if seen is None and (copy := self.state.processed_copy(item.key, digest)) is not None:
            return self._recognise_copy(item, digest, copy, now)
        read = read or read_message(item.raw, self.policy)
        found = instances(read, self.policy, self.horizon, self.past)
        answer = self._look_up(read) if self._worth_asking(read) else DirectoryAnswer()
        uids = series_uids(read)
        previous = self._previous_events(found, uids)
        stored = _as_stored(previous, uids)
        plan = plan_message(read, found, answer, stored, self.policy)
        done = [self._carry_out(planned) for planned in plan]
        events = [_stored_event(r, previous.get(r.planned.external_id or "")) for r in done]
        return self._record(item, digest, read, done, [e for e in events if e], now)

    def _read(self, item: MailItem) -> ReadMessage | None:
        """The message read by the core, unless it was processed already (then None)."""
        seen = self.state.processed(item.key)
        if seen is not None and seen.outcome != "failed":
            return None
        if seen is None:
            digest = hashlib.sha256(item.raw).hexdigest()
            if self.state.processed_copy(item.key, digest) is not None:
                return None
        return read_message(item.raw, self.policy)

    def _recognise_copy(
        self, item: MailItem, digest: str, copy: ProcessedMessage, now: datetime
    ) -> Handled:
        """The same bytes were processed before in this folder under another UIDVALIDITY (the
        server renumbered the folder): the new key takes the earlier outcome, with nothing
        decided or written again."""
        LOG.info(
            "%s has the content of %s (Message-ID %s), processed %s as %s: not handled again",
            item.key,
            copy.key,
            copy.message_id,
            copy.processed_at.isoformat(timespec="seconds"),
            copy.outcome,
        )
        self.state.record(
            MessageRecord(
                key=item.key,
                message_id=copy.message_id,
                content_hash=digest,
                outcome=copy.outcome,
                processed_at=now.astimezone(UTC),
            )
        )
        return Handled(item.key, "already-processed")

    def _worth_asking(self, read: ReadMessage) -> bool:
        """The CRM is asked only when some calendar object passes the rules that need no CRM."""
        return could_write(read, self.policy)

    def _look_up(self, read: ReadMessage) -> DirectoryAnswer:
        return self.directory.lookup(addresses_to_look_up(read))

    def _previous_events(self, found: list[Instance], uids: set[str]) -> dict[str, StoredEvent]:
        keys = {instance.external_id for instance in found}
        keys |= {
            external_id(i.series_uid, None) for i in found if i.series_uid
        }  # series tombstones
        events = dict(self.state.events(keys))
        for uid in uids:
            events.update({event.external_id: event for event in self.state.series_events(uid)})
        return events

    def _carry_out(self, planned: Planned) -> _Done:
        write = planned.write
        if write is None:
            return _Done(planned, None, written=False)
        netsuite_id: str | None
        try:
            if write.kind == "upsert":
                netsuite_id = self.calendar.upsert(write.external_id, write.body)
            else:
                netsuite_id = self.calendar.patch(write.external_id, write.body)
        except RejectedError as error:
            LOG.warning("NetSuite refused %s: %s", write.external_id, error)
            return _Done(planned, None, written=False, error=str(error))
        return _Done(planned, netsuite_id, written=True)

    def _record(  # noqa: PLR0917 - the parts of one handled message
        self,
        item: MailItem,
        digest: str,
        read: ReadMessage,
        done: list[_Done],
        events: list[StoredEvent],
        now: datetime,
    ) -> Handled:
        records = tuple(self._decision_record(item, read, result) for result in done)
        failed = any(result.error for result in done)
        synced = any(result.written for result in done)
        outcome = "failed" if failed else "synced" if synced else "skipped"
        self.state.record(
            MessageRecord(
                key=item.key,
                message_id=read.envelope.message_id,
                content_hash=digest,
                outcome=outcome,
                processed_at=now.astimezone(UTC),
                events=events,
                decisions=records,
            )
        )
        writes = sum(result.written for result in done)
        return Handled(item.key, outcome, records, writes)

    def _decision_record(self, item: MailItem, read: ReadMessage, result: _Done) -> dict[str, Any]:
        record = decision_record(
            item.key.uid, read.envelope, result.planned.decision, self.policy, read.notes
        )
        record.update(planned_record(result.planned))
        record["attachments_ignored"] += item.ignored_parts
        record.update(
            netsuite_id=result.netsuite_id,
            written=result.written,
            message_id=read.envelope.message_id,
            error=result.error,
        )
        return record


def _as_stored(previous: dict[str, StoredEvent], uids: set[str]) -> Stored:
    return Stored(
        events={
            eid: known_event(
                e.revision, e.body, e.cancelled, e.reply_revisions, e.netsuite_id is not None
            )
            for eid, e in previous.items()
        },
        bodies={eid: e.body for eid, e in previous.items()},
        series={
            uid: tuple(
                sorted(eid for eid, e in previous.items() if e.uid == uid and e.recurrence_key)
            )
            for uid in uids
        },
    )


def _stored_event(result: _Done, previous: StoredEvent | None) -> StoredEvent | None:
    """The event map entry after a successful write."""
    planned = result.planned
    invitation = planned.decision.invitation
    if invitation is None or planned.external_id is None:
        return None
    if planned.decision.outcome is Outcome.UNCHANGED and previous is not None:
        # nothing to write, but a newer revision of the same content still counts: an older
        # version arriving later must be stale, not an update
        incoming = revision(invitation.sequence, invitation.dtstamp)
        return replace(previous, revision=incoming) if incoming > previous.revision else None
    if not (result.written or planned.tombstone):
        return None
    body = planned.stored_body or {}
    incoming = revision(invitation.sequence, invitation.dtstamp)
    replies = dict(previous.reply_revisions) if previous else {}
    if planned.replying is not None:  # a reply changes one attendee, not the event's revision
        replies[planned.replying] = incoming
        incoming = previous.revision if previous else incoming
    return StoredEvent(
        external_id=planned.external_id,
        uid=invitation.uid,
        recurrence_key=instant_text(invitation.recurrence_id) if invitation.recurrence_id else "",
        netsuite_id=result.netsuite_id or (previous.netsuite_id if previous else None),
        revision=incoming if previous is None else max(incoming, previous.revision),
        body_hash=body_hash(body),
        body=body,
        cancelled=body.get("status") == "CANCELLED",
        reply_revisions=replies,
    )

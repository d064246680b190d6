"""The ``Calendar`` port over NetSuite REST ``calendarEvent`` records, by external id.

Both writes are idempotent: ``upsert`` is ``PUT calendarEvent/eid:<external id>`` (creates the
event or updates the one with that external id, netsuite-rest.md section 4) and ``patch`` is
``PATCH calendarEvent/eid:<external id>``. When the body holds an ``attendee`` sublist it is
sent with ``?replace=attendee``, so the list written is the whole list (NetSuite otherwise
merges sublists); a body without one leaves the attendees as they are.

The client's typed errors leave as the port's (``translation.translated_errors``): a refused
write (4xx) is ``RejectedError`` (this message fails), a transient one (429, 5xx, timeouts)
``TemporaryError`` (try again later), refused credentials ``FatalError`` (nothing works until
an admin acts).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mailbot.adapters.netsuite.client import NetSuiteClient, checked_external_id
from mailbot.adapters.netsuite.translation import translated_errors

ATTENDEES = "attendee"


class NetSuiteCalendar:
    """Writes events through a shared ``NetSuiteClient`` (thread-safe, as the client is)."""

    def __init__(self, client: NetSuiteClient) -> None:
        self._client = client

    def upsert(self, external_id: str, body: dict[str, Any]) -> str:
        """Create or update the event with this external id; returns its internal id.

        The body may carry ``externalId`` (NetSuite accepts it on an upsert when it equals
        the one in the URL); a different one is a ``ValueError`` and nothing is sent.
        """
        stated = body.get("externalId")
        if stated is not None and stated != external_id:
            raise ValueError(
                f"body externalId {stated!r} differs from the external id {external_id!r}"
            )
        with translated_errors():
            return self._client.upsert_event(external_id, body, replace=replaced_sublists(body))

    def patch(self, external_id: str, body: dict[str, Any]) -> str | None:
        """Change the fields in ``body`` of the event with this external id.

        Returns the internal id from the answer's ``Location``, or None when NetSuite does
        not name it. A missing event is ``RejectedError`` (404 ``NONEXISTENT_ID``).
        """
        ref = f"eid:{checked_external_id(external_id)}"
        with translated_errors():
            return self._client.patch_event(ref, body, replace=replaced_sublists(body))


def replaced_sublists(body: Mapping[str, Any]) -> tuple[str, ...]:
    """The sublists to replace as a whole: the attendees, when the body lists them."""
    return (ATTENDEES,) if ATTENDEES in body else ()

"""The settings the pure core needs, as one frozen value built by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on hostile or absurd input; anything beyond one is a ``too_large`` decision.

    Each one bounds the time and memory a message costs the parsers (``bounds.py`` checks
    the raw bytes before they run; ``bench/limits.py`` measures the worst case of each).
    """

    max_message_bytes: int = 25 * 1024 * 1024
    max_message_lines: int = 1_000_000  # the email parser keeps every line as an object
    max_line_bytes: int = 1024 * 1024
    max_header_fields: int = 5000  # in all header sections: the message's and its parts'
    max_header_bytes: int = 256 * 1024  # one header section
    max_mime_depth: int = 10
    max_mime_parts: int = 500
    max_calendar_bytes: int = 4 * 1024 * 1024  # the message's calendar data, all parts
    max_calendar_lines: int = 20_000  # its content lines (folded lines joined)
    max_events_per_message: int = 200
    max_attendees: int = 500
    max_occurrences: int = 1000  # instances of one series written in occurrences mode


class OpportunityChoice(StrEnum):
    """Which open opportunity of the matched company an event is linked to."""

    ONLY_ONE = "only_one"  # link when exactly one is open (the spec's default)
    MOST_RECENT = "most_recent"  # the one closing latest (then the highest id)
    NEVER = "never"


class RecurrenceMode(StrEnum):
    """How a recurring series reaches NetSuite (event-sync-spec.md section 7)."""

    OCCURRENCES = "occurrences"  # one event per instance within a horizon
    SERIES = "series"  # one event with NetSuite's native recurrence fields


@dataclass(frozen=True, slots=True)
class MatchPolicy:
    """CRM matching choices (event-sync-spec.md section 5).

    ``mailbox_addresses`` are the sync mailbox and its aliases (never matched);
    ``ignore_patterns`` are shell-style patterns of addresses to leave out (rooms, bots);
    ``default_employee_id`` organizes events whose organizer and forwarder are no employees;
    ``allow_internal_only`` syncs meetings that match employees only.
    """

    mailbox_addresses: frozenset[str] = frozenset()
    ignore_patterns: tuple[str, ...] = ()
    default_employee_id: str | None = None
    opportunity: OpportunityChoice = OpportunityChoice.ONLY_ONE
    allow_internal_only: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    """How the rules are applied.

    ``sync_zone`` is the time zone of the NetSuite user whose calendar receives the events
    (config ``netsuite.timezone``): the single-day rule and the written times use it.
    ``trusted_authserv_ids`` are the ``Authentication-Results`` authserv-ids added by the
    receiving server; headers from any other id are ignored (anyone can write them).
    ``sender_domains`` are the domains whose senders may write into the CRM besides active
    employees (usually the organisation's own); a calendar reply forwarded from one of them
    (Outlook "Accepted: ..." forwarded by a salesperson) is accepted.
    ``matching`` holds the CRM matching choices (used by the sync engine, not by explain).
    """

    sync_zone: tzinfo = field(default_factory=lambda: ZoneInfo("UTC"))
    sync_zone_name: str = "UTC"
    limits: Limits = field(default_factory=Limits)
    trusted_authserv_ids: frozenset[str] = frozenset()
    sender_domains: frozenset[str] = frozenset()
    matching: MatchPolicy = field(default_factory=MatchPolicy)
    recurrence: RecurrenceMode = RecurrenceMode.OCCURRENCES
    max_text_length: int = 4000

    @classmethod
    def for_zone(cls, zone_name: str, **overrides: object) -> Policy:
        """A policy for the IANA zone ``zone_name`` (raises ZoneInfoNotFoundError if unknown)."""
        return cls(sync_zone=ZoneInfo(zone_name), sync_zone_name=zone_name, **overrides)  # type: ignore[arg-type]

"""The settings the pure core needs, as one frozen value built by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on hostile or absurd input; anything beyond one is a ``too_large`` decision."""

    max_message_bytes: int = 25 * 1024 * 1024
    max_mime_depth: int = 10
    max_mime_parts: int = 500
    max_calendar_bytes: int = 4 * 1024 * 1024
    max_events_per_message: int = 200
    max_attendees: int = 500


@dataclass(frozen=True, slots=True)
class Policy:
    """How the rules are applied.

    ``sync_zone`` is the time zone of the NetSuite user whose calendar receives the events
    (config ``netsuite.timezone``): the single-day rule and the written times use it.
    ``trusted_authserv_ids`` are the ``Authentication-Results`` authserv-ids added by the
    receiving server; headers from any other id are ignored (anyone can write them).
    """

    sync_zone: tzinfo = field(default_factory=lambda: ZoneInfo("UTC"))
    sync_zone_name: str = "UTC"
    limits: Limits = field(default_factory=Limits)
    trusted_authserv_ids: frozenset[str] = frozenset()
    forwarder_domains: frozenset[str] = frozenset()
    max_text_length: int = 4000

    @classmethod
    def for_zone(cls, zone_name: str, **overrides: object) -> Policy:
        """A policy for the IANA zone ``zone_name`` (raises ZoneInfoNotFoundError if unknown)."""
        return cls(sync_zone=ZoneInfo(zone_name), sync_zone_name=zone_name, **overrides)  # type: ignore[arg-type]

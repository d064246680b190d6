"""The dry-run Calendar: it records what would be written and writes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RecordingCalendar:
    """Every write it was asked for, in order; ids it returns are marked as not real."""

    writes: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def upsert(self, external_id: str, body: dict[str, Any]) -> str:
        self.writes.append(("upsert", external_id, body))
        return f"dry-run:{external_id}"

    def patch(self, external_id: str, body: dict[str, Any]) -> str | None:
        self.writes.append(("patch", external_id, body))
        return None

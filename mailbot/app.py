"""The composition root: the only place where files, settings and the core are wired."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailbot.core.explanation import decision_record
from mailbot.core.pipeline import decide_message
from mailbot.core.policy import Policy


@dataclass(frozen=True, slots=True)
class ExplainedFile:
    """The records of one input file, or why it could not be read."""

    source: str
    records: tuple[dict[str, Any], ...] = ()
    error: str | None = None


def quiet_libraries() -> None:
    """mail-parser logs every part it does not render; icalendar warns on guessed zones.

    Both are reported by mailbot itself (decision details), so their own chatter is muted.
    """
    logging.getLogger("mailparser").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", module=r"icalendar(\..*)?")


def explain_files(sources: list[str], policy: Policy) -> Iterator[ExplainedFile]:
    """Each file through the core, in the order given."""
    quiet_libraries()
    for source in sources:
        try:
            raw = Path(source).read_bytes()
        except OSError as error:
            yield ExplainedFile(source, error=error.strerror or str(error))
            continue
        yield explain_bytes(source, raw, policy)


def explain_bytes(source: str, raw: bytes, policy: Policy) -> ExplainedFile:
    result = decide_message(raw, policy)
    records = tuple(
        decision_record(source, result.envelope, decision, policy, result.notes)
        for decision in result.decisions
    )
    return ExplainedFile(source, records)

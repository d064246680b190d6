"""Golden files: each fixture against the decisions written by reading it (GOLDEN.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mailbot.app import explain_bytes
from mailbot.core.policy import Policy

FIXTURES = Path(__file__).parent.parent / "fixtures"
EXPECTED = sorted((FIXTURES / "expected").glob("*.json"))
NETSUITE_KEYS = (
    "title",
    "startDate",
    "startTime",
    "endTime",
    "allDayEvent",
    "timedEvent",
    "status",
    "accessLevel",
)


def _recurrence_parts(value: str | None) -> set[str] | None:
    return None if value is None else {part.strip().upper() for part in value.split(";")}


def _comparable(key: str, value: Any) -> Any:
    if key == "recurrence":
        return _recurrence_parts(value)
    if key == "netsuite" and value is not None:
        return {name: value.get(name) for name in NETSUITE_KEYS}
    return value


@pytest.mark.parametrize("expected_file", EXPECTED, ids=lambda path: path.name[:-5])
def test_fixture_matches_its_golden_decisions(expected_file: Path) -> None:
    golden = json.loads(expected_file.read_text(encoding="utf-8"))
    fixture = FIXTURES / golden["fixture"]
    policy = Policy.for_zone(golden["sync_zone"])
    records = explain_bytes(golden["fixture"], fixture.read_bytes(), policy).records
    expected = golden["decisions"]
    assert len(records) == len(expected), [
        (r["outcome"], r["reason"], r["detail"]) for r in records
    ]
    for index, (record, wanted) in enumerate(zip(records, expected, strict=True)):
        for key, value in wanted.items():
            if key == "netsuite" and wanted["outcome"] == "response":
                continue  # the response body is pinned by the planner's unit tests
            assert _comparable(key, record[key]) == _comparable(key, value), (
                f"decision {index} key {key!r}: got {record[key]!r}, golden {value!r}; "
                f"detail: {record['detail']}"
            )


def test_every_fixture_has_a_golden_file() -> None:
    fixtures = [
        path
        for path in (FIXTURES / "corpus").rglob("*")
        if path.is_file() and path.name != "SOURCES.md"
    ] + [path for path in (FIXTURES / "handmade").glob("*") if path.suffix in {".eml", ".ics"}]
    expected_names = {path.name[:-5] for path in EXPECTED}
    missing = sorted(path.name for path in fixtures if path.name not in expected_names)
    assert missing == []

"""Property tests: whatever bytes come in, only decisions come out of the core."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.core.model import Decision, Outcome
from mailbot.core.pipeline import decide_message
from mailbot.core.policy import Policy

POLICY = Policy.for_zone("Europe/Berlin")
CORPUS = Path(__file__).parent.parent / "fixtures" / "corpus"
SEEDS = sorted(
    path.read_bytes()
    for path in CORPUS.rglob("*")
    if path.is_file() and path.stat().st_size < 40_000 and path.name != "SOURCES.md"
)


def _assert_only_decisions(raw: bytes) -> None:
    result = decide_message(raw, POLICY)
    assert result.decisions, "every input gets at least one decision"
    for decision in result.decisions:
        assert isinstance(decision, Decision)
        assert (decision.reason is None) == (decision.outcome is not Outcome.SKIP)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    _assert_only_decisions(raw)


@st.composite
def mutated_corpus_file(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        action = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "duplicate"]))
        if action == "flip" and data:
            data[position] = draw(st.integers(0, 255))
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 64))]
        elif action == "insert":
            data[position:position] = draw(
                st.sampled_from(
                    [
                        b"\r\n",
                        b":",
                        b";",
                        b"=",
                        b"BEGIN:VEVENT\r\n",
                        b"END:VCALENDAR",
                        b"\x00",
                        b"TZID=",
                        b"--",
                        b"Content-Type: message/rfc822\r\n",
                        b"\xff\xfe",
                    ]
                )
            )
        elif action == "truncate":
            del data[position:]
        elif action == "duplicate":
            data[position:position] = data[position : position + 200]
    return bytes(data)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_corpus_file())
def test_mutated_corpus_files_never_raise(raw: bytes) -> None:
    _assert_only_decisions(raw)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_calendar_text_never_raises(text: str) -> None:
    _assert_only_decisions(("BEGIN:VCALENDAR\r\n" + text).encode("utf-8", "surrogatepass"))

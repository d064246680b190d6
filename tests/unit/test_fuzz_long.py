"""The long fuzzing run (``make test-long``): a hundred thousand inputs generated from the
corpus through every pure step the daemon and ``mailbot explain`` take; none may raise and
none may hang. ``python bench/fuzz_core.py COUNT SEED`` runs the same with other seeds.
"""

from __future__ import annotations

import pytest

from bench.hostile import fuzz, fuzz_policies, seed_files

INPUTS = 100_000
SEED = 1
HANG_SECONDS = 30.0  # one input; a safety net far above the slowest measured (about 0.1 s)


@pytest.mark.long
def test_a_hundred_thousand_generated_inputs_raise_nothing_and_end() -> None:
    report = fuzz(INPUTS, SEED, fuzz_policies(), slow_seconds=HANG_SECONDS)
    print(
        f"\nfuzz: {report.inputs} inputs from {len(seed_files())} corpus files (seed {SEED}), "
        f"{sum(report.escaped.values())} exceptions escaped, {len(report.slow)} over "
        f"{HANG_SECONDS:.0f} s, slowest {report.slowest_s * 1000:.0f} ms, "
        f"{report.elapsed_s:.0f} s in all"
    )
    assert report.inputs == INPUTS
    escaped = {place: report.examples[place][:300] for place in report.escaped}
    assert not escaped, f"exceptions escaped (first input of each): {escaped}"
    assert not report.slow, f"{len(report.slow)} inputs ran over {HANG_SECONDS} s"


def test_the_fuzzer_counts_what_escapes() -> None:
    """The long run would pass if nothing were ever caught: a target that raises proves
    the count."""

    def fragile(raw: bytes, _policy: object) -> None:
        if b"BEGIN:VEVENT" in raw:
            raise ValueError("boom")

    report = fuzz(50, SEED, fuzz_policies(), slow_seconds=HANG_SECONDS, target=fragile)
    assert report.inputs == 50
    assert 0 < sum(report.escaped.values()) <= 50
    assert all(place.startswith("ValueError at test_fuzz_long.py:") for place in report.escaped)

"""Mutation fuzzing of the pure core: corpus files, mutated, through every pure step.

Prints one JSON object: inputs tried, exceptions that escaped (with where), inputs that
took longer than 2 s, the slowest input and the rate. Usage:
python bench/fuzz_core.py [COUNT] [SEED]. Slow inputs and one input per escaped exception
are written to the current folder (fuzz-slow-N.bin, fuzz-escaped-N.bin) for investigation.
The mutator and the steps run are those of bench/hostile.py, shared with the long test
(tests/unit/test_fuzz_long.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.hostile import fuzz, fuzz_policies, seed_files  # noqa: E402
from mailbot.app import quiet_libraries  # noqa: E402

SLOW_SECONDS = 2.0


def main(count: int, seed: int) -> dict[str, object]:
    quiet_libraries()
    report = fuzz(count, seed, fuzz_policies(), slow_seconds=SLOW_SECONDS)
    for number, data in enumerate(report.slow, start=1):
        Path(f"fuzz-slow-{number}.bin").write_bytes(data)
    for number, data in enumerate(report.examples.values(), start=1):
        Path(f"fuzz-escaped-{number}.bin").write_bytes(data)
    return {
        "benchmark": "bench/fuzz_core.py: corpus files spliced and mutated, through the pure core",
        "inputs": report.inputs,
        "seed": seed,
        "seed_files": len(seed_files()),
        "exceptions_escaped": sum(report.escaped.values()),
        "exceptions_by_place": dict(report.escaped),
        "inputs_over_2s": len(report.slow),
        "slowest_input_ms": round(report.slowest_s * 1000, 1),
        "inputs_per_s": round(report.inputs / report.elapsed_s, 1),
        "elapsed_s": round(report.elapsed_s, 1),
    }


if __name__ == "__main__":
    arguments = [int(value) for value in sys.argv[1:3]]
    result = main(*(arguments + [10_000, 1][len(arguments) :]))
    print(json.dumps(result, indent=2))
    sys.exit(1 if result["exceptions_escaped"] or result["inputs_over_2s"] else 0)

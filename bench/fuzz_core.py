"""Mutation fuzzing of the pure core: corpus files, mutated, through decide_message.

Prints one JSON object: inputs tried, exceptions that escaped (with where), the slowest input
and the rate. Usage: python bench/fuzz_core.py [COUNT] [SEED]. Slow inputs (over 2 s) are
written to the current folder as fuzz-slow-N.bin for investigation.
"""

from __future__ import annotations

import collections
import json
import random
import signal
import sys
import time
import traceback
from pathlib import Path
from types import FrameType

from mailbot.app import quiet_libraries
from mailbot.core.pipeline import decide_message
from mailbot.core.policy import Policy

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
SLOW_SECONDS = 2.0
TOKENS = (
    b"\r\n",
    b":",
    b";",
    b"=",
    b"BEGIN:VEVENT\r\n",
    b"END:VEVENT\r\n",
    b"BEGIN:VTIMEZONE\r\n",
    b"END:VCALENDAR",
    b"\x00",
    b"TZID=",
    b"--",
    b"Content-Type: message/rfc822\r\n\r\n",
    b"\xff\xfe",
    b"RRULE:FREQ=SECONDLY;COUNT=1000000000\r\n",
    b"=?utf-8?b?",
    b'charset="x"',
    b"DTSTART:",
    b"RECURRENCE-ID:",
    b"EXDATE:",
    b"Content-Transfer-Encoding: base64\r\n",
    b"boundary=",
    b";VALUE=DATE",
    b"BEGIN:DAYLIGHT\r\n",
)


class SlowInputError(Exception):
    """Raised by the alarm when one input takes longer than SLOW_SECONDS."""


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise SlowInputError


def mutate(seed: bytes, rng: random.Random) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 10)):
        position = rng.randrange(max(len(data), 1))
        roll = rng.random()
        if roll < 0.3 and data:
            data[position] = rng.randrange(256)
        elif roll < 0.5:
            del data[position : position + rng.randint(1, 80)]
        elif roll < 0.8:
            data[position:position] = rng.choice(TOKENS)
        elif roll < 0.9:
            data[position:position] = data[position : position + rng.randint(1, 300)]
        else:
            del data[position:]
    return bytes(data)


def main(count: int, seed: int) -> dict[str, object]:
    quiet_libraries()
    policy = Policy.for_zone("Europe/Berlin")
    seeds = [p.read_bytes() for p in sorted(FIXTURES.rglob("*")) if p.suffix in {".eml", ".ics"}]
    rng = random.Random(seed)  # noqa: S311 - reproducible mutations, not cryptography
    escaped: collections.Counter[str] = collections.Counter()
    slow = 0
    slowest = 0.0
    signal.signal(signal.SIGALRM, _alarm)
    started = time.perf_counter()
    for _ in range(count):
        data = mutate(rng.choice(seeds), rng)
        signal.setitimer(signal.ITIMER_REAL, SLOW_SECONDS)
        began = time.perf_counter()
        try:
            decide_message(data, policy)
        except SlowInputError:
            slow += 1
            Path(f"fuzz-slow-{slow}.bin").write_bytes(data)
        except Exception as error:  # noqa: BLE001 - counting what escapes is the point
            frame = traceback.extract_tb(error.__traceback__)[-1]
            escaped[f"{type(error).__name__} at {Path(frame.filename).name}:{frame.lineno}"] += 1
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        slowest = max(slowest, time.perf_counter() - began)
    elapsed = time.perf_counter() - started
    return {
        "benchmark": "bench/fuzz_core.py: mutated corpus files through decide_message",
        "inputs": count,
        "seed": seed,
        "seed_files": len(seeds),
        "exceptions_escaped": sum(escaped.values()),
        "exceptions_by_place": dict(escaped),
        "inputs_over_2s": slow,
        "slowest_input_ms": round(slowest * 1000, 1),
        "inputs_per_s": round(count / elapsed, 1),
        "elapsed_s": round(elapsed, 1),
    }


if __name__ == "__main__":
    arguments = [int(value) for value in sys.argv[1:3]]
    result = main(*(arguments + [10_000, 1][len(arguments) :]))
    print(json.dumps(result, indent=2))
    sys.exit(1 if result["exceptions_escaped"] or result["inputs_over_2s"] else 0)

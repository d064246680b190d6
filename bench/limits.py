"""What each input limit costs: hostile messages far over it, and the largest input under it.

For each limit (mailbot/core/policy.py ``Limits``, defaults) prints the message built
(bench/hostile.py), its size, the decision and the detail, the time the daemon's pure work
takes (read, expand, match, plan) and the peak of Python allocations meanwhile
(tracemalloc, measured in a second run). ``under`` rows are the worst case still accepted:
what the limit lets through. Usage: python bench/limits.py [--quick] (quick: the hostile
rows only). The figures are in docs/reliability.md.
"""

from __future__ import annotations

import gc
import json
import platform
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import hostile  # noqa: E402
from mailbot.app import quiet_libraries  # noqa: E402
from mailbot.core.pipeline import read_message  # noqa: E402
from mailbot.core.policy import Policy  # noqa: E402

MB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    limit: str
    kind: str  # "over" (hostile, refused) or "under" (the largest accepted)
    what: str
    build: Callable[[], bytes]


def _never_matching_series(count: int) -> bytes:
    rules = (
        b"FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
        b"FREQ=DAILY;BYMONTHDAY=31;BYMONTH=6;BYSETPOS=-1",
    )
    events = (
        hostile.vevent(f"never{n}@x", b"RRULE:" + rules[n % 2] + b"\r\n") for n in range(count)
    )
    return hostile.invitation(hostile.calendar(*events))


def _crowded_calendar(events: int, attendees: int) -> bytes:
    people = b"".join(b"ATTENDEE:mailto:a%d@client.example\r\n" % n for n in range(attendees))
    return hostile.invitation(
        hostile.calendar(*(hostile.vevent(f"e{n}@x", people) for n in range(events)))
    )


def _large_attachment(size: int) -> bytes:
    lines = size // 78
    return (
        hostile.HEADERS
        + b"Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n"
        + b"Content-Type: text/calendar; method=REQUEST\r\n\r\n"
        + hostile.calendar(hostile.vevent("attachment@x"))
        + b"--m\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + (b"QUJD" * 19 + b"\r\n") * lines
        + b"--m--\r\n"
    )


CASES = [
    Case("max_message_bytes", "over", "30 MiB message", lambda: hostile.oversized(30 * MB)),
    Case(
        "max_message_bytes", "under", "24 MiB base64 attachment", lambda: _large_attachment(24 * MB)
    ),
    Case("max_message_lines", "over", "2,000,000 lines", lambda: hostile.many_lines(2_000_000)),
    Case("max_message_lines", "under", "999,000 lines", lambda: hostile.many_lines(999_000)),
    Case("max_line_bytes", "over", "one 10 MiB line", lambda: hostile.long_line(10 * MB)),
    Case("max_line_bytes", "under", "one 1 MiB line", lambda: hostile.long_line(MB - 2)),
    Case(
        "max_header_fields",
        "over",
        "100,000 header lines",
        lambda: hostile.many_header_fields(100_000),
    ),
    Case(
        "max_header_fields", "over", "6,000 header fields", lambda: hostile.many_header_fields(6000)
    ),
    Case(
        "max_header_fields",
        "under",
        "4,990 header fields",
        lambda: hostile.many_header_fields(4990),
    ),
    Case(
        "max_header_bytes",
        "over",
        "Subject of 40,000 encoded words",
        lambda: hostile.encoded_words_subject(40_000),
    ),
    Case(
        "max_header_bytes",
        "under",
        "Subject of 13,000 encoded words (250 KiB)",
        lambda: hostile.encoded_words_subject(13_000),
    ),
    Case("max_mime_depth", "over", "multipart 10,000 deep", lambda: hostile.deep_multipart(10_000)),
    Case(
        "max_mime_depth",
        "over",
        "message/rfc822 10,000 deep",
        lambda: hostile.deep_forwarding(10_000),
    ),
    Case("max_mime_depth", "under", "multipart 10 deep", lambda: hostile.deep_multipart(10)),
    Case("max_mime_parts", "over", "100,000 parts", lambda: hostile.many_parts(100_000)),
    Case("max_mime_parts", "under", "500 parts", lambda: hostile.many_parts(497)),
    Case("max_calendar_bytes", "over", "5 MiB calendar", lambda: hostile.big_calendar(5 * MB)),
    Case(
        "max_calendar_bytes",
        "under",
        "3.9 MiB calendar",
        lambda: hostile.big_calendar(4 * MB - 100_000),
    ),
    Case(
        "max_calendar_lines",
        "over",
        "100,000 content lines",
        lambda: hostile.many_content_lines(100_000),
    ),
    Case(
        "max_calendar_lines",
        "under",
        "19,980 content lines",
        lambda: hostile.many_content_lines(19_980),
    ),
    Case("max_events_per_message", "over", "10,000 VEVENTs", lambda: hostile.many_events(10_000)),
    Case("max_events_per_message", "under", "200 VEVENTs", lambda: hostile.many_events(200)),
    Case("max_attendees", "over", "100,000 attendees", lambda: hostile.many_attendees(100_000)),
    Case("max_attendees", "over", "5,000 attendees", lambda: hostile.many_attendees(5000)),
    Case(
        "max_attendees",
        "under",
        "200 VEVENTs of 90 attendees (19,800 lines)",
        lambda: _crowded_calendar(200, 90),
    ),
    Case(
        "max_occurrences",
        "over",
        "FREQ=SECONDLY;COUNT=1000000000",
        lambda: hostile.recurring(b"FREQ=SECONDLY;COUNT=1000000000"),
    ),
    Case(
        "max_occurrences",
        "over",
        "FREQ=DAILY, every second listed, COUNT=10^9",
        lambda: hostile.recurring(hostile.EVERY_SECOND_OF_THE_DAY),
    ),
    Case(
        "max_occurrences",
        "over",
        "200 series that never match",
        lambda: _never_matching_series(200),
    ),
    Case(
        "max_occurrences",
        "over",
        "RDATE of 200,000 instants (one folded line)",
        lambda: hostile.listed_dates(200_000, 0),
    ),
    Case(
        "max_occurrences",
        "over",
        "RDATE of 60,000 instants, EXDATE of 60,000 dates",
        lambda: hostile.listed_dates(60_000, 60_000),
    ),
    Case(
        "max_occurrences",
        "under",
        "FREQ=DAILY;COUNT=1000000000",
        lambda: hostile.recurring(b"FREQ=DAILY;COUNT=1000000000"),
    ),
    Case(
        "(address parser)",
        "over",
        "From of 100,000 nested comments",
        lambda: hostile.nested_comments_from(100_000),
    ),
]


def measure(case: Case, policy: Policy) -> dict[str, Any]:
    raw = case.build()
    gc.collect()
    began = time.perf_counter()
    planned = hostile.plan_read(read_message(raw, policy), policy)
    seconds = time.perf_counter() - began
    gc.collect()
    tracemalloc.start()
    hostile.plan_read(read_message(raw, policy), policy)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    first = planned[0].decision if planned else None
    outcomes = sorted({p.decision.reason or p.decision.outcome for p in planned})
    return {
        "limit": case.limit,
        "kind": case.kind,
        "input": case.what,
        "bytes": len(raw),
        "decisions": len(planned),
        "outcome": "/".join(str(o) for o in outcomes),
        "detail": (first.detail or "")[:90] if first else "",
        "seconds": round(seconds, 3),
        "peak_mb": round(peak / MB, 1),
    }


def main(quick: bool) -> dict[str, Any]:
    quiet_libraries()
    policy = Policy.for_zone("Europe/Berlin")
    rows = [measure(case, policy) for case in CASES if not (quick and case.kind == "under")]
    return {
        "benchmark": "bench/limits.py: each input limit, over it and at it (defaults)",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "rows": rows,
        "slowest_over_s": max(r["seconds"] for r in rows if r["kind"] == "over"),
        "largest_over_peak_mb": max(r["peak_mb"] for r in rows if r["kind"] == "over"),
    }


if __name__ == "__main__":
    print(json.dumps(main("--quick" in sys.argv[1:]), indent=2))

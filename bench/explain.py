"""Benchmark of the pure core (``decide_message``) against a bare parse of the same files.

Run from the repository root::

    .venv/bin/python bench/explain.py

Prints one JSON object: every figure beside its limit, all measured in this run.

* ``core_rate``: messages per second through ``decide_message`` over the corpus mix
  (every file under tests/fixtures/corpus/{eml,ics,tnef}), best round; the median too.
* ``bare_parse_rate``: the same files through the parsers alone (see
  ``bare_parse_definition``), timed in the same rounds, interleaved with the core (A, B, A, B).
* ``ratio`` = core_rate / bare_parse_rate, checked against ``target_ratio``.
* ``memory_growth``: peak traced memory (tracemalloc) of one pass over 16 times the mix,
  divided by that of one pass over the mix once; checked against ``memory_limit``.

Only the standard library and the project's own dependencies are used. Nothing is written.
"""

from __future__ import annotations

import gc
import itertools
import json
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import icalendar  # noqa: E402
import mailparser  # noqa: E402
import tnefparse  # noqa: E402

from mailbot.app import quiet_libraries  # noqa: E402
from mailbot.core.pipeline import decide_message  # noqa: E402
from mailbot.core.policy import Policy  # noqa: E402

CORPUS = ROOT / "tests" / "fixtures" / "corpus"
KINDS = ("eml", "ics", "tnef")
ZONE = "Europe/Berlin"

TARGET_RATIO = 0.6
MEMORY_LIMIT = 1.5
MEMORY_MULTIPLES = (1, 4, 16)

MIN_TIMED_SECONDS = 3.0  # core arm, summed over rounds
MIN_ROUNDS = 5
MAX_ROUNDS = 200
MAX_TIMING_SECONDS = 12.0  # wall clock of the interleaved rounds, both arms

RUN_BUDGET_SECONDS = 38.0  # the whole run; the memory passes get what the rest left over
MEMORY_BUDGET_SECONDS = 24.0  # at most, for all traced passes together
TRACE_SLOWDOWN = 6.0  # assumed cost of tracemalloc on this code (measured ~5x; reported)

CALENDAR_CONTENT_TYPES = frozenset({"text/calendar", "application/ics"})
VCALENDAR = b"BEGIN:VCALENDAR"

BARE_PARSE_DEFINITION = (
    ".eml: mailparser.parse_from_bytes(raw) (in try/except), then for every part of a plain "
    "parsed.message.walk() whose content type is text/calendar or application/ics or whose "
    "filename ends .ics: icalendar.Calendar.from_ical(part.get_payload(decode=True), "
    "multiple=True) in try/except; bare .ics: icalendar.Calendar.from_ical(raw, multiple=True) "
    "in try/except; .tnef: tnefparse.TNEF(raw, do_checksum=False) in try/except (the same call "
    "the core makes: the library default do_checksum=True would add work to the baseline only), "
    "then icalendar.Calendar.from_ical(value, multiple=True) in try/except on every attachment "
    "data and MAPI property value (string or bytes), at any embedding depth, that starts with "
    "BEGIN:VCALENDAR (trailing NULs stripped). No envelope, rules, planning or pre-scan."
)


# ----------------------------------------------------------------------------- the corpus


def load_mix() -> tuple[dict[str, list[bytes]], dict[str, list[str]]]:
    """Every file of the three corpus folders, read once, grouped by kind (sorted by path)."""
    mix: dict[str, list[bytes]] = {}
    names: dict[str, list[str]] = {}
    for kind in KINDS:
        paths = sorted(p for p in (CORPUS / kind).rglob("*") if p.is_file())
        mix[kind] = [p.read_bytes() for p in paths]
        names[kind] = [p.relative_to(CORPUS).as_posix() for p in paths]
    return mix, names


def per_file_seconds(mix: dict[str, list[bytes]], policy: Policy) -> dict[str, list[float]]:
    """One untimed-arm pass of the core, each file timed alone (after the warm-up pass)."""
    seconds: dict[str, list[float]] = {}
    for kind in KINDS:
        seconds[kind] = []
        for raw in mix[kind]:
            start = time.perf_counter()
            decide_message(raw, policy)
            seconds[kind].append(time.perf_counter() - start)
    return seconds


# ------------------------------------------------------------------------------- the arms


def bare_parse(kind: str, raw: bytes) -> None:
    """Parse one file with the libraries alone (see BARE_PARSE_DEFINITION)."""
    if kind == "eml":
        _bare_eml(raw)
    elif kind == "ics":
        _bare_ical(raw)
    else:
        _bare_tnef(raw)


def _bare_ical(data: Any) -> bool:
    try:
        icalendar.Calendar.from_ical(data, multiple=True)
    except Exception:  # noqa: BLE001 - the bare arm swallows what the core reports
        return False
    return True


def _bare_eml(raw: bytes) -> None:
    try:
        parsed = mailparser.parse_from_bytes(raw)
    except Exception:  # noqa: BLE001 - the bare arm swallows what the core reports
        return
    for part in parsed.message.walk():
        filename = part.get_filename() or ""
        if part.get_content_type() in CALENDAR_CONTENT_TYPES or str(filename).lower().endswith(
            ".ics"
        ):
            _bare_ical(part.get_payload(decode=True))


def _bare_tnef(raw: bytes) -> None:
    try:
        tnef = tnefparse.TNEF(raw, do_checksum=False)
    except Exception:  # noqa: BLE001 - the bare arm swallows what the core reports
        return
    for value in _tnef_values(tnef, depth=0):
        data = value.encode("utf-8", errors="replace") if isinstance(value, str) else value
        if isinstance(data, bytes) and data.lstrip().startswith(VCALENDAR):
            _bare_ical(data.rstrip(b"\x00"))


def _tnef_values(tnef: Any, depth: int) -> Iterator[object]:
    for attr in getattr(tnef, "mapiprops", []):
        yield from _attr_values(attr)
    for attachment in getattr(tnef, "attachments", []):
        yield getattr(attachment, "data", b"")
        for attr in getattr(attachment, "mapi_attrs", []):
            yield from _attr_values(attr)
        embedded = getattr(attachment, "embed", None)
        if embedded is not None and depth < 8:
            yield from _tnef_values(embedded, depth + 1)


def _attr_values(attr: Any) -> list[object]:
    raw = getattr(attr, "raw_data", None)
    return list(raw) if isinstance(raw, list) else []


def core_pass(files: Iterable[bytes], policy: Policy) -> int:
    """decide_message over ``files``, results dropped as it goes; the number of decisions."""
    decisions = 0
    for raw in files:
        decisions += len(decide_message(raw, policy).decisions)
    return decisions


# ----------------------------------------------------------------------------- timing


def timed_arm(mix: dict[str, list[bytes]], run: Callable[[str, bytes], object]) -> dict[str, float]:
    """One pass over the whole mix, seconds per kind (perf_counter around each kind's group)."""
    gc.collect()
    seconds: dict[str, float] = {}
    for kind in KINDS:
        files = mix[kind]
        start = time.perf_counter()
        for raw in files:
            run(kind, raw)
        seconds[kind] = time.perf_counter() - start
    return seconds


def interleaved_rounds(mix: dict[str, list[bytes]], policy: Policy) -> dict[str, Any]:
    """Rounds of (core pass, bare pass) until the core arm has run MIN_TIMED_SECONDS."""

    def core(_kind: str, raw: bytes) -> object:
        return decide_message(raw, policy)

    core_rounds: list[dict[str, float]] = []
    bare_rounds: list[dict[str, float]] = []
    started = time.perf_counter()
    while len(core_rounds) < MAX_ROUNDS:
        core_rounds.append(timed_arm(mix, core))  # A
        bare_rounds.append(timed_arm(mix, bare_parse))  # B
        core_total = sum(sum(r.values()) for r in core_rounds)
        wall = time.perf_counter() - started
        if len(core_rounds) >= MIN_ROUNDS and (
            core_total >= MIN_TIMED_SECONDS or wall >= MAX_TIMING_SECONDS
        ):
            break
    return {
        "core": core_rounds,
        "bare": bare_rounds,
        "wall_s": time.perf_counter() - started,
    }


def rates(rounds: list[dict[str, float]], per_pass: int) -> tuple[float, float, float]:
    """(best, median, total seconds) of ``per_pass`` items per round time."""
    totals = [sum(r.values()) for r in rounds]
    return per_pass / min(totals), per_pass / statistics.median(totals), sum(totals)


def per_kind_us(rounds: list[dict[str, float]], counts: dict[str, int]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for kind in KINDS:
        if not counts[kind]:
            continue
        times = [r[kind] for r in rounds]
        result[kind] = {
            "files": counts[kind],
            "mean_us": round(sum(times) / len(times) / counts[kind] * 1e6, 1),
            "best_round_us": round(min(times) / counts[kind] * 1e6, 1),
            "median_round_us": round(statistics.median(times) / counts[kind] * 1e6, 1),
        }
    return result


# ----------------------------------------------------------------------------- memory


def memory_unit(
    mix: dict[str, list[bytes]], seconds: dict[str, list[float]], budget: float
) -> tuple[list[bytes], int]:
    """The files one "1x" memory pass runs over, and the stride that picked them.

    The whole mix when 1 + 4 + 16 traced passes over it fit ``budget`` (at TRACE_SLOWDOWN
    times the untraced per-file times just measured); otherwise every k-th file of each kind
    (the first of each kind always in, so the largest kinds and the TNEF stay), smallest k
    that fits.
    """
    passes = sum(MEMORY_MULTIPLES)
    for stride in range(1, 1 + max(len(files) for files in mix.values())):
        unit = [raw for kind in KINDS for raw in mix[kind][::stride]]
        cost = sum(t for kind in KINDS for t in seconds[kind][::stride])
        if cost * passes * TRACE_SLOWDOWN <= budget:
            return unit, stride
    return [mix[kind][0] for kind in KINDS if mix[kind]], 0


def traced_pass(files: list[bytes], multiple: int, policy: Policy) -> dict[str, Any]:
    """One pass over ``multiple`` copies of ``files`` (no list of copies is built), traced."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    messages = multiple * len(files)
    decisions = core_pass(itertools.chain.from_iterable(itertools.repeat(files, multiple)), policy)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    gc.collect()  # what is still alive once cyclic garbage of the last messages is gone
    retained, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "messages": messages,
        "decisions": decisions,
        "peak_kib": round(peak / 1024, 1),
        "retained_after_gc_kib": round(retained / 1024, 1),
        "seconds_traced": round(seconds, 2),
    }


# ----------------------------------------------------------------------------- main


def main() -> int:
    began = time.perf_counter()
    quiet_libraries()
    policy = Policy.for_zone(ZONE)
    mix, names = load_mix()
    counts = {kind: len(files) for kind, files in mix.items()}
    flat = [raw for kind in KINDS for raw in mix[kind]]
    if not flat:
        print(json.dumps({"error": f"no files under {CORPUS}"}))
        return 1

    # Warm-up: imports, lru_caches (zone names), regexes, both arms.
    decisions_per_pass = core_pass(flat, policy)
    for kind in KINDS:
        for raw in mix[kind]:
            bare_parse(kind, raw)
    file_seconds = per_file_seconds(mix, policy)
    slowest = sorted(
        ((t, names[kind][i]) for kind in KINDS for i, t in enumerate(file_seconds[kind])),
        reverse=True,
    )[:8]

    timing = interleaved_rounds(mix, policy)
    core_best, core_median, core_seconds = rates(timing["core"], len(flat))
    bare_best, bare_median, bare_seconds = rates(timing["bare"], len(flat))
    ratio = core_best / bare_best

    budget = min(MEMORY_BUDGET_SECONDS, RUN_BUDGET_SECONDS - (time.perf_counter() - began))
    unit, stride = memory_unit(mix, file_seconds, budget)
    unit_untraced = sum(t for kind in KINDS for t in file_seconds[kind][:: max(stride, 1)])
    memory = {f"{m}x": traced_pass(unit, m, policy) for m in MEMORY_MULTIPLES}
    low = memory[f"{MEMORY_MULTIPLES[0]}x"]["peak_kib"]
    high = memory[f"{MEMORY_MULTIPLES[-1]}x"]["peak_kib"]
    growth = high / low if low else float("inf")

    report = {
        "benchmark": "bench/explain.py: mailbot.core.pipeline.decide_message vs bare parse",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.platform(),
        "cpu": platform.machine(),
        "policy_zone": ZONE,
        "files": {
            "total": len(flat),
            **counts,
            "bytes": sum(len(raw) for raw in flat),
        },
        "decisions_per_pass": decisions_per_pass,
        "rounds": len(timing["core"]),
        "interleaving": "A (core pass over the mix), B (bare pass over the mix), repeated",
        "core_rate": round(core_best, 1),
        "core_rate_median": round(core_median, 1),
        "core_decisions_per_s": round(core_best * decisions_per_pass / len(flat), 1),
        "core_decisions_per_s_median": round(core_median * decisions_per_pass / len(flat), 1),
        "core_timed_s": round(core_seconds, 2),
        "bare_parse_rate": round(bare_best, 1),
        "bare_parse_rate_median": round(bare_median, 1),
        "bare_timed_s": round(bare_seconds, 2),
        "bare_parse_definition": BARE_PARSE_DEFINITION,
        "rate_unit": "messages per second over the mix (best round; median beside it)",
        "ratio": round(ratio, 3),
        "ratio_median": round(core_median / bare_median, 3),
        "target_ratio": TARGET_RATIO,
        "ratio_ok": ratio >= TARGET_RATIO,
        "per_kind_core_us": per_kind_us(timing["core"], counts),
        "per_kind_bare_us": per_kind_us(timing["bare"], counts),
        "slowest_files_core_us": {name: round(t * 1e6) for t, name in slowest},
        "memory_unit": {
            "files": len(unit),
            "of_mix": len(flat),
            "stride": stride,
            "bytes": sum(len(raw) for raw in unit),
            "why": (
                "the whole mix"
                if stride == 1
                else f"one file in {stride} of each kind (the first of each kind included): "
                f"21 traced passes over the whole mix would take about "
                f"{sum(map(sum, file_seconds.values())) * 21 * TRACE_SLOWDOWN:.0f} s "
                f"under tracemalloc, over the {budget:.0f} s memory budget"
            ),
            "untraced_s_per_1x": round(unit_untraced, 3),
        },
        "memory": memory,
        "memory_peak_kib": {key: value["peak_kib"] for key, value in memory.items()},
        "memory_growth": round(growth, 3),
        "memory_limit": MEMORY_LIMIT,
        "memory_ok": growth <= MEMORY_LIMIT,
        "total_run_s": round(time.perf_counter() - began, 1),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

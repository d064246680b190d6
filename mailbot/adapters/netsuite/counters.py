"""Thread-safe counts of the client's HTTP calls, by kind and outcome, and of its retries."""

from __future__ import annotations

import threading
from collections import Counter


class CallCounters:
    """Every HTTP attempt counts once under its kind and once under ``<kind>.<outcome>``.

    The outcome is the status code (``upsert.204``) or ``timeout`` / ``connection`` when no
    answer came. ``retries`` counts the waits before a repeated attempt.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def record(self, kind: str, outcome: int | str) -> None:
        with self._lock:
            self._counts[kind] += 1
            self._counts[f"{kind}.{outcome}"] += 1

    def record_retry(self) -> None:
        with self._lock:
            self._counts["retries"] += 1

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

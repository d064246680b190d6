"""Fault injection, the account's concurrency gate and the request log."""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What goes wrong, settable while the emulator runs (``NetSuiteEmulator.set_faults``).

    - ``latency_ms``: every admitted request waits this long while holding a concurrency slot;
    - ``latency_jitter_ms``: plus a wait drawn between 0 and this (slow answers vary);
    - ``error_rate``: share of requests answered with one of ``error_statuses`` (chosen at random);
    - ``reset_rate``: share of requests whose connection is closed without an answer;
    - ``stall_rate``: share of requests carried out as usual whose answer is then held back
      ``stall_seconds`` (longer than a client's read timeout: it gives up not knowing that
      the write was done, as when NetSuite is slow rather than down);
    - ``burst_429``: the next N requests are answered 429 CONCURRENCY_LIMIT_EXCEEDED;
    - ``script``: the faults of the next requests, in order, before the rates apply: "reset",
      "stall", an HTTP error status, or None (drawn as usual); each kind surely happens;
    - ``retry_after_seconds``: a ``Retry-After`` header on every 429 (NetSuite sends none);
    - ``seed``: makes the random choices repeatable.
    """

    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 503)
    reset_rate: float = 0.0
    stall_rate: float = 0.0
    stall_seconds: float = 0.0
    burst_429: int = 0
    script: tuple[str | int | None, ...] = ()
    retry_after_seconds: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        problems = []
        for name in ("latency_ms", "latency_jitter_ms", "stall_seconds"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative")
        for name in ("error_rate", "reset_rate", "stall_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be between 0 and 1")
        if self.error_rate and not self.error_statuses:
            problems.append("error_statuses must not be empty when error_rate is set")
        if any(not 400 <= status <= 599 for status in self.error_statuses):
            problems.append("error_statuses must be HTTP error statuses (400-599)")
        if any(not _scriptable(step) for step in self.script):
            problems.append('script: "reset", "stall", HTTP error statuses (400-599) or None')
        if "stall" in self.script and not self.stall_seconds:
            problems.append("stall_seconds must be set when the script stalls")
        if self.burst_429 < 0:
            problems.append("burst_429 must not be negative")
        if self.retry_after_seconds is not None and self.retry_after_seconds < 0:
            problems.append("retry_after_seconds must not be negative")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """The faults drawn for one request."""

    reset: bool = False
    burst_429: bool = False
    error_status: int | None = None
    latency_s: float = 0.0
    stall_s: float = 0.0  # hold the answer this long after carrying the request out
    retry_after_seconds: float | None = None


class FaultInjector:
    """Draws the faults of each request from the current plan; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plan = FaultPlan()
        self._random = random.Random()  # noqa: S311 (faults, not secrets)
        self._burst_left = 0
        self._script: list[str | int | None] = []

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    def set_plan(self, plan: FaultPlan) -> None:
        with self._lock:
            self._plan = plan
            self._random = random.Random(plan.seed)  # noqa: S311 (faults, not secrets)
            self._burst_left = plan.burst_429
            self._script = list(plan.script)

    def decide(self) -> FaultDecision:
        with self._lock:
            plan = self._plan
            step = self._script.pop(0) if self._script else None
            if step is not None:
                return _scripted(step, plan)
            if plan.reset_rate and self._random.random() < plan.reset_rate:
                return FaultDecision(reset=True)
            if self._burst_left > 0:
                self._burst_left -= 1
                return FaultDecision(burst_429=True, retry_after_seconds=plan.retry_after_seconds)
            error_status = None
            if plan.error_rate and self._random.random() < plan.error_rate:
                error_status = self._random.choice(plan.error_statuses)
            latency_ms = plan.latency_ms
            if plan.latency_jitter_ms:
                latency_ms += self._random.uniform(0.0, plan.latency_jitter_ms)
            stalled = bool(plan.stall_rate) and self._random.random() < plan.stall_rate
            return FaultDecision(
                error_status=error_status,
                latency_s=latency_ms / 1000.0,
                stall_s=plan.stall_seconds if stalled and error_status is None else 0.0,
                retry_after_seconds=plan.retry_after_seconds,
            )


def _scriptable(step: str | int | None) -> bool:
    if isinstance(step, bool):
        return False
    return step in (None, "reset", "stall") or (isinstance(step, int) and 400 <= step <= 599)


def _scripted(step: str | int, plan: FaultPlan) -> FaultDecision:
    if step == "reset":
        return FaultDecision(reset=True)
    latency_s = plan.latency_ms / 1000.0
    if step == "stall":
        return FaultDecision(latency_s=latency_s, stall_s=plan.stall_seconds)
    return FaultDecision(
        error_status=int(step), latency_s=latency_s, retry_after_seconds=plan.retry_after_seconds
    )


class ConcurrencyGate:
    """The per-account limit on requests in flight (netsuite-rest.md section 6)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("concurrency_limit must be at least 1")
        self.limit = limit
        self._lock = threading.Lock()
        self._in_flight = 0
        self._peak = 0

    def try_enter(self) -> bool:
        with self._lock:
            if self._in_flight >= self.limit:
                return False
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
            return True

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    @property
    def peak(self) -> int:
        return self._peak


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One request as the emulator saw it; never holds credentials, signatures or tokens."""

    method: str
    path: str  # with the query string
    status: int | None  # None: the connection was closed without an answer
    duration_ms: float
    auth_scheme: str | None  # "OAuth", "Bearer" or None
    body_bytes: int
    error_code: str | None = None  # o:errorCode, or the OAuth 2.0 "error"
    fault: str | None = None  # "reset", "burst_429", "error", "concurrency", "stall" or None
    audit: str | None = None  # the Login Audit Trail reason of a rejected login


class RequestLog:
    """Every request in arrival order of its answer; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[LoggedRequest] = []

    def append(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._entries)

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()

    def status_counts(self) -> dict[int | None, int]:
        with self._lock:
            return dict(Counter(entry.status for entry in self._entries))

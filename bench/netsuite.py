"""Benchmark of the NetSuite client against the in-process NetSuite emulator.

Run from the repository root::

    .venv/bin/python bench/netsuite.py

Prints one JSON object, every figure beside its target, all measured in this run:

* ``upserts_per_second``: ``upsert_event`` calls completed per second by 1 and by 5 caller
  threads, with 0 ms and 50 ms of latency injected by the emulator (its account limit 5, the
  client's concurrency 5, token-based auth). ``throughput_ok``: with 5 threads and 50 ms at
  least 90% of the ideal 100 upserts/s (5 slots / 50 ms).
* ``client_overhead_ms_per_call``: time spent in the client per call, measured two ways (see
  ``method``), for token-based auth and for OAuth 2.0 client credentials; ``overhead_ok``:
  the mean CPU-time figure is at most 1 ms for both.

Only the standard library and the project's own dependencies are used. Nothing is written.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from mailbot.adapters.netsuite import (  # noqa: E402
    ClientCredentialsConfig,
    NetSuiteClient,
    NetSuiteConfig,
    TokenAuthConfig,
)
from mailbot.sim.netsuite import FaultPlan, NetSuiteEmulator  # noqa: E402

ACCOUNT_LIMIT = 5
CLIENT_CONCURRENCY = 5
THREADS = (1, 5)
LATENCIES_MS = (0.0, 50.0)
RUN_SECONDS = {0.0: 2.0, 50.0: 3.0}
WARM_UP_CALLS = 20
OVERHEAD_CALLS = 1500

TARGET_OVERHEAD_MS = 1.0
TARGET_SHARE_OF_IDEAL = 0.9
IDEAL_RATE = CLIENT_CONCURRENCY / 0.050  # 5 requests in flight, 50 ms each

METHOD = (
    "cpu (under client_overhead_ms_per_call.<auth>): time.thread_time() of the calling thread"
    " around each upsert_event call (one thread, 0 ms injected latency, {calls} calls after a"
    " warm-up), so it counts the client's code, requests/urllib3/http.client and the socket "
    "system calls made by that thread, and none of the emulator's work (it runs in other "
    "threads). wall_minus_server: wall time of each call minus the emulator's own duration "
    "for that request from its request log (its handling after the request headers are "
    "parsed); an upper bound that also holds the emulator's HTTP parsing, thread switches and"
    " GIL waits. Figures are medians, means and 95th percentiles over the calls. Throughput: "
    "completed upserts divided by the wall time of a fixed-length run, callers each upserting"
    " distinct external ids in a loop. Every run (each throughput cell, each overhead figure)"
    " gets a fresh emulator with the demo data and a fresh client."
)

EVENT = {
    "title": "Quarterly review",
    "startDate": "2026-03-02",
    "startTime": "10:00",
    "endTime": "11:00",
    "timedEvent": True,
    "status": "CONFIRMED",
}


def main() -> int:
    started = time.perf_counter()
    seen_429: list[int] = []
    rates = throughput_table(seen_429)
    tba = overhead_run("token_based_auth", seen_429)
    bearer = overhead_run("client_credentials", seen_429)
    best = rates["threads_5"]["latency_50ms"]
    worst_cpu = max(tba["cpu"]["mean"], bearer["cpu"]["mean"])
    report = {
        "benchmark": "netsuite client upserts against the in-process emulator",
        "upserts_per_second": rates,
        "throughput_5_threads_50ms": {
            "upserts_per_second": best,
            "target_at_least": TARGET_SHARE_OF_IDEAL * IDEAL_RATE,
            "ideal": IDEAL_RATE,
            "share_of_ideal": round(best / IDEAL_RATE, 3),
        },
        "throughput_ok": best >= TARGET_SHARE_OF_IDEAL * IDEAL_RATE,
        "client_overhead_ms_per_call": {
            "figure": worst_cpu,
            "target_at_most": TARGET_OVERHEAD_MS,
            "figure_is": "the larger mean CPU figure of the two auth schemes",
            "token_based_auth": tba,
            "client_credentials": bearer,
        },
        "overhead_ok": worst_cpu <= TARGET_OVERHEAD_MS,
        "http_429_seen_by_emulators": sum(seen_429),
        "method": METHOD.format(calls=OVERHEAD_CALLS),
        "settings": {
            "account_concurrency_limit": ACCOUNT_LIMIT,
            "client_concurrency": CLIENT_CONCURRENCY,
            "run_seconds": {f"{int(k)}ms": v for k, v in RUN_SECONDS.items()},
        },
        "python": platform.python_version(),
        "machine": platform.machine(),
        "run_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=2))
    return 0


# ----------------------------------------------------------------------------- set-up


def token_config(emulator: NetSuiteEmulator) -> NetSuiteConfig:
    secrets = emulator.credentials
    auth = TokenAuthConfig(
        secrets["consumer_key"],
        secrets["consumer_secret"],
        secrets["token_id"],
        secrets["token_secret"],
    )
    return NetSuiteConfig(
        emulator.account,
        auth=auth,
        base_url=emulator.base_url,
        concurrency=CLIENT_CONCURRENCY,
    )


def register_bench_integration(emulator: NetSuiteEmulator) -> ClientCredentialsConfig:
    """A fresh RSA 3072 key (PS256, the default) mapped to an integration of the account."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    emulator.register_oauth2_client("bench-client", "bench-certificate", public)
    return ClientCredentialsConfig("bench-client", "bench-certificate", private)


def oauth2_config(emulator: NetSuiteEmulator, auth: ClientCredentialsConfig) -> NetSuiteConfig:
    return NetSuiteConfig(
        emulator.account,
        auth=auth,
        base_url=emulator.base_url,
        concurrency=CLIENT_CONCURRENCY,
    )


# ----------------------------------------------------------------------------- throughput


@contextmanager
def emulator_and_client(auth: str = "token_based_auth") -> Iterator[tuple[Any, NetSuiteClient]]:
    """A fresh emulator with the demo data (so no run inherits another's records and nonces)
    and a client for it, authenticated one way or the other."""
    with NetSuiteEmulator(concurrency_limit=ACCOUNT_LIMIT) as emulator:
        if auth == "token_based_auth":
            config = token_config(emulator)
        else:
            config = oauth2_config(emulator, register_bench_integration(emulator))
        with NetSuiteClient(config) as client:
            yield emulator, client


def throughput_table(seen_429: list[int]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for threads in THREADS:
        row = table.setdefault(f"threads_{threads}", {})
        for latency in LATENCIES_MS:
            with emulator_and_client() as (emulator, client):
                emulator.set_faults(FaultPlan(latency_ms=latency))
                rate = upserts_per_second(client, threads, RUN_SECONDS[latency])
                seen_429.append(emulator.status_counts().get(429, 0))
            row[f"latency_{int(latency)}ms"] = round(rate, 1)
    return table


def upserts_per_second(client: NetSuiteClient, threads: int, seconds: float) -> float:
    for n in range(WARM_UP_CALLS):
        client.upsert_event(f"bench-warm-{n}", EVENT)
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    deadline = [0.0]

    def work(index: int) -> None:
        start.wait()
        done = 0
        while time.perf_counter() < deadline[0]:
            client.upsert_event(f"bench-{index}-{done}", EVENT)
            done += 1
        counts[index] = done

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start.wait()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.perf_counter() - began)


# ----------------------------------------------------------------------------- overhead


def overhead_run(auth: str, seen_429: list[int]) -> dict[str, Any]:
    with emulator_and_client(auth) as (emulator, client):
        figures = overhead(emulator, client)
        seen_429.append(emulator.status_counts().get(429, 0))
    return figures


def overhead(emulator: NetSuiteEmulator, client: NetSuiteClient) -> dict[str, Any]:
    for n in range(WARM_UP_CALLS):
        client.upsert_event(f"bench-overhead-warm-{n}", EVENT)
    emulator.reset_log()
    cpu_ms: list[float] = []
    wall_ms: list[float] = []
    for n in range(OVERHEAD_CALLS):
        wall, cpu = timed(lambda n=n: client.upsert_event(f"bench-overhead-{n}", EVENT))
        wall_ms.append(wall)
        cpu_ms.append(cpu)
    server_ms = [entry.duration_ms for entry in settled_log(emulator, OVERHEAD_CALLS)]
    beyond_server = [wall - server for wall, server in zip(wall_ms, server_ms, strict=True)]
    return {
        "cpu": summary(cpu_ms),
        "wall_minus_server": summary(beyond_server),
        "wall_per_call": summary(wall_ms),
        "emulator_per_call": summary(server_ms),
    }


def timed(call: Callable[[], object]) -> tuple[float, float]:
    """(wall ms, CPU ms of this thread) of one call."""
    wall, cpu = time.perf_counter(), time.thread_time()
    call()
    return (time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000


def settled_log(emulator: NetSuiteEmulator, count: int) -> list[Any]:
    """The request log once it holds ``count`` entries (the last may still be on its way)."""
    deadline = time.monotonic() + 5.0
    log = emulator.request_log()
    while len(log) < count and time.monotonic() < deadline:
        time.sleep(0.01)
        log = emulator.request_log()
    if len(log) != count:
        raise SystemExit(f"bench: expected {count} logged requests, found {len(log)}")
    return log


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 3),
        "mean": round(statistics.fmean(ordered), 3),
        "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 3),
    }


if __name__ == "__main__":
    sys.exit(main())

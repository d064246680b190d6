"""The robot's metrics, served in Prometheus' text exposition format (version 0.0.4).

Written by hand with the standard library (``http.server`` in a thread): a handful of
counters, one gauge and one histogram do not justify a dependency in a hardened daemon, and
the text format is small and stable. Served on loopback only unless explicitly allowed,
since it tells outcomes and reasons to whoever can reach it.

Metrics:

* ``mailbot_messages_total{outcome}``: messages handled (synced, skipped, failed,
  already-processed); a message refused and retried counts once per attempt;
* ``mailbot_decisions_total{outcome,reason}``: decisions committed (one message may hold several);
* ``mailbot_quarantined_total``: messages filed to Failed after their last attempt;
* ``mailbot_backoffs_total{phase}``: waits after a temporary failure, by what was going on
  (fetching, handling, filing, waiting, reconnecting);
* ``mailbot_netsuite_calls_total{kind,status}`` and ``mailbot_netsuite_retries_total``: the
  NetSuite client's own counters (HTTP attempts by call kind and status or ``timeout`` /
  ``connection``; waits before a repeated call), read at scrape time;
* ``mailbot_sync_delay_seconds``: histogram of the time from a message's arrival in the
  mailbox (its IMAP INTERNALDATE) to the commit of its synced decisions;
* ``mailbot_last_success_timestamp_seconds``: Unix time at which the last pass over the
  mailbox ended without error (0 before the first);
* ``mailbot_build_info{version}``: always 1.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import socket
import threading
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Self

from mailbot import __version__

LOG = logging.getLogger(__name__)

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
# From a few seconds (IDLE wakes the robot at once) to a day (a mailbox left unattended).
SYNC_DELAY_BUCKETS: Final = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
OUTCOMES: Final = ("synced", "skipped", "failed", "already-processed")
POLL_INTERVAL: Final = 0.25  # seconds: how soon close() is noticed by the serving thread

CounterSource = Callable[[], Mapping[str, int]]


class PrometheusMetrics:
    """What the daemon observed, thread-safe; :meth:`render` gives the exposition text.

    ``netsuite_counters`` is read at each scrape (``NetSuiteClient.counters``): keys
    ``<kind>.<status>`` become ``mailbot_netsuite_calls_total``, ``retries`` becomes
    ``mailbot_netsuite_retries_total``.
    """

    def __init__(
        self,
        *,
        netsuite_counters: CounterSource | None = None,
        buckets: Sequence[float] = SYNC_DELAY_BUCKETS,
    ) -> None:
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise ValueError("buckets: distinct upper bounds in increasing order")
        self._lock = threading.Lock()
        self._netsuite_counters = netsuite_counters
        self._messages: Counter[str] = Counter(dict.fromkeys(OUTCOMES, 0))
        self._decisions: Counter[tuple[str, str]] = Counter()
        self._backoffs: Counter[str] = Counter()
        self._quarantined = 0
        self._bounds = tuple(float(bound) for bound in buckets)
        self._bucket_counts = [0] * (len(self._bounds) + 1)  # the last one is +Inf
        self._delay_sum = 0.0
        self._last_success = 0.0

    # ------------------------------------------------------------------ observations

    def observe_message(
        self,
        outcome: str,
        decisions: Iterable[tuple[str, str | None]],
        sync_delay: float | None,
    ) -> None:
        """One handled message: its outcome, its decisions' (outcome, reason), and the
        seconds from its arrival to its sync (None when nothing was synced)."""
        with self._lock:
            self._messages[outcome] += 1
            for decision, reason in decisions:
                self._decisions[(decision, reason or "")] += 1
            if sync_delay is not None and math.isfinite(sync_delay):
                delay = max(0.0, sync_delay)  # clocks of two machines may disagree a little
                self._bucket_counts[bisect_left(self._bounds, delay)] += 1
                self._delay_sum += delay

    def observe_quarantine(self) -> None:
        with self._lock:
            self._quarantined += 1

    def observe_backoff(self, phase: str) -> None:
        with self._lock:
            self._backoffs[phase] += 1

    def observe_success(self, at: datetime) -> None:
        with self._lock:
            self._last_success = at.timestamp()

    # ------------------------------------------------------------------ exposition

    def render(self) -> str:
        """Every metric in the text exposition format, families in a fixed order."""
        calls, retries = self._netsuite()
        with self._lock:
            families = [
                _family(
                    "mailbot_messages_total",
                    "counter",
                    "Messages handled, by outcome (a retried message counts once per attempt).",
                    [({"outcome": name}, n) for name, n in sorted(self._messages.items())],
                ),
                _family(
                    "mailbot_decisions_total",
                    "counter",
                    "Decisions committed, by outcome and reason.",
                    [
                        ({"outcome": outcome, "reason": reason}, n)
                        for (outcome, reason), n in sorted(self._decisions.items())
                    ],
                ),
                _family(
                    "mailbot_quarantined_total",
                    "counter",
                    "Messages filed to Failed after their last attempt.",
                    [({}, self._quarantined)],
                ),
                _family(
                    "mailbot_backoffs_total",
                    "counter",
                    "Waits after a temporary failure, by what the robot was doing.",
                    [({"phase": phase}, n) for phase, n in sorted(self._backoffs.items())],
                ),
                _family(
                    "mailbot_netsuite_calls_total",
                    "counter",
                    "NetSuite HTTP attempts, by call kind and status (or timeout, connection).",
                    calls,
                ),
                _family(
                    "mailbot_netsuite_retries_total",
                    "counter",
                    "Waits before a NetSuite call was repeated.",
                    [({}, retries)],
                ),
                self._histogram(),
                _family(
                    "mailbot_last_success_timestamp_seconds",
                    "gauge",
                    "Unix time at which the last pass over the mailbox ended without error.",
                    [({}, self._last_success)],
                ),
                _family(
                    "mailbot_build_info",
                    "gauge",
                    "The running mailbot's version.",
                    [({"version": __version__}, 1)],
                ),
            ]
        return "".join(families)

    def _histogram(self) -> str:
        name = "mailbot_sync_delay_seconds"
        lines = [
            f"# HELP {name} Seconds from a message's arrival in the mailbox to its sync.\n",
            f"# TYPE {name} histogram\n",
        ]
        cumulative = 0
        for bound, count in zip((*self._bounds, math.inf), self._bucket_counts, strict=True):
            cumulative += count
            lines.append(_sample(f"{name}_bucket", {"le": _number(bound)}, cumulative))
        lines.append(_sample(f"{name}_sum", {}, self._delay_sum))
        lines.append(_sample(f"{name}_count", {}, cumulative))
        return "".join(lines)

    def _netsuite(self) -> tuple[list[tuple[dict[str, str], float]], int]:
        if self._netsuite_counters is None:
            return [], 0
        try:
            counters = dict(self._netsuite_counters())
        except Exception:  # a scrape must not fail because one source did
            LOG.warning("cannot read the NetSuite client's counters", exc_info=True)
            return [], 0
        calls: list[tuple[dict[str, str], float]] = []
        for key, value in sorted(counters.items()):
            kind, dot, status = key.partition(".")
            if dot:
                calls.append(({"kind": kind, "status": status}, int(value)))
        return calls, int(counters.get("retries", 0))


# ---------------------------------------------------------------------- the endpoint


class MetricsServer:
    """``GET /metrics`` over HTTP from a thread; the socket is bound when constructed.

    A host that is not a loopback address is refused unless ``allow_remote`` is set.
    """

    def __init__(
        self,
        metrics: PrometheusMetrics,
        host: str = "127.0.0.1",
        port: int = 9487,
        *,
        allow_remote: bool = False,
    ) -> None:
        family, bind_host = _bind_address(host, allow_remote=allow_remote)
        server_class = type(
            "_Server", (_ThreadingServer,), {"address_family": family, "allow_reuse_address": True}
        )
        self._server: _ThreadingServer = server_class((bind_host, port), _Handler)
        self._server.metrics = metrics
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/metrics"

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": POLL_INTERVAL},
                name="mailbot-metrics",
                daemon=True,
            )
            self._thread.start()
            LOG.info("metrics at %s", self.url)
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()


def serve_metrics(
    metrics: PrometheusMetrics, address: str, *, allow_remote: bool = False
) -> MetricsServer:
    """Start the endpoint at ``host:port`` (``[::1]:9487`` for IPv6); close it when done."""
    host, port = parse_address(address)
    return MetricsServer(metrics, host, port, allow_remote=allow_remote).start()


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6 host]:port`` as (host, port); ValueError when it is neither."""
    host, colon, port_text = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ValueError(f"metrics address {address!r}: host:port, like 127.0.0.1:9487")
    return host, int(port_text)


class _ThreadingServer(ThreadingHTTPServer):
    daemon_threads = True
    metrics: PrometheusMetrics


class _Handler(BaseHTTPRequestHandler):
    server: _ThreadingServer
    timeout = 10  # seconds a client may take to send its request
    server_version = "mailbot"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, *, with_body: bool) -> None:
        path = self.path.partition("?")[0]
        if path != "/metrics":
            self.send_error(404, "only /metrics is served here")
            return
        body = self.server.metrics.render().encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("metrics request: " + format, *args)


def _bind_address(host: str, *, allow_remote: bool) -> tuple[socket.AddressFamily, str]:
    """The address family and literal address to bind; non-loopback refused unless allowed."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ValueError(f"metrics address: cannot resolve {host!r}: {error}") from error
    family, _, _, _, sockaddr = infos[0]
    literal = str(sockaddr[0])
    if not allow_remote and not all(
        ipaddress.ip_address(str(info[4][0]).partition("%")[0]).is_loopback for info in infos
    ):
        raise ValueError(
            f"metrics address {host!r} is not a loopback address; the endpoint is served on"
            " loopback only unless remote access is explicitly allowed"
        )
    return family, literal


# ---------------------------------------------------------------------- the text format


def _family(
    name: str, kind: str, help_text: str, samples: Sequence[tuple[Mapping[str, str], float]]
) -> str:
    lines = [f"# HELP {name} {_escape_help(help_text)}\n", f"# TYPE {name} {kind}\n"]
    lines.extend(_sample(name, labels, value) for labels, value in samples)
    return "".join(lines)


def _sample(name: str, labels: Mapping[str, str], value: float) -> str:
    if labels:
        pairs = ",".join(f'{key}="{_escape_label(str(v))}"' for key, v in labels.items())
        return f"{name}{{{pairs}}} {_number(value)}\n"
    return f"{name} {_number(value)}\n"


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")

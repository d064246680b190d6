"""The Prometheus endpoint, scraped over real HTTP; its text checked by a strict parser."""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailbot.adapters.metrics import (
    CONTENT_TYPE,
    MetricsServer,
    PrometheusMetrics,
    parse_address,
    serve_metrics,
)
from mailbot.adapters.netsuite.client import NetSuiteClient
from mailbot.app import emulator_config, open_engine
from mailbot.daemon import Daemon
from mailbot.ports import FetchedMail, MessageKey
from mailbot.sim.netsuite import NetSuiteEmulator
from tests.integration.engine_support import (
    calendar,
    corpus_account,
    invitation_mail,
    settings_for,
    vevent,
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(?:,|$)')
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("",), "gauge": ("",)}


def parse(text: str) -> Samples:
    """Samples of the text format 0.0.4, checked: every family has HELP and TYPE before
    its samples, every sample belongs to the family announced, label values are escaped,
    every counter name ends in _total, histogram buckets are cumulative."""
    assert text.endswith("\n")
    samples: Samples = {}
    family, kind = "", ""
    helped: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            family = line.split(" ")[2]
            assert family not in helped, f"{family} declared twice"
            helped.add(family)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name == family and kind in SUFFIXES
            assert kind != "counter" or name.endswith("_total")
            continue
        match = SAMPLE.fullmatch(line)
        assert match, f"not a sample line: {line!r}"
        name, labels_text, value = match.groups()
        assert name in {family + suffix for suffix in SUFFIXES[kind]}, line
        labels: list[tuple[str, str]] = []
        if labels_text:
            consumed = 0
            for label in LABEL.finditer(labels_text):
                assert label.start() == consumed, f"bad labels: {labels_text!r}"
                consumed = label.end()
                labels.append((label.group(1), _unescape(label.group(2))))
            assert consumed == len(labels_text), f"bad labels: {labels_text!r}"
        key = (name, frozenset(labels))
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(value)
    return samples


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def scrape(server: MetricsServer, path: str = "/metrics") -> tuple[str, str]:
    host, port = server.address
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as answer:
        return answer.headers["Content-Type"], answer.read().decode("utf-8")


@pytest.fixture
def metrics() -> PrometheusMetrics:
    return PrometheusMetrics()


@pytest.fixture
def server(metrics: PrometheusMetrics) -> Iterator[MetricsServer]:
    with MetricsServer(metrics, "127.0.0.1", 0) as started:
        yield started


def test_a_fresh_robot_exposes_every_family_at_zero(server: MetricsServer) -> None:
    content_type, text = scrape(server)
    samples = parse(text)

    assert content_type == CONTENT_TYPE
    for outcome in ("synced", "skipped", "failed", "already-processed"):
        assert value(samples, "mailbot_messages_total", outcome=outcome) == 0
    assert value(samples, "mailbot_sync_delay_seconds_bucket", le="+Inf") == 0
    assert value(samples, "mailbot_last_success_timestamp_seconds") == 0
    assert value(samples, "mailbot_netsuite_retries_total") == 0
    assert ("mailbot_build_info", frozenset({("version", "0.1.0")})) in samples


def test_observations_are_counted_and_the_histogram_is_cumulative(
    metrics: PrometheusMetrics, server: MetricsServer
) -> None:
    metrics.observe_message("synced", [("create", None), ("cancel", None)], 42.0)
    metrics.observe_message("synced", [("update", None)], 0.5)
    metrics.observe_message("skipped", [("skip", "not_single_day")], None)
    metrics.observe_message("synced", [("create", None)], -3.0)  # a clock ahead of IMAP's
    metrics.observe_quarantine()
    metrics.observe_backoff("fetching")
    metrics.observe_backoff("fetching")
    metrics.observe_success(datetime(2025, 6, 1, 12, 0, tzinfo=UTC))

    samples = parse(scrape(server)[1])

    assert value(samples, "mailbot_messages_total", outcome="synced") == 3
    assert value(samples, "mailbot_decisions_total", outcome="create", reason="") == 2
    assert value(samples, "mailbot_decisions_total", outcome="skip", reason="not_single_day") == 1
    assert value(samples, "mailbot_quarantined_total") == 1
    assert value(samples, "mailbot_backoffs_total", phase="fetching") == 2
    assert value(samples, "mailbot_last_success_timestamp_seconds") == 1748779200.0
    buckets = {
        labels: count
        for (name, labels), count in samples.items()
        if name == "mailbot_sync_delay_seconds_bucket"
    }
    bounds = sorted(
        (float(dict(labels)["le"].replace("+Inf", "inf")), count)
        for labels, count in buckets.items()
    )
    counts = [count for _, count in bounds]
    assert counts == sorted(counts)  # cumulative
    assert value(samples, "mailbot_sync_delay_seconds_bucket", le="1.0") == 2  # 0.5 and 0
    assert value(samples, "mailbot_sync_delay_seconds_bucket", le="30.0") == 2
    assert value(samples, "mailbot_sync_delay_seconds_bucket", le="60.0") == 3
    assert value(samples, "mailbot_sync_delay_seconds_bucket", le="+Inf") == 3
    assert value(samples, "mailbot_sync_delay_seconds_count") == 3
    assert value(samples, "mailbot_sync_delay_seconds_sum") == 42.5


def test_label_values_are_escaped(metrics: PrometheusMetrics, server: MetricsServer) -> None:
    metrics.observe_message("skipped", [("skip", 'odd "reason"\\ with\nbreak')], None)
    samples = parse(scrape(server)[1])
    reason = 'odd "reason"\\ with\nbreak'
    assert value(samples, "mailbot_decisions_total", outcome="skip", reason=reason) == 1


def test_the_netsuite_clients_counters_are_read_at_each_scrape(
    netsuite_emulator: NetSuiteEmulator,
) -> None:
    client = NetSuiteClient(emulator_config(netsuite_emulator, max_attempts=1))
    metrics = PrometheusMetrics(netsuite_counters=client.counters)
    with client, MetricsServer(metrics, "127.0.0.1", 0) as server:
        assert not [k for k in parse(scrape(server)[1]) if k[0] == "mailbot_netsuite_calls_total"]
        list(client.suiteql("SELECT id FROM employee"))
        client.get_event("eid:does-not-exist", missing_ok=True)
        samples = parse(scrape(server)[1])

    assert value(samples, "mailbot_netsuite_calls_total", kind="suiteql", status="200") == 1
    assert value(samples, "mailbot_netsuite_calls_total", kind="get", status="404") == 1
    assert value(samples, "mailbot_netsuite_retries_total") == 0


def test_a_failing_counter_source_does_not_fail_the_scrape() -> None:
    def broken() -> dict[str, int]:
        raise RuntimeError("client closed")

    with MetricsServer(PrometheusMetrics(netsuite_counters=broken), "127.0.0.1", 0) as server:
        assert value(parse(scrape(server)[1]), "mailbot_netsuite_retries_total") == 0


def test_only_the_metrics_path_is_served(server: MetricsServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as raised:
        scrape(server, "/")
    assert raised.value.code == 404
    host, port = server.address
    request = urllib.request.Request(f"http://{host}:{port}/metrics?x=1", method="HEAD")
    with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
        assert answer.status == 200 and answer.read() == b""


def test_a_non_loopback_address_is_refused_unless_allowed(metrics: PrometheusMetrics) -> None:
    for host in ("0.0.0.0", "::"):  # noqa: S104 - what is refused
        with pytest.raises(ValueError, match="not a loopback address"):
            MetricsServer(metrics, host, 0)
    with MetricsServer(metrics, "0.0.0.0", 0, allow_remote=True) as anywhere:  # noqa: S104
        assert anywhere.address[0] == "0.0.0.0"  # noqa: S104
    with MetricsServer(metrics, "localhost", 0) as named:
        assert named.address[0] in ("127.0.0.1", "::1")


def test_ipv6_loopback(metrics: PrometheusMetrics) -> None:
    if not socket.has_ipv6:
        pytest.skip("this machine has no IPv6")
    try:
        server = serve_metrics(metrics, "[::1]:0")
    except OSError as error:
        pytest.skip(f"IPv6 loopback unavailable here: {error}")
    with server:
        assert server.url.startswith("http://[::1]:")
        with urllib.request.urlopen(server.url, timeout=5) as answer:  # noqa: S310
            assert answer.status == 200


def test_addresses_are_parsed() -> None:
    assert parse_address("127.0.0.1:9487") == ("127.0.0.1", 9487)
    assert parse_address("[::1]:9487") == ("::1", 9487)
    assert parse_address("localhost:0") == ("localhost", 0)
    for bad in ("9487", "127.0.0.1", "127.0.0.1:http", ":9487", "host:70000"):
        with pytest.raises(ValueError, match="host:port"):
            parse_address(bad)


def test_one_daemon_pass_shows_in_the_scrape(tmp_path: Path) -> None:
    """The daemon, the real engine on the emulator and the endpoint, wired as app.py will."""
    now = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    event = vevent(
        uid="metrics-0001@ourco.example.org",
        organizer="sender@example.com",
        attendees=(("receiver@example.com", "NEEDS-ACTION"),),
    )
    raw = invitation_mail(
        sender="sender@example.com", method="REQUEST", ics=calendar("REQUEST", event)
    )
    mail = FetchedMail(MessageKey("imap:INBOX", 1, "1"), raw, len(raw), now - timedelta(minutes=2))

    class OneMessage:
        """A test double of the Mailbox port holding one message."""

        source = mail.key.source
        uidvalidity = mail.key.uidvalidity

        def __init__(self) -> None:
            self.inbox = [mail]

        def fetch_new(self, limit: int) -> list[FetchedMail]:
            return self.inbox[:limit]

        def file_away_all(self, keys: Sequence[MessageKey], outcome: str) -> None:
            self.inbox = []

        def wait_for_mail(self, timeout: float) -> bool:
            return False

        def close(self) -> None:
            pass

    with NetSuiteEmulator(corpus_account().data) as emulator:
        config = emulator_config(emulator, max_attempts=1)
        with open_engine(settings_for(tmp_path / "state.sqlite3"), config, dry_run=False) as engine:
            metrics = PrometheusMetrics(netsuite_counters=engine.client.counters)
            with serve_metrics(metrics, "127.0.0.1:0") as server:
                daemon = Daemon(OneMessage(), engine.service, clock=lambda: now, metrics=metrics)
                assert daemon.run_once() == 1
                samples = parse(scrape(server)[1])

    assert value(samples, "mailbot_messages_total", outcome="synced") == 1
    assert value(samples, "mailbot_decisions_total", outcome="create", reason="") == 1
    assert value(samples, "mailbot_sync_delay_seconds_count") == 1
    assert value(samples, "mailbot_sync_delay_seconds_sum") == 120.0
    assert value(samples, "mailbot_sync_delay_seconds_bucket", le="60.0") == 0
    assert value(samples, "mailbot_sync_delay_seconds_bucket", le="120.0") == 1
    assert value(samples, "mailbot_last_success_timestamp_seconds") == now.timestamp()
    assert value(samples, "mailbot_netsuite_calls_total", kind="upsert", status="204") == 1
    assert value(samples, "mailbot_netsuite_calls_total", kind="suiteql", status="200") >= 1

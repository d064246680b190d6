"""The NetSuite client against the emulator, over real HTTP on loopback (no mocks)."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256
from requests_oauthlib import OAuth1

from mailbot.adapters.netsuite import (
    ClientCredentialsConfig,
    NetSuiteAuthenticationError,
    NetSuiteClient,
    NetSuiteConfig,
    NetSuiteNotFoundError,
    NetSuiteRequestError,
    NetSuiteTransientError,
    TokenAuthConfig,
    account_base_url,
)
from mailbot.adapters.netsuite.auth import ClientCredentialsAuth
from mailbot.sim.netsuite import FaultPlan, LoggedRequest, NetSuiteEmulator
from tests.netsuite_fixtures import OAuth2TestClient, small_test_data

FAST_BACKOFF: dict[str, Any] = {"backoff_base": 0.01, "backoff_cap": 0.05}


# ----------------------------------------------------------------------------- helpers


def token_config(emulator: NetSuiteEmulator, **settings: Any) -> NetSuiteConfig:
    secrets = emulator.credentials
    auth = TokenAuthConfig(
        secrets["consumer_key"],
        secrets["consumer_secret"],
        secrets["token_id"],
        secrets["token_secret"],
    )
    chosen = {"account": emulator.account, "base_url": emulator.base_url, **FAST_BACKOFF}
    chosen.update(settings)
    account = chosen.pop("account")
    return NetSuiteConfig(account, auth=auth, **chosen)


def oauth2_config(
    emulator: NetSuiteEmulator, client: OAuth2TestClient, **settings: Any
) -> NetSuiteConfig:
    auth = ClientCredentialsConfig(
        client.client_id, client.certificate_id, client.private_key_pem, client.algorithm
    )
    return NetSuiteConfig(
        emulator.account, auth=auth, base_url=emulator.base_url, **{**FAST_BACKOFF, **settings}
    )


def signed_with(emulator: NetSuiteEmulator, **oauth_overrides: Any) -> OAuth1:
    """An OAuth1 signer for the emulator's account with some parameters forced."""
    secrets = emulator.credentials
    return OAuth1(
        secrets["consumer_key"],
        client_secret=secrets["consumer_secret"],
        resource_owner_key=secrets["token_id"],
        resource_owner_secret=secrets["token_secret"],
        signature_method=SIGNATURE_HMAC_SHA256,
        realm=emulator.account,
        **oauth_overrides,
    )


def settled_log(emulator: NetSuiteEmulator, count: int) -> list[LoggedRequest]:
    """The request log once it holds ``count`` entries (waiting a moment, should the last
    entry still be on its way into the log)."""
    deadline = time.monotonic() + 2.0
    log = emulator.request_log()
    while len(log) < count and time.monotonic() < deadline:
        time.sleep(0.01)
        log = emulator.request_log()
    return log


def statuses(emulator: NetSuiteEmulator, count: int) -> list[int | None]:
    return [entry.status for entry in settled_log(emulator, count)]


def event_body(title: str = "Quarterly review", *attendees: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": title,
        "startDate": "2026-03-02",
        "startTime": "10:00",
        "endTime": "11:00",
        "timedEvent": True,
        "status": "CONFIRMED",
    }
    if attendees:
        body["attendee"] = {"items": [{"attendee": {"id": ref}} for ref in attendees]}
    return body


def attendee_ids(event: Mapping[str, Any]) -> list[str]:
    return [item["attendee"]["id"] for item in event["attendee"]["items"]]


def new_pem_key(kind: str) -> tuple[bytes, bytes]:
    """(private PKCS8 PEM, public PEM) of a fresh key: ``rsa`` (3072 bits) or ``ec`` (P-256)."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def run_in_threads(count: int, work: Callable[[int], object]) -> list[BaseException]:
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            work(index)
        except Exception as error:  # noqa: BLE001 - collected and asserted on by the test
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return errors


@pytest.fixture
def client(netsuite_emulator: NetSuiteEmulator) -> Iterator[NetSuiteClient]:
    with NetSuiteClient(token_config(netsuite_emulator)) as built:
        yield built


class MovableClock:
    """The emulator's clock, set by the test relative to the real time; with ``step`` it
    also moves forward that many seconds each time it is read."""

    def __init__(self, offset: float = 0.0, step: float = 0.0) -> None:
        self.offset = offset
        self.step = step
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.offset += self.step
            return time.time() + self.offset


# ----------------------------------------------------------------------------- configuration


def test_the_host_name_comes_from_the_account_id() -> None:
    assert account_base_url("1234567_SB1") == "https://1234567-sb1.suitetalk.api.netsuite.com"
    assert account_base_url("1234567") == "https://1234567.suitetalk.api.netsuite.com"
    auth = TokenAuthConfig("key", "secret", "token", "token-secret")
    sandbox = NetSuiteConfig("1234567_SB1", auth=auth)
    assert sandbox.root_url == "https://1234567-sb1.suitetalk.api.netsuite.com"
    explicit = NetSuiteConfig("1234567_SB1", auth=auth, base_url="http://127.0.0.1:8080/")
    assert explicit.root_url == "http://127.0.0.1:8080"


def test_the_configuration_never_shows_a_secret() -> None:
    token = TokenAuthConfig("ck-visible?", "cs-hidden", "ti-hidden", "ts-hidden")
    oauth2 = ClientCredentialsConfig("client-1", "certificate-1", b"-----BEGIN PRIVATE KEY---")
    shown = repr(NetSuiteConfig("1234567_SB1", auth=token)) + repr(oauth2)
    for secret in ("ck-visible?", "cs-hidden", "ti-hidden", "ts-hidden", "PRIVATE KEY"):
        assert secret not in shown
    assert "client-1" in shown


def test_the_configuration_names_its_problems() -> None:
    auth = TokenAuthConfig("key", "secret", "token", "token-secret")
    with pytest.raises(ValueError, match="account") as caught:
        NetSuiteConfig("1234567 SB1", auth=auth, concurrency=0, max_attempts=0)
    assert "concurrency" in str(caught.value)
    assert "max_attempts" in str(caught.value)
    with pytest.raises(ValueError, match="algorithm"):
        ClientCredentialsConfig("client", "certificate", b"pem", algorithm="RS256")


# ----------------------------------------------------------------------------- token-based auth


def test_token_based_auth_on_the_sandbox_realm(
    netsuite_emulator: NetSuiteEmulator, client: NetSuiteClient
) -> None:
    assert netsuite_emulator.account == "1234567_SB1"
    internal_id = client.upsert_event("mailbot-tba-1", event_body("Kick-off", "201"))
    event = client.get_event(internal_id)
    assert event is not None
    assert event["title"] == "Kick-off"
    assert event["externalId"] == "mailbot-tba-1"
    assert attendee_ids(event) == ["201"]
    assert {entry.auth_scheme for entry in settled_log(netsuite_emulator, 2)} == {"OAuth"}


@pytest.mark.parametrize(
    ("change", "audit"),
    [
        ({"consumer_secret": "not-the-consumer-secret"}, "InvalidSignature"),
        ({"token_secret": "not-the-token-secret"}, "InvalidSignature"),
        ({"account": "7654321_SB1"}, "InvalidAccount"),
    ],
)
def test_refused_credentials_are_fatal_and_not_retried(
    netsuite_emulator: NetSuiteEmulator, change: dict[str, str], audit: str
) -> None:
    config = token_config(netsuite_emulator, account=change.get("account", "1234567_SB1"))
    secrets = {key: value for key, value in change.items() if key != "account"}
    config = replace(config, auth=replace(config.auth, **secrets))
    with NetSuiteClient(config) as client, pytest.raises(NetSuiteAuthenticationError) as caught:
        client.get_event("eid:mailbot-anything")
    assert caught.value.status == 401
    assert caught.value.code == "INVALID_LOGIN"
    [entry] = settled_log(netsuite_emulator, 1)
    assert (entry.status, entry.audit) == (401, audit)


def test_a_stale_timestamp_is_refused(netsuite_emulator: NetSuiteEmulator) -> None:
    stale = str(int(time.time()) - 600)
    signer = signed_with(netsuite_emulator, timestamp=stale)
    with (
        NetSuiteClient(token_config(netsuite_emulator), auth=signer) as client,
        pytest.raises(NetSuiteAuthenticationError),
    ):
        client.get_event("eid:mailbot-anything", missing_ok=True)
    assert settled_log(netsuite_emulator, 1)[0].audit == "InvalidTimestamp"


def test_a_reused_nonce_is_refused(netsuite_emulator: NetSuiteEmulator) -> None:
    signer = signed_with(netsuite_emulator, nonce="always-the-same-nonce-01")
    with NetSuiteClient(token_config(netsuite_emulator), auth=signer) as client:
        assert client.get_event("eid:mailbot-anything", missing_ok=True) is None
        with pytest.raises(NetSuiteAuthenticationError):
            client.get_event("eid:mailbot-anything", missing_ok=True)
    audits = [entry.audit for entry in settled_log(netsuite_emulator, 2)]
    assert audits == [None, "NonceUsed"]


def test_every_attempt_is_signed_afresh(netsuite_emulator: NetSuiteEmulator) -> None:
    netsuite_emulator.set_faults(FaultPlan(burst_429=2))
    with NetSuiteClient(token_config(netsuite_emulator)) as client:
        assert client.get_event("eid:mailbot-anything", missing_ok=True) is None
    assert statuses(netsuite_emulator, 3) == [429, 429, 404]


# ----------------------------------------------------------------------------- OAuth 2.0


def test_client_credentials_token_is_fetched_once_and_reused(
    netsuite_emulator: NetSuiteEmulator, netsuite_oauth2_client: OAuth2TestClient
) -> None:
    config = oauth2_config(netsuite_emulator, netsuite_oauth2_client)
    with NetSuiteClient(config) as client:
        internal_id = client.upsert_event("mailbot-m2m-1", event_body("M2M"))
        assert client.get_event("eid:mailbot-m2m-1") is not None
        assert client.get_event(internal_id) is not None
        assert client.counters()["token"] == 1
    log = settled_log(netsuite_emulator, 4)
    assert [entry.auth_scheme for entry in log] == [None, "Bearer", "Bearer", "Bearer"]
    assert log[0].path == "/services/rest/auth/oauth2/v1/token"


def test_client_credentials_with_ps256_by_default(netsuite_emulator: NetSuiteEmulator) -> None:
    private, public = new_pem_key("rsa")
    netsuite_emulator.register_oauth2_client("rsa-client", "rsa-certificate", public)
    auth = ClientCredentialsConfig("rsa-client", "rsa-certificate", private)
    assert auth.algorithm == "PS256"
    config = NetSuiteConfig(
        netsuite_emulator.account, auth=auth, base_url=netsuite_emulator.base_url
    )
    with NetSuiteClient(config) as client:
        assert client.get_event("eid:mailbot-anything", missing_ok=True) is None
    assert statuses(netsuite_emulator, 2) == [200, 404]


@pytest.mark.parametrize("certificate_id", ["test-certificate-id-0001", "unknown-certificate"])
def test_a_wrong_key_or_certificate_is_fatal(
    netsuite_emulator: NetSuiteEmulator,
    netsuite_oauth2_client: OAuth2TestClient,
    certificate_id: str,
) -> None:
    other_key, _ = new_pem_key("ec")
    wrong = replace(
        netsuite_oauth2_client, certificate_id=certificate_id, private_key_pem=other_key
    )
    with (
        NetSuiteClient(oauth2_config(netsuite_emulator, wrong)) as client,
        pytest.raises(NetSuiteAuthenticationError) as caught,
    ):
        client.get_event("eid:mailbot-anything")
    assert caught.value.code == "invalid_client"
    [entry] = settled_log(netsuite_emulator, 1)
    assert entry.path == "/services/rest/auth/oauth2/v1/token"


def test_an_expired_token_is_renewed_once_transparently(
    netsuite_oauth2_client: OAuth2TestClient,
) -> None:
    # The first token is issued 200 s in the emulator's past, so it has expired there once
    # the clock is back at the real time. (Tokens issued in the emulator's future are
    # refused as not yet valid, so the clock is not moved forward instead.)
    clock = MovableClock(offset=-200.0)
    client_key = netsuite_oauth2_client
    with NetSuiteEmulator(small_test_data(), token_lifetime_s=120, clock=clock) as emulator:
        emulator.register_oauth2_client(
            client_key.client_id, client_key.certificate_id, client_key.certificate_pem
        )
        with NetSuiteClient(oauth2_config(emulator, client_key)) as client:
            assert client.get_event("eid:mailbot-x", missing_ok=True) is None
            clock.offset = 0.0  # the server's token has expired; the client's copy has not
            assert client.get_event("eid:mailbot-x", missing_ok=True) is None
            assert client.counters()["token"] == 2
        log = settled_log(emulator, 5)
    assert [(entry.status, entry.audit) for entry in log] == [
        (200, None),
        (404, None),
        (401, "TokenExpired"),
        (200, None),
        (404, None),
    ]


def test_a_token_refused_again_after_renewal_is_fatal(
    netsuite_oauth2_client: OAuth2TestClient,
) -> None:
    # Tokens live half a second and the emulator's clock moves a second per reading (from
    # well in the past): every token has expired by the time it is first used.
    clock = MovableClock(offset=-100.0, step=1.0)
    client_key = netsuite_oauth2_client
    with NetSuiteEmulator(small_test_data(), token_lifetime_s=0.5, clock=clock) as emulator:
        emulator.register_oauth2_client(
            client_key.client_id, client_key.certificate_id, client_key.certificate_pem
        )
        with (
            NetSuiteClient(oauth2_config(emulator, client_key)) as client,
            pytest.raises(NetSuiteAuthenticationError),
        ):
            client.get_event("eid:mailbot-x", missing_ok=True)
        assert statuses(emulator, 4) == [200, 401, 200, 401]


# ----------------------------------------------------------------------------- operations


def test_upserting_twice_gives_one_record(
    netsuite_emulator: NetSuiteEmulator, client: NetSuiteClient
) -> None:
    first = client.upsert_event("mailbot-same", event_body("First", "201", "202"))
    second = client.upsert_event("mailbot-same", event_body("Second", "202"))
    assert first == second
    [stored] = netsuite_emulator.records("calendarEvent")
    assert stored["title"] == "Second"
    event = client.get_event("eid:mailbot-same")
    assert event is not None
    assert attendee_ids(event) == ["202"]  # replace=attendee: the list is replaced, not merged
    log = settled_log(netsuite_emulator, 2)
    assert log[0].path == "/services/rest/record/v1/calendarEvent/eid:mailbot-same?replace=attendee"


def test_patch_get_and_delete(client: NetSuiteClient) -> None:
    internal_id = client.upsert_event("mailbot-life", event_body("Life", "201"))
    client.patch_event(
        internal_id, {"title": "Renamed", "attendee": {"items": [{"attendee": {"id": "203"}}]}}
    )
    event = client.get_event("eid:mailbot-life")
    assert event is not None
    assert (event["title"], attendee_ids(event)) == ("Renamed", ["203"])
    unexpanded = client.get_event(internal_id, expand=False)
    assert unexpanded is not None
    assert "items" not in unexpanded["attendee"]
    client.delete_event(internal_id)
    assert client.get_event(internal_id, missing_ok=True) is None
    client.delete_event(internal_id, missing_ok=True)
    with pytest.raises(NetSuiteNotFoundError) as caught:
        client.delete_event(internal_id)
    assert (caught.value.status, caught.value.code) == (404, "NONEXISTENT_ID")


def test_a_misspelled_field_is_refused_with_its_path(
    netsuite_emulator: NetSuiteEmulator, client: NetSuiteClient
) -> None:
    body = {**event_body(), "startTme": "10:00"}
    with pytest.raises(NetSuiteRequestError) as caught:
        client.upsert_event("mailbot-typo", body)
    error = caught.value
    assert (error.status, error.code, error.error_path) == (400, "INVALID_CONTENT", "startTme")
    assert "startTme" in error.detail
    assert statuses(netsuite_emulator, 1) == [400]  # a validation error is not retried
    assert netsuite_emulator.records("calendarEvent") == []


def test_bad_references_are_refused_before_sending(client: NetSuiteClient) -> None:
    for external_id in ("has space", "uid@example.com", "a|b", ""):
        with pytest.raises(ValueError, match="external id"):
            client.upsert_event(external_id, event_body())
    for ref in ("../customer/101", "eid:a/b", "12a"):
        with pytest.raises(ValueError, match="event reference"):
            client.get_event(ref)
    with pytest.raises(ValueError, match="page_size"):
        client.suiteql("SELECT id FROM contact", page_size=1001)
    assert client.counters() == {}


def test_suiteql_pages_to_the_end_with_lower_cased_keys() -> None:
    data = small_test_data()
    data["contacts"] += [
        {
            "id": 10_000 + n,
            "entityid": f"Bulk {n}",
            "firstname": "Bulk",
            "lastname": str(n),
            "email": f"bulk{n}@many.example.com",
        }
        for n in range(2_345)
    ]
    with NetSuiteEmulator(data) as emulator, NetSuiteClient(token_config(emulator)) as client:
        rows = list(
            client.suiteql(
                "SELECT id AS ContactID, Email FROM contact WHERE email LIKE ? ORDER BY id",
                ["%@many.example.com"],
            )
        )
        log = settled_log(emulator, 3)
    assert len(rows) == 2_345
    assert rows[0] == {"contactid": "10000", "email": "bulk0@many.example.com"}
    assert len({row["contactid"] for row in rows}) == 2_345
    assert [entry.path.partition("?")[2] for entry in log] == [
        "limit=1000&offset=0",
        "limit=1000&offset=1000",
        "limit=1000&offset=2000",
    ]


def test_suiteql_binds_parameters_in_the_body(
    netsuite_emulator: NetSuiteEmulator, client: NetSuiteClient
) -> None:
    rows = client.suiteql(
        "SELECT id, email FROM contact WHERE LOWER(email) = ? OR LOWER(altemail) = ?",
        ["carla.contact@acme-instruments.example.com", "dan.private@mail.example.net"],
        page_size=1,
    )
    assert sorted(row["id"] for row in rows) == ["201", "202"]
    log = settled_log(netsuite_emulator, 2)
    assert [entry.path.partition("?")[2] for entry in log] == [
        "limit=1&offset=0",
        "limit=1&offset=1",
    ]


def test_the_schema_tells_whether_recurrence_can_be_written(client: NetSuiteClient) -> None:
    schema = client.record_schema("calendarEvent")
    assert "title" in schema["properties"]
    assert client.has_recurrence_fields() is False
    with (
        NetSuiteEmulator(small_test_data(), recurrence_fields=True) as emulator,
        NetSuiteClient(token_config(emulator)) as recurring,
    ):
        assert recurring.has_recurrence_fields() is True


# ----------------------------------------------------------------------------- retries


def test_429_is_retried_until_it_passes(
    netsuite_emulator: NetSuiteEmulator, client: NetSuiteClient
) -> None:
    netsuite_emulator.set_faults(FaultPlan(burst_429=3))
    client.upsert_event("mailbot-busy", event_body())
    assert statuses(netsuite_emulator, 4) == [429, 429, 429, 204]
    counters = client.counters()
    assert (counters["upsert.429"], counters["upsert.204"], counters["retries"]) == (3, 1, 3)


def test_retry_after_is_honoured(netsuite_emulator: NetSuiteEmulator) -> None:
    netsuite_emulator.set_faults(FaultPlan(burst_429=2, retry_after_seconds=1))
    with NetSuiteClient(token_config(netsuite_emulator)) as client:
        started = time.monotonic()
        client.upsert_event("mailbot-later", event_body())
        elapsed = time.monotonic() - started
    assert 2.0 <= elapsed < 4.0
    assert statuses(netsuite_emulator, 3) == [429, 429, 204]


def test_waits_are_jittered_and_capped(
    netsuite_emulator: NetSuiteEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mailbot.netsuite")
    netsuite_emulator.set_faults(FaultPlan(burst_429=4))
    config = token_config(netsuite_emulator, backoff_base=0.05, backoff_cap=0.1, max_attempts=5)
    with NetSuiteClient(config) as client:
        started = time.monotonic()
        client.upsert_event("mailbot-capped", event_body())
        elapsed = time.monotonic() - started
    waits = [float(m) for m in re.findall(r"retrying in ([0-9.]+) s", caplog.text)]
    assert len(waits) == 4
    assert all(0.0 <= wait <= 0.1 for wait in waits)
    assert waits[0] <= 0.05  # the first window is backoff_base wide
    assert len(set(waits)) > 1  # full jitter: drawn at random, not a fixed ladder
    assert elapsed < 2.0  # four waits of at most 0.1 s each, plus the answers themselves


def test_503_is_retried_a_bounded_number_of_times(netsuite_emulator: NetSuiteEmulator) -> None:
    netsuite_emulator.set_faults(FaultPlan(error_rate=1.0, error_statuses=(503,)))
    with NetSuiteClient(token_config(netsuite_emulator, max_attempts=3)) as client:
        with pytest.raises(NetSuiteTransientError) as caught:
            client.get_event("eid:mailbot-anything")
        assert client.counters()["retries"] == 2
    assert (caught.value.status, caught.value.code) == (503, "UNEXPECTED_ERROR")
    assert statuses(netsuite_emulator, 3) == [503, 503, 503]


def test_503_then_success(netsuite_emulator: NetSuiteEmulator) -> None:
    netsuite_emulator.set_faults(FaultPlan(error_rate=0.5, error_statuses=(503,), seed=3))
    with NetSuiteClient(token_config(netsuite_emulator, max_attempts=20)) as client:
        for n in range(6):
            client.upsert_event(f"mailbot-flaky-{n}", event_body())
        retries = client.counters().get("retries", 0)
    assert retries > 0
    assert len(netsuite_emulator.records("calendarEvent")) == 6
    log = settled_log(netsuite_emulator, 6 + retries)
    assert {entry.status for entry in log} == {503, 204}


def test_connection_resets_and_timeouts_are_transient(netsuite_emulator: NetSuiteEmulator) -> None:
    netsuite_emulator.set_faults(FaultPlan(reset_rate=1.0))
    with NetSuiteClient(token_config(netsuite_emulator, max_attempts=3)) as client:
        with pytest.raises(NetSuiteTransientError):
            client.get_event("eid:mailbot-anything")
        assert client.counters()["get.connection"] == 3
    netsuite_emulator.set_faults(FaultPlan(latency_ms=400))
    with NetSuiteClient(token_config(netsuite_emulator, read_timeout=0.1, max_attempts=2)) as slow:
        with pytest.raises(NetSuiteTransientError):
            slow.get_event("eid:mailbot-anything")
        assert slow.counters()["get.timeout"] == 2


@pytest.mark.parametrize(
    "plan",
    [
        FaultPlan(burst_429=1),
        FaultPlan(error_rate=1.0, error_statuses=(503,)),
        FaultPlan(reset_rate=1.0),
    ],
    ids=["429", "503", "reset"],
)
def test_a_plain_post_is_never_retried(
    netsuite_emulator: NetSuiteEmulator, plan: FaultPlan
) -> None:
    netsuite_emulator.set_faults(plan)
    with NetSuiteClient(token_config(netsuite_emulator)) as client:
        with pytest.raises(NetSuiteTransientError):
            client.create_event(event_body())
        assert "retries" not in client.counters()
    assert len(settled_log(netsuite_emulator, 1)) == 1
    time.sleep(0.05)
    assert len(netsuite_emulator.request_log()) == 1


def test_a_plain_post_creates(netsuite_emulator: NetSuiteEmulator, client: NetSuiteClient) -> None:
    internal_id = client.create_event(event_body("Created"))
    [stored] = netsuite_emulator.records("calendarEvent")
    assert str(stored["id"]) == internal_id


# ----------------------------------------------------------------------------- concurrency


def test_the_client_limit_keeps_the_account_below_its_limit(
    netsuite_emulator: NetSuiteEmulator,
) -> None:
    netsuite_emulator.set_faults(FaultPlan(latency_ms=50))
    config = token_config(netsuite_emulator, concurrency=5)  # the emulator's account limit
    with NetSuiteClient(config) as client:
        errors = run_in_threads(
            50, lambda n: client.upsert_event(f"mailbot-parallel-{n}", event_body(f"P{n}"))
        )
        counters = client.counters()
    assert errors == []
    assert counters["upsert"] == counters["upsert.204"] == 50
    assert 429 not in netsuite_emulator.status_counts()
    assert netsuite_emulator.peak_concurrency == 5
    assert len(netsuite_emulator.records("calendarEvent")) == 50


def test_beyond_the_account_limit_429s_are_absorbed_by_retries(
    netsuite_emulator: NetSuiteEmulator,
) -> None:
    netsuite_emulator.set_faults(FaultPlan(latency_ms=50))
    config = token_config(netsuite_emulator, concurrency=10, max_attempts=20)
    with NetSuiteClient(config) as client:
        errors = run_in_threads(
            20, lambda n: client.upsert_event(f"mailbot-crowd-{n}", event_body(f"C{n}"))
        )
    assert errors == []
    assert netsuite_emulator.status_counts().get(429, 0) > 0
    assert len(netsuite_emulator.records("calendarEvent")) == 20


# ----------------------------------------------------------------------------- logging


def test_no_secret_reaches_a_log_line(
    netsuite_emulator: NetSuiteEmulator,
    netsuite_oauth2_client: OAuth2TestClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "mailbot.netsuite", "oauthlib", "requests_oauthlib"):
        caplog.set_level(logging.DEBUG, logger=name)
    netsuite_emulator.set_faults(FaultPlan(burst_429=1))
    with NetSuiteClient(token_config(netsuite_emulator)) as tba:
        tba.upsert_event("mailbot-quiet", event_body("Quiet", "201"))
        list(tba.suiteql("SELECT id FROM contact WHERE email LIKE ?", ["%example%"]))
    secrets = netsuite_emulator.credentials
    config = oauth2_config(netsuite_emulator, netsuite_oauth2_client)
    bearer = ClientCredentialsAuth(
        config.auth,  # type: ignore[arg-type]
        netsuite_emulator.token_url,
        lambda form: requests.post(netsuite_emulator.token_url, data=form, timeout=5).json(),
    )
    with NetSuiteClient(config) as m2m, NetSuiteClient(config, auth=bearer) as explicit:
        assert m2m.get_event("eid:mailbot-quiet") is not None
        assert explicit.get_event("eid:mailbot-quiet") is not None
        access_token = bearer.access_token()
    wrong = replace(config.auth, certificate_id="unknown-certificate")  # type: ignore[arg-type]
    with (
        NetSuiteClient(replace(config, auth=wrong)) as refused,
        pytest.raises(NetSuiteAuthenticationError) as caught,
    ):
        refused.get_event("eid:mailbot-quiet")

    text = "\n".join(
        [record.getMessage() for record in caplog.records]
        + [caplog.text, str(caught.value), repr(caught.value)]
    )
    assert "mailbot.netsuite" in caplog.text and "urllib3" in caplog.text
    key_lines = netsuite_oauth2_client.private_key_pem.decode().splitlines()[1:-1]
    for secret in (
        secrets["consumer_secret"],
        secrets["token_secret"],
        secrets["token_id"],
        secrets["consumer_key"],
        access_token,
        *key_lines,
    ):
        assert secret not in text
    for marker in ("oauth_signature", "Authorization", "Bearer ey", "client_assertion="):
        assert marker not in text

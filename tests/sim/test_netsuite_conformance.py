"""The NetSuite emulator against the documented REST behaviour (docs/netsuite-emulator.md).

Clients here are plain requests + requests-oauthlib + PyJWT, never mailbot's own client, so the
emulator is checked independently of the code it will test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import requests
from requests_oauthlib import OAuth1

from mailbot.sim.netsuite import (
    FaultPlan,
    NetSuiteEmulator,
    demo_oauth2_private_key,
    load_data,
)
from mailbot.sim.netsuite.faults import FaultInjector
from tests.netsuite_fixtures import OAuth2TestClient, make_oauth2_client, small_test_data

LOGIN_AUDIT_TRAIL = "Login Audit Trail"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TRANSIENT = {"Prefer": "transient"}
STRICT = {"X-NetSuite-PropertyNameValidation": "Error"}


# Helpers


def tba(emulator: NetSuiteEmulator, **changes: Any) -> OAuth1:
    """HMAC-SHA256 token-based auth with the account's credentials; ``changes`` spoil it."""
    credentials = emulator.credentials
    arguments: dict[str, Any] = {
        "client_key": credentials["consumer_key"],
        "client_secret": credentials["consumer_secret"],
        "resource_owner_key": credentials["token_id"],
        "resource_owner_secret": credentials["token_secret"],
        "signature_method": "HMAC-SHA256",
        "realm": emulator.account,
    }
    arguments.update(changes)
    return OAuth1(**arguments)


def record_url(emulator: NetSuiteEmulator, path: str) -> str:
    return f"{emulator.rest_url}/record/v1/{path}"


def suiteql(
    emulator: NetSuiteEmulator, q: str, params: list[Any] | None = None, **query: Any
) -> requests.Response:
    body: dict[str, Any] = {"q": q}
    if params is not None:
        body["params"] = params
    return requests.post(
        f"{emulator.rest_url}/query/v1/suiteql",
        params=query,
        json=body,
        headers=TRANSIENT,
        auth=tba(emulator),
        timeout=10,
    )


def upsert(
    emulator: NetSuiteEmulator, external_id: str, body: dict[str, Any], **kwargs: Any
) -> requests.Response:
    return requests.put(
        record_url(emulator, f"calendarEvent/eid:{external_id}"),
        json=body,
        auth=tba(emulator),
        timeout=10,
        **kwargs,
    )


def get_event(emulator: NetSuiteEmulator, location: str, **params: str) -> dict[str, Any]:
    response = requests.get(location, params=params, auth=tba(emulator), timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def meeting(**fields: Any) -> dict[str, Any]:
    body = {
        "title": "Quarterly review",
        "startDate": "2026-03-02",
        "startTime": "10:00",
        "endTime": "11:00",
        "timedEvent": True,
        "status": "CONFIRMED",
        "organizer": {"id": "2"},
        "company": {"id": "101"},
        "attendee": {"items": [{"attendee": {"id": "201"}, "response": "ACCEPTED"}]},
    }
    body.update(fields)
    return body


def netsuite_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    """Asserts NetSuite's error shape (section 7) and gives the first error detail."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#")
    assert isinstance(body["title"], str) and body["title"]
    detail: dict[str, Any] = body["o:errorDetails"][0]
    assert detail["o:errorCode"] == code
    assert detail["detail"]
    return detail


def attendee_ids(event: dict[str, Any]) -> list[str]:
    return [item["attendee"]["id"] for item in event["attendee"]["items"]]


# Token-based authentication (section 2a)


def test_signed_get_of_an_entity_record(netsuite_emulator: NetSuiteEmulator) -> None:
    response = requests.get(
        record_url(netsuite_emulator, "employee/2"), auth=tba(netsuite_emulator), timeout=10
    )
    assert response.status_code == 200
    employee = response.json()
    assert employee["id"] == "2"
    assert employee["email"] == "olivia.organizer@ourco.example.org"
    assert employee["links"][0]["rel"] == "self"


def test_query_parameters_are_part_of_the_signature(netsuite_emulator: NetSuiteEmulator) -> None:
    url = record_url(netsuite_emulator, "contact/202")
    signed = requests.get(url, params={"fields": "email"}, auth=tba(netsuite_emulator), timeout=10)
    assert signed.status_code == 200
    prepared = requests.Request("GET", url, auth=tba(netsuite_emulator)).prepare()
    prepared.prepare_url(url, {"fields": "email"})  # a parameter added after signing
    with requests.Session() as session:
        tampered = session.send(prepared, timeout=10)
    netsuite_error(tampered, 401, "INVALID_LOGIN")


def test_sandbox_realm_keeps_underscore_and_uppercase(netsuite_emulator: NetSuiteEmulator) -> None:
    assert netsuite_emulator.account == "1234567_SB1"
    url = record_url(netsuite_emulator, "customer/101")
    good = requests.get(url, auth=tba(netsuite_emulator, realm="1234567_SB1"), timeout=10)
    assert good.status_code == 200
    hostname_form = requests.get(url, auth=tba(netsuite_emulator, realm="1234567-sb1"), timeout=10)
    netsuite_error(hostname_form, 401, "INVALID_LOGIN")


def _stale_timestamp() -> dict[str, Any]:
    return {"timestamp": str(int(time.time()) - 6 * 60)}


@pytest.mark.parametrize(
    ("changes", "audit"),
    [
        ({"client_secret": "not-the-secret"}, "InvalidSignature"),
        ({"resource_owner_secret": "not-the-secret"}, "InvalidSignature"),
        ({"realm": "7654321"}, "InvalidAccount"),
        ({"client_key": "unknown-consumer-key"}, "consumer_key_unknown"),
        ({"resource_owner_key": "unknown-token"}, "token_rejected"),
        ({"signature_method": "HMAC-SHA1"}, "UnknownAlgorithm"),
        ({"nonce": "abc12"}, "InvalidNonce"),
        (_stale_timestamp(), "InvalidTimestamp"),
        ({"timestamp": str(int(time.time()) + 60 * 60)}, "InvalidTimestamp"),  # collected early
    ],
    ids=[
        "consumer-secret",
        "token-secret",
        "realm",
        "consumer-key",
        "token",
        "hmac-sha1",
        "short-nonce",
        "stale-timestamp",
        "future-timestamp",
    ],
)
def test_refused_logins_are_invalid_login(
    netsuite_emulator: NetSuiteEmulator, changes: dict[str, Any], audit: str
) -> None:
    response = requests.get(
        record_url(netsuite_emulator, "employee/2"),
        auth=tba(netsuite_emulator, **changes),
        timeout=10,
    )
    detail = netsuite_error(response, 401, "INVALID_LOGIN")
    assert response.json()["title"] == "Unauthorized"
    assert LOGIN_AUDIT_TRAIL in detail["detail"]
    assert netsuite_emulator.request_log()[-1].audit == audit


def test_a_nonce_is_used_once(netsuite_emulator: NetSuiteEmulator) -> None:
    url = record_url(netsuite_emulator, "employee/2")
    first = requests.get(url, auth=tba(netsuite_emulator, nonce="nonce-0001"), timeout=10)
    again = requests.get(url, auth=tba(netsuite_emulator, nonce="nonce-0001"), timeout=10)
    assert first.status_code == 200
    netsuite_error(again, 401, "INVALID_LOGIN")
    assert netsuite_emulator.request_log()[-1].audit == "NonceUsed"


def test_no_credentials_is_invalid_login(netsuite_emulator: NetSuiteEmulator) -> None:
    response = requests.get(record_url(netsuite_emulator, "employee/2"), timeout=10)
    netsuite_error(response, 401, "INVALID_LOGIN")


# OAuth 2.0 client credentials (section 2b)


def request_token(emulator: NetSuiteEmulator, assertion: str, **form: str) -> requests.Response:
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        **form,
    }
    return requests.post(emulator.token_url, data=data, timeout=10)


def assertion_for(client: OAuth2TestClient, token_url: str, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": client.client_id,
        "scope": ["rest_webservices"],
        "aud": token_url,
        "iat": now,
        "exp": now + 300,
        **claims,
    }
    headers = {"typ": "JWT", "kid": client.certificate_id}
    return jwt.encode(payload, client.private_key_pem, algorithm="ES256", headers=headers)


def test_client_credentials_give_a_bearer_token_that_works(
    netsuite_emulator: NetSuiteEmulator, netsuite_oauth2_client: OAuth2TestClient
) -> None:
    token_url = netsuite_emulator.token_url
    response = request_token(netsuite_emulator, assertion_for(netsuite_oauth2_client, token_url))
    assert response.status_code == 200, response.text
    token = response.json()
    assert token["token_type"] == "bearer"  # noqa: S105
    assert token["expires_in"] == 3600
    assert "refresh_token" not in token
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    found = requests.get(record_url(netsuite_emulator, "customer/101"), headers=bearer, timeout=10)
    assert found.status_code == 200
    assert netsuite_emulator.request_log()[-1].auth_scheme == "Bearer"


def test_a_comma_separated_scope_is_accepted(
    netsuite_emulator: NetSuiteEmulator, netsuite_oauth2_client: OAuth2TestClient
) -> None:
    assertion = assertion_for(
        netsuite_oauth2_client, netsuite_emulator.token_url, scope="restlets,rest_webservices"
    )
    assert request_token(netsuite_emulator, assertion).status_code == 200


def test_an_expired_bearer_token_is_invalid_login(netsuite_oauth2_client: OAuth2TestClient) -> None:
    now = [time.time()]
    emulator = NetSuiteEmulator(small_test_data(), clock=lambda: now[0])
    emulator.register_oauth2_client(
        netsuite_oauth2_client.client_id,
        netsuite_oauth2_client.certificate_id,
        netsuite_oauth2_client.certificate_pem,
    )
    with emulator:
        token = request_token(
            emulator, assertion_for(netsuite_oauth2_client, emulator.token_url)
        ).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        url = record_url(emulator, "employee/2")
        assert requests.get(url, headers=bearer, timeout=10).status_code == 200
        now[0] += 3600
        netsuite_error(requests.get(url, headers=bearer, timeout=10), 401, "INVALID_LOGIN")
        assert emulator.request_log()[-1].audit == "TokenExpired"


def test_a_forged_bearer_token_is_invalid_login(netsuite_emulator: NetSuiteEmulator) -> None:
    forged = jwt.encode({"sub": "x", "jti": "y"}, "guessed-secret-" * 3, algorithm="HS256")
    response = requests.get(
        record_url(netsuite_emulator, "employee/2"),
        headers={"Authorization": f"Bearer {forged}"},
        timeout=10,
    )
    netsuite_error(response, 401, "INVALID_LOGIN")


BadAssertion = Callable[[OAuth2TestClient, str], str]


def _hs256(client: OAuth2TestClient, url: str) -> str:
    now = int(time.time())
    payload = {
        "iss": client.client_id,
        "scope": "rest_webservices",
        "aud": url,
        "iat": now,
        "exp": now + 300,
    }
    return jwt.encode(
        payload, "shared-secret-" * 3, algorithm="HS256", headers={"kid": client.certificate_id}
    )


def _other_key_same_kid(client: OAuth2TestClient, url: str) -> str:
    impostor = make_oauth2_client(client.client_id, client.certificate_id)
    return assertion_for(impostor, url)


@pytest.mark.parametrize(
    ("make_assertion", "status", "error"),
    [
        (
            lambda c, url: assertion_for(make_oauth2_client(c.client_id, "other-kid"), url),
            401,
            "invalid_client",
        ),
        (_other_key_same_kid, 401, "invalid_client"),
        (lambda c, url: assertion_for(c, url, iss="someone-else"), 401, "invalid_client"),
        (
            lambda c, url: assertion_for(
                c,
                "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest/auth/oauth2/v1/token",
            ),
            400,
            "invalid_grant",
        ),
        (lambda c, url: assertion_for(c, url, exp=int(time.time()) + 3601), 400, "invalid_grant"),
        (
            lambda c, url: assertion_for(
                c, url, iat=int(time.time()) - 600, exp=int(time.time()) - 10
            ),
            400,
            "invalid_grant",
        ),
        (lambda c, url: assertion_for(c, url, scope=["restlets"]), 400, "invalid_scope"),
        (_hs256, 400, "invalid_request"),
        (lambda c, url: "not.a.jwt", 400, "invalid_request"),
    ],
    ids=[
        "unknown-kid",
        "wrong-key",
        "wrong-iss",
        "wrong-aud",
        "exp-over-60-min",
        "expired",
        "no-rest-scope",
        "alg-hs256",
        "garbage",
    ],
)
def test_bad_client_assertions_are_refused(
    netsuite_emulator: NetSuiteEmulator,
    netsuite_oauth2_client: OAuth2TestClient,
    make_assertion: BadAssertion,
    status: int,
    error: str,
) -> None:
    assertion = make_assertion(netsuite_oauth2_client, netsuite_emulator.token_url)
    response = request_token(netsuite_emulator, assertion)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert "access_token" not in response.json()


def test_only_the_client_credentials_grant_is_served(
    netsuite_emulator: NetSuiteEmulator, netsuite_oauth2_client: OAuth2TestClient
) -> None:
    assertion = assertion_for(netsuite_oauth2_client, netsuite_emulator.token_url)
    response = request_token(netsuite_emulator, assertion, grant_type="authorization_code")
    assert response.status_code == 400
    assert response.json() == {"error": "unsupported_grant_type"}


def test_the_demo_key_signs_ps256_assertions(netsuite_demo_emulator: NetSuiteEmulator) -> None:
    client = load_data(None)["oauth2"]
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": client["client_id"],
            "scope": "rest_webservices",
            "aud": netsuite_demo_emulator.token_url,
            "iat": now,
            "exp": now + 600,
        },
        demo_oauth2_private_key(),
        algorithm="PS256",
        headers={"typ": "JWT", "kid": client["certificate_id"]},
    )
    response = request_token(netsuite_demo_emulator, assertion)
    assert response.status_code == 200, response.text


# calendarEvent writes (sections 3 and 4)


def test_post_creates_with_204_and_location(netsuite_emulator: NetSuiteEmulator) -> None:
    response = requests.post(
        record_url(netsuite_emulator, "calendarEvent"),
        json=meeting(),
        auth=tba(netsuite_emulator),
        timeout=10,
    )
    assert response.status_code == 204
    assert response.content == b""
    location = response.headers["Location"]
    assert location.startswith(record_url(netsuite_emulator, "calendarEvent/"))
    event_id = location.rsplit("/", 1)[1]
    assert get_event(netsuite_emulator, location)["id"] == event_id


def test_upsert_twice_keeps_one_record(netsuite_emulator: NetSuiteEmulator) -> None:
    first = upsert(netsuite_emulator, "mailbot-0001", meeting())
    second = upsert(netsuite_emulator, "mailbot-0001", meeting(title="Quarterly review (moved)"))
    assert first.status_code == second.status_code == 204
    assert first.headers["Location"] == second.headers["Location"]
    stored = netsuite_emulator.records("calendarEvent")
    assert len(stored) == 1
    assert stored[0]["externalId"] == "mailbot-0001"
    assert stored[0]["title"] == "Quarterly review (moved)"
    by_external_id = get_event(
        netsuite_emulator, record_url(netsuite_emulator, "calendarEvent/eid:mailbot-0001")
    )
    assert by_external_id["title"] == "Quarterly review (moved)"


def test_put_needs_an_external_id(netsuite_emulator: NetSuiteEmulator) -> None:
    response = requests.put(
        record_url(netsuite_emulator, "calendarEvent/20001"),
        json=meeting(),
        auth=tba(netsuite_emulator),
        timeout=10,
    )
    netsuite_error(response, 400, "INVALID_REQUEST")


def test_get_shapes_enums_references_and_attendees(netsuite_emulator: NetSuiteEmulator) -> None:
    location = upsert(netsuite_emulator, "mailbot-shape", meeting()).headers["Location"]
    event = get_event(netsuite_emulator, location)
    assert event["status"] == {"id": "CONFIRMED", "refName": "Confirmed"}
    assert set(event["organizer"]) == {"id", "refName", "links"}
    assert event["organizer"]["id"] == "2"
    assert event["organizer"]["refName"] == "Olivia Organizer"
    assert event["organizer"]["links"][0]["href"].endswith("/employee/2")
    assert set(event["attendee"]) == {"links"}  # a link only, without expandSubResources
    expanded = get_event(netsuite_emulator, location, expandSubResources="true")
    items = expanded["attendee"]["items"]
    assert [item["attendee"]["id"] for item in items] == ["2", "201"]  # the organizer accepted
    assert items[1]["response"] == {"id": "ACCEPTED", "refName": "Accepted"}
    assert items[1]["attendance"] == {"id": "REQUIRED", "refName": "Required"}
    simple = get_event(
        netsuite_emulator, location, simpleEnumFormat="true", expandSubResources="true"
    )
    assert simple["status"] == "CONFIRMED"
    assert simple["attendee"]["items"][1]["response"] == "ACCEPTED"


@pytest.mark.parametrize(
    "status",
    ["CANCELLED", {"id": "CANCELLED"}, {"refName": "Canceled"}],
    ids=["bare-id", "id-object", "refName-object"],
)
def test_enum_values_in_all_three_forms(netsuite_emulator: NetSuiteEmulator, status: Any) -> None:
    location = upsert(netsuite_emulator, "mailbot-enum", meeting(status=status)).headers["Location"]
    assert get_event(netsuite_emulator, location, simpleEnumFormat="true")["status"] == "CANCELLED"


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("status", "CANCELED", "status"),
        ("accessLevel", "SECRET", "accessLevel"),
        (
            "attendee",
            {"items": [{"attendee": {"id": "201"}, "response": "MAYBE"}]},
            "attendee.items[0].response",
        ),
        (
            "attendee",
            {"items": [{"attendee": {"id": "201"}, "attendance": "OPTIONALISH"}]},
            "attendee.items[0].attendance",
        ),
        ("startDate", "02.03.2026", "startDate"),
        ("startTime", "9:00", "startTime"),
    ],
)
def test_invalid_values_are_invalid_content(
    netsuite_emulator: NetSuiteEmulator, field: str, value: Any, path: str
) -> None:
    response = upsert(netsuite_emulator, "mailbot-bad-value", meeting(**{field: value}))
    assert netsuite_error(response, 400, "INVALID_CONTENT")["o:errorPath"] == path


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("organizer", {"id": "999"}, "organizer"),
        ("organizer", {"id": "201"}, "organizer"),  # a contact cannot organise
        ("company", {"id": "999"}, "company"),
        ("contact", {"id": "999"}, "contact"),
        ("transaction", {"id": "999"}, "transaction"),
        (
            "attendee",
            {"items": [{"attendee": {"id": "201"}}, {"attendee": {"id": "999"}}]},
            "attendee.items[1].attendee",
        ),
    ],
)
def test_missing_references_are_invalid_content_with_error_path(
    netsuite_emulator: NetSuiteEmulator, field: str, value: Any, path: str
) -> None:
    response = upsert(netsuite_emulator, "mailbot-missing-ref", meeting(**{field: value}))
    assert netsuite_error(response, 400, "INVALID_CONTENT")["o:errorPath"] == path
    assert netsuite_emulator.records("calendarEvent") == []


def test_value_validation_warning_drops_bad_values_and_keeps_the_rest(
    netsuite_emulator: NetSuiteEmulator,
) -> None:
    body = meeting(attendee={"items": [{"attendee": {"id": "999"}}, {"attendee": {"id": "202"}}]})
    response = upsert(
        netsuite_emulator,
        "mailbot-lenient",
        body,
        headers={"X-NetSuite-PropertyValueValidation": "Warning"},
    )
    assert response.status_code == 204
    assert "attendee.items[0].attendee" in response.headers["Warning"]
    stored = netsuite_emulator.records("calendarEvent")[0]
    assert attendee_ids(stored) == ["2", "202"]


def test_references_to_existing_records_are_kept(netsuite_emulator: NetSuiteEmulator) -> None:
    body = meeting(contact={"id": "201"}, transaction={"id": "301"})
    location = upsert(netsuite_emulator, "mailbot-refs", body).headers["Location"]
    event = get_event(netsuite_emulator, location)
    assert event["contact"]["id"] == "201"
    assert event["transaction"]["id"] == "301"
    assert event["transaction"]["links"][0]["href"].endswith("/opportunity/301")


def test_strict_property_validation_catches_a_misspelled_field(
    netsuite_emulator: NetSuiteEmulator,
) -> None:
    body = meeting()
    body["tittle"] = body.pop("title")
    strict = upsert(netsuite_emulator, "mailbot-typo", body, headers=STRICT)
    detail = netsuite_error(strict, 400, "INVALID_CONTENT")
    assert "tittle" in detail["detail"]
    assert detail["o:errorPath"] == "tittle"
    lenient = upsert(netsuite_emulator, "mailbot-typo", meeting(tittle="Typo"))
    assert lenient.status_code == 204  # default Warning: ignored, with a warning header
    assert "tittle" in lenient.headers["Warning"]
    assert "tittle" not in netsuite_emulator.records("calendarEvent")[0]


def test_unknown_property_in_an_attendee_item_names_its_path(
    netsuite_emulator: NetSuiteEmulator,
) -> None:
    body = meeting(attendee={"items": [{"attendee": {"id": "201"}, "respnse": "ACCEPTED"}]})
    response = upsert(netsuite_emulator, "mailbot-item-typo", body, headers=STRICT)
    detail = netsuite_error(response, 400, "INVALID_CONTENT")
    assert detail["o:errorPath"] == "attendee.items[0].respnse"


RECURRENCE = {
    "frequency": "WEEK",
    "period": 1,
    "seriesStartDate": "2026-03-02",
    "endByDate": "2026-06-01",
    "recurrenceDow": "MONDAY",
}


def test_recurrence_fields_are_unknown_in_the_2026_1_schema(
    netsuite_emulator: NetSuiteEmulator,
) -> None:
    response = upsert(netsuite_emulator, "mailbot-series", meeting(**RECURRENCE), headers=STRICT)
    assert netsuite_error(response, 400, "INVALID_CONTENT")["o:errorPath"] == "frequency"
    schema = requests.get(
        record_url(netsuite_emulator, "metadata-catalog/calendarEvent"),
        headers={"Accept": "application/schema+json"},
        auth=tba(netsuite_emulator),
        timeout=10,
    )
    assert schema.status_code == 200
    assert schema.headers["Content-Type"].startswith("application/schema+json")
    properties = schema.json()["properties"]
    assert {"title", "startDate", "timedEvent", "attendee", "recurrence"} <= properties.keys()
    assert not set(RECURRENCE) & properties.keys()


def test_recurrence_fields_with_the_switch(netsuite_oauth2_client: OAuth2TestClient) -> None:
    with NetSuiteEmulator(small_test_data(), recurrence_fields=True) as emulator:
        response = upsert(emulator, "mailbot-series", meeting(**RECURRENCE), headers=STRICT)
        assert response.status_code == 204, response.text
        assert emulator.records("calendarEvent")[0]["frequency"] == "WEEK"
        schema = requests.get(
            record_url(emulator, "metadata-catalog/calendarEvent"),
            headers={"Accept": "application/schema+json"},
            auth=tba(emulator),
            timeout=10,
        ).json()
        assert set(RECURRENCE) <= schema["properties"].keys()


def test_the_metadata_catalog_lists_record_types(netsuite_emulator: NetSuiteEmulator) -> None:
    response = requests.get(
        record_url(netsuite_emulator, "metadata-catalog"), auth=tba(netsuite_emulator), timeout=10
    )
    assert response.status_code == 200
    names = {item["name"] for item in response.json()["items"]}
    assert {"calendarEvent", "customer", "contact", "employee"} <= names


def test_patch_merges_attendees_replace_replaces_and_null_clears(
    netsuite_emulator: NetSuiteEmulator,
) -> None:
    location = upsert(netsuite_emulator, "mailbot-patch", meeting()).headers["Location"]
    auth = tba(netsuite_emulator)

    def patch(body: dict[str, Any], **params: str) -> None:
        response = requests.patch(location, json=body, params=params, auth=auth, timeout=10)
        assert response.status_code == 204, response.text
        assert response.headers["Location"] == location

    patch({"attendee": {"items": [{"attendee": {"id": "202"}}]}})
    merged = get_event(netsuite_emulator, location, expandSubResources="true")
    assert attendee_ids(merged) == ["2", "201", "202"]
    assert merged["attendee"]["items"][2]["response"]["id"] == "NO_RESPONSE"

    patch({"attendee": {"items": [{"attendee": {"id": "201"}, "response": "DECLINED"}]}})
    responses = get_event(
        netsuite_emulator, location, expandSubResources="true", simpleEnumFormat="true"
    )
    assert [item["response"] for item in responses["attendee"]["items"]] == [
        "ACCEPTED",
        "DECLINED",
        "NO_RESPONSE",
    ]

    patch({"attendee": {"items": [{"attendee": {"id": "203"}}]}}, replace="attendee")
    replaced = get_event(netsuite_emulator, location, expandSubResources="true")
    assert attendee_ids(replaced) == ["203"]

    patch({"attendee": {"items": None}, "location": None, "message": "Agenda attached"})
    cleared = get_event(netsuite_emulator, location, expandSubResources="true")
    assert cleared["attendee"]["items"] == []
    assert "location" not in cleared
    assert cleared["message"] == "Agenda attached"
    assert cleared["title"] == "Quarterly review"  # omitted fields stay


def test_delete_then_nonexistent_id(netsuite_emulator: NetSuiteEmulator) -> None:
    location = upsert(netsuite_emulator, "mailbot-delete", meeting()).headers["Location"]
    deleted = requests.delete(location, auth=tba(netsuite_emulator), timeout=10)
    assert deleted.status_code == 204
    gone = requests.get(location, auth=tba(netsuite_emulator), timeout=10)
    detail = netsuite_error(gone, 404, "NONEXISTENT_ID")
    assert gone.json()["title"] == "Not Found"
    assert detail["detail"] == "Record does not exist."
    again = requests.delete(location, auth=tba(netsuite_emulator), timeout=10)
    netsuite_error(again, 404, "NONEXISTENT_ID")


@pytest.mark.parametrize("external_id", ["uid@example.com", "a.b", "with space"])
def test_external_ids_allow_letters_digits_underscore_and_hyphen_only(
    netsuite_emulator: NetSuiteEmulator, external_id: str
) -> None:
    in_url = upsert(netsuite_emulator, external_id, meeting())
    netsuite_error(in_url, 400, "INVALID_REQUEST")
    in_body = requests.post(
        record_url(netsuite_emulator, "calendarEvent"),
        json=meeting(externalId=external_id),
        auth=tba(netsuite_emulator),
        timeout=10,
    )
    assert netsuite_error(in_body, 400, "INVALID_CONTENT")["o:errorPath"] == "externalId"


def test_an_event_cannot_end_before_it_starts(netsuite_emulator: NetSuiteEmulator) -> None:
    response = upsert(
        netsuite_emulator, "mailbot-overnight", meeting(startTime="23:00", endTime="01:00")
    )
    assert netsuite_error(response, 400, "INVALID_CONTENT")["o:errorPath"] == "endTime"


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_malformed_bodies_get_netsuite_errors_and_the_server_goes_on(
    netsuite_emulator: NetSuiteEmulator, body: bytes
) -> None:
    response = requests.post(
        record_url(netsuite_emulator, "calendarEvent"),
        data=body,
        headers={"Content-Type": "application/json"},
        auth=tba(netsuite_emulator),
        timeout=10,
    )
    netsuite_error(response, 400, "INVALID_CONTENT")
    after = requests.get(
        record_url(netsuite_emulator, "employee/1"), auth=tba(netsuite_emulator), timeout=10
    )
    assert after.status_code == 200


def test_a_failing_handler_gives_unexpected_error_and_the_server_goes_on(
    netsuite_emulator: NetSuiteEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailbot.sim.netsuite.store import Store

    def broken(*_: Any) -> None:
        raise RuntimeError("disk on fire")

    with monkeypatch.context() as patched:
        patched.setattr(Store, "row", broken)
        response = requests.get(
            record_url(netsuite_emulator, "employee/1"), auth=tba(netsuite_emulator), timeout=10
        )
        detail = netsuite_error(response, 500, "UNEXPECTED_ERROR")
        assert "Error ID" in detail["detail"]
    after = requests.get(
        record_url(netsuite_emulator, "employee/1"), auth=tba(netsuite_emulator), timeout=10
    )
    assert after.status_code == 200


# SuiteQL (section 5)


def test_suiteql_needs_prefer_transient(netsuite_emulator: NetSuiteEmulator) -> None:
    response = requests.post(
        f"{netsuite_emulator.rest_url}/query/v1/suiteql",
        json={"q": "SELECT id FROM employee"},
        auth=tba(netsuite_emulator),
        timeout=10,
    )
    detail = netsuite_error(response, 400, "INVALID_REQUEST")
    assert detail["o:errorHeader"] == "Prefer"


def test_customers_by_email_or_alternative_email(netsuite_emulator: NetSuiteEmulator) -> None:
    q = (
        "SELECT id, entityid, companyname, email, altemail, entitystatus, searchstage, "
        "BUILTIN.DF(entitystatus) AS status_name FROM customer "
        "WHERE LOWER(email) = ? OR LOWER(altemail) = ?"
    )
    address = "billing@acme-instruments.example.com"
    response = suiteql(netsuite_emulator, q, [address, address])
    assert response.status_code == 200, response.text
    page = response.json()
    assert {"links", "count", "hasMore", "offset", "totalResults", "items"} <= page.keys()
    assert page["count"] == page["totalResults"] == 1
    assert page["hasMore"] is False
    customer = page["items"][0]
    assert customer["id"] == "101"  # values come back as text
    assert customer["searchstage"] == "CUSTOMER"
    assert customer["status_name"] == "CUSTOMER-Closed Won"
    assert customer["links"] == []


def test_equality_is_case_sensitive_so_clients_lower_both_sides(
    netsuite_emulator: NetSuiteEmulator,
) -> None:
    exact = suiteql(
        netsuite_emulator,
        "SELECT id FROM contact WHERE email = ?",
        ["carla.contact@acme-instruments.example.com"],
    )
    lowered = suiteql(
        netsuite_emulator,
        "SELECT id FROM contact WHERE LOWER(email) = ?",
        ["carla.contact@acme-instruments.example.com"],
    )
    assert exact.json()["totalResults"] == 0
    assert [item["id"] for item in lowered.json()["items"]] == ["201"]


def test_contacts_by_email_with_their_company(netsuite_emulator: NetSuiteEmulator) -> None:
    q = (
        "SELECT c.id, c.firstname, c.lastname, c.email, c.altemail, c.company, "
        "cu.companyname, cu.searchstage FROM contact c LEFT JOIN customer cu ON cu.id = c.company "
        "WHERE LOWER(c.email) IN (?, ?) OR LOWER(c.altemail) IN (?, ?) ORDER BY c.id"
    )
    addresses = ["dan.private@mail.example.net", "frida@freelance.example.net"]
    items = suiteql(netsuite_emulator, q, addresses + addresses).json()["items"]
    assert [item["id"] for item in items] == ["202", "204"]
    assert items[0]["companyname"] == "Acme Instruments"
    assert "company" not in items[1]  # null columns are left out
    assert "companyname" not in items[1]


def test_active_employees_by_email(netsuite_emulator: NetSuiteEmulator) -> None:
    q = "SELECT id, entityid, email FROM employee WHERE LOWER(email) = ? AND isinactive = 'F'"
    active = suiteql(netsuite_emulator, q, ["olivia.organizer@ourco.example.org"]).json()
    inactive = suiteql(netsuite_emulator, q, ["ivan.inactive@ourco.example.org"]).json()
    assert [item["id"] for item in active["items"]] == ["2"]
    assert inactive["totalResults"] == 0


def test_open_opportunities_of_given_companies(netsuite_emulator: NetSuiteEmulator) -> None:
    q = (
        "SELECT t.id, t.tranid, t.title, t.entity, t.status, BUILTIN.DF(t.status) AS status_name, "
        "t.expectedclosedate FROM transaction t WHERE t.type = 'Opprtnty' "
        "AND t.entity IN (?, ?) AND t.status IN ('A', 'B') ORDER BY t.id"
    )
    items = suiteql(netsuite_emulator, q, [101, 103]).json()["items"]
    assert [item["id"] for item in items] == ["301", "302", "304"]
    assert items[0]["status"] == "A"
    assert items[0]["status_name"] == "Opportunity : In Progress"


def test_the_entity_table_spans_all_entity_types(netsuite_emulator: NetSuiteEmulator) -> None:
    q = "SELECT id, type FROM entity WHERE LOWER(email) LIKE ? ORDER BY id"
    items = suiteql(netsuite_emulator, q, ["%acme-instruments.example.com"]).json()["items"]
    assert [(item["id"], item["type"]) for item in items] == [
        ("101", "CustJob"),
        ("201", "Contact"),
        ("202", "Contact"),
    ]


def test_the_demo_account_is_a_realistic_crm(netsuite_demo_emulator: NetSuiteEmulator) -> None:
    customers = netsuite_demo_emulator.records("customer")
    assert len(netsuite_demo_emulator.records("employee")) == 15
    assert len(customers) == 150
    assert {row["searchstage"] for row in customers} == {"CUSTOMER", "LEAD", "PROSPECT"}
    assert len(netsuite_demo_emulator.records("contact")) == 250
    assert len(netsuite_demo_emulator.records("opportunity")) == 60


def test_paging_over_more_than_a_thousand_rows() -> None:
    data = small_test_data()
    data["contacts"] += [
        {
            "id": 10_000 + n,
            "entityid": f"Bulk {n}",
            "email": f"bulk{n}@bulk.example.org",
            "company": 101,
        }
        for n in range(2500)
    ]
    with NetSuiteEmulator(data) as emulator:
        q = "SELECT id FROM contact WHERE email LIKE ? ORDER BY id"
        first = suiteql(emulator, q, ["%@bulk.example.org"])
        page = first.json()
        assert (page["count"], page["totalResults"], page["hasMore"]) == (1000, 2500, True)
        seen = [item["id"] for item in page["items"]]
        offsets = [page["offset"]]
        while page["hasMore"]:
            next_link = next(link["href"] for link in page["links"] if link["rel"] == "next")
            response = requests.post(
                next_link,
                json={"q": q, "params": ["%@bulk.example.org"]},
                headers=TRANSIENT,
                auth=tba(emulator),
                timeout=10,
            )
            assert response.status_code == 200, response.text
            page = response.json()
            offsets.append(page["offset"])
            seen += [item["id"] for item in page["items"]]
        assert offsets == [0, 1000, 2000]
        assert page["count"] == 500
        assert len(set(seen)) == 2500


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"limit": 1001}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": 1000, "offset": 500}, "offset"),
        ({"limit": 10, "offset": 15}, "offset"),
    ],
)
def test_page_size_and_offset_rules(
    netsuite_emulator: NetSuiteEmulator, query: dict[str, int], param: str
) -> None:
    response = suiteql(netsuite_emulator, "SELECT id FROM contact", None, **query)
    assert netsuite_error(response, 400, "INVALID_REQUEST")["o:errorQueryParam"] == param


def test_offset_multiple_of_limit_is_served(netsuite_emulator: NetSuiteEmulator) -> None:
    page = suiteql(
        netsuite_emulator, "SELECT id FROM contact ORDER BY id", limit=2, offset=2
    ).json()
    assert [item["id"] for item in page["items"]] == ["203", "204"]
    assert page["hasMore"] is False
    assert {link["rel"] for link in page["links"]} >= {"self", "previous", "first"}


def test_in_lists_hold_at_most_a_thousand_values(netsuite_emulator: NetSuiteEmulator) -> None:
    def in_list(size: int) -> requests.Response:
        marks = ", ".join("?" for _ in range(size))
        q = f"SELECT id FROM contact WHERE id IN ({marks})"  # noqa: S608
        return suiteql(netsuite_emulator, q, list(range(size)))

    assert in_list(1000).status_code == 200
    netsuite_error(in_list(1001), 400, "INVALID_REQUEST")


@pytest.mark.parametrize(
    "q",
    [
        "WITH c AS (SELECT id FROM contact) SELECT id FROM c",
        "DELETE FROM contact",
        "UPDATE contact SET email = 'x@example.com'",
        "INSERT INTO contact (id) VALUES (1)",
        "DROP TABLE contact",
        "SELECT id FROM contact; DELETE FROM contact",
        "PRAGMA table_info(contact)",
        "SELECT name FROM sqlite_master",
    ],
    ids=["with", "delete", "update", "insert", "drop", "two-statements", "pragma", "internals"],
)
def test_only_plain_select_statements_run(netsuite_emulator: NetSuiteEmulator, q: str) -> None:
    netsuite_error(suiteql(netsuite_emulator, q), 400, "INVALID_REQUEST")
    assert len(netsuite_emulator.records("contact")) == 4


def test_parameters_are_counted(netsuite_emulator: NetSuiteEmulator) -> None:
    response = suiteql(netsuite_emulator, "SELECT id FROM contact WHERE email = ?", [])
    netsuite_error(response, 400, "INVALID_REQUEST")


# Governance and faults (section 6)


def test_concurrency_limit_answers_429_with_the_documented_body(
    netsuite_emulator: NetSuiteEmulator,
) -> None:
    netsuite_emulator.set_faults(FaultPlan(latency_ms=400))
    url = record_url(netsuite_emulator, "employee/2")
    start = threading.Barrier(20)
    responses: list[requests.Response] = []
    lock = threading.Lock()

    def call() -> None:
        auth = tba(netsuite_emulator)
        start.wait()
        response = requests.get(url, auth=auth, timeout=10)
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = [response.status_code for response in responses]
    assert statuses.count(200) >= 5
    assert statuses.count(429) >= 1
    assert set(statuses) == {200, 429}
    assert netsuite_emulator.peak_concurrency <= 5
    refused = next(response for response in responses if response.status_code == 429)
    body = refused.json()
    assert body["title"] == "Bad Request"
    assert body["status"] == 429
    assert body["o:errorCode"] == "USER_ERROR"
    assert body["o:errorDetails"] == [
        {
            "detail": "Concurrent request limit exceeded. Request blocked.",
            "o:errorCode": "CONCURRENCY_LIMIT_EXCEEDED",
        }
    ]


def test_error_rate_one_answers_server_errors_in_netsuite_shape(
    netsuite_emulator: NetSuiteEmulator,
) -> None:
    netsuite_emulator.set_faults(FaultPlan(error_rate=1.0, seed=7))
    url = record_url(netsuite_emulator, "employee/2")
    statuses = set()
    for _ in range(12):
        response = requests.get(url, auth=tba(netsuite_emulator), timeout=10)
        statuses.add(response.status_code)
        netsuite_error(response, response.status_code, "UNEXPECTED_ERROR")
    assert statuses == {500, 503}
    netsuite_emulator.set_faults(FaultPlan())
    assert requests.get(url, auth=tba(netsuite_emulator), timeout=10).status_code == 200


def test_burst_429_answers_the_next_requests_then_recovers(
    netsuite_emulator: NetSuiteEmulator,
) -> None:
    netsuite_emulator.set_faults(FaultPlan(burst_429=2, retry_after_seconds=1))
    url = record_url(netsuite_emulator, "employee/2")
    answers = [requests.get(url, auth=tba(netsuite_emulator), timeout=10) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [429, 429, 200]
    netsuite_error(answers[0], 429, "CONCURRENCY_LIMIT_EXCEEDED")
    assert answers[0].headers["Retry-After"] == "1"
    assert netsuite_emulator.status_counts() == {429: 2, 200: 1}


def test_reset_closes_the_connection_without_an_answer(
    netsuite_emulator: NetSuiteEmulator,
) -> None:
    netsuite_emulator.set_faults(FaultPlan(reset_rate=1.0))
    with pytest.raises(requests.ConnectionError):
        requests.get(
            record_url(netsuite_emulator, "employee/2"), auth=tba(netsuite_emulator), timeout=10
        )
    netsuite_emulator.set_faults(FaultPlan())
    ok = requests.get(
        record_url(netsuite_emulator, "employee/2"), auth=tba(netsuite_emulator), timeout=10
    )
    assert ok.status_code == 200
    log = netsuite_emulator.request_log()
    assert [(entry.status, entry.fault) for entry in log] == [(None, "reset"), (200, None)]


def test_a_stalled_write_is_carried_out_though_its_answer_comes_too_late(
    netsuite_emulator: NetSuiteEmulator,
) -> None:
    netsuite_emulator.set_faults(FaultPlan(stall_rate=1.0, stall_seconds=1.0))
    with pytest.raises(requests.ReadTimeout):
        requests.put(
            record_url(netsuite_emulator, "calendarEvent/eid:mailbot-stalled"),
            json=meeting(),
            auth=tba(netsuite_emulator),
            timeout=(5, 0.3),
        )
    written = [e["externalId"] for e in netsuite_emulator.records("calendarEvent")]
    assert written == ["mailbot-stalled"]  # done before the answer was held back
    deadline = time.monotonic() + 10
    while not netsuite_emulator.request_log() and time.monotonic() < deadline:
        time.sleep(0.05)
    (entry,) = netsuite_emulator.request_log()
    assert (entry.method, entry.status, entry.fault) == ("PUT", 204, "stall")
    assert entry.duration_ms >= 1000
    netsuite_emulator.set_faults(FaultPlan())
    ok = requests.get(
        record_url(netsuite_emulator, "employee/2"), auth=tba(netsuite_emulator), timeout=10
    )
    assert ok.status_code == 200


def test_a_fault_script_gives_each_fault_in_turn_then_the_rates(
    netsuite_emulator: NetSuiteEmulator,
) -> None:
    netsuite_emulator.set_faults(FaultPlan(script=("reset", 503, None, "stall"), stall_seconds=1))
    url = record_url(netsuite_emulator, "employee/2")
    with pytest.raises(requests.ConnectionError):
        requests.get(url, auth=tba(netsuite_emulator), timeout=10)
    netsuite_error(
        requests.get(url, auth=tba(netsuite_emulator), timeout=10), 503, "UNEXPECTED_ERROR"
    )
    assert requests.get(url, auth=tba(netsuite_emulator), timeout=10).status_code == 200
    with pytest.raises(requests.ReadTimeout):
        requests.get(url, auth=tba(netsuite_emulator), timeout=(5, 0.3))
    assert requests.get(url, auth=tba(netsuite_emulator), timeout=10).status_code == 200
    deadline = time.monotonic() + 10
    while len(netsuite_emulator.request_log()) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    faults = sorted(str(entry.fault) for entry in netsuite_emulator.request_log())
    assert faults == ["None", "None", "error", "reset", "stall"]
    with pytest.raises(ValueError, match="script"):
        FaultPlan(script=("teapot",))


def test_latency_jitter_draws_a_wait_for_each_request(netsuite_emulator: NetSuiteEmulator) -> None:
    plan = FaultPlan(latency_ms=20, latency_jitter_ms=200, seed=3)
    netsuite_emulator.set_faults(plan)
    for _ in range(4):
        response = requests.get(
            record_url(netsuite_emulator, "employee/2"), auth=tba(netsuite_emulator), timeout=10
        )
        assert response.status_code == 200
    assert all(entry.duration_ms >= 20 for entry in netsuite_emulator.request_log())
    injector = FaultInjector()
    injector.set_plan(plan)
    waits = [injector.decide().latency_s for _ in range(50)]
    assert all(0.020 <= wait <= 0.220 for wait in waits)
    assert max(waits) - min(waits) > 0.1  # spread over the range, not one fixed wait


def test_the_request_log_records_requests_without_secrets(
    netsuite_emulator: NetSuiteEmulator,
) -> None:
    netsuite_emulator.reset_log()
    upsert(netsuite_emulator, "mailbot-log", meeting())
    requests.get(
        record_url(netsuite_emulator, "calendarEvent/eid:mailbot-log"),
        params={"expandSubResources": "true"},
        auth=tba(netsuite_emulator),
        timeout=10,
    )
    requests.get(
        record_url(netsuite_emulator, "employee/2"),
        auth=tba(netsuite_emulator, client_secret="wrong"),  # noqa: S106
        timeout=10,
    )
    log = netsuite_emulator.request_log()
    assert [(e.method, e.path, e.status) for e in log] == [
        ("PUT", "/services/rest/record/v1/calendarEvent/eid:mailbot-log", 204),
        (
            "GET",
            "/services/rest/record/v1/calendarEvent/eid:mailbot-log?expandSubResources=true",
            200,
        ),
        ("GET", "/services/rest/record/v1/employee/2", 401),
    ]
    assert log[0].auth_scheme == "OAuth"
    assert log[0].body_bytes > 0
    assert all(entry.duration_ms >= 0 for entry in log)
    text = repr(log)
    for secret in netsuite_emulator.credentials.values():
        if secret != netsuite_emulator.account:
            assert secret not in text
    assert "oauth_signature" not in text
    netsuite_emulator.reset_log()
    assert netsuite_emulator.request_log() == []

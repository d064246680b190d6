"""The emulator's account set-up: custom event fields (required ones refuse writes without
them) and its clock (the Date header, and the TBA timestamp window, follow it).

Clients here are plain requests + requests-oauthlib, never mailbot's own client.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import requests

from mailbot.sim.netsuite import DataError, NetSuiteEmulator, load_data
from mailbot.sim.netsuite.data import check_data
from tests.netsuite_fixtures import small_test_data
from tests.sim.test_netsuite_conformance import (
    STRICT,
    meeting,
    netsuite_error,
    record_url,
    tba,
    upsert,
)

REGION = {"id": "custevent_region", "label": "Region", "type": "string", "required": True}
BILLABLE = {"id": "custevent_billable", "label": "Billable", "type": "boolean"}


def _with_custom_fields(*fields: dict[str, Any]) -> dict[str, Any]:
    data = small_test_data()
    data["custom_fields"] = list(fields)
    return data


def _schema(emulator: NetSuiteEmulator) -> dict[str, Any]:
    response = requests.get(
        record_url(emulator, "metadata-catalog/calendarEvent"),
        headers={"Accept": "application/schema+json"},
        auth=tba(emulator),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_schema_lists_custom_fields_and_what_is_required() -> None:
    with NetSuiteEmulator(_with_custom_fields(REGION, BILLABLE)) as emulator:
        schema = _schema(emulator)
    region = schema["properties"]["custevent_region"]
    assert region["title"] == "Region"
    assert region["type"] == "string"
    assert region["x-ns-custom-field"] is True
    assert schema["properties"]["custevent_billable"]["type"] == "boolean"
    assert schema["required"] == ["title", "custevent_region"]


def test_without_custom_fields_only_the_title_is_required(
    netsuite_emulator: NetSuiteEmulator,
) -> None:
    schema = _schema(netsuite_emulator)
    assert schema["required"] == ["title"]
    assert not any(name.startswith("custevent") for name in schema["properties"])


def test_a_required_custom_field_refuses_writes_without_it() -> None:
    with NetSuiteEmulator(_with_custom_fields(REGION, BILLABLE)) as emulator:
        refused = upsert(emulator, "mailbot-a", meeting(), headers=STRICT)
        detail = netsuite_error(refused, 400, "INVALID_CONTENT")
        assert detail["detail"] == "Please enter value(s) for: Region"
        assert detail["o:errorPath"] == "custevent_region"
        assert emulator.records("calendarEvent") == []

        written = upsert(
            emulator,
            "mailbot-a",
            meeting(custevent_region="EMEA", custevent_billable=True),
            headers=STRICT,
        )
        assert written.status_code == 204, written.text
        stored = emulator.records("calendarEvent")[0]
        assert (stored["custevent_region"], stored["custevent_billable"]) == ("EMEA", True)

        cleared = upsert(emulator, "mailbot-a", {"custevent_region": None}, headers=STRICT)
        netsuite_error(cleared, 400, "INVALID_CONTENT")
        assert emulator.records("calendarEvent")[0]["custevent_region"] == "EMEA"


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"id": "region"}, "custom_fields[0].id"),
        ({"id": "custevent_x", "type": "money"}, "custom_fields[0].type"),
        ({"id": "custevent_x", "required": "yes"}, "custom_fields[0].required"),
        ({"id": "custevent_x", "label": 5}, "custom_fields[0].label"),
    ],
)
def test_the_data_file_names_bad_custom_fields(entry: dict[str, Any], problem: str) -> None:
    with pytest.raises(DataError) as raised:
        check_data(_with_custom_fields(entry))
    assert any(text.startswith(problem) for text in raised.value.problems)


def test_a_custom_field_is_declared_once() -> None:
    with pytest.raises(DataError) as raised:
        check_data(_with_custom_fields(REGION, REGION))
    assert raised.value.problems == ["custom_fields[1].id: custevent_region is already a field"]


def test_the_date_header_and_the_signature_window_follow_the_account_clock() -> None:
    skew = 600.0
    with NetSuiteEmulator(load_data(None), clock=lambda: time.time() + skew) as emulator:
        # Signed now, the request is ten minutes behind the account's clock: refused.
        response = requests.get(
            record_url(emulator, "metadata-catalog"), auth=tba(emulator), timeout=10
        )
        netsuite_error(response, 401, "INVALID_LOGIN")
        served = parsedate_to_datetime(response.headers["Date"]).timestamp()
    assert skew - 5 < served - time.time() < skew + 5

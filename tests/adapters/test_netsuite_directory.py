"""NetSuiteDirectory and NetSuiteCalendar against the emulator, over real HTTP (no mocks)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from mailbot.adapters.netsuite import (
    NetSuiteClient,
    NetSuiteConfig,
    TokenAuthConfig,
)
from mailbot.adapters.netsuite.calendar import NetSuiteCalendar
from mailbot.adapters.netsuite.directory import NetSuiteDirectory
from mailbot.core.crm import Company, Contact, Employee, Opportunity, Stage
from mailbot.ports import FatalError, RejectedError, TemporaryError
from mailbot.sim.netsuite import FaultPlan, NetSuiteEmulator
from tests.netsuite_fixtures import small_test_data

SUITEQL_PATH = "/services/rest/query/v1/suiteql"
ACME = "acme-instruments.example.com"
CARLA = f"carla.contact@{ACME}"
DAN = f"dan.doe@{ACME}"
DAN_PRIVATE = "dan.private@mail.example.net"
NOBODY = "nobody@nowhere.example.com"
TTL = 60.0


# ----------------------------------------------------------------------------- helpers


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
        backoff_base=0.01,
        backoff_cap=0.05,
    )


class RecordingClient(NetSuiteClient):
    """The real client, also keeping each SuiteQL statement and its parameters."""

    def __init__(self, config: NetSuiteConfig) -> None:
        super().__init__(config)
        self.statements: list[tuple[str, list[Any]]] = []

    def suiteql(self, query: str, params: Iterable[Any] = (), **options: Any) -> Iterator[Any]:
        values = list(params)
        self.statements.append((query, values))
        return super().suiteql(query, values, **options)

    def asked(self, table: str) -> list[list[Any]]:
        """The parameters of the statements sent to one table."""
        return [params for query, params in self.statements if f" FROM {table} " in query]


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def suiteql_requests(emulator: NetSuiteEmulator) -> list[int | None]:
    return [e.status for e in emulator.request_log() if e.path.startswith(SUITEQL_PATH)]


def account_data() -> dict[str, Any]:
    """The small test account plus a lost opportunity and inactive records."""
    data = small_test_data()
    data["opportunities"].append(
        {"id": 305, "tranid": "OPP305", "title": "Lost bid", "entity": 101, "status": "D"}
    )
    data["customers"].append(
        {
            "id": 104,
            "entityid": "Gone GmbH",
            "companyname": "Gone GmbH",
            "stage": "CUSTOMER",
            "email": "info@gone.example.com",
            "isinactive": True,
        }
    )
    data["contacts"].append(
        {
            "id": 205,
            "entityid": "Olaf Old",
            "firstname": "Olaf",
            "lastname": "Old",
            "email": "olaf@gone.example.com",
            "company": 104,
            "isinactive": True,
        }
    )
    return data


@pytest.fixture
def emulator() -> Iterator[NetSuiteEmulator]:
    with NetSuiteEmulator(account_data()) as started:
        yield started


@pytest.fixture
def client(emulator: NetSuiteEmulator) -> Iterator[RecordingClient]:
    with RecordingClient(token_config(emulator)) as built:
        yield built


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def directory(client: RecordingClient, clock: ManualClock) -> NetSuiteDirectory:
    return NetSuiteDirectory(client, ttl_seconds=TTL, clock=clock)


def ids(records: Mapping[str, Iterable[Any]], address: str) -> list[str]:
    return [record.id for record in records.get(address, ())]


# ----------------------------------------------------------------------------- matching


def test_contacts_by_email_and_altemail_whatever_the_case(directory: NetSuiteDirectory) -> None:
    answer = directory.lookup([CARLA.upper(), " Dan.Private@Mail.Example.NET ", NOBODY])
    assert answer.contacts == {
        CARLA: (Contact("201", f"Carla.Contact@{ACME}", "Carla Contact", "101"),),
        # found by its altemail, listed under that address, with its own primary address
        DAN_PRIVATE: (Contact("202", DAN, "Dan Doe", "101"),),
    }
    assert NOBODY not in answer.contacts
    assert (answer.employees, answer.companies) == ({}, {})


def test_every_record_kind(directory: NetSuiteDirectory) -> None:
    answer = directory.lookup(
        [
            "Olivia.Organizer@ourco.example.org",
            "ivan.inactive@ourco.example.org",
            f"BILLING@{ACME}",
            "hello@lead-labs.example.net",
            "office@prospect.example.org",
            "pia@prospect.example.org",
            "frida@freelance.example.net",
        ]
    )
    assert answer.employees == {
        "olivia.organizer@ourco.example.org": (
            Employee("2", "olivia.organizer@ourco.example.org", "Olivia Organizer", True),
        ),
        "ivan.inactive@ourco.example.org": (
            Employee("3", "ivan.inactive@ourco.example.org", "Ivan Inactive", False),
        ),
    }
    assert answer.companies == {
        f"billing@{ACME}": (Company("101", f"info@{ACME}", "Acme Instruments", Stage.CUSTOMER),),
        "hello@lead-labs.example.net": (
            Company("102", "hello@lead-labs.example.net", "Lead Labs", Stage.LEAD),
        ),
        "office@prospect.example.org": (
            Company("103", "office@prospect.example.org", "Prospect Partners", Stage.PROSPECT),
        ),
    }
    assert ids(answer.contacts, "pia@prospect.example.org") == ["203"]
    assert answer.contacts["frida@freelance.example.net"][0].company_id is None
    assert sorted(answer.opportunities) == ["101", "103"]  # 102 (a lead) has none
    assert ids(answer.opportunities, "103") == ["304"]


def test_a_contacts_company_brings_its_open_opportunities_only(
    directory: NetSuiteDirectory,
) -> None:
    answer = directory.lookup([CARLA])  # a contact of 101; 101's own address is not asked
    assert answer.companies == {}
    assert answer.opportunities == {
        "101": (
            Opportunity("301", "101", "Sensor retrofit", "A", date(2026, 6, 30)),
            Opportunity("302", "101", "Service renewal", "B", date(2026, 9, 30)),
        )
    }  # 303 (won) and 305 (lost) are closed


def test_look_up_errors_leave_as_the_ports_errors(emulator: NetSuiteEmulator) -> None:
    emulator.set_faults(FaultPlan(error_rate=1.0, error_statuses=(503,)))
    unavailable = NetSuiteClient(replace(token_config(emulator), max_attempts=2))
    with unavailable, pytest.raises(TemporaryError, match="unavailable"):
        NetSuiteDirectory(unavailable).lookup([CARLA])
    emulator.set_faults(FaultPlan())
    refused = token_config(emulator)
    wrong = replace(refused, auth=replace(refused.auth, token_secret="not-the-secret"))  # noqa: S106
    with NetSuiteClient(wrong) as client, pytest.raises(FatalError, match="credentials"):
        NetSuiteDirectory(client).lookup([CARLA])


def test_inactive_companies_and_contacts_are_not_returned(directory: NetSuiteDirectory) -> None:
    answer = directory.lookup(["info@gone.example.com", "olaf@gone.example.com"])
    assert answer == type(answer)()


def test_an_empty_batch_sends_nothing(
    emulator: NetSuiteEmulator, directory: NetSuiteDirectory
) -> None:
    assert directory.lookup(["", "  "]) == type(directory.lookup([]))()
    assert suiteql_requests(emulator) == []


def test_the_statements_sent(client: RecordingClient, directory: NetSuiteDirectory) -> None:
    directory.lookup([DAN, NOBODY])
    assert client.statements == [
        (
            "SELECT id, entityid, firstname, lastname, email, isinactive FROM employee "
            "WHERE LOWER(email) IN (?, ?) ORDER BY id",
            [DAN, NOBODY],
        ),
        (
            "SELECT id, entityid, firstname, lastname, email, altemail, company FROM contact "
            "WHERE isinactive = 'F' AND (LOWER(email) IN (?, ?) OR LOWER(altemail) IN (?, ?)) "
            "ORDER BY id",
            [DAN, NOBODY, DAN, NOBODY],
        ),
        (
            "SELECT id, entityid, companyname, email, altemail, searchstage FROM customer "
            "WHERE isinactive = 'F' AND (LOWER(email) IN (?, ?) OR LOWER(altemail) IN (?, ?)) "
            "ORDER BY id",
            [DAN, NOBODY, DAN, NOBODY],
        ),
        (
            "SELECT id, tranid, title, entity, status, expectedclosedate FROM transaction "
            "WHERE type = 'Opprtnty' AND status IN ('A', 'B') AND entity IN (?) "
            "ORDER BY entity, id",
            ["101"],
        ),
    ]


def test_the_demo_account_finds_every_active_contact(
    netsuite_demo_emulator: NetSuiteEmulator,
) -> None:
    contacts = [c for c in netsuite_demo_emulator.records("contact") if c["isinactive"] == "F"]
    addresses = {c["email"] for c in contacts} | {c["altemail"] for c in contacts if c["altemail"]}
    with NetSuiteClient(token_config(netsuite_demo_emulator)) as demo_client:
        answer = NetSuiteDirectory(demo_client).lookup(addresses)
    found = {contact.id for listed in answer.contacts.values() for contact in listed}
    assert found == {str(c["id"]) for c in contacts}
    assert all(address == address.lower() for address in answer.contacts)
    assert any(len(listed) > 1 for listed in answer.contacts.values())  # a shared address


# ----------------------------------------------------------------------------- batching


def test_thousands_of_addresses_take_three_statements_per_record_type() -> None:
    data = small_test_data()
    data["contacts"] += [
        {
            "id": 10_000 + n,
            "entityid": f"Bulk {n}",
            "firstname": "Bulk",
            "lastname": str(n),
            "email": f"Bulk{n}@Many.example.com",
            "company": 101 + n % 3,
        }
        for n in range(2_400)
    ]
    addresses = [f"BULK{n}@many.example.com" for n in range(2_400)]
    addresses += [f"unknown{n}@nowhere.example.com" for n in range(100)]
    with NetSuiteEmulator(data) as emulator, RecordingClient(token_config(emulator)) as client:
        directory = NetSuiteDirectory(client)
        answer = directory.lookup(addresses)
        requests = suiteql_requests(emulator)
        assert requests == [200] * 10  # 3 employee, 3 contact, 3 customer, 1 opportunity
        assert [len(params) for params in client.asked("contact")] == [2000, 2000, 1000]
        assert [len(params) for params in client.asked("employee")] == [1000, 1000, 500]
        assert len(answer.contacts) == 2_400
        assert sorted(answer.opportunities) == ["101", "103"]
        stats = directory.stats()
        assert (stats["queries.employee"], stats["queries.contact"]) == (3, 3)
        assert (stats["queries.customer"], stats["queries.transaction"]) == (3, 1)

        emulator.reset_log()
        again = directory.lookup(addresses)  # within the TTL, the 100 unknowns included
        assert suiteql_requests(emulator) == []
        assert again == answer
        assert (directory.stats()["hits"], directory.stats()["misses"]) == (2_500, 2_500)


def test_negative_answers_are_cached_until_the_ttl_runs_out(
    emulator: NetSuiteEmulator, directory: NetSuiteDirectory, clock: ManualClock
) -> None:
    batch = [CARLA, NOBODY]
    first = directory.lookup(batch)
    assert len(suiteql_requests(emulator)) == 4  # one statement per record type

    emulator.reset_log()
    clock.now += TTL - 1
    assert directory.lookup(batch) == first
    assert directory.lookup([NOBODY]) == type(first)()
    assert suiteql_requests(emulator) == []

    clock.now += 1  # the TTL has run out
    assert directory.lookup(batch) == first
    assert len(suiteql_requests(emulator)) == 4
    stats = directory.stats()
    assert {key: stats[key] for key in ("hits", "misses", "queries")} == {
        "hits": 3,
        "misses": 4,
        "queries": 8,
    }


def test_a_mixed_batch_asks_only_for_the_addresses_not_cached(
    emulator: NetSuiteEmulator, client: RecordingClient, directory: NetSuiteDirectory
) -> None:
    directory.lookup([CARLA, NOBODY])
    client.statements.clear()
    emulator.reset_log()

    answer = directory.lookup([CARLA, NOBODY, DAN, f"Info@{ACME}"])
    assert client.asked("employee") == [[DAN, f"info@{ACME}"]]
    assert client.asked("contact") == [[DAN, f"info@{ACME}"] * 2]
    assert client.asked("customer") == [[DAN, f"info@{ACME}"] * 2]
    assert client.asked("transaction") == []  # company 101's opportunities are cached
    assert len(suiteql_requests(emulator)) == 3
    assert ids(answer.contacts, CARLA) == ["201"]
    assert ids(answer.contacts, DAN) == ["202"]
    assert ids(answer.companies, f"info@{ACME}") == ["101"]
    assert ids(answer.opportunities, "101") == ["301", "302"]


def test_invalidate_forgets_everything(
    emulator: NetSuiteEmulator, directory: NetSuiteDirectory
) -> None:
    directory.lookup([CARLA])
    directory.invalidate()
    assert (directory.stats()["cached_addresses"], directory.stats()["cached_companies"]) == (0, 0)
    emulator.reset_log()
    directory.lookup([CARLA])
    assert len(suiteql_requests(emulator)) == 4


def test_expired_entries_are_dropped(directory: NetSuiteDirectory, clock: ManualClock) -> None:
    directory.lookup([CARLA, NOBODY])
    assert directory.stats()["cached_addresses"] == 2
    clock.now += 2 * TTL
    directory.lookup([DAN])
    assert directory.stats()["cached_addresses"] == 1


# ----------------------------------------------------------------------------- calendar


def event_body(title: str, *attendees: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": title,
        "startDate": "2026-03-02",
        "startTime": "10:00",
        "endTime": "11:00",
        "status": "CONFIRMED",
    }
    if attendees:
        body["attendee"] = {"items": [{"attendee": {"id": ref}} for ref in attendees]}
    return body


def attendee_ids(client: NetSuiteClient, ref: str) -> list[str]:
    event = client.get_event(ref)
    assert event is not None
    return [item["attendee"]["id"] for item in event["attendee"]["items"]]


def test_calendar_upsert_twice_is_one_event(
    emulator: NetSuiteEmulator, client: RecordingClient
) -> None:
    calendar = NetSuiteCalendar(client)
    first = calendar.upsert("mailbot-cal-1", event_body("First", "201", "202"))
    second = calendar.upsert(
        "mailbot-cal-1", {**event_body("Second", "202"), "externalId": "mailbot-cal-1"}
    )
    assert first == second
    assert first.isdigit()
    [stored] = emulator.records("calendarEvent")
    assert (str(stored["id"]), stored["title"]) == (first, "Second")
    assert attendee_ids(client, first) == ["202"]  # replaced, not merged


def test_calendar_refuses_a_different_external_id_in_the_body(
    emulator: NetSuiteEmulator, client: RecordingClient
) -> None:
    with pytest.raises(ValueError, match="externalId"):
        NetSuiteCalendar(client).upsert("mailbot-a", {**event_body("A"), "externalId": "b"})
    assert emulator.request_log() == []


def test_calendar_patch_replaces_the_attendees(
    emulator: NetSuiteEmulator, client: RecordingClient
) -> None:
    calendar = NetSuiteCalendar(client)
    internal_id = calendar.upsert("mailbot-cal-2", event_body("Review", "201", "202"))
    assert calendar.patch("mailbot-cal-2", {"title": "Moved"}) == internal_id
    assert attendee_ids(client, internal_id) == ["201", "202"]  # no attendee: left as is
    ref = calendar.patch("mailbot-cal-2", {"attendee": {"items": [{"attendee": {"id": "203"}}]}})
    assert ref == internal_id
    assert attendee_ids(client, internal_id) == ["203"]
    [stored] = emulator.records("calendarEvent")
    assert stored["title"] == "Moved"
    patches = [e.path for e in emulator.request_log() if e.method == "PATCH"]
    assert patches == [
        "/services/rest/record/v1/calendarEvent/eid:mailbot-cal-2",
        "/services/rest/record/v1/calendarEvent/eid:mailbot-cal-2?replace=attendee",
    ]
    with pytest.raises(RejectedError, match="NONEXISTENT_ID"):
        calendar.patch("mailbot-missing", {"title": "Nobody"})

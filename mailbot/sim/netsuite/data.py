"""The seed data file: credentials, OAuth 2.0 clients and CRM records.

The format is described in docs/netsuite-emulator.md.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, TypeGuard

from mailbot.sim.netsuite.schema import (
    CALENDAR_EVENT_FIELDS,
    CUSTOM_FIELD_TYPES,
    RECURRENCE_FIELDS,
    Field,
    custom_field,
)

CREDENTIAL_KEYS = ("account", "consumer_key", "consumer_secret", "token_id", "token_secret")
STAGES = ("CUSTOMER", "LEAD", "PROSPECT")
OPPORTUNITY_STATUSES = ("A", "B", "C", "D")
ACCOUNT_ID = re.compile(r"^[A-Za-z0-9]+(_[A-Za-z0-9]+)?$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
CUSTOM_EVENT_FIELD_ID = re.compile(r"^custevent[a-z0-9_]+$")
DEFAULT_CUSTOMER_STATUSES: tuple[dict[str, Any], ...] = (
    {"id": 6, "name": "LEAD-Unqualified", "stage": "LEAD"},
    {"id": 7, "name": "LEAD-Qualified", "stage": "LEAD"},
    {"id": 8, "name": "PROSPECT-In Discussion", "stage": "PROSPECT"},
    {"id": 9, "name": "PROSPECT-Identified Decision Makers", "stage": "PROSPECT"},
    {"id": 10, "name": "PROSPECT-Proposal", "stage": "PROSPECT"},
    {"id": 11, "name": "PROSPECT-In Negotiation", "stage": "PROSPECT"},
    {"id": 13, "name": "CUSTOMER-Closed Won", "stage": "CUSTOMER"},
    {"id": 15, "name": "CUSTOMER-Renewal", "stage": "CUSTOMER"},
)
DEFAULT_STATUS_BY_STAGE = {"LEAD": 6, "PROSPECT": 8, "CUSTOMER": 13}


class DataError(ValueError):
    """The data file cannot seed the emulator; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def load_data(path: str | None) -> dict[str, Any]:
    """A data file, read and checked; ``None`` gives the bundled demo data."""
    if path is None:
        text = resources.files("mailbot.sim").joinpath("demo_data.json").read_text("utf-8")
        source = "demo_data.json"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise DataError(path, [f"cannot read: {error}"]) from error
        source = path
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(source, [f"not valid JSON: {error}"]) from error
    check_data(data, source)
    return dict(data)


def demo_oauth2_private_key() -> bytes:
    """The publicly known private key whose certificate the demo data registers (PS256)."""
    return resources.files("mailbot.sim").joinpath("demo_oauth2_key.pem").read_bytes()


def check_data(data: Any, source: str = "data") -> None:
    """Raises ``DataError`` naming every problem of a data object."""
    if not isinstance(data, dict):
        raise DataError(source, ["the top level must be a JSON object"])
    problems = _credential_problems(data.get("credentials"))
    problems += _oauth2_problems(data.get("oauth2"))
    problems += _record_problems(data)
    problems += _setting_problems(data)
    problems += _custom_field_problems(data.get("custom_fields", []))
    if problems:
        raise DataError(source, problems)


def oauth2_clients(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``oauth2`` entry as a list (one object or a list of them)."""
    entry = data.get("oauth2")
    if entry is None:
        return []
    return list(entry) if isinstance(entry, list) else [entry]


def customer_statuses(data: dict[str, Any]) -> list[dict[str, Any]]:
    return list(data.get("customer_statuses") or DEFAULT_CUSTOMER_STATUSES)


def integration_user(data: dict[str, Any]) -> int | None:
    """The employee the access token belongs to: owner of the events it creates."""
    if data.get("integration_user") is not None:
        return int(data["integration_user"])
    employees = data.get("employees") or []
    return int(employees[0]["id"]) if employees else None


def custom_event_fields(data: dict[str, Any]) -> tuple[Field, ...]:
    """The account's custom calendarEvent fields (``custom_fields``), in the file's order."""
    return tuple(
        custom_field(
            entry["id"],
            entry.get("label") or entry["id"],
            entry.get("type", "string"),
            required=bool(entry.get("required", False)),
        )
        for entry in data.get("custom_fields", [])
    )


def _custom_field_problems(entries: Any) -> list[str]:
    if not isinstance(entries, list):
        return ["custom_fields: must be a list"]
    standard = {spec.name for spec in CALENDAR_EVENT_FIELDS + RECURRENCE_FIELDS}
    problems, seen = [], set()
    for index, entry in enumerate(entries):
        where = f"custom_fields[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: not an object")
            continue
        name = entry.get("id")
        if not isinstance(name, str) or not CUSTOM_EVENT_FIELD_ID.match(name):
            problems.append(f"{where}.id: a custom event field ID such as custevent_region")
        elif name in seen or name in standard:
            problems.append(f"{where}.id: {name} is already a field")
        seen.add(name)
        if not isinstance(entry.get("label", ""), str):
            problems.append(f"{where}.label: must be a string")
        if entry.get("type", "string") not in CUSTOM_FIELD_TYPES:
            problems.append(f"{where}.type: one of {', '.join(CUSTOM_FIELD_TYPES)}")
        if not isinstance(entry.get("required", False), bool):
            problems.append(f"{where}.required: true or false")
    return problems


def _setting_problems(data: dict[str, Any]) -> list[str]:
    problems = []
    if not isinstance(data.get("timezone", "UTC"), str):
        problems.append("timezone: must be an IANA zone name such as Europe/Berlin")
    user = data.get("integration_user")
    employee_ids = {
        int(record["id"])
        for _, record in _records(data, "employees", [])
        if _is_id(record.get("id"))
    }
    if user is not None and (not _is_id(user) or int(user) not in employee_ids):
        problems.append(f"integration_user: no employee with id {user!r}")
    return problems


def _credential_problems(credentials: Any) -> list[str]:
    if not isinstance(credentials, dict):
        return ["credentials: missing (an object with " + ", ".join(CREDENTIAL_KEYS) + ")"]
    problems = [
        f"credentials.{key}: missing or not a non-empty string"
        for key in CREDENTIAL_KEYS
        if not isinstance(credentials.get(key), str) or not credentials[key]
    ]
    account = credentials.get("account")
    if isinstance(account, str) and not ACCOUNT_ID.match(account):
        problems.append("credentials.account: not a NetSuite account ID such as 1234567_SB1")
    return problems


def _oauth2_problems(entry: Any) -> list[str]:
    if entry is None:
        return []
    clients = entry if isinstance(entry, list) else [entry]
    problems = []
    for index, client in enumerate(clients):
        where = f"oauth2[{index}]" if isinstance(entry, list) else "oauth2"
        if not isinstance(client, dict):
            problems.append(f"{where}: not an object")
            continue
        for key in ("client_id", "certificate_id"):
            if not isinstance(client.get(key), str) or not client[key]:
                problems.append(f"{where}.{key}: missing")
        if not any(isinstance(client.get(k), str) for k in ("certificate_pem", "public_key_pem")):
            problems.append(f"{where}: certificate_pem or public_key_pem is required")
    return problems


def _record_problems(data: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    entity_ids: set[int] = set()
    status_stages = {int(s["id"]): s["stage"] for s in customer_statuses(data)}
    for section in ("employees", "customers", "contacts"):
        for where, record in _records(data, section, problems):
            problems += _id_problems(where, record, entity_ids)
            if section == "customers":
                problems += _customer_problems(where, record, status_stages)
    customer_ids = {int(r["id"]) for _, r in _records(data, "customers", []) if _is_id(r.get("id"))}
    for where, record in _records(data, "contacts", []):
        company = record.get("company")
        if company is not None and (not _is_id(company) or int(company) not in customer_ids):
            problems.append(f"{where}.company: no customer with id {company!r}")
    transaction_ids: set[int] = set()
    for where, record in _records(data, "opportunities", problems):
        problems += _id_problems(where, record, transaction_ids)
        problems += _opportunity_problems(where, record, customer_ids)
    return problems


def _records(data: dict[str, Any], section: str, problems: list[str]) -> list[tuple[str, Any]]:
    records = data.get(section, [])
    if not isinstance(records, list):
        problems.append(f"{section}: must be a list")
        return []
    found = []
    for index, record in enumerate(records):
        if isinstance(record, dict):
            found.append((f"{section}[{index}]", record))
        else:
            problems.append(f"{section}[{index}]: not an object")
    return found


def _id_problems(where: str, record: dict[str, Any], seen: set[int]) -> list[str]:
    if not _is_id(record.get("id")):
        return [f"{where}.id: missing or not an integer"]
    record_id = int(record["id"])
    if record_id in seen:
        return [f"{where}.id: {record_id} is used twice (entity IDs are shared by all entities)"]
    seen.add(record_id)
    return []


def _customer_problems(where: str, record: dict[str, Any], stages: dict[int, str]) -> list[str]:
    stage = record.get("stage")
    if stage not in STAGES:
        return [f"{where}.stage: must be one of {', '.join(STAGES)}"]
    status = record.get("entitystatus")
    if status is not None and stages.get(int(status) if _is_id(status) else -1) != stage:
        return [f"{where}.entitystatus: {status!r} is not a {stage} status"]
    return []


def _opportunity_problems(where: str, record: dict[str, Any], customers: set[int]) -> list[str]:
    problems = []
    if record.get("status") not in OPPORTUNITY_STATUSES:
        problems.append(f"{where}.status: must be one of {', '.join(OPPORTUNITY_STATUSES)}")
    entity = record.get("entity")
    if not _is_id(entity) or int(entity) not in customers:
        problems.append(f"{where}.entity: no customer with id {entity!r}")
    for key in ("expectedclosedate", "trandate"):
        value = record.get(key)
        if value is not None and not (isinstance(value, str) and DATE.match(value)):
            problems.append(f"{where}.{key}: not a YYYY-MM-DD date")
    return problems


def _is_id(value: Any) -> TypeGuard[int | str]:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and re.fullmatch(r"-?\d+", value) is not None

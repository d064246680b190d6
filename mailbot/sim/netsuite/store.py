"""SQLite storage, with tables and columns named like NetSuite's SuiteQL tables.

One connection, guarded by a lock, serves every thread. SuiteQL runs on the same tables
under an authorizer that allows reading only.
"""

from __future__ import annotations

import copy
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from mailbot.sim.netsuite.data import DEFAULT_STATUS_BY_STAGE, customer_statuses

SCHEMA = """
CREATE TABLE employee (
    id INTEGER PRIMARY KEY, entityid TEXT, firstname TEXT, lastname TEXT, email TEXT,
    title TEXT, isinactive TEXT NOT NULL DEFAULT 'F');
CREATE TABLE customerstatus (id INTEGER PRIMARY KEY, name TEXT, stage TEXT);
CREATE TABLE customer (
    id INTEGER PRIMARY KEY, entityid TEXT, companyname TEXT, email TEXT, altemail TEXT,
    phone TEXT, entitystatus INTEGER, searchstage TEXT, isinactive TEXT NOT NULL DEFAULT 'F');
CREATE TABLE contact (
    id INTEGER PRIMARY KEY, entityid TEXT, firstname TEXT, lastname TEXT, email TEXT,
    altemail TEXT, title TEXT, company INTEGER, isinactive TEXT NOT NULL DEFAULT 'F');
CREATE TABLE "transaction" (
    id INTEGER PRIMARY KEY, tranid TEXT, title TEXT, type TEXT, entity INTEGER, status TEXT,
    expectedclosedate TEXT, trandate TEXT);
CREATE VIEW entity AS
    SELECT id, entityid, email, NULL AS altemail, isinactive, 'Employee' AS type FROM employee
    UNION ALL SELECT id, entityid, email, altemail, isinactive, 'CustJob' FROM customer
    UNION ALL SELECT id, entityid, email, altemail, isinactive, 'Contact' FROM contact;
CREATE TABLE calendarevent (
    id INTEGER PRIMARY KEY AUTOINCREMENT, externalid TEXT UNIQUE, title TEXT, startdate TEXT,
    starttime TEXT, endtime TEXT, status TEXT, accesslevel TEXT, organizer INTEGER,
    company INTEGER, contact INTEGER, "transaction" INTEGER, createddate TEXT,
    lastmodifieddate TEXT, body TEXT NOT NULL);
"""
COLUMNS = {
    "employee": ("id", "entityid", "firstname", "lastname", "email", "title", "isinactive"),
    "customer": (
        "id",
        "entityid",
        "companyname",
        "email",
        "altemail",
        "phone",
        "entitystatus",
        "searchstage",
        "isinactive",
    ),
    "contact": (
        "id",
        "entityid",
        "firstname",
        "lastname",
        "email",
        "altemail",
        "title",
        "company",
        "isinactive",
    ),
    "transaction": (
        "id",
        "tranid",
        "title",
        "type",
        "entity",
        "status",
        "expectedclosedate",
        "trandate",
    ),
}
SECTIONS = {
    "employees": "employee",
    "customers": "customer",
    "contacts": "contact",
    "opportunities": "transaction",
}
OPPORTUNITY_STATUS_NAMES = {
    "A": "Opportunity : In Progress",
    "B": "Opportunity : Issued Estimate",
    "C": "Opportunity : Closed - Won",
    "D": "Opportunity : Closed - Lost",
}
ENTITY_REFERENCE_COLUMNS = frozenset(
    {"entity", "company", "organizer", "contact", "owner", "attendee"}
)
EVENT_COLUMNS = (
    "externalid",
    "title",
    "startdate",
    "starttime",
    "endtime",
    "status",
    "accesslevel",
    "organizer",
    "company",
    "contact",
    "transaction",
    "createddate",
    "lastmodifieddate",
)
FIRST_EVENT_ID = 20001  # apart from the seeded entity and transaction IDs, for readable logs
ORACLE_DATE_PARTS = (("YYYY", "%Y"), ("MM", "%m"), ("DD", "%d"))
EVENT_UPSERT = (
    "INSERT OR REPLACE INTO calendarevent (id, "  # noqa: S608 (column names are constants)
    + ", ".join(f'"{column}"' for column in EVENT_COLUMNS)
    + ", body) VALUES ("
    + ", ".join("?" for _ in range(len(EVENT_COLUMNS) + 2))
    + ")"
)
EVENT_LOOKUPS = {
    "id": "SELECT body FROM calendarevent WHERE id = ?",
    "externalid": "SELECT body FROM calendarevent WHERE externalid = ?",
}
READ_ONLY_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION})


class Store:
    """The account's records; all methods are thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self._db.executescript(SCHEMA)
        self._entity_kinds: dict[int, str] = {}
        self._display_names: dict[str, dict[str, str]] = {"status": dict(OPPORTUNITY_STATUS_NAMES)}
        self._db.create_function("ns_df", 2, self.display_value, deterministic=True)
        self._db.create_function("nvl", 2, lambda a, b: b if a is None else a, deterministic=True)
        self._db.create_function("to_date", -1, _to_date, deterministic=True)

    def seed(self, data: dict[str, Any]) -> None:
        with self._lock, self._transaction():
            statuses = customer_statuses(data)
            self._db.executemany(
                "INSERT INTO customerstatus (id, name, stage) VALUES (?, ?, ?)",
                [(int(s["id"]), s["name"], s["stage"]) for s in statuses],
            )
            self._display_names["entitystatus"] = {str(s["id"]): s["name"] for s in statuses}
            for section, table in SECTIONS.items():
                rows = [_row(table, record) for record in data.get(section, [])]
                self._insert(table, rows)
            self._remember_entities()

    # Entities (read-only over REST)

    def entity_kind(self, entity_id: int) -> str | None:
        """ "employee", "customer" or "contact" (entity IDs are shared), or None."""
        return self._entity_kinds.get(entity_id)

    def exists(self, table: str, record_id: int) -> bool:
        if table in {"employee", "customer", "contact"}:
            return self._entity_kinds.get(record_id) == table
        return self.row(table, record_id) is not None

    def row(self, table: str, record_id: int) -> dict[str, Any] | None:
        quoted = _quoted(table)
        with self._lock:
            cursor = self._db.execute(f"SELECT * FROM {quoted} WHERE id = ?", (record_id,))  # noqa: S608
            found = cursor.fetchone()
            names = [d[0] for d in cursor.description]
        return dict(zip(names, found, strict=True)) if found else None

    def rows(self, table: str) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self._db.execute(f"SELECT * FROM {_quoted(table)} ORDER BY id")  # noqa: S608
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, found, strict=True)) for found in cursor.fetchall()]

    def display_name(self, table: str, record_id: int) -> str:
        """What NetSuite shows as ``refName`` for a referenced record."""
        found = self.row(table, record_id)
        if found is None:
            return str(record_id)
        if table == "transaction":
            return f"Opportunity #{found['tranid']}"
        return str(found.get("entityid") or record_id)

    # Calendar events

    def event(self, event_id: int) -> dict[str, Any] | None:
        return self._event_where("id", event_id)

    def event_by_external_id(self, external_id: str) -> dict[str, Any] | None:
        return self._event_where("externalid", external_id)

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            found = self._db.execute("SELECT body FROM calendarevent ORDER BY id").fetchall()
        return [json.loads(body) for (body,) in found]

    def external_id_taken(self, external_id: str, other_than: int | None) -> bool:
        found = self.event_by_external_id(external_id)
        return found is not None and int(found["id"]) != other_than

    def save_event(self, event: dict[str, Any], builder: Callable[[int], dict[str, Any]]) -> int:
        """Inserts (no ``id``) or replaces an event; ``builder`` gets the ID and gives the body."""
        with self._lock, self._transaction():
            event_id = int(event["id"]) if "id" in event else self._next_event_id()
            body = builder(event_id)
            values = [_event_column(body, name) for name in EVENT_COLUMNS]
            self._db.execute(EVENT_UPSERT, (event_id, *values, json.dumps(body)))
        return event_id

    def delete_event(self, event_id: int) -> bool:
        with self._lock:
            cursor = self._db.execute("DELETE FROM calendarevent WHERE id = ?", (event_id,))
        return cursor.rowcount > 0

    # SuiteQL

    def query(self, sql: str, params: list[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Runs one SELECT with writes refused by the authorizer; column names lower-cased."""
        with self._lock:
            self._db.set_authorizer(_read_only)
            try:
                cursor = self._db.execute(sql, params)
                found = cursor.fetchall()
            finally:
                self._db.set_authorizer(None)
        names = [d[0].lower() for d in cursor.description or ()]
        return names, found

    # Internals

    def _event_where(self, column: str, value: Any) -> dict[str, Any] | None:
        with self._lock:
            found = self._db.execute(EVENT_LOOKUPS[column], (value,)).fetchone()
        return copy.deepcopy(json.loads(found[0])) if found else None

    def _next_event_id(self) -> int:
        found = self._db.execute("SELECT MAX(id) FROM calendarevent").fetchone()
        return max(int(found[0] or 0) + 1, FIRST_EVENT_ID)

    def _insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        columns = COLUMNS[table]
        marks = ", ".join("?" for _ in columns)
        self._db.executemany(
            f"INSERT INTO {_quoted(table)} ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608
            [tuple(row.get(column) for column in columns) for row in rows],
        )

    def _remember_entities(self) -> None:
        names: dict[str, str] = {}
        for table in ("employee", "customer", "contact"):
            for entity_id, entity_name in self._db.execute(
                f"SELECT id, entityid FROM {table}"  # noqa: S608
            ).fetchall():
                self._entity_kinds[int(entity_id)] = table
                names[str(entity_id)] = str(entity_name or entity_id)
        for column in ENTITY_REFERENCE_COLUMNS:
            self._display_names[column] = names

    def display_value(self, column: str, value: Any) -> Any:
        """``BUILTIN.DF``: the display text of a list or reference value."""
        if value is None:
            return None
        text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        return self._display_names.get(column.lower(), {}).get(text, text)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _to_date(text: Any, oracle_format: Any = "YYYY-MM-DD") -> str | None:
    """Oracle's TO_DATE for the common formats, as an ISO date SQLite can compare."""
    if text is None:
        return None
    pattern = str(oracle_format)
    for oracle, strptime in ORACLE_DATE_PARTS:
        pattern = pattern.replace(oracle, strptime)
    return datetime.strptime(str(text), pattern).date().isoformat()


def _read_only(action: int, table: str | None, column: str | None, *_: Any) -> int:
    """The SuiteQL authorizer: reading and functions only; SQLite's own tables stay hidden."""
    if action not in READ_ONLY_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_READ and (table or "").lower().startswith("sqlite_"):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_READ and (table, column) == ("calendarevent", "body"):
        return sqlite3.SQLITE_IGNORE  # the stored JSON is no SuiteQL column: it reads as null
    return sqlite3.SQLITE_OK


def _quoted(table: str) -> str:
    if table not in (*COLUMNS, "customerstatus", "calendarevent"):
        raise ValueError(f"unknown table {table!r}")
    return f'"{table}"'


def _row(table: str, record: dict[str, Any]) -> dict[str, Any]:
    row = {key.lower(): value for key, value in record.items()}
    row["id"] = int(row["id"])
    if "isinactive" in COLUMNS[table]:
        row["isinactive"] = _flag(row.get("isinactive"))
    if table == "customer":
        row["searchstage"] = row.get("stage")
        row["entitystatus"] = int(row.get("entitystatus") or DEFAULT_STATUS_BY_STAGE[row["stage"]])
    if table == "contact" and row.get("company") is not None:
        row["company"] = int(row["company"])
    if table == "transaction":
        row["type"] = "Opprtnty"
        row["entity"] = int(row["entity"])
    return row


def _flag(value: Any) -> str:
    if isinstance(value, str):
        return "T" if value.upper() in {"T", "TRUE", "YES", "Y"} else "F"
    return "T" if value else "F"


def _event_column(body: dict[str, Any], column: str) -> Any:
    names = {
        "externalid": "externalId",
        "startdate": "startDate",
        "starttime": "startTime",
        "endtime": "endTime",
        "accesslevel": "accessLevel",
        "createddate": "createdDate",
        "lastmodifieddate": "lastModifiedDate",
    }
    value = body.get(names.get(column, column))
    if isinstance(value, dict):
        return value.get("id")
    return value

"""CRM look-ups by e-mail address over SuiteQL: batched per record type, cached with a TTL.

``NetSuiteDirectory.lookup`` answers for all the addresses of a batch of messages at once.
Addresses it has not seen (or whose answer has expired) are asked for together: one SuiteQL
statement per record type, whatever their number (``IN`` lists hold at most 1000 values in
SuiteQL, netsuite-rest.md section 5, so every 1000 addresses add one statement):

* employees, on ``email`` (the SuiteQL employee table has no ``altemail``);
* contacts, on ``email`` and ``altemail``;
* customers, leads and prospects (one ``customer`` table, told apart by ``searchstage``), on
  ``email`` and ``altemail``;
* the open opportunities (status ``A`` in progress, ``B`` issued estimate) of every company
  found, directly or as a contact's company: one statement for all those company ids.

Strings compare case-sensitively in SuiteQL (Oracle), so the columns go through ``LOWER`` and
the addresses are lower-cased here. Every answer is cached for ``ttl_seconds``, the negative
ones too: an address without a record of some kind is remembered as such, and a company
without open opportunities as well. Inactive employees are returned (``Employee.active``,
the matching policy decides); inactive contacts and companies are not returned at all, since
``Contact`` and ``Company`` carry no such flag and an event should not be linked to them.

The cache is shared by the threads that share the directory. Two threads that miss the same
address at the same moment may both ask for it; the answers are the same.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from mailbot.adapters.netsuite.client import NetSuiteClient
from mailbot.adapters.netsuite.translation import translated_errors
from mailbot.core.crm import Company, Contact, DirectoryAnswer, Employee, Opportunity, Stage

LOG = logging.getLogger("mailbot.netsuite.directory")

IN_LIST_MAX = 1000  # SuiteQL: at most 1000 values in one IN list

EMPLOYEE_QUERY = (
    "SELECT id, entityid, firstname, lastname, email, isinactive FROM employee "
    "WHERE LOWER(email) IN ({marks}) ORDER BY id"
)
CONTACT_QUERY = (
    "SELECT id, entityid, firstname, lastname, email, altemail, company FROM contact "
    "WHERE isinactive = 'F' AND (LOWER(email) IN ({marks}) OR LOWER(altemail) IN ({marks})) "
    "ORDER BY id"
)
COMPANY_QUERY = (
    "SELECT id, entityid, companyname, email, altemail, searchstage FROM customer "
    "WHERE isinactive = 'F' AND (LOWER(email) IN ({marks}) OR LOWER(altemail) IN ({marks})) "
    "ORDER BY id"
)
OPPORTUNITY_QUERY = (
    "SELECT id, tranid, title, entity, status, expectedclosedate FROM transaction "
    "WHERE type = 'Opprtnty' AND status IN ('A', 'B') AND entity IN ({marks}) "
    "ORDER BY entity, id"
)

Record = TypeVar("Record", Employee, Contact, Company)


@dataclass(frozen=True, slots=True)
class _Kind:
    """One record type looked up by address: its statement and the columns holding addresses."""

    table: str
    query: str
    address_columns: tuple[str, ...]


EMPLOYEES = _Kind("employee", EMPLOYEE_QUERY, ("email",))
CONTACTS = _Kind("contact", CONTACT_QUERY, ("email", "altemail"))
COMPANIES = _Kind("customer", COMPANY_QUERY, ("email", "altemail"))
OPPORTUNITIES = "transaction"
TABLES = (EMPLOYEES.table, CONTACTS.table, COMPANIES.table, OPPORTUNITIES)


@dataclass(frozen=True, slots=True)
class _Found:
    """Everything known about one address, until ``expires`` (on the directory's clock)."""

    employees: tuple[Employee, ...]
    contacts: tuple[Contact, ...]
    companies: tuple[Company, ...]
    expires: float


@dataclass(frozen=True, slots=True)
class _Open:
    """The open opportunities of one company, until ``expires``."""

    opportunities: tuple[Opportunity, ...]
    expires: float


Entry = TypeVar("Entry", _Found, _Open)


class NetSuiteDirectory:
    """The ``Directory`` port over NetSuite SuiteQL (see the module docstring).

    ``clock`` measures the TTL (seconds, monotonic); tests pass their own.
    """

    def __init__(
        self,
        client: NetSuiteClient,
        *,
        ttl_seconds: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds < 0:
            raise ValueError("ttl_seconds must not be negative")
        self._client = client
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._addresses: dict[str, _Found] = {}
        self._companies: dict[str, _Open] = {}
        self._next_sweep = clock() + ttl_seconds
        self._counts: dict[str, int] = dict.fromkeys(
            (
                "hits",
                "misses",
                "opportunity_hits",
                "opportunity_misses",
                "queries",
                *(f"queries.{table}" for table in TABLES),
            ),
            0,
        )

    # ------------------------------------------------------------------ the port

    def lookup(self, addresses: Collection[str]) -> DirectoryAnswer:
        """Employees, contacts and companies of these addresses, and the open opportunities
        of the companies found. Keys are the addresses lower-cased; opportunities are keyed
        by company id, and only companies with at least one open opportunity appear.

        NetSuite's errors leave as the port's (``translated_errors``): a 403 is fatal (the
        role may not read a record type), another refusal ``RejectedError``.
        """
        with translated_errors("the CRM look-up", forbidden_is_fatal=True):
            return self._lookup(addresses)

    def _lookup(self, addresses: Collection[str]) -> DirectoryAnswer:
        wanted = normalised(addresses)
        now = self._clock()
        with self._lock:
            self._sweep(now)
            found = _fresh(self._addresses, wanted, now)
            missing = [address for address in wanted if address not in found]
            self._counts["hits"] += len(found)
            self._counts["misses"] += len(missing)
        if missing:
            fetched = self._fetch_addresses(missing, expires=now + self._ttl)
            if self._ttl > 0:
                with self._lock:
                    self._addresses.update(fetched)
            found.update(fetched)
        company_ids = sorted(
            {company.id for entry in found.values() for company in entry.companies}
            | {
                contact.company_id
                for entry in found.values()
                for contact in entry.contacts
                if contact.company_id
            }
        )
        opportunities = self._open_opportunities(company_ids, now)
        LOG.debug(
            "%d addresses: %d cached, %d asked for; %d companies",
            len(wanted),
            len(wanted) - len(missing),
            len(missing),
            len(company_ids),
        )
        return DirectoryAnswer(
            employees={a: e.employees for a, e in found.items() if e.employees},
            contacts={a: e.contacts for a, e in found.items() if e.contacts},
            companies={a: e.companies for a, e in found.items() if e.companies},
            opportunities=opportunities,
        )

    # ------------------------------------------------------------------ housekeeping

    def invalidate(self) -> None:
        """Forget every cached answer (the counters stay)."""
        with self._lock:
            self._addresses.clear()
            self._companies.clear()

    def stats(self) -> dict[str, int]:
        """``hits`` and ``misses`` count addresses (a hit needs no query), ``opportunity_hits``
        and ``opportunity_misses`` count company ids, ``queries`` the SuiteQL statements sent
        (also by table: ``queries.employee`` ...; the client's counters count the HTTP
        requests, one per page of 1000 rows); ``cached_addresses`` and ``cached_companies``
        the entries held now."""
        with self._lock:
            return {
                **self._counts,
                "cached_addresses": len(self._addresses),
                "cached_companies": len(self._companies),
            }

    # ------------------------------------------------------------------ queries

    def _fetch_addresses(self, missing: Sequence[str], *, expires: float) -> dict[str, _Found]:
        employees = self._by_address(EMPLOYEES, missing, _employee)
        contacts = self._by_address(CONTACTS, missing, _contact)
        companies = self._by_address(COMPANIES, missing, _company)
        return {
            address: _Found(
                employees.get(address, ()),
                contacts.get(address, ()),
                companies.get(address, ()),
                expires,
            )
            for address in missing
        }

    def _by_address(
        self,
        kind: _Kind,
        addresses: Sequence[str],
        build: Callable[[Mapping[str, Any]], Record],
    ) -> dict[str, tuple[Record, ...]]:
        """The records of one kind for these addresses: one statement per 1000 addresses."""
        matched: dict[str, dict[str, Record]] = {}
        for chunk in chunks(addresses, IN_LIST_MAX):
            asked = set(chunk)
            statement = kind.query.format(marks=placeholders(len(chunk)))
            params = list(chunk) * len(kind.address_columns)
            for row in self._query(kind.table, statement, params):
                record = build(row)
                for column in kind.address_columns:
                    address = _text(row.get(column)).strip().lower()
                    if address in asked:
                        matched.setdefault(address, {})[record.id] = record
        return {address: tuple(records.values()) for address, records in matched.items()}

    def _open_opportunities(
        self, company_ids: Sequence[str], now: float
    ) -> dict[str, tuple[Opportunity, ...]]:
        with self._lock:
            known = {
                cid: entry.opportunities
                for cid, entry in _fresh(self._companies, company_ids, now).items()
            }
            missing = [cid for cid in company_ids if cid not in known]
            self._counts["opportunity_hits"] += len(known)
            self._counts["opportunity_misses"] += len(missing)
        if missing:
            fetched: dict[str, list[Opportunity]] = {cid: [] for cid in missing}
            for chunk in chunks(missing, IN_LIST_MAX):
                statement = OPPORTUNITY_QUERY.format(marks=placeholders(len(chunk)))
                for row in self._query(OPPORTUNITIES, statement, chunk):
                    opportunity = _opportunity(row)
                    fetched.setdefault(opportunity.company_id, []).append(opportunity)
            fresh = {cid: tuple(found) for cid, found in fetched.items()}
            if self._ttl > 0:
                expires = now + self._ttl
                with self._lock:
                    self._companies.update(
                        (cid, _Open(found, expires)) for cid, found in fresh.items()
                    )
            known.update(fresh)
        return {cid: known[cid] for cid in company_ids if known.get(cid)}

    def _query(self, table: str, statement: str, params: Sequence[str]) -> Iterator[dict[str, Any]]:
        with self._lock:
            self._counts["queries"] += 1
            self._counts[f"queries.{table}"] += 1
        return self._client.suiteql(statement, params)

    def _sweep(self, now: float) -> None:
        """Drop expired entries, at most once per TTL (the caller holds the lock)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._ttl
        for address in [a for a, entry in self._addresses.items() if entry.expires <= now]:
            del self._addresses[address]
        for cid in [c for c, entry in self._companies.items() if entry.expires <= now]:
            del self._companies[cid]


# ---------------------------------------------------------------------- helpers


def normalised(addresses: Iterable[str]) -> list[str]:
    """The distinct addresses, trimmed and lower-cased, in order; empty ones dropped."""
    return sorted({address.strip().lower() for address in addresses} - {""})


def chunks(values: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def placeholders(count: int) -> str:
    return ", ".join("?" * count)


def _fresh(cache: Mapping[str, Entry], keys: Iterable[str], now: float) -> dict[str, Entry]:
    """The cached entries of these keys that have not expired."""
    found = {key: cache.get(key) for key in keys}
    return {key: entry for key, entry in found.items() if entry and entry.expires > now}


def _employee(row: Mapping[str, Any]) -> Employee:
    return Employee(
        id=_text(row.get("id")),
        email=_text(row.get("email")),
        name=_person_name(row),
        active=_text(row.get("isinactive")).upper() != "T",
    )


def _contact(row: Mapping[str, Any]) -> Contact:
    return Contact(
        id=_text(row.get("id")),
        email=_text(row.get("email") or row.get("altemail")),
        name=_person_name(row),
        company_id=_text(row.get("company")) or None,
    )


def _company(row: Mapping[str, Any]) -> Company:
    return Company(
        id=_text(row.get("id")),
        email=_text(row.get("email") or row.get("altemail")),
        name=_text(row.get("companyname") or row.get("entityid")),
        stage=_stage(row.get("searchstage")),
    )


def _opportunity(row: Mapping[str, Any]) -> Opportunity:
    # A status may come as "Opprtnty:A" (saved-search style) or as the bare letter.
    status = _text(row.get("status")).rpartition(":")[2].strip().upper()
    return Opportunity(
        id=_text(row.get("id")),
        company_id=_text(row.get("entity")),
        title=_text(row.get("title") or row.get("tranid")),
        status=status or "A",
        expected_close=_iso_date(row.get("expectedclosedate")),
    )


def _person_name(row: Mapping[str, Any]) -> str:
    parts = (_text(row.get("firstname")).strip(), _text(row.get("lastname")).strip())
    return " ".join(part for part in parts if part) or _text(row.get("entityid"))


def _stage(value: Any) -> Stage:
    """``searchstage`` as a ``Stage``; empty or unknown values count as CUSTOMER."""
    text = _text(value).strip().lstrip("_").upper()
    try:
        return Stage(text)
    except ValueError:
        if text:
            LOG.debug("unknown customer stage %r taken as CUSTOMER", text)
        return Stage.CUSTOMER


def _iso_date(value: Any) -> date | None:
    """A ``YYYY-MM-DD`` date; anything else (a user-formatted date) is left unknown."""
    text = _text(value).strip()
    try:
        return date.fromisoformat(text[:10]) if text else None
    except ValueError:
        LOG.debug("expected close date %r is not YYYY-MM-DD; left unknown", text)
        return None


def _text(value: Any) -> str:
    return "" if value is None else str(value)

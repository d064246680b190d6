"""CRM records as the matching policy sees them: plain values, whatever system they came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum


class Stage(StrEnum):
    """NetSuite keeps customers, prospects and leads in one record type, told apart by stage."""

    CUSTOMER = "CUSTOMER"
    PROSPECT = "PROSPECT"
    LEAD = "LEAD"


@dataclass(frozen=True, slots=True)
class Employee:
    id: str
    email: str
    name: str = ""
    active: bool = True


@dataclass(frozen=True, slots=True)
class Contact:
    id: str
    email: str
    name: str = ""
    company_id: str | None = None


@dataclass(frozen=True, slots=True)
class Company:
    """A customer, prospect or lead."""

    id: str
    email: str
    name: str = ""
    stage: Stage = Stage.CUSTOMER


@dataclass(frozen=True, slots=True)
class Opportunity:
    id: str
    company_id: str
    title: str = ""
    status: str = "A"  # A In Progress, B Issued Estimate (open); C Closed Won, D Closed Lost
    expected_close: date | None = None


@dataclass(frozen=True, slots=True)
class DirectoryAnswer:
    """Every record found for a set of addresses (lower case), by address.

    An address absent from a mapping has no record of that kind. ``opportunities`` holds
    the open opportunities of every company found (directly or through a contact).
    """

    employees: dict[str, tuple[Employee, ...]] = field(default_factory=dict)
    contacts: dict[str, tuple[Contact, ...]] = field(default_factory=dict)
    companies: dict[str, tuple[Company, ...]] = field(default_factory=dict)
    opportunities: dict[str, tuple[Opportunity, ...]] = field(default_factory=dict)

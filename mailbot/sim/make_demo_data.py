"""Writes ``demo_data.json``: an invented CRM that seeds the NetSuite emulator for demos.

    python -m mailbot.sim.make_demo_data [--output PATH]

The output depends only on the seed below and on ``demo_oauth2_key.pem`` (created on the first
run). Every name, company and address is invented; the domains are subdomains of example.com,
example.org and example.net, which are reserved for documentation (RFC 2606). The credentials
and the OAuth 2.0 key are publicly known demo values for the emulator only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

SEED = 20260101
HERE = Path(__file__).parent
OUTPUT = HERE / "demo_data.json"
KEY_FILE = HERE / "demo_oauth2_key.pem"
KEY_WARNING = (
    "# PUBLICLY KNOWN DEMO KEY for the mailbot NetSuite emulator only (mailbot/sim).\n"
    "# It is published with the source code: never map its certificate in a real NetSuite\n"
    "# account.\n"
)
ACCOUNT = "1234567_SB1"
HOME_DOMAIN = "lakeside-instruments.example.com"
TLDS = ("example.com", "example.org", "example.net")

FIRST_NAMES = (
    "Ada",
    "Bruno",
    "Carla",
    "Dmitri",
    "Elena",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemal",
    "Lena",
    "Mateo",
    "Nadia",
    "Oskar",
    "Priya",
    "Quentin",
    "Rosa",
    "Stefan",
    "Tara",
    "Ugo",
    "Vera",
    "Wim",
    "Xenia",
    "Yusuf",
    "Zoe",
    "Amara",
    "Bjorn",
    "Chloe",
    "Dario",
    "Emil",
    "Freya",
    "Gustav",
    "Hana",
    "Ivan",
    "Jana",
    "Karim",
    "Lucia",
    "Milan",
    "Nora",
    "Olaf",
    "Paula",
    "Rafael",
    "Sofia",
    "Tomas",
    "Ulla",
    "Viktor",
    "Wanda",
    "Yara",
    "Zeno",
)
LAST_NAMES = (
    "Albrecht",
    "Barros",
    "Castell",
    "Dufour",
    "Eklund",
    "Ferreira",
    "Gruber",
    "Halvorsen",
    "Ibarra",
    "Janssen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Novak",
    "Okafor",
    "Petrov",
    "Quist",
    "Rinaldi",
    "Sauer",
    "Takahashi",
    "Ulrich",
    "Varga",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zeller",
    "Brandt",
    "Costa",
    "Dahl",
    "Engel",
    "Fischer",
    "Hoffmann",
    "Keller",
    "Lang",
    "Maier",
    "Nielsen",
    "Ortega",
    "Pohl",
    "Richter",
    "Schmitt",
)
COMPANY_FIRST = (
    "Alder",
    "Basalt",
    "Cedar",
    "Delta",
    "Ember",
    "Fjord",
    "Granite",
    "Harbor",
    "Iris",
    "Juniper",
    "Kestrel",
    "Lumen",
    "Meadow",
    "Nordic",
    "Orchard",
    "Pioneer",
    "Quarry",
    "Riverside",
    "Saffron",
    "Tidewater",
    "Upland",
    "Vantage",
    "Willow",
    "Zephyr",
    "Blue Heron",
    "Copper Hill",
    "Red Maple",
    "Silver Birch",
    "Stone Bridge",
    "Westwind",
)
COMPANY_SECOND = (
    "Analytics",
    "Architects",
    "Biotech",
    "Consulting",
    "Dental",
    "Engineering",
    "Foods",
    "Freight",
    "Health",
    "Labs",
    "Logistics",
    "Media",
    "Optics",
    "Robotics",
    "Software",
    "Systems",
    "Textiles",
    "Ventures",
)
COMPANY_SUFFIXES = ("GmbH", "Ltd", "Inc.", "S.A.", "BV", "AB", "LLC", "Oy", "AG", "SAS")
PRODUCTS = (
    "Sensor retrofit",
    "Calibration contract",
    "Lab automation pilot",
    "Spectrometer upgrade",
    "Service renewal",
    "Training package",
    "Data logger fleet",
    "Cleanroom monitoring",
)
CUSTOMER_STATUSES = (
    {"id": 6, "name": "LEAD-Unqualified", "stage": "LEAD"},
    {"id": 7, "name": "LEAD-Qualified", "stage": "LEAD"},
    {"id": 8, "name": "PROSPECT-In Discussion", "stage": "PROSPECT"},
    {"id": 10, "name": "PROSPECT-Proposal", "stage": "PROSPECT"},
    {"id": 11, "name": "PROSPECT-In Negotiation", "stage": "PROSPECT"},
    {"id": 13, "name": "CUSTOMER-Closed Won", "stage": "CUSTOMER"},
    {"id": 15, "name": "CUSTOMER-Renewal", "stage": "CUSTOMER"},
)
STAGE_COUNTS = (("CUSTOMER", 80), ("PROSPECT", 40), ("LEAD", 30))
OPPORTUNITY_STATUS_COUNTS = (("A", 25), ("B", 15), ("C", 12), ("D", 8))


def build(rng: random.Random, certificate_pem: str) -> dict[str, Any]:
    employees = make_employees(rng)
    customers = make_customers(rng)
    return {
        "description": "Invented demo CRM for the mailbot NetSuite emulator (deterministic).",
        "credentials": demo_credentials(),
        "oauth2": {
            "client_id": _demo_secret("oauth2-client-id"),
            "certificate_id": _demo_secret("oauth2-certificate-id")[:43],
            "certificate_pem": certificate_pem,
        },
        "timezone": "Europe/Berlin",
        "integration_user": employees[0]["id"],
        "customer_statuses": list(CUSTOMER_STATUSES),
        "employees": employees,
        "customers": customers,
        "contacts": make_contacts(rng, customers),
        "opportunities": make_opportunities(rng, customers),
    }


def demo_credentials() -> dict[str, str]:
    """Token-based authentication values, publicly known: derived from fixed labels."""
    return {
        "account": ACCOUNT,
        "consumer_key": _demo_secret("consumer-key"),
        "consumer_secret": _demo_secret("consumer-secret"),
        "token_id": _demo_secret("token-id"),
        "token_secret": _demo_secret("token-secret"),
    }


def make_employees(rng: random.Random) -> list[dict[str, Any]]:
    people = _people(rng, 15)
    employees = []
    for index, (first, last) in enumerate(people):
        employees.append(
            {
                "id": index + 1,
                "entityid": f"{first} {last}",
                "firstname": first,
                "lastname": last,
                "email": f"{_slug(first)}.{_slug(last)}@{HOME_DOMAIN}",
                "title": rng.choice(("Account Executive", "Sales Engineer", "Service Manager")),
                "isinactive": index in {11, 13},
            }
        )
    employees[0]["entityid"] = employees[0]["title"] = "Integration User"
    employees[0]["email"] = f"netsuite-integration@{HOME_DOMAIN}"
    return employees


def make_customers(rng: random.Random) -> list[dict[str, Any]]:
    names = _company_names(rng, sum(count for _, count in STAGE_COUNTS))
    stages = [stage for stage, count in STAGE_COUNTS for _ in range(count)]
    rng.shuffle(stages)
    customers = []
    for index, (name, stage) in enumerate(zip(names, stages, strict=True)):
        domain = f"{_slug(name.rsplit(' ', 1)[0])}.{rng.choice(TLDS)}"
        customer: dict[str, Any] = {
            "id": 101 + index,
            "entityid": name,
            "companyname": name,
            "stage": stage,
            "entitystatus": rng.choice([s["id"] for s in CUSTOMER_STATUSES if s["stage"] == stage]),
            "isinactive": rng.random() < 0.04,
            "domain": domain,
        }
        if stage != "LEAD" or rng.random() < 0.6:
            customer["email"] = f"{rng.choice(('info', 'sales', 'office', 'hello'))}@{domain}"
        if rng.random() < 0.3:
            customer["altemail"] = f"{rng.choice(('accounts', 'purchasing', 'billing'))}@{domain}"
        customers.append(customer)
    return customers


def make_contacts(rng: random.Random, customers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    contacts: list[dict[str, Any]] = []
    people = _people(rng, 250)
    for index, (first, last) in enumerate(people):
        company = (
            customers[(index * 7 + rng.randrange(3)) % len(customers)] if index < 244 else None
        )
        domain = company["domain"] if company else rng.choice(TLDS)
        contact: dict[str, Any] = {
            "id": 1001 + index,
            "entityid": f"{first} {last}",
            "firstname": first,
            "lastname": last,
            "email": f"{_slug(first)}.{_slug(last)}@{domain}",
            "title": rng.choice(("CEO", "Head of Lab", "Buyer", "CFO", "Quality Manager", "CTO")),
            "company": company["id"] if company else None,
        }
        if index % 25 == 3:
            contact["email"] = f"{first}.{last}@{domain}"  # mixed case, as people type it
        if rng.random() < 0.15:
            contact["altemail"] = f"{_slug(first)}{rng.randrange(10, 99)}@mail.example.net"
        contacts.append(contact)
    contacts[-1]["email"] = contacts[-2]["email"]  # one address on two contacts: ambiguous
    for customer in customers:
        del customer["domain"]
    return [{k: v for k, v in c.items() if v is not None} for c in contacts]


def make_opportunities(rng: random.Random, customers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    buyers = [c for c in customers if c["stage"] in {"CUSTOMER", "PROSPECT"}]
    statuses = [status for status, count in OPPORTUNITY_STATUS_COUNTS for _ in range(count)]
    rng.shuffle(statuses)
    opportunities = []
    for index, status in enumerate(statuses):
        customer = rng.choice(buyers)
        opened = date(2025, 9, 1) + timedelta(days=rng.randrange(240))
        closes = opened + timedelta(days=rng.randrange(30, 180))
        opportunities.append(
            {
                "id": 5001 + index,
                "tranid": f"OPP{1001 + index}",
                "title": f"{rng.choice(PRODUCTS)} - {customer['companyname']}",
                "entity": customer["id"],
                "status": status,
                "trandate": opened.isoformat(),
                "expectedclosedate": closes.isoformat(),
            }
        )
    return opportunities


def demo_certificate(key_file: Path = KEY_FILE) -> str:
    """The self-signed certificate of the demo key (deterministic: PKCS#1 v1.5 signature)."""
    key = _demo_key(key_file)
    name = x509.Name(
        [
            x509.NameAttribute(
                NameOID.COMMON_NAME, "mailbot NetSuite emulator demo (publicly known)"
            ),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(20260101)
        .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2027, 12, 31, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _demo_key(key_file: Path) -> rsa.RSAPrivateKey:
    if not key_file.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        key_file.write_text(KEY_WARNING + pem.decode("ascii"), encoding="ascii")
    loaded = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise TypeError(f"{key_file} must hold an RSA key")
    return loaded


def _people(rng: random.Random, count: int) -> list[tuple[str, str]]:
    pairs = [(first, last) for first in FIRST_NAMES for last in LAST_NAMES]
    return rng.sample(pairs, count)


def _company_names(rng: random.Random, count: int) -> list[str]:
    names = [f"{a} {b}" for a in COMPANY_FIRST for b in COMPANY_SECOND]
    return [f"{name} {rng.choice(COMPANY_SUFFIXES)}" for name in rng.sample(names, count)]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _demo_secret(label: str) -> str:
    return hashlib.sha256(f"mailbot-netsuite-emulator-demo:{label}".encode()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the NetSuite emulator's demo data.")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    data = build(random.Random(SEED), demo_certificate())  # noqa: S311 (invented data)
    args.output.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", "utf-8")


if __name__ == "__main__":
    main()

"""NetSuite emulator fixtures: a small account for each test, the demo account per session.

Registered in tests/conftest.py with ``pytest_plugins``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailbot.sim.netsuite import NetSuiteEmulator

TEST_ACCOUNT = "1234567_SB1"
TEST_CLIENT_ID = "test-client-0123456789abcdef"
TEST_CERTIFICATE_ID = "test-certificate-id-0001"


def small_test_data() -> dict[str, Any]:
    """A few records of each kind; IDs are stable so tests can name them."""
    domain = "acme-instruments.example.com"
    return {
        "credentials": {
            "account": TEST_ACCOUNT,
            "consumer_key": "test-consumer-key-" + "c" * 46,
            "consumer_secret": "test-consumer-secret-" + "s" * 43,
            "token_id": "test-token-id-" + "t" * 50,
            "token_secret": "test-token-secret-" + "x" * 46,
        },
        "timezone": "Europe/Berlin",
        "integration_user": 1,
        "employees": [
            {
                "id": 1,
                "entityid": "Integration User",
                "firstname": "Integration",
                "lastname": "User",
                "email": "integration@ourco.example.org",
            },
            {
                "id": 2,
                "entityid": "Olivia Organizer",
                "firstname": "Olivia",
                "lastname": "Organizer",
                "email": "olivia.organizer@ourco.example.org",
            },
            {
                "id": 3,
                "entityid": "Ivan Inactive",
                "firstname": "Ivan",
                "lastname": "Inactive",
                "email": "ivan.inactive@ourco.example.org",
                "isinactive": True,
            },
        ],
        "customers": [
            {
                "id": 101,
                "entityid": "Acme Instruments",
                "companyname": "Acme Instruments",
                "stage": "CUSTOMER",
                "email": f"info@{domain}",
                "altemail": f"billing@{domain}",
            },
            {
                "id": 102,
                "entityid": "Lead Labs",
                "companyname": "Lead Labs",
                "stage": "LEAD",
                "email": "hello@lead-labs.example.net",
            },
            {
                "id": 103,
                "entityid": "Prospect Partners",
                "companyname": "Prospect Partners",
                "stage": "PROSPECT",
                "email": "office@prospect.example.org",
            },
        ],
        "contacts": [
            {
                "id": 201,
                "entityid": "Carla Contact",
                "firstname": "Carla",
                "lastname": "Contact",
                "email": f"Carla.Contact@{domain}",
                "company": 101,
            },
            {
                "id": 202,
                "entityid": "Dan Doe",
                "firstname": "Dan",
                "lastname": "Doe",
                "email": f"dan.doe@{domain}",
                "altemail": "dan.private@mail.example.net",
                "company": 101,
            },
            {
                "id": 203,
                "entityid": "Pia Prospect",
                "firstname": "Pia",
                "lastname": "Prospect",
                "email": "pia@prospect.example.org",
                "company": 103,
            },
            {
                "id": 204,
                "entityid": "Frida Freelance",
                "firstname": "Frida",
                "lastname": "Freelance",
                "email": "frida@freelance.example.net",
            },
        ],
        "opportunities": [
            {
                "id": 301,
                "tranid": "OPP301",
                "title": "Sensor retrofit",
                "entity": 101,
                "status": "A",
                "expectedclosedate": "2026-06-30",
            },
            {
                "id": 302,
                "tranid": "OPP302",
                "title": "Service renewal",
                "entity": 101,
                "status": "B",
                "expectedclosedate": "2026-09-30",
            },
            {"id": 303, "tranid": "OPP303", "title": "Old deal", "entity": 101, "status": "C"},
            {"id": 304, "tranid": "OPP304", "title": "Pilot", "entity": 103, "status": "A"},
        ],
    }


@dataclass(frozen=True, slots=True)
class OAuth2TestClient:
    """An integration with an EC P-256 key whose certificate the test account knows."""

    client_id: str
    certificate_id: str
    private_key_pem: bytes
    certificate_pem: bytes
    algorithm: str = "ES256"

    def assertion(self, token_url: str, *, lifetime_s: int = 300, **claims: Any) -> str:
        """A client assertion JWT; ``claims`` override or add payload claims."""
        now = int(time.time())
        payload = {
            "iss": self.client_id,
            "scope": ["rest_webservices"],
            "aud": token_url,
            "iat": now,
            "exp": now + lifetime_s,
            **claims,
        }
        headers = {"typ": "JWT", "kid": self.certificate_id}
        return jwt.encode(payload, self.private_key_pem, algorithm=self.algorithm, headers=headers)


def make_oauth2_client(
    client_id: str = TEST_CLIENT_ID, certificate_id: str = TEST_CERTIFICATE_ID
) -> OAuth2TestClient:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailbot test integration")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return OAuth2TestClient(
        client_id, certificate_id, private_pem, certificate.public_bytes(serialization.Encoding.PEM)
    )


@pytest.fixture(scope="session")
def netsuite_oauth2_client() -> OAuth2TestClient:
    return make_oauth2_client()


@pytest.fixture
def netsuite_emulator(netsuite_oauth2_client: OAuth2TestClient) -> Iterator[NetSuiteEmulator]:
    """A fresh small account on a free port, with the test OAuth 2.0 client registered."""
    emulator = NetSuiteEmulator(small_test_data())
    emulator.register_oauth2_client(
        netsuite_oauth2_client.client_id,
        netsuite_oauth2_client.certificate_id,
        netsuite_oauth2_client.certificate_pem,
    )
    with emulator:
        yield emulator


@pytest.fixture(scope="session")
def netsuite_demo_emulator() -> Iterator[NetSuiteEmulator]:
    """The bundled demo account (a few hundred records), shared by the whole session."""
    with NetSuiteEmulator() as emulator:
        yield emulator

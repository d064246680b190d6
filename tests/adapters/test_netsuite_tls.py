"""TLS to NetSuite is verified by default: a server whose certificate chains to no trusted CA
(self-signed, or issued by a private CA) is refused, as a fault of the configuration (no
retry), unless its CA is configured (``REQUESTS_CA_BUNDLE``, read when the client starts).

The IMAP side has the same test: tests/adapters/test_imap_mailbox.py
(``test_a_certificate_no_configured_ca_vouches_for_is_refused``).
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailbot.adapters.netsuite import NetSuiteClient, NetSuiteConfig
from mailbot.adapters.netsuite.config import TokenAuthConfig
from mailbot.adapters.netsuite.errors import NetSuiteError
from mailbot.adapters.netsuite.translation import translated_errors
from mailbot.ports import FatalError
from tests.imap_fixtures import CertificateAuthority

AUTH = TokenAuthConfig("consumer", "consumer-secret", "token", "token-secret")


class _Answer(BaseHTTPRequestHandler):
    """Any GET: 200 with a Date header (all the client's clock check reads)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


class HttpsServer:
    """An HTTPS server on loopback with the given certificate and key (PEM files)."""

    def __init__(self, certificate: Path, key: Path) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
        self.http.socket = context.wrap_socket(self.http.socket, server_side=True)
        self.thread = threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.http.server_address[1]}"

    def __enter__(self) -> HttpsServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.thread.join(5)


def _self_signed() -> tuple[bytes, bytes]:
    """A certificate for 127.0.0.1 signed with its own key (as ``openssl req -x509`` makes)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def _write(directory: Path, name: str, pem: bytes) -> Path:
    path = directory / name
    path.write_bytes(pem)
    return path


@pytest.fixture(params=["self-signed", "private CA"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[HttpsServer, Path]]:
    """A server, and the PEM file that would make it trusted."""
    if request.param == "self-signed":
        certificate, key = _self_signed()
        trust = _write(tmp_path, "trust.pem", certificate)
    else:
        authority = CertificateAuthority.create()
        certificate, key = authority.issue_server_certificate()
        trust = _write(tmp_path, "trust.pem", authority.pem())
    cert_file, key_file = (
        _write(tmp_path, "cert.pem", certificate),
        _write(tmp_path, "key.pem", key),
    )
    with HttpsServer(cert_file, key_file) as started:
        yield started, trust


def _client(base_url: str) -> NetSuiteClient:
    config = NetSuiteConfig("1234567_SB1", auth=AUTH, base_url=base_url, max_attempts=3)
    return NetSuiteClient(config)


def test_an_untrusted_certificate_is_refused_at_once_and_fatally(
    server: tuple[HttpsServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    https, _ = server
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with _client(https.base_url) as client:
        with pytest.raises(NetSuiteError, match="certificate is not trusted"):
            client.record_schema("calendarEvent")
        assert client.counters().get("retries", 0) == 0  # no retry can mend it
        with pytest.raises(FatalError, match="certificate is not trusted"), translated_errors():
            client.record_schema("calendarEvent")


def test_a_certificate_of_another_ca_is_refused(
    server: tuple[HttpsServer, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    https, _ = server
    other = _write(tmp_path, "other.pem", CertificateAuthority.create().pem())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other))
    with _client(https.base_url) as client, pytest.raises(NetSuiteError, match="not trusted"):
        client.record_schema("calendarEvent")


def test_the_certificate_is_accepted_once_its_ca_is_configured(
    server: tuple[HttpsServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    https, trust = server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(trust))
    with _client(https.base_url) as client:
        assert client.record_schema("calendarEvent") == {}

"""A private Dovecot IMAP server for the tests, on loopback, started by the project's script.

Registered in tests/conftest.py with ``pytest_plugins``.

* ``imap_server`` (session): ``scripts/imap-test-server.sh run`` as a subprocess, on free
  ports, in a temp dir (tmpfs when there is one). Its TLS certificate is issued at session
  start by a test CA made here with ``cryptography``; ``imap_server.ca_file`` trusts it.
* ``imap_account`` (function): a user of its own for each test, so every test starts with
  an empty mailbox. The users are written to the server's passwd-file before it starts
  (Dovecot looks at that file at most once a second, too slow to add one per test).
* ``imap_self_signed_server`` (session, started on first use): a second instance with the
  self-signed certificate the script makes itself, to show that it is refused.
* ``dovecot_factory`` (function): servers of a test's own, e.g. to stop one mid-session.

Without Dovecot the fixtures fail (not skip): CI must install it (``make test`` does).
"""

from __future__ import annotations

import imaplib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from imapclient import IMAPClient

from mailbot.adapters.imap import ImapConfig

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "imap-test-server.sh"
DOVECOT = Path("/usr/sbin/dovecot")
DOVECOT_IMAP = Path("/usr/lib/dovecot/imap")
INSTALL_HINT = (
    "Dovecot is not installed: apt-get install -y dovecot-imapd "
    "(`make test` installs it; CI must too)"
)
HOST = "127.0.0.1"
DOMAIN = "example.test"
SESSION_USER = f"sync@{DOMAIN}"
# every user of the test server has it; distinctive, so that tests/secret_guard.py can
# tell it apart from the word "secret" in messages
PASSWORD = "imap-test-password-5b8e1d"  # noqa: S105
USER_POOL = 64  # users written before the server starts; more are added on the fly
START_TIMEOUT = 15.0


# --- certificates ------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateAuthority:
    """A certificate authority of the test session, and the server certificates it issues."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailbot test CA")])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue_server_certificate(self) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) for localhost and 127.0.0.1."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(IPv4Address(HOST))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return certificate.public_bytes(serialization.Encoding.PEM), key_pem


# --- the server --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _require_dovecot() -> None:
    if not (DOVECOT.exists() and DOVECOT_IMAP.exists()):
        pytest.fail(INSTALL_HINT, pytrace=False)


class DovecotServer:
    """One private Dovecot 2.3 instance (see scripts/imap-test-server.sh), run in the foreground.

    ``ca_file`` is the PEM file that makes its TLS certificate trusted: the test CA that
    issued it, or the certificate itself when the script made a self-signed one.
    """

    def __init__(
        self,
        directory: Path,
        *,
        certificate: tuple[bytes, bytes] | None = None,
        ca_pem: bytes | None = None,
    ) -> None:
        self.dir = directory
        self.host = HOST
        self.port = _free_port()
        self.tls_port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._next_user = 0
        self._users_written = USER_POOL
        ssl_dir = directory / "ssl"
        ssl_dir.mkdir(parents=True, exist_ok=True)
        if certificate is not None:
            (ssl_dir / "cert.pem").write_bytes(certificate[0])
            (ssl_dir / "key.pem").write_bytes(certificate[1])
        if ca_pem is not None:
            (directory / "test-ca.pem").write_bytes(ca_pem)
        self.ca_file = directory / ("test-ca.pem" if ca_pem is not None else "ssl/cert.pem")
        lines = [self._user_line(SESSION_USER)]
        lines += [self._user_line(self._pool_name(n)) for n in range(USER_POOL)]
        (directory / "users").write_text("".join(lines))
        self.account = ImapAccount(self, SESSION_USER)

    # the session user, for tests that need no mailbox of their own
    @property
    def username(self) -> str:
        return self.account.username

    @property
    def password(self) -> str:
        return self.account.password

    def append(self, folder: str, raw: bytes, flags: tuple[str, ...] = ()) -> int:
        return self.account.append(folder, raw, flags)

    def folder_uids(self, folder: str) -> list[int]:
        return self.account.folder_uids(folder)

    # --- life cycle

    def start(self) -> None:
        errors = self.dir / "server.err"  # the script's and Dovecot's start-up errors
        with errors.open("ab") as stderr:
            self.process = subprocess.Popen(
                [str(SCRIPT), "run", str(self.dir), str(self.port), str(self.tls_port)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # its own process group: see stop()
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = errors.read_text(errors="replace")
                raise RuntimeError(f"dovecot did not start: {text}\n{self.log()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM to the server's process group, as a service manager stops it.

        SIGTERM to the master alone leaves the imap process of every connected client
        serving it (reparented, until the client logs out) and takes about 1 s; sent to the
        group, every process ends at once (about 0.1 s) and clients get "BYE".
        """
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        path = self.dir / "log" / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else "(no log)"

    def _answers(self) -> bool:
        try:
            with imaplib.IMAP4(self.host, self.port, timeout=2) as probe:
                probe.login(SESSION_USER, PASSWORD)
                probe.logout()
        except (OSError, imaplib.IMAP4.error):
            return False
        return True

    # --- users

    def new_account(self) -> ImapAccount:
        """A user nobody has used yet: an empty mailbox."""
        if self._next_user < USER_POOL:
            name = self._pool_name(self._next_user)
            self._next_user += 1
            return ImapAccount(self, name)
        name = f"extra{self._users_written}@{DOMAIN}"
        self._users_written += 1
        with (self.dir / "users").open("a") as users:
            users.write(self._user_line(name))
        account = ImapAccount(self, name)
        account.wait_until_known()
        return account

    def _pool_name(self, number: int) -> str:
        return f"test{number:03d}@{DOMAIN}"

    def _user_line(self, name: str) -> str:
        local = name.split("@", 1)[0]
        return f"{name}:{{PLAIN}}{PASSWORD}::::{self.dir}/mail/{DOMAIN}/{local}\n"


@dataclass
class ImapAccount:
    """One user of a test server, with helpers that use a plain connection of their own."""

    server: DovecotServer
    username: str
    password: str = PASSWORD
    _helper: IMAPClient | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def tls_port(self) -> int:
        return self.server.tls_port

    @property
    def ca_file(self) -> Path:
        return self.server.ca_file

    def config(self, **overrides: Any) -> ImapConfig:
        """An ImapConfig for this user: STARTTLS verified with the test CA unless overridden."""
        values: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "tls": "starttls",
            "ca_file": self.ca_file,
            "connect_timeout": 5.0,
            "read_timeout": 10.0,
        }
        values.update(overrides)
        return ImapConfig(**values)

    def connect(self) -> IMAPClient:
        """A new logged-in plain connection (loopback)."""
        client = IMAPClient(self.host, self.port, ssl=False, timeout=10)
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.login(self.username, self.password)
        return client

    def helper(self) -> IMAPClient:
        if self._helper is None:
            self._helper = self.connect()
        return self._helper

    def append(self, folder: str, raw: bytes, flags: tuple[str, ...] = ()) -> int:
        """APPEND a message; returns its UID (from APPENDUID)."""
        answer = self.helper().append(folder, raw, flags=flags)
        text = answer.decode() if isinstance(answer, bytes) else str(answer)
        return int(text.split("APPENDUID", 1)[1].split()[1].rstrip("]"))

    def folder_uids(self, folder: str) -> list[int]:
        client = self.helper()
        client.select_folder(folder, readonly=True)
        return sorted(int(uid) for uid in client.search(["ALL"]))

    def folders(self) -> set[str]:
        return {str(name) for _, _, name in self.helper().list_folders()}

    def uidvalidity(self, folder: str) -> int:
        return int(self.helper().folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])

    def flags(self, folder: str) -> dict[int, frozenset[bytes]]:
        """Every message's flags (read with EXAMINE, which changes none of them)."""
        client = self.helper()
        client.select_folder(folder, readonly=True)
        uids = client.search(["ALL"])
        if not uids:
            return {}
        return {
            int(uid): frozenset(data[b"FLAGS"])
            for uid, data in client.fetch(uids, ["FLAGS"]).items()
        }

    def snapshot(self) -> dict[str, dict[int, frozenset[bytes]]]:
        """Every folder with its messages' UIDs and flags."""
        return {folder: self.flags(folder) for folder in sorted(self.folders())}

    def wait_until_known(self) -> None:
        deadline = time.monotonic() + 5
        while True:
            try:
                self.connect().logout()
            except (OSError, imaplib.IMAP4.error):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
            else:
                return

    def close(self) -> None:
        helper, self._helper = self._helper, None
        if helper is not None:
            try:
                helper.logout()
            except (OSError, imaplib.IMAP4.error):
                helper.shutdown()


# --- fixtures ----------------------------------------------------------------------------


def _temp_dir() -> Path:
    # Not pytest's tmp_path: /tmp/pytest-of-root is 0700, and the server runs as nobody when
    # started as root. tmpfs makes APPEND faster and steadier.
    shm = "/dev/shm"  # noqa: S108 - mkdtemp makes a private dir there
    base = shm if os.access(shm, os.W_OK) else tempfile.gettempdir()
    return Path(tempfile.mkdtemp(prefix="mailbot-imap-", dir=base))


@pytest.fixture(scope="session")
def imap_test_ca() -> CertificateAuthority:
    return CertificateAuthority.create()


class _Servers:
    """Servers started for a scope, stopped and removed when it ends."""

    def __init__(self) -> None:
        self.started: list[DovecotServer] = []

    def start(self, ca: CertificateAuthority | None) -> DovecotServer:
        _require_dovecot()
        server = DovecotServer(
            _temp_dir(),
            certificate=ca.issue_server_certificate() if ca is not None else None,
            ca_pem=ca.pem() if ca is not None else None,
        )
        self.started.append(server)
        server.start()
        return server

    def stop_all(self) -> None:
        for server in self.started:
            server.account.close()
            server.stop()
            shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def _session_servers() -> Iterator[_Servers]:
    servers = _Servers()
    yield servers
    servers.stop_all()


@pytest.fixture(scope="session")
def imap_server(_session_servers: _Servers, imap_test_ca: CertificateAuthority) -> DovecotServer:
    """The session's Dovecot, its certificate issued by the test CA (``ca_file``)."""
    return _session_servers.start(imap_test_ca)


@pytest.fixture(scope="session")
def imap_self_signed_server(_session_servers: _Servers) -> DovecotServer:
    """A Dovecot with the script's own self-signed certificate (``ca_file`` is that cert)."""
    return _session_servers.start(None)


@pytest.fixture
def imap_account(imap_server: DovecotServer) -> Iterator[ImapAccount]:
    """A user of the session's server that no other test uses: an empty mailbox."""
    account = imap_server.new_account()
    yield account
    account.close()


@pytest.fixture
def dovecot_factory(imap_test_ca: CertificateAuthority) -> Iterator[Callable[[], DovecotServer]]:
    """Servers of the test's own (stopped and removed after it), e.g. to stop mid-session."""
    servers = _Servers()
    yield lambda: servers.start(imap_test_ca)
    servers.stop_all()

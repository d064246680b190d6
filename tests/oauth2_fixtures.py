"""An OAuth 2.0 authorization server for the tests, and a Dovecot that trusts its tokens.

Registered in tests/conftest.py with ``pytest_plugins``.

* :class:`OAuth2Authority`: a real HTTPS server (certificate from the test CA) with a token
  endpoint (RFC 6749 section 4.4, the client credentials grant, as Microsoft Entra ID's
  ``/oauth2/v2.0/token`` answers it) and an introspection endpoint (RFC 7662). The token
  endpoint issues random tokens to the right client id and secret, with ``expires_in``; the
  introspection endpoint says ``active`` for an issued, unexpired, unrevoked token and names
  the mailbox user it was issued for. It counts the requests each endpoint received.
* ``oauth2_authority`` (function): an authority of the test's own.
* ``xoauth2_dovecot`` (function): a Dovecot of the test's own whose ``auth_mechanisms`` add
  XOAUTH2 and OAUTHBEARER, checked by Dovecot's ``oauth2`` passdb against the authority's
  introspection endpoint (over TLS, trusting the test CA). Password logins still work, so
  the account helpers (APPEND, folder listings) are those of tests/imap_fixtures.py.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest

from tests.imap_fixtures import (
    HOST,
    CertificateAuthority,
    DovecotServer,
    _require_dovecot,
    _temp_dir,
)

CLIENT_ID = "4f1c1a52-mailbot-test-client"
CLIENT_SECRET = "s3cr3t~client~value~never~logged"  # noqa: S105 - the test authority's
SCOPE = "https://outlook.office365.com/.default"


@dataclass
class IssuedToken:
    username: str
    expires_at: float
    revoked: bool = False


class OAuth2Authority:
    """Token and introspection endpoints on one HTTPS port (see the module documentation).

    ``username`` is the mailbox every token gives access to (Microsoft's mailbox permission
    for the application's service principal). ``expires_in`` is what the token endpoint
    announces, and how long introspection says a token is active. ``token_status`` set to
    an HTTP status (503, say) makes the token endpoint answer only that. ``ca_file`` is the
    PEM file of the CA that issued its certificate.
    """

    def __init__(
        self,
        certificate: tuple[bytes, bytes],
        directory: Path,
        *,
        ca_pem: bytes,
        username: str,
        expires_in: int = 3600,
    ) -> None:
        self.username = username
        self.expires_in = expires_in
        self.client_id = CLIENT_ID
        self.client_secret = CLIENT_SECRET
        self.scopes = {SCOPE}
        self.token_status: int | None = None
        # Clear ``introspection_open`` to hold introspection requests until it is set again
        # (a login then hangs in AUTHENTICATE); ``introspection_waiting`` says one is held.
        self.introspection_open = threading.Event()
        self.introspection_open.set()
        self.introspection_waiting = threading.Event()
        self.token_requests = 0
        self.introspection_requests = 0
        self.issued: dict[str, IssuedToken] = {}
        self._lock = threading.Lock()
        (directory / "authority-cert.pem").write_bytes(certificate[0])
        (directory / "authority-key.pem").write_bytes(certificate[1])
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(ca_pem)
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(
            directory / "authority-cert.pem", directory / "authority-key.pem"
        )
        self._server = _AuthorityServer((HOST, 0), _Handler, self)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def token_url(self) -> str:
        return f"https://localhost:{self.port}/oauth2/v2.0/token"

    @property
    def introspection_url(self) -> str:
        return f"https://localhost:{self.port}/introspect"

    def start(self) -> OAuth2Authority:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="oauth2-authority", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the port: the endpoints are unreachable (connection refused) from now on."""
        self.introspection_open.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(10)
            self._thread = None
        self._server.server_close()

    def revoke_issued(self) -> None:
        """Every token issued so far is inactive from now on (as after a password reset or
        an admin revoking the application's sessions); new ones are active."""
        with self._lock:
            for token in self.issued.values():
                token.revoked = True

    # --- the endpoints (called on the server's threads)

    def token_answer(self, form: dict[str, str], authorization: str | None) -> tuple[int, Any]:
        with self._lock:
            self.token_requests += 1
            if self.token_status is not None:
                return self.token_status, {"error": "temporarily_unavailable"}
            client_id, client_secret = _client_credentials(form, authorization)
            if form.get("grant_type") != "client_credentials":
                return 400, _error("unsupported_grant_type", "only client_credentials here")
            if client_id != self.client_id:
                return 400, _error(
                    "unauthorized_client", f"Application with identifier '{client_id}' not found"
                )
            if client_secret != self.client_secret:
                return 401, _error("invalid_client", "Invalid client secret provided.")
            scopes = set(form.get("scope", "").split())
            if not scopes or not scopes <= self.scopes:
                return 400, _error(
                    "invalid_scope", f"The provided scope '{form.get('scope', '')}' is not valid."
                )
            token = secrets.token_urlsafe(32)
            self.issued[token] = IssuedToken(self.username, time.time() + self.expires_in)
            return 200, {
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "ext_expires_in": self.expires_in,
                "access_token": token,
            }

    def introspection_answer(self, form: dict[str, str]) -> tuple[int, Any]:
        if not self.introspection_open.is_set():
            self.introspection_waiting.set()
            self.introspection_open.wait(30)
        with self._lock:
            self.introspection_requests += 1
            issued = self.issued.get(form.get("token", ""))
            if issued is None or issued.revoked or issued.expires_at <= time.time():
                return 200, {"active": False}
            return 200, {
                "active": True,
                "username": issued.username,
                "client_id": self.client_id,
                "scope": " ".join(sorted(self.scopes)),
                "exp": int(issued.expires_at),
                "token_type": "Bearer",
            }


def _client_credentials(form: dict[str, str], authorization: str | None) -> tuple[str, str]:
    """client_secret_post (the form) or client_secret_basic (the header), RFC 6749 2.3.1."""
    if authorization and authorization.lower().startswith("basic "):
        decoded = base64.b64decode(authorization[6:]).decode("utf-8")
        client_id, _, client_secret = decoded.partition(":")
        return unquote(client_id), unquote(client_secret)
    return form.get("client_id", ""), form.get("client_secret", "")


def _error(code: str, description: str) -> dict[str, str]:
    return {"error": code, "error_description": description}


class _AuthorityServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, authority: OAuth2Authority):
        super().__init__(address, handler)
        self.authority = authority
        self.socket = authority._context.wrap_socket(self.socket, server_side=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client gone mid-answer (a Dovecot a test stopped) is no error of the server."""
        if isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _AuthorityServer
    protocol_version = "HTTP/1.1"  # Dovecot's HTTP client keeps its connection open

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        form = {key: values[0] for key, values in parse_qs(body).items()}
        authority = self.server.authority
        if self.path.startswith("/oauth2/v2.0/token"):
            status, answer = authority.token_answer(form, self.headers.get("Authorization"))
        elif self.path.startswith("/introspect"):
            status, answer = authority.introspection_answer(form)
        else:
            status, answer = 404, {"error": "not_found"}
        payload = json.dumps(answer).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows failures, not every request."""


# --- Dovecot with the oauth2 passdb ------------------------------------------------------


def xoauth2_configuration(server: DovecotServer, authority: OAuth2Authority) -> None:
    """Write ``local.conf`` (read last by scripts/imap-test-server.sh) and the passdb's file.

    Dovecot 2.3: the ``oauth2`` passdb, used only for XOAUTH2 and OAUTHBEARER, POSTs each
    token to the introspection endpoint (RFC 7662) and takes the login's user from its
    ``username``; ``active`` must be ``true``. The password passdb of the script comes
    first and is tried too (the token as a password, which never matches), then this one.
    """
    oauth2_conf = server.dir / "dovecot-oauth2.conf.ext"
    oauth2_conf.write_text(
        f"introspection_mode = post\n"
        f"introspection_url = {authority.introspection_url}\n"
        f"username_attribute = username\n"
        f"active_attribute = active\n"
        f"active_value = true\n"
        f"tls_ca_cert_file = {server.ca_file}\n"
        f"timeout_msecs = 5000\n",
        encoding="utf-8",
    )
    (server.dir / "local.conf").write_text(
        "auth_mechanisms = plain login xoauth2 oauthbearer\n"
        "passdb {\n"
        "  driver = oauth2\n"
        "  mechanisms = xoauth2 oauthbearer\n"
        f"  args = {oauth2_conf}\n"
        "}\n",
        encoding="utf-8",
    )


@pytest.fixture
def oauth2_authority(imap_test_ca: CertificateAuthority) -> Iterator[OAuth2Authority]:
    """An authority whose tokens open the mailbox of ``sync@example.test``."""
    directory = _temp_dir()
    authority = OAuth2Authority(
        imap_test_ca.issue_server_certificate(),
        directory,
        ca_pem=imap_test_ca.pem(),
        username="sync@example.test",
    ).start()
    yield authority
    authority.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def xoauth2_dovecot(
    imap_test_ca: CertificateAuthority, oauth2_authority: OAuth2Authority
) -> Iterator[DovecotServer]:
    """A Dovecot of the test's own that accepts the authority's tokens (XOAUTH2)."""
    _require_dovecot()
    server = DovecotServer(
        _temp_dir(), certificate=imap_test_ca.issue_server_certificate(), ca_pem=imap_test_ca.pem()
    )
    oauth2_authority.username = server.username
    xoauth2_configuration(server, oauth2_authority)
    try:
        server.start()
        yield server
    finally:
        server.account.close()
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)

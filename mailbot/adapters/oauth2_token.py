"""OAuth 2.0 access tokens for IMAP XOAUTH2: the client credentials grant (RFC 6749, 4.4).

This is how Microsoft 365 (Exchange Online) lets an application open a mailbox without a
user at the keyboard: the application's client id and secret are posted to the tenant's
token endpoint (``https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token``) with the
scope ``https://outlook.office365.com/.default``, and the access token that comes back is
the XOAUTH2 "password" of the mailbox (docs/operations.md says how to set it up).
requests-oauthlib (``BackendApplicationClient``, ``OAuth2Session.fetch_token``) makes the
request and checks the answer; the secret goes in the form body (``client_secret_post``).

Caching: a token is kept until ``RENEWAL_MARGIN`` seconds before its ``expires_in`` ends
(at least half of its lifetime), so a login never starts with a token about to lapse.
One lock guards it: callers on other threads wait for a fetch under way instead of
starting another. :meth:`ClientCredentialsTokens.renew` replaces a token the IMAP server
refused (revoked, or expired early), unless another caller has replaced it already.

TLS is always verified, against the system CAs or ``ca_file``, and every request has a
connect and a read timeout. Errors leave as the port's errors: the endpoint unreachable,
timing out, or answering 5xx, 429 or ``temporarily_unavailable`` is a ``TemporaryError``;
a refusal (``invalid_client``, ``invalid_scope``, ``unauthorized_client``... with the
endpoint's ``error_description``), an untrusted certificate or an answer without a token
is a ``FatalError``. No message and no log line holds the secret or a token:
requests-oauthlib and oauthlib log request bodies and tokens at DEBUG, so their loggers
are muted.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import requests
from oauthlib.oauth2 import BackendApplicationClient, OAuth2Error
from requests_oauthlib import OAuth2Session

from mailbot.ports import FatalError, PortError, TemporaryError

LOG = logging.getLogger("mailbot.oauth2")

__all__ = ["RENEWAL_MARGIN", "ClientCredentialsTokens", "OAuth2Client"]

RENEWAL_MARGIN: Final = 60.0  # seconds before expiry at which a cached token is replaced
DEFAULT_LIFETIME: Final = 3600.0  # when the endpoint does not say (RFC 6749 5.1: optional)
CREDENTIAL_LOGGERS: Final = ("oauthlib", "requests_oauthlib")
_TRANSIENT_STATUS: Final = frozenset({408, 425, 429})
_TRANSIENT_ERRORS: Final = frozenset({"temporarily_unavailable", "server_error"})
_MAX_DESCRIPTION: Final = 500


@dataclass(frozen=True, slots=True)
class OAuth2Client:
    """The application as the token endpoint knows it. The secret is passed separately.

    ``token_url``: https only (requests-oauthlib refuses anything else).
    ``scopes``: Microsoft 365: ``("https://outlook.office365.com/.default",)``.
    ``ca_file``: a PEM file of CA certificates to trust instead of the system's.
    """

    token_url: str
    client_id: str
    scopes: tuple[str, ...]
    ca_file: str | Path | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 30.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.token_url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"token_url must be an https URL, not {self.token_url!r}")
        if parts.username or parts.password:
            raise ValueError("token_url must not hold a user or password")
        if not self.client_id or not self.scopes:
            raise ValueError("client_id and at least one scope are required")


class ClientCredentialsTokens:
    """Access tokens of one application, cached until shortly before they expire.

    Call it for a token; :meth:`renew` when the server refused the one it gave.
    """

    def __init__(
        self,
        client: OAuth2Client,
        *,
        client_secret: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not client_secret:
            raise ValueError("client_secret is required")
        mute_credential_loggers()
        self.client = client
        self._client_secret = client_secret
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0

    def __repr__(self) -> str:
        return f"ClientCredentialsTokens({self.client.client_id} at {self.client.token_url})"

    def __call__(self) -> str:
        """The cached token, or a new one when none is cached or it is about to expire."""
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                self._token, self._renew_at = self._fetch()
            return self._token

    def renew(self, refused: str) -> str:
        """A new token instead of ``refused`` (which the server would not take); the current
        one when another caller has already replaced it."""
        with self._lock:
            if self._token is None or self._token == refused:
                self._token = None
                self._token, self._renew_at = self._fetch()
            return self._token

    # --- the token endpoint -------------------------------------------------------------

    def _fetch(self) -> tuple[str, float]:
        """A new token and the clock reading at which to replace it."""
        client = self.client
        session = OAuth2Session(client=BackendApplicationClient(client_id=client.client_id))
        session.register_compliance_hook("access_token_response", self._refuse_failures)
        started = self._clock()
        try:
            with session:
                answer = session.fetch_token(
                    client.token_url,
                    include_client_id=True,  # client_secret_post, as Microsoft documents it
                    client_secret=self._client_secret,
                    scope=list(client.scopes),
                    timeout=(client.connect_timeout, client.read_timeout),
                    verify=str(client.ca_file) if client.ca_file else True,
                )
        except PortError:
            raise
        except Exception as error:  # translated at the boundary, or re-raised
            translated = self._port_error(error)
            if translated is None:
                raise
            raise translated from error
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise FatalError(f"token endpoint {client.token_url} answered without access_token")
        lifetime = _lifetime(answer.get("expires_in"))
        LOG.info(
            "access token from %s for %s, valid %d s", client.token_url, client.client_id, lifetime
        )
        return token, started + max(lifetime - RENEWAL_MARGIN, lifetime / 2)

    def _refuse_failures(self, response: requests.Response) -> requests.Response:
        """Every answer but a 2xx becomes a port error before oauthlib reads it (it would
        take an HTML error page for a token-less answer)."""
        if response.ok:
            return response
        where = self.client.token_url
        code, description = self._error_fields(response)
        said = f"{code}: {description}" if description else code
        status = response.status_code
        if status >= 500 or status in _TRANSIENT_STATUS or code in _TRANSIENT_ERRORS:
            raise TemporaryError(f"token endpoint {where} answered HTTP {status} ({said})")
        raise FatalError(
            f"token endpoint {where} refused client {self.client.client_id} (HTTP {status}): {said}"
        )

    def _error_fields(self, response: requests.Response) -> tuple[str, str]:
        """``error`` and ``error_description`` of an RFC 6749 (5.2) error answer."""
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("error"), str):
            return "no OAuth 2.0 error in the answer", ""
        description = body.get("error_description")
        text = " ".join(str(description).split()) if description else ""
        text = text.replace(self._client_secret, "[redacted]")[:_MAX_DESCRIPTION]
        return body["error"], text

    def _port_error(self, error: BaseException) -> PortError | None:
        """The port error for a requests, TLS or oauthlib error; None for any other."""
        where = self.client.token_url
        if isinstance(error, requests.exceptions.RequestException):
            return self._request_error(error)
        if isinstance(error, OAuth2Error):
            return FatalError(
                f"token endpoint {where}: {error.error}: {error.description or 'no description'}"
            )
        if isinstance(error, OSError):  # requests: the CA file cannot be read
            return FatalError(f"cannot use the CA file {self.client.ca_file}: {error}")
        if isinstance(error, ValueError):  # oauthlib: a 2xx answer that is not a token
            return FatalError(f"token endpoint {where}: unreadable answer ({error})")
        return None

    def _request_error(self, error: requests.exceptions.RequestException) -> PortError:
        where = self.client.token_url
        if isinstance(error, requests.exceptions.SSLError):
            if _certificate_rejected(error):
                trusted = self.client.ca_file or "the system CAs"
                return FatalError(
                    f"TLS certificate of token endpoint {where} not trusted; checked against "
                    f"{trusted}"
                )
            return TemporaryError(f"TLS with token endpoint {where} failed: {error}")
        if isinstance(error, requests.exceptions.Timeout):
            return TemporaryError(f"token endpoint {where} did not answer in time")
        if isinstance(error, requests.exceptions.ConnectionError):
            return TemporaryError(f"token endpoint {where} unreachable: {_reason(error)}")
        return FatalError(f"token endpoint {where}: {error}")


def mute_credential_loggers() -> None:
    """oauthlib and requests-oauthlib log request bodies (the secret) and tokens at DEBUG."""
    for name in CREDENTIAL_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _lifetime(expires_in: object) -> float:
    """``expires_in`` in seconds (a number, or a string of one); the default when absent."""
    try:
        seconds = float(expires_in) if isinstance(expires_in, int | float | str) else 0.0
    except ValueError:
        seconds = 0.0
    return seconds if seconds > 0 else DEFAULT_LIFETIME


def _certificate_rejected(error: BaseException) -> bool:
    """True when the chain of causes holds a failed certificate verification."""
    seen: set[int] = set()
    pending: list[object] = [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        pending += list(current.args)
    return "CERTIFICATE_VERIFY_FAILED" in str(error)


def _reason(error: requests.exceptions.ConnectionError) -> str:
    """urllib3's reason without its wrappers: "Failed to establish a new connection: [Errno
    111] Connection refused", say."""
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return str(reason or error).split("): ", 1)[-1]

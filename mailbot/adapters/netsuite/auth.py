"""Request signing: token-based auth (OAuth 1.0a) and OAuth 2.0 client credentials.

Neither class writes anything to a log. ``mute_credential_loggers`` silences the DEBUG
output of oauthlib and requests-oauthlib, which would otherwise print signed headers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256
from requests_oauthlib import OAuth1

from mailbot.adapters.netsuite.config import ClientCredentialsConfig, TokenAuthConfig
from mailbot.adapters.netsuite.errors import NetSuiteAuthenticationError

TOKEN_PATH = "/services/rest/auth/oauth2/v1/token"  # noqa: S105  # a URL path
SCOPE = "rest_webservices"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 300  # seconds; NetSuite accepts at most 3600
RENEWAL_MARGIN = 60.0  # seconds before expiry at which a cached access token is replaced
DEFAULT_TOKEN_LIFETIME = 3600
CREDENTIAL_LOGGERS = ("oauthlib", "requests_oauthlib")

TokenRequester = Callable[[Mapping[str, str]], Mapping[str, Any]]


def mute_credential_loggers() -> None:
    """oauthlib and requests-oauthlib log base strings and signed headers at DEBUG."""
    for name in CREDENTIAL_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def token_auth(config: TokenAuthConfig, realm: str) -> requests.auth.AuthBase:
    """OAuth 1.0a with HMAC-SHA256; ``realm`` is the account id as written (1234567_SB1)."""
    mute_credential_loggers()
    signer: requests.auth.AuthBase = OAuth1(
        config.consumer_key,
        client_secret=config.consumer_secret,
        resource_owner_key=config.token_id,
        resource_owner_secret=config.token_secret,
        signature_method=SIGNATURE_HMAC_SHA256,
        realm=realm,
    )
    return signer


class ClientCredentialsAuth(requests.auth.AuthBase):
    """Bearer tokens from the OAuth 2.0 client credentials flow, cached until near expiry.

    ``request_token`` posts the form to the token endpoint and returns its JSON; the client
    routes it through its own request chokepoint (timeouts, error mapping, retries).
    """

    def __init__(
        self,
        config: ClientCredentialsConfig,
        token_url: str,
        request_token: TokenRequester,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._token_url = token_url
        self._request_token = request_token
        self._clock = clock
        self._signing_key = _load_private_key(config.private_key_pem)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.access_token()}"
        return request

    def access_token(self) -> str:
        """The cached token, or a new one if none is cached or it expires within the margin."""
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                self._token, self._renew_at = self._fetch()
            return self._token

    def forget(self, rejected: requests.PreparedRequest) -> None:
        """Drop the cached token if ``rejected`` carried it (another thread may have renewed)."""
        with self._lock:
            if rejected.headers.get("Authorization") == f"Bearer {self._token}":
                self._token = None

    def _fetch(self) -> tuple[str, float]:
        answer = self._request_token(
            {
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self._assertion(),
            }
        )
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise NetSuiteAuthenticationError("token endpoint answered without an access token")
        lifetime = _lifetime(answer.get("expires_in"))
        return token, self._clock() + max(lifetime - RENEWAL_MARGIN, lifetime / 2)

    def _assertion(self) -> str:
        issued = int(time.time())
        claims = {
            "iss": self._config.client_id,
            "scope": SCOPE,
            "aud": self._token_url,
            "iat": issued,
            "exp": issued + ASSERTION_LIFETIME,
        }
        headers = {"kid": self._config.certificate_id, "typ": "JWT"}
        return jwt.encode(claims, self._signing_key, self._config.algorithm, headers=headers)


def _load_private_key(pem: bytes | str) -> Any:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        return load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise ValueError("private_key_pem: not an unencrypted PEM private key") from error


def _lifetime(expires_in: object) -> float:
    """``expires_in`` in seconds; NetSuite sends it as a string ("3600")."""
    seconds = 0.0
    if isinstance(expires_in, int | float | str):
        try:
            seconds = float(expires_in)
        except ValueError:
            seconds = 0.0
    return seconds if seconds > 0 else float(DEFAULT_TOKEN_LIFETIME)

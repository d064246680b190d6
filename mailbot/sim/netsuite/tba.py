"""Token-based authentication: OAuth 1.0a signatures checked the way NetSuite documents them.

netsuite-rest.md section 2a: RFC 5849 base string (method, base URL, query and oauth_*
parameters, realm excluded), key ``enc(consumer secret)&enc(token secret)``, HMAC-SHA256,
base64. The realm must be the account ID, the nonce at least 6 characters and unused, the
timestamp within five minutes of the server clock, and oauth_version, if sent, 1.0.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from urllib.parse import parse_qsl, quote, unquote

from mailbot.sim.netsuite.errors import LoginRefusedError

SIGNATURE_METHOD = "HMAC-SHA256"
TIMESTAMP_WINDOW_S = 300
NONCE_MIN_LENGTH = 6
REQUIRED = ("oauth_consumer_key", "oauth_token", "oauth_signature_method", "oauth_timestamp")
HEADER_PARAMETER = re.compile(r'\s*([A-Za-z0-9_.\-]+)\s*=\s*"([^"]*)"\s*(?:,|$)')


@dataclass(frozen=True, slots=True)
class TokenCredentials:
    """The integration record (consumer) and access token of the single REST user."""

    account: str
    consumer_key: str
    consumer_secret: str
    token_id: str
    token_secret: str


def percent_encode(text: str) -> str:
    """RFC 3986 unreserved characters stay, everything else is %XX of its UTF-8 bytes."""
    return quote(text, safe="-._~")


def parse_authorization(header: str) -> dict[str, str]:
    """The parameters of an ``OAuth`` Authorization header (RFC 5849 section 3.5.1)."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "oauth":
        raise LoginRefusedError("MalformedHeader")
    parameters: dict[str, str] = {}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = HEADER_PARAMETER.match(rest, position)
        if match is None:
            raise LoginRefusedError("MalformedHeader")
        name, value = match.group(1), unquote(match.group(2))
        if name in parameters:
            raise LoginRefusedError("MalformedHeader")
        parameters[name] = value
        position = match.end()
    return parameters


def base_string(method: str, base_uri: str, query: str, oauth_parameters: dict[str, str]) -> str:
    """RFC 5849 section 3.4.1: METHOD&enc(base URI)&enc(normalised parameters)."""
    pairs = parse_qsl(query, keep_blank_values=True)
    pairs += [
        (name, value)
        for name, value in oauth_parameters.items()
        if name not in {"realm", "oauth_signature"}
    ]
    encoded = sorted((percent_encode(name), percent_encode(value)) for name, value in pairs)
    normalised = "&".join(f"{name}={value}" for name, value in encoded)
    return "&".join((method.upper(), percent_encode(base_uri), percent_encode(normalised)))


def hmac_sha256_signature(text: str, consumer_secret: str, token_secret: str) -> str:
    key = f"{percent_encode(consumer_secret)}&{percent_encode(token_secret)}"
    digest = hmac.new(key.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class TokenVerifier:
    """Checks signed requests; remembers nonces per consumer key for the timestamp window."""

    def __init__(self, credentials: TokenCredentials, clock: Callable[[], float]) -> None:
        self._credentials = credentials
        self._clock = clock
        self._lock = threading.Lock()
        self._nonces: dict[str, dict[str, float]] = {}

    def verify(self, method: str, base_uri: str, query: str, header: str) -> None:
        """Raises ``LoginRefusedError`` naming the Login Audit Trail reason of a refusal."""
        parameters = parse_authorization(header)
        self._check_parameters(parameters)
        expected = hmac_sha256_signature(
            base_string(method, base_uri, query, parameters),
            self._credentials.consumer_secret,
            self._credentials.token_secret,
        )
        if not hmac.compare_digest(expected, parameters.get("oauth_signature", "")):
            raise LoginRefusedError("InvalidSignature")
        self._use_nonce(parameters["oauth_consumer_key"], parameters["oauth_nonce"])

    def _check_parameters(self, parameters: dict[str, str]) -> None:
        credentials = self._credentials
        if any(name not in parameters for name in (*REQUIRED, "oauth_signature")):
            raise LoginRefusedError("MissingParameter")
        if parameters.get("realm") != credentials.account:
            raise LoginRefusedError("InvalidAccount")
        if parameters["oauth_signature_method"] != SIGNATURE_METHOD:
            raise LoginRefusedError("UnknownAlgorithm")
        if parameters.get("oauth_version", "1.0") != "1.0":
            raise LoginRefusedError("InvalidVersion")
        if not hmac.compare_digest(parameters["oauth_consumer_key"], credentials.consumer_key):
            raise LoginRefusedError("consumer_key_unknown")
        if not hmac.compare_digest(parameters["oauth_token"], credentials.token_id):
            raise LoginRefusedError("token_rejected")
        if len(parameters.get("oauth_nonce", "")) < NONCE_MIN_LENGTH:
            raise LoginRefusedError("InvalidNonce")
        self._check_timestamp(parameters["oauth_timestamp"])

    def _check_timestamp(self, text: str) -> None:
        if not text.isdigit():
            raise LoginRefusedError("InvalidTimestamp")
        if abs(int(text) - self._clock()) > TIMESTAMP_WINDOW_S:
            raise LoginRefusedError("InvalidTimestamp")

    def _use_nonce(self, consumer_key: str, nonce: str) -> None:
        now = self._clock()
        with self._lock:
            seen = self._nonces.setdefault(consumer_key, {})
            for old, at in list(islice(seen.items(), 64)):  # oldest first: insertion order
                if now - at <= 2 * TIMESTAMP_WINDOW_S:
                    break
                del seen[old]
            if nonce in seen:
                raise LoginRefusedError("NonceUsed")
            seen[nonce] = now

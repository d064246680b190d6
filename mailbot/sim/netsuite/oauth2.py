"""OAuth 2.0 client credentials (M2M): the token endpoint and bearer token checks.

netsuite-rest.md section 2b: a form POST with grant_type=client_credentials and a JWT
client assertion signed with PS256/384/512 or ES256/384/512, ``kid`` = certificate ID,
``iss`` = client ID, ``aud`` = the token URL, ``scope`` with rest_webservices, ``exp`` at most
60 minutes after ``iat``. The answer is an access token valid for 60 minutes, no refresh token.
"""

from __future__ import annotations

import re
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mailbot.sim.netsuite.errors import LoginRefusedError, OAuthError

ALGORITHMS = frozenset({"PS256", "PS384", "PS512", "ES256", "ES384", "ES512"})
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME_S = 3600
CLOCK_SKEW_S = 300
RSA_KEY_SIZES = frozenset({3072, 4096})
EC_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
ISSUER = "netsuite-emulator"

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True, slots=True)
class Certificate:
    """A mapping of an integration (client ID) to an uploaded public certificate."""

    client_id: str
    certificate_id: str
    public_key: PublicKey


def load_public_key(pem: bytes) -> PublicKey:
    """An x509 certificate or a bare public key, RSA 3072/4096 or EC P-256/384/521."""
    if b"BEGIN CERTIFICATE" in pem:
        key: Any = x509.load_pem_x509_certificate(pem).public_key()
    else:
        key = serialization.load_pem_public_key(pem)
    if isinstance(key, rsa.RSAPublicKey) and key.key_size in RSA_KEY_SIZES:
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in EC_CURVES:
        return key
    raise ValueError("the certificate must hold an RSA 3072/4096 or EC P-256/384/521 key")


class OAuth2Server:
    """Issues bearer tokens for registered certificates and checks them later."""

    def __init__(self, clock: Callable[[], float], token_lifetime_s: float) -> None:
        if token_lifetime_s <= 0:
            raise ValueError("token_lifetime_s must be positive")
        self._clock = clock
        self._lifetime = token_lifetime_s
        self._signing_key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._certificates: dict[str, Certificate] = {}
        self._expiries: dict[str, float] = {}

    def register(self, client_id: str, certificate_id: str, public_pem: bytes) -> None:
        certificate = Certificate(client_id, certificate_id, load_public_key(public_pem))
        with self._lock:
            self._certificates[certificate_id] = certificate

    def issue_token(self, form: dict[str, str], token_url: str) -> dict[str, Any]:
        """The token response for a valid assertion; raises ``OAuthError`` otherwise."""
        if form.get("grant_type") != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "UnsupportedGrantType")
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
            raise OAuthError(400, "invalid_request", "InvalidAssertionType")
        client_id, scopes = self._verify_assertion(form["client_assertion"], token_url)
        return self._new_token(client_id, scopes)

    def verify_bearer(self, token: str) -> str:
        """The client ID of a live token; raises ``LoginRefusedError`` otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._signing_key,
                algorithms=["HS256"],
                options={"verify_exp": False, "verify_iat": False},  # the emulator's clock rules
            )
        except jwt.PyJWTError as error:
            raise LoginRefusedError("InvalidToken") from error
        with self._lock:
            expires_at = self._expiries.get(str(claims.get("jti")))
        if expires_at is None:
            raise LoginRefusedError("InvalidToken")
        if self._clock() >= expires_at:
            raise LoginRefusedError("TokenExpired")
        return str(claims.get("sub"))

    def _verify_assertion(self, assertion: str, token_url: str) -> tuple[str, list[str]]:
        certificate, algorithm = self._certificate_for(assertion)
        try:
            claims = jwt.decode(
                assertion,
                certificate.public_key,
                algorithms=[algorithm],
                options={
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_iss": False,
                },
            )
        except jwt.PyJWTError as error:
            raise OAuthError(401, "invalid_client", "InvalidSignature") from error
        except (ValueError, TypeError) as error:
            raise OAuthError(401, "invalid_client", "InvalidKey") from error
        if claims.get("iss") != certificate.client_id:
            raise OAuthError(401, "invalid_client", "InvalidIssuer")
        self._check_audience(claims.get("aud"), token_url)
        self._check_times(claims)
        return certificate.client_id, self._scopes(claims.get("scope"))

    def _certificate_for(self, assertion: str) -> tuple[Certificate, str]:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as error:
            raise OAuthError(400, "invalid_request", "MalformedAssertion") from error
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise OAuthError(400, "invalid_request", "UnsupportedAlgorithm")
        with self._lock:
            certificate = self._certificates.get(str(header.get("kid")))
        if certificate is None:
            raise OAuthError(401, "invalid_client", "UnknownCertificate")
        return certificate, str(algorithm)

    @staticmethod
    def _check_audience(audience: Any, token_url: str) -> None:
        audiences = audience if isinstance(audience, list) else [audience]
        if token_url not in audiences:
            raise OAuthError(400, "invalid_grant", "InvalidAudience")

    def _check_times(self, claims: dict[str, Any]) -> None:
        issued, expires = _number(claims.get("iat")), _number(claims.get("exp"))
        if issued is None or expires is None:
            raise OAuthError(400, "invalid_grant", "MissingTimes")
        now = self._clock()
        if expires <= now:
            raise OAuthError(400, "invalid_grant", "AssertionExpired")
        if issued > now + CLOCK_SKEW_S or expires <= issued:
            raise OAuthError(400, "invalid_grant", "InvalidIssuedAt")
        if expires - issued > MAX_ASSERTION_LIFETIME_S:
            raise OAuthError(400, "invalid_grant", "AssertionTooLong")

    @staticmethod
    def _scopes(scope: Any) -> list[str]:
        if isinstance(scope, list):
            scopes = [str(item) for item in scope]
        else:
            scopes = [part for part in re.split(r"[\s,]+", str(scope or "")) if part]
        if "rest_webservices" not in scopes:
            raise OAuthError(400, "invalid_scope", "MissingScope")
        return scopes

    def _new_token(self, client_id: str, scopes: list[str]) -> dict[str, Any]:
        now = self._clock()
        token_id = uuid.uuid4().hex
        claims = {
            "iss": ISSUER,
            "sub": client_id,
            "scope": scopes,
            "iat": int(now),
            "exp": int(now + self._lifetime),
            "jti": token_id,
        }
        with self._lock:
            self._expiries = {k: v for k, v in self._expiries.items() if v > now}
            self._expiries[token_id] = now + self._lifetime
        token = jwt.encode(claims, self._signing_key, algorithm="HS256")
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": max(1, round(self._lifetime)),
        }


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None

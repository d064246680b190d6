"""Settings of the NetSuite client. Secrets are handed over by the caller, never read here."""

from __future__ import annotations

import re
from dataclasses import KW_ONLY, dataclass, field

ACCOUNT_PATTERN = re.compile(r"[A-Za-z0-9]+(?:_[A-Za-z0-9]+)?")
JWT_ALGORITHMS = frozenset({"PS256", "PS384", "PS512", "ES256", "ES384", "ES512"})


@dataclass(frozen=True)
class TokenAuthConfig:
    """Token-based authentication (OAuth 1.0a, HMAC-SHA256): integration record + access token."""

    consumer_key: str = field(repr=False)
    consumer_secret: str = field(repr=False)
    token_id: str = field(repr=False)
    token_secret: str = field(repr=False)


@dataclass(frozen=True)
class ClientCredentialsConfig:
    """OAuth 2.0 client credentials (machine to machine) with the integration's certificate."""

    client_id: str
    certificate_id: str
    private_key_pem: bytes | str = field(repr=False)
    algorithm: str = "PS256"

    def __post_init__(self) -> None:
        if self.algorithm not in JWT_ALGORITHMS:
            allowed = ", ".join(sorted(JWT_ALGORITHMS))
            raise ValueError(f"algorithm {self.algorithm!r}: expected one of {allowed}")


AuthConfig = TokenAuthConfig | ClientCredentialsConfig


@dataclass(frozen=True)
class NetSuiteConfig:
    """Where and how to reach one NetSuite account.

    ``account`` is the account id as NetSuite writes it (``1234567`` or ``1234567_SB1``);
    it is the OAuth realm and, unless ``base_url`` is given, names the REST host.
    ``concurrency`` is this client's share of the account's concurrency limit: at most that
    many requests are in flight at once. Timeouts and the backoff figures are in seconds:
    waits before a retry are drawn between 0 and ``backoff_base * 2**(attempt - 1)``, at most
    ``backoff_cap``; a ``Retry-After`` answer is waited out instead, up to ``retry_after_limit``.
    """

    account: str
    _: KW_ONLY
    auth: AuthConfig
    base_url: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    retry_after_limit: float = 120.0
    concurrency: int = 4

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))

    def problems(self) -> list[str]:
        checks = [
            (ACCOUNT_PATTERN.fullmatch(self.account) is not None, "account: like 1234567_SB1"),
            (self.connect_timeout > 0 and self.read_timeout > 0, "timeouts: must be positive"),
            (self.max_attempts >= 1, "max_attempts: at least 1"),
            (0 < self.backoff_base <= self.backoff_cap, "backoff: 0 < backoff_base <= cap"),
            (self.retry_after_limit >= 0, "retry_after_limit: not negative"),
            (self.concurrency >= 1, "concurrency: at least 1"),
        ]
        return [problem for ok, problem in checks if not ok]

    @property
    def root_url(self) -> str:
        """Scheme and host of the REST service, without a trailing slash."""
        return (self.base_url or account_base_url(self.account)).rstrip("/")


def account_base_url(account: str) -> str:
    """The account-specific REST domain: lower case, ``_`` becomes ``-`` (1234567-sb1)."""
    host = account.lower().replace("_", "-")
    return f"https://{host}.suitetalk.api.netsuite.com"

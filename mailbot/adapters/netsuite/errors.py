"""The NetSuite client's errors, grouped by what the caller does next.

* ``NetSuiteAuthenticationError``: the credentials are refused; stop (fatal).
* ``NetSuiteRequestError``: NetSuite refused this request (validation, missing record);
  the message that caused it fails, the robot carries on.
* ``NetSuiteTransientError``: 429, 5xx, timeouts, connection resets; retry later.
* ``NetSuiteCertificateError``: the server's TLS certificate is not trusted; stop (fatal).

All derive from ``NetSuiteError``. None of them carries a credential: only the HTTP status
and NetSuite's own error details (``o:errorDetails``).
"""

from __future__ import annotations


class NetSuiteError(Exception):
    """Root of the NetSuite client's errors."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        detail: str = "",
        error_path: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail
        self.error_path = error_path
        self.retry_after = retry_after  # seconds, from Retry-After (transient errors only)


class NetSuiteAuthenticationError(NetSuiteError):
    """Credentials refused (HTTP 401, or the OAuth 2.0 token endpoint said no): fatal."""


class NetSuiteRequestError(NetSuiteError):
    """NetSuite refused this request (a 4xx other than 401 and 429): this message fails."""


class NetSuiteNotFoundError(NetSuiteRequestError):
    """HTTP 404 ``NONEXISTENT_ID``: the record does not exist."""


class NetSuiteTransientError(NetSuiteError):
    """429, 5xx, timeouts, connection resets: worth retrying later."""


class NetSuiteCertificateError(NetSuiteError):
    """The server's TLS certificate is not trusted (self-signed, a private CA that is not
    configured, an intercepting proxy): fatal, since no retry mends it."""

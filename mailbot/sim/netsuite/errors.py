"""NetSuite's error bodies (netsuite-rest.md section 7) and OAuth 2.0 token errors."""

from __future__ import annotations

import secrets
from http import HTTPStatus
from typing import Any

RFC2616_ERRORS = "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#"
SECTION_BY_STATUS = {
    400: "sec10.4.1",
    401: "sec10.4.2",
    403: "sec10.4.4",
    404: "sec10.4.5",
    405: "sec10.4.6",
    411: "sec10.4.12",
    413: "sec10.4.14",
    500: "sec10.5.1",
    502: "sec10.5.3",
    503: "sec10.5.4",
    504: "sec10.5.5",
}
LOGIN_AUDIT_TRAIL = (
    "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI "
    "at Setup > Users/Roles > User Management > View Login Audit Trail."
)
CONCURRENCY_DETAIL = "Concurrent request limit exceeded. Request blocked."


class ApiError(Exception):
    """A REST error answered in NetSuite's shape: type, title, status, o:errorDetails."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        where: dict[str, str] | None = None,
        title: str | None = None,
        top_level_code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.where = where or {}
        self.title = title or _phrase(status)
        self.top_level_code = top_level_code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"detail": self.detail, "o:errorCode": self.code}
        detail.update(self.where)
        body: dict[str, Any] = {
            "type": RFC2616_ERRORS + SECTION_BY_STATUS.get(self.status, "sec10.4.1"),
            "title": self.title,
            "status": self.status,
        }
        if self.top_level_code:
            body["o:errorCode"] = self.top_level_code
        body["o:errorDetails"] = [detail]
        return body


class LoginRefusedError(Exception):
    """A rejected login; ``reason`` is what NetSuite would write in the Login Audit Trail."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OAuthError(Exception):
    """An OAuth 2.0 token endpoint error (RFC 6749 section 5.2)."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(f"{status} {error}: {reason}")
        self.status = status
        self.error = error
        self.reason = reason


def invalid_login() -> ApiError:
    return ApiError(401, "INVALID_LOGIN", LOGIN_AUDIT_TRAIL)


def nonexistent_id() -> ApiError:
    return ApiError(404, "NONEXISTENT_ID", "Record does not exist.")


def invalid_content(detail: str, path: str | None = None) -> ApiError:
    return ApiError(400, "INVALID_CONTENT", detail, where={"o:errorPath": path} if path else None)


def invalid_request(detail: str, **where: str) -> ApiError:
    """``where`` names the culprit: errorQueryParam, errorHeader or errorUrl."""
    return ApiError(400, "INVALID_REQUEST", detail, where={f"o:{k}": v for k, v in where.items()})


def concurrency_limit_exceeded(retry_after_seconds: float | None = None) -> ApiError:
    """The documented 429 body, with its odd "Bad Request" title and USER_ERROR top code."""
    headers = {}
    if retry_after_seconds is not None:
        headers["Retry-After"] = _seconds_text(retry_after_seconds)
    return ApiError(
        429,
        "CONCURRENCY_LIMIT_EXCEEDED",
        CONCURRENCY_DETAIL,
        title="Bad Request",
        top_level_code="USER_ERROR",
        headers=headers,
    )


def unexpected_error(status: int = 500) -> ApiError:
    error_id = secrets.token_hex(8)
    detail = f"An unexpected error has occurred. Error ID: {error_id}"
    return ApiError(status, "UNEXPECTED_ERROR", detail)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _seconds_text(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"

"""Reading NetSuite's answers: error bodies (``o:errorDetails``) into typed errors, JSON
bodies, ``Location`` headers and ``Retry-After``."""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests

from mailbot.adapters.netsuite.errors import (
    NetSuiteAuthenticationError,
    NetSuiteError,
    NetSuiteNotFoundError,
    NetSuiteRequestError,
    NetSuiteTransientError,
)

TOKEN_REFUSALS = frozenset({400, 401, 403})


class ErrorDetail(NamedTuple):
    code: str | None
    detail: str
    path: str | None


def error_for(kind: str, response: requests.Response) -> NetSuiteError:
    """The typed error for a non-2xx answer, by what the caller should do about it."""
    status = response.status_code
    found = error_detail(response)
    message = _message(response, found)
    fields: dict[str, Any] = {
        "status": status,
        "code": found.code,
        "detail": found.detail,
        "error_path": found.path,
    }
    if status == 401 or (kind == "token" and status in TOKEN_REFUSALS):
        return NetSuiteAuthenticationError(message, **fields)
    if status in (408, 429) or status >= 500:
        return NetSuiteTransientError(message, retry_after=retry_after(response), **fields)
    if status == 404 and found.code == "NONEXISTENT_ID":
        return NetSuiteNotFoundError(message, **fields)
    return NetSuiteRequestError(message, **fields)


def _message(response: requests.Response, found: ErrorDetail) -> str:
    where = f"{response.request.method} {urlsplit(response.url).path}"
    words = [f"{where}: HTTP {response.status_code}"]
    if found.code:
        words.append(found.code)
    if found.path:
        words.append(f"at {found.path}")
    text = " ".join(words)
    return f"{text}: {found.detail}" if found.detail else text


def error_detail(response: requests.Response) -> ErrorDetail:
    """The first of ``o:errorDetails`` (NetSuite) or ``error`` (OAuth 2.0 token endpoint)."""
    body = _json_or_none(response)
    if not isinstance(body, dict):
        return ErrorDetail(None, response.reason or "", None)
    details = body.get("o:errorDetails")
    first = details[0] if isinstance(details, list) and details else {}
    first = first if isinstance(first, dict) else {}
    code = first.get("o:errorCode") or body.get("o:errorCode") or body.get("error")
    detail = first.get("detail") or body.get("error_description") or body.get("title") or ""
    return ErrorDetail(_text_or_none(code), str(detail), _text_or_none(first.get("o:errorPath")))


def retry_after(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds; the HTTP-date form is not used by NetSuite and ignored."""
    value = response.headers.get("Retry-After", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(seconds, 0.0)


def json_object(response: requests.Response) -> dict[str, Any]:
    body = _json_or_none(response)
    if not isinstance(body, dict):
        path = urlsplit(response.url).path
        raise NetSuiteError(f"{path}: expected a JSON object", status=response.status_code)
    return body


def internal_id(response: requests.Response) -> str:
    """The new or updated record's internal id: the last segment of ``Location``."""
    location = response.headers.get("Location", "")
    record_id = urlsplit(location).path.rstrip("/").rpartition("/")[2]
    if not record_id:
        raise NetSuiteError("answer without a Location header", status=response.status_code)
    return record_id


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _text_or_none(value: object) -> str | None:
    return str(value) if value not in (None, "") else None

"""The NetSuite REST client: one request chokepoint and the operations the robot needs.

Every HTTP call goes through ``NetSuiteClient._request``, which signs it, bounds the number
in flight (a share of the account's concurrency limit), applies the timeouts, counts and logs
it, turns NetSuite's error bodies into typed errors (``errors.py``) and retries the calls that
are safe to repeat: GET, upsert PUT, PATCH, DELETE and SuiteQL (read-only POST). A plain POST
create is never repeated, since it could create the record twice.

Log lines (logger ``mailbot.netsuite``) carry the method, path, status (with NetSuite's
error code, or why no answer came), duration and attempt only: no query string, header,
body or credential.
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import partial
from types import TracebackType
from typing import Any, Literal, Self

import requests
from requests.adapters import HTTPAdapter
from requests.exceptions import ChunkedEncodingError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random,
    wait_random_exponential,
)

from mailbot import __version__
from mailbot.adapters.netsuite.auth import (
    TOKEN_PATH,
    ClientCredentialsAuth,
    mute_credential_loggers,
    token_auth,
)
from mailbot.adapters.netsuite.config import NetSuiteConfig, TokenAuthConfig
from mailbot.adapters.netsuite.counters import CallCounters
from mailbot.adapters.netsuite.errors import (
    NetSuiteCertificateError,
    NetSuiteError,
    NetSuiteNotFoundError,
    NetSuiteTransientError,
)
from mailbot.adapters.netsuite.responses import error_for, internal_id, json_object

LOG = logging.getLogger("mailbot.netsuite")

RECORDS = "/services/rest/record/v1"
EVENTS = f"{RECORDS}/calendarEvent"
METADATA = f"{RECORDS}/metadata-catalog"
SUITEQL = "/services/rest/query/v1/suiteql"
JSON = "application/json"
SCHEMA_JSON = "application/schema+json"
USER_AGENT = f"mailbot/{__version__}"
STRICT_NAMES = {"X-NetSuite-PropertyNameValidation": "Error"}
SUITEQL_HEADERS = {"Prefer": "transient"}
SUITEQL_PAGE_MAX = 1000
EXTERNAL_ID = re.compile(r"[A-Za-z0-9_-]+")
EVENT_REF = re.compile(r"-?[0-9]+|eid:[A-Za-z0-9_-]+")
RECORD_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# The pattern fields a recurring series needs; the REST schema (2026.1) has none of them.
RECURRENCE_FIELDS = ("frequency", "period", "seriesStartDate")

Kind = Literal["upsert", "create", "patch", "get", "delete", "suiteql", "schema", "token", "clock"]
QueryValue = str | int | float | bool | None


@dataclass(frozen=True)
class _Call:
    kind: Kind
    method: str
    path: str
    params: Mapping[str, str] | None
    json: Any
    data: Mapping[str, str] | None
    headers: Mapping[str, str] | None
    authenticate: bool


class NetSuiteClient:
    """NetSuite REST for calendar events, SuiteQL and the metadata catalog.

    Thread-safe: share one client between worker threads. ``auth`` replaces the signing
    built from ``config.auth`` (any ``requests`` auth object, e.g. a customised ``OAuth1``).
    """

    def __init__(
        self, config: NetSuiteConfig, *, auth: requests.auth.AuthBase | None = None
    ) -> None:
        mute_credential_loggers()
        self._config = config
        self._root = config.root_url
        self._timeout = (config.connect_timeout, config.read_timeout)
        self._slots = threading.BoundedSemaphore(config.concurrency)
        self._counters = CallCounters()
        self._session = _pooled_session(config.concurrency, self._root)
        self._auth = auth or self._configured_auth()
        self._backoff = wait_random_exponential(
            multiplier=config.backoff_base, max=config.backoff_cap
        )
        self._jitter = wait_random(0, config.backoff_base)

    # ------------------------------------------------------------------ events

    def upsert_event(
        self,
        external_id: str,
        body: Mapping[str, Any],
        *,
        replace: Sequence[str] = ("attendee",),
    ) -> str:
        """Create or update the event with this external id; returns its internal id."""
        path = f"{EVENTS}/eid:{checked_external_id(external_id)}"
        response = self._request(
            "upsert",
            "PUT",
            path,
            params=_replace_params(replace),
            json=body,
            headers=STRICT_NAMES,
            retry=True,
        )
        return internal_id(response)

    def create_event(self, body: Mapping[str, Any]) -> str:
        """Create an event with a plain POST (never repeated); prefer ``upsert_event``."""
        response = self._request(
            "create", "POST", EVENTS, json=body, headers=STRICT_NAMES, retry=False
        )
        return internal_id(response)

    def patch_event(
        self, ref: str, body: Mapping[str, Any], replace: Sequence[str] = ("attendee",)
    ) -> str | None:
        """Change the given fields; the sublists named in ``replace`` are replaced whole.

        Returns the internal id when the answer's ``Location`` names it, else None.
        """
        response = self._request(
            "patch",
            "PATCH",
            event_path(ref),
            params=_replace_params(replace),
            json=body,
            headers=STRICT_NAMES,
            retry=True,
        )
        return internal_id(response) if response.headers.get("Location") else None

    def get_event(
        self, ref: str, expand: bool = True, *, missing_ok: bool = False
    ) -> dict[str, Any] | None:
        """The event by internal id or ``eid:<external id>``; sublists inlined if ``expand``."""
        params = {"expandSubResources": "true"} if expand else None
        try:
            response = self._request("get", "GET", event_path(ref), params=params, retry=True)
        except NetSuiteNotFoundError:
            if missing_ok:
                return None
            raise
        return json_object(response)

    def delete_event(self, ref: str, *, missing_ok: bool = False) -> None:
        """Delete the event; with ``missing_ok`` an already deleted one is not an error."""
        try:
            self._request("delete", "DELETE", event_path(ref), retry=True)
        except NetSuiteNotFoundError:
            if not missing_ok:
                raise

    # ------------------------------------------------------------------ queries

    def suiteql(
        self,
        query: str,
        params: Iterable[QueryValue] = (),
        *,
        page_size: int = SUITEQL_PAGE_MAX,
    ) -> Iterator[dict[str, Any]]:
        """Rows of a SuiteQL query (``?`` placeholders bound to ``params``), keys lower-cased.

        Pages are fetched lazily, ``page_size`` rows at a time, until ``hasMore`` is false.
        """
        if not 1 <= page_size <= SUITEQL_PAGE_MAX:
            raise ValueError(f"page_size: 1 to {SUITEQL_PAGE_MAX}")
        return self._suiteql_rows({"q": query, "params": list(params)}, page_size)

    def record_schema(self, record_type: str) -> dict[str, Any]:
        """The JSON schema of a record type from the metadata catalog."""
        if not RECORD_TYPE.fullmatch(record_type):
            raise ValueError(f"record type {record_type!r}: letters, digits and '_' only")
        response = self._request(
            "schema",
            "GET",
            f"{METADATA}/{record_type}",
            headers={"Accept": SCHEMA_JSON},
            retry=True,
        )
        return json_object(response)

    def has_recurrence_fields(self) -> bool:
        """Whether ``calendarEvent`` exposes the fields needed to write a recurring series."""
        properties = self.record_schema("calendarEvent").get("properties", {})
        return all(name in properties for name in RECURRENCE_FIELDS)

    def clock_skew(self) -> timedelta:
        """How far NetSuite's clock is ahead of this machine's (negative: behind).

        Read from the ``Date`` header of an unsigned request, which every answer carries
        (401 included): signatures are refused when the clocks are too far apart, so this
        must not depend on one being accepted. The header has whole seconds; the skew is
        measured against the middle of the exchange and is good to about a second.
        """
        call = _Call("clock", "GET", METADATA, None, None, None, None, authenticate=False)
        sent = time.time()
        response = self._send(call, attempt=1)
        received = time.time()
        header = response.headers.get("Date")
        try:
            stamped = parsedate_to_datetime(header or "")
        except (TypeError, ValueError) as error:
            raise NetSuiteError(f"GET {METADATA}: no usable Date header") from error
        server = stamped.replace(tzinfo=stamped.tzinfo or UTC) + timedelta(seconds=0.5)
        local = datetime.fromtimestamp((sent + received) / 2, UTC)
        return server - local

    # ------------------------------------------------------------------ housekeeping

    def counters(self) -> dict[str, int]:
        """Calls by kind and by ``<kind>.<status>``, plus ``retries``."""
        return self._counters.as_dict()

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ the chokepoint

    def _request(
        self,
        kind: Kind,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool,
        authenticate: bool = True,
    ) -> requests.Response:
        """Send one call; with ``retry``, repeat it on transient failures (bounded, jittered)."""
        call = _Call(kind, method, path, params, json, data, headers, authenticate)
        if not retry:
            return self._exchange(call, attempt=1)
        retrying = Retrying(
            stop=stop_after_attempt(self._config.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(NetSuiteTransientError),
            before_sleep=partial(self._note_retry, call),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self._exchange(call, attempt.retry_state.attempt_number)
        raise AssertionError("tenacity ended without an outcome")  # pragma: no cover

    def _exchange(self, call: _Call, attempt: int) -> requests.Response:
        """One attempt; a refused bearer token is renewed once and the call sent again."""
        response = self._send(call, attempt)
        bearer = self._auth if call.authenticate else None
        if response.status_code == 401 and isinstance(bearer, ClientCredentialsAuth):
            bearer.forget(response.request)
            response = self._send(call, attempt)
        if response.status_code >= 300:
            raise error_for(call.kind, response)
        return response

    def _send(self, call: _Call, attempt: int) -> requests.Response:
        with self._slot(call):
            started = time.perf_counter()
            try:
                response = self._session.request(
                    call.method,
                    self._root + call.path,
                    params=call.params,
                    json=call.json,
                    data=call.data,
                    headers=call.headers,
                    auth=self._auth if call.authenticate else None,
                    timeout=self._timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as error:
                raise self._failure(call, attempt, started, error) from error
        self._note(call, attempt, started, response.status_code)
        return response

    def _slot(self, call: _Call) -> AbstractContextManager[object]:
        """A place among the requests in flight. A token request takes none: it is made on
        behalf of a call that already holds one and is not using it meanwhile."""
        return nullcontext() if call.kind == "token" else self._slots

    def _failure(
        self, call: _Call, attempt: int, started: float, error: requests.RequestException
    ) -> NetSuiteError:
        untrusted = _certificate_failure(error)
        if untrusted is not None:
            self._note(call, attempt, started, "certificate")
            return NetSuiteCertificateError(
                f"{call.method} {call.path}: the server's TLS certificate is not trusted "
                f"({untrusted.verify_message}); a private CA is trusted with REQUESTS_CA_BUNDLE"
            )
        if isinstance(error, requests.Timeout):
            outcome, text = "timeout", "no answer in time"
        elif isinstance(error, requests.ConnectionError | ChunkedEncodingError):
            outcome, text = "connection", "connection failed or was reset"
        else:
            self._note(call, attempt, started, "error")
            return NetSuiteError(f"{call.method} {call.path}: {type(error).__name__}")
        self._note(call, attempt, started, outcome)
        return NetSuiteTransientError(f"{call.method} {call.path}: {text}")

    def _note(self, call: _Call, attempt: int, started: float, outcome: int | str) -> None:
        self._counters.record(call.kind, outcome)
        milliseconds = (time.perf_counter() - started) * 1000
        LOG.debug(
            "%s %s -> %s in %.1f ms (attempt %d)",
            call.method,
            call.path,
            outcome,
            milliseconds,
            attempt,
        )

    def _wait(self, state: RetryCallState) -> float:
        """Full-jitter exponential backoff, or the server's ``Retry-After`` plus a little jitter."""
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, NetSuiteTransientError) and error.retry_after is not None:
            return min(error.retry_after, self._config.retry_after_limit) + self._jitter(state)
        return self._backoff(state)

    def _note_retry(self, call: _Call, state: RetryCallState) -> None:
        self._counters.record_retry()
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        LOG.warning(
            "%s %s -> %s (attempt %d of %d); retrying in %.3f s",
            call.method,
            call.path,
            _retry_cause(call, error),
            state.attempt_number,
            self._config.max_attempts,
            wait,
        )

    # ------------------------------------------------------------------ helpers

    def _configured_auth(self) -> requests.auth.AuthBase:
        settings = self._config.auth
        if isinstance(settings, TokenAuthConfig):
            return token_auth(settings, realm=self._config.account)
        return ClientCredentialsAuth(settings, self._root + TOKEN_PATH, self._request_token)

    def _request_token(self, form: Mapping[str, str]) -> Mapping[str, Any]:
        # Not retried here: the call it is made for is retried as a whole when that is safe.
        response = self._request(
            "token", "POST", TOKEN_PATH, data=form, retry=False, authenticate=False
        )
        return json_object(response)

    def _suiteql_rows(self, body: Mapping[str, Any], page_size: int) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self._suiteql_page(body, page_size, offset)
            yield from (_lower_keys(row) for row in page.get("items", ()))
            if not page.get("hasMore"):
                return
            offset += page_size

    def _suiteql_page(self, body: Mapping[str, Any], limit: int, offset: int) -> dict[str, Any]:
        response = self._request(
            "suiteql",
            "POST",
            SUITEQL,
            params={"limit": str(limit), "offset": str(offset)},
            json=body,
            headers=SUITEQL_HEADERS,
            retry=True,
        )
        return json_object(response)


def _retry_cause(call: _Call, error: BaseException | None) -> str:
    """What failed, for a retry line: the status and NetSuite's error code ("429
    CONCURRENCY_LIMIT_EXCEEDED"), or why no answer came ("no answer in time",
    "connection failed or was reset"); never NetSuite's free-text detail."""
    status = getattr(error, "status", None)
    if status:
        code = getattr(error, "code", None)
        return f"{status} {code}" if code else str(status)
    if error is None:
        return "no answer"
    return str(error).removeprefix(f"{call.method} {call.path}: ")


def _certificate_failure(error: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind ``error`` (requests wraps urllib3's
    error, which wraps the ssl module's), if that is what it was."""
    pending: list[object] = [error]
    for _ in range(20):
        if not pending:
            return None
        current = pending.pop()
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        if isinstance(current, BaseException):
            reason = getattr(current, "reason", None)
            pending.extend([*current.args, reason, current.__cause__, current.__context__])
    return None


def checked_external_id(external_id: str) -> str:
    """NetSuite external ids in URLs: letters, digits, ``_`` and ``-`` only."""
    if not EXTERNAL_ID.fullmatch(external_id):
        raise ValueError(f"external id {external_id!r}: letters, digits, '_' and '-' only")
    return external_id


def event_path(ref: str) -> str:
    """The event's URL path from an internal id (``647``) or ``eid:<external id>``."""
    if not EVENT_REF.fullmatch(ref):
        raise ValueError(f"event reference {ref!r}: an internal id or eid:<external id>")
    return f"{EVENTS}/{ref}"


def _replace_params(replace: Sequence[str]) -> dict[str, str] | None:
    return {"replace": ",".join(replace)} if replace else None


def _lower_keys(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key.lower(): value for key, value in row.items() if key != "links"}


def _pooled_session(concurrency: int, root_url: str) -> requests.Session:
    session = requests.Session()
    # The environment (proxy variables, CA bundle) is read once for the one host used, not on
    # every call; this also keeps a ~/.netrc from adding credentials to the token request.
    environment = session.merge_environment_settings(root_url, {}, None, None, None)
    session.trust_env = False
    session.proxies.update(environment["proxies"])
    session.verify = environment["verify"]
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=concurrency, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers.update({"Accept": JSON, "User-Agent": USER_AGENT})
    return session

"""What the emulator answers: faults, governance, authentication, then the REST resources.

Transport-free: it takes a parsed ``Request`` and gives an ``Answer``; ``server.py`` does HTTP.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, unquote

from mailbot.sim.netsuite import suiteql
from mailbot.sim.netsuite.data import (
    CREDENTIAL_KEYS,
    custom_event_fields,
    integration_user,
    oauth2_clients,
)
from mailbot.sim.netsuite.errors import (
    ApiError,
    LoginRefusedError,
    OAuthError,
    concurrency_limit_exceeded,
    invalid_content,
    invalid_login,
    invalid_request,
    nonexistent_id,
    unexpected_error,
)
from mailbot.sim.netsuite.events import (
    VALIDATION_MODES,
    CalendarEvents,
    View,
    WriteOptions,
    parse_external_id,
)
from mailbot.sim.netsuite.faults import (
    ConcurrencyGate,
    FaultInjector,
    LoggedRequest,
    RequestLog,
)
from mailbot.sim.netsuite.oauth2 import OAuth2Server
from mailbot.sim.netsuite.schema import calendar_event_fields, json_schema, record_types
from mailbot.sim.netsuite.store import Store
from mailbot.sim.netsuite.tba import TokenCredentials, TokenVerifier

REST_ROOT = "/services/rest"
RECORD_ROOT = REST_ROOT + "/record/v1"
CATALOG_ROOT = RECORD_ROOT + "/metadata-catalog"
TOKEN_PATH = REST_ROOT + "/auth/oauth2/v1/token"
SUITEQL_PATH = REST_ROOT + "/query/v1/suiteql"
GOVERNANCE_PATH = REST_ROOT + "/system/v1/governanceLimits"
SINGULAR = "application/vnd.oracle.resource+json; type=singular"
COLLECTION = "application/vnd.oracle.resource+json; type=collection"
ERROR_CONTENT_TYPE = "application/vnd.oracle.resource+json; type=error"
ENTITY_TYPES = ("employee", "customer", "contact")
EXTERNAL_ID_QUERY = re.compile(r'^\s*externalId\s+IS\s+"([^"]*)"\s*$', re.IGNORECASE)
ENTITY_FIELDS = {
    "entityid": "entityId",
    "firstname": "firstName",
    "lastname": "lastName",
    "email": "email",
    "altemail": "altEmail",
    "companyname": "companyName",
    "phone": "phone",
    "title": "title",
    "searchstage": "searchStage",
}

logger = logging.getLogger("mailbot.sim.netsuite")


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # as received, still percent-encoded
    query: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    host: str  # the Host header: what the client believes the server is called

    @property
    def base_url(self) -> str:
        return f"http://{self.host}"

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param(self, name: str) -> str | None:
        found = [
            value for key, value in parse_qsl(self.query, keep_blank_values=True) if key == name
        ]
        return found[-1] if found else None

    def flag(self, name: str) -> bool:
        return (self.param(name) or "").lower() == "true"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int | None  # None: close the connection without answering
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    error_code: str | None = None
    fault: str | None = None
    audit: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    recurrence_fields: bool = False
    concurrency_limit: int = 5
    token_lifetime_s: float = 3600.0


class NetSuiteService:
    """One NetSuite account: its records, credentials, governance and injected faults."""

    def __init__(
        self, data: dict[str, Any], settings: Settings, clock: Callable[[], float]
    ) -> None:
        self.settings = settings
        self.clock = clock  # also the time of the answers' Date header
        self.custom_fields = custom_event_fields(data)
        self.store = Store()
        self.store.seed(data)
        credentials = data["credentials"]
        self.tba = TokenVerifier(
            TokenCredentials(**{key: credentials[key] for key in CREDENTIAL_KEYS}), clock
        )
        self.oauth2 = OAuth2Server(clock, settings.token_lifetime_s)
        for client in oauth2_clients(data):
            pem = client.get("certificate_pem") or client["public_key_pem"]
            self.oauth2.register(client["client_id"], client["certificate_id"], pem.encode())
        self.events = CalendarEvents(
            self.store,
            calendar_event_fields(settings.recurrence_fields, self.custom_fields),
            clock,
            integration_user(data),
            str(data.get("timezone", "America/Los_Angeles")),
        )
        self.faults = FaultInjector()
        self.gate = ConcurrencyGate(settings.concurrency_limit)
        self.log = RequestLog()

    def respond(self, request: Request) -> Answer:
        decision = self.faults.decide()
        if decision.reset:
            return Answer(None, fault="reset")
        if decision.burst_429:
            return _error(concurrency_limit_exceeded(decision.retry_after_seconds), "burst_429")
        if not self.gate.try_enter():
            return _error(concurrency_limit_exceeded(decision.retry_after_seconds), "concurrency")
        try:
            if decision.latency_s:
                time.sleep(decision.latency_s)
            if decision.error_status is not None:
                return _error(
                    _injected(decision.error_status, decision.retry_after_seconds), "error"
                )
            answer = self._answer(request)
            if decision.stall_s:  # carried out, but the answer comes after the client gave up
                time.sleep(decision.stall_s)
                return replace(answer, fault="stall")
            return answer
        finally:
            self.gate.leave()

    def record(self, request: Request, answer: Answer, duration_ms: float) -> None:
        """The request log entry and one log line: never a credential, signature or token."""
        entry = LoggedRequest(
            method=request.method,
            path=request.target,
            status=answer.status,
            duration_ms=round(duration_ms, 3),
            auth_scheme=auth_scheme(request),
            body_bytes=len(request.body),
            error_code=answer.error_code,
            fault=answer.fault,
            audit=answer.audit,
        )
        self.log.append(entry)
        logger.info(
            "%s %s %s %.1fms auth=%s body=%dB%s",
            entry.method,
            entry.path,
            entry.status or "reset",
            entry.duration_ms,
            entry.auth_scheme or "-",
            entry.body_bytes,
            f" {entry.error_code}" if entry.error_code else "",
        )

    # Dispatch

    def _answer(self, request: Request) -> Answer:
        try:
            return self._route(request)
        except ApiError as error:
            return _error(error)
        except LoginRefusedError as failure:
            return _error(invalid_login(), audit=failure.reason)
        except OAuthError as error:
            return _json(
                error.status,
                {"error": error.error},
                "application/json",
                error_code=error.error,
                audit=error.reason,
            )
        except Exception:  # a bug must not stop the server: answer as NetSuite does
            logger.exception("unexpected error answering %s %s", request.method, request.path)
            return _error(unexpected_error())

    def _route(self, request: Request) -> Answer:
        path = request.path
        if path == TOKEN_PATH:
            _allow(request, "POST")
            return self._token(request)
        if not path.startswith(REST_ROOT + "/"):
            raise ApiError(
                404,
                "INVALID_REQUEST",
                "The requested URL does not exist.",
                where={"o:errorUrl": path},
            )
        self._authenticate(request)
        if path == SUITEQL_PATH:
            _allow(request, "POST")
            return self._suiteql(request)
        if path == GOVERNANCE_PATH:
            _allow(request, "GET")
            return self._governance()
        if path == CATALOG_ROOT or path.startswith(CATALOG_ROOT + "/"):
            _allow(request, "GET")
            return self._catalog(request, _segments(path, CATALOG_ROOT))
        if path.startswith(RECORD_ROOT + "/"):
            return self._record(request, _segments(path, RECORD_ROOT))
        raise invalid_request("The requested URL does not exist.", errorUrl=path)

    def _authenticate(self, request: Request) -> None:
        header = request.header("Authorization")
        scheme = auth_scheme(request)
        if header is None:
            raise LoginRefusedError("MissingCredentials")
        if scheme == "OAuth":
            base_uri = request.base_url.lower().removesuffix(":80") + request.path
            self.tba.verify(request.method, base_uri, request.query, header)
        elif scheme == "Bearer":
            self.oauth2.verify_bearer(header.partition(" ")[2].strip())
        else:
            raise LoginRefusedError("UnsupportedScheme")

    # OAuth 2.0, SuiteQL, governance, metadata

    def _token(self, request: Request) -> Answer:
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise OAuthError(400, "invalid_request", "NotFormEncoded")
        try:
            form = dict(parse_qsl(request.body.decode("ascii"), keep_blank_values=True))
        except UnicodeDecodeError as error:
            raise OAuthError(400, "invalid_request", "NotFormEncoded") from error
        token = self.oauth2.issue_token(form, request.base_url + TOKEN_PATH)
        return _json(200, token, "application/json", extra=(("Cache-Control", "no-store"),))

    def _suiteql(self, request: Request) -> Answer:
        prefer = [part.strip().lower() for part in (request.header("Prefer") or "").split(",")]
        if "transient" not in prefer:
            raise invalid_request(
                "SuiteQL requests need the header 'Prefer: transient'.", errorHeader="Prefer"
            )
        limit, offset = suiteql.page_bounds(request.param("limit"), request.param("offset"))
        page = suiteql.run_query(
            self.store.query,
            _json_body(request),
            limit,
            offset,
            request.base_url + SUITEQL_PATH,
        )
        return _json(200, page, COLLECTION)

    def _governance(self) -> Answer:
        limit = self.gate.limit
        return _json(
            200,
            {
                "accountConcurrencyLimit": limit,
                "accountUnallocatedConcurrencyLimit": limit,
                "integrationConcurrencyLimit": limit,
                "integrationLimitType": "accountLimit",
            },
            SINGULAR,
        )

    def _catalog(self, request: Request, parts: list[str]) -> Answer:
        catalog_url = request.base_url + CATALOG_ROOT
        if not parts:
            items = [_catalog_item(catalog_url, name) for name in record_types()]
            return _json(
                200, {"items": items, "links": [{"rel": "self", "href": catalog_url}]}, COLLECTION
            )
        names = {name.lower(): name for name in record_types()}
        record_type = names.get(parts[0].lower())
        if record_type is None or len(parts) > 1:
            raise invalid_request(f"Unknown record type '{parts[0]}'.", errorUrl=request.path)
        schema = json_schema(record_type, self.settings.recurrence_fields, self.custom_fields)
        if "application/swagger+json" in (request.header("Accept") or ""):
            document = {
                "openapi": "3.0.1",
                "info": {"title": "NetSuite REST Record API", "version": "v1"},
                "components": {"schemas": {record_type: schema}},
            }
            return _json(200, document, "application/swagger+json")
        return _json(200, schema, "application/schema+json")

    # Records

    def _record(self, request: Request, parts: list[str]) -> Answer:
        record_type = parts[0].lower() if parts else ""
        if record_type == "calendarevent":
            return self._calendar_event(request, parts[1:])
        if record_type in ENTITY_TYPES and len(parts) == 2:
            _allow(request, "GET")
            return self._entity(request, record_type, unquote(parts[1]))
        raise invalid_request(
            f"Unsupported record type or URL: {request.path}.", errorUrl=request.path
        )

    def _calendar_event(self, request: Request, parts: list[str]) -> Answer:
        if "respond-async" in (request.header("Prefer") or ""):
            raise invalid_request("Asynchronous requests are not emulated.", errorHeader="Prefer")
        if not parts:
            _allow(request, "GET", "POST")
            return self._list_events(request) if request.method == "GET" else self._create(request)
        id_text = unquote(parts[0])
        if parts[1:] == ["attendee"]:
            _allow(request, "GET")
            event = self.events.find(id_text)
            return _json(200, self.events.render_attendees(event, _view(request)), COLLECTION)
        if len(parts) != 1:
            raise invalid_request(f"Unsupported URL: {request.path}.", errorUrl=request.path)
        return self._calendar_event_item(request, id_text)

    def _calendar_event_item(self, request: Request, id_text: str) -> Answer:
        _allow(request, "GET", "PUT", "PATCH", "DELETE")
        if request.method == "GET":
            event = self.events.find(id_text)
            return _json(200, self.events.render(event, _view(request)), SINGULAR)
        if request.method == "DELETE":
            self.events.delete(id_text)
            return Answer(204)
        if request.method == "PUT":
            return self._upsert(request, id_text)
        event_id, warnings = self.events.patch(id_text, _json_object(request), _options(request))
        return _written(request, event_id, warnings)

    def _create(self, request: Request) -> Answer:
        event_id, warnings = self.events.create(_json_object(request), _options(request))
        return _written(request, event_id, warnings)

    def _upsert(self, request: Request, id_text: str) -> Answer:
        external_id = parse_external_id(id_text)
        if external_id is None:
            raise invalid_request(
                "PUT (upsert) needs an external ID in the URL: .../calendarEvent/eid:<id>.",
                errorUrl=request.path,
            )
        event_id, warnings = self.events.upsert(
            external_id, _json_object(request), _options(request)
        )
        return _written(request, event_id, warnings)

    def _list_events(self, request: Request) -> Answer:
        limit, offset = suiteql.page_bounds(request.param("limit"), request.param("offset"))
        events = self.store.events()
        query = request.param("q")
        if query is not None:
            match = EXTERNAL_ID_QUERY.match(query)
            if match is None:
                raise invalid_request(
                    'Only q=externalId IS "<id>" is emulated.', errorQueryParam="q"
                )
            events = [e for e in events if e.get("externalId") == match.group(1)]
        url = request.base_url + RECORD_ROOT + "/calendarEvent"
        page = events[offset : offset + limit]
        has_more = offset + limit < len(events)
        return _json(
            200,
            {
                "links": suiteql.page_links(url, limit, offset, len(events), has_more),
                "count": len(page),
                "hasMore": has_more,
                "offset": offset,
                "totalResults": len(events),
                "items": [
                    {"links": [{"rel": "self", "href": f"{url}/{e['id']}"}], "id": e["id"]}
                    for e in page
                ],
            },
            COLLECTION,
        )

    def _entity(self, request: Request, record_type: str, id_text: str) -> Answer:
        if not re.fullmatch(r"-?\d+", id_text) or not self.store.exists(record_type, int(id_text)):
            raise nonexistent_id()
        row = self.store.row(record_type, int(id_text)) or {}
        return _json(200, self._render_entity(request, record_type, row), SINGULAR)

    def _render_entity(
        self, request: Request, record_type: str, row: dict[str, Any]
    ) -> dict[str, Any]:
        root = request.base_url + RECORD_ROOT
        answer: dict[str, Any] = {
            "links": [{"rel": "self", "href": f"{root}/{record_type}/{row['id']}"}],
            "id": str(row["id"]),
        }
        for column, name in ENTITY_FIELDS.items():
            if row.get(column) is not None:
                answer[name] = row[column]
        if "isinactive" in row:
            answer["isInactive"] = row["isinactive"] == "T"
        if row.get("entitystatus") is not None:
            status = str(row["entitystatus"])
            answer["entityStatus"] = {
                "links": [],
                "id": status,
                "refName": self.store.display_value("entitystatus", status),
            }
        if record_type == "contact" and row.get("company") is not None:
            company = int(row["company"])
            answer["company"] = {
                "links": [{"rel": "self", "href": f"{root}/customer/{company}"}],
                "id": str(company),
                "refName": self.store.display_name("customer", company),
            }
        return answer


def auth_scheme(request: Request) -> str | None:
    header = request.header("Authorization")
    if not header:
        return None
    scheme = header.split(" ", 1)[0].lower()
    return {"oauth": "OAuth", "bearer": "Bearer"}.get(scheme, "other")


def _segments(path: str, root: str) -> list[str]:
    return [part for part in path[len(root) :].split("/") if part]


def _allow(request: Request, *methods: str) -> None:
    if request.method not in methods:
        raise ApiError(
            405,
            "INVALID_REQUEST",
            f"{request.method} is not allowed here; use {', '.join(methods)}.",
        )


def _json_body(request: Request) -> Any:
    try:
        return json.loads(request.body.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise invalid_content("The request body is not UTF-8 text.") from error
    except json.JSONDecodeError as error:
        raise invalid_content(f"The request body is not valid JSON: {error.msg}.") from error


def _json_object(request: Request) -> dict[str, Any]:
    body = _json_body(request)
    if not isinstance(body, dict):
        raise invalid_content("The request body must be a JSON object.")
    return body


def _options(request: Request) -> WriteOptions:
    modes = []
    for header, default in (
        ("X-NetSuite-PropertyNameValidation", "warning"),
        ("X-NetSuite-PropertyValueValidation", "error"),
    ):
        mode = (request.header(header) or default).strip().lower()
        if mode not in VALIDATION_MODES:
            raise invalid_request(f"{header} must be Error, Warning or Ignore.", errorHeader=header)
        modes.append(mode)
    replace = frozenset(p.strip() for p in (request.param("replace") or "").split(",") if p.strip())
    return WriteOptions(modes[0], modes[1], replace, request.flag("replaceSelectedFields"))


def _view(request: Request) -> View:
    fields = request.param("fields")
    return View(
        request.base_url + RECORD_ROOT,
        expand_sub_resources=request.flag("expandSubResources"),
        simple_enum_format=request.flag("simpleEnumFormat"),
        fields=frozenset(f.strip() for f in fields.split(",")) if fields else None,
    )


def _written(request: Request, event_id: int, warnings: list[str]) -> Answer:
    location = f"{request.base_url}{RECORD_ROOT}/calendarEvent/{event_id}"
    headers = [("Location", location)]
    headers += [("Warning", f'299 - "{_header_text(w)}"') for w in warnings]
    return Answer(204, headers=tuple(headers))


def _header_text(text: str) -> str:
    return "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "?" for c in text)


def _catalog_item(catalog_url: str, name: str) -> dict[str, Any]:
    href = f"{catalog_url}/{name}"
    return {
        "name": name,
        "links": [
            {"rel": "canonical", "href": href, "mediaType": "application/json"},
            {"rel": "alternate", "href": href, "mediaType": "application/swagger+json"},
            {"rel": "describedby", "href": href, "mediaType": "application/schema+json"},
        ],
    }


def _injected(status: int, retry_after_seconds: float | None) -> ApiError:
    if status == 429:
        return concurrency_limit_exceeded(retry_after_seconds)
    return unexpected_error(status)


def _error(error: ApiError, fault: str | None = None, audit: str | None = None) -> Answer:
    return _json(
        error.status,
        error.body(),
        ERROR_CONTENT_TYPE,
        extra=tuple(error.headers.items()),
        error_code=error.code,
        fault=fault,
        audit=audit,
    )


def _json(
    status: int,
    payload: Any,
    content_type: str,
    *,
    extra: tuple[tuple[str, str], ...] = (),
    error_code: str | None = None,
    fault: str | None = None,
    audit: str | None = None,
) -> Answer:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    headers = (("Content-Type", content_type), *extra)
    return Answer(status, body, headers, error_code=error_code, fault=fault, audit=audit)

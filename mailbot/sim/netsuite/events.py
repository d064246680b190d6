"""calendarEvent writes and reads: validation, merging, defaults and NetSuite's JSON shapes.

Stored form (``NetSuiteEmulator.records("calendarEvent")``): enum values as bare IDs,
references as ``{"id": "5"}``, the attendee sublist as ``{"items": [...]}``.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from mailbot.sim.netsuite.errors import ApiError, invalid_content, invalid_request, nonexistent_id
from mailbot.sim.netsuite.schema import (
    ANY,
    BOOLEAN,
    CONTACT,
    CUSTOMER,
    DATE,
    DATETIME,
    ECHOED_PROPERTIES,
    EMPLOYEE,
    ENTITY,
    ENUM,
    INTEGER,
    MINUTES,
    NOTHING,
    OPAQUE,
    OPPORTUNITY,
    REF,
    STRING,
    SUBLIST,
    SUBLIST_FIELDS,
    SUBLIST_KEYS,
    TIME,
    Field,
)
from mailbot.sim.netsuite.store import Store

EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_-]+$")
INTERNAL_ID = re.compile(r"^-?\d+$")
CLOCK_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
VALIDATION_MODES = ("error", "warning", "ignore")
CREATE_DEFAULTS = {
    "status": "CONFIRMED",
    "accessLevel": "PUBLIC",
    "allDayEvent": False,
    "timedEvent": True,
}
ATTENDEE_DEFAULTS = {"response": "NO_RESPONSE", "attendance": "REQUIRED"}
TABLE_OF_TARGET = {
    EMPLOYEE: "employee",
    CUSTOMER: "customer",
    CONTACT: "contact",
    OPPORTUNITY: "transaction",
}
SKIP = object()


@dataclass(frozen=True, slots=True)
class WriteOptions:
    """The validation headers and replace parameters of one write (netsuite-rest.md s. 3c, 4)."""

    name_validation: str = "warning"  # X-NetSuite-PropertyNameValidation
    value_validation: str = "error"  # X-NetSuite-PropertyValueValidation
    replace: frozenset[str] = frozenset()
    replace_selected_fields: bool = False


@dataclass(frozen=True, slots=True)
class View:
    """How a GET answer is shaped."""

    record_root: str  # e.g. http://127.0.0.1:8080/services/rest/record/v1
    expand_sub_resources: bool = False
    simple_enum_format: bool = False
    fields: frozenset[str] | None = None


class Problems:
    """Warnings collected during a write; an error under the "Error" validation modes."""

    def __init__(self, options: WriteOptions) -> None:
        self.options = options
        self.warnings: list[str] = []

    def unknown_property(self, path: str) -> None:
        detail = f"Unknown property '{path}' in the request body."
        if self.options.name_validation == "error":
            raise invalid_content(detail, path)
        if self.options.name_validation == "warning":
            self.warnings.append(detail + " It was ignored.")

    def bad_value(self, detail: str, path: str) -> object:
        if self.options.value_validation == "error":
            raise invalid_content(detail, path)
        if self.options.value_validation == "warning":
            self.warnings.append(detail + " The value was ignored.")
        return SKIP

    def note(self, detail: str) -> None:
        self.warnings.append(detail)


class CalendarEvents:
    """The calendarEvent record type of one account."""

    def __init__(
        self,
        store: Store,
        fields: dict[str, Field],
        clock: Callable[[], float],
        owner_id: int | None,
        timezone: str,
    ) -> None:
        self._store = store
        self._fields = fields
        self._clock = clock
        self._owner_id = owner_id
        self._timezone = timezone
        self._write_lock = threading.Lock()

    # Reads

    def find(self, id_text: str) -> dict[str, Any]:
        """The stored event named by an internal ID or ``eid:<externalId>``; 404 otherwise."""
        external_id = parse_external_id(id_text)
        if external_id is not None:
            found = self._store.event_by_external_id(external_id)
        elif INTERNAL_ID.match(id_text):
            found = self._store.event(int(id_text))
        else:
            raise invalid_request(f"Invalid record ID '{id_text}'.", errorUrl=id_text)
        if found is None:
            raise nonexistent_id()
        return found

    def render(self, event: dict[str, Any], view: View) -> dict[str, Any]:
        self_link = f"{view.record_root}/calendarEvent/{event['id']}"
        answer: dict[str, Any] = {"links": [{"rel": "self", "href": self_link}]}
        for name, spec in self._fields.items():
            if view.fields is not None and name not in view.fields and name != "id":
                continue
            if spec.kind == SUBLIST and name == "attendee":
                answer[name] = self._render_attendees(event, view, self_link)
            elif name in event:
                answer[name] = self._render_value(spec, event[name], view)
        return answer

    def render_attendees(self, event: dict[str, Any], view: View) -> dict[str, Any]:
        self_link = f"{view.record_root}/calendarEvent/{event['id']}"
        expanded = View(view.record_root, True, view.simple_enum_format)
        return self._render_attendees(event, expanded, self_link)

    # Writes: each one reads and saves under one lock, so concurrent writes do not interleave

    def create(self, body: dict[str, Any], options: WriteOptions) -> tuple[int, list[str]]:
        with self._write_lock:
            return self._create(body, options)

    def patch(
        self, id_text: str, body: dict[str, Any], options: WriteOptions
    ) -> tuple[int, list[str]]:
        """PATCH: the internal ID of the changed event and the warnings of the write."""
        with self._write_lock:
            current = self.find(id_text)
            return int(current["id"]), self._update(current, body, options)

    def upsert(
        self, external_id: str, body: dict[str, Any], options: WriteOptions
    ) -> tuple[int, list[str]]:
        """PUT eid:X: creates the event, or updates the one with that external ID."""
        if body.get("externalId") not in (None, external_id):
            raise invalid_content(
                "The externalId in the body differs from the one in the URL.", "externalId"
            )
        body = {**body, "externalId": external_id}
        with self._write_lock:
            current = self._store.event_by_external_id(external_id)
            if current is None:
                return self._create(body, options)
            return int(current["id"]), self._update(current, body, options)

    def delete(self, id_text: str) -> None:
        with self._write_lock:
            event = self.find(id_text)
            self._store.delete_event(int(event["id"]))

    def _create(self, body: dict[str, Any], options: WriteOptions) -> tuple[int, list[str]]:
        problems = Problems(options)
        changes = self._changes(body, problems)
        self._check_external_id(changes.get("externalId"), None)
        event = self._new_event(changes, options)
        return self._save(event), problems.warnings

    def _update(
        self, current: dict[str, Any], body: dict[str, Any], options: WriteOptions
    ) -> list[str]:
        problems = Problems(options)
        self._check_replace(options)
        changes = self._changes(body, problems)
        self._check_external_id(changes.get("externalId"), int(current["id"]))
        event = apply_changes(current, changes, options, self._fields)
        finish_attendees(event)
        self._save(event)
        return problems.warnings

    # Internals: parsing a body

    def _changes(self, body: dict[str, Any], problems: Problems) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for name, value in body.items():
            spec = self._fields.get(name)
            if name in ECHOED_PROPERTIES:
                continue
            if spec is None:
                problems.unknown_property(name)
            elif spec.read_only:
                if name != "id":
                    problems.note(f"Read-only property '{name}' was ignored.")
            elif value is None:
                changes[name] = None
            else:
                parsed = self._parse(spec, value, name, problems)
                if parsed is not SKIP:
                    changes[name] = parsed
        return changes

    def _parse(self, spec: Field, value: Any, path: str, problems: Problems) -> Any:
        if spec.kind == SUBLIST:
            return self._parse_sublist(spec.name, value, path, problems)
        if spec.kind == ENUM:
            return _parse_enum(spec, value, path, problems)
        if spec.kind == REF:
            return self._parse_reference(spec, value, path, problems)
        return _parse_scalar(spec, value, path, problems)

    def _parse_reference(self, spec: Field, value: Any, path: str, problems: Problems) -> Any:
        raw_id = value.get("id") if isinstance(value, dict) else None
        if isinstance(raw_id, int) and not isinstance(raw_id, bool):
            raw_id = str(raw_id)
        if not isinstance(raw_id, str) or not INTERNAL_ID.match(raw_id):
            return problems.bad_value(f"A reference needs an internal ID: {path}.", path)
        if not self._reference_exists(spec.target, int(raw_id)):
            detail = f"Invalid reference {raw_id} for the field {path}: no such record."
            return problems.bad_value(detail, path)
        return {"id": raw_id}

    def _reference_exists(self, target: str, record_id: int) -> bool:
        if target == OPAQUE:
            return True
        if target == NOTHING:
            return False
        if target == ENTITY:
            return self._store.entity_kind(record_id) is not None
        return self._store.exists(TABLE_OF_TARGET[target], record_id)

    def _parse_sublist(self, name: str, value: Any, path: str, problems: Problems) -> Any:
        if not isinstance(value, dict) or "items" not in value:
            return problems.bad_value(f"The sublist {path} must be an object with items.", path)
        items = value["items"]
        if items is None:
            return {"items": None}
        if not isinstance(items, list):
            return problems.bad_value(f"{path}.items must be a list.", f"{path}.items")
        parsed, keys = [], set()
        for index, item in enumerate(items):
            where = f"{path}.items[{index}]"
            element = self._parse_element(name, item, where, problems)
            if element is SKIP:
                continue
            key = element[SUBLIST_KEYS[name]]["id"]
            if key in keys:
                raise invalid_content(f"The same record is listed twice in {path}.", where)
            keys.add(key)
            parsed.append(element)
        return {"items": parsed}

    def _parse_element(self, name: str, item: Any, where: str, problems: Problems) -> Any:
        if not isinstance(item, dict):
            return problems.bad_value(f"{where} must be an object.", where)
        specs = {spec.name: spec for spec in SUBLIST_FIELDS[name]}
        element: dict[str, Any] = {}
        for key, value in item.items():
            spec = specs.get(key)
            if key in ECHOED_PROPERTIES:
                continue
            if spec is None:
                problems.unknown_property(f"{where}.{key}")
                continue
            parsed = (
                self._parse(spec, value, f"{where}.{key}", problems) if value is not None else SKIP
            )
            if parsed is not SKIP:
                element[key] = parsed
        key_field = SUBLIST_KEYS[name]
        if key_field in element:
            return element
        if item.get(key_field) is not None:  # invalid, and already reported as a warning
            return SKIP
        detail = f"Please enter value(s) for: {key_field} ({where})."
        raise invalid_content(detail, f"{where}.{key_field}")

    # Internals: new and saved events

    def _check_required(self, event: dict[str, Any]) -> None:
        """A field the account requires (a custom one, say) must have a value once saved."""
        for name, spec in self._fields.items():
            if spec.required and event.get(name) in (None, ""):
                raise ApiError(
                    400,
                    "INVALID_CONTENT",
                    f"Please enter value(s) for: {spec.label}",
                    where={"o:errorPath": name},
                )

    def _new_event(self, changes: dict[str, Any], options: WriteOptions) -> dict[str, Any]:
        event: dict[str, Any] = dict(CREATE_DEFAULTS)
        if self._owner_id is not None:
            event["owner"] = {"id": str(self._owner_id)}
        event["timezone"] = self._timezone
        event = apply_changes(event, changes, options, self._fields)
        organizer = event.get("organizer")
        if organizer is not None:
            add_organizer(event, organizer["id"])
        finish_attendees(event)
        return event

    def _save(self, event: dict[str, Any]) -> int:
        check_event(event)
        self._check_required(event)
        now = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        def build(event_id: int) -> dict[str, Any]:
            stored = {"id": str(event_id), **{k: v for k, v in event.items() if k != "id"}}
            stored.setdefault("createdDate", now)
            stored["lastModifiedDate"] = now
            return stored

        return self._store.save_event(event, build)

    def _check_external_id(self, external_id: Any, event_id: int | None) -> None:
        if isinstance(external_id, str) and self._store.external_id_taken(external_id, event_id):
            raise invalid_content(
                f"A calendarEvent with the external ID {external_id} already exists.",
                "externalId",
            )

    def _check_replace(self, options: WriteOptions) -> None:
        unknown = sorted(options.replace - self._fields.keys())
        if unknown:
            raise invalid_request(
                f"Unknown field in replace: {', '.join(unknown)}.", errorQueryParam="replace"
            )

    # Internals: rendering

    def _render_value(self, spec: Field, value: Any, view: View) -> Any:
        if spec.kind == ENUM:
            return value if view.simple_enum_format else {"id": value, "refName": spec.enum[value]}
        if spec.kind == REF:
            return self._render_reference(spec.target, value["id"], view)
        if spec.kind == SUBLIST:
            return {"items": copy.deepcopy(value.get("items", []))}
        return value

    def _render_reference(self, target: str, record_id: str, view: View) -> dict[str, Any]:
        if target == ENTITY:
            kind = self._store.entity_kind(int(record_id)) or "entity"
            table, record_type = kind, kind
        elif target in TABLE_OF_TARGET:
            table, record_type = TABLE_OF_TARGET[target], target
        else:
            return {"id": record_id}
        href = f"{view.record_root}/{record_type}/{record_id}"
        return {
            "links": [{"rel": "self", "href": href}],
            "id": record_id,
            "refName": self._store.display_name(table, int(record_id)),
        }

    def _render_attendees(
        self, event: dict[str, Any], view: View, self_link: str
    ) -> dict[str, Any]:
        links = [{"rel": "self", "href": f"{self_link}/attendee"}]
        if not view.expand_sub_resources:
            return {"links": links}
        specs = {spec.name: spec for spec in SUBLIST_FIELDS["attendee"]}
        items = [
            {"links": [], **{k: self._render_value(specs[k], v, view) for k, v in item.items()}}
            for item in event.get("attendee", {}).get("items", [])
        ]
        return {
            "links": links,
            "items": items,
            "totalResults": len(items),
            "count": len(items),
            "hasMore": False,
            "offset": 0,
        }


def parse_external_id(id_text: str) -> str | None:
    """The X of ``eid:X`` (400 when X holds characters NetSuite does not allow), else None."""
    if not id_text.startswith("eid:"):
        return None
    external_id = id_text[4:]
    if not EXTERNAL_ID.match(external_id):
        raise invalid_request(
            "An external ID may hold only letters, digits, '_' and '-'.", errorUrl=id_text
        )
    return external_id


def apply_changes(
    current: dict[str, Any],
    changes: dict[str, Any],
    options: WriteOptions,
    fields: dict[str, Field],
) -> dict[str, Any]:
    """PATCH semantics: given fields change, null clears, sublists merge unless replaced."""
    event = copy.deepcopy(current)
    for name, value in changes.items():
        if fields[name].kind == SUBLIST:
            items = merge_items(
                event.get(name, {}).get("items", []),
                value,
                SUBLIST_KEYS[name],
                replace=name in options.replace,
            )
            _set_or_clear(event, name, {"items": items} if items else None)
        else:
            _set_or_clear(event, name, value)
    if options.replace_selected_fields:
        for name in options.replace - changes.keys():
            event.pop(name, None)
    return event


def merge_items(
    current: list[dict[str, Any]], change: dict[str, Any] | None, key: str, *, replace: bool
) -> list[dict[str, Any]]:
    """Keyed merge of a sublist: an item with a known key updates it, a new key is appended."""
    if change is None or change["items"] is None:
        return []
    if replace:
        return copy.deepcopy(change["items"])
    merged = copy.deepcopy(current)
    by_key = {item[key]["id"]: item for item in merged}
    for item in change["items"]:
        existing = by_key.get(item[key]["id"])
        if existing is None:
            merged.append(copy.deepcopy(item))
        else:
            existing.update(copy.deepcopy(item))
    return merged


def add_organizer(event: dict[str, Any], organizer_id: str) -> None:
    """A new event's organizer is an accepted attendee (NSH section_N501988)."""
    items = event.setdefault("attendee", {"items": []})["items"]
    if all(item["attendee"]["id"] != organizer_id for item in items):
        items.insert(
            0, {"attendee": {"id": organizer_id}, "response": "ACCEPTED", "attendance": "REQUIRED"}
        )


def finish_attendees(event: dict[str, Any]) -> None:
    for item in event.get("attendee", {}).get("items", []):
        for name, default in ATTENDEE_DEFAULTS.items():
            item.setdefault(name, default)


def check_event(event: dict[str, Any]) -> None:
    """Rules that hold for every saved event, whatever the validation headers say."""
    if not event.get("title"):
        raise ApiError(
            400,
            "INVALID_CONTENT",
            "Please enter value(s) for: Event Title",
            where={"o:errorPath": "title"},
        )
    start, end = event.get("startTime"), event.get("endTime")
    if not event.get("allDayEvent") and start and end and end < start:
        raise invalid_content(
            "The end time must not be before the start time: an event that is not recurring "
            "cannot extend past midnight.",
            "endTime",
        )


def _parse_enum(spec: Field, value: Any, path: str, problems: Problems) -> Any:
    candidate: Any = value
    if isinstance(value, dict):
        if "id" in value:
            candidate = value["id"]
        elif "refName" in value:
            by_name = {label: key for key, label in spec.enum.items()}
            candidate = by_name.get(value["refName"], value["refName"])
    if isinstance(candidate, str) and candidate in spec.enum:
        return candidate
    valid = ", ".join(spec.enum)
    return problems.bad_value(f"{_invalid_value(value, path)} Valid values: {valid}.", path)


def _parse_scalar(spec: Field, value: Any, path: str, problems: Problems) -> Any:
    if not _valid_scalar(spec.kind, value):
        return problems.bad_value(_invalid_value(value, path), path)
    if spec.kind == MINUTES:
        return str(int(value))
    if spec.name == "externalId" and not EXTERNAL_ID.match(value):
        return problems.bad_value(
            "An external ID may hold only letters, digits, '_' and '-'.", path
        )
    return value


def _valid_scalar(kind: str, value: Any) -> bool:
    checks: dict[str, Callable[[Any], bool]] = {
        STRING: lambda v: isinstance(v, str),
        DATE: _is_date,
        TIME: lambda v: isinstance(v, str) and CLOCK_TIME.match(v) is not None,
        BOOLEAN: lambda v: isinstance(v, bool),
        INTEGER: lambda v: isinstance(v, int) and not isinstance(v, bool),
        MINUTES: lambda v: (
            (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
            or (isinstance(v, str) and v.isdigit())
        ),
        DATETIME: lambda v: isinstance(v, str),
        ANY: lambda v: True,
    }
    return checks[kind](value)


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _invalid_value(value: Any, path: str) -> str:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    return f"You have entered an invalid field value {shown} for the following field: {path}."


def _set_or_clear(event: dict[str, Any], name: str, value: Any) -> None:
    if value is None:
        event.pop(name, None)
    else:
        event[name] = value

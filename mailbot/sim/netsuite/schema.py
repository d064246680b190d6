"""The calendarEvent record as REST 2026.1 describes it (netsuite-rest.md section 3).

Each field has a kind that drives validation, storage and rendering; the metadata catalog's
JSON schema is built from the same table, so what is accepted and what is advertised agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATUS = {
    "TENTATIVE": "Tentative",
    "CONFIRMED": "Confirmed",
    "COMPLETE": "Completed",
    "CANCELLED": "Canceled",
}
ACCESS_LEVEL = {"PUBLIC": "Public", "PRIVATE": "Private", "SHOW AS BUSY": "Show as Busy"}
OWN_RESPONSE = {
    "ACCEPTED": "Accepted",
    "DECLINED": "Declined",
    "TENTATIVE": "Tentative",
    "NO_RESPONSE": "No Response",
    "ESCALATED": "Escalated",
}
ATTENDEE_RESPONSE = {k: v for k, v in OWN_RESPONSE.items() if k != "ESCALATED"}
ATTENDANCE = {"REQUIRED": "Required", "OPTIONAL": "Optional"}
REMINDER_TYPE = {"POPUP": "Popup Window", "EMAIL": "Email"}

# Kinds of field: how a value is written in a body and how it is kept.
STRING, DATE, TIME, BOOLEAN, INTEGER, MINUTES = (
    "string",
    "date",
    "time",
    "boolean",
    "integer",
    "minutes",
)
ENUM, REF, SUBLIST, DATETIME, ANY = "enum", "ref", "sublist", "datetime", "any"

# Record types a reference can point to; "none" means nothing of that type is stored.
EMPLOYEE, CUSTOMER, CONTACT, OPPORTUNITY, ENTITY, OPAQUE, NOTHING = (
    "employee",
    "customer",
    "contact",
    "opportunity",
    "entity",
    "opaque",
    "none",
)


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: str
    label: str
    enum: dict[str, str] = field(default_factory=dict)
    target: str = ""  # REF: the record type referenced
    read_only: bool = False
    required: bool = False  # a saved event must have a value (listed in the schema's "required")
    custom: bool = False  # a custom field of the account (``custevent...``)


CALENDAR_EVENT_FIELDS: tuple[Field, ...] = (
    Field("id", STRING, "Internal ID", read_only=True),
    Field("externalId", STRING, "External ID"),
    Field("title", STRING, "Event Title", required=True),
    Field("startDate", DATE, "Date"),
    Field("startTime", TIME, "Start Time"),
    Field("endTime", TIME, "End Time"),
    Field("allDayEvent", BOOLEAN, "All Day"),
    Field("timedEvent", BOOLEAN, "Timed Event"),
    Field("status", ENUM, "Status", enum=STATUS),
    Field("accessLevel", ENUM, "Type", enum=ACCESS_LEVEL),
    Field("message", STRING, "Message"),
    Field("location", STRING, "Location"),
    Field("organizer", REF, "Organizer", target=EMPLOYEE),
    Field("owner", REF, "Owner", target=EMPLOYEE, read_only=True),
    Field("company", REF, "Company", target=CUSTOMER),
    Field("contact", REF, "Contact", target=CONTACT),
    Field("transaction", REF, "Transaction", target=OPPORTUNITY),
    Field("supportCase", REF, "Support Case", target=NOTHING),
    Field("relatedItem", REF, "Related Item", target=OPAQUE),
    Field("customForm", REF, "Custom Form", target=OPAQUE),
    Field("timezone", STRING, "Time Zone", read_only=True),
    Field("reminderType", ENUM, "Reminder Type", enum=REMINDER_TYPE),
    Field("reminderMinutes", MINUTES, "Reminder"),
    Field("recurrence", STRING, "Recurrence", read_only=True),
    Field("response", ENUM, "Response", enum=OWN_RESPONSE),
    Field("completedDate", DATE, "Date Completed", read_only=True),
    Field("createdDate", DATETIME, "Date Created", read_only=True),
    Field("lastModifiedDate", DATETIME, "Last Modified Date", read_only=True),
    Field("attendee", SUBLIST, "Attendees"),
    Field("resource", SUBLIST, "Resources"),
)

# SOAP and SuiteScript have these; the REST 2026.1 schema does not (section 3d).
RECURRENCE_FIELDS: tuple[Field, ...] = (
    Field("frequency", STRING, "Frequency"),
    Field("period", INTEGER, "Period"),
    Field("seriesStartDate", DATE, "Series Start Date"),
    Field("endByDate", DATE, "End By"),
    Field("noEndDate", BOOLEAN, "No End Date"),
    Field("recurrenceDow", STRING, "Day of Week"),
    Field("recurrenceDowim", STRING, "Day of Week in Month"),
    Field("recurrenceDowMaskList", ANY, "Days of Week"),
    Field("exclusionDateList", ANY, "Exclusion Dates"),
)

ATTENDEE_FIELDS: tuple[Field, ...] = (
    Field("attendee", REF, "Attendee", target=ENTITY),
    Field("response", ENUM, "Response", enum=ATTENDEE_RESPONSE),
    Field("attendance", ENUM, "Attendance", enum=ATTENDANCE),
)
RESOURCE_FIELDS: tuple[Field, ...] = (Field("resource", REF, "Resource", target=NOTHING),)
SUBLIST_FIELDS = {"attendee": ATTENDEE_FIELDS, "resource": RESOURCE_FIELDS}
SUBLIST_KEYS = {"attendee": "attendee", "resource": "resource"}

# Properties of a GET answer a client may send back unchanged: accepted and ignored.
ECHOED_PROPERTIES = frozenset({"links", "refName"})

ENTITY_SCHEMAS: dict[str, tuple[str, ...]] = {
    "employee": ("id", "entityId", "firstName", "lastName", "email", "isInactive"),
    "customer": (
        "id",
        "entityId",
        "companyName",
        "email",
        "altEmail",
        "entityStatus",
        "searchStage",
        "isInactive",
    ),
    "contact": ("id", "entityId", "firstName", "lastName", "email", "altEmail", "company"),
    "opportunity": ("id", "tranId", "title", "entity", "status", "expectedCloseDate", "tranDate"),
}


# The types a custom event field can have in the data file, and the kind each is kept as.
CUSTOM_FIELD_TYPES = {"string": STRING, "boolean": BOOLEAN, "integer": INTEGER, "date": DATE}


def custom_field(name: str, label: str, field_type: str, *, required: bool) -> Field:
    """A custom field of the account's calendarEvent (``custevent...``), as the data file says."""
    return Field(name, CUSTOM_FIELD_TYPES[field_type], label, required=required, custom=True)


def calendar_event_fields(
    recurrence_fields: bool, custom_fields: tuple[Field, ...] = ()
) -> dict[str, Field]:
    fields = CALENDAR_EVENT_FIELDS + (RECURRENCE_FIELDS if recurrence_fields else ())
    return {spec.name: spec for spec in fields + custom_fields}


def record_types() -> tuple[str, ...]:
    return ("calendarEvent", *ENTITY_SCHEMAS)


def json_schema(
    record_type: str, recurrence_fields: bool, custom_fields: tuple[Field, ...] = ()
) -> dict[str, Any]:
    """The ``application/schema+json`` answer of the metadata catalog for one record type.

    Custom fields carry ``x-ns-custom-field``; the fields a saved event must have are named
    in the JSON Schema ``required`` list.
    """
    required: list[str] = []
    if record_type == "calendarEvent":
        fields = calendar_event_fields(recurrence_fields, custom_fields)
        properties = {name: _property(spec) for name, spec in fields.items()}
        required = [name for name, spec in fields.items() if spec.required]
    else:
        properties = {
            name: {"type": "string", "title": name} for name in ENTITY_SCHEMAS[record_type]
        }
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft-06/schema#",
        "type": "object",
        "title": record_type,
        "properties": properties,
    }
    if required:
        schema["required"] = required
    return schema


def _property(spec: Field) -> dict[str, Any]:
    schema: dict[str, Any] = {"title": spec.label}
    schema.update(_type_of(spec))
    if spec.read_only:
        schema["readOnly"] = True
    if spec.custom:
        schema["x-ns-custom-field"] = True
    if spec.kind != SUBLIST:
        schema["nullable"] = True
    return schema


def _type_of(spec: Field) -> dict[str, Any]:
    simple = {
        STRING: {"type": "string"},
        DATE: {"type": "string", "format": "date"},
        TIME: {"type": "string", "format": "time"},
        DATETIME: {"type": "string", "format": "date-time"},
        BOOLEAN: {"type": "boolean"},
        INTEGER: {"type": "integer"},
        MINUTES: {"type": "string"},
        ANY: {},
    }
    if spec.kind in simple:
        return dict(simple[spec.kind])
    if spec.kind == ENUM:
        return {
            "type": "object",
            "properties": {
                "id": {"type": "string", "enum": list(spec.enum)},
                "refName": {"type": "string"},
            },
        }
    if spec.kind == REF:
        return {
            "type": "object",
            "properties": {"id": {"type": "string"}, "refName": {"type": "string"}},
            "x-ns-referenced-record": spec.target,
        }
    element = {
        name: _property(item) for name, item in ((f.name, f) for f in SUBLIST_FIELDS[spec.name])
    }
    return {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"type": "object", "properties": element}}
        },
    }

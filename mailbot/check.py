"""``mailbot check``: is this configuration ready to run, before the daemon starts?

Each check gives a result of its own (ok, warn or fail) and runs whatever the others found:
an IMAP server that cannot be reached does not keep NetSuite from being asked. Only
configuration problems stop everything, and they are reported all at once (the caller
exits 78). Nothing is changed anywhere: the mailbox is opened read-only (EXAMINE) and
NetSuite is only read (SuiteQL, the metadata catalog).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from enum import StrEnum
from typing import Any

from mailbot.adapters.imap import ImapMailbox, MailboxFacts
from mailbot.adapters.netsuite.client import RECURRENCE_FIELDS, NetSuiteClient
from mailbot.adapters.netsuite.errors import NetSuiteAuthenticationError, NetSuiteError
from mailbot.app import imap_mailbox, netsuite_config
from mailbot.ports import PortError
from mailbot.settings import (
    ConfigurationError,
    MissingSecretsError,
    Settings,
    read_secrets,
    secret_sources,
)

# Token-based authentication refuses a signature whose timestamp is more than five minutes
# from NetSuite's clock; a drift of a minute is worth fixing before it gets there.
SKEW_LIMIT = timedelta(minutes=5)
SKEW_WARNING = timedelta(minutes=1)

# The calendarEvent fields mailbot writes when it creates an event (core/payload.event_body,
# core/matching.with_records, core/series). A field the account requires that is not among
# them makes every create fail; one written only sometimes makes some creates fail.
WRITTEN_ALWAYS = frozenset(
    {
        "externalId",
        "title",
        "startDate",
        "allDayEvent",
        "timedEvent",
        "status",
        "accessLevel",
        "attendee",
    }
)
WRITTEN_SOMETIMES = {
    "startTime": "timed events only",
    "endTime": "timed events only",
    "message": "empty when the invitation has no description",
    "location": "empty when the invitation has no location",
    "organizer": "only when the organizer is an employee",
    "company": "only when a customer matches",
    "contact": "only when a contact matches",
    "transaction": "only when an opportunity is chosen",
}
SERIES_FIELDS = frozenset(
    {
        "frequency",
        "period",
        "seriesStartDate",
        "endByDate",
        "noEndDate",
        "recurrenceDow",
        "recurrenceDowim",
        "recurrenceDowMaskList",
        "exclusionDateList",
    }
)
REPORTED_CAPABILITIES = ("IDLE", "MOVE", "UIDPLUS", "CONDSTORE")
AUTH_QUERY = "SELECT id FROM employee"


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One line of the report: what was checked, how it went, and what was found."""

    name: str
    status: Status
    detail: str


def run_checks(settings: Settings, environ: Mapping[str, str] | None = None) -> list[CheckResult]:
    """Every check, in report order; ``ConfigurationError`` (every problem) before any."""
    client, mailbox = _prepare(settings, environ)
    results = [CheckResult("configuration", Status.OK, settings.source or "(built-in defaults)")]
    results += secret_results(settings, environ)
    with client, mailbox:
        results += imap_results(mailbox)
        mailbox.close()
        results += netsuite_results(client, settings)
    return results


def _prepare(
    settings: Settings, environ: Mapping[str, str] | None
) -> tuple[NetSuiteClient, ImapMailbox]:
    """The NetSuite client and the read-only mailbox, or every reason they cannot be made."""
    problems = []
    if settings.netsuite is None:
        problems.append("[netsuite] account: required")
    if settings.imap is None:
        problems.append("[imap] host, username: required")
    try:
        read_secrets(_secret_names(settings), environ)
    except MissingSecretsError as error:
        problems += error.problems
    source = settings.source or "configuration"
    if problems:
        raise ConfigurationError(source, problems)
    # One attempt per call: a check reports what happens, it does not wait out an outage.
    config = replace(netsuite_config(settings, environ), max_attempts=1)
    try:
        client = NetSuiteClient(config)
    except ValueError as error:  # e.g. the OAuth 2.0 private key is not a PEM key
        raise ConfigurationError(source, [f"netsuite: {error}"]) from error
    return client, imap_mailbox(settings, read_only=True, environ=environ)


def _secret_names(settings: Settings) -> tuple[str, ...]:
    names = settings.netsuite.secret_names if settings.netsuite else ()
    return (*names, *settings.imap.secret_names) if settings.imap else names


def secret_results(settings: Settings, environ: Mapping[str, str] | None) -> list[CheckResult]:
    """Where each secret was found; never its value."""
    sources = secret_sources(_secret_names(settings), environ)
    return [
        CheckResult(f"secret {name}", Status.OK if where else Status.FAIL, where or "missing")
        for name, where in sources.items()
    ]


# --- IMAP --------------------------------------------------------------------------------


def imap_results(mailbox: ImapMailbox) -> list[CheckResult]:
    """Connection (TLS, login), capabilities, the watched folder and the outcome folders."""
    config = mailbox.config
    try:
        mailbox.reconnect()  # connect, TLS, login, EXAMINE: a failure names that step
        facts = mailbox.describe()
    except PortError as error:
        if not mailbox.capabilities:  # not even logged in
            return [CheckResult("imap connection", Status.FAIL, str(error))]
        return [
            _connected(mailbox),
            capability_result(mailbox.capabilities, mailbox),
            CheckResult("imap folder", Status.FAIL, str(error)),
        ]
    folder = (
        f"{config.folder}: {_count(facts.messages, 'message')}, "
        f"UIDVALIDITY {facts.uidvalidity}, opened read-only"
    )
    return [
        _connected(mailbox),
        capability_result(facts.capabilities, mailbox),
        CheckResult("imap folder", Status.OK, folder),
        outcome_folders_result(facts, mailbox),
    ]


def _connected(mailbox: ImapMailbox) -> CheckResult:
    config = mailbox.config
    trust = f"certificate checked against {config.ca_file or 'the system CAs'}"
    security = {
        "implicit": f"implicit TLS, {trust}",
        "starttls": f"STARTTLS, {trust}",
        "none": "no TLS (loopback only)",
    }[config.tls]
    where = f"{config.host}:{config.port} as {config.username}"
    return CheckResult("imap connection", Status.OK, f"logged in to {where}, {security}")


def capability_result(capabilities: frozenset[str], mailbox: ImapMailbox) -> CheckResult:
    """The capabilities mailbot uses, and what it does instead when one is missing."""
    config = mailbox.config
    return capability_finding(
        capabilities,
        poll_interval=config.poll_interval,
        files_with_keywords=config.mark_with_keywords,
    )


def capability_finding(
    capabilities: frozenset[str], *, poll_interval: float, files_with_keywords: bool
) -> CheckResult:
    """IDLE, MOVE, UIDPLUS and CONDSTORE: present or not; a missing one mailbot needs is a
    warning that says how it copes."""
    found = ", ".join(
        f"{name} {'yes' if name in capabilities else 'no'}" for name in REPORTED_CAPABILITIES
    )
    notes = []
    if "IDLE" not in capabilities:
        notes.append(f"no IDLE: will poll every {poll_interval:g} s")
    if "MOVE" not in capabilities and not files_with_keywords:
        fallback = "no MOVE: COPY+EXPUNGE fallback"
        if "UIDPLUS" not in capabilities:
            fallback += " (no UIDPLUS either: filed messages stay in the folder, flagged \\Deleted)"
        notes.append(fallback)
    detail = "; ".join([found, *notes])
    return CheckResult("imap capabilities", Status.WARN if notes else Status.OK, detail)


def outcome_folders_result(facts: MailboxFacts, mailbox: ImapMailbox) -> CheckResult:
    config = mailbox.config
    if config.mark_with_keywords:
        detail = f"none used: messages stay in {config.folder}, marked with keywords"
        return CheckResult("imap outcome folders", Status.OK, detail)
    states = ", ".join(
        f"{name} {'exists' if exists else 'will be created'}"
        for name, exists in facts.outcome_folders.items()
    )
    return CheckResult("imap outcome folders", Status.OK, states)


# --- NetSuite ----------------------------------------------------------------------------


def netsuite_results(client: NetSuiteClient, settings: Settings) -> list[CheckResult]:
    """Authentication, the calendarEvent schema and the clock skew, each on its own."""
    skew_result, skew = clock_result(client)
    results = [auth_result(client, settings, skew)]
    try:
        schema = client.record_schema("calendarEvent")
    except NetSuiteError as error:
        results.append(
            CheckResult("netsuite schema", Status.FAIL, f"cannot read the metadata: {error}")
        )
    else:
        results += schema_findings(schema, settings.recurrence)
    results.append(skew_result)
    return results


def auth_result(client: NetSuiteClient, settings: Settings, skew: timedelta | None) -> CheckResult:
    """One cheap signed request: a SuiteQL query of one row."""
    netsuite = settings.netsuite
    oauth2 = netsuite is not None and netsuite.auth == "oauth2"
    scheme = "OAuth 2.0 client credentials" if oauth2 else "token-based authentication"
    account = netsuite.account if netsuite else "?"
    try:
        next(iter(client.suiteql(AUTH_QUERY, page_size=1)), None)
    except NetSuiteError as error:
        detail = str(error)
        refused = isinstance(error, NetSuiteAuthenticationError)
        if refused and skew is not None and abs(skew) > SKEW_LIMIT:
            detail = (
                detail.rstrip(".") + "; the clocks are more than 5 minutes apart (see clock skew)"
            )
        return CheckResult("netsuite authentication", Status.FAIL, detail)
    return CheckResult(
        "netsuite authentication", Status.OK, f"{scheme} accepted by account {account}"
    )


def clock_result(client: NetSuiteClient) -> tuple[CheckResult, timedelta | None]:
    try:
        skew = client.clock_skew()
    except NetSuiteError as error:
        detail = f"cannot read NetSuite's clock: {error}"
        return CheckResult("clock skew", Status.FAIL, detail), None
    return skew_finding(skew), skew


def skew_finding(skew: timedelta) -> CheckResult:
    """More than 5 minutes fails (signatures are refused), more than 1 minute warns."""
    seconds = round(skew.total_seconds())
    side = "ahead of" if seconds > 0 else "behind"
    text = f"NetSuite's clock is {abs(seconds)} s {side} this machine's"
    if seconds == 0:
        text = "NetSuite's clock and this machine's agree to the second"
    if abs(skew) > SKEW_LIMIT:
        return CheckResult(
            "clock skew",
            Status.FAIL,
            f"{text}: more than 5 minutes, NetSuite refuses the signatures; "
            "set this machine's clock (NTP)",
        )
    if abs(skew) > SKEW_WARNING:
        return CheckResult("clock skew", Status.WARN, f"{text}: within 5 minutes, but check NTP")
    return CheckResult("clock skew", Status.OK, text)


def schema_findings(schema: Mapping[str, Any], recurrence: str) -> list[CheckResult]:
    """What the calendarEvent schema means for mailbot: the recurrence mode "auto" picks
    (or whether the configured one can work), and fields that would make writes fail."""
    properties: Mapping[str, Any] = schema.get("properties") or {}
    has_series = all(name in properties for name in RECURRENCE_FIELDS)
    written = set(WRITTEN_ALWAYS) | set(WRITTEN_SOMETIMES)
    if recurrence == "series" or (recurrence == "auto" and has_series):
        written |= SERIES_FIELDS
    return [
        recurrence_finding(has_series, recurrence),
        fields_finding(properties, list(schema.get("required") or ()), written),
    ]


def recurrence_finding(has_series: bool, recurrence: str) -> CheckResult:
    fields = ", ".join(RECURRENCE_FIELDS)
    if recurrence == "series" and not has_series:
        return CheckResult(
            "netsuite recurrence",
            Status.FAIL,
            f"sync.recurrence = 'series', but calendarEvent has no {fields}: series would be "
            "refused; use 'auto' or 'occurrences'",
        )
    present = f"{fields} present" if has_series else f"no {fields}"
    mode = recurrence
    if recurrence == "auto":
        mode = "series" if has_series else "occurrences"
    meaning = (
        "a recurring invitation becomes one NetSuite series"
        if mode == "series"
        else "each occurrence becomes an event of its own"
    )
    return CheckResult(
        "netsuite recurrence",
        Status.OK,
        f"{present}; sync.recurrence = '{recurrence}' writes {mode}: {meaning}",
    )


def fields_finding(
    properties: Mapping[str, Any], required: Sequence[str], written: set[str]
) -> CheckResult:
    """Required fields mailbot leaves empty fail (every create would), those it fills only
    sometimes warn; fields mailbot writes that the schema lacks fail (names are strict)."""

    def named(name: str) -> str:
        spec = properties.get(name) or {}
        custom = "custom field " if spec.get("x-ns-custom-field") else ""
        title = f" ({spec['title']})" if spec.get("title") else ""
        return f"{custom}{name}{title}"

    never = [name for name in required if name not in written]
    sometimes = [name for name in required if name in WRITTEN_SOMETIMES]
    unknown = sorted(name for name in written if name not in properties)
    problems = []
    if never:
        problems.append(
            "required but never set by mailbot, every new event would be refused: "
            + ", ".join(named(name) for name in never)
        )
    if unknown:
        problems.append(
            "written by mailbot but not in the schema, writes would be refused: "
            + ", ".join(unknown)
        )
    if problems:
        return CheckResult("netsuite required fields", Status.FAIL, "; ".join(problems))
    if sometimes:
        return CheckResult(
            "netsuite required fields",
            Status.WARN,
            "required but set only sometimes, events without them would be refused: "
            + ", ".join(f"{named(name)}: {WRITTEN_SOMETIMES[name]}" for name in sometimes),
        )
    customs = sum(1 for spec in properties.values() if (spec or {}).get("x-ns-custom-field"))
    listed = ", ".join(required) if required else "none"
    return CheckResult(
        "netsuite required fields",
        Status.OK,
        f"required: {listed} (all set by mailbot); {_count(customs, 'custom field')}",
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


# --- the report --------------------------------------------------------------------------


def failed(results: Sequence[CheckResult]) -> bool:
    return any(result.status is Status.FAIL for result in results)


def render_checks(results: Sequence[CheckResult], *, as_json: bool) -> str:
    """A table (one line per check) or a JSON document; counts at the end."""
    counts = {status.value: 0 for status in Status}
    for result in results:
        counts[result.status.value] += 1
    if as_json:
        document = {"checks": [asdict(result) for result in results], "counts": counts}
        return json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    width = max((len(result.name) for result in results), default=0)
    lines = [
        f"{result.status.value.upper():<4}  {result.name:<{width}}  {result.detail}"
        for result in results
    ]
    summary = f"{counts['fail']} failed, {_count(counts['warn'], 'warning')}, {counts['ok']} ok"
    lines.append(summary)
    return "\n".join(lines) + "\n"

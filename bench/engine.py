"""NetSuite calls per created event, through the whole sync engine, over the corpus mix.

Run from the repository root::

    .venv/bin/python bench/engine.py

Prints one JSON object, every figure beside its target, all measured in this run.

The mix is every .eml and .ics file under tests/fixtures/corpus and tests/fixtures/handmade.
An in-process NetSuite emulator is seeded with a CRM account derived from the mix (see
``crm_data``): every From and ORGANIZER address is an active employee, every other ATTENDEE
address a contact of one customer per domain. The engine is the production one
(``open_engine``, not dry-run, token-based auth against the emulator), fed in batches of
100 messages through ``SyncService.handle_batch`` as ``mailbot replay`` does (one CRM look-up
for the addresses of a batch). Three passes, each message under a ``MessageKey`` of its own.
``calls_per_created_event`` = (SuiteQL look-ups + the PUT of each created event) / created
events: what bringing one new meeting into NetSuite costs. Updates, cancels and replies
cost exactly one write each (``writes_per_written_decision``); all requests divided by the
created events are printed too (``all_requests_per_created_event``).

* ``cold``: a fresh engine (empty directory cache, empty state) handles every file once.
* ``unchanged``: the same engine handles every file again under new message keys (same
  bytes). ``calls_per_unchanged_message`` = requests / messages.
* ``warm``: the same directory (its cache as the two passes above left it) with a fresh,
  empty state store handles every file once more, so every event is decided again as a
  creation.

Many addresses of the mix are both a From or ORGANIZER in one file and an ATTENDEE in
another; such an address is an employee, and the matcher takes an employee before a contact
(mailbot/core/matching.py). A meeting whose people are all employees then has no CRM match
unless ``MatchPolicy.allow_internal_only`` is set, so the headline figures are measured with
it set (every message from an employee is matchable), and the same three passes are run
again on a fresh emulator and engine with the default ``MatchPolicy()`` (``default_matching``).

Requests are counted from the emulator's request log, by kind: SuiteQL
(POST .../query/v1/suiteql), PUT (upserts), PATCH and other.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mailbot.adapters.netsuite import NetSuiteConfig  # noqa: E402
from mailbot.adapters.netsuite.directory import NetSuiteDirectory  # noqa: E402
from mailbot.adapters.sqlite_state import SqliteStateStore  # noqa: E402
from mailbot.app import emulator_config, open_engine, quiet_libraries  # noqa: E402
from mailbot.core.model import Decision, Invitation  # noqa: E402
from mailbot.core.pipeline import decide_message, read_message  # noqa: E402
from mailbot.core.policy import MatchPolicy, Policy  # noqa: E402
from mailbot.core.sync import addresses_to_look_up  # noqa: E402
from mailbot.ports import MessageKey  # noqa: E402
from mailbot.service import Handled, MailItem, SyncService  # noqa: E402
from mailbot.settings import Settings  # noqa: E402
from mailbot.sim.netsuite import LoggedRequest, NetSuiteEmulator  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
FOLDERS = (FIXTURES / "corpus", FIXTURES / "handmade")
SUFFIXES = (".eml", ".ics")
ZONE = "Europe/Berlin"

HEADLINE_MATCHING = MatchPolicy(allow_internal_only=True)
DEFAULT_MATCHING = MatchPolicy()

BATCH = 100  # messages per batch, as mailbot replay uses (app.REPLAY_BATCH)
TARGET_COLD = 3.0
TARGET_WARM = 1.2
TARGET_UNCHANGED = 0.0

SUITEQL_PATH = "/query/v1/suiteql"
KINDS = ("suiteql", "put", "patch", "other")
WRITE_KINDS = ("put", "patch")
TOP_MESSAGES = 5  # messages listed as the costliest of each pass

INTEGRATION_ADDRESS = "integration@mailbot-bench.example.org"
CREDENTIALS = {
    "account": "1234567_SB1",
    "consumer_key": "bench-consumer-key-" + "c" * 45,
    "consumer_secret": "bench-consumer-secret-" + "s" * 42,
    "token_id": "bench-token-id-" + "t" * 49,
    "token_secret": "bench-token-secret-" + "x" * 45,
}

METHOD = (
    "Each pass resets the emulator's request log, then hands every file of the mix (sorted by "
    "path) to SyncService.handle under a MessageKey of its own; the requests of a message are "
    "the log entries added while it was handled (the emulator logs a request before it "
    "answers). created = decision records with outcome create and written true. SuiteQL "
    "statements by table come from NetSuiteDirectory.stats(). messages_per_s: messages / "
    "summed wall time of SyncService.handle (the bookkeeping between messages is not timed); "
    "the emulator runs in this process, so its work is inside that time. "
    "one_batched_lookup: after the passes, a new NetSuiteDirectory on the same client looks up "
    "the union of the addresses the service would ask for over the whole mix in one call; "
    "cold_if_one_batched_lookup = (its requests + the warm pass's requests) / the warm pass's "
    "created events, a sum of two measured figures, not a pass of its own."
)


# ----------------------------------------------------------------------------- the mix


def load_mix() -> list[tuple[str, bytes]]:
    """Every .eml and .ics file of the corpus and the hand-made fixtures, sorted by path."""
    paths = sorted(
        path
        for folder in FOLDERS
        for path in folder.rglob("*")
        if path.is_file() and path.suffix.lower() in SUFFIXES
    )
    return [(path.relative_to(FIXTURES).as_posix(), path.read_bytes()) for path in paths]


def left_out() -> list[str]:
    """Files of the fixture folders that are not in the mix (neither .eml nor .ics)."""
    return sorted(
        path.relative_to(FIXTURES).as_posix()
        for folder in FOLDERS
        for path in folder.rglob("*")
        if path.is_file() and path.suffix.lower() not in {*SUFFIXES, ".md"}
    )


def _invitations(decisions: tuple[Decision, ...]) -> list[Invitation]:
    found = []
    for decision in decisions:
        if decision.invitation is not None:
            found.append(decision.invitation)
        elif decision.broken is not None and decision.broken.readable is not None:
            found.append(decision.broken.readable)
    return found


def crm_data(mix: list[tuple[str, bytes]], policy: Policy) -> tuple[dict[str, Any], dict[str, int]]:
    """An emulator account in which the messages of the mix can be matched.

    The addresses come from ``decide_message`` over the mix: every From and ORGANIZER
    address becomes an active employee, every other ATTENDEE address a contact of a customer
    named after its domain (one per domain). No opportunities.
    """
    employees: set[str] = set()
    attendees: set[str] = set()
    for _, raw in mix:
        result = decide_message(raw, policy)
        if result.envelope.sender:
            employees.add(result.envelope.sender.lower())
        for invitation in _invitations(result.decisions):
            if invitation.organizer is not None and invitation.organizer.email:
                employees.add(invitation.organizer.email.lower())
            attendees.update(a.email.lower() for a in invitation.attendees if a.email)
    contacts = sorted(attendees - employees - {""})
    domains = sorted({address.rpartition("@")[2] for address in contacts})
    next_id = iter(range(2, 1_000_000))
    employee_rows = [_person(1, INTEGRATION_ADDRESS)]
    employee_rows += [_person(next(next_id), address) for address in sorted(employees)]
    company_ids = {domain: next(next_id) for domain in domains}
    customer_rows = [
        {"id": cid, "entityid": domain, "companyname": domain, "stage": "CUSTOMER"}
        for domain, cid in company_ids.items()
    ]
    contact_rows = [
        {**_person(next(next_id), address), "company": company_ids[address.rpartition("@")[2]]}
        for address in contacts
    ]
    data = {
        "credentials": dict(CREDENTIALS),
        "timezone": ZONE,
        "integration_user": 1,
        "employees": employee_rows,
        "customers": customer_rows,
        "contacts": contact_rows,
        "opportunities": [],
    }
    sizes = {
        "employees_from_the_mix": len(employees),
        "attendee_addresses": len(attendees),
        "attendees_that_are_employees": len(attendees & employees),
        "contacts": len(contact_rows),
        "companies": len(customer_rows),
        "opportunities": 0,
    }
    return data, sizes


def _person(record_id: int, address: str) -> dict[str, Any]:
    local = address.partition("@")[0] or "someone"
    return {
        "id": record_id,
        "entityid": f"{local} ({record_id})",
        "firstname": local.split(".")[0][:30] or "X",
        "lastname": f"N{record_id}",
        "email": address,
        "isinactive": False,
    }


def mix_addresses(mix: list[tuple[str, bytes]], policy: Policy) -> set[str]:
    """The addresses SyncService would ask the directory about, over the whole mix."""
    found: set[str] = set()
    for _, raw in mix:
        read = read_message(raw, policy)
        if read.problem is None and read.objects:
            found |= addresses_to_look_up(read)
    return found


# ----------------------------------------------------------------------------- a pass


@dataclass
class MessageCost:
    name: str
    requests: Counter[str]
    outcomes: Counter[str]
    reasons: Counter[str]
    created: int
    summary: str


@dataclass
class PassResult:
    label: str
    messages: int
    seconds: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    skip_reasons: Counter[str] = field(default_factory=Counter)
    summaries: Counter[str] = field(default_factory=Counter)
    written: Counter[str] = field(default_factory=Counter)
    created: int = 0
    queries_by_table: dict[str, int] = field(default_factory=dict)
    costs: list[MessageCost] = field(default_factory=list)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def writes(self) -> int:
        return sum(self.requests.get(kind, 0) for kind in WRITE_KINDS)


def request_kind(entry: LoggedRequest) -> str:
    if entry.method == "POST" and entry.path.partition("?")[0].endswith(SUITEQL_PATH):
        return "suiteql"
    if entry.method in {"PUT", "PATCH"}:
        return entry.method.lower()
    return "other"


def directory_queries(service: SyncService) -> dict[str, int]:
    directory = service.directory
    if not isinstance(directory, NetSuiteDirectory):
        return {}
    stats = directory.stats()
    return {k.removeprefix("queries."): v for k, v in stats.items() if k.startswith("queries.")}


def run_pass(
    label: str,
    service: SyncService,
    emulator: NetSuiteEmulator,
    mix: list[tuple[str, bytes]],
    now: datetime,
) -> PassResult:
    before = directory_queries(service)
    emulator.reset_log()
    result = PassResult(label, len(mix))
    for start in range(0, len(mix), BATCH):
        chunk = mix[start : start + BATCH]
        items = [MailItem(MessageKey("bench", 0, f"{label}/{name}"), raw) for name, raw in chunk]
        started = time.perf_counter()
        batch = service.handle_batch(items, now)  # as replay and the daemon do
        result.seconds += time.perf_counter() - started
        for (name, _), handled in zip(chunk, batch, strict=True):
            _account(result, name, handled)
    result.requests.update(request_kind(entry) for entry in emulator.request_log())
    after = directory_queries(service)
    result.queries_by_table = {k: after[k] - before.get(k, 0) for k in sorted(after) if k != ""}
    return result


def _account(result: PassResult, name: str, handled: Handled) -> None:
    """Decisions of one message; its writes are the records it marks as written."""
    written = [r for r in handled.records if r["written"]]
    requests = Counter("put" if r["outcome"] in ("create", "update") else "patch" for r in written)
    outcomes = Counter(record["outcome"] for record in handled.records)
    reasons = Counter(record["reason"] for record in handled.records if record["reason"])
    created = sum(1 for r in written if r["outcome"] == "create")
    result.written.update(r["outcome"] for r in written)
    result.outcomes.update(outcomes)
    result.skip_reasons.update(reasons)
    result.summaries[handled.outcome] += 1
    result.created += created
    result.costs.append(MessageCost(name, requests, outcomes, reasons, created, handled.outcome))


@dataclass
class Measured:
    cold: PassResult
    unchanged: PassResult
    warm: PassResult
    batched_lookup: Counter[str]
    addresses: int
    events_in_netsuite: int


def measure(
    matching: MatchPolicy, data: dict[str, Any], mix: list[tuple[str, bytes]], now: datetime
) -> Measured:
    """The three passes on a fresh emulator and a fresh engine, then one batched look-up."""
    with (
        NetSuiteEmulator(data) as emulator,
        tempfile.TemporaryDirectory(prefix="mailbot-bench-") as folder,
    ):
        settings = Settings(
            timezone=ZONE, state_path=str(Path(folder) / "state.sqlite3"), matching=matching
        )
        with open_engine(settings, engine_config(emulator), dry_run=False) as engine:
            service = engine.service
            cold = run_pass("cold", service, emulator, mix, now)
            unchanged = run_pass("unchanged", service, emulator, mix, now)
            fresh_state = SqliteStateStore(Path(folder) / "warm-state.sqlite3")
            try:
                warm_service = SyncService(
                    service.policy,
                    service.directory,
                    engine.calendar,
                    fresh_state,
                    horizon=service.horizon,
                    past=service.past,
                )
                warm = run_pass("warm", warm_service, emulator, mix, now)
            finally:
                fresh_state.close()
            addresses = mix_addresses(mix, service.policy)
            emulator.reset_log()
            NetSuiteDirectory(engine.client).lookup(addresses)
            batched = Counter(request_kind(entry) for entry in emulator.request_log())
        events = len(emulator.records("calendarEvent"))
    return Measured(cold, unchanged, warm, batched, len(addresses), events)


def engine_config(emulator: NetSuiteEmulator) -> NetSuiteConfig:
    return emulator_config(emulator)


# ----------------------------------------------------------------------------- reporting


def ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 3) if denominator else None


def ok(figure: float | None, at_most: float) -> bool:
    return figure is not None and figure <= at_most


def rate(result: PassResult) -> float | None:
    return round(result.messages / result.seconds, 1) if result.seconds else None


def message_line(cost: MessageCost) -> dict[str, Any]:
    return {
        "file": cost.name,
        "requests": {kind: n for kind in KINDS if (n := cost.requests.get(kind, 0))},
        "created": cost.created,
        "decisions": dict(sorted(cost.outcomes.items())),
        **({"skip_reasons": dict(sorted(cost.reasons.items()))} if cost.reasons else {}),
    }


def pass_report(result: PassResult, *, list_messages: bool) -> dict[str, Any]:
    idle = [c for c in result.costs if not c.created and c.requests]
    report: dict[str, Any] = {
        "messages": result.messages,
        "messages_per_s": rate(result),
        "handle_s": round(result.seconds, 3),
        "requests": {kind: result.requests.get(kind, 0) for kind in KINDS},
        "requests_total": result.total_requests,
        "suiteql_statements_by_table": result.queries_by_table,
        "created_events": result.created,
        "writes_per_created_event": ratio(result.writes, result.created),
        "decisions_by_outcome": dict(sorted(result.outcomes.items())),
        "skip_reasons": dict(sorted(result.skip_reasons.items())),
        "written_decisions_by_outcome": dict(sorted(result.written.items())),
        "messages_by_result": dict(sorted(result.summaries.items())),
        "messages_that_looked_up": sum(1 for c in result.costs if c.requests.get("suiteql")),
        "messages_that_created": sum(1 for c in result.costs if c.created),
        "requests_of_messages_that_created_nothing": {
            "messages": len(idle),
            "requests": {kind: sum(c.requests.get(kind, 0) for c in idle) for kind in KINDS},
        },
    }
    if list_messages:
        calling = [c for c in result.costs if c.requests]
        costliest = sorted(calling, key=lambda c: -sum(c.requests.values()))[:TOP_MESSAGES]
        report["costliest_messages"] = [message_line(c) for c in costliest]
        report["messages_that_called_netsuite_but_created_nothing"] = [
            message_line(c) for c in idle
        ]
    return report


def figures(measured: Measured) -> dict[str, Any]:
    cold, unchanged, warm = measured.cold, measured.unchanged, measured.warm
    cold_figure = ratio(cold.requests["suiteql"] + cold.created, cold.created)
    warm_figure = ratio(warm.requests["suiteql"] + warm.created, warm.created)
    unchanged_figure = ratio(unchanged.total_requests, unchanged.messages)
    batched = sum(measured.batched_lookup.values())
    return {
        "calls_per_created_event_cold": {"figure": cold_figure, "target_at_most": TARGET_COLD},
        "calls_per_created_event_cold_ok": ok(cold_figure, TARGET_COLD),
        "calls_per_created_event_warm": {"figure": warm_figure, "target_at_most": TARGET_WARM},
        "calls_per_created_event_warm_ok": ok(warm_figure, TARGET_WARM),
        "calls_per_unchanged_message": {
            "figure": unchanged_figure,
            "target_at_most": TARGET_UNCHANGED,
        },
        "calls_per_unchanged_message_ok": ok(unchanged_figure, TARGET_UNCHANGED),
        "calls_per_created_event_is": "(SuiteQL look-ups + the PUT of each created event) / "
        "created events: what it costs to bring one new meeting into NetSuite",
        "writes_per_written_decision": {
            label: ratio(result.writes, sum(result.written.values()))
            for label, result in (("cold", cold), ("unchanged", unchanged), ("warm", warm))
        },
        "all_requests_per_created_event": {
            "cold": ratio(cold.total_requests, cold.created),
            "warm": ratio(warm.total_requests, warm.created),
        },
        "unchanged_decisions": unchanged.outcomes.get("unchanged", 0),
        "messages_per_s": {"cold": rate(cold), "unchanged": rate(unchanged), "warm": rate(warm)},
        "one_batched_lookup": {
            "addresses": measured.addresses,
            "requests": dict(sorted(measured.batched_lookup.items())),
            "cold_if_one_batched_lookup": ratio(batched + warm.total_requests, warm.created),
        },
        "events_in_netsuite_after_run": measured.events_in_netsuite,
    }


def main() -> int:
    began = time.perf_counter()
    quiet_libraries()
    mix = load_mix()
    if not mix:
        print(json.dumps({"error": f"no .eml or .ics files under {FIXTURES}"}))
        return 1
    policy = Policy.for_zone(ZONE)
    data, crm_sizes = crm_data(mix, policy)
    now = datetime.now(UTC)
    headline = measure(HEADLINE_MATCHING, data, mix, now)
    default = measure(DEFAULT_MATCHING, data, mix, now)
    report = {
        "benchmark": "bench/engine.py: NetSuite requests per created event, whole engine",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "policy_zone": ZONE,
        "files": {
            "total": len(mix),
            **{s.lstrip("."): sum(1 for n, _ in mix if n.endswith(s)) for s in SUFFIXES},
            **{f.name: sum(1 for n, _ in mix if n.startswith(f.name + "/")) for f in FOLDERS},
            "bytes": sum(len(raw) for _, raw in mix),
            "not_in_mix": left_out(),
        },
        "crm_account": crm_sizes,
        "matching": "MatchPolicy(allow_internal_only=True)",
        **figures(headline),
        "passes": {
            "cold": pass_report(headline.cold, list_messages=True),
            "unchanged": pass_report(headline.unchanged, list_messages=True),
            "warm": pass_report(headline.warm, list_messages=True),
        },
        "default_matching": {
            "matching": "MatchPolicy() (allow_internal_only=False)",
            **figures(default),
            "passes": {
                "cold": pass_report(default.cold, list_messages=False),
                "unchanged": pass_report(default.unchanged, list_messages=True),
                "warm": pass_report(default.warm, list_messages=False),
            },
        },
        "method": METHOD,
        "total_run_s": round(time.perf_counter() - began, 1),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

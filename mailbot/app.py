"""The composition root: the only place where files, settings and the core are wired."""

from __future__ import annotations

import logging
import sqlite3
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from mailbot.adapters.imap import ImapConfig, ImapMailbox, TlsMode
from mailbot.adapters.metrics import MetricsServer, PrometheusMetrics, serve_metrics
from mailbot.adapters.netsuite.calendar import NetSuiteCalendar
from mailbot.adapters.netsuite.client import NetSuiteClient
from mailbot.adapters.netsuite.config import (
    ClientCredentialsConfig,
    NetSuiteConfig,
    TokenAuthConfig,
)
from mailbot.adapters.netsuite.directory import NetSuiteDirectory
from mailbot.adapters.notify import SystemdNotifier
from mailbot.adapters.oauth2_token import ClientCredentialsTokens, OAuth2Client
from mailbot.adapters.progress import progress_for
from mailbot.adapters.recording import RecordingCalendar
from mailbot.adapters.sqlite_state import SqliteStateStore
from mailbot.backfill import Backfill
from mailbot.core.explanation import decision_record
from mailbot.core.pipeline import decide_message
from mailbot.core.policy import MatchPolicy, Policy, RecurrenceMode
from mailbot.daemon import Daemon
from mailbot.ports import Calendar, MessageKey
from mailbot.service import Handled, MailItem, SyncService
from mailbot.settings import ConfigurationError, Settings, read_secrets


@dataclass(frozen=True, slots=True)
class ExplainedFile:
    """The records of one input file, or why it could not be read."""

    source: str
    records: tuple[dict[str, Any], ...] = ()
    error: str | None = None
    note: str | None = None


def quiet_libraries() -> None:
    """mail-parser logs every part it does not render; icalendar warns on guessed zones.

    Both are reported by mailbot itself (decision details), so their own chatter is muted.
    """
    logging.getLogger("mailparser").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", module=r"icalendar(\..*)?")


def explain_files(sources: list[str], policy: Policy) -> Iterator[ExplainedFile]:
    """Each file through the core, in the order given."""
    quiet_libraries()
    for source in sources:
        try:
            raw = Path(source).read_bytes()
        except OSError as error:
            yield ExplainedFile(source, error=error.strerror or str(error))
            continue
        yield explain_bytes(source, raw, policy)


def explain_bytes(source: str, raw: bytes, policy: Policy) -> ExplainedFile:
    result = decide_message(raw, policy)
    records = tuple(
        decision_record(source, result.envelope, decision, policy, result.notes)
        for decision in result.decisions
    )
    return ExplainedFile(source, records)


# --- the sync engine ---------------------------------------------------------------------


@dataclass
class Engine:
    """A wired SyncService and what it holds open (the NetSuite client, the state store)."""

    service: SyncService
    client: NetSuiteClient
    state: SqliteStateStore
    calendar: Calendar
    dry_run: bool
    scratch: tempfile.TemporaryDirectory[str] | None = None

    def close(self) -> None:
        self.client.close()
        self.state.close()
        if self.scratch is not None:
            self.scratch.cleanup()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def netsuite_config(settings: Settings, environ: Mapping[str, str] | None = None) -> NetSuiteConfig:
    """The client's configuration: the settings plus the secrets (credentials or environment)."""
    netsuite = settings.netsuite
    if netsuite is None:
        raise ConfigurationError(
            settings.source or "configuration", ["[netsuite] account: required"]
        )
    secrets = read_secrets(netsuite.secret_names, environ)
    auth: TokenAuthConfig | ClientCredentialsConfig
    if netsuite.auth == "oauth2":
        auth = ClientCredentialsConfig(
            client_id=netsuite.client_id or "",
            certificate_id=netsuite.certificate_id or "",
            private_key_pem=secrets["netsuite-oauth2-private-key"],
            algorithm=netsuite.algorithm,
        )
    else:
        auth = TokenAuthConfig(
            consumer_key=secrets["netsuite-consumer-key"],
            consumer_secret=secrets["netsuite-consumer-secret"],
            token_id=secrets["netsuite-token-id"],
            token_secret=secrets["netsuite-token-secret"],
        )
    return NetSuiteConfig(
        netsuite.account,
        auth=auth,
        base_url=netsuite.base_url,
        connect_timeout=netsuite.connect_timeout,
        read_timeout=netsuite.read_timeout,
        max_attempts=netsuite.max_attempts,
        concurrency=netsuite.concurrency,
    )


def open_engine(
    settings: Settings, config: NetSuiteConfig, *, dry_run: bool, policy: Policy | None = None
) -> Engine:
    """The one place where the engine's parts are chosen; dry-run is decided here only.

    Dry-run writes nothing: a recording calendar instead of NetSuite, and a throwaway copy
    of the state database, so the decisions are exactly those a real run would make.
    """
    quiet_libraries()
    client = NetSuiteClient(config)
    scratch = tempfile.TemporaryDirectory(prefix="mailbot-dry-run-") if dry_run else None
    state_path = settings.state_path
    if scratch is not None:
        state_path = _throwaway_copy(settings.state_path, Path(scratch.name))
    else:
        Path(state_path).parent.mkdir(parents=True, exist_ok=True)
    state = SqliteStateStore(state_path)
    calendar: Calendar = RecordingCalendar() if dry_run else NetSuiteCalendar(client)
    chosen = replace(policy or settings.policy(), recurrence=recurrence_mode(settings, client))
    service = SyncService(
        chosen,
        NetSuiteDirectory(client),
        calendar,
        state,
        horizon=timedelta(days=settings.horizon_days),
        past=timedelta(days=settings.past_days),
    )
    return Engine(service, client, state, calendar, dry_run, scratch)


def recurrence_mode(settings: Settings, client: NetSuiteClient) -> RecurrenceMode:
    """Series when the account's calendarEvent schema has the recurrence fields (asked once,
    at start-up, from the metadata catalog), else one event per occurrence."""
    if settings.recurrence != "auto":
        return RecurrenceMode(settings.recurrence)
    return RecurrenceMode.SERIES if client.has_recurrence_fields() else RecurrenceMode.OCCURRENCES


def _throwaway_copy(state_path: str, folder: Path) -> str:
    """A copy of the state database that leaves nothing beside the original.

    A read-only connection to a WAL database creates the ``-wal`` and ``-shm`` files when
    they are missing (they exist only while a daemon has the database open) and leaves them
    behind, created by whoever ran the dry-run, which must change nothing. Without them
    every commit is in the main file, which is then read as immutable: no lock, no side
    file. With them (a daemon runs, or one crashed), the ordinary read-only connection
    reads the commits still in the ``-wal``.
    """
    copy = folder / "state.sqlite3"
    original = Path(state_path)
    if original.exists():
        in_use = Path(f"{state_path}-wal").exists()
        mode = "mode=ro" if in_use else "mode=ro&immutable=1"
        source = sqlite3.connect(f"{original.resolve().as_uri()}?{mode}", uri=True)
        target = sqlite3.connect(copy)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
    return str(copy)


REPLAY_BATCH = 100  # messages whose addresses are looked up in the CRM together


def replay_files(engine: Engine, sources: list[str], now: datetime) -> Iterator[ExplainedFile]:
    """Local .eml files through the whole engine, in the order given, in batches."""
    for start in range(0, len(sources), REPLAY_BATCH):
        batch: list[tuple[str, MailItem]] = []
        for source in sources[start : start + REPLAY_BATCH]:
            try:
                raw = Path(source).read_bytes()
            except OSError as error:
                yield ExplainedFile(source, error=error.strerror or str(error))
                continue
            key = MessageKey("file", 0, str(Path(source).resolve()))
            batch.append((source, MailItem(key, raw)))
        handled = engine.service.handle_batch([item for _, item in batch], now)
        for (source, _), result in zip(batch, handled, strict=True):
            records = tuple({**record, "file": source} for record in result.records)
            yield ExplainedFile(source, records, note=result.outcome)


# --- the demo ----------------------------------------------------------------------------

DEMO_MAILBOX = Path(__file__).parent / "samples" / "demo" / "cur"
DEMO_SYNC_ADDRESS = "crm-sync@lakeside-instruments.example.com"


@dataclass(frozen=True, slots=True)
class DemoRun:
    records: tuple[dict[str, Any], ...]
    events: tuple[dict[str, Any], ...]
    base_url: str
    zone_name: str


def emulator_config(emulator: Any, **options: Any) -> NetSuiteConfig:
    """The client's configuration for a running NetSuite emulator (token-based auth)."""
    credentials = emulator.credentials
    auth = TokenAuthConfig(
        consumer_key=credentials["consumer_key"],
        consumer_secret=credentials["consumer_secret"],
        token_id=credentials["token_id"],
        token_secret=credentials["token_secret"],
    )
    return NetSuiteConfig(emulator.account, auth=auth, base_url=emulator.base_url, **options)


def run_demo(now: datetime) -> DemoRun:
    """The whole job on its embedded defaults: the emulator with demo data, SQLite state in
    a temporary folder, the bundled sample mailbox, through the same engine as production."""
    from mailbot.sim.netsuite import NetSuiteEmulator, load_data  # noqa: PLC0415 - demo only

    data = load_data(None)
    zone_name = str(data.get("timezone") or "UTC")
    with NetSuiteEmulator(data).start() as emulator, tempfile.TemporaryDirectory() as folder:
        config = emulator_config(emulator)
        settings = Settings(
            timezone=zone_name,
            state_path=str(Path(folder) / "state.sqlite3"),
            matching=MatchPolicy(mailbox_addresses=frozenset({DEMO_SYNC_ADDRESS})),
        )
        sources = [str(path) for path in sorted(DEMO_MAILBOX.glob("*.eml"))]
        with open_engine(settings, config, dry_run=False) as engine:
            records = tuple(
                record for result in replay_files(engine, sources, now) for record in result.records
            )
        events = tuple(emulator.records("calendarEvent"))
        return DemoRun(records, events, emulator.base_url, zone_name)


# --- the daemon --------------------------------------------------------------------------


def open_state(settings: Settings) -> SqliteStateStore:
    """The state store alone (for status and log: no NetSuite, no mailbox)."""
    return SqliteStateStore(settings.state_path)


def imap_mailbox(
    settings: Settings,
    *,
    read_only: bool,
    environ: Mapping[str, str] | None = None,
    folder: str | None = None,
) -> ImapMailbox:
    """The shared mailbox from the settings and its secret (``imap-password``, or for
    XOAUTH2 ``imap-oauth2-client-secret``); ``folder`` instead of the watched one
    (backfill)."""
    imap = settings.imap
    if imap is None:
        raise ConfigurationError(
            settings.source or "configuration", ["[imap] host, username: required"]
        )
    secrets = read_secrets(imap.secret_names, environ)
    config = ImapConfig(
        host=imap.host,
        port=imap.port or IMAP_PORTS[imap.tls],
        username=imap.username,
        folder=folder or imap.folder,
        tls=cast(TlsMode, imap.tls),  # validated by the settings
        ca_file=imap.ca_file,
        connect_timeout=imap.connect_timeout,
        read_timeout=imap.read_timeout,
        synced_folder=imap.synced_folder,
        skipped_folder=imap.skipped_folder,
        failed_folder=imap.failed_folder,
        mark_with_keywords=imap.mark_with_keywords,
        max_message_bytes=settings.limits.max_message_bytes,
    )
    if imap.auth == "xoauth2":
        tokens = ClientCredentialsTokens(
            OAuth2Client(
                token_url=imap.oauth2_token_url or "",
                client_id=imap.oauth2_client_id or "",
                scopes=imap.oauth2_scope,
                ca_file=imap.oauth2_ca_file,
                connect_timeout=imap.connect_timeout,
                read_timeout=imap.read_timeout,
            ),
            client_secret=secrets["imap-oauth2-client-secret"],
        )
        return ImapMailbox(config, oauth2_token=tokens, read_only=read_only)
    return ImapMailbox(config, password=secrets["imap-password"], read_only=read_only)


IMAP_PORTS = {"implicit": 993, "starttls": 143, "none": 143}


@dataclass
class Running:
    """A wired daemon and everything it holds open."""

    daemon: Daemon
    engine: Engine
    mailbox: ImapMailbox
    metrics_server: MetricsServer | None

    def close(self) -> None:
        if self.metrics_server is not None:
            self.metrics_server.close()
        self.mailbox.close()
        self.engine.close()


def open_daemon(
    settings: Settings,
    *,
    dry_run: bool,
    on_handled: Callable[[Handled], None] | None = None,
) -> Running:
    """The daemon on the real mailbox and NetSuite; in dry-run the mailbox is opened
    read-only (EXAMINE) and the engine records instead of writing."""
    config = netsuite_config(settings)
    engine = open_engine(settings, config, dry_run=dry_run)
    mailbox = imap_mailbox(settings, read_only=dry_run)
    metrics = PrometheusMetrics(netsuite_counters=engine.client.counters)
    address = settings.daemon.metrics_address
    server = serve_metrics(metrics, address) if address and not dry_run else None
    daemon = Daemon(
        mailbox,
        engine.service,
        notifier=SystemdNotifier.from_environment(),
        metrics=metrics,
        batch=settings.daemon.batch,
        max_attempts=settings.daemon.max_attempts,
        idle_timeout=settings.daemon.idle_timeout,
        backoff_cap=settings.daemon.backoff_cap,
        on_handled=on_handled,
    )
    return Running(daemon, engine, mailbox, server)


# --- the backfill ------------------------------------------------------------------------


@dataclass
class BackfillRun:
    """A wired backfill and everything it holds open."""

    backfill: Backfill
    engine: Engine
    mailbox: ImapMailbox

    def close(self) -> None:
        self.mailbox.close()
        self.engine.close()


def open_backfill(
    settings: Settings, *, folder: str | None, since: date | None, dry_run: bool
) -> BackfillRun:
    """A backfill of ``folder`` (default: the watched one). Another folder is the user's
    archive: opened read-only (EXAMINE), its messages left where they are. In dry-run the
    mailbox is read-only whatever the folder, and the engine records instead of writing.
    The progress goes to stderr: a bar on a terminal, log lines elsewhere."""
    watched = settings.imap.folder if settings.imap is not None else "INBOX"
    chosen = _folder_name(folder or watched)
    foreign = chosen != _folder_name(watched)
    mailbox = imap_mailbox(settings, read_only=dry_run or foreign, folder=chosen)
    engine = open_engine(settings, netsuite_config(settings), dry_run=dry_run)
    backfill = Backfill(
        mailbox,
        engine.service,
        file_messages=not foreign,
        since=since,
        batch=settings.daemon.batch,
        progress=progress_for(mailbox.config.source),
    )
    return BackfillRun(backfill, engine, mailbox)


def _folder_name(name: str) -> str:
    """INBOX is case-insensitive in IMAP (RFC 3501); other names are the server's."""
    return "INBOX" if name.upper() == "INBOX" else name

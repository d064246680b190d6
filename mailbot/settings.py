"""Configuration: a TOML file for settings, systemd credentials or the environment for secrets.

Every problem in a configuration is collected and reported at once, before anything runs.
Secrets never come from the TOML file: a key that looks like one there is an error.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailbot.core.policy import Limits, MatchPolicy, OpportunityChoice, Policy

LOG = logging.getLogger("mailbot.settings")

DEFAULT_CONFIG = Path("/etc/mailbot/mailbot.toml")
CONFIG_ENV = "MAILBOT_CONFIG"

NETSUITE_KEYS = {
    "timezone",
    "account",
    "base_url",
    "auth",
    "client_id",
    "certificate_id",
    "algorithm",
    "concurrency",
    "connect_timeout",
    "read_timeout",
    "max_attempts",
}
SECRET_LOOKING_KEYS = re.compile(r"secret|password|private_key|token|consumer_key", re.IGNORECASE)
ACCOUNT_PATTERN = re.compile(r"[A-Za-z0-9]+(?:_[A-Za-z0-9]+)?")
JWT_ALGORITHMS = ("PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"

# secret name -> environment variable; the systemd credential has the secret's name
SECRET_NAMES = {
    "netsuite-consumer-key": "MAILBOT_NETSUITE_CONSUMER_KEY",
    "netsuite-consumer-secret": "MAILBOT_NETSUITE_CONSUMER_SECRET",
    "netsuite-token-id": "MAILBOT_NETSUITE_TOKEN_ID",
    "netsuite-token-secret": "MAILBOT_NETSUITE_TOKEN_SECRET",
    "netsuite-oauth2-private-key": "MAILBOT_NETSUITE_OAUTH2_PRIVATE_KEY",
    "imap-password": "MAILBOT_IMAP_PASSWORD",
    "imap-oauth2-client-secret": "MAILBOT_IMAP_OAUTH2_CLIENT_SECRET",
}
TBA_SECRETS = (
    "netsuite-consumer-key",
    "netsuite-consumer-secret",
    "netsuite-token-id",
    "netsuite-token-secret",
)
OAUTH2_SECRETS = ("netsuite-oauth2-private-key",)

OTHERS_ACCESS = 0o007  # permission bits of users outside the file's owner and group
# limits the parsers cannot go beyond: the email package recurses once per MIME level
LIMIT_CEILINGS = {"max_mime_depth": 100}
KNOWN_KEYS: dict[str, set[str]] = {
    "netsuite": NETSUITE_KEYS,
    "rules": {"trusted_authserv_ids", "sender_domains", "max_text_length"},
    "limits": set(Limits.__dataclass_fields__),
    "matching": {
        "mailbox_addresses",
        "ignore_patterns",
        "default_employee_id",
        "opportunity",
        "allow_internal_only",
    },
    "sync": {"state_path", "horizon_days", "past_days", "recurrence"},
    "imap": {
        "host",
        "port",
        "username",
        "folder",
        "tls",
        "ca_file",
        "connect_timeout",
        "read_timeout",
        "synced_folder",
        "skipped_folder",
        "failed_folder",
        "mark_with_keywords",
        "auth",
        "oauth2_token_url",
        "oauth2_client_id",
        "oauth2_scope",
        "oauth2_ca_file",
    },
    "daemon": {
        "batch",
        "max_attempts",
        "idle_timeout",
        "backoff_cap",
        "metrics_address",
        "log_json",
    },
}
DEFAULT_STATE_PATH = "/var/lib/mailbot/state.sqlite3"


class ConfigurationError(Exception):
    """The configuration cannot be used; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class NetSuiteSettings:
    """How to reach NetSuite, without the secrets (those are read by ``read_secrets``)."""

    account: str
    auth: str = "tba"
    base_url: str | None = None
    client_id: str | None = None
    certificate_id: str | None = None
    algorithm: str = "PS256"
    concurrency: int = 4
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_attempts: int = 5

    @property
    def secret_names(self) -> tuple[str, ...]:
        return OAUTH2_SECRETS if self.auth == "oauth2" else TBA_SECRETS


@dataclass(frozen=True, slots=True)
class ImapSettings:
    """The shared mailbox. ``auth = "password"``: the secret ``imap-password``;
    ``"xoauth2"``: access tokens from the ``oauth2_token_url`` for ``oauth2_client_id``
    (client credentials grant), whose secret is ``imap-oauth2-client-secret``."""

    host: str
    username: str
    port: int | None = None
    folder: str = "INBOX"
    tls: str = "implicit"  # "implicit" (993), "starttls" (143), "none" (loopback only)
    ca_file: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    synced_folder: str = "Synced"
    skipped_folder: str = "Skipped"
    failed_folder: str = "Failed"
    mark_with_keywords: bool = False
    auth: str = "password"  # "password" (LOGIN) or "xoauth2" (OAuth 2.0 access tokens)
    oauth2_token_url: str | None = None
    oauth2_client_id: str | None = None
    oauth2_scope: tuple[str, ...] = ()
    oauth2_ca_file: str | None = None  # CAs for the token endpoint; the system's otherwise

    @property
    def secret_names(self) -> tuple[str, ...]:
        return ("imap-oauth2-client-secret",) if self.auth == "xoauth2" else ("imap-password",)


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    batch: int = 50
    max_attempts: int = 5
    idle_timeout: float = 600.0
    backoff_cap: float = 300.0  # longest pause between two tries after failures in a row
    metrics_address: str | None = "127.0.0.1:9487"
    log_json: bool = False


@dataclass(frozen=True, slots=True)
class Settings:
    source: str | None = None
    timezone: str | None = None
    netsuite: NetSuiteSettings | None = None
    trusted_authserv_ids: frozenset[str] = frozenset()
    sender_domains: frozenset[str] = frozenset()
    max_text_length: int = 4000
    limits: Limits = field(default_factory=Limits)
    matching: MatchPolicy = field(default_factory=MatchPolicy)
    state_path: str = DEFAULT_STATE_PATH
    horizon_days: int = 180
    past_days: int = 30
    recurrence: str = "auto"  # "auto" (ask NetSuite's schema), "occurrences" or "series"
    imap: ImapSettings | None = None
    daemon: DaemonSettings = field(default_factory=DaemonSettings)

    def policy(self, zone_override: str | None = None) -> Policy:
        zone_name = zone_override or self.timezone or "UTC"
        return Policy(
            sync_zone=ZoneInfo(zone_name),
            sync_zone_name=zone_name,
            limits=self.limits,
            trusted_authserv_ids=self.trusted_authserv_ids,
            sender_domains=self.sender_domains,
            matching=self.matching,
            max_text_length=self.max_text_length,
        )


def config_path(explicit: str | None) -> Path | None:
    """The file to read: --config, else $MAILBOT_CONFIG, else the default if it exists."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def load_settings(path: Path | None) -> Settings:
    if path is None:
        return Settings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigurationError(str(path), [f"cannot read: {error.strerror}"]) from error
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigurationError(str(path), [f"not valid TOML: {error}"]) from error
    return settings_from_mapping(data, str(path))


def settings_from_mapping(data: dict[str, Any], source: str) -> Settings:
    problems = _unknown_keys(data)
    netsuite, rules = data.get("netsuite", {}), data.get("rules", {})
    timezone = netsuite.get("timezone")
    if timezone is not None:
        problems.extend(_zone_problems(timezone))
    limits, limit_problems = _limits(data.get("limits", {}))
    problems.extend(limit_problems)
    authserv = _string_set(rules, "trusted_authserv_ids", problems)
    domains = _string_set(rules, "sender_domains", problems)
    max_text = rules.get("max_text_length", 4000)
    if not isinstance(max_text, int) or isinstance(max_text, bool) or max_text < 80:
        problems.append("rules.max_text_length: a whole number of at least 80")
    netsuite_settings = _netsuite(netsuite, problems) if "account" in netsuite else None
    matching = _matching(data.get("matching", {}), problems)
    sync = data.get("sync", {})
    state_path = sync.get("state_path", DEFAULT_STATE_PATH)
    if not isinstance(state_path, str) or not state_path:
        problems.append("sync.state_path: a file path")
    days = {
        key: sync.get(key, default) for key, default in (("horizon_days", 180), ("past_days", 30))
    }
    for key, value in days.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3660:
            problems.append(f"sync.{key}: a whole number of days from 0 to 3660")
    recurrence = sync.get("recurrence", "auto")
    if recurrence not in ("auto", "occurrences", "series"):
        problems.append("sync.recurrence: 'auto', 'occurrences' or 'series'")
    imap = _imap(data.get("imap", {}), problems) if data.get("imap") else None
    daemon = _daemon(data.get("daemon", {}), problems)
    if problems:
        raise ConfigurationError(source, problems)
    return Settings(
        source,
        timezone,
        netsuite_settings,
        authserv,
        domains,
        max_text,
        limits,
        matching,
        str(state_path),
        int(days["horizon_days"]),
        int(days["past_days"]),
        str(recurrence),
        imap,
        daemon,
    )


def _imap(section: dict[str, Any], problems: list[str]) -> ImapSettings | None:
    found = len(problems)
    for key in ("host", "username"):
        if not isinstance(section.get(key), str) or not section.get(key):
            problems.append(f"imap.{key}: required")
    tls = section.get("tls", "implicit")
    if tls not in ("implicit", "starttls", "none"):
        problems.append("imap.tls: 'implicit', 'starttls' or 'none'")
    if tls == "none" and not _is_loopback(str(section.get("host", ""))):
        problems.append("imap.tls = 'none' is allowed only to a loopback address")
    port = section.get("port")
    if port is not None and (
        isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536
    ):
        problems.append("imap.port: a TCP port number")
    for key in ("folder", "synced_folder", "skipped_folder", "failed_folder", "ca_file"):
        if key in section and (not isinstance(section[key], str) or not section[key]):
            problems.append(f"imap.{key}: a non-empty string")
    for key in ("connect_timeout", "read_timeout"):
        value = section.get(key, 10.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            problems.append(f"imap.{key}: seconds, more than 0")
    if not isinstance(section.get("mark_with_keywords", False), bool):
        problems.append("imap.mark_with_keywords: true or false")
    scope = _imap_auth(section, problems)
    if len(problems) > found:
        return None
    known = {k: v for k, v in section.items() if k in ImapSettings.__dataclass_fields__}
    return ImapSettings(**{**known, "oauth2_scope": scope})


OAUTH2_IMAP_KEYS = ("oauth2_token_url", "oauth2_client_id", "oauth2_scope")


def _imap_auth(section: dict[str, Any], problems: list[str]) -> tuple[str, ...]:
    """``auth`` and, for XOAUTH2, the token endpoint's keys; returns the scopes."""
    auth = section.get("auth", "password")
    if auth not in ("password", "xoauth2"):
        problems.append("imap.auth: 'password' or 'xoauth2' (OAuth 2.0, e.g. Microsoft 365)")
        return ()
    if auth == "password":
        given = [key for key in (*OAUTH2_IMAP_KEYS, "oauth2_ca_file") if key in section]
        problems.extend(f"imap.{key}: only with auth = 'xoauth2'" for key in given)
        return ()
    for key in OAUTH2_IMAP_KEYS:
        if key not in section:
            problems.append(f"imap.{key}: required with auth = 'xoauth2'")
    problems.extend(_token_url_problems(section.get("oauth2_token_url")))
    client_id = section.get("oauth2_client_id")
    if client_id is not None and (not isinstance(client_id, str) or not client_id.strip()):
        problems.append("imap.oauth2_client_id: the application (client) id, a string")
    ca_file = section.get("oauth2_ca_file")
    if ca_file is not None and (not isinstance(ca_file, str) or not ca_file):
        problems.append("imap.oauth2_ca_file: a non-empty string")
    return _scopes(section.get("oauth2_scope"), problems)


def _token_url_problems(value: object) -> list[str]:
    """https only, loopback included: requests-oauthlib refuses to post a secret over
    plain http (and the test endpoints run TLS with a CA of their own)."""
    if value is None:
        return []
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme != "https" or not parts.hostname:
        return [
            "imap.oauth2_token_url: an https URL, like "
            "https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token"
        ]
    if parts.username or parts.password:
        return ["imap.oauth2_token_url: no user or password in the URL (the secret is a secret)"]
    return []


def _scopes(value: object, problems: list[str]) -> tuple[str, ...]:
    """A list of scopes, or one string of them separated by spaces (RFC 6749, 3.3)."""
    if value is None:
        return ()
    items = value.split() if isinstance(value, str) else value
    if (
        not isinstance(items, list)
        or not items
        or not all(isinstance(item, str) and len(item.split()) == 1 for item in items)
    ):
        problems.append(
            "imap.oauth2_scope: a scope or a list of them, like "
            '"https://outlook.office365.com/.default"'
        )
        return ()
    return tuple(item.strip() for item in items)


def _daemon(section: dict[str, Any], problems: list[str]) -> DaemonSettings:
    found = len(problems)
    for key, low in (("batch", 1), ("max_attempts", 1)):
        value = section.get(key, low)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            problems.append(f"daemon.{key}: a whole number of at least {low}")
    idle = section.get("idle_timeout", 600.0)
    if isinstance(idle, bool) or not isinstance(idle, int | float) or not 1 <= idle <= 1740:
        problems.append(
            "daemon.idle_timeout: seconds from 1 to 1740 (IDLE is renewed before 29 min)"
        )
    cap = section.get("backoff_cap", 300.0)
    if isinstance(cap, bool) or not isinstance(cap, int | float) or not 1 <= cap <= 3600:
        problems.append("daemon.backoff_cap: seconds from 1 to 3600")
    address = section.get("metrics_address", "127.0.0.1:9487")
    if address == "":  # TOML has no null: an empty address turns the endpoint off
        section = {**section, "metrics_address": None}
    elif not isinstance(address, str) or ":" not in address:
        problems.append('daemon.metrics_address: host:port on loopback, or "" for no endpoint')
    if not isinstance(section.get("log_json", False), bool):
        problems.append("daemon.log_json: true or false")
    if len(problems) > found:
        return DaemonSettings()
    known = {k: v for k, v in section.items() if k in DaemonSettings.__dataclass_fields__}
    return DaemonSettings(**known)


def _matching(section: dict[str, Any], problems: list[str]) -> MatchPolicy:
    mailboxes = _string_set(section, "mailbox_addresses", problems, "matching")
    patterns = _string_set(section, "ignore_patterns", problems, "matching")
    default = section.get("default_employee_id")
    if default is not None and not (isinstance(default, str | int) and str(default).isdigit()):
        problems.append("matching.default_employee_id: an employee's internal id, like '42'")
    choice = section.get("opportunity", OpportunityChoice.ONLY_ONE.value)
    if choice not in {c.value for c in OpportunityChoice}:
        problems.append("matching.opportunity: 'only_one', 'most_recent' or 'never'")
        choice = OpportunityChoice.ONLY_ONE.value
    internal = section.get("allow_internal_only", False)
    if not isinstance(internal, bool):
        problems.append("matching.allow_internal_only: true or false")
    return MatchPolicy(
        mailbox_addresses=mailboxes,
        ignore_patterns=tuple(sorted(patterns)),
        default_employee_id=str(default) if default is not None else None,
        opportunity=OpportunityChoice(choice),
        allow_internal_only=bool(internal),
    )


def _netsuite(section: dict[str, Any], problems: list[str]) -> NetSuiteSettings | None:
    found = len(problems)
    account = section.get("account")
    if not isinstance(account, str) or not ACCOUNT_PATTERN.fullmatch(account):
        problems.append("netsuite.account: the account id, like '1234567' or '1234567_SB1'")
    auth = section.get("auth", "tba")
    if auth not in ("tba", "oauth2"):
        problems.append("netsuite.auth: 'tba' (token-based) or 'oauth2' (client credentials)")
    if auth == "oauth2":
        for key in ("client_id", "certificate_id"):
            if not isinstance(section.get(key), str) or not section.get(key):
                problems.append(f"netsuite.{key}: required with auth = 'oauth2'")
    if section.get("algorithm", "PS256") not in JWT_ALGORITHMS:
        problems.append(f"netsuite.algorithm: one of {', '.join(JWT_ALGORITHMS)}")
    problems.extend(_base_url_problems(section.get("base_url")))
    numbers = {
        "concurrency": (int, 1, 50),
        "max_attempts": (int, 1, 20),
        "connect_timeout": (float, 0.1, 300.0),
        "read_timeout": (float, 1.0, 900.0),
    }
    values: dict[str, Any] = {}
    for key, (kind, low, high) in numbers.items():
        if key in section:
            value = section[key]
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (low <= value <= high)
                or (kind is int and not isinstance(value, int))
            ):
                problems.append(f"netsuite.{key}: a number from {low} to {high}")
            else:
                values[key] = kind(value)
    if len(problems) > found:
        return None
    return NetSuiteSettings(
        account=str(account),
        auth=auth,
        base_url=section.get("base_url"),
        client_id=section.get("client_id"),
        certificate_id=section.get("certificate_id"),
        algorithm=section.get("algorithm", "PS256"),
        **values,
    )


def _base_url_problems(value: object) -> list[str]:
    """TLS is verified always; plain HTTP only to a loopback address (the emulator)."""
    if value is None:
        return []
    parts = urlsplit(value) if isinstance(value, str) else None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or (parts.path not in ("", "/"))
    ):
        return [
            "netsuite.base_url: scheme and host only, like https://1234567.suitetalk.api.netsuite.com"
        ]
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        return ["netsuite.base_url: plain http is allowed only to a loopback address"]
    return []


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MissingSecretsError(ConfigurationError):
    """Secrets that are neither systemd credentials nor environment variables."""


def read_secrets(
    names: tuple[str, ...], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Each secret from ``$CREDENTIALS_DIRECTORY/<name>`` (systemd), else its variable.

    Every missing secret is reported at once; values are never logged or echoed.
    """
    environ = os.environ if environ is None else environ
    found: dict[str, str] = {}
    missing: list[str] = []
    for name in names:
        value, _ = _lookup(name, environ)
        if value:
            found[name] = value.strip()
        else:
            missing.append(
                f"secret {name}: a systemd credential (LoadCredential={name}:...) "
                f"or the environment variable {SECRET_NAMES[name]}"
            )
    if missing:
        raise MissingSecretsError("secrets", missing)
    return found


def secret_sources(
    names: tuple[str, ...], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Where ``read_secrets`` takes each secret from (never the value), for ``mailbot check``:
    "systemd credential <path>" or "environment variable <NAME>"; "" when it is missing."""
    environ = os.environ if environ is None else environ
    sources = {}
    for name in names:
        value, where = _lookup(name, environ)
        sources[name] = where if value else ""
    return sources


def _lookup(name: str, environ: Mapping[str, str]) -> tuple[str | None, str]:
    """A secret's value and where it was found: the systemd credential wins."""
    directory = environ.get(CREDENTIALS_ENV)
    value = _credential(directory, name) if directory else None
    if value is not None:
        return value, f"systemd credential {Path(str(directory)) / name}"
    variable = SECRET_NAMES[name]
    return environ.get(variable), f"environment variable {variable}"


def _credential(directory: str, name: str) -> str | None:
    path = Path(directory) / name
    try:
        value = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as error:
        raise MissingSecretsError(
            "secrets", [f"secret {name}: cannot read: {error.strerror}"]
        ) from error
    if mode & OTHERS_ACCESS:  # systemd's own credentials never are; a hand-made folder may be
        LOG.warning(
            "secret %s: %s can be read by every user of this machine (mode %04o): "
            "chmod o-rwx it, or let systemd provide it (LoadCredential=)",
            name,
            path,
            mode & 0o7777,
        )
    return value


def _unknown_keys(data: dict[str, Any]) -> list[str]:
    problems = []
    for section, value in data.items():
        if section not in KNOWN_KEYS:
            problems.append(f"unknown section [{section}]")
        elif not isinstance(value, dict):
            problems.append(f"[{section}] must be a table")
        else:
            problems.extend(
                _key_problem(section, key) for key in value if key not in KNOWN_KEYS[section]
            )
    return problems


def _key_problem(section: str, key: str) -> str:
    if SECRET_LOOKING_KEYS.search(key):
        return (
            f"{section}.{key}: secrets do not belong in the configuration file; "
            "use a systemd credential or an environment variable (see README)"
        )
    return f"unknown key {section}.{key}"


def _zone_problems(name: object) -> list[str]:
    if not isinstance(name, str):
        return ["netsuite.timezone: an IANA zone name such as 'America/Los_Angeles'"]
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return [f"netsuite.timezone: unknown IANA zone {name!r}"]
    return []


def _limits(values: dict[str, Any]) -> tuple[Limits, list[str]]:
    problems = []
    accepted: dict[str, int] = {}
    for key, value in values.items():
        if key not in Limits.__dataclass_fields__:
            continue
        ceiling = LIMIT_CEILINGS.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            problems.append(f"limits.{key}: a positive whole number")
        elif ceiling is not None and value > ceiling:
            problems.append(f"limits.{key}: at most {ceiling} (the MIME parsers recurse per level)")
        else:
            accepted[key] = value
    return Limits(**accepted), problems


def _string_set(
    section: dict[str, Any], key: str, problems: list[str], name: str = "rules"
) -> frozenset[str]:
    value = section.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        problems.append(f"{name}.{key}: a list of strings")
        return frozenset()
    return frozenset(item.strip().lower() for item in value)

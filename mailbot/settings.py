"""Configuration: a TOML file (and, later, the environment and systemd credentials).

Every problem in a configuration is collected and reported at once, before anything runs.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailbot.core.policy import Limits, Policy

DEFAULT_CONFIG = Path("/etc/mailbot/mailbot.toml")
CONFIG_ENV = "MAILBOT_CONFIG"

KNOWN_KEYS: dict[str, set[str]] = {
    "netsuite": {"timezone"},
    "rules": {"trusted_authserv_ids", "forwarder_domains", "max_text_length"},
    "limits": set(Limits.__dataclass_fields__),
}


class ConfigurationError(Exception):
    """The configuration cannot be used; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class Settings:
    source: str | None = None
    timezone: str | None = None
    trusted_authserv_ids: frozenset[str] = frozenset()
    forwarder_domains: frozenset[str] = frozenset()
    max_text_length: int = 4000
    limits: Limits = field(default_factory=Limits)

    def policy(self, zone_override: str | None = None) -> Policy:
        zone_name = zone_override or self.timezone or "UTC"
        return Policy(
            sync_zone=ZoneInfo(zone_name),
            sync_zone_name=zone_name,
            limits=self.limits,
            trusted_authserv_ids=self.trusted_authserv_ids,
            forwarder_domains=self.forwarder_domains,
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
    domains = _string_set(rules, "forwarder_domains", problems)
    max_text = rules.get("max_text_length", 4000)
    if not isinstance(max_text, int) or isinstance(max_text, bool) or max_text < 80:
        problems.append("rules.max_text_length: a whole number of at least 80")
    if problems:
        raise ConfigurationError(source, problems)
    return Settings(source, timezone, authserv, domains, max_text, limits)


def _unknown_keys(data: dict[str, Any]) -> list[str]:
    problems = []
    for section, value in data.items():
        if section not in KNOWN_KEYS:
            problems.append(f"unknown section [{section}]")
        elif not isinstance(value, dict):
            problems.append(f"[{section}] must be a table")
        else:
            problems.extend(
                f"unknown key {section}.{key}" for key in value if key not in KNOWN_KEYS[section]
            )
    return problems


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
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            accepted[key] = value
        else:
            problems.append(f"limits.{key}: a positive whole number")
    return Limits(**accepted), problems


def _string_set(section: dict[str, Any], key: str, problems: list[str]) -> frozenset[str]:
    value = section.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        problems.append(f"rules.{key}: a list of strings")
        return frozenset()
    return frozenset(item.strip().lower() for item in value)

"""Settings: every problem at once, secrets only from systemd credentials or the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.settings import (
    ConfigurationError,
    MissingSecretsError,
    read_secrets,
    settings_from_mapping,
)


def test_a_complete_netsuite_section() -> None:
    settings = settings_from_mapping(
        {
            "netsuite": {
                "account": "1234567_SB1",
                "timezone": "America/Chicago",
                "auth": "oauth2",
                "client_id": "abc",
                "certificate_id": "cert-1",
                "concurrency": 3,
            }
        },
        "test",
    )
    assert settings.netsuite is not None
    assert settings.netsuite.account == "1234567_SB1"
    assert settings.netsuite.secret_names == ("netsuite-oauth2-private-key",)
    assert settings.policy().sync_zone_name == "America/Chicago"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings_from_mapping(
            {
                "netsuite": {
                    "account": "12 34",
                    "auth": "oauth2",
                    "concurrency": 0,
                    "base_url": "http://netsuite.example.com",
                    "consumer_secret": "x",
                }
            },
            "test",
        )
    problems = "\n".join(raised.value.problems)
    for expected in (
        "netsuite.account",
        "client_id",
        "certificate_id",
        "netsuite.concurrency",
        "plain http is allowed only to a loopback",
        "secrets do not belong",
    ):
        assert expected in problems
    assert "x" not in [p.strip() for p in raised.value.problems]


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:9", "http://[::1]:80"])
def test_plain_http_only_to_loopback(url: str) -> None:
    settings = settings_from_mapping({"netsuite": {"account": "1", "base_url": url}}, "test")
    assert settings.netsuite is not None and settings.netsuite.base_url == url


def test_secrets_come_from_systemd_credentials_before_the_environment(tmp_path: Path) -> None:
    (tmp_path / "netsuite-consumer-secret").write_text("from-credential\n", encoding="utf-8")
    environ = {
        "CREDENTIALS_DIRECTORY": str(tmp_path),
        "MAILBOT_NETSUITE_CONSUMER_SECRET": "from-env",
        "MAILBOT_NETSUITE_TOKEN_SECRET": "token-from-env",
    }
    secrets = read_secrets(("netsuite-consumer-secret", "netsuite-token-secret"), environ)
    assert secrets == {
        "netsuite-consumer-secret": "from-credential",
        "netsuite-token-secret": "token-from-env",
    }


def test_missing_secrets_are_all_named_and_no_value_is_echoed() -> None:
    environ = {"MAILBOT_NETSUITE_CONSUMER_KEY": "ck-value"}
    names = ("netsuite-consumer-key", "netsuite-consumer-secret", "netsuite-token-id")
    with pytest.raises(MissingSecretsError) as raised:
        read_secrets(names, environ)
    assert len(raised.value.problems) == 2
    assert "ck-value" not in str(raised.value)


def test_the_example_configuration_is_valid() -> None:
    from mailbot.settings import load_settings

    example = Path(__file__).parent.parent.parent / "config" / "mailbot.example.toml"
    settings = load_settings(example)
    assert settings.netsuite is not None and settings.timezone == "America/New_York"


def test_imap_and_daemon_sections_report_every_problem() -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings_from_mapping(
            {
                "imap": {"host": "imap.example.com", "tls": "none", "port": 0, "password": "x"},
                "daemon": {"batch": 0, "idle_timeout": 5000},
            },
            "test",
        )
    problems = "\n".join(raised.value.problems)
    for expected in (
        "imap.username",
        "loopback",
        "imap.port",
        "secrets do not belong",
        "daemon.batch",
        "daemon.idle_timeout",
    ):
        assert expected in problems


def test_daemon_backoff_cap_is_read_and_bounded() -> None:
    settings = settings_from_mapping({"daemon": {"backoff_cap": 2}}, "test")
    assert settings.daemon.backoff_cap == 2
    for wrong in (0.5, 3601, True, "60"):
        with pytest.raises(ConfigurationError) as raised:
            settings_from_mapping({"daemon": {"backoff_cap": wrong}}, "test")
        assert any("daemon.backoff_cap" in problem for problem in raised.value.problems)


def test_an_empty_metrics_address_turns_the_endpoint_off() -> None:
    assert settings_from_mapping({}, "test").daemon.metrics_address == "127.0.0.1:9487"
    off = settings_from_mapping({"daemon": {"metrics_address": ""}}, "test")
    assert off.daemon.metrics_address is None
    with pytest.raises(ConfigurationError) as raised:
        settings_from_mapping({"daemon": {"metrics_address": 9487}}, "test")
    assert any("daemon.metrics_address" in problem for problem in raised.value.problems)

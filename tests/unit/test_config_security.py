"""Secrets and files others can read.

The configuration file is usually readable by every user (/etc/mailbot/mailbot.toml, mode
0644), so a secret written into it is refused outright, whatever the file's mode, with the
key named and the value never echoed. Secrets come from systemd credentials (private to the
service) or the environment; a credential file that other users can read, which only a
hand-made ``$CREDENTIALS_DIRECTORY`` can hold, is warned about.
(`mailbot check` shows the same refusal: tests/system/test_check_cli.py.)
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mailbot.settings import ConfigurationError, load_settings, read_secrets

VALUE = "hunter2-do-not-echo-0d5c"


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("imap", "password"),
        ("imap", "oauth2_client_secret"),
        ("netsuite", "token_secret"),
        ("netsuite", "consumer_key"),
        ("netsuite", "private_key"),
        ("daemon", "api_token"),
        ("imap", "pass"),  # not secret-looking, still refused: every unknown key is
    ],
)
def test_a_readable_configuration_file_holding_a_secret_is_refused(
    tmp_path: Path, section: str, key: str
) -> None:
    config = tmp_path / "mailbot.toml"
    config.write_text(f'[{section}]\n{key} = "{VALUE}"\n', encoding="utf-8")
    config.chmod(0o644)
    with pytest.raises(ConfigurationError) as refused:
        load_settings(config)
    problems = "\n".join(refused.value.problems)
    assert f"{section}.{key}" in problems
    assert VALUE not in str(refused.value) and VALUE not in problems


def test_a_secret_in_a_url_of_the_configuration_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "mailbot.toml"
    config.write_text(
        '[imap]\nhost = "imap.example.com"\nusername = "u"\nauth = "xoauth2"\n'
        'oauth2_client_id = "c"\noauth2_scope = "s"\n'
        f'oauth2_token_url = "https://user:{VALUE}@login.example.com/token"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigurationError) as refused:
        load_settings(config)
    assert "imap.oauth2_token_url: no user or password in the URL" in str(refused.value)
    assert VALUE not in str(refused.value)


def test_a_credential_file_others_can_read_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "imap-password"
    secret.write_text(VALUE, encoding="utf-8")
    secret.chmod(0o644)
    environ = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    with caplog.at_level(logging.WARNING, logger="mailbot.settings"):
        assert read_secrets(("imap-password",), environ) == {"imap-password": VALUE}
    (warning,) = caplog.records
    text = warning.getMessage()
    assert "secret imap-password" in text and "mode 0644" in text and str(secret) in text
    assert VALUE not in text


def test_a_private_credential_file_is_read_without_a_word(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "imap-password"
    secret.write_text(VALUE, encoding="utf-8")
    secret.chmod(0o400)  # what systemd gives LoadCredential= files
    with caplog.at_level(logging.DEBUG, logger="mailbot.settings"):
        read_secrets(("imap-password",), {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert caplog.records == []

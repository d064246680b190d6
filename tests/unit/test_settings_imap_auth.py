"""[imap] auth: a password, or XOAUTH2 with tokens from an OAuth 2.0 token endpoint."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from mailbot.settings import (
    ConfigurationError,
    MissingSecretsError,
    read_secrets,
    settings_from_mapping,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "mailbot.example.toml"
TOKEN_URL = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"  # noqa: S105 - a URL
SCOPE = "https://outlook.office365.com/.default"


def _imap(**keys: Any) -> dict[str, Any]:
    return {"imap": {"host": "outlook.office365.com", "username": "crm@contoso.com", **keys}}


def test_password_is_the_default() -> None:
    imap = settings_from_mapping(_imap(), "test").imap
    assert imap is not None
    assert imap.auth == "password" and imap.secret_names == ("imap-password",)


def test_an_xoauth2_section_is_read() -> None:
    imap = settings_from_mapping(
        _imap(
            auth="xoauth2",
            oauth2_token_url=TOKEN_URL,
            oauth2_client_id="11111111-2222-3333-4444-555555555555",
            oauth2_scope=SCOPE,
            oauth2_ca_file="/etc/mailbot/token-ca.pem",
        ),
        "test",
    ).imap
    assert imap is not None
    assert imap.oauth2_scope == (SCOPE,)
    assert imap.oauth2_token_url == TOKEN_URL and imap.oauth2_ca_file == "/etc/mailbot/token-ca.pem"
    assert imap.secret_names == ("imap-oauth2-client-secret",)


@pytest.mark.parametrize(
    ("given", "read"),
    [
        ("openid  https://outlook.office365.com/.default", ("openid", SCOPE)),
        (["openid", SCOPE], ("openid", SCOPE)),
    ],
)
def test_the_scope_is_a_string_of_scopes_or_a_list(given: object, read: tuple[str, ...]) -> None:
    keys = {"oauth2_token_url": TOKEN_URL, "oauth2_client_id": "app", "oauth2_scope": given}
    imap = settings_from_mapping(_imap(auth="xoauth2", **keys), "test").imap
    assert imap is not None and imap.oauth2_scope == read


def test_every_xoauth2_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings_from_mapping(
            _imap(
                auth="xoauth2",
                oauth2_token_url="http://login.example.com/token",  # noqa: S106 - a URL
                oauth2_scope=["ok", "two words", 3],
                oauth2_ca_file="",
            ),
            "test",
        )
    problems = raised.value.problems
    assert any(p.startswith("imap.oauth2_client_id: required") for p in problems)
    assert any(p.startswith("imap.oauth2_token_url: an https URL") for p in problems)
    assert any(p.startswith("imap.oauth2_scope:") for p in problems)
    assert any(p.startswith("imap.oauth2_ca_file:") for p in problems)
    assert len(problems) == 4


def test_required_keys_and_unknown_modes_are_named() -> None:
    with pytest.raises(ConfigurationError) as missing:
        settings_from_mapping(_imap(auth="xoauth2"), "test")
    assert {p.split(":")[0] for p in missing.value.problems} == {
        "imap.oauth2_token_url",
        "imap.oauth2_client_id",
        "imap.oauth2_scope",
    }
    with pytest.raises(ConfigurationError, match=r"imap\.auth: 'password' or 'xoauth2'"):
        settings_from_mapping(_imap(auth="oauth2"), "test")


def test_a_token_url_with_credentials_in_it_is_refused() -> None:
    keys = {"oauth2_client_id": "app", "oauth2_scope": SCOPE}
    url = "https://app:s3cret@login.example.com/token"
    with pytest.raises(ConfigurationError) as raised:
        settings_from_mapping(_imap(auth="xoauth2", oauth2_token_url=url, **keys), "test")
    assert raised.value.problems == [
        "imap.oauth2_token_url: no user or password in the URL (the secret is a secret)"
    ]
    assert "s3cret" not in str(raised.value)


def test_oauth2_keys_without_xoauth2_are_a_mistake() -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings_from_mapping(_imap(oauth2_client_id="app", oauth2_scope=SCOPE), "test")
    assert raised.value.problems == [
        "imap.oauth2_client_id: only with auth = 'xoauth2'",
        "imap.oauth2_scope: only with auth = 'xoauth2'",
    ]


def test_the_client_secret_is_a_credential_or_a_variable(tmp_path: Path) -> None:
    (tmp_path / "imap-oauth2-client-secret").write_text("from-credential\n")
    environ = {"MAILBOT_IMAP_OAUTH2_CLIENT_SECRET": "from-environment"}
    names = ("imap-oauth2-client-secret",)
    assert read_secrets(names, environ) == {"imap-oauth2-client-secret": "from-environment"}
    with_credentials = {**environ, "CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert read_secrets(names, with_credentials) == {"imap-oauth2-client-secret": "from-credential"}
    with pytest.raises(MissingSecretsError, match="MAILBOT_IMAP_OAUTH2_CLIENT_SECRET"):
        read_secrets(names, {})


def test_the_commented_xoauth2_example_is_valid() -> None:
    """The example file's commented XOAUTH2 lines, switched on, make a valid [imap]."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    imap = lines[lines.index("[imap]") :]
    imap = imap[: next(i for i, line in enumerate(imap) if line.startswith("[daemon]"))]
    switched_on = [
        line.removeprefix("# ") if line.startswith(("# auth =", "# oauth2_")) else line
        for line in imap
    ]
    section = tomllib.loads("\n".join(switched_on))["imap"]
    settings = settings_from_mapping({"imap": section}, str(EXAMPLE))
    assert settings.imap is not None and settings.imap.auth == "xoauth2"
    assert settings.imap.oauth2_scope == (SCOPE,)

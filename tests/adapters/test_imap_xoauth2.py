"""XOAUTH2: access tokens from a real OAuth 2.0 token endpoint, accepted by a real Dovecot.

The authority (tests/oauth2_fixtures.py) is an HTTPS server with a token endpoint (client
credentials grant) and an introspection endpoint that Dovecot's oauth2 passdb asks about
every token; its counters show how many tokens mailbot fetched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailbot.adapters.imap import ImapMailbox
from mailbot.adapters.oauth2_token import RENEWAL_MARGIN, ClientCredentialsTokens, OAuth2Client
from mailbot.ports import FatalError, TemporaryError
from tests.imap_fixtures import DovecotServer
from tests.oauth2_fixtures import CLIENT_ID, CLIENT_SECRET, SCOPE, OAuth2Authority

INVITATION = (
    Path(__file__).resolve().parents[1]
    / "fixtures"
    / "corpus"
    / "eml"
    / "calmailproc__test-01-1.eml"
)


class ManualClock:
    """A monotonic clock that moves only when told (the token cache's notion of now)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def make_tokens(oauth2_authority: OAuth2Authority) -> Callable[..., ClientCredentialsTokens]:
    """ClientCredentialsTokens for the authority; keyword arguments override the defaults."""

    def make(
        *, client_secret: str = CLIENT_SECRET, clock: Any = None, **overrides: Any
    ) -> ClientCredentialsTokens:
        values: dict[str, Any] = {
            "token_url": oauth2_authority.token_url,
            "client_id": CLIENT_ID,
            "scopes": (SCOPE,),
            "ca_file": oauth2_authority.ca_file,
            "connect_timeout": 5.0,
            "read_timeout": 10.0,
        }
        values.update(overrides)
        extra = {"clock": clock} if clock is not None else {}
        return ClientCredentialsTokens(OAuth2Client(**values), client_secret=client_secret, **extra)

    return make


@pytest.fixture
def xoauth2_mailbox(
    xoauth2_dovecot: DovecotServer, make_tokens: Callable[..., ClientCredentialsTokens]
) -> Iterator[Callable[..., ImapMailbox]]:
    """An ImapMailbox on the XOAUTH2 Dovecot, logging in with tokens (closed after the test)."""
    opened: list[ImapMailbox] = []

    def make(tokens: ClientCredentialsTokens | None = None) -> ImapMailbox:
        mailbox = ImapMailbox(
            xoauth2_dovecot.account.config(), oauth2_token=tokens or make_tokens()
        )
        opened.append(mailbox)
        return mailbox

    yield make
    for mailbox in opened:
        mailbox.close()


def _xoauth2_logins(server: DovecotServer, expected: int) -> int:
    """Successful XOAUTH2 logins in Dovecot's log, once ``expected`` are there (its log
    process writes them a moment after the client is in) or 10 s have passed."""
    deadline = time.monotonic() + 10
    while True:
        lines = server.log().splitlines()
        found = sum(1 for line in lines if "Login: user=" in line and "method=XOAUTH2" in line)
        if found >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


# --- against Dovecot ---------------------------------------------------------------------


def test_a_mailbox_logs_in_with_xoauth2_and_fetches(
    xoauth2_dovecot: DovecotServer,
    oauth2_authority: OAuth2Authority,
    xoauth2_mailbox: Callable[..., ImapMailbox],
) -> None:
    uid = xoauth2_dovecot.append("INBOX", INVITATION.read_bytes())
    mailbox = xoauth2_mailbox()

    mails = mailbox.fetch_new(10)

    assert [mail.key.uid for mail in mails] == [str(uid)]
    assert b"text/calendar" in mails[0].raw.lower()
    assert oauth2_authority.token_requests == 1
    assert oauth2_authority.introspection_requests == 1  # Dovecot asked about that token
    assert _xoauth2_logins(xoauth2_dovecot, 1) == 1


def test_the_token_is_cached_across_reconnects(
    xoauth2_dovecot: DovecotServer,
    oauth2_authority: OAuth2Authority,
    xoauth2_mailbox: Callable[..., ImapMailbox],
) -> None:
    mailbox = xoauth2_mailbox()
    for _ in range(5):
        mailbox.reconnect()
        assert mailbox.fetch_new(10) == []

    assert oauth2_authority.token_requests == 1
    assert oauth2_authority.introspection_requests == 5
    assert _xoauth2_logins(xoauth2_dovecot, 5) == 5


def test_a_revoked_token_is_renewed_once_and_the_login_succeeds(
    xoauth2_dovecot: DovecotServer,
    oauth2_authority: OAuth2Authority,
    xoauth2_mailbox: Callable[..., ImapMailbox],
    caplog: pytest.LogCaptureFixture,
) -> None:
    xoauth2_dovecot.append("INBOX", INVITATION.read_bytes())
    mailbox = xoauth2_mailbox()
    mailbox.reconnect()
    oauth2_authority.revoke_issued()  # introspection now says "active": false for it

    with caplog.at_level(logging.INFO, logger="mailbot"):
        mailbox.reconnect()
        mails = mailbox.fetch_new(10)

    assert len(mails) == 1
    assert oauth2_authority.token_requests == 2
    assert oauth2_authority.introspection_requests == 3  # good, refused, renewed
    assert "refused the access token; trying a new one" in caplog.text
    assert _xoauth2_logins(xoauth2_dovecot, 2) == 2


def test_a_token_refused_again_after_renewal_is_fatal(
    xoauth2_dovecot: DovecotServer,
    oauth2_authority: OAuth2Authority,
    xoauth2_mailbox: Callable[..., ImapMailbox],
) -> None:
    # The application may open another mailbox, not this one (no mailbox permission).
    oauth2_authority.username = "test000@example.test"
    mailbox = xoauth2_mailbox()

    with pytest.raises(FatalError, match="refused") as raised:
        mailbox.reconnect()

    assert oauth2_authority.token_requests == 2  # the first token and one renewal, no more
    assert xoauth2_dovecot.username in str(raised.value)


def test_a_wrong_client_secret_is_fatal_and_names_the_endpoints_error(
    oauth2_authority: OAuth2Authority,
    xoauth2_mailbox: Callable[..., ImapMailbox],
    make_tokens: Callable[..., ClientCredentialsTokens],
) -> None:
    wrong = "wrong~secret~value~1234"
    mailbox = xoauth2_mailbox(make_tokens(client_secret=wrong))

    with pytest.raises(FatalError) as raised:
        mailbox.reconnect()

    message = str(raised.value)
    assert "invalid_client" in message
    assert "Invalid client secret provided." in message
    assert oauth2_authority.token_url in message
    assert wrong not in message and CLIENT_SECRET not in message
    assert oauth2_authority.token_requests == 1


def test_the_token_endpoint_down_is_temporary_for_the_mailbox(
    oauth2_authority: OAuth2Authority, xoauth2_mailbox: Callable[..., ImapMailbox]
) -> None:
    mailbox = xoauth2_mailbox()
    oauth2_authority.stop()

    with pytest.raises(TemporaryError, match="unreachable"):
        mailbox.reconnect()


def test_a_connection_lost_during_authenticate_is_temporary_and_keeps_the_token(
    xoauth2_dovecot: DovecotServer,
    oauth2_authority: OAuth2Authority,
    xoauth2_mailbox: Callable[..., ImapMailbox],
) -> None:
    """The server's login process dies while it checks the token: imapclient reports the
    closed connection as a LoginError, which must not pass for a refusal (exit 78, no
    restart) nor cost a token. (Killing the login process, not stopping the whole server,
    closes the connection without any answer first, whatever the machine's load.)"""
    oauth2_authority.introspection_open.clear()

    def stop_while_authenticating() -> None:
        if oauth2_authority.introspection_waiting.wait(30):
            _kill_login_processes(xoauth2_dovecot)
        oauth2_authority.introspection_open.set()

    stopper = threading.Thread(target=stop_while_authenticating)
    stopper.start()
    mailbox = xoauth2_mailbox()
    try:
        with pytest.raises(TemporaryError, match="lost during login"):
            mailbox.reconnect()
    finally:
        stopper.join(60)

    assert oauth2_authority.token_requests == 1


def test_neither_the_secret_nor_a_token_is_logged(
    xoauth2_dovecot: DovecotServer,
    oauth2_authority: OAuth2Authority,
    xoauth2_mailbox: Callable[..., ImapMailbox],
    caplog: pytest.LogCaptureFixture,
) -> None:
    xoauth2_dovecot.append("INBOX", INVITATION.read_bytes())
    mailbox = xoauth2_mailbox()
    with caplog.at_level(logging.DEBUG):
        mailbox.reconnect()
        oauth2_authority.revoke_issued()
        mailbox.reconnect()
        assert len(mailbox.fetch_new(10)) == 1

    assert caplog.records, "DEBUG logging was captured"
    assert "access token from" in caplog.text
    assert CLIENT_SECRET not in caplog.text
    for token in oauth2_authority.issued:
        assert token not in caplog.text


# --- the token endpoint alone ------------------------------------------------------------


def test_an_unknown_scope_is_fatal_with_the_endpoints_description(
    make_tokens: Callable[..., ClientCredentialsTokens],
) -> None:
    tokens = make_tokens(scopes=("https://graph.microsoft.com/.default",))

    with pytest.raises(FatalError, match="invalid_scope: The provided scope"):
        tokens()


def test_an_unknown_client_is_fatal(make_tokens: Callable[..., ClientCredentialsTokens]) -> None:
    with pytest.raises(FatalError, match="unauthorized_client: Application with identifier"):
        make_tokens(client_id="someone-else")()


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_busy_or_failing_token_endpoint_is_temporary(
    status: int,
    oauth2_authority: OAuth2Authority,
    make_tokens: Callable[..., ClientCredentialsTokens],
) -> None:
    oauth2_authority.token_status = status
    tokens = make_tokens()

    with pytest.raises(TemporaryError, match=f"HTTP {status}"):
        tokens()
    oauth2_authority.token_status = None
    assert tokens()  # the same source works once the endpoint is back


def test_a_token_endpoint_that_is_not_trusted_is_fatal(
    make_tokens: Callable[..., ClientCredentialsTokens],
) -> None:
    tokens = make_tokens(ca_file=None)  # the system CAs do not know the test CA

    with pytest.raises(FatalError, match="not trusted; checked against the system CAs"):
        tokens()


def test_the_token_is_replaced_shortly_before_it_expires(
    oauth2_authority: OAuth2Authority, make_tokens: Callable[..., ClientCredentialsTokens]
) -> None:
    oauth2_authority.expires_in = 3600
    clock = ManualClock()
    tokens = make_tokens(clock=clock)
    first = tokens()
    renewal_due = clock.now + 3600 - RENEWAL_MARGIN

    clock.now = renewal_due - 1
    assert tokens() == first
    assert oauth2_authority.token_requests == 1

    clock.now = renewal_due
    second = tokens()
    assert second != first
    assert oauth2_authority.token_requests == 2


def test_renew_replaces_only_the_refused_token(
    oauth2_authority: OAuth2Authority, make_tokens: Callable[..., ClientCredentialsTokens]
) -> None:
    tokens = make_tokens()
    first = tokens()
    second = tokens.renew(first)
    # A second caller that was refused the first token gets the one already renewed.
    assert tokens.renew(first) == second != first
    assert oauth2_authority.token_requests == 2


def test_callers_on_many_threads_share_one_fetch(
    oauth2_authority: OAuth2Authority, make_tokens: Callable[..., ClientCredentialsTokens]
) -> None:
    tokens = make_tokens()
    start = threading.Barrier(8)
    seen: list[str] = []

    def take() -> None:
        start.wait(timeout=30)
        seen.append(tokens())

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(seen) == 8 and len(set(seen)) == 1
    assert oauth2_authority.token_requests == 1


def test_only_https_token_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="https"):
        OAuth2Client("http://127.0.0.1:8080/token", CLIENT_ID, (SCOPE,))
    with pytest.raises(ValueError, match="user or password"):
        OAuth2Client("https://app:secret@login.example.com/token", CLIENT_ID, (SCOPE,))


def _kill_login_processes(server: DovecotServer) -> None:
    """SIGKILL the server's imap-login processes (those of its process group)."""
    assert server.process is not None
    group = server.process.pid
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        if name == "imap-login" and int(fields[2]) == group:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(stat.parent.name), signal.SIGKILL)

"""The ``Mailbox`` port over IMAP (imapclient): TLS, timeouts, UIDVALIDITY, partial fetch.

Connection: implicit TLS or STARTTLS, with the server's certificate and host name verified
against the system CAs or a configured CA file (``ca_file``); plaintext only when configured
(``tls="none"``) and only to a loopback host. ``TCP_NODELAY`` is set (some servers meet
Nagle's algorithm with delayed ACKs and lose ~40 ms per command), and every socket operation
has a timeout. The connection is opened on first use, and again after any error.

Login: LOGIN with the password, or AUTHENTICATE XOAUTH2 with an OAuth 2.0 access token
from an :class:`AccessTokens` source (Microsoft 365). A refused token gets one renewal and
one more try on the same connection, since a cached token can be revoked or expire early.

Partial fetch: the BODYSTRUCTURE and the headers of a batch come in one FETCH; then only the
parts the core reads (calendar parts, TNEF containers, delivery reports) are fetched, each
with its own MIME header, in one FETCH per group of messages that need the same sections.
``FetchedMail.raw`` is the message rebuilt from these pieces: the original header, the
multipart containers and message/rfc822 wrappers on the way to the fetched parts (with their
boundaries; a nested multipart's header is written from its BODYSTRUCTURE, which holds all
it says, the header of a forwarded message is fetched), and an empty ``text/plain``
stand-in for every other part.
The stand-ins keep the part numbers, so the core's locations ("2", "3.1/invite.ics") are the
server's IMAP sections, and "forwarded" (inside a message/rfc822) and "bounce" (a delivery
report) read as in the whole message. Parts left on the server that the core would have
counted as ignored attachments are counted in ``FetchedMail.ignored_parts``: the core's
``attachments_ignored`` for the whole message is the sum of the two. A message without any
such part needs no second FETCH: its header and stand-ins (the core says ``no_calendar_part``).
When the BODYSTRUCTURE cannot be used (a server's malformed answer), the whole message is
fetched instead.

Size: ``FetchedMail.size`` is RFC822.SIZE, the whole message on the server. Because the big
attachments stay there, the core's ``max_message_bytes`` limit applies to what was fetched.
``ImapConfig.max_message_bytes`` bounds what this adapter downloads for one message: when
the wanted parts (by BODYSTRUCTURE) are larger, they become stand-ins too and a warning is
logged (the core then says ``no_calendar_part``), so a hostile "calendar" of a gigabyte
never reaches memory.

Filing: ``file_away_all`` moves messages to the folder of their outcome (created when missing)
with MOVE (RFC 6851), else COPY + ``\\Deleted`` + UID EXPUNGE (UIDPLUS; without UIDPLUS the
message stays flagged ``\\Deleted``, which ``fetch_new`` skips). With
``mark_with_keywords=True`` it stores ``$MailbotSynced`` / ``$MailbotSkipped`` /
``$MailbotFailed`` plus ``$MailbotDone`` and leaves the message in place. A read-only mailbox
(dry-run) uses EXAMINE, never changes the server, and only remembers the filed keys so that
``fetch_new`` does not return them again in this process.

Errors: imapclient, socket and TLS errors are translated here into the port's errors.
``TemporaryError`` (connection refused or lost, timeouts, BYE, ``[UNAVAILABLE]`` and other
transient response codes, a UIDVALIDITY change) and ``FatalError`` (login refused, TLS
certificate not trusted or handshake refused, plaintext refused, no STARTTLS, the watched
folder missing). After any error the connection is dropped; the next call (or
:meth:`ImapMailbox.reconnect`) opens a new one.

One ``ImapMailbox`` is one IMAP connection: use it from one thread.
"""

from __future__ import annotations

import email.errors
import email.header
import email.message
import email.utils
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Protocol, Self

from imapclient import IMAPClient, SocketTimeout
from imapclient import exceptions as imap_errors

from mailbot.core.mime import CALENDAR_EXTENSIONS, CALENDAR_TYPES, TEXT_BODY_TYPES, TNEF_TYPES
from mailbot.ports import FatalError, FetchedMail, MessageKey, PortError, TemporaryError

LOG = logging.getLogger("mailbot.imap")

__all__ = [
    "DONE_KEYWORD",
    "OUTCOME_KEYWORDS",
    "AccessTokens",
    "ImapConfig",
    "ImapMailbox",
    "MailboxFacts",
    "Part",
    "UidValidityChangedError",
    "is_loopback",
    "parse_structure",
]

TlsMode = Literal["implicit", "starttls", "none"]

DONE_KEYWORD: Final = "$MailbotDone"
OUTCOME_KEYWORDS: Final = {
    "synced": "$MailbotSynced",
    "skipped": "$MailbotSkipped",
    "failed": "$MailbotFailed",
}
# RFC 2177: a server may end an IDLE after 30 minutes; renew well before.
IDLE_RENEWAL_SECONDS: Final = 25 * 60
# Response codes (RFC 5530) that say "try again later" rather than "this cannot work".
_TRANSIENT_CODES: Final = ("[UNAVAILABLE]", "[INUSE]", "[LIMIT]", "[SERVERBUG]", "[EXPUNGEISSUED]")
_HEADER: Final = "HEADER"
_WANTED_LEAF_TYPES: Final = CALENDAR_TYPES | TNEF_TYPES | {"message/delivery-status"}


@dataclass(frozen=True, slots=True)
class ImapConfig:
    """Where the shared mailbox is and how it is used. The password is passed separately.

    ``tls``: "implicit" (port 993), "starttls" (port 143) or "none" (loopback only).
    ``ca_file``: a PEM file of CA certificates to trust instead of the system's.
    ``max_message_bytes``: the most this adapter downloads for one message.
    ``use_idle``: IDLE when the server has it; False polls with NOOP every ``poll_interval``.
    """

    host: str
    port: int
    username: str
    folder: str = "INBOX"
    tls: TlsMode = "implicit"
    ca_file: str | Path | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    synced_folder: str = "Synced"
    skipped_folder: str = "Skipped"
    failed_folder: str = "Failed"
    mark_with_keywords: bool = False
    max_message_bytes: int = 25 * 1024 * 1024
    use_idle: bool = True
    poll_interval: float = 30.0

    def __post_init__(self) -> None:
        if self.tls not in ("implicit", "starttls", "none"):
            raise ValueError(f"tls must be implicit, starttls or none, not {self.tls!r}")
        if self.max_message_bytes <= 0 or self.poll_interval <= 0:
            raise ValueError("max_message_bytes and poll_interval must be positive")

    @property
    def source(self) -> str:
        """``MessageKey.source`` of the messages of the watched folder."""
        return f"imap:{self.folder}"

    def outcome_folder(self, outcome: str) -> str:
        folders = {
            "synced": self.synced_folder,
            "skipped": self.skipped_folder,
            "failed": self.failed_folder,
        }
        if outcome not in folders:
            raise ValueError(f"unknown outcome {outcome!r}: synced, skipped or failed")
        return folders[outcome]


class UidValidityChangedError(TemporaryError):
    """The folder's UIDVALIDITY is not the key's: its UIDs now name other messages (re-scan)."""


@dataclass(frozen=True, slots=True)
class MailboxFacts:
    """What the server offers and how the folders stand (for ``mailbot check``).

    ``messages`` and ``uidvalidity`` are those of the watched folder at its SELECT (or
    EXAMINE); ``outcome_folders`` maps each outcome folder to whether it exists now.
    """

    capabilities: frozenset[str]
    uidvalidity: int
    messages: int
    outcome_folders: dict[str, bool]


class AccessTokens(Protocol):
    """Where XOAUTH2 access tokens come from (``oauth2_token.ClientCredentialsTokens``)."""

    def __call__(self) -> str:
        """A token that should be valid now (cached by the source)."""
        ...

    def renew(self, refused: str) -> str:
        """A new token instead of ``refused``, which the server did not accept."""
        ...


class ImapMailbox:
    """The shared mailbox over one IMAP connection (see the module documentation)."""

    def __init__(
        self,
        config: ImapConfig,
        *,
        password: str | None = None,
        oauth2_token: AccessTokens | None = None,
        read_only: bool = False,
    ) -> None:
        if (password is None) == (oauth2_token is None):
            raise ValueError("give either a password or an OAuth 2.0 token source")
        self.config = config
        self.read_only = read_only
        self._password = password
        self._oauth2_token = oauth2_token
        self._client: IMAPClient | None = None
        self._capabilities: frozenset[str] = frozenset()
        self._uidvalidity: int | None = None
        self._messages = 0  # EXISTS of the watched folder at the last SELECT
        self._folders: set[str] = set()  # outcome folders known to exist
        self._filed: set[MessageKey] = set()  # read-only mode: what would have been filed

    def __repr__(self) -> str:
        cfg = self.config
        mode = ", read-only" if self.read_only else ""
        return (
            f"ImapMailbox({cfg.username}@{cfg.host}:{cfg.port}/{cfg.folder}, tls={cfg.tls}{mode})"
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- the port ---------------------------------------------------------------------

    @property
    def source(self) -> str:
        return self.config.source

    @property
    def uidvalidity(self) -> int | None:
        """UIDVALIDITY of the watched folder at the last SELECT (None before connecting)."""
        return self._uidvalidity

    def fetch_new(self, limit: int) -> list[FetchedMail]:
        """Messages waiting in the watched folder, oldest UID first, at most ``limit``."""
        if limit <= 0:
            return []
        with self._session("fetch new mail") as client:
            uids = sorted(int(uid) for uid in client.search(self._waiting_criteria()))
            if self._filed:
                uids = [uid for uid in uids if self._key(uid) not in self._filed]
            batch = uids[:limit]
            return self._fetch(client, batch) if batch else []

    def message_keys(self, since: date | None = None) -> list[MessageKey]:
        """The keys of the messages ``fetch_new`` would see, oldest UID first, all of them;
        with ``since``, only those that reached the folder on or after that day (IMAP
        ``SEARCH SINCE``: the INTERNALDATE's day, as the server counts days)."""
        criteria: list[Any] = self._waiting_criteria()
        if since is not None:
            criteria += ["SINCE", since]
        with self._session("list the messages") as client:
            uids = sorted(int(uid) for uid in client.search(criteria))
            keys = [self._key(uid) for uid in uids]
        return [key for key in keys if key not in self._filed]

    def fetch_messages(self, keys: Sequence[MessageKey]) -> list[FetchedMail]:
        """These messages (from ``message_keys``), with the same partial fetch as
        ``fetch_new``, in the order given; one expunged meanwhile is left out."""
        if not keys:
            return []
        if any(key.source != self.config.source for key in keys):
            raise ValueError(f"fetch_messages: keys of another folder than {self.config.source}")
        with self._session("fetch messages") as client:
            if any(key.uidvalidity != self._uidvalidity for key in keys):
                raise UidValidityChangedError(
                    f"{self.config.folder}: UIDVALIDITY is {self._uidvalidity}, not "
                    f"{keys[0].uidvalidity}; its UIDs name other messages now (list again)"
                )
            return self._fetch(client, [int(key.uid) for key in keys])

    def file_away(self, key: MessageKey, outcome: str) -> None:
        """Move (or mark) the message for its outcome; a read-only mailbox changes nothing."""
        self.file_away_all([key], outcome)

    def file_away_all(self, keys: Sequence[MessageKey], outcome: str) -> None:
        """Move (or mark) these messages for one outcome with one command (a MOVE of a UID
        set costs a server about what a MOVE of one UID does); read-only: nothing changes."""
        folder = self.config.outcome_folder(outcome)
        if not keys:
            return
        if any(key.source != self.config.source for key in keys):
            raise ValueError(f"file_away: keys of another folder than {self.config.source}")
        if self.read_only:
            self._filed.update(keys)
            for key in keys:
                LOG.info("read-only: would file UID %s as %s", key.uid, outcome)
            return
        with self._session(f"file {len(keys)} messages as {outcome}") as client:
            if any(key.uidvalidity != self._uidvalidity for key in keys):
                raise UidValidityChangedError(
                    f"{self.config.folder}: UIDVALIDITY is {self._uidvalidity}, a key has "
                    f"another; its UIDs name other messages now (fetch again)"
                )
            uids = [int(key.uid) for key in keys]
            if self.config.mark_with_keywords:
                client.add_flags(uids, [OUTCOME_KEYWORDS[outcome], DONE_KEYWORD], silent=True)
            else:
                self._move(client, uids, folder)
            LOG.debug("filed UIDs %s as %s", ",".join(map(str, uids)), outcome)

    def wait_for_mail(self, timeout: float) -> bool:
        """Block until the server reports new mail (True) or ``timeout`` seconds pass (False).

        With IDLE, each IDLE lasts at most 25 minutes and is then renewed; without it (or
        with ``use_idle=False``) a NOOP every ``poll_interval`` seconds asks the server.
        """
        with self._session("wait for mail") as client:
            deadline = time.monotonic() + max(timeout, 0.0)
            _, responses = client.noop()  # mail that came since the last command
            if _reports_new_mail(responses):
                return True
            if self.config.use_idle and "IDLE" in self._capabilities:
                return _idle(client, deadline)
            return _poll(client, deadline, self.config.poll_interval)

    def close(self) -> None:
        """Log out (best effort) and forget the connection."""
        client, self._client = self._client, None
        if client is not None:
            try:
                client.logout()
            except Exception:  # noqa: BLE001 - the connection may already be gone
                with suppress(Exception):
                    client.shutdown()

    @property
    def capabilities(self) -> frozenset[str]:
        """The server's capabilities after the last login (upper case; empty before one).
        Kept when the watched folder could not be opened after that login."""
        return self._capabilities

    def describe(self) -> MailboxFacts:
        """Capabilities, the watched folder and which outcome folders exist; connects if
        needed. Only looks (LIST): nothing on the server changes."""
        cfg = self.config
        with self._session("list the folders") as client:
            folders = {
                name: bool(client.folder_exists(name))
                for name in (cfg.synced_folder, cfg.skipped_folder, cfg.failed_folder)
            }
            return MailboxFacts(self._capabilities, self._uidvalidity or 0, self._messages, folders)

    def reconnect(self) -> None:
        """Drop the connection (if any) and open a new one: connect, TLS, log in, select."""
        self._drop()
        with self._session("connect"):
            pass

    # --- connection -------------------------------------------------------------------

    @contextmanager
    def _session(self, what: str) -> Iterator[IMAPClient]:
        """The live connection (opened if needed); errors leave as port errors."""
        try:
            client = self._client if self._client is not None else self._connect()
            yield client
        except PortError:
            raise
        except BaseException as error:
            self._drop()
            translated = self._port_error(error, what)
            if translated is None:
                raise
            raise translated from error

    def _connect(self) -> IMAPClient:
        cfg = self.config
        if cfg.tls == "none" and not is_loopback(cfg.host):
            raise FatalError(
                f"plaintext IMAP refused: {cfg.host} is not a loopback address; "
                'use tls = "implicit" or "starttls"'
            )
        context = self._tls_context() if cfg.tls != "none" else None
        timeout = SocketTimeout(connect=cfg.connect_timeout, read=cfg.read_timeout)
        try:
            client = IMAPClient(
                cfg.host, cfg.port, ssl=cfg.tls == "implicit", ssl_context=context, timeout=timeout
            )
        except ssl.SSLError as error:
            raise self._tls_refused(error) from error
        try:
            client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if cfg.tls == "starttls":
                try:
                    client.starttls(context)
                except ssl.SSLError as error:
                    raise self._tls_refused(error) from error
            self._login(client)
            client.normalise_times = False  # INTERNALDATE as an aware datetime
            self._capabilities = frozenset(
                capability.decode("ascii", "replace").upper()
                for capability in client.capabilities()
            )
            selected = self._select(client)
        except BaseException:
            with suppress(Exception):
                client.shutdown()
            raise
        self._uidvalidity = int(selected[b"UIDVALIDITY"])
        self._messages = int(selected.get(b"EXISTS") or 0)
        self._client = client
        LOG.info(
            "connected to %s:%s as %s, %s %s (UIDVALIDITY %s)",
            cfg.host,
            cfg.port,
            cfg.username,
            "examining" if self.read_only else "selected",
            cfg.folder,
            self._uidvalidity,
        )
        return client

    def _select(self, client: IMAPClient) -> dict[bytes, Any]:
        """SELECT the watched folder (EXAMINE when read-only); a refusal is the admin's."""
        try:
            selected: dict[bytes, Any] = client.select_folder(
                self.config.folder, readonly=self.read_only
            )
        except imap_errors.IMAPClientAbortError:
            raise
        except imap_errors.IMAPClientError as error:
            text = _error_text(error)
            if any(code in text for code in _TRANSIENT_CODES):
                raise TemporaryError(f"cannot open {self.config.folder!r} now: {text}") from error
            raise FatalError(f"cannot open the folder {self.config.folder!r}: {text}") from error
        return selected

    def _tls_context(self) -> ssl.SSLContext:
        ca_file = self.config.ca_file
        try:
            context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        except (OSError, ssl.SSLError) as error:
            raise FatalError(f"cannot load the CA file {ca_file}: {error}") from error
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def _tls_refused(self, error: ssl.SSLError) -> PortError:
        where = f"{self.config.host}:{self.config.port}"
        if isinstance(error, ssl.SSLCertVerificationError):
            trusted = self.config.ca_file or "the system CAs"
            return FatalError(
                f"TLS certificate of {where} not trusted ({error.verify_message}); "
                f"checked against {trusted}"
            )
        if isinstance(error, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return TemporaryError(f"TLS handshake with {where} cut off: {error}")
        return FatalError(f"TLS handshake with {where} failed: {error}")

    def _login(self, client: IMAPClient) -> None:
        cfg = self.config
        if self._oauth2_token is None:
            client.login(cfg.username, self._password or "")
            return
        token = self._oauth2_token()
        try:
            client.oauth2_login(cfg.username, token)
        except imap_errors.LoginError as error:
            if _connection_lost(error) or any(
                code in _error_text(error) for code in _TRANSIENT_CODES
            ):
                raise
            # A cached token may have been revoked or have expired early: one new token,
            # one more try on the same connection; a second refusal is the admin's.
            LOG.info("%s:%s refused the access token; trying a new one", cfg.host, cfg.port)
            client.oauth2_login(cfg.username, self._oauth2_token.renew(token))

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with suppress(Exception):
                client.shutdown()

    def _port_error(self, error: BaseException, what: str) -> PortError | None:
        """The port error for an imapclient, socket or TLS error; None for any other."""
        where = f"{self.config.host}:{self.config.port}"
        text = _error_text(error)
        if isinstance(error, imap_errors.LoginError):
            return self._login_error(error)
        if isinstance(error, ssl.SSLCertVerificationError):
            return self._tls_refused(error)
        if isinstance(error, imap_errors.CapabilityError):
            return FatalError(f"{where} cannot {what}: {text}")
        if isinstance(error, imap_errors.IMAPClientError | OSError):
            return TemporaryError(_temporary_text(error, where, what, text))
        return None

    def _login_error(self, error: imap_errors.LoginError) -> PortError:
        where = f"{self.config.host}:{self.config.port}"
        text = _error_text(error)
        if _connection_lost(error):
            return TemporaryError(f"connection to {where} lost during login: {text}")
        if any(code in text for code in _TRANSIENT_CODES):
            return TemporaryError(f"login to {where} deferred: {text}")
        return FatalError(f"login to {where} as {self.config.username} refused: {text}")

    # --- fetching ---------------------------------------------------------------------

    def _waiting_criteria(self) -> list[Any]:
        """SEARCH criteria of the messages not handled yet (not deleted, not marked done)."""
        criteria: list[Any] = ["NOT", "DELETED"]
        if self.config.mark_with_keywords:
            criteria += ["NOT", "KEYWORD", DONE_KEYWORD]
        return criteria

    def _key(self, uid: int) -> MessageKey:
        return MessageKey(self.config.source, self._uidvalidity or 0, str(uid))

    def _fetch(self, client: IMAPClient, uids: Sequence[int]) -> list[FetchedMail]:
        """BODYSTRUCTURE and header of the batch in one FETCH, then the wanted sections."""
        summary = client.fetch(
            uids, ["RFC822.SIZE", "INTERNALDATE", "BODYSTRUCTURE", "BODY.PEEK[HEADER]"]
        )
        plans: dict[int, _Plan] = {}
        for uid in uids:
            data = summary.get(uid)
            if data is None:  # expunged by someone else in between
                continue
            plans[uid] = self._plan(uid, data)
        groups: dict[tuple[str, ...], list[int]] = {}
        for uid, plan in plans.items():
            if plan.sections:
                groups.setdefault(plan.sections, []).append(uid)
        fetched: dict[int, dict[str, bytes]] = {}
        for sections, group in groups.items():
            answer = client.fetch(group, [f"BODY.PEEK[{section}]" for section in sections])
            for uid in group:
                data = answer.get(uid, {})
                fetched[uid] = {
                    section: _bytes(data.get(_body_key(section))) for section in sections
                }
        mails = []
        for uid, plan in plans.items():
            if plan.sections and uid not in fetched:
                continue  # gone between the two FETCHes
            mails.append(plan.mail(self._key(uid), fetched.get(uid, {})))
        return mails

    def _plan(self, uid: int, data: dict[bytes, Any]) -> _Plan:
        size = int(data.get(b"RFC822.SIZE") or 0)
        header = _ended_header(_bytes(data.get(_body_key(_HEADER))))
        received = data.get(b"INTERNALDATE")
        received_at = received.astimezone(UTC) if isinstance(received, datetime) else None
        plan = _Plan(size=size, header=header, received_at=received_at)
        try:
            root = parse_structure(data[b"BODYSTRUCTURE"])
        except (AttributeError, KeyError, IndexError, TypeError, ValueError) as error:
            LOG.warning("UID %s: unreadable BODYSTRUCTURE (%r)", uid, error)
            root = None
        if root is None or not root.rebuildable():
            if size <= self.config.max_message_bytes:
                plan.sections = ("",)  # BODY.PEEK[]: the whole message
            else:
                LOG.warning("UID %s: %d bytes and no usable structure: header only", uid, size)
            return plan
        plan.root = root
        wanted_bytes = len(header) + sum(leaf.size for leaf in root.wanted_leaves())
        if wanted_bytes > self.config.max_message_bytes:
            LOG.warning(
                "UID %s: its calendar parts are %d bytes > %d: fetching its header only",
                uid,
                wanted_bytes,
                self.config.max_message_bytes,
            )
            root.forget_wanted()
        plan.ignored = root.ignored_attachments()
        plan.sections = tuple(root.sections())
        return plan

    def _move(self, client: IMAPClient, uids: list[int], folder: str) -> None:
        self._ensure_folder(client, folder)
        try:
            self._move_to(client, uids, folder)
        except imap_errors.IMAPClientError as error:
            if "TRYCREATE" not in _error_text(error).upper():
                raise
            self._folders.discard(folder)  # deleted behind our back: create it again
            self._ensure_folder(client, folder)
            self._move_to(client, uids, folder)

    def _move_to(self, client: IMAPClient, uids: list[int], folder: str) -> None:
        if "MOVE" in self._capabilities:
            client.move(uids, folder)
            return
        client.copy(uids, folder)
        client.add_flags(uids, [b"\\Deleted"], silent=True)
        if "UIDPLUS" in self._capabilities:
            client.uid_expunge(uids)

    def _ensure_folder(self, client: IMAPClient, folder: str) -> None:
        if folder in self._folders:
            return
        if not client.folder_exists(folder):
            try:
                client.create_folder(folder)
                LOG.info("created folder %s", folder)
            except imap_errors.IMAPClientError as error:
                if "ALREADYEXISTS" not in _error_text(error).upper():
                    raise
        self._folders.add(folder)


# --- waiting ------------------------------------------------------------------------------


def _idle(client: IMAPClient, deadline: float) -> bool:
    """IDLE until new mail or the deadline, renewed every 25 minutes."""
    woken = False
    while not woken and (remaining := deadline - time.monotonic()) > 0:
        client.idle()
        round_end = time.monotonic() + min(remaining, IDLE_RENEWAL_SECONDS)
        while not woken and (left := round_end - time.monotonic()) > 0:
            responses = client.idle_check(timeout=left)
            woken = _reports_new_mail(responses)
            if not responses or any(response[:1] == (b"BYE",) for response in responses):
                break  # the time is up, or the socket woke with no response: closed?
        _, responses = client.idle_done()  # on a closed connection this raises
        woken = woken or _reports_new_mail(responses)
    return woken


def _poll(client: IMAPClient, deadline: float, interval: float) -> bool:
    while (remaining := deadline - time.monotonic()) > 0:
        time.sleep(min(remaining, interval))
        _, responses = client.noop()
        if _reports_new_mail(responses):
            return True
    return False


def _reports_new_mail(responses: Iterable[Any]) -> bool:
    """True when an untagged ``n EXISTS`` (or ``n RECENT`` with n > 0) is among them."""
    for response in responses:
        if not isinstance(response, tuple) or len(response) < 2:
            continue
        count, name = response[0], response[1]
        if name == b"EXISTS" or (name == b"RECENT" and isinstance(count, int) and count > 0):
            return True
    return False


# --- BODYSTRUCTURE -----------------------------------------------------------------------


@dataclass(slots=True)
class Part:
    """One body of a BODYSTRUCTURE and the IMAP sections that address it.

    ``header_section`` holds its MIME header ("HEADER" for the message itself, "2.MIME" for
    a part, "3.HEADER" for the message inside a message/rfc822 part); ``body_section`` its
    content ("TEXT", "2", "3.TEXT"). ``children`` are the parts of a multipart, or the one
    message of a message/rfc822.
    """

    content_type: str
    header_section: str
    body_section: str
    size: int = 0
    filename: str | None = None
    disposition: str | None = None
    boundary: bytes | None = None
    params: dict[str, str] = field(default_factory=dict)  # a multipart's, boundary too
    children: list[Part] = field(default_factory=list)
    wanted: bool = False  # the core reads it: calendar data, TNEF, a delivery report

    @property
    def header_from_structure(self) -> bool:
        """A multipart part's own MIME header ("N.MIME") says no more than BODYSTRUCTURE
        does (its type, boundary and parameters): it is written from there, not fetched.
        The header of a message (the message's, or a forwarded one's "N.HEADER") is
        fetched: the core reads its sender, subject and dates."""
        return self.multipart and self.header_section.endswith(".MIME")

    @property
    def multipart(self) -> bool:
        return self.content_type.startswith("multipart/")

    @property
    def kept(self) -> bool:
        """Rebuilt in ``raw`` (itself wanted, or a container of a wanted part)."""
        return self.wanted or any(child.kept for child in self.children)

    def rebuildable(self) -> bool:
        """Every kept multipart has a boundary (else the message is fetched whole)."""
        if self.multipart and self.kept and not self.boundary:
            return False
        return all(child.rebuildable() for child in self.children)

    def leaves(self) -> Iterator[Part]:
        if not self.children:
            yield self
        for child in self.children:
            yield from child.leaves()

    def wanted_leaves(self) -> Iterator[Part]:
        return (leaf for leaf in self.leaves() if leaf.wanted)

    def ignored_attachments(self) -> int:
        """Leaves the rebuilt message leaves out that the core counts as ignored attachments.

        A message that is a single part keeps its header, which shows that part to the core.
        """
        if not self.children:
            return 0
        return sum(1 for leaf in self.leaves() if not leaf.kept and leaf.is_attachment())

    def is_attachment(self) -> bool:
        """Not an inline text body (the core's rule)."""
        if self.content_type not in TEXT_BODY_TYPES or self.filename:
            return True
        return self.disposition == "attachment"

    def sections(self) -> Iterator[str]:
        """The sections to fetch to rebuild the kept parts (the message header aside)."""
        if not self.kept:
            return
        if self.header_section != _HEADER and not self.header_from_structure:
            yield self.header_section
        if not self.children:
            yield self.body_section
        for child in self.children:
            yield from child.sections()

    def rebuild(self, header: bytes, fetched: dict[str, bytes]) -> bytes:
        """This part with its MIME header: the kept parts inside, stand-ins for the others.

        The message itself (``header`` given) keeps its multipart skeleton even when nothing
        in it is kept, so that its header and body still agree.
        """
        whole_message = self.header_section == _HEADER
        if self.header_from_structure:
            header = self.structure_header()
        elif not whole_message:
            header = _ended_header(fetched.get(self.header_section, b""))
        if self.multipart and self.boundary and (self.kept or whole_message):
            pieces = [header]
            for child in self.children:
                inner = child.rebuild(b"", fetched) if child.kept else child.stand_in()
                pieces += [b"--", self.boundary, b"\r\n", inner, b"\r\n"]
            pieces += [b"--", self.boundary, b"--\r\n"]
            return b"".join(pieces)
        if not self.kept:
            return header
        if self.children:  # message/rfc822: the message inside, its own header first
            return header + self.children[0].rebuild(b"", fetched)
        return header + fetched.get(self.body_section, b"")

    def structure_header(self) -> bytes:
        """The MIME header of a multipart part, from its BODYSTRUCTURE parameters."""
        params = "".join(
            f'; {name}="{_quoted(value)}"' for name, value in self.params.items() if name.isascii()
        )
        line = f"Content-Type: {self.content_type}{params}\r\n\r\n"
        return line.encode("utf-8", "surrogateescape")

    def forget_wanted(self) -> None:
        """Fetch none of it (too large): every wanted part becomes a stand-in."""
        self.wanted = False
        for child in self.children:
            child.forget_wanted()

    def stand_in(self) -> bytes:
        """An empty text part where a part was left on the server (keeps the numbering)."""
        size = f", {self.size} bytes" if self.size else ""
        what = f"{self.content_type}{size}".encode("ascii", "replace")
        return (
            b"Content-Type: text/plain; charset=us-ascii\r\n"
            b"Content-Description: left on the server: " + what + b"\r\n\r\n"
        )


def parse_structure(raw: Any) -> Part:
    """imapclient's BODYSTRUCTURE (nested tuples) as a tree of :class:`Part`."""
    return _part(raw, number="", own_number=False, header=_HEADER, body="TEXT")


def _part(raw: Any, *, number: str, own_number: bool, header: str, body: str) -> Part:
    if isinstance(raw[0], list | tuple):
        children, rest = _multipart_children(raw)
        subtype = _text(rest[0]).lower() if rest else "mixed"
        params = _params(rest[1]) if len(rest) > 1 else {}
        part = Part(f"multipart/{subtype}", header, body, params=params)
        boundary = params.get("boundary")
        part.boundary = boundary.encode("utf-8", "surrogateescape") if boundary else None
        part.wanted = subtype == "report" and (
            params.get("report-type", "").lower() == "delivery-status"
        )
        for index, child in enumerate(children, start=1):
            section = f"{number}.{index}" if number else str(index)
            part.children.append(
                _part(
                    child, number=section, own_number=True, header=f"{section}.MIME", body=section
                )
            )
        return part
    content_type = f"{_text(raw[0])}/{_text(raw[1])}".lower()
    params = _params(raw[2])
    part = Part(content_type, header, body, size=_int(raw[6]))
    if content_type == "message/rfc822" and len(raw) > 8 and isinstance(raw[8], list | tuple):
        # The message inside: "N.HEADER", "N.TEXT", "N.1"... where N is this part's number
        # (or "1" for a message that is itself a message/rfc822).
        inner = number if own_number else (f"{number}.1" if number else "1")
        part.children.append(
            _part(
                raw[8],
                number=inner,
                own_number=False,
                header=f"{inner}.HEADER",
                body=f"{inner}.TEXT",
            )
        )
        extension = 10
    else:
        extension = 8 if content_type.startswith("text/") else 7
    disposition = raw[extension + 1] if len(raw) > extension + 1 else None
    disposition_type, disposition_params = _disposition(disposition)
    part.disposition = disposition_type
    part.filename = _filename(params, disposition_type, disposition_params)
    name = (part.filename or "").lower()
    part.wanted = not part.children and (
        content_type in _WANTED_LEAF_TYPES
        or name.endswith(CALENDAR_EXTENSIONS)
        or name == "winmail.dat"
    )
    return part


def _multipart_children(raw: Sequence[Any]) -> tuple[list[Any], Sequence[Any]]:
    if isinstance(raw[0], list):  # imapclient's BodyData: the parts as one list
        return list(raw[0]), raw[1:]
    count = 0
    while count < len(raw) and isinstance(raw[count], list | tuple):
        count += 1
    return list(raw[:count]), raw[count:]


def _disposition(raw: Any) -> tuple[str | None, dict[str, str]]:
    if not isinstance(raw, list | tuple) or not raw:
        return None, {}
    params = _params(raw[1]) if len(raw) > 1 else {}
    return _text(raw[0]).lower(), params


def _filename(
    params: dict[str, str], disposition: str | None, disposition_params: dict[str, str]
) -> str | None:
    """The part's file name as the stdlib reads it (RFC 2231 and RFC 2047 decoded)."""
    if not any(key.startswith(("name", "filename")) for key in (*params, *disposition_params)):
        return None
    carrier = email.message.Message()
    carrier["Content-Type"] = "application/octet-stream" + _param_text(params)
    carrier["Content-Disposition"] = (disposition or "attachment") + _param_text(disposition_params)
    try:
        name = carrier.get_filename() or carrier.get_param("name", header="content-type")
    except (LookupError, ValueError, TypeError):
        return None
    if isinstance(name, tuple):
        name = email.utils.collapse_rfc2231_value(name)
    if not name:
        return None
    return _decode_words(str(name))


def _param_text(params: dict[str, str]) -> str:
    return "".join(f'; {key}="{email.utils.quote(value)}"' for key, value in params.items())


def _decode_words(text: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except (LookupError, ValueError, UnicodeError, email.errors.MessageError):
        return text


def _quoted(value: str) -> str:
    """A parameter value as the inside of a quoted-string (RFC 2045), on one line."""
    flat = "".join(" " if char in "\r\n" else char for char in value)
    return flat.replace("\\", "\\\\").replace('"', '\\"')


def _params(raw: Any) -> dict[str, str]:
    if not isinstance(raw, list | tuple):
        return {}
    items = list(raw)
    return {_text(items[i]).lower(): _text(items[i + 1]) for i in range(0, len(items) - 1, 2)}


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return "" if value is None else str(value)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


# --- rebuilding ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Plan:
    """What to fetch for one message, and how to make ``FetchedMail.raw`` from it."""

    size: int
    header: bytes
    received_at: datetime | None
    root: Part | None = None
    sections: tuple[str, ...] = ()
    ignored: int = 0

    def mail(self, key: MessageKey, fetched: dict[str, bytes]) -> FetchedMail:
        if self.root is None:  # fetched whole, or only its header when that is too large
            raw = fetched.get("", self.header)
        else:
            raw = self.root.rebuild(self.header, fetched)
        return FetchedMail(key, raw, self.size, self.received_at, self.ignored)


def _ended_header(header: bytes) -> bytes:
    """A header block that ends with its empty line."""
    if header.endswith((b"\r\n\r\n", b"\n\n")):
        return header
    if not header or header.endswith(b"\n"):
        return header + b"\r\n"
    return header + b"\r\n\r\n"


def _body_key(section: str) -> bytes:
    return f"BODY[{section}]".encode("ascii")


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return b"" if value is None else str(value).encode("utf-8", "surrogateescape")


def _temporary_text(error: BaseException, where: str, what: str, text: str) -> str:
    if isinstance(error, imap_errors.IMAPClientAbortError):
        return f"connection to {where} lost ({what}): {text}"
    if isinstance(error, TimeoutError):
        return f"{where} did not answer in time ({what})"
    if isinstance(error, OSError):  # also ssl.SSLError after the handshake
        return f"connection to {where} failed ({what}): {text}"
    return f"{where} refused to {what}: {text}"


def _connection_lost(error: imap_errors.LoginError) -> bool:
    """imapclient turns every error of LOGIN or AUTHENTICATE into a LoginError, a closed
    connection (BYE, EOF) too: that one is the abort it was raised while handling."""
    return isinstance(error.__context__, imap_errors.IMAPClientAbortError)


def _error_text(error: BaseException) -> str:
    text = " ".join(_text(arg) for arg in error.args) if error.args else type(error).__name__
    return text.strip() or type(error).__name__


def is_loopback(host: str) -> bool:
    """True for a loopback address (127.0.0.0/8, ::1) or a name under "localhost"."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False

"""The IMAP mailbox against a real Dovecot (tests/imap_fixtures.py): no mocks, no fakes."""

from __future__ import annotations

import email
import email.policy
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from mailbot.adapters.imap import (
    DONE_KEYWORD,
    ImapConfig,
    ImapMailbox,
    UidValidityChangedError,
    is_loopback,
)
from mailbot.core.mime import scan_file
from mailbot.core.model import Reason
from mailbot.core.pipeline import MessageDecisions, decide_message
from mailbot.core.policy import Policy
from mailbot.ports import FatalError, FetchedMail, Mailbox, MessageKey, TemporaryError
from tests.imap_fixtures import PASSWORD, DovecotServer, ImapAccount

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
POLICY = Policy.for_zone("Europe/Berlin")
INVITATION = CORPUS / "eml" / "calmailproc__test-01-1.eml"  # Exchange REQUEST with VTIMEZONE


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def open_mailbox() -> Iterator[Callable[..., ImapMailbox]]:
    """ImapMailbox(account.config(**overrides)); all are closed after the test."""
    opened: list[ImapMailbox] = []

    def make(account: ImapAccount, *, read_only: bool = False, **overrides: Any) -> ImapMailbox:
        mailbox = ImapMailbox(
            account.config(**overrides), password=account.password, read_only=read_only
        )
        opened.append(mailbox)
        return mailbox

    yield make
    for mailbox in opened:
        mailbox.close()


class ReceivedBytes:
    """Counts what the mailbox's connection reads from the server.

    imaplib reads every response line with ``readline`` and every literal (message data)
    with ``read``; both are wrapped on the live connection's imaplib object.
    """

    def __init__(self, mailbox: ImapMailbox) -> None:
        mailbox.reconnect()
        imap = mailbox._client._imap  # type: ignore[union-attr]
        self.count = 0
        read, readline = imap.read, imap.readline

        def counted_read(size: int) -> bytes:
            data: bytes = read(size)
            self.count += len(data)
            return data

        def counted_readline() -> bytes:
            line: bytes = readline()
            self.count += len(line)
            return line

        imap.read = counted_read
        imap.readline = counted_readline


def _calendar_of(path: Path) -> bytes:
    message = email.message_from_bytes(path.read_bytes())
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload
    raise AssertionError(f"no text/calendar in {path}")


def _message(subject: str, *attachments: tuple[bytes, str, str, str | None]) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Olivia Organizer <olivia.organizer@ourco.example.org>"
    message["To"] = "sync@example.test"
    message["Subject"] = subject
    message["Date"] = "Tue, 04 Mar 2025 09:00:00 +0100"
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@ourco.example.org>"
    message.set_content("Please find the invitation attached.\n")
    for data, maintype, subtype, filename in attachments:
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message


def _bytes(message: EmailMessage) -> bytes:
    return message.as_bytes(policy=email.policy.SMTP)


def _pdf(size: int) -> tuple[bytes, str, str, str]:
    return b"%PDF-1.7\n" + os.urandom(size), "application", "pdf", "agenda.pdf"


def _same_decisions(whole: MessageDecisions, rebuilt: MessageDecisions) -> None:
    def without_count(result: MessageDecisions) -> list[Any]:
        return [replace(decision, attachments_ignored=0) for decision in result.decisions]

    assert without_count(rebuilt) == without_count(whole)
    assert rebuilt.notes == whole.notes


def _attachments_ignored(result: MessageDecisions) -> int:
    return result.decisions[0].attachments_ignored if result.decisions else 0


def _whole(account: ImapAccount, mail: FetchedMail) -> bytes:
    """The whole message as the server has it (BODY[])."""
    client = account.helper()
    client.select_folder("INBOX", readonly=True)
    uid = int(mail.key.uid)
    raw: bytes = client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]
    return raw


def _check_rebuilt(account: ImapAccount, mail: FetchedMail) -> None:
    """The rebuilt message reads like the whole one: decisions, calendar parts, counts."""
    whole_raw = _whole(account, mail)
    whole, rebuilt = decide_message(whole_raw, POLICY), decide_message(mail.raw, POLICY)
    _same_decisions(whole, rebuilt)
    assert _attachments_ignored(whole) == _attachments_ignored(rebuilt) + mail.ignored_parts
    assert scan_file(mail.raw, POLICY.limits).parts == scan_file(whole_raw, POLICY.limits).parts


def _server_sizes(account: ImapAccount) -> dict[int, int]:
    client = account.helper()
    client.select_folder("INBOX", readonly=True)
    answer = client.fetch(client.search(["ALL"]), ["RFC822.SIZE"])
    return {int(uid): int(data[b"RFC822.SIZE"]) for uid, data in answer.items()}


# ----------------------------------------------------------------------------- fetching


def test_corpus_messages_come_oldest_first_with_their_keys(
    imap_account: ImapAccount, open_mailbox: Callable[..., ImapMailbox]
) -> None:
    files = sorted((CORPUS / "eml").glob("*.eml"))
    uids = [imap_account.append("INBOX", path.read_bytes()) for path in files]
    uidvalidity = imap_account.uidvalidity("INBOX")
    mailbox: Mailbox = open_mailbox(imap_account)

    first = mailbox.fetch_new(5)
    everything = mailbox.fetch_new(500)

    assert [mail.key for mail in first] == [
        MessageKey("imap:INBOX", uidvalidity, str(uid)) for uid in uids[:5]
    ]
    assert [mail.key.uid for mail in everything] == [str(uid) for uid in uids]
    sizes = _server_sizes(imap_account)
    assert [mail.size for mail in everything] == [sizes[uid] for uid in uids]
    assert all(
        mail.received_at is not None and mail.received_at.utcoffset() is not None
        for mail in everything
    )
    assert mailbox.fetch_new(0) == []


def test_every_corpus_message_rebuilt_decides_like_the_whole_message(
    imap_account: ImapAccount, open_mailbox: Callable[..., ImapMailbox]
) -> None:
    files = sorted((CORPUS / "eml").glob("*.eml"))
    for path in files:
        imap_account.append("INBOX", path.read_bytes())

    mails = open_mailbox(imap_account).fetch_new(500)

    assert len(mails) == len(files)
    for path, mail in zip(files, mails, strict=True):
        try:
            _check_rebuilt(imap_account, mail)
        except AssertionError as error:
            raise AssertionError(f"{path.name}: {error}") from error


def test_an_invitation_beside_a_5_mb_attachment_costs_its_calendar_part_and_header(
    imap_account: ImapAccount, open_mailbox: Callable[..., ImapMailbox]
) -> None:
    calendar = _calendar_of(INVITATION)
    message = _message("Quarterly review", (calendar, "text", "calendar", None), _pdf(5 << 20))
    message.get_payload()[1].set_param("method", "REQUEST")
    raw = _bytes(message)
    uid = imap_account.append("INBOX", raw)
    helper = imap_account.helper()
    helper.select_folder("INBOX", readonly=True)
    parts = helper.fetch([uid], ["BODY.PEEK[HEADER]", "BODY.PEEK[2]"])[uid]
    essential = len(parts[b"BODY[HEADER]"]) + len(parts[b"BODY[2]"])
    mailbox = open_mailbox(imap_account)
    received = ReceivedBytes(mailbox)

    (mail,) = mailbox.fetch_new(10)

    assert received.count <= 1.5 * essential, (received.count, essential)
    assert mail.size > 5 << 20
    assert len(mail.raw) < 1.5 * essential
    assert mail.ignored_parts == 1
    _check_rebuilt(imap_account, mail)
    assert decide_message(mail.raw, POLICY).decisions[0].invitation is not None


def _forwarded_invitation() -> bytes:
    inner = email.message_from_bytes(
        (CORPUS / "eml" / "calmailproc__test-04-1.eml").read_bytes(), policy=email.policy.default
    )
    message = _message("Fwd: invitation")
    message.add_attachment(inner)
    data, maintype, subtype, filename = _pdf(200_000)
    message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return _bytes(message)


def _message_that_is_a_forwarded_message() -> bytes:
    inner = (CORPUS / "eml" / "comm-central__single-event.eml").read_bytes()
    head = (
        b"From: Olivia Organizer <olivia.organizer@ourco.example.org>\r\n"
        b"To: sync@example.test\r\nSubject: Fwd: event\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: message/rfc822\r\n\r\n"
    )
    return head + inner.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _tnef_beside_a_pdf() -> bytes:
    tnef = (CORPUS / "tnef" / "mimekit__christmas.tnef").read_bytes()
    return _bytes(
        _message("Christmas", (tnef, "application", "ms-tnef", "winmail.dat"), _pdf(200_000))
    )


def _ics_named_octet_stream() -> bytes:
    calendar = _calendar_of(INVITATION)
    attachments = [_pdf(200_000), (calendar, "application", "octet-stream", "invite.ics")]
    return _bytes(_message("Review", *attachments))


def _no_calendar() -> bytes:
    return _bytes(_message("Minutes", _pdf(200_000), (b"x" * 1000, "image", "png", "logo.png")))


@pytest.mark.parametrize(
    "make_raw",
    [
        _forwarded_invitation,
        _message_that_is_a_forwarded_message,
        _tnef_beside_a_pdf,
        _ics_named_octet_stream,
        _no_calendar,
        (CORPUS / "eml" / "ccs-calendarserver__dsn_failure_with_ics.eml").read_bytes,
    ],
    ids=["nested-rfc822", "top-level-rfc822", "tnef", "ics-name", "no-calendar", "bounce"],
)
def test_structures_rebuilt_keep_what_the_core_reads(
    make_raw: Callable[[], bytes],
    imap_account: ImapAccount,
    open_mailbox: Callable[..., ImapMailbox],
) -> None:
    raw = make_raw()
    imap_account.append("INBOX", raw)

    (mail,) = open_mailbox(imap_account).fetch_new(1)

    _check_rebuilt(imap_account, mail)
    if mail.size > 200_000:  # a 200 kB attachment beside: it stayed on the server
        assert mail.size - len(mail.raw) > 200_000


def test_nested_calendar_parts_are_found_and_read_as_forwarded(
    imap_account: ImapAccount, open_mailbox: Callable[..., ImapMailbox]
) -> None:
    imap_account.append("INBOX", _forwarded_invitation())

    (mail,) = open_mailbox(imap_account).fetch_new(1)

    parts = scan_file(mail.raw, POLICY.limits).parts
    assert len(parts) == 2  # Horde's text/calendar and application/ics copies
    assert all(part.forwarded and part.location.startswith("2.") for part in parts)
    assert mail.ignored_parts == 2  # the forwarded message's inline PNG, and the PDF
    assert b"Content-Type: image/png" not in mail.raw


def test_a_calendar_part_over_the_download_limit_is_left_on_the_server(
    imap_account: ImapAccount, open_mailbox: Callable[..., ImapMailbox]
) -> None:
    calendar = _calendar_of(INVITATION)
    imap_account.append("INBOX", _bytes(_message("Big", (calendar, "text", "calendar", None))))

    (mail,) = open_mailbox(imap_account, max_message_bytes=len(calendar)).fetch_new(1)

    assert b"BEGIN:VCALENDAR" not in mail.raw
    assert mail.ignored_parts == 1
    assert decide_message(mail.raw, POLICY).decisions[0].reason is Reason.NO_CALENDAR_PART


# ----------------------------------------------------------------------------- filing


def _append_invitations(account: ImapAccount, count: int) -> list[int]:
    raw = INVITATION.read_bytes()
    return [account.append("INBOX", raw) for _ in range(count)]


def test_file_away_moves_each_outcome_to_its_folder_created_on_demand(
    imap_account: ImapAccount, open_mailbox: Callable[..., ImapMailbox]
) -> None:
    _append_invitations(imap_account, 4)
    mailbox = open_mailbox(imap_account, failed_folder="Quarantine")
    mails = mailbox.fetch_new(10)

    for mail, outcome in zip(mails, ["synced", "skipped", "failed", "synced"], strict=True):
        mailbox.file_away(mail.key, outcome)

    assert {"Synced", "Skipped", "Quarantine"} <= imap_account.folders()
    assert len(imap_account.folder_uids("Synced")) == 2
    assert len(imap_account.folder_uids("Skipped")) == 1
    assert len(imap_account.folder_uids("Quarantine")) == 1
    assert imap_account.folder_uids("INBOX") == []
    assert mailbox.fetch_new(10) == []


def test_file_away_without_move_copies_then_expunges_that_uid(
    imap_account: ImapAccount, open_mailbox: Callable[..., ImapMailbox]
) -> None:
    uids = _append_invitations(imap_account, 2)
    mailbox = open_mailbox(imap_account)
    mails = mailbox.fetch_new(10)
    mailbox._capabilities -= {"MOVE"}  # as on a server without RFC 6851

    mailbox.file_away(mails[0].key, "synced")

    assert imap_account.folder_uids("INBOX") == uids[1:]
    assert len(imap_account.folder_uids("Synced")) == 1
    assert [mail.key for mail in mailbox.fetch_new(10)] == [mails[1].key]


def test_file_away_creates_a_folder_again_when_it_was_deleted(
    imap_account: ImapAccount, open_mailbox: Callable[..., ImapMailbox]
) -> None:
    _append_invitations(imap_account, 2)
    mailbox = open_mailbox(imap_account)
    first, second = mailbox.fetch_new(10)
    mailbox.file_away(first.key, "skipped")
    imap_account.helper().delete_folder("Skipped")

    mailbox.file_away(second.key, "skipped")

    assert len(imap_account.folder_uids("Skipped")) == 1


def test_file_away_refuses_a_key_of_another_uidvalidity(
    imap_account: ImapAccount, open_mailbox: Callable[..., ImapMailbox]
) -> None:
    uids = _append_invitations(imap_account, 1)
    mailbox = open_mailbox(imap_account)
    (mail,) = mailbox.fetch_new(10)
    stale = replace(mail.key, uidvalidity=mail.key.uidvalidity - 1)

    with pytest.raises(UidValidityChangedError, match="UIDVALIDITY") as caught:
        mailbox.file_away(stale, "synced")

    assert isinstance(caught.value, TemporaryError)
    assert imap_account.folder_uids("INBOX") == uids
    with pytest.raises(ValueError, match="outcome"):
        mailbox.file_away(mail.key, "done")
    with pytest.raises(ValueError, match="imap:INBOX"):
        mailbox.file_away(MessageKey("file", 0, "x.eml"), "synced")


def test_keyword_mode_marks_messages_in_place_and_fetch_new_skips_them(
    imap_account: ImapAccount, open_mailbox: Callable[..., ImapMailbox]
) -> None:
    uids = _append_invitations(imap_account, 3)
    mailbox = open_mailbox(imap_account, mark_with_keywords=True)
    mails = mailbox.fetch_new(10)

    mailbox.file_away(mails[0].key, "synced")
    mailbox.file_away(mails[1].key, "failed")

    assert imap_account.folder_uids("INBOX") == uids
    flags = imap_account.flags("INBOX")
    assert {b"$MailbotSynced", DONE_KEYWORD.encode()} <= flags[uids[0]]
    assert {b"$MailbotFailed", DONE_KEYWORD.encode()} <= flags[uids[1]]
    assert not {b"$MailbotSynced", b"$MailbotFailed", DONE_KEYWORD.encode()} & flags[uids[2]]
    assert "Synced" not in imap_account.folders()
    assert [mail.key for mail in mailbox.fetch_new(10)] == [mails[2].key]


def test_read_only_mode_changes_nothing_on_the_server(
    imap_account: ImapAccount, open_mailbox: Callable[..., ImapMailbox]
) -> None:
    _append_invitations(imap_account, 3)
    imap_account.helper().create_folder("Archive/2024")
    before = imap_account.snapshot()
    mailbox = open_mailbox(imap_account, read_only=True)

    mails = mailbox.fetch_new(10)
    mailbox.file_away(mails[0].key, "synced")
    mailbox.file_away(mails[1].key, "failed")
    again = mailbox.fetch_new(10)
    woken = mailbox.wait_for_mail(0.2)
    mailbox.close()

    assert len(mails) == 3
    assert [mail.key for mail in again] == [mails[2].key]  # remembered, not written
    assert not woken
    after = imap_account.snapshot()
    assert after == before
    assert all(b"\\Seen" not in flags for flags in after["INBOX"].values())


# ----------------------------------------------------------------------------- TLS, login


def test_implicit_tls_and_starttls_are_verified_with_the_configured_ca(
    imap_account: ImapAccount, open_mailbox: Callable[..., ImapMailbox]
) -> None:
    _append_invitations(imap_account, 1)
    implicit = open_mailbox(imap_account, tls="implicit", port=imap_account.tls_port)
    by_name = open_mailbox(
        imap_account, tls="implicit", port=imap_account.tls_port, host="localhost"
    )
    starttls = open_mailbox(imap_account, tls="starttls")

    for mailbox in (implicit, by_name, starttls):
        assert len(mailbox.fetch_new(10)) == 1


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_a_certificate_no_configured_ca_vouches_for_is_refused(
    tls: str,
    imap_server: DovecotServer,
    imap_self_signed_server: DovecotServer,
    open_mailbox: Callable[..., ImapMailbox],
) -> None:
    untrusted = [
        (imap_server, None),  # the test CA is not among the system CAs
        (imap_self_signed_server, None),
        (imap_self_signed_server, imap_server.ca_file),  # another CA
    ]
    for server, ca_file in untrusted:
        port = server.tls_port if tls == "implicit" else server.port
        mailbox = open_mailbox(server.account, tls=tls, port=port, ca_file=ca_file)
        with pytest.raises(FatalError, match="not trusted"):
            mailbox.reconnect()
    self_signed = imap_self_signed_server
    port = self_signed.tls_port if tls == "implicit" else self_signed.port
    trusted = open_mailbox(self_signed.account, tls=tls, port=port, ca_file=self_signed.ca_file)
    trusted.reconnect()
    assert trusted.uidvalidity is not None


def test_plaintext_only_when_configured_and_only_to_loopback(
    imap_account: ImapAccount, open_mailbox: Callable[..., ImapMailbox]
) -> None:
    _append_invitations(imap_account, 1)
    assert len(open_mailbox(imap_account, tls="none", ca_file=None).fetch_new(10)) == 1
    remote = ImapMailbox(
        ImapConfig("imap.example.com", 143, "sync@example.com", tls="none"), password=PASSWORD
    )
    with pytest.raises(FatalError, match=r"plaintext IMAP refused.*loopback"):
        remote.fetch_new(10)
    assert all(
        is_loopback(host)
        for host in [
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "[::1]",
            "localhost",
            "LOCALHOST.",
            "imap.localhost",
        ]
    )
    assert not any(
        is_loopback(host)
        for host in [
            "10.0.0.1",
            "192.0.2.1",
            "::ffff:10.0.0.1",
            "example.com",
            "localhost.example.com",
        ]
    )


def test_a_wrong_password_is_fatal_and_never_shown(
    imap_account: ImapAccount,
) -> None:
    wrong = PASSWORD + "-wrong"
    mailbox = ImapMailbox(imap_account.config(), password=wrong)

    with pytest.raises(FatalError, match="refused") as caught:
        mailbox.fetch_new(10)

    assert wrong not in str(caught.value)
    assert wrong not in repr(mailbox)
    assert wrong not in repr(mailbox.config)


def test_a_server_stopped_mid_session_is_temporary_and_reconnect_works_after_restart(
    dovecot_factory: Callable[[], DovecotServer], open_mailbox: Callable[..., ImapMailbox]
) -> None:
    server = dovecot_factory()
    account = server.new_account()
    _append_invitations(account, 1)
    account.close()
    mailbox = open_mailbox(account)
    (before,) = mailbox.fetch_new(10)

    server.stop()  # between two commands
    with pytest.raises(TemporaryError, match=r"lost|failed"):
        mailbox.fetch_new(10)
    with pytest.raises(TemporaryError, match="failed"):  # connection refused
        mailbox.reconnect()
    server.start()
    mailbox.reconnect()
    assert [mail.key for mail in mailbox.fetch_new(10)] == [before.key]

    stopper = threading.Timer(0.3, server.stop)  # during IDLE
    stopper.start()
    started = time.monotonic()
    with pytest.raises(TemporaryError):
        mailbox.wait_for_mail(30)
    stopper.join()
    assert time.monotonic() - started < 5
    server.start()
    assert [mail.key for mail in mailbox.fetch_new(10)] == [before.key]  # reconnects by itself


def test_a_server_that_does_not_answer_times_out_as_temporary(
    imap_account: ImapAccount,
) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        config = imap_account.config(port=port, tls="none", connect_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(TemporaryError, match="in time"):
            ImapMailbox(config, password=PASSWORD).reconnect()
    assert time.monotonic() - started < 5


# ----------------------------------------------------------------------------- waiting


def _append_later(account: ImapAccount, delay: float) -> threading.Thread:
    def append() -> None:
        time.sleep(delay)
        client = account.connect()
        client.append("INBOX", INVITATION.read_bytes())
        client.logout()

    thread = threading.Thread(target=append)
    thread.start()
    return thread


@pytest.mark.parametrize("use_idle", [True, False], ids=["idle", "poll"])
def test_wait_for_mail_wakes_when_another_connection_appends(
    use_idle: bool, imap_account: ImapAccount, open_mailbox: Callable[..., ImapMailbox]
) -> None:
    mailbox = open_mailbox(imap_account, use_idle=use_idle, poll_interval=0.2)
    assert mailbox.fetch_new(10) == []
    started = time.monotonic()
    thread = _append_later(imap_account, 0.3)

    woken = mailbox.wait_for_mail(20)

    thread.join()
    assert woken
    assert time.monotonic() - started < 5
    assert len(mailbox.fetch_new(10)) == 1


def test_wait_for_mail_returns_false_after_its_timeout_without_mail(
    imap_account: ImapAccount, open_mailbox: Callable[..., ImapMailbox]
) -> None:
    mailbox = open_mailbox(imap_account)
    mailbox.reconnect()
    started = time.monotonic()

    assert mailbox.wait_for_mail(1.0) is False

    assert 0.9 <= time.monotonic() - started < 4
    assert mailbox.fetch_new(10) == []  # the connection is still usable after IDLE


# ----------------------------------------------------------------------------- no server


def test_an_unusable_bodystructure_falls_back_to_the_whole_message() -> None:
    mailbox = ImapMailbox(ImapConfig("localhost", 143, "u", max_message_bytes=1000), password="")
    header = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    gmail_bug = ((b"TEXT", b"PLAIN", None, None, None, b"7BIT", 5, 1), (b"RELATED", None))

    small = mailbox._plan(
        1, {b"RFC822.SIZE": 900, b"BODY[HEADER]": header, b"BODYSTRUCTURE": gmail_bug}
    )
    large = mailbox._plan(
        2, {b"RFC822.SIZE": 9000, b"BODY[HEADER]": header, b"BODYSTRUCTURE": gmail_bug}
    )

    assert small.sections == ("",)  # BODY.PEEK[]
    assert large.sections == ()
    assert large.mail(MessageKey("imap:INBOX", 1, "2"), {}).raw == header


def test_a_mailbox_needs_exactly_one_way_to_log_in() -> None:
    config = ImapConfig("localhost", 993, "u")
    with pytest.raises(ValueError, match="either"):
        ImapMailbox(config)
    with pytest.raises(ValueError, match="either"):
        ImapMailbox(config, password=PASSWORD, oauth2_token=lambda: "token")
    with pytest.raises(ValueError, match="tls"):
        ImapConfig("localhost", 993, "u", tls="ssl")  # type: ignore[arg-type]

"""MIME details that the fixtures do not pin: charset fallbacks and odd headers."""

from __future__ import annotations

import pytest

from mailbot.core.mime import decode_text, normalize_address


@pytest.mark.parametrize(
    ("payload", "declared", "text", "noted"),
    [
        ("Übergabe".encode(), "utf-8", "Übergabe", False),
        ("Übergabe".encode("latin-1"), "iso-8859-1", "Übergabe", False),
        ("Übergabe".encode("latin-1"), "utf-8", "Übergabe", True),  # wrong declared charset
        ("Übergabe".encode(), "no-such-charset", "Übergabe", True),
        ("Übergabe".encode(), "utf\x00-8", "Übergabe", True),  # a NUL in the charset name
        ("Übergabe".encode(), None, "Übergabe", False),
        ("Übergabe".encode(), "us-ascii", "Übergabe", False),  # common mislabel, no note
        (b"\xef\xbb\xbfBEGIN", "utf-8", "BEGIN", False),  # byte order mark dropped
    ],
)
def test_decode_text_never_fails(
    payload: bytes, declared: str | None, text: str, noted: bool
) -> None:
    decoded, note = decode_text(payload, declared)
    assert decoded == text
    assert (note is not None) is noted


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("mailto:Anna@Client.Example", "anna@client.example"),
        ("MAILTO:anna@client.example", "anna@client.example"),
        ("CN=ORGANIZER:mailto:webmaster@rail.example", "webmaster@rail.example"),
        ("<anna@client.example>", "anna@client.example"),
        ("anna@client.example", "anna@client.example"),
        ("urn:uuid:1234", None),
        ("mailto:", None),
        ("two words@x.example", None),
        (None, None),
    ],
)
def test_normalize_address(value: str | None, address: str | None) -> None:
    assert normalize_address(value) == address

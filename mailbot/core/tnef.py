"""Outlook ``winmail.dat`` (application/ms-tnef) containers: find the iCalendar data inside.

The container is decoded by ``tnefparse``; this module only looks for calendar data in what it
returns, in this order (the first step that finds something wins):

1. attachments, at any depth, whose file name ends in ``.ics`` or ``.vcs`` or whose data
   starts with ``BEGIN:VCALENDAR``;
2. MAPI properties (string or binary) of every message and attachment, at any depth,
   holding a ``BEGIN:VCALENDAR`` ... ``END:VCALENDAR`` block: exactly that block is cut out.
   Apple's Outlook connector, for one, stores the whole event this way (a named property in
   the set ``00c0ffee-1111-1111-beef-00aabbccddee``) on an ``IPM.Appointment`` that travels
   as an embedded message (``ATTACH_METHOD`` 5) inside a plain ``IPM.Note``;
3. nothing: ``calendars`` is empty and ``detail`` says why.

Message bodies (plain, HTML, RTF) are not searched, and no iCalendar object is made up from
the appointment's MAPI properties (start, end, recurrence blob, time zone structure).

Hostile input: ``tnefparse`` trusts the counts it reads (an 18-byte container claiming
4 294 967 295 properties keeps it busy for hours) and copies the rest of the buffer for every
object it reads (quadratic). So before it runs, a cheap scan that mirrors its loops (written
against tnefparse 1.4) adds up the work it would do and refuses the container beyond a fixed
budget. Input over 64 MiB is refused unread.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tnefparse import TNEF
from tnefparse.codepage import Codepage
from tnefparse.mapi import parse_property

TNEF_SIGNATURE: bytes = b"\x78\x9f\x3e\x22"

MAX_TNEF_BYTES = 64 * 1024 * 1024
"""Containers larger than this are not parsed at all."""

MAX_PARSE_STEPS = 300_000
"""Budget of the pre-scan: about one step per loop turn tnefparse would make (a few µs each)."""

MAX_EMBEDDING_DEPTH = 8
"""Messages embedded in messages (attachments of method 5) deeper than this are refused."""

_IMESSAGE_SIG = b"\x07\x03\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46"
_COPY_STEP_BYTES = 8192  # tnefparse copies the rest of the buffer for each object it reads
_CHECKSUM_STEP_BYTES = 512  # and sums, byte by byte, each object of an embedded message

# TNEF attribute ids (MS-OXTNEF 2.1.3) and levels.
_LVL_ATTACHMENT = 0x02
_ATT_MESSAGE_CLASS = 0x8008
_ATT_ATTACH_RENDDATA = 0x9002
_ATT_MAPI_PROPS = 0x9003
_ATT_RECIP_TABLE = 0x9004
_ATT_ATTACHMENT = 0x9005
_ATT_OEM_CODEPAGE = 0x9007
_PTYPE_CLASS = 0x0001
_PTYPE_STRING = 0x0007

# MAPI property types and ids (MS-OXCDATA 2.11.1, MS-OXPROPS).
_PT_UNSPECIFIED = 0x0000
_PT_SHORT = 0x0002
_PT_BOOLEAN = 0x000B
_PT_OBJECT = 0x000D
_PT_STRING8 = 0x001E
_PT_UNICODE = 0x001F
_PT_BINARY = 0x0102
_MV_FLAG = 0x1000
_NAMED_PROPERTY = 0x8000
_FIXED_SIZES = {
    _PT_SHORT: 2,
    _PT_BOOLEAN: 2,
    0x0003: 4,  # PT_LONG
    0x0004: 4,  # PT_FLOAT
    0x000A: 4,  # PT_ERROR
    0x0005: 8,  # PT_DOUBLE
    0x0006: 8,  # PT_CURRENCY
    0x0007: 8,  # PT_APPTIME
    0x0014: 8,  # PT_I8
    0x0040: 8,  # PT_SYSTIME
    0x0048: 16,  # PT_CLSID
}
_TEXT_TYPES = frozenset({_PT_STRING8, _PT_UNICODE})
_BYTES_TYPES = frozenset({_PT_UNSPECIFIED, _PT_OBJECT, _PT_BINARY})
_PR_MESSAGE_CLASS = 0x001A
_PR_ATTACH_DATA_OBJ = 0x3701
_PR_ATTACH_EXTENSION = 0x3703
_PR_ATTACH_FILENAME = 0x3704
_PR_ATTACH_LONG_FILENAME = 0x3707

_CALENDAR_SUFFIXES = (".ics", ".vcs")
_BEGIN = re.compile(rb"^(?:\xef\xbb\xbf)?(BEGIN:VCALENDAR)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
_END = re.compile(rb"^END:VCALENDAR(?![A-Za-z0-9-])[ \t]*(?:\r?\n)?", re.IGNORECASE | re.MULTILINE)
_STARTS_WITH_CALENDAR = re.compile(rb"\A(?:\xef\xbb\xbf)?[ \t\r\n]*BEGIN:VCALENDAR", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TnefContents:
    """What a TNEF container holds, as far as the robot cares.

    ``calendars``: each a complete iCalendar object (``BEGIN:VCALENDAR`` to ``END:VCALENDAR``
    and its line break), as found; ``message_class``: that of the outer message (an
    appointment often travels embedded in an ``IPM.Note``: ``detail`` names it);
    ``attachments``: top-level attachments that gave no calendar (an embedded message counts as
    one, and not at all if a calendar was found inside it); ``detail``: a readable summary.
    """

    calendars: tuple[bytes, ...]
    message_class: str | None
    attachments: int
    detail: str


def looks_like_tnef(data: bytes) -> bool:
    """Whether ``data`` starts with the TNEF signature ``78 9F 3E 22``."""
    return data[:4] == TNEF_SIGNATURE


def read_tnef(data: bytes) -> TnefContents:
    """The calendars in a TNEF container; never raises (unreadable input gives none)."""
    if not looks_like_tnef(data):
        return TnefContents((), None, 0, "not a TNEF container (no 78 9F 3E 22 signature)")
    if len(data) > MAX_TNEF_BYTES:
        return TnefContents(
            (), None, 0, f"TNEF container of {len(data)} bytes is over the 64 MiB limit, not read"
        )
    data = bytes(data)
    budget = _Budget(MAX_PARSE_STEPS)
    try:
        _scan_tnef(data, budget, depth=0, do_checksum=False)
    except _TooMuchWorkError as exc:
        return TnefContents((), None, 0, f"TNEF container refused unread: {exc}")
    except _ParserWouldRaiseError:
        pass  # tnefparse stops at the same place: its error is reported below
    try:
        tnef = TNEF(data, do_checksum=False)
    except Exception as exc:  # noqa: BLE001 - tnefparse raises anything on corrupt input
        return TnefContents((), None, 0, f"corrupt TNEF container: {_describe(exc)}")
    try:
        return _extract(tnef)
    except Exception as exc:  # noqa: BLE001 - odd values in a container tnefparse accepted
        return TnefContents((), None, 0, f"unreadable TNEF container: {_describe(exc)}")


# ----------------------------------------------------------------------------- extraction


@dataclass(frozen=True, slots=True)
class _Message:
    tnef: Any  # tnefparse.TNEF
    where: str  # "outer message" or "attachment 3 > attachment 1"


def _extract(tnef: Any) -> TnefContents:
    messages = list(_messages(tnef, "outer message", 0))
    outer_class = _message_class(tnef)
    calendars: list[bytes] = []
    sources: list[str] = []
    carriers: set[str] = set()  # attachments that gave a calendar, and those they are inside

    for message in messages:  # step 1: calendar attachments
        for index, attachment in enumerate(_attachments(message.tnef), start=1):
            name = _attachment_name(attachment)
            data = _as_bytes(getattr(attachment, "data", b""))
            if not (name.lower().endswith(_CALENDAR_SUFFIXES) or _STARTS_WITH_CALENDAR.match(data)):
                continue
            blocks = _calendar_blocks(data)
            if blocks:
                where = _child(message.where, index)
                calendars += blocks
                carriers.update(_lineage(where))
                sources.append(f"attachment {name or '(unnamed)'} ({where})")

    if not calendars:  # step 2: MAPI properties holding a calendar
        for message in messages:
            for label, attr, where in _mapi_attributes(message):
                blocks = [b for value in _property_values(attr) for b in _calendar_blocks(value)]
                if blocks:
                    calendars += blocks
                    carriers.update(_lineage(where))
                    sources.append(f"MAPI {label} of {_message_label(message)}")

    unique = tuple(dict.fromkeys(calendars))
    attachments = sum(
        _child("outer message", index) not in carriers
        for index in range(1, len(_attachments(tnef)) + 1)
    )
    summary = f"{outer_class or 'message of unknown class'}, {attachments} other attachment(s)"
    if unique:
        detail = f"{len(unique)} calendar(s) from {_some(sources)} in {summary}"
    else:
        embedded = [_message_label(m) for m in messages[1:]]
        inside = f" (embedded: {_some(embedded)})" if embedded else ""
        detail = (
            f"no calendar in {summary}{inside}: no .ics/.vcs attachment and no MAPI property "
            "holding BEGIN:VCALENDAR"
        )
    return TnefContents(unique, outer_class, attachments, detail)


def _some(items: list[str], shown: int = 3) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return "; ".join(items[:shown]) + more


def _messages(tnef: Any, where: str, depth: int) -> Iterator[_Message]:
    yield _Message(tnef, where)
    if depth >= MAX_EMBEDDING_DEPTH:
        return
    for index, attachment in enumerate(_attachments(tnef), start=1):
        embedded = getattr(attachment, "embed", None)
        if embedded is not None:
            yield from _messages(embedded, _child(where, index), depth + 1)


def _child(where: str, index: int) -> str:
    return f"attachment {index}" if where == "outer message" else f"{where} > attachment {index}"


def _lineage(where: str) -> Iterator[str]:
    """The location and every attachment it is inside (``a 3 > a 1`` gives it and ``a 3``)."""
    parts = where.split(" > ")
    for end in range(1, len(parts) + 1):
        yield " > ".join(parts[:end])


def _attachments(tnef: Any) -> list[Any]:
    found = getattr(tnef, "attachments", None)
    return list(found) if isinstance(found, list) else []


def _message_class(tnef: Any) -> str | None:
    for prop in getattr(tnef, "msgprops", []):
        if getattr(prop, "name", None) == _ATT_MESSAGE_CLASS and isinstance(prop.data, str):
            return prop.data.strip("\x00").strip() or None
    for attr in getattr(tnef, "mapiprops", []):
        if getattr(attr, "name", None) == _PR_MESSAGE_CLASS and not getattr(attr, "guid", ""):
            texts = [v for v in _raw_values(attr) if isinstance(v, str)]
            if texts:
                return texts[0].strip("\x00").strip() or None
    return None


def _message_label(message: _Message) -> str:
    kind = _message_class(message.tnef) or "message of unknown class"
    if message.where == "outer message":
        return f"the outer message ({kind})"
    return f"embedded {kind} ({message.where})"


def _attachment_name(attachment: Any) -> str:
    """Long file name, else short name, else '' (plus the extension property if any)."""
    names: list[str] = []
    for attr in getattr(attachment, "mapi_attrs", []):
        if getattr(attr, "name", None) in (_PR_ATTACH_LONG_FILENAME, _PR_ATTACH_FILENAME):
            names += [_text(v) for v in _raw_values(attr)]
    names.append(_text(getattr(attachment, "_name", b"")))
    name = next((n for n in names if n), "")
    for attr in getattr(attachment, "mapi_attrs", []):
        if getattr(attr, "name", None) == _PR_ATTACH_EXTENSION:
            extension = "".join(_text(v) for v in _raw_values(attr))
            if extension and not name.lower().endswith(extension.lower()):
                name += extension
    return name


def _mapi_attributes(message: _Message) -> Iterator[tuple[str, Any, str]]:
    """(label, attribute, carrier location) for the message's and its attachments' properties."""
    for attr in getattr(message.tnef, "mapiprops", []):
        yield _property_label(attr), attr, message.where
    for index, attachment in enumerate(_attachments(message.tnef), start=1):
        for attr in getattr(attachment, "mapi_attrs", []):
            label = f"{_property_label(attr)} of attachment {index}"
            yield label, attr, _child(message.where, index)


def _property_label(attr: Any) -> str:
    name = getattr(attr, "name", 0)
    guid = getattr(attr, "guid", "")
    if not guid:
        return f"property {name:#06x}"
    named = getattr(attr, "guid_name", None) or f"{getattr(attr, 'guid_prop', 0) or 0:#06x}"
    return f"named property {named} in set {{{guid}}}"


def _property_values(attr: Any) -> list[bytes]:
    kind = getattr(attr, "attr_type", None)
    if kind not in _TEXT_TYPES and kind not in _BYTES_TYPES:
        return []
    values: list[bytes] = []
    for value in _raw_values(attr):
        if isinstance(value, str):
            values.append(value.encode("utf-8", errors="replace"))
        elif isinstance(value, bytes):
            values.append(value)
    return values


def _raw_values(attr: Any) -> list[object]:
    raw = getattr(attr, "raw_data", None)
    return list(raw) if isinstance(raw, list) else []


def _text(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value.strip("\x00").strip() if isinstance(value, str) else ""


def _as_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else b""


def _calendar_blocks(data: bytes) -> list[bytes]:
    """Every ``BEGIN:VCALENDAR`` line up to its ``END:VCALENDAR`` line (and line break)."""
    blocks: list[bytes] = []
    position = 0
    while (begin := _BEGIN.search(data, position)) is not None:
        end = _END.search(data, begin.end())
        if end is None:
            break  # no later BEGIN can have an END either: linear time
        blocks.append(data[begin.start(1) : end.end()])
        position = end.end()
    return blocks


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 200 else text[:197] + "..."


# ----------------------------------------------------------------------- the work pre-scan
#
# A mirror of tnefparse 1.4's TNEF.__init__, TNEFAttachment.add_attr and mapi.decode_mapi
# that reads no value it need not read and charges one step per loop turn they would make.
# Where tnefparse surely raises (and so stops), the mirror raises _ParserWouldRaiseError;
# where it cannot tell, it carries on: it may overcount, never undercount.


class _TooMuchWorkError(Exception):
    """The container would cost tnefparse more than the budget: refused unread."""


class _ParserWouldRaiseError(Exception):
    """tnefparse raises at this point too, and so does no further work."""


class _DecodeMapiStopsError(Exception):
    """tnefparse's decode_mapi catches its error here and returns the properties read so far."""


class _Budget:
    __slots__ = ("left",)

    def __init__(self, steps: int) -> None:
        self.left = steps

    def spend(self, steps: int) -> None:
        self.left -= steps
        if self.left < 0:
            raise _TooMuchWorkError(f"decoding would take over {MAX_PARSE_STEPS} steps")


def _u16(data: bytes, offset: int, error: type[Exception]) -> int:
    if offset < 0 or offset + 2 > len(data):
        raise error
    return int.from_bytes(data[offset : offset + 2], "little")


def _u32(data: bytes, offset: int, error: type[Exception]) -> int:
    if offset < 0 or offset + 4 > len(data):
        raise error
    return int.from_bytes(data[offset : offset + 4], "little")


@dataclass(slots=True)
class _ScanState:
    budget: _Budget
    depth: int
    codepage: str | None = None
    attachment_codepage: tuple[str | None] | None = None  # None until the first attachment


def _scan_tnef(data: bytes, budget: _Budget, depth: int, do_checksum: bool) -> None:
    """Mirror of TNEF.__init__ (one step per object, plus the copy of the rest of the buffer)."""
    if depth > MAX_EMBEDDING_DEPTH:
        raise _TooMuchWorkError(f"messages embedded over {MAX_EMBEDDING_DEPTH} deep")
    if len(data) < 6 or data[:4] != TNEF_SIGNATURE:
        raise _ParserWouldRaiseError
    state = _ScanState(budget, depth)
    offset = 6
    while offset + 12 < len(data):
        remaining = len(data) - offset
        budget.spend(1 + remaining // _COPY_STEP_BYTES)
        length = min(remaining, _u32(data, offset + 5, _ParserWouldRaiseError) + 11)
        body = data[offset + 9 : offset + length - 2]
        if do_checksum:
            budget.spend(len(body) // _CHECKSUM_STEP_BYTES)
        _scan_object(
            state,
            level=data[offset],
            name=_u16(data, offset + 1, _ParserWouldRaiseError),
            kind=_u16(data, offset + 3, _ParserWouldRaiseError),
            body=body,
        )
        offset += length


def _scan_object(state: _ScanState, level: int, name: int, kind: int, body: bytes) -> None:
    """Mirror of the dispatch in TNEF.__init__ and TNEFAttachment.add_attr."""
    if name == _ATT_ATTACH_RENDDATA:
        state.attachment_codepage = (state.codepage,)
    if level == _LVL_ATTACHMENT:
        if state.attachment_codepage is None:
            raise _ParserWouldRaiseError  # an attachment attribute before any attachment
        if name == _ATT_ATTACHMENT:
            embedded: list[bytes] = []
            _scan_mapi(body, 0, state.attachment_codepage[0], state.budget, embedded)
            for message in embedded:
                _scan_tnef(message, state.budget, state.depth + 1, do_checksum=True)
    elif name == _ATT_MAPI_PROPS:
        _scan_mapi(body, 0, state.codepage, state.budget, None)
    elif name == _ATT_OEM_CODEPAGE:
        state.codepage = str(Codepage(_u32(body, 0, _ParserWouldRaiseError)).codepage())
    elif name == _ATT_RECIP_TABLE and kind not in (_PTYPE_CLASS, _PTYPE_STRING):
        rows = _u32(body, 0, _ParserWouldRaiseError)
        offset = 4
        for _ in range(rows):  # each row reads a count or raises: at most len(body) / 4 rows
            state.budget.spend(1)
            offset = _scan_mapi(body, offset, state.codepage, state.budget, None)


def _scan_mapi(
    data: bytes, offset: int, codepage: str | None, budget: _Budget, embedded: list[bytes] | None
) -> int:
    """Mirror of decode_mapi; collects embedded messages (PR_ATTACH_DATA_OBJ) if asked."""
    count = _u32(data, offset, _ParserWouldRaiseError)
    offset += 4
    try:
        for index in range(count):
            if offset >= len(data):
                budget.spend(count - index)  # tnefparse logs a warning per missing property
                break
            budget.spend(1)
            offset = _scan_property(data, offset, codepage, budget, embedded)
    except _DecodeMapiStopsError:
        pass
    return offset


def _scan_property(
    data: bytes, offset: int, codepage: str | None, budget: _Budget, embedded: list[bytes] | None
) -> int:
    kind = _u16(data, offset, _DecodeMapiStopsError)
    name = _u16(data, offset + 2, _DecodeMapiStopsError)
    offset += 4
    if name >= _NAMED_PROPERTY:
        offset = _skip_property_name(data, offset)
    values: int | None = None
    if kind & _MV_FLAG:
        kind ^= _MV_FLAG
        values = _u32(data, offset, _DecodeMapiStopsError)
        offset += 4
    turns = values or 1
    fixed = _FIXED_SIZES.get(kind)
    if fixed is not None:  # no read can fail: tnefparse makes every turn, however many
        budget.spend(turns)
        padding = 2 if turns % 2 and kind in (_PT_SHORT, _PT_BOOLEAN) else 0
        return offset + fixed * turns + padding
    if kind not in _TEXT_TYPES and kind not in _BYTES_TYPES:
        raise _DecodeMapiStopsError  # "Unknown MAPI type"
    for _ in range(turns):  # each turn reads a length or raises: at most len(data) / 4 turns
        budget.spend(1)
        try:
            value, offset = parse_property(data, offset, name, kind, codepage, values)
        except Exception:  # noqa: BLE001 - tnefparse raises anything on corrupt input
            raise _DecodeMapiStopsError from None
        if embedded is not None and name == _PR_ATTACH_DATA_OBJ and kind in _BYTES_TYPES:
            joined = b"".join(v.rstrip(b"\x00") for v in value if isinstance(v, bytes))
            if joined.startswith(_IMESSAGE_SIG):
                embedded.append(joined[len(_IMESSAGE_SIG) :])
    return offset


def _skip_property_name(data: bytes, offset: int) -> int:
    """Past the GUID and the id or name of a named property (decode_mapi reads them)."""
    if len(data) - offset < 16:
        raise _DecodeMapiStopsError  # uuid.UUID(bytes_le=...) wants 16 bytes
    offset += 16
    name_kind = _u32(data, offset, _DecodeMapiStopsError)
    offset += 4
    if name_kind == 0:
        _u32(data, offset, _DecodeMapiStopsError)
        return offset + 4
    size = _u32(data, offset, _DecodeMapiStopsError)
    offset += 4
    size += -size % 4
    try:
        data[offset : offset + size].decode("utf-16")
    except UnicodeDecodeError:
        raise _DecodeMapiStopsError from None
    return offset + size

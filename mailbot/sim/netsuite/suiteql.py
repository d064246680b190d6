"""SuiteQL over SQLite: the documented rules first, then a small Oracle-to-SQLite rewrite.

netsuite-rest.md section 5: ``POST /query/v1/suiteql?limit&offset`` with ``Prefer: transient``,
``{"q", "params"}`` with ``?`` bound in order; page size at most 1000 and the offset a multiple
of it; no WITH clause; at most 1000 values in an IN list; at most 100,000 rows.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mailbot.sim.netsuite.errors import invalid_request

MAX_LIMIT = 1000
MAX_ROWS = 100_000
MAX_IN_VALUES = 1000
TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<comment>--[^\n]*|/\*.*?\*/)
      | (?P<string>'(?:[^']|'')*')
      | (?P<quoted>"(?:[^"]|"")*")
      | (?P<number>\d+(?:\.\d+)?)
      | (?P<word>[A-Za-z_][A-Za-z0-9_$#]*)
      | (?P<param>\?)
      | (?P<op>\|\||<>|!=|<=|>=|[(),.*=<>+\-/;%])""",
    re.VERBOSE | re.DOTALL,
)
KEYWORDS_NEEDING_QUOTES = frozenset({"transaction"})
ORACLE_WORDS = {"sysdate": "CURRENT_DATE"}

Query = Callable[[str, list[Any]], tuple[list[str], list[tuple[Any, ...]]]]


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.lower() in words


def page_bounds(limit_text: str | None, offset_text: str | None) -> tuple[int, int]:
    """``limit`` (1..1000, default 1000) and ``offset`` (a multiple of limit)."""
    limit = _whole_number(limit_text, "limit", MAX_LIMIT)
    offset = _whole_number(offset_text, "offset", 0)
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid_request(
            f"The limit must be between 1 and {MAX_LIMIT}.", errorQueryParam="limit"
        )
    if offset % limit:
        raise invalid_request(
            "The offset must be a multiple of the limit.", errorQueryParam="offset"
        )
    if offset >= MAX_ROWS:
        raise invalid_request(f"A query returns at most {MAX_ROWS} rows.", errorQueryParam="offset")
    return limit, offset


def run_query(
    query: Query, body: Any, limit: int, offset: int, endpoint_url: str
) -> dict[str, Any]:
    """The SuiteQL answer for one page."""
    text, params = _statement(body)
    sql = translate(text, len(params))
    try:
        columns, rows = query(sql, params)
    except sqlite3.Error as error:
        raise invalid_request(f"Invalid search query: {error}.") from error
    rows = rows[:MAX_ROWS]
    page = rows[offset : offset + limit]
    has_more = offset + limit < len(rows)
    return {
        "links": page_links(endpoint_url, limit, offset, len(rows), has_more),
        "count": len(page),
        "hasMore": has_more,
        "offset": offset,
        "totalResults": len(rows),
        "items": [_item(columns, row) for row in page],
    }


def translate(text: str, param_count: int) -> str:
    """Checks the statement against SuiteQL's rules and rewrites it for SQLite."""
    tokens = tokenize(text)
    _check_statement(tokens)
    _check_in_lists(tokens)
    placeholders = sum(1 for token in tokens if token.kind == "param")
    if placeholders != param_count:
        raise invalid_request(
            f"The query has {placeholders} parameters but {param_count} values were given."
        )
    return _rewrite(tokens)


def tokenize(text: str) -> list[Token]:
    tokens, position = [], 0
    while position < len(text):
        match = TOKEN.match(text, position)
        if match is None:
            raise invalid_request(f"Invalid search query: unexpected {text[position]!r}.")
        kind = match.lastgroup or ""
        if kind not in {"space", "comment"}:
            tokens.append(Token(kind, match.group()))
        position = match.end()
    return tokens


def _statement(body: Any) -> tuple[str, list[Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("q"), str) or not body["q"].strip():
        raise invalid_request('The request body must be {"q": "<SuiteQL>", "params": [...]}.')
    params = body.get("params", [])
    if not isinstance(params, list) or not all(_is_parameter(p) for p in params):
        raise invalid_request("params must be a list of strings and numbers.")
    return body["q"], params


def _is_parameter(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _check_statement(tokens: list[Token]) -> None:
    first = next((token for token in tokens if token.text != "("), None)
    if any(token.is_word("with") for token in tokens):
        raise invalid_request("Invalid search query: WITH clauses are not supported in SuiteQL.")
    if first is None or not first.is_word("select"):
        raise invalid_request("Invalid search query: only SELECT statements are allowed.")
    if any(token.text == ";" for token in tokens):
        raise invalid_request("Invalid search query: one statement only, without ';'.")


def _check_in_lists(tokens: list[Token]) -> None:
    for index, token in enumerate(tokens[:-1]):
        if token.is_word("in") and tokens[index + 1].text == "(":
            values = _list_length(tokens, index + 2)
            if values > MAX_IN_VALUES:
                raise invalid_request(
                    f"Invalid search query: an IN list holds {values} values; "
                    f"at most {MAX_IN_VALUES} are allowed."
                )


def _list_length(tokens: list[Token], start: int) -> int:
    """Values in the parenthesised list starting at ``start`` (0 for a subquery)."""
    if start < len(tokens) and tokens[start].is_word("select"):
        return 0
    depth, commas = 1, 0
    for token in tokens[start:]:
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            depth -= 1
            if depth == 0:
                break
        elif token.text == "," and depth == 1:
            commas += 1
    return commas + 1


def _rewrite(tokens: list[Token]) -> str:
    out: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.is_word("builtin") and _is_builtin_call(tokens, index):
            out.append(_builtin_call(tokens, index))
            index += 4
            continue
        if token.kind == "word" and token.text.lower() in KEYWORDS_NEEDING_QUOTES:
            out.append(f'"{token.text.lower()}"')
        elif token.kind == "word" and token.text.lower() in ORACLE_WORDS:
            out.append(ORACLE_WORDS[token.text.lower()])
        else:
            out.append(token.text)
        index += 1
    return " ".join(out)


def _is_builtin_call(tokens: list[Token], index: int) -> bool:
    window = tokens[index : index + 4]
    if len(window) < 4 or window[1].text != "." or window[3].text != "(":
        return False
    if not window[2].is_word("df"):
        raise invalid_request(f"Invalid search query: BUILTIN.{window[2].text} is not supported.")
    return True


def _builtin_call(tokens: list[Token], index: int) -> str:
    """``BUILTIN.DF(t.status`` becomes ``ns_df('status', t.status``: the column names the list."""
    depth, column = 1, ""
    for token in tokens[index + 4 :]:
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            depth -= 1
            if depth == 0:
                break
        elif token.kind == "word":
            column = token.text.lower()
    return f"ns_df('{column}', "


def page_links(
    endpoint_url: str, limit: int, offset: int, total: int, has_more: bool
) -> list[dict[str, str]]:
    def page(at: int) -> str:
        return f"{endpoint_url}?limit={limit}&offset={at}"

    last = max(0, (total - 1) // limit * limit)
    links = []
    if offset > 0:
        links.append({"rel": "first", "href": page(0)})
        links.append({"rel": "previous", "href": page(max(0, offset - limit))})
    if has_more:
        links.append({"rel": "next", "href": page(offset + limit)})
        links.append({"rel": "last", "href": page(last)})
    links.append({"rel": "self", "href": page(offset)})
    return links


def _item(columns: list[str], row: tuple[Any, ...]) -> dict[str, Any]:
    """One row: values as text, null columns left out, as SuiteQL answers over REST."""
    item: dict[str, Any] = {"links": []}
    for column, value in zip(columns, row, strict=True):
        if value is not None:
            item[column] = _text(value)
    return item


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _whole_number(text: str | None, name: str, default: int) -> int:
    if text is None:
        return default
    if not re.fullmatch(r"\d{1,9}", text):
        raise invalid_request(f"The {name} must be a whole number.", errorQueryParam=name)
    return int(text)

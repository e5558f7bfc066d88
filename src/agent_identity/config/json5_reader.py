"""A small JSON5 reader: ``openclaw.json`` is JSON5, and errors must carry line and column.

OpenClaw reads its config file as JSON5 (comments, trailing commas, unquoted keys, single-quoted
strings, hex numbers), so operators' files use those; plain JSON is a subset and reads the same.
The standard library has no JSON5 parser, hence this one (recursive descent, depth-limited).

Two things on top of parsing:

- a syntax error raises :class:`JsonSyntaxError` with the 1-based line and column, and its message
  never quotes the document's text (a half-typed secret must not end up in an error);
- duplicate keys (which every JSON parser silently resolves to the last one) are recorded with
  their location, so the validator can report them as problems.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from agent_identity.config.errors import JsonPath

__all__ = ["MAX_DEPTH", "DuplicateKey", "JsonDocument", "JsonSyntaxError", "parse_json5"]

MAX_DEPTH = 200
"""Deepest nesting of objects and arrays accepted."""

_WHITESPACE = frozenset(" \t\n\r\v\f\u00a0\u2028\u2029\ufeff")
_ID_EXTRA_CATEGORIES = frozenset({"Mn", "Mc", "Nd", "Pc"})
_NUMBER = re.compile(
    r"[+-]?(?:Infinity|NaN|0[xX][0-9a-fA-F]+"
    r"|(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
)
_SIMPLE_ESCAPES = {
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}
_LINE_CONTINUATIONS = frozenset("\n\u2028\u2029")
_KEYWORDS: dict[str, object] = {
    "true": True,
    "false": False,
    "null": None,
    "Infinity": float("inf"),
    "NaN": float("nan"),
}


class JsonSyntaxError(ValueError):
    """The text is not valid JSON5.

    Attributes:
        message: What is wrong (never quotes the document).
        line: 1-based line of the error.
        column: 1-based column of the error.
    """

    def __init__(self, message: str, line: int, column: int) -> None:
        self.message = message
        self.line = line
        self.column = column
        super().__init__(f"{message} (line {line}, column {column})")


@dataclass(frozen=True, slots=True)
class DuplicateKey:
    """A key that appears twice in one object (the later value won).

    Attributes:
        path: The path of the object holding the key.
        key: The repeated key.
        line: 1-based line of the repetition.
        column: 1-based column of the repetition.
    """

    path: JsonPath
    key: str
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class JsonDocument:
    """A parsed document.

    Attributes:
        value: The data (dict, list, str, int, float, bool or None).
        duplicates: Every repeated key, in document order.
    """

    value: object
    duplicates: tuple[DuplicateKey, ...]


def parse_json5(text: str) -> JsonDocument:
    """Parse JSON5 (and therefore JSON) text.

    Args:
        text: The document.

    Returns:
        The value and the duplicate keys found.

    Raises:
        JsonSyntaxError: The text is not valid JSON5 or nests deeper than :data:`MAX_DEPTH`.
    """
    parser = _Parser(text)
    parser.skip()
    value = parser.parse_value()
    parser.skip()
    if parser.pos < len(text):
        raise parser.error("unexpected content after the end of the document")
    return JsonDocument(value, tuple(parser.duplicates))


def _is_space(char: str) -> bool:
    return char in _WHITESPACE or unicodedata.category(char) == "Zs"


def _is_id_start(char: str) -> bool:
    return char.isalpha() or char in "$_"


def _is_id_part(char: str) -> bool:
    return (
        _is_id_start(char)
        or char in "\u200c\u200d"
        or unicodedata.category(char) in _ID_EXTRA_CATEGORIES
    )


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.path: list[str | int] = []
        self.duplicates: list[DuplicateKey] = []

    # -- positions and errors

    def location(self, pos: int) -> tuple[int, int]:
        line = self.text.count("\n", 0, pos) + 1
        column = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        return line, column

    def error(self, message: str, pos: int | None = None) -> JsonSyntaxError:
        line, column = self.location(self.pos if pos is None else pos)
        return JsonSyntaxError(message, line, column)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str, what: str) -> None:
        if self.peek() != char:
            raise self.error(f"expected {what}" if self.peek() else "unexpected end of file")
        self.pos += 1

    # -- whitespace and comments

    def skip(self) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if _is_space(char):
                self.pos += 1
            elif text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end + 1
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise self.error("unterminated /* comment")
                self.pos = end + 2
            else:
                return

    # -- values

    def parse_value(self) -> object:
        char = self.peek()
        if not char:
            raise self.error("unexpected end of file")
        if char in "{[":
            if len(self.path) >= MAX_DEPTH:
                raise self.error(f"nesting deeper than {MAX_DEPTH} levels")
            return self.parse_object() if char == "{" else self.parse_array()
        if char in "\"'":
            return self.parse_string()
        if char in "+-.0123456789IN":
            return self.parse_number()
        start = self.pos
        word = self.parse_identifier()
        if word in _KEYWORDS:
            return _KEYWORDS[word]
        raise self.error("expected a value", start)

    def parse_object(self) -> dict[str, object]:
        self.pos += 1
        result: dict[str, object] = {}
        self.skip()
        while self.peek() != "}":
            key_pos = self.pos
            key = self.parse_key()
            self.skip()
            self.expect(":", "':' after a key")
            self.skip()
            self.path.append(key)
            item = self.parse_value()
            self.path.pop()
            if key in result:
                line, column = self.location(key_pos)
                self.duplicates.append(DuplicateKey(tuple(self.path), key, line, column))
            result[key] = item
            self.skip()
            if self.peek() != ",":
                break
            self.pos += 1
            self.skip()
        self.expect("}", "',' or '}'")
        return result

    def parse_key(self) -> str:
        char = self.peek()
        if char in ("'", '"'):
            return self.parse_string()
        if char and _is_id_start(char):
            return self.parse_identifier()
        raise self.error(
            "expected a key (a string or a name)" if char else "unexpected end of file"
        )

    def parse_array(self) -> list[object]:
        self.pos += 1
        result: list[object] = []
        self.skip()
        while self.peek() != "]":
            self.path.append(len(result))
            result.append(self.parse_value())
            self.path.pop()
            self.skip()
            if self.peek() != ",":
                break
            self.pos += 1
            self.skip()
        self.expect("]", "',' or ']'")
        return result

    def parse_identifier(self) -> str:
        start = self.pos
        text = self.text
        if self.pos < len(text) and _is_id_start(text[self.pos]):
            self.pos += 1
            while self.pos < len(text) and _is_id_part(text[self.pos]):
                self.pos += 1
        if self.pos == start:
            raise self.error("expected a value")
        return text[start : self.pos]

    def parse_number(self) -> int | float:
        match = _NUMBER.match(self.text, self.pos)
        start = self.pos
        if match is None:
            raise self.error("invalid number")
        self.pos = match.end()
        follower = self.peek()
        if follower and (_is_id_part(follower) or follower == "."):
            raise self.error("invalid number", start)
        token = match.group()
        sign = -1 if token.startswith("-") else 1
        body = token.lstrip("+-")
        if body in ("Infinity", "NaN"):
            return sign * float("inf") if body == "Infinity" else float("nan")
        try:
            if body[:2] in ("0x", "0X"):
                return sign * int(body, 16)
            if any(mark in body for mark in ".eE"):
                return float(token)
            return int(token)
        except ValueError:  # more digits than Python converts
            raise self.error("number too long", start) from None

    def parse_string(self) -> str:
        quote = self.text[self.pos]
        start = self.pos
        self.pos += 1
        parts: list[str] = []
        text = self.text
        while True:
            if self.pos >= len(text):
                raise self.error("unterminated string", start)
            char = text[self.pos]
            if char == quote:
                self.pos += 1
                return "".join(parts)
            if char in "\n\r":
                raise self.error("unterminated string (line break inside a string)", start)
            if char == "\\":
                parts.append(self.parse_escape())
            else:
                parts.append(char)
                self.pos += 1

    def parse_escape(self) -> str:
        esc_pos = self.pos
        self.pos += 1
        char = self.peek()
        if not char:
            raise self.error("unterminated string")
        self.pos += 1
        if char in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[char]
        if char == "\r":
            if self.peek() == "\n":
                self.pos += 1
            return ""
        if char in _LINE_CONTINUATIONS:
            return ""
        if char == "0" and not self.peek().isdigit():
            return "\0"
        if char.isdigit():
            raise self.error("invalid escape (digits cannot be escaped)", esc_pos)
        if char == "x":
            return chr(self.hex_digits(2, esc_pos))
        if char == "u":
            return self.unicode_escape(esc_pos)
        return char

    def hex_digits(self, count: int, esc_pos: int) -> int:
        digits = self.text[self.pos : self.pos + count]
        if len(digits) != count or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise self.error("invalid escape (bad hex digits)", esc_pos)
        self.pos += count
        return int(digits, 16)

    def unicode_escape(self, esc_pos: int) -> str:
        code = self.hex_digits(4, esc_pos)
        if 0xDC00 <= code <= 0xDFFF:
            raise self.error("invalid escape (lone surrogate)", esc_pos)
        if 0xD800 <= code <= 0xDBFF:
            if not self.text.startswith("\\u", self.pos):
                raise self.error("invalid escape (lone surrogate)", esc_pos)
            self.pos += 2
            low = self.hex_digits(4, esc_pos)
            if not 0xDC00 <= low <= 0xDFFF:
                raise self.error("invalid escape (lone surrogate)", esc_pos)
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        return chr(code)

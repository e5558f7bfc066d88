"""The JSON5 reader: JSON is read exactly like the standard library reads it; JSON5 extras work."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_identity.config.json5_reader import (
    MAX_DEPTH,
    DuplicateKey,
    JsonSyntaxError,
    parse_json5,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values, st.sampled_from([None, 2]), st.booleans())
def test_json_reads_like_the_standard_library(
    value: object, indent: int | None, ascii_only: bool
) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only)
    assert parse_json5(text).value == json.loads(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("// comment\n1", 1),
        ("/* a */ [1, /* b */ 2,] // end", [1, 2]),
        ("{a: 1, $b_2: 2, ünï: 3,}", {"a": 1, "$b_2": 2, "ünï": 3}),
        ("'single \"quoted\"'", 'single "quoted"'),
        ('"tab\\tnl\\nq\\\'v\\vz\\0x\\x41\\u00e9\\a"', "tab\tnl\nq'v\vz\0xA\u00e9a"),
        ('"line \\\ncontinued \\\r\nagain \\\u2028done"', "line continued again done"),
        ('"\\ud83d\\ude00"', "\U0001f600"),
        ('"old\\\rmac"', "oldmac"),
        ("0x1f", 31),
        ("-0XFF", -255),
        ("+5", 5),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e3", 1000.0),
        ("[true, false, null]", [True, False, None]),
        ("\ufeff\u00a0{}", {}),
    ],
)
def test_json5_extras(text: str, expected: object) -> None:
    assert parse_json5(text).value == expected


def test_infinity_and_nan() -> None:
    value = parse_json5("[Infinity, -Infinity, +NaN, NaN]").value
    assert isinstance(value, list)
    assert value[0] == math.inf
    assert value[1] == -math.inf
    assert math.isnan(value[2])
    assert math.isnan(value[3])


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        ("", "unexpected end of file", 1, 1),
        ("{", "unexpected end of file", 1, 2),
        ("{a", "unexpected end of file", 1, 3),
        ("{a: 1", "unexpected end of file", 1, 6),
        ("[1 2]", "expected ',' or ']'", 1, 4),
        ("{\n  1: 2}", "expected a key (a string or a name)", 2, 3),
        ("{a: 1 b: 2}", "expected ',' or '}'", 1, 7),
        ("nope", "expected a value", 1, 1),
        ("[,]", "expected a value", 1, 2),
        ("@", "expected a value", 1, 1),
        ("01", "invalid number", 1, 1),
        ("1.2.3", "invalid number", 1, 1),
        ("Infinite", "invalid number", 1, 1),
        ("-", "invalid number", 1, 1),
        ("1" * 5000, "number too long", 1, 1),
        ("{} 1", "unexpected content after the end of the document", 1, 4),
        ("/* never closed", "unterminated /* comment", 1, 1),
        ('"abc', "unterminated string", 1, 1),
        ('"a\\', "unterminated string", 1, 4),
        ('"a\nb"', "unterminated string (line break inside a string)", 1, 1),
        ('"\\1"', "invalid escape (digits cannot be escaped)", 1, 2),
        ('"\\x4"', "invalid escape (bad hex digits)", 1, 2),
        ('"\\uZZZZ"', "invalid escape (bad hex digits)", 1, 2),
        ('"\\udc00"', "invalid escape (lone surrogate)", 1, 2),
        ('"\\ud800"', "invalid escape (lone surrogate)", 1, 2),
        ('"\\ud800\\u0041"', "invalid escape (lone surrogate)", 1, 2),
    ],
)
def test_syntax_errors(text: str, message: str, line: int, column: int) -> None:
    with pytest.raises(JsonSyntaxError) as info:
        parse_json5(text)
    assert (info.value.message, info.value.line, info.value.column) == (message, line, column)
    assert str(info.value) == f"{message} (line {line}, column {column})"


def test_nesting_limit() -> None:
    parse_json5("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    with pytest.raises(JsonSyntaxError, match="nesting deeper than"):
        parse_json5("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    with pytest.raises(JsonSyntaxError, match="nesting deeper than"):
        parse_json5('{"a": ' * 10_000)


def test_duplicates_are_recorded_with_their_place() -> None:
    document = parse_json5('{"a": {"b": 1,\n "b": 2}, "c": [{"d": 1, "d": 1}]}')
    assert document.value == {"a": {"b": 2}, "c": [{"d": 1}]}
    assert document.duplicates == (
        DuplicateKey(("a",), "b", 2, 2),
        DuplicateKey(("c", 0), "d", 2, 26),
    )


def test_line_comment_at_end_of_file() -> None:
    assert parse_json5("1 // no newline").value == 1

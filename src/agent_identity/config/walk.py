"""A structural validator that reports every problem, driven by the Structs themselves.

msgspec stops at the first error; an operator wants all of them. :func:`check_value` walks raw
JSON data alongside the ``msgspec.inspect`` description of a Struct and records a problem for
each unknown key (with the nearest known key as a suggestion), missing required key, wrong JSON
type, out-of-range number, empty string and malformed URL. Because the schema is read from the
Struct definitions, the validator and the model cannot drift apart.

Messages never echo a string value (a secret could be in it); integers are shown because no
secret is a number.
"""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Sequence
from urllib.parse import urlsplit

import msgspec
import msgspec.inspect as mi

from agent_identity.config.errors import ConfigProblem, JsonPath
from agent_identity.config.redact import URL_MARK

__all__ = ["check_value", "describe_json_type", "suggest_key"]

_INT_LIMIT = 2**63
_MAX_KEY_SHOWN = 60


@functools.cache
def _schema(cls: type[msgspec.Struct]) -> mi.Type:
    return mi.type_info(cls)


def check_value(
    value: object, cls: type[msgspec.Struct], path: JsonPath = ()
) -> list[ConfigProblem]:
    """Check raw JSON data against a Struct's schema, collecting every problem.

    Args:
        value: Data as parsed from JSON (dicts, lists, scalars).
        cls: The Struct type the data should decode into.
        path: Where ``value`` sits in the document, prefixed to every problem's path.

    Returns:
        The problems, in document order; empty when the data fits the schema.
    """
    walker = _Walker()
    walker.visit(value, _schema(cls), path)
    return walker.problems


def describe_json_type(value: object) -> str:
    """Name the JSON type of a value for an error message (``"a string"``, ``"null"``, ...).

    Args:
        value: Any parsed JSON value (or Python value handed in by a caller).

    Returns:
        The description with its article.
    """
    match value:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case int():
            return "an integer"
        case float():
            if math.isnan(value):
                return "NaN"
            return "Infinity" if math.isinf(value) else "a decimal number"
        case str():
            return "a string"
        case list():
            return "an array"
        case dict():
            return "an object"
        case _:
            return f"a Python {type(value).__name__}"


def _normal(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


def suggest_key(key: str, known: Sequence[str]) -> str | None:
    """The known key an unknown key was most likely meant to be.

    A key that differs only in case, ``_`` or ``-`` wins (``client_secret`` → ``clientSecret``);
    otherwise the closest match by :func:`difflib.get_close_matches`.

    Args:
        key: The unknown key.
        known: The keys allowed at that place.

    Returns:
        The suggestion, or ``None`` when nothing is close.
    """
    for candidate in known:
        if _normal(candidate) == _normal(key):
            return candidate
    matches = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _quote_key(key: str) -> str:
    shown = key if key.isprintable() else key.encode("unicode_escape").decode("ascii")
    if len(shown) > _MAX_KEY_SHOWN:
        shown = shown[: _MAX_KEY_SHOWN - 3] + "..."
    return f"'{shown}'"


def _url_problem(value: str) -> str | None:
    if any(char.isspace() or not char.isprintable() for char in value):
        return "must be an http(s) URL (it contains spaces or control characters)"
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        return "must be an http(s) URL (it is malformed)"
    if parts.scheme not in ("http", "https"):
        return "must be an http(s) URL (the scheme must be http or https)"
    if not host:
        return "must be an http(s) URL with a host"
    return None


def _unwrap(typ: mi.Type) -> mi.Type:
    """Strip metadata and ``| None`` to reach the underlying type (for nested-key hints)."""
    while True:
        if isinstance(typ, mi.Metadata):
            typ = typ.type
        elif isinstance(typ, mi.UnionType):
            members = [t for t in typ.types if not isinstance(t, mi.NoneType)]
            if len(members) != 1:  # pragma: no cover - the model only uses ``X | None``
                return typ
            typ = members[0]
        else:
            return typ


class _Walker:
    def __init__(self) -> None:
        self.problems: list[ConfigProblem] = []

    def add(self, path: JsonPath, message: str) -> None:
        self.problems.append(ConfigProblem(path, message))

    def visit(self, value: object, typ: mi.Type, path: JsonPath, *, url: bool = False) -> None:
        if isinstance(typ, mi.Metadata):
            url = url or bool((typ.extra or {}).get(URL_MARK))
            self.visit(value, typ.type, path, url=url)
        elif isinstance(typ, mi.UnionType):
            self.union(value, typ, path, url=url)
        elif isinstance(typ, mi.StructType):
            self.struct(value, typ, path)
        elif isinstance(typ, mi.StrType):
            self.string(value, typ, path, url=url)
        elif isinstance(typ, mi.BoolType):
            if not isinstance(value, bool):
                self.add(path, f"expected true or false, got {describe_json_type(value)}")
        elif isinstance(typ, mi.IntType):
            self.integer(value, typ, path)
        elif isinstance(typ, mi.LiteralType):
            if not isinstance(value, str) or value not in typ.values:
                choices = ", ".join(repr(choice) for choice in typ.values)
                self.add(path, f"must be one of {choices}")
        elif isinstance(typ, mi.ListType | mi.VarTupleType):
            self.array(value, typ.item_type, path)
        elif isinstance(typ, mi.DictType):
            self.mapping(value, typ.value_type, path)
        else:  # pragma: no cover - a model change the walker does not know yet
            msg = f"config schema uses a type the validator does not handle: {typ!r}"
            raise TypeError(msg)

    def union(self, value: object, typ: mi.UnionType, path: JsonPath, *, url: bool) -> None:
        members = [t for t in typ.types if not isinstance(t, mi.NoneType)]
        if value is None and len(members) < len(typ.types):
            return
        if len(members) != 1:  # pragma: no cover - the model only uses ``X | None``
            msg = f"config schema uses a union the validator does not handle: {typ!r}"
            raise TypeError(msg)
        self.visit(value, members[0], path, url=url)

    def struct(self, value: object, typ: mi.StructType, path: JsonPath) -> None:
        if not isinstance(value, dict):
            self.add(path, f"expected an object, got {describe_json_type(value)}")
            return
        fields = {field.encode_name: field for field in typ.fields}
        for key, item in value.items():
            if not isinstance(key, str):
                self.add(path, f"keys must be strings, got {describe_json_type(key)}")
                continue
            field = fields.get(key)
            if field is not None:
                self.visit(item, field.type, (*path, key))
            elif typ.forbid_unknown_fields:
                self.add((*path, key), self.unknown_key_message(key, typ))
        for field in typ.fields:
            if field.required and field.encode_name not in value:
                self.add((*path, field.encode_name), "missing (required)")

    @staticmethod
    def unknown_key_message(key: str, typ: mi.StructType) -> str:
        known = [field.encode_name for field in typ.fields]
        hint = suggest_key(key, known)
        if hint is None:
            for field in typ.fields:
                inner = _unwrap(field.type)
                if isinstance(inner, mi.StructType):
                    nested = suggest_key(key, [f.encode_name for f in inner.fields])
                    if nested is not None and _normal(nested) == _normal(key):
                        hint = f"{field.encode_name}.{nested}"
                        break
        message = f"unknown key {_quote_key(key)}"
        return f"{message} (did you mean '{hint}'?)" if hint else message

    def string(self, value: object, typ: mi.StrType, path: JsonPath, *, url: bool) -> None:
        if not isinstance(value, str):
            self.add(path, f"expected a string, got {describe_json_type(value)}")
        elif typ.min_length and len(value) < typ.min_length:
            self.add(path, "must not be empty (leave the key out to leave it unset)")
        elif url and (problem := _url_problem(value)) is not None:
            self.add(path, problem)

    def integer(self, value: object, typ: mi.IntType, path: JsonPath) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, f"expected an integer, got {describe_json_type(value)}")
        elif not -_INT_LIMIT <= value < _INT_LIMIT:
            self.add(path, "is out of range")
        elif typ.gt is not None and value <= typ.gt:
            wanted = "a positive integer" if typ.gt == 0 else f"greater than {typ.gt}"
            self.add(path, f"must be {wanted}, got {value}")
        elif typ.ge is not None and value < typ.ge:
            wanted = "zero or more" if typ.ge == 0 else f"at least {typ.ge}"
            self.add(path, f"must be {wanted}, got {value}")

    def array(self, value: object, item_type: mi.Type, path: JsonPath) -> None:
        if not isinstance(value, list | tuple):  # tuples: Python callers and to_builtins()
            self.add(path, f"expected an array, got {describe_json_type(value)}")
            return
        for index, item in enumerate(value):
            self.visit(item, item_type, (*path, index))

    def mapping(self, value: object, value_type: mi.Type, path: JsonPath) -> None:
        if not isinstance(value, dict):
            self.add(path, f"expected an object, got {describe_json_type(value)}")
            return
        for key, item in value.items():
            if not isinstance(key, str):
                self.add(path, f"keys must be strings, got {describe_json_type(key)}")
                continue
            self.visit(item, value_type, (*path, key))

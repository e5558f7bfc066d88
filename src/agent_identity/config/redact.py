"""The display form of configuration: the only way configuration is printed or logged.

:func:`redact` turns a config object (or anything built from Structs, dicts, lists and scalars)
into plain JSON-ready data with every secret masked. ``config show``, the ``/identity config``
command, the ``identity_config`` tool, ``repr()`` of every config Struct and log lines all go
through it, so there is one place that decides what a secret looks like on screen.

Which values are secret is declared on the Struct fields (``Meta(extra={"secret": ...})``, see
:mod:`agent_identity.config._base`); as a second line of defence any key whose name looks like a
secret (``...Secret``, ``...Token``, ``...Key``, ``password``) is masked too, also inside plain
dicts.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

import msgspec
import msgspec.inspect as mi

__all__ = [
    "MASK",
    "REVEAL_MIN_LENGTH",
    "SECRET_MARK",
    "URL_MARK",
    "mask_secret",
    "redact",
]

MASK = "***"
"""What a secret is replaced by."""
REVEAL_MIN_LENGTH = 16
"""Secrets at least this long show their last :data:`_REVEAL_CHARS` characters after the mask."""
_REVEAL_CHARS = 4

SECRET_MARK = "secret"  # noqa: S105 - a metadata key, not a secret
"""``Meta.extra`` key marking a secret field; value ``"partial"`` (tail shown) or ``"full"``."""
URL_MARK = "url"
"""``Meta.extra`` key marking a URL field (must be http(s); any ``user:password@`` is masked)."""

_PARTIAL = "partial"
_SECRET_WORDS = ("secret", "token", "password", "apikey", "accesskey", "storekey", "privatekey")


def mask_secret(value: str | bytes, *, reveal_tail: bool = True) -> str:
    """Mask a secret for display.

    Args:
        value: The secret. Bytes are never partly shown.
        reveal_tail: Whether a long secret may show its last 4 characters.

    Returns:
        ``"***"``, or ``"***"`` plus the last 4 characters when the secret is at least
        :data:`REVEAL_MIN_LENGTH` characters long (so a short secret reveals nothing).
    """
    if isinstance(value, bytes) or not reveal_tail or len(value) < REVEAL_MIN_LENGTH:
        return MASK
    return MASK + value[-_REVEAL_CHARS:]


def _looks_secret(key: str) -> bool:
    normal = key.lower().replace("_", "").replace("-", "")
    return any(word in normal for word in _SECRET_WORDS)


def _mask_url_password(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{MASK}@{host}"))


@runtime_checkable
class DisplayAdjusted(Protocol):
    """A Struct that adjusts its own display form after the generic field-by-field pass."""

    def display_overrides(self, shown: dict[str, Any]) -> dict[str, Any]:
        """Return the display dict to use instead of ``shown`` (already redacted)."""
        ...


@dataclass(frozen=True, slots=True)
class _FieldView:
    name: str
    key: str
    mask_mode: str | None
    url: bool


def _markers(typ: mi.Type) -> tuple[str | None, bool]:
    if isinstance(typ, mi.UnionType):
        mode: str | None = None
        url = False
        for member in typ.types:
            member_mode, member_url = _markers(member)
            mode = mode or member_mode
            url = url or member_url
        return mode, url
    if isinstance(typ, mi.Metadata):
        extra = typ.extra or {}
        mark = extra.get(SECRET_MARK)
        return (str(mark) if mark else None), bool(extra.get(URL_MARK))
    return None, False


@functools.cache
def _fields(cls: type[msgspec.Struct]) -> tuple[_FieldView, ...]:
    info = mi.type_info(cls)
    if not isinstance(info, mi.StructType):  # pragma: no cover - every Struct class is one
        return ()
    views: list[_FieldView] = []
    for field in info.fields:
        mask_mode, url = _markers(field.type)
        if mask_mode is None and _looks_secret(field.encode_name):
            mask_mode = _PARTIAL
        views.append(_FieldView(field.name, field.encode_name, mask_mode, url))
    return tuple(views)


def _mask_value(value: object, mode: str) -> object:
    if value is None:
        return None
    if isinstance(value, str | bytes):
        return mask_secret(value, reveal_tail=mode != "full")
    if isinstance(value, Mapping):
        return {str(key): _mask_value(item, mode) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(item, mode) for item in value]
    return MASK


def redact(value: msgspec.Struct | Mapping[str, object]) -> dict[str, Any]:
    """Return the display form of a configuration object, with every secret masked.

    Structs become dicts keyed by their wire names (camelCase for the plugin config), in field
    order, with defaults filled in and unset optional values shown as ``None``. Paths become
    strings; bytes are never shown. The result is plain JSON-ready data.

    Args:
        value: A config Struct (or a mapping of raw config data).

    Returns:
        The JSON-ready display dict.
    """
    shown = _display(value)
    if not isinstance(shown, dict):  # pragma: no cover - Structs and mappings give dicts
        msg = f"cannot display a {type(value).__name__} as a config object"
        raise TypeError(msg)
    return shown


def _display(value: object) -> object:
    if isinstance(value, msgspec.Struct):
        shown: dict[str, Any] = {}
        for view in _fields(type(value)):
            item = getattr(value, view.name)
            if view.mask_mode is not None:
                shown[view.key] = _mask_value(item, view.mask_mode)
            elif view.url and isinstance(item, str):
                shown[view.key] = _mask_url_password(item)
            else:
                shown[view.key] = _display(item)
        if isinstance(value, DisplayAdjusted):
            shown = value.display_overrides(shown)
        return shown
    if isinstance(value, Mapping):
        return {
            str(key): _mask_value(item, _PARTIAL) if _looks_secret(str(key)) else _display(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_display(item) for item in value]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return MASK
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def secret_values(value: object) -> list[str]:
    """Every secret string of a configuration object (for log scrubbing).

    The same fields :func:`redact` masks: those marked secret, and those whose name looks
    secret. Nested Structs, mappings and sequences are searched.

    Args:
        value: A config Struct (or a mapping or sequence holding them).

    Returns:
        The secret values, in field order (duplicates kept).
    """
    found: list[str] = []
    if isinstance(value, msgspec.Struct):
        for view in _fields(type(value)):
            item = getattr(value, view.name)
            if view.mask_mode is not None:
                found.extend(_strings(item))
            else:
                found.extend(secret_values(item))
    elif isinstance(value, Mapping):
        for item in value.values():
            found.extend(secret_values(item))
    elif isinstance(value, list | tuple):
        for item in value:
            found.extend(secret_values(item))
    return found


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    return []

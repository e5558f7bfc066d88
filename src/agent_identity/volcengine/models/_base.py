"""The base of every wire model: PascalCase names, unset optionals left out, masked secrets.

Requests and responses are msgspec Structs. ``rename="pascal"`` maps ``user_pool_uid`` to
``UserPoolUid``; the API's few irregular names (``UserPoolUID``, ``WithOIDC``, ``runID``...) are
spelled out with ``msgspec.field(name=...)`` where they occur. ``omit_defaults=True`` leaves
unset optional fields out of the body, as the official SDK does. Decoding ignores fields the
server adds later.

Secrets (keys, tokens, client secrets, API keys, stored credential data) are plain ``str``
fields, listed per class in ``__secret_fields__``; the repr (also used by ``str``, f-strings,
containers and rich) shows ``<redacted>`` in their place, so a model that ends up in a log line
or an assertion message leaks nothing. The value itself stays reachable as the attribute.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import msgspec

__all__ = ["REDACTED", "EmptyResult", "WireModel"]

REDACTED = "<redacted>"


class WireModel(msgspec.Struct, rename="pascal", kw_only=True, omit_defaults=True):
    """Base of the request and response models; see the module docstring."""

    __secret_fields__: ClassVar[frozenset[str]] = frozenset()

    def _shown(self) -> Iterator[tuple[str, object]]:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            # An empty or absent secret is shown as such: whether it is set is useful to see.
            if name in self.__secret_fields__ and value:
                yield name, _Redacted()
            else:
                yield name, value

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self._shown())
        return f"{type(self).__name__}({fields})"

    def __rich_repr__(self) -> list[tuple[str, object]]:
        """The fields as rich shows them, secrets masked like in ``repr``."""
        return list(self._shown())


class _Redacted:
    __slots__ = ()

    def __repr__(self) -> str:
        return REDACTED


class EmptyResult(WireModel):
    """The ``Result: {}`` of actions with no output."""

"""The base Struct of every config object, and the annotated field types they share.

The field types carry their constraints as msgspec ``Meta`` (so a direct ``msgspec`` decode
enforces them too) plus two markers in ``Meta.extra`` that the validator and the redaction read:
``url`` (must be an http(s) URL with a host) and ``secret`` (masked on display, never echoed in an
error).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import msgspec

from agent_identity.config.redact import SECRET_MARK, URL_MARK, redact

__all__ = [
    "ConfigStruct",
    "NonNegativeInt",
    "PositiveInt",
    "Secret",
    "Text",
    "Url",
]

Text = Annotated[str, msgspec.Meta(min_length=1)]
"""A non-empty string."""
Url = Annotated[str, msgspec.Meta(min_length=1, extra={URL_MARK: True})]
"""An http(s) URL with a host (checked by the validator)."""
Secret = Annotated[str, msgspec.Meta(min_length=1, extra={SECRET_MARK: "partial"})]
"""A non-empty secret string: masked on display, never echoed in an error."""
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
"""An integer greater than zero."""
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
"""An integer zero or greater."""


class ConfigStruct(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    rename="camel",
):
    """Base of the config Structs: immutable, camelCase on the wire, strict about unknown keys.

    ``repr()``, ``str()`` and rich's pretty printer all show the redacted display form, so a
    config object that ends up in a log line or a traceback leaks no secret.
    """

    def __repr__(self) -> str:
        shown = json.dumps(redact(self), ensure_ascii=False, separators=(", ", ": "))
        return f"{type(self).__name__}({shown})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        """The redacted fields, for rich's pretty printer."""
        return list(redact(self).items())

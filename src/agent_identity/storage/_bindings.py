"""The format of ``credential-env-bindings.json``: plain JSON, exactly the spec's shape.

::

    {"<sessionKey>": {"<provider>": "<ENV_VAR>", ...}, ...}

It holds names only (which provider's credential goes into which env var), no secret, so it
is not encrypted; it is still written with mode 0600 like every file of the store. It is
written indented and with sorted keys, for operators who read it.
"""

from __future__ import annotations

import msgspec

from agent_identity.storage._errors import UnreadableFileError
from agent_identity.storage._records import BindingMap

__all__ = ["BINDINGS_FILE", "encode_bindings", "parse_bindings_file"]

BINDINGS_FILE = "credential-env-bindings.json"
"""The env bindings file in ``dataDir``."""

_decoder = msgspec.json.Decoder(dict[str, dict[str, str]])
_encoder = msgspec.json.Encoder(order="sorted")


def encode_bindings(bindings: BindingMap) -> bytes:
    """Serialise bindings; sessions without any binding are left out."""
    shown = {key: dict(providers) for key, providers in bindings.items() if providers}
    return msgspec.json.format(_encoder.encode(shown), indent=2) + b"\n"


def parse_bindings_file(data: bytes) -> dict[str, dict[str, str]]:
    """Parse the bindings file.

    Raises:
        UnreadableFileError: Not JSON, or not ``{string: {string: string}}``.
    """
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise UnreadableFileError(f"not a valid bindings file ({exc})") from None

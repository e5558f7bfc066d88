"""A typed snapshot of the environment variables the plugin reads.

The snapshot is taken from a mapping handed in by the caller (``os.environ`` at the edge, a plain
dict in tests); nothing below the CLI and the system layer reads ``os.environ`` itself. Env
credentials are only exposed here, never merged into the config: the credential chain decides
their precedence (config, then env, then metadata URL, then credentials file).

Empty (or blank) values count as unset. ``repr()`` masks every secret; the store key is never
shown at all.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Annotated

import msgspec

from agent_identity.config._base import ConfigStruct, Secret
from agent_identity.config.errors import ConfigError, ConfigProblem
from agent_identity.config.redact import SECRET_MARK

__all__ = [
    "ACCESS_KEY_VAR",
    "CREDENTIALS_FILE_VAR",
    "ROLE_TRN_VAR",
    "SECRET_KEY_VAR",
    "SESSION_TOKEN_VAR",
    "STORE_KEY_BYTES",
    "STORE_KEY_VAR",
    "STS_DEBUG_VAR",
    "EnvSettings",
]

ACCESS_KEY_VAR = "VOLCENGINE_ACCESS_KEY"
SECRET_KEY_VAR = "VOLCENGINE_SECRET_KEY"  # noqa: S105 - a variable name, not a secret
SESSION_TOKEN_VAR = "VOLCENGINE_SESSION_TOKEN"  # noqa: S105 - a variable name
CREDENTIALS_FILE_VAR = "VOLCENGINE_CREDENTIALS_FILE"
ROLE_TRN_VAR = "RUNTIME_IAM_ROLE_TRN"
STS_DEBUG_VAR = "IDENTITY_STS_DEBUG"
STORE_KEY_VAR = "AGENT_IDENTITY_STORE_KEY"
STORE_KEY_BYTES = 32
"""Length of the session-store key (AES-256-GCM)."""

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

StoreKey = Annotated[bytes, msgspec.Meta(extra={SECRET_MARK: "full"})]


class EnvSettings(ConfigStruct, frozen=True, kw_only=True):
    """The environment variables of the spec, plus the session-store key.

    Attributes:
        access_key_id: ``VOLCENGINE_ACCESS_KEY``.
        secret_access_key: ``VOLCENGINE_SECRET_KEY``.
        session_token: ``VOLCENGINE_SESSION_TOKEN``.
        credentials_file: ``VOLCENGINE_CREDENTIALS_FILE`` (path of a VeFaaS credential file).
        role_trn: ``RUNTIME_IAM_ROLE_TRN`` (role for AssumeRole when loading from the file).
        sts_debug: ``IDENTITY_STS_DEBUG`` is on (``1``/``true``/``yes``/``on``): log full STS
            AssumeRole requests and responses.
        store_key: ``AGENT_IDENTITY_STORE_KEY`` decoded (base64 of 32 bytes): the key that
            encrypts ``sessions.json``; never shown.
    """

    access_key_id: Secret | None = msgspec.field(default=None, name=ACCESS_KEY_VAR)
    secret_access_key: Secret | None = msgspec.field(default=None, name=SECRET_KEY_VAR)
    session_token: Secret | None = msgspec.field(default=None, name=SESSION_TOKEN_VAR)
    credentials_file: str | None = msgspec.field(default=None, name=CREDENTIALS_FILE_VAR)
    role_trn: str | None = msgspec.field(default=None, name=ROLE_TRN_VAR)
    sts_debug: bool = msgspec.field(default=False, name=STS_DEBUG_VAR)
    store_key: StoreKey | None = msgspec.field(default=None, name=STORE_KEY_VAR)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> EnvSettings:
        """Take the snapshot.

        Args:
            environ: The environment, e.g. ``os.environ`` (read once, here).

        Returns:
            The snapshot.

        Raises:
            ConfigError: ``AGENT_IDENTITY_STORE_KEY`` is not base64 of 32 bytes, or
                ``IDENTITY_STS_DEBUG`` is not a yes/no value (all such problems together).
        """

        def get(name: str) -> str | None:
            value = environ.get(name, "").strip()
            return value or None

        problems: list[ConfigProblem] = []
        sts_debug = _parse_flag(get(STS_DEBUG_VAR), STS_DEBUG_VAR, problems)
        store_key = _parse_store_key(get(STORE_KEY_VAR), problems)
        if problems:
            raise ConfigError(problems, "environment")
        return cls(
            access_key_id=get(ACCESS_KEY_VAR),
            secret_access_key=get(SECRET_KEY_VAR),
            session_token=get(SESSION_TOKEN_VAR),
            credentials_file=get(CREDENTIALS_FILE_VAR),
            role_trn=get(ROLE_TRN_VAR),
            sts_debug=sts_debug,
            store_key=store_key,
        )

    @property
    def has_access_keys(self) -> bool:
        """Whether both the access key and the secret key are set."""
        return self.access_key_id is not None and self.secret_access_key is not None


def _parse_flag(value: str | None, name: str, problems: list[ConfigProblem]) -> bool:
    if value is None:
        return False
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered not in _FALSE:
        problems.append(ConfigProblem((name,), "must be 1 or 0 (or true/false, yes/no, on/off)"))
    return False


def _parse_store_key(value: str | None, problems: list[ConfigProblem]) -> bytes | None:
    if value is None:
        return None
    standard = value.replace("-", "+").replace("_", "/")
    padded = standard + "=" * (-len(standard) % 4)
    try:
        key = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        problems.append(ConfigProblem((STORE_KEY_VAR,), "is not valid base64"))
        return None
    if len(key) != STORE_KEY_BYTES:
        message = (
            f"must be the base64 of exactly {STORE_KEY_BYTES} bytes (it decodes to {len(key)})"
        )
        problems.append(ConfigProblem((STORE_KEY_VAR,), message))
        return None
    return key

"""The VeFaaS credential file: ``{access_key_id, secret_access_key, session_token?, role_trn?}``.

Its path is the configured ``credentialsFile``, else ``VOLCENGINE_CREDENTIALS_FILE``, else
``/var/run/secrets/iam/credential``. A missing file is not an error (the chain simply has no
file source); an unreadable or malformed one is, and the error names the path and the problem
but never the file's content.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec
import trio

from agent_identity.volcengine.errors import CredentialsError
from agent_identity.volcengine.signer import SigningCredentials

__all__ = [
    "DEFAULT_CREDENTIALS_FILE",
    "ENV_CREDENTIALS_FILE",
    "FileCredentials",
    "credentials_file_path",
    "parse_credentials_file",
    "read_credentials_file",
]

DEFAULT_CREDENTIALS_FILE = "/var/run/secrets/iam/credential"
ENV_CREDENTIALS_FILE = "VOLCENGINE_CREDENTIALS_FILE"
# A credential file is a few hundred bytes; anything huge is not one, so do not read it all.
_MAX_FILE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class FileCredentials:
    """What a credential file holds (the secret and token hidden from repr)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    role_trn: str | None = None

    def signing_credentials(self) -> SigningCredentials:
        """The keys as credentials to sign requests with."""
        return SigningCredentials(self.access_key_id, self.secret_access_key, self.session_token)


class _FileDocument(msgspec.Struct):
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    role_trn: str | None = None


def credentials_file_path(explicit: str | None, env: Mapping[str, str]) -> str:
    """The credential file to read: explicit, else ``VOLCENGINE_CREDENTIALS_FILE``, else default."""
    return explicit or env.get(ENV_CREDENTIALS_FILE) or DEFAULT_CREDENTIALS_FILE


def _invalid(path: str, problem: str) -> CredentialsError:
    return CredentialsError(
        status=None,
        code="InvalidCredentialsFile",
        message=f"credentials file {path}: {problem}",
    )


def parse_credentials_file(data: bytes, path: str) -> FileCredentials:
    """Parse a credential file's bytes.

    Args:
        data: The file's content (JSON).
        path: The file's path, for error messages.

    Returns:
        The credentials; empty strings count as absent.

    Raises:
        CredentialsError: Not JSON, wrong types, or no access key pair.
    """
    try:
        document = msgspec.json.decode(data, type=_FileDocument)
    except msgspec.ValidationError as exc:
        # msgspec reports the path and the expected type, never the value.
        raise _invalid(path, f"unexpected shape ({exc})") from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise _invalid(path, "not valid JSON") from exc
    if not document.access_key_id or not document.secret_access_key:
        raise _invalid(path, "access_key_id and secret_access_key are required")
    return FileCredentials(
        access_key_id=document.access_key_id.strip(),
        secret_access_key=document.secret_access_key.strip(),
        session_token=(document.session_token or "").strip() or None,
        role_trn=(document.role_trn or "").strip() or None,
    )


async def read_credentials_file(path: str) -> FileCredentials | None:
    """Read and parse a credential file without blocking the event loop.

    Args:
        path: The file to read.

    Returns:
        The credentials, or None when the file does not exist.

    Raises:
        CredentialsError: The file exists but cannot be read or parsed.
    """
    try:
        async with await trio.open_file(path, "rb") as handle:
            data = await handle.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        # A missing file is the common case outside VeFaaS; still a checkpoint, as Trio expects.
        await trio.lowlevel.checkpoint()
        return None
    except OSError as exc:
        raise _invalid(path, f"cannot be read ({type(exc).__name__}: {exc.strerror})") from exc
    if len(data) > _MAX_FILE_BYTES:
        raise _invalid(path, f"larger than {_MAX_FILE_BYTES} bytes")
    return parse_credentials_file(data, path)

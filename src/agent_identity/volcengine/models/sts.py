"""STS ``AssumeRole`` (section 4): its Result, with RFC 3339 times carrying an offset."""

from __future__ import annotations

from datetime import datetime

from agent_identity.volcengine.models._base import WireModel
from agent_identity.volcengine.models.roles import AssumedRoleUser
from agent_identity.volcengine.signer import SigningCredentials
from agent_identity.volcengine.timestamps import parse_timestamp

__all__ = ["AssumeRoleResult", "StsCredentials"]


class StsCredentials(WireModel):
    """Temporary keys; ``ExpiredTime`` looks like ``2021-04-12T11:57:09+08:00``."""

    __secret_fields__ = frozenset({"secret_access_key", "session_token"})

    access_key_id: str = ""
    secret_access_key: str = ""
    session_token: str = ""
    current_time: str = ""
    expired_time: str = ""

    @property
    def expires_at(self) -> datetime:
        """``expired_time`` parsed (aware, UTC).

        Raises:
            ValueError: The server sent no or a malformed ``ExpiredTime``.
        """
        return parse_timestamp(self.expired_time)

    def signing_credentials(self) -> SigningCredentials:
        """The keys as credentials to sign requests with."""
        return SigningCredentials(self.access_key_id, self.secret_access_key, self.session_token)


class AssumeRoleResult(WireModel):
    """``AssumeRole``'s Result."""

    credentials: StsCredentials | None = None
    assumed_role_user: AssumedRoleUser | None = None

"""Per-user opaque secret storage keyed by the TIP (section 2.4)."""

from __future__ import annotations

from agent_identity.volcengine.models._base import WireModel

__all__ = [
    "CreateUserCredentialRequest",
    "CreateUserCredentialResult",
    "GetUserCredentialRequest",
    "UserCredential",
]


class CreateUserCredentialRequest(WireModel):
    """``CreateUserCredential`` (409 when ``CredentialId`` is taken for this user)."""

    __secret_fields__ = frozenset({"credential_data", "identity_token"})

    credential_data: str
    identity_token: str
    credential_id: str | None = None
    pool_name: str | None = None


class CreateUserCredentialResult(WireModel):
    """The id of the stored credential (generated when none was given)."""

    credential_id: str = ""


class GetUserCredentialRequest(WireModel):
    """``GetUserCredential`` (404 when absent, or when it is another user's)."""

    __secret_fields__ = frozenset({"identity_token"})

    credential_id: str
    identity_token: str
    pool_name: str | None = None


class UserCredential(WireModel):
    """A stored credential and its data."""

    __secret_fields__ = frozenset({"credential_data"})

    credential_id: str = ""
    credential_data: str = ""
    created_at: str = ""
    updated_at: str = ""

"""Workload identities and TIP minting (API notes sections 2.1, 2.2 and 5)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from agent_identity.volcengine.models._base import WireModel
from agent_identity.volcengine.timestamps import parse_timestamp

__all__ = [
    "CreateWorkloadIdentityRequest",
    "GetWorkloadAccessTokenForJWTRequest",
    "GetWorkloadIdentityRequest",
    "MetaDataEntry",
    "WorkloadAccessToken",
    "WorkloadIdentity",
]


class GetWorkloadAccessTokenForJWTRequest(WireModel):
    """``GetWorkloadAccessTokenForJWT``: a user token (id_token or TIP) in, a TIP out.

    Attributes:
        user_token: The user's OIDC id_token, or an incoming TIP for delegation.
        name: The workload name; omit it to let the service use the caller's role name.
        workload_pool_name: The workload pool (the service defaults to ``default``).
        audience: The TIP's requested ``aud``.
        duration_seconds: The requested TIP lifetime.
    """

    __secret_fields__ = frozenset({"user_token"})

    user_token: str
    name: str | None = None
    workload_pool_name: str | None = None
    audience: list[str] | None = None
    duration_seconds: int | None = None


class WorkloadAccessToken(WireModel):
    """The minted TIP and its expiry (``ExpiresAt``, ISO-8601 ``Z``)."""

    __secret_fields__ = frozenset({"workload_access_token"})

    workload_access_token: str = ""
    expires_at: str = ""

    @property
    def expires_at_datetime(self) -> datetime:
        """``expires_at`` parsed (aware, UTC).

        Raises:
            ValueError: The server sent no or a malformed ``ExpiresAt``.
        """
        return parse_timestamp(self.expires_at)


class MetaDataEntry(WireModel):
    """One ``MetaData`` entry of a workload: a key with its values."""

    key: str
    values: list[str] = msgspec.field(default_factory=list)


class CreateWorkloadIdentityRequest(WireModel):
    """``CreateWorkloadIdentity`` (the plugin creates ``Category=Agent`` after a 404)."""

    name: str
    workload_pool_name: str | None = None
    category: str | None = None
    description: str | None = None
    allowed_resource_oauth2_return_urls: list[str] | None = None
    meta_data: list[MetaDataEntry] | None = None


class GetWorkloadIdentityRequest(WireModel):
    """``GetWorkloadIdentity`` (404 when absent)."""

    name: str
    workload_pool_name: str | None = None


class WorkloadIdentity(WireModel):
    """A workload identity, as Create and Get return it."""

    name: str = ""
    workload_pool_name: str = ""
    trn: str = ""
    category: str = ""
    description: str = ""
    source: str = ""
    allowed_resource_oauth2_return_urls: list[str] = msgspec.field(default_factory=list)
    meta_data: list[MetaDataEntry] = msgspec.field(default_factory=list)
    created_at: str = ""
    updated_at: str = ""

"""Instance-metadata endpoints the client's endpoint and credential resolution read.

- ``GET /latest/region_id``: the region as plain text (``regionMetadataUrl``);
- ``GET /latest/credentials``: ``{AccessKeyId, SecretAccessKey, SessionToken, ExpiredTime}``
  of a freshly issued STS key the sandbox accepts (``credentialsMetadataUrl``).

Both answers are settable at run time through ``sb.metadata`` to drive the client's fallbacks:
an invalid region body (``"unknown"``), a 404 for the credentials, and so on.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_identity.sandbox.asgi import Request, Response, json_response, text_response
from agent_identity.sandbox.state import SandboxState
from agent_identity.sandbox.sts import issue_temporary_key, rfc3339

__all__ = ["CREDENTIALS_PATH", "REGION_PATH", "MetadataSettings", "handle_metadata"]

REGION_PATH = "/latest/region_id"
CREDENTIALS_PATH = "/latest/credentials"


@dataclass(slots=True)
class MetadataSettings:
    """What the metadata endpoints answer; change the fields at run time.

    Attributes:
        region_body: The text ``/latest/region_id`` returns.
        region_status: Its HTTP status.
        credentials_status: The HTTP status of ``/latest/credentials`` (e.g. 404).
        credentials_role: The role whose keys are issued (None: answer 404).
        credentials_duration: The lifetime of the issued keys, in seconds.
    """

    region_body: str
    region_status: int = 200
    credentials_status: int = 200
    credentials_role: str | None = None
    credentials_duration: int = 3600


def handle_metadata(
    state: SandboxState, settings: MetadataSettings, request: Request
) -> Response | None:
    """Serve a metadata path; None when the path is not one of them."""
    if request.path == REGION_PATH:
        return text_response(settings.region_status, settings.region_body)
    if request.path != CREDENTIALS_PATH:
        return None
    role = state.roles.get(settings.credentials_role or "")
    if settings.credentials_status != 200 or role is None:
        status = settings.credentials_status if settings.credentials_status != 200 else 404
        return text_response(status, "no credentials here")
    key = issue_temporary_key(state, role, "metadata-credentials", settings.credentials_duration)
    return json_response(
        200,
        {
            "AccessKeyId": key.access_key_id,
            "SecretAccessKey": key.secret_access_key,
            "SessionToken": key.session_token,
            "ExpiredTime": rfc3339(key.expires_at),
        },
    )

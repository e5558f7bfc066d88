"""Volcengine control-plane clients: request signing, credentials, Identity and STS.

The pieces, bottom up:

- :mod:`.signer` / :mod:`.verifier`: the HMAC-SHA256 request signature;
- :mod:`.transport`: signed calls with the SDK's retry behaviour over a shared httpx client;
- :mod:`.envelope` and :mod:`.errors`: the response envelope and the one error type;
- :mod:`.models`: the wire models (PascalCase, secrets masked in repr);
- :class:`IdentityClient` and :class:`StsClient`: one typed method per action;
- :class:`CredentialChain`: config → env → metadata + AssumeRole → file, cached and refreshed;
- :func:`resolve_endpoint` / :func:`signing_region_for`: where the API is and who signs for it.

This package imports only the standard library, trio, httpx and msgspec: configuration is
passed in as plain keyword arguments.
"""

from agent_identity.volcengine.credential_file import FileCredentials, read_credentials_file
from agent_identity.volcengine.credentials import (
    CredentialChain,
    CredentialStatistics,
    ResolvedCredentials,
)
from agent_identity.volcengine.endpoint import (
    DEFAULT_ENDPOINT,
    is_valid_region,
    resolve_endpoint,
    signing_region_for,
)
from agent_identity.volcengine.errors import (
    CredentialsError,
    VolcengineError,
    VolcengineTransportError,
    is_conflict,
    is_not_found,
)
from agent_identity.volcengine.identity import ID_VERSION, IdentityClient
from agent_identity.volcengine.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from agent_identity.volcengine.signer import SigningCredentials
from agent_identity.volcengine.sts import STS_VERSION, AssumedCredentials, StsClient
from agent_identity.volcengine.transport import (
    CredentialsSource,
    SignedTransport,
    TransportStatistics,
    static_credentials,
)

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_RETRY_POLICY",
    "ID_VERSION",
    "STS_VERSION",
    "AssumedCredentials",
    "CredentialChain",
    "CredentialStatistics",
    "CredentialsError",
    "CredentialsSource",
    "FileCredentials",
    "IdentityClient",
    "ResolvedCredentials",
    "RetryPolicy",
    "SignedTransport",
    "SigningCredentials",
    "StsClient",
    "TransportStatistics",
    "VolcengineError",
    "VolcengineTransportError",
    "is_conflict",
    "is_not_found",
    "is_valid_region",
    "read_credentials_file",
    "resolve_endpoint",
    "signing_region_for",
    "static_credentials",
]

"""Who is calling: the request signature checked as the gateway does, and the caller's role.

Reuses :func:`agent_identity.volcengine.verifier.verify_request` (the same canonicalisation as
the client's signer), fed with the raw body, the Host actually received and the client's own
SignedHeaders. On top of it this module adds what only the service knows: which keys exist
(the root key and live STS keys), which service each API Version belongs to, and the role an
STS key was issued for (the gateway's ``X-Top-Role-Id``).

Expired STS keys answer 401 ``InvalidAccessKey`` (CodeN 100009) with a message saying they
expired: the real gateway forgets expired keys, and a client that refreshes its credentials on
a 401 recovers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from agent_identity.sandbox.envelope import ApiError
from agent_identity.sandbox.state import Role, SandboxState
from agent_identity.volcengine.verifier import KnownKey, SignatureError, verify_request

__all__ = ["Caller", "authenticate"]


@dataclass(frozen=True, slots=True)
class Caller:
    """A verified caller: its access key and, for STS keys, the assumed role."""

    access_key_id: str
    role: Role | None = None
    session_name: str | None = None


def authenticate(
    state: SandboxState,
    *,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    service: str,
    max_skew_seconds: float,
) -> Caller:
    """Verify a signed request and say who sent it.

    Args:
        state: The sandbox state (known keys, clock).
        method: The HTTP method received.
        path: The path received.
        query: The decoded query parameters.
        headers: The received headers (lowercase names).
        body: The raw body bytes.
        service: The signing service the API Version requires (``id`` or ``sts``).
        max_skew_seconds: The allowed distance between X-Date and the sandbox's clock.

    Returns:
        The caller.

    Raises:
        ApiError: 401/400 with the gateway's code when the request is not authentic.
    """

    def lookup(access_key_id: str) -> KnownKey | None:
        if access_key_id == state.root_access_key_id:
            return KnownKey(state.root_secret_access_key)
        temporary = state.temporary_keys.get(access_key_id)
        if temporary is None:
            return None
        return KnownKey(temporary.secret_access_key, temporary.session_token)

    try:
        verified = verify_request(
            method=method,
            path=path,
            query=query,
            headers=headers,
            body=body,
            lookup=lookup,
            now=datetime.fromtimestamp(state.now(), UTC),
            max_skew_seconds=max_skew_seconds,
        )
    except SignatureError as exc:
        raise ApiError(exc.status, exc.code, exc.message, exc.code_n) from exc
    if verified.service != service:
        raise ApiError(
            401,
            "SignatureDoesNotMatch",
            f"the credential scope's service {verified.service!r} is not this API's "
            f"service {service!r}",
            100010,
        )
    temporary = state.temporary_keys.get(verified.access_key_id)
    if temporary is None:
        return Caller(verified.access_key_id)
    if temporary.expires_at <= state.now():
        raise ApiError(401, "InvalidAccessKey", "the temporary access key has expired", 100009)
    return Caller(verified.access_key_id, temporary.role, temporary.session_name)

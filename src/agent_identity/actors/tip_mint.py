"""How a TIP is minted: the workload name, GetWorkloadAccessTokenForJWT, auto-create on 404.

The TIP refresher decides *when* to mint; a :class:`TipMinter` does the minting. The production
one, :class:`IdentityTipMinter`, follows the spec's "Workload and TIP" rules:

* the workload name is ``identity.workloadName`` if set, else omitted when ``identity.roleTrn``
  is set (the control plane then uses the caller's STS role name), else the caller's agent id,
  else ``openclaw-agent`` (:func:`resolve_workload`);
* ``WorkloadPoolName``, ``Audience`` and ``DurationSeconds`` come from the config;
* when a *named* workload does not exist (404), it is created (``CreateWorkloadIdentity``,
  ``Category: Agent``) and the mint is retried once; a 409 from a concurrent create (another
  gateway, or another session of this one) counts as success. Creates of the same name from
  one minter are single-flight.

:func:`is_user_token_rejected` tells "the user's token can no longer mint" (a logout) from every
other failure (throttling, outages, our own credentials).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, final

import trio

from agent_identity.config import IdentityConfig
from agent_identity.volcengine import IdentityClient, VolcengineError, is_conflict, is_not_found
from agent_identity.volcengine.models import (
    CreateWorkloadIdentityRequest,
    GetWorkloadAccessTokenForJWTRequest,
    WorkloadAccessToken,
)

__all__ = [
    "DEFAULT_WORKLOAD",
    "IdentityTipMinter",
    "MintedTip",
    "MinterStatistics",
    "TipMinter",
    "is_user_token_rejected",
    "resolve_workload",
]

#: The workload name when neither the config nor the caller names one.
DEFAULT_WORKLOAD = "openclaw-agent"
#: The category of auto-created workloads.
WORKLOAD_CATEGORY = "Agent"

# 4xx codes that blame the *request's* signature or keys (ours), not the user's token.
_SIGNING_CODES = frozenset(
    {
        "MissingAuthenticationToken",
        "MissingSignature",
        "InvalidAccessKey",
        "SignatureDoesNotMatch",
        "InvalidTimestamp",
        "MissingRequestInfo",
        "InvalidSecurityToken",
    }
)


def resolve_workload(config: IdentityConfig, agent_id: str | None) -> str | None:
    """The ``Name`` to mint with: ``workloadName`` > ``roleTrn`` (None) > agent id > default.

    Args:
        config: The ``identity`` config.
        agent_id: The asking session's agent id, if known.

    Returns:
        The workload name, or None to omit ``Name`` (the control plane uses the role name).
    """
    if config.workload_name:
        return config.workload_name
    if config.role_trn:
        return None
    return agent_id or DEFAULT_WORKLOAD


def is_user_token_rejected(error: VolcengineError) -> bool:
    """Whether the control plane refused the ``UserToken`` itself (expired, revoked, forged).

    That is a 401 other than a signing failure of our own request, or a 400 whose code names
    a token (``InvalidParameter.UserToken``, ``TokenExpired``, ...). Everything else (5xx,
    throttling, a missing workload, our keys) is not the user's fault and not a logout.
    """
    if error.code in _SIGNING_CODES:
        return False
    if error.status == 401:
        return True
    return error.status == 400 and "token" in error.code.lower()


@dataclass(frozen=True, slots=True)
class MintedTip:
    """A TIP as the control plane returned it."""

    #: The compact JWS (secret; hidden from ``repr``).
    token: str = field(repr=False)
    #: ``ExpiresAt``, in epoch seconds (wall clock).
    expires_at: float


class TipMinter(Protocol):
    """Mints TIPs; the refresher's only way to reach the control plane."""

    async def mint(self, user_token: str, workload: str | None) -> MintedTip:
        """Exchange ``user_token`` (an id_token, or a parent TIP) for a TIP of ``workload``.

        Args:
            user_token: The user's OIDC id_token, or a TIP for one more ``act`` level.
            workload: The workload name, or None to let the control plane use the role name.

        Raises:
            VolcengineError: The control plane refused or could not be reached.
        """
        ...


@dataclass(frozen=True, slots=True)
class MinterStatistics:
    """Counters of an :class:`IdentityTipMinter`, over its lifetime."""

    #: Successful mints.
    mints: int
    #: Mint calls that failed (after the client's own retries).
    failures: int
    #: Workloads found missing (404) while minting.
    not_found: int
    #: Workloads this minter created.
    workloads_created: int
    #: Creates answered "already exists" (a concurrent create won).
    create_conflicts: int


@final
class IdentityTipMinter:
    """Mints TIPs with ``GetWorkloadAccessTokenForJWT``; creates missing workloads.

    Args:
        client: The Identity control-plane client.
        pool_name: ``WorkloadPoolName``.
        audience: ``Audience`` (omitted when None or empty).
        duration_seconds: ``DurationSeconds``.
    """

    def __init__(
        self,
        client: IdentityClient,
        *,
        pool_name: str = "default",
        audience: tuple[str, ...] | None = None,
        duration_seconds: int = 3600,
    ) -> None:
        self._client = client
        self.pool_name = pool_name
        self.audience = audience
        self.duration_seconds = duration_seconds
        self._creating: dict[str, trio.Event] = {}
        self._mints = 0
        self._failures = 0
        self._not_found = 0
        self._created = 0
        self._conflicts = 0

    @classmethod
    def from_config(cls, client: IdentityClient, config: IdentityConfig) -> IdentityTipMinter:
        """A minter with the pool, audience and duration of the ``identity`` config."""
        return cls(
            client,
            pool_name=config.workload_pool_name,
            audience=config.audience,
            duration_seconds=config.duration_seconds,
        )

    def __repr__(self) -> str:
        return f"<IdentityTipMinter pool={self.pool_name!r}>"

    def statistics(self) -> MinterStatistics:
        """The minter's counters."""
        return MinterStatistics(
            mints=self._mints,
            failures=self._failures,
            not_found=self._not_found,
            workloads_created=self._created,
            create_conflicts=self._conflicts,
        )

    async def mint(self, user_token: str, workload: str | None) -> MintedTip:
        """Mint a TIP; on a 404 for a named workload, create it and retry once.

        Raises:
            VolcengineError: The mint (or the create) failed, or the answer was unusable.
        """
        request = GetWorkloadAccessTokenForJWTRequest(
            user_token=user_token,
            name=workload,
            workload_pool_name=self.pool_name,
            audience=list(self.audience) if self.audience else None,
            duration_seconds=self.duration_seconds,
        )
        try:
            try:
                result = await self._client.get_workload_access_token_for_jwt(request)
            except VolcengineError as exc:
                if workload is None or not is_not_found(exc):
                    raise
                self._not_found += 1
                await self._ensure_workload(workload)
                result = await self._client.get_workload_access_token_for_jwt(request)
            minted = _minted(result)
        except VolcengineError:
            self._failures += 1
            raise
        self._mints += 1
        return minted

    async def _ensure_workload(self, name: str) -> None:
        """Create workload ``name`` (Category Agent); a concurrent create is as good."""
        pending = self._creating.get(name)
        if pending is not None:
            await pending.wait()  # another session of ours is creating it
            return
        done = trio.Event()
        self._creating[name] = done
        try:
            await self._client.create_workload_identity(
                CreateWorkloadIdentityRequest(
                    name=name,
                    workload_pool_name=self.pool_name,
                    category=WORKLOAD_CATEGORY,
                    description="Created by agent-identity for TIP minting.",
                )
            )
            self._created += 1
        except VolcengineError as exc:
            if not is_conflict(exc):
                raise
            self._conflicts += 1
            await trio.lowlevel.checkpoint()  # the failed call may not have been one
        finally:
            del self._creating[name]
            done.set()


def _minted(result: WorkloadAccessToken) -> MintedTip:
    """Check the answer of a mint: a token and a readable ``ExpiresAt``."""
    action = "GetWorkloadAccessTokenForJWT"
    if not result.workload_access_token:
        raise VolcengineError(
            status=200, code="InvalidResponse", message="no WorkloadAccessToken", action=action
        )
    try:
        expires_at = result.expires_at_datetime.timestamp()
    except ValueError:
        raise VolcengineError(
            status=200, code="InvalidResponse", message="unreadable ExpiresAt", action=action
        ) from None
    return MintedTip(token=result.workload_access_token, expires_at=expires_at)

"""``StsClient``: STS ``AssumeRole`` (service ``sts``, Version ``2018-01-01``, form body).

Like the new official SDK it POSTs ``/?Action=AssumeRole&Version=2018-01-01`` with the params as
an ``application/x-www-form-urlencoded`` body, signed for service ``sts`` in the configured
region. The answer's times are RFC 3339 with an offset (``2021-04-12T11:57:09+08:00``); they
are parsed into aware UTC datetimes.

With ``debug=True`` (the plugin's ``IDENTITY_STS_DEBUG``; the caller reads the environment) the
exchange is logged at DEBUG on ``agent_identity.volcengine.sts``, with the secret key and the
session token replaced by ``<redacted>`` and the access key id shortened.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import datetime

import httpx
import trio

from agent_identity.volcengine.errors import VolcengineError
from agent_identity.volcengine.models import REDACTED, AssumedRoleUser, AssumeRoleResult
from agent_identity.volcengine.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from agent_identity.volcengine.signer import SigningCredentials
from agent_identity.volcengine.timestamps import parse_timestamp
from agent_identity.volcengine.transport import (
    Clock,
    CredentialsSource,
    SignedTransport,
    Sleep,
    TransportStatistics,
    utc_now,
)

__all__ = [
    "DEFAULT_STS_ENDPOINT",
    "DEFAULT_STS_REGION",
    "STS_SERVICE",
    "STS_VERSION",
    "AssumedCredentials",
    "StsClient",
    "mask_access_key_id",
]

logger = logging.getLogger(__name__)

STS_SERVICE = "sts"
STS_VERSION = "2018-01-01"
DEFAULT_STS_ENDPOINT = "https://sts.volcengineapi.com"
DEFAULT_STS_REGION = "cn-beijing"
_SHOWN_KEY_PREFIX = 6


def mask_access_key_id(access_key_id: str) -> str:
    """Shorten an access key id for logs: enough to tell keys apart, not to use one."""
    if len(access_key_id) <= _SHOWN_KEY_PREFIX:
        return "***"
    return f"{access_key_id[:_SHOWN_KEY_PREFIX]}***"


@dataclass(frozen=True, slots=True)
class AssumedCredentials:
    """Temporary keys from AssumeRole, with their validity.

    Attributes:
        access_key_id: The temporary access key id.
        secret_access_key: The secret (hidden from repr).
        session_token: The session token (hidden from repr).
        expired_time: When the keys stop working (aware, UTC).
        current_time: The server's clock when it issued them, when it said.
        assumed_role_user: The role session's TRN and id.
    """

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expired_time: datetime
    current_time: datetime | None = None
    assumed_role_user: AssumedRoleUser | None = None

    def signing_credentials(self) -> SigningCredentials:
        """The keys as credentials to sign requests with."""
        return SigningCredentials(self.access_key_id, self.secret_access_key, self.session_token)


def _credentials_of(result: AssumeRoleResult) -> AssumedCredentials:
    creds = result.credentials
    if creds is None or not (
        creds.access_key_id and creds.secret_access_key and creds.session_token
    ):
        raise VolcengineError(
            status=200,
            code="InvalidResponse",
            message="AssumeRole returned no complete Credentials",
            action="AssumeRole",
        )
    try:
        expired = creds.expires_at
        current = parse_timestamp(creds.current_time) if creds.current_time else None
    except ValueError as exc:
        raise VolcengineError(
            status=200,
            code="InvalidResponse",
            message="AssumeRole returned an unreadable ExpiredTime or CurrentTime",
            action="AssumeRole",
        ) from exc
    return AssumedCredentials(
        access_key_id=creds.access_key_id,
        secret_access_key=creds.secret_access_key,
        session_token=creds.session_token,
        expired_time=expired,
        current_time=current,
        assumed_role_user=result.assumed_role_user,
    )


class StsClient:
    """The STS client.

    Args:
        http: The shared HTTP client.
        credentials: The keys that assume the role (long-term or temporary).
        endpoint: The STS endpoint.
        region: The signing region.
        debug: Log the AssumeRole exchange (secrets redacted).
        retry: The retry policy.
        rng: The jitter source.
        now: The wall clock used for signing.
        sleep: Waits between attempts.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        credentials: CredentialsSource,
        endpoint: str = DEFAULT_STS_ENDPOINT,
        region: str = DEFAULT_STS_REGION,
        debug: bool = False,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        rng: random.Random | None = None,
        now: Clock = utc_now,
        sleep: Sleep = trio.sleep,
    ) -> None:
        self.transport = SignedTransport(
            http,
            endpoint=endpoint,
            service=STS_SERVICE,
            version=STS_VERSION,
            region=region,
            credentials=credentials,
            retry=retry,
            rng=rng,
            now=now,
            sleep=sleep,
        )
        self.debug = debug

    def statistics(self) -> TransportStatistics:
        """Call, retry and error counters."""
        return self.transport.statistics()

    async def assume_role(
        self,
        role_trn: str,
        role_session_name: str,
        duration_seconds: int | None = None,
    ) -> AssumedCredentials:
        """Assume a role and return its temporary keys.

        Args:
            role_trn: ``trn:iam::<AccountId>:role/<RoleName>``.
            role_session_name: The session name (2-64 of ``[A-Za-z0-9_+=,.@-]``).
            duration_seconds: The lifetime (900-43200; the service picks 3600 when omitted).

        Returns:
            The credentials with their expiry.

        Raises:
            VolcengineError: STS refused, or answered something unusable.
        """
        form = [("RoleTrn", role_trn), ("RoleSessionName", role_session_name)]
        if duration_seconds is not None:
            form.append(("DurationSeconds", str(duration_seconds)))
        if self.debug:
            logger.debug(
                "STS AssumeRole request to %s: %s", self.transport.endpoint, dict(sorted(form))
            )
        try:
            result = await self.transport.call_form("AssumeRole", form, AssumeRoleResult)
        except VolcengineError as exc:
            if self.debug:
                logger.debug("STS AssumeRole failed: %s", exc)
            raise
        assumed = _credentials_of(result)
        if self.debug:
            logger.debug("STS AssumeRole response: %s", _loggable(assumed))
        return assumed


def _loggable(assumed: AssumedCredentials) -> dict[str, object]:
    user = assumed.assumed_role_user
    return {
        "AccessKeyId": mask_access_key_id(assumed.access_key_id),
        "SecretAccessKey": REDACTED,
        "SessionToken": REDACTED,
        "CurrentTime": assumed.current_time.isoformat() if assumed.current_time else None,
        "ExpiredTime": assumed.expired_time.isoformat(),
        "AssumedRoleUser": {"Trn": user.trn, "AssumedRoleId": user.assumed_role_id}
        if user is not None
        else None,
    }

"""The signing-credentials chain, cached and refreshed single-flight.

Resolution order (plugin spec, Configuration A), first source that yields keys wins:

1. **explicit config**: ``accessKeyId``/``secretAccessKey`` (+ ``sessionToken``);
2. **environment**: ``VOLCENGINE_ACCESS_KEY``/``VOLCENGINE_SECRET_KEY`` (+ ``_SESSION_TOKEN``),
   from a mapping the caller passes in (this module never reads ``os.environ``);
3. **remote metadata**: only with both ``credentialsMetadataUrl`` and ``roleTrn``: GET the URL
   for ``{AccessKeyId, SecretAccessKey, SessionToken}``, then AssumeRole ``roleTrn`` with them.
   A 404 falls through to the file; any other failure is an error;
4. **credentials file**: see :mod:`agent_identity.volcengine.credential_file`.

When to AssumeRole: sources 1-3 assume ``roleTrn`` whenever it is configured ("same flow as
AK/SK + roleTrn"). The file assumes a role when one is known (``roleTrn``, else the file's
``role_trn``, else ``RUNTIME_IAM_ROLE_TRN``) and the file holds no session token, as veadk does.

Caching: temporary keys are kept until ``refresh_margin`` (5 minutes) before their
``ExpiredTime``, judged on the injectable wall clock since that is what ``ExpiredTime`` is.
Static keys from config or env are kept for good; file keys are re-read every
``file_reload_interval`` so a rotated file is picked up. Concurrent callers share one refresh
(a Trio lock; the waiters find the fresh result). If a refresh fails while the cached keys have
not expired yet, they keep being used and the next refresh is tried a little later.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import httpx
import msgspec
import trio

from agent_identity.volcengine.credential_file import credentials_file_path, read_credentials_file
from agent_identity.volcengine.errors import CredentialsError, VolcengineError
from agent_identity.volcengine.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from agent_identity.volcengine.signer import SigningCredentials
from agent_identity.volcengine.sts import DEFAULT_STS_ENDPOINT, DEFAULT_STS_REGION, StsClient
from agent_identity.volcengine.transport import Clock, Sleep, TransportStatistics, utc_now

__all__ = [
    "DEFAULT_ROLE_SESSION_NAME",
    "ENV_ACCESS_KEY",
    "ENV_ROLE_TRN",
    "ENV_SECRET_KEY",
    "ENV_SESSION_TOKEN",
    "CredentialChain",
    "CredentialStatistics",
    "ResolvedCredentials",
]

logger = logging.getLogger(__name__)

ENV_ACCESS_KEY = "VOLCENGINE_ACCESS_KEY"
ENV_SECRET_KEY = "VOLCENGINE_SECRET_KEY"  # noqa: S105 - a variable name, not a secret
ENV_SESSION_TOKEN = "VOLCENGINE_SESSION_TOKEN"  # noqa: S105 - a variable name
ENV_ROLE_TRN = "RUNTIME_IAM_ROLE_TRN"
DEFAULT_ROLE_SESSION_NAME = "agent-identity"
REFRESH_MARGIN = timedelta(minutes=5)
FILE_RELOAD_INTERVAL = timedelta(minutes=5)
FAILED_REFRESH_BACKOFF = timedelta(seconds=30)
METADATA_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class ResolvedCredentials:
    """One result of the chain.

    Attributes:
        credentials: The keys to sign with.
        source: ``config``, ``env``, ``metadata`` or ``file``.
        assumed_role: The role assumed with the source's keys, if any.
        expires_at: When the keys stop working (None: long-term keys).
        refresh_at: When to resolve again (None: never).
    """

    credentials: SigningCredentials
    source: str
    assumed_role: str | None = None
    expires_at: datetime | None = None
    refresh_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CredentialStatistics:
    """Counters of the chain, for metrics.

    Attributes:
        resolutions: Successful runs of the chain (the first one and every refresh).
        failures: Runs that raised (including those bridged by still-valid cached keys).
        source: The source of the keys in use, if any.
        expires_at: When the keys in use expire (None: long-term or none).
        sts: The counters of the chain's STS client.
    """

    resolutions: int
    failures: int
    source: str | None
    expires_at: datetime | None
    sts: TransportStatistics


class _MetadataDocument(msgspec.Struct, rename="pascal"):
    access_key_id: str = ""
    secret_access_key: str = ""
    session_token: str = ""


def _pair(
    where: str, access_key_id: str | None, secret_access_key: str | None, token: str | None
) -> SigningCredentials | None:
    if not access_key_id and not secret_access_key:
        return None
    if not access_key_id or not secret_access_key:
        missing = "secret access key" if access_key_id else "access key id"
        raise CredentialsError(
            status=None,
            code="IncompleteCredentials",
            message=f"{where} has an access key pair without its {missing}",
        )
    return SigningCredentials(access_key_id, secret_access_key, token or None)


class CredentialChain:
    """Resolves, caches and refreshes the signing credentials.

    Args:
        http: The HTTP client (metadata fetch and STS).
        access_key_id: Explicit access key id (config ``accessKeyId``).
        secret_access_key: Explicit secret (config ``secretAccessKey``).
        session_token: Explicit session token (config ``sessionToken``).
        role_trn: The role to assume (config ``roleTrn``).
        credentials_metadata_url: Config ``credentialsMetadataUrl``.
        credentials_file: Config ``credentialsFile``.
        env: The environment to read (pass ``os.environ``); empty when None.
        role_session_name: The AssumeRole session name.
        duration_seconds: The AssumeRole lifetime (the service's default when None).
        sts_endpoint: The STS endpoint.
        sts_region: The STS signing region.
        sts_debug: Log AssumeRole exchanges, redacted (``IDENTITY_STS_DEBUG``).
        refresh_margin: How long before expiry temporary keys are refreshed.
        file_reload_interval: How often file keys are re-read.
        metadata_timeout: The metadata fetch's time limit, in seconds.
        retry: The STS retry policy.
        rng: The STS jitter source.
        now: The wall clock (expiry decisions and signing).
        sleep: Waits between STS attempts.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        role_trn: str | None = None,
        credentials_metadata_url: str | None = None,
        credentials_file: str | None = None,
        env: Mapping[str, str] | None = None,
        role_session_name: str = DEFAULT_ROLE_SESSION_NAME,
        duration_seconds: int | None = None,
        sts_endpoint: str = DEFAULT_STS_ENDPOINT,
        sts_region: str = DEFAULT_STS_REGION,
        sts_debug: bool = False,
        refresh_margin: timedelta = REFRESH_MARGIN,
        file_reload_interval: timedelta = FILE_RELOAD_INTERVAL,
        metadata_timeout: float = METADATA_TIMEOUT,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        rng: random.Random | None = None,
        now: Clock = utc_now,
        sleep: Sleep = trio.sleep,
    ) -> None:
        self._http = http
        self._explicit = (access_key_id, secret_access_key, session_token)
        self._role_trn = role_trn or None
        self._metadata_url = credentials_metadata_url or None
        self._env = dict(env or {})
        self._file = credentials_file_path(credentials_file, self._env)
        self._session_name = role_session_name
        self._duration = duration_seconds
        self._margin = refresh_margin
        self._file_reload = file_reload_interval
        self._metadata_timeout = metadata_timeout
        self._now = now
        self._assuming_with: SigningCredentials | None = None
        self._sts = StsClient(
            http,
            credentials=self._sts_credentials,
            endpoint=sts_endpoint,
            region=sts_region,
            debug=sts_debug,
            retry=retry,
            rng=rng,
            now=now,
            sleep=sleep,
        )
        self._lock = trio.Lock()
        self._cached: ResolvedCredentials | None = None
        self._resolutions = 0
        self._failures = 0

    def statistics(self) -> CredentialStatistics:
        """A snapshot of the counters."""
        cached = self._cached
        return CredentialStatistics(
            resolutions=self._resolutions,
            failures=self._failures,
            source=cached.source if cached is not None else None,
            expires_at=cached.expires_at if cached is not None else None,
            sts=self._sts.statistics(),
        )

    def invalidate(self) -> None:
        """Forget the cached keys, so the next :meth:`get` resolves again."""
        self._cached = None

    def _fresh(self, cached: ResolvedCredentials | None) -> bool:
        return cached is not None and (cached.refresh_at is None or self._now() < cached.refresh_at)

    async def get(self) -> SigningCredentials:
        """The current signing credentials, resolving or refreshing them when due.

        Returns:
            The credentials.

        Raises:
            CredentialsError: No source has credentials, or a source is broken.
            VolcengineError: AssumeRole failed (and no still-valid keys are cached).
        """
        # The hot path (called before every signed attempt) still yields once, as Trio expects
        # of every async function; a checkpoint costs next to nothing.
        await trio.lowlevel.checkpoint()
        cached = self._cached
        if cached is not None and self._fresh(cached):
            return cached.credentials
        async with self._lock:
            # Whoever held the lock before us may have refreshed already: single flight.
            cached = self._cached
            if cached is not None and self._fresh(cached):
                return cached.credentials
            try:
                resolved = await self.resolve()
            except VolcengineError as exc:
                self._failures += 1
                now = self._now()
                if cached is None or (cached.expires_at is not None and now >= cached.expires_at):
                    raise
                logger.warning("credential refresh failed (%s); keeping the current keys", exc)
                retry_at = now + FAILED_REFRESH_BACKOFF
                if cached.expires_at is not None:
                    retry_at = min(retry_at, cached.expires_at)
                self._cached = replace(cached, refresh_at=retry_at)
                return cached.credentials
            self._cached = resolved
            self._resolutions += 1
            logger.debug(
                "credentials resolved from %s%s",
                resolved.source,
                f" (assumed {resolved.assumed_role})" if resolved.assumed_role else "",
            )
            return resolved.credentials

    async def resolve(self) -> ResolvedCredentials:
        """Run the chain once, without the cache.

        Returns:
            The credentials of the first source that has them.

        Raises:
            CredentialsError: No source has credentials, or a source is broken.
            VolcengineError: AssumeRole failed.
        """
        access_key_id, secret_access_key, session_token = self._explicit
        explicit = _pair("explicit config", access_key_id, secret_access_key, session_token)
        if explicit is not None:
            return await self._with_role(explicit, "config", self._role_trn)
        env = self._env
        from_env = _pair(
            "the environment",
            env.get(ENV_ACCESS_KEY),
            env.get(ENV_SECRET_KEY),
            env.get(ENV_SESSION_TOKEN),
        )
        if from_env is not None:
            return await self._with_role(from_env, "env", self._role_trn)
        metadata_note = "credentialsMetadataUrl and roleTrn not both configured"
        if self._metadata_url and self._role_trn:
            fetched = await self._fetch_metadata(self._metadata_url)
            if fetched is not None:
                return await self._with_role(fetched, "metadata", self._role_trn)
            metadata_note = "credentialsMetadataUrl answered 404"
        from_file = await read_credentials_file(self._file)
        if from_file is not None:
            role = self._role_trn or from_file.role_trn or self._env.get(ENV_ROLE_TRN) or None
            keys = from_file.signing_credentials()
            if role and not from_file.session_token:
                return await self._with_role(keys, "file", role)
            return ResolvedCredentials(keys, "file", refresh_at=self._now() + self._file_reload)
        raise CredentialsError(
            status=None,
            code="NoCredentials",
            message=(
                "no Volcengine credentials found; tried: "
                "1) explicit config (accessKeyId/secretAccessKey not set), "
                f"2) environment ({ENV_ACCESS_KEY}/{ENV_SECRET_KEY} not set), "
                f"3) remote metadata ({metadata_note}), "
                f"4) credentials file ({self._file} not found)"
            ),
        )

    async def _sts_credentials(self) -> SigningCredentials:
        await trio.lowlevel.checkpoint()
        if self._assuming_with is None:  # pragma: no cover - only called inside _with_role
            raise CredentialsError(status=None, code="NoCredentials", message="no base keys")
        return self._assuming_with

    async def _with_role(
        self, keys: SigningCredentials, source: str, role_trn: str | None
    ) -> ResolvedCredentials:
        if not role_trn:
            await trio.lowlevel.checkpoint()
            return ResolvedCredentials(keys, source)
        # Safe without a lock of its own: resolve() runs under the chain's lock (or alone).
        self._assuming_with = keys
        try:
            assumed = await self._sts.assume_role(role_trn, self._session_name, self._duration)
        finally:
            self._assuming_with = None
        now = self._now()
        expires = assumed.expired_time
        # Refresh `margin` early, but never sooner than halfway through a short lifetime.
        refresh = max(expires - self._margin, now + (expires - now) / 2)
        return ResolvedCredentials(
            assumed.signing_credentials(),
            source,
            assumed_role=role_trn,
            expires_at=expires,
            refresh_at=refresh,
        )

    async def _fetch_metadata(self, url: str) -> SigningCredentials | None:
        response: httpx.Response | None = None
        try:
            with trio.move_on_after(self._metadata_timeout):
                response = await self._http.get(url, timeout=self._metadata_timeout)
        except httpx.HTTPError as exc:
            raise _metadata_error(f"unreachable ({type(exc).__name__}: {exc})") from exc
        if response is None:
            raise _metadata_error(f"no answer within {self._metadata_timeout:.0f}s")
        if response.status_code == 404:
            logger.debug("credentials metadata answered 404; falling through to the file")
            return None
        if not response.is_success:
            raise _metadata_error(f"answered HTTP {response.status_code}", response.status_code)
        try:
            document = msgspec.json.decode(response.content, type=_MetadataDocument)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise _metadata_error("answered something that is not the credentials JSON") from exc
        if not document.access_key_id or not document.secret_access_key:
            raise _metadata_error("answered no AccessKeyId/SecretAccessKey")
        return SigningCredentials(
            document.access_key_id, document.secret_access_key, document.session_token or None
        )


def _metadata_error(problem: str, status: int | None = None) -> CredentialsError:
    return CredentialsError(
        status=status, code="CredentialsMetadataError", message=f"credentialsMetadataUrl {problem}"
    )

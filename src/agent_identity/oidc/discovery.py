"""OpenID Provider metadata: where it lives, fetching it, checking it, caching it.

The discovery document is fetched once per URL and kept for ``max_age`` seconds of Trio's
clock; a failed refresh keeps serving the stale copy (a provider blip must not break logins
that would have worked). Checks, per OpenID Connect Discovery 1.0 section 4.3: the document's
``issuer`` is the URL it was fetched from minus ``/.well-known/openid-configuration``, and the
authorization, token and JWKS endpoints are present. Every endpoint must be ``https``, except on
a loopback host, where the sandbox and local test providers run over plain ``http``.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable

import httpx
import msgspec
import trio

from agent_identity.oidc.errors import OidcError

__all__ = [
    "WELL_KNOWN_PATH",
    "DiscoveryCache",
    "ProviderMetadata",
    "check_endpoint_url",
    "discovery_location",
    "fetch_provider_metadata",
    "is_loopback_host",
]

logger = logging.getLogger(__name__)

WELL_KNOWN_PATH = "/.well-known/openid-configuration"
_DEFAULT_MAX_AGE = 3600.0
# After a failed refresh the stale copy is served this long before the next attempt, so a
# provider that is down is not asked again on every login.
_STALE_RETRY = 60.0


class ProviderMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of a discovery document the relying party uses.

    Attributes:
        issuer: The exact ``iss`` of the provider's ID tokens.
        authorization_endpoint: Where the browser logs in.
        token_endpoint: Where codes and refresh tokens are redeemed.
        jwks_uri: The signing keys.
        userinfo_endpoint: The UserInfo endpoint, if any.
        end_session_endpoint: RP-initiated logout, if any.
        token_endpoint_auth_methods_supported: Client authentication methods; the spec's
            default when absent is ``client_secret_basic``.
        id_token_signing_alg_values_supported: As advertised (informational).
        code_challenge_methods_supported: As advertised (informational).
        authorization_response_iss_parameter_supported: RFC 9207: the callback carries
            ``iss``, and a callback without it must be refused.
        redirect_relay_endpoint: The UserPool relay (non-standard; see
            :mod:`agent_identity.oidc.client`), if the provider publishes it.
    """

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None = None
    end_session_endpoint: str | None = None
    token_endpoint_auth_methods_supported: tuple[str, ...] = ("client_secret_basic",)
    id_token_signing_alg_values_supported: tuple[str, ...] = ()
    code_challenge_methods_supported: tuple[str, ...] = ()
    authorization_response_iss_parameter_supported: bool = False
    redirect_relay_endpoint: str | None = None


def discovery_location(url: str) -> tuple[str, str]:
    """Split a configured ``discoveryUrl`` into (document URL, expected issuer).

    The config key accepts either the issuer (``https://host/path``) or the full discovery
    document URL; both name the same provider.

    Args:
        url: The configured URL.

    Returns:
        The discovery document's URL and the issuer it must declare.
    """
    url = url.strip()
    if url.endswith(WELL_KNOWN_PATH):
        return url, url.removesuffix(WELL_KNOWN_PATH)
    issuer = url.rstrip("/")
    return f"{issuer}{WELL_KNOWN_PATH}", issuer


def is_loopback_host(host: str | None) -> bool:
    """Whether a URL host is this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint_url(url: str, what: str) -> None:
    """Refuse an endpoint that is not ``https`` (plain ``http`` only on loopback).

    Args:
        url: The endpoint URL.
        what: Its name, for the message.

    Raises:
        OidcError: ``discovery_invalid``.
    """
    try:
        parts = httpx.URL(url) if url else None
    except httpx.InvalidURL:
        parts = None
    if parts is not None and parts.scheme == "https" and parts.host:
        return
    if parts is not None and parts.scheme == "http" and is_loopback_host(parts.host):
        return
    raise OidcError(
        "discovery_invalid",
        f"The provider's {what} ({url or 'empty'}) must be an https URL "
        "(plain http is allowed only on a loopback host).",
    )


async def fetch_provider_metadata(
    http: httpx.AsyncClient, document_url: str, expected_issuer: str
) -> ProviderMetadata:
    """Fetch and check one discovery document (no caching).

    Args:
        http: The HTTP client.
        document_url: The ``.well-known/openid-configuration`` URL.
        expected_issuer: The issuer the document must declare (trailing ``/`` ignored).

    Returns:
        The metadata.

    Raises:
        OidcError: ``discovery_failed`` (network, HTTP status) or ``discovery_invalid``
            (not JSON, missing endpoint, wrong issuer, insecure URL).
    """
    check_endpoint_url(document_url, "discovery URL")
    try:
        response = await http.get(document_url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise OidcError(
            "discovery_failed",
            f"Could not reach the identity provider at {document_url} ({type(exc).__name__}).",
        ) from exc
    if response.status_code != 200:
        raise OidcError(
            "discovery_failed",
            f"The identity provider's configuration at {document_url} answered "
            f"HTTP {response.status_code}.",
        )
    try:
        metadata = msgspec.json.decode(response.content, type=ProviderMetadata)
    except msgspec.ValidationError as exc:
        raise OidcError(
            "discovery_invalid", f"The OpenID configuration at {document_url} is invalid: {exc}."
        ) from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise OidcError(
            "discovery_invalid", f"The OpenID configuration at {document_url} is not JSON."
        ) from exc
    if metadata.issuer.rstrip("/") != expected_issuer.rstrip("/"):
        raise OidcError(
            "discovery_invalid",
            f"The OpenID configuration at {document_url} declares the issuer "
            f"{metadata.issuer!r}, not {expected_issuer!r}.",
        )
    check_endpoint_url(metadata.authorization_endpoint, "authorization endpoint")
    check_endpoint_url(metadata.token_endpoint, "token endpoint")
    check_endpoint_url(metadata.jwks_uri, "JWKS URI")
    logger.debug("fetched OpenID configuration of %s", metadata.issuer)
    return metadata


class DiscoveryCache:
    """Provider metadata per discovery URL, fetched once (single-flight) and kept a while.

    Args:
        http: The HTTP client.
        max_age: Seconds (of ``clock``) before a cached document is fetched again.
        clock: Monotonic seconds; Trio's clock by default, so tests can mock it.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        max_age: float = _DEFAULT_MAX_AGE,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self._http = http
        self._max_age = max_age
        self._clock = clock
        self._entries: dict[str, tuple[ProviderMetadata, float]] = {}
        self._locks: dict[str, trio.Lock] = {}

    def _fresh(self, document_url: str) -> ProviderMetadata | None:
        entry = self._entries.get(document_url)
        if entry is not None and self._clock() - entry[1] < self._max_age:
            return entry[0]
        return None

    async def get(self, url: str) -> ProviderMetadata:
        """The metadata of the provider at ``url`` (issuer or discovery document URL).

        Raises:
            OidcError: The first fetch failed (see :func:`fetch_provider_metadata`).
        """
        document_url, issuer = discovery_location(url)
        cached = self._fresh(document_url)
        if cached is not None:
            await trio.lowlevel.checkpoint()
            return cached
        lock = self._locks.setdefault(document_url, trio.Lock())
        async with lock:
            # Another task may have fetched it while this one waited for the lock.
            cached = self._fresh(document_url)
            if cached is not None:
                return cached
            try:
                metadata = await fetch_provider_metadata(self._http, document_url, issuer)
            except OidcError as exc:
                stale = self._entries.get(document_url)
                if stale is None:
                    raise
                logger.warning("keeping the cached OpenID configuration: %s", exc.message)
                retry_at = self._clock() - self._max_age + min(_STALE_RETRY, self._max_age)
                self._entries[document_url] = (stale[0], retry_at)
                return stale[0]
            self._entries[document_url] = (metadata, self._clock())
            return metadata

    def invalidate(self, url: str | None = None) -> None:
        """Forget one provider's cached metadata (by issuer or document URL), or all."""
        if url is None:
            self._entries.clear()
        else:
            self._entries.pop(discovery_location(url)[0], None)

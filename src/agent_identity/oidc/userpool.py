"""Dynamic user-pool mode: find (or create) the pool and client by name, register the callback.

The steps follow veadk's resolution (section 2.6 of the API notes):

1. ``ListUserPools`` filtered by name; missing → ``CreateUserPool`` (self sign-up off, account
   recovery on) when ``autoCreate``, else :class:`OidcError` ``user_pool_not_found``.
2. ``ListUserPoolClients`` filtered by name, then ``GetUserPoolClient`` for the secret (lists
   never carry it); missing → ``CreateUserPoolClient`` (``WEB_APPLICATION``, with the callback)
   when ``autoCreate``, else ``user_pool_client_not_found``.
3. When the callback URL is not among ``AllowedCallbackUrls``, ``UpdateUserPoolClient`` with
   every other field written back, the callback (and its origin as a web origin) appended.
   Unlike veadk, a failure here is an error: without it every login would end on the
   provider's "invalid redirect_uri" page, which is much harder to diagnose.
4. The discovery URL: the pool's ``DiscoveryUrl``, else ``IssuerUrl`` + well-known path, else
   from ``Domain``. The real ``Domain`` is a bare host that needs ``https://``; the sandbox's is
   ``127.0.0.1:PORT/userpool/<uid>`` and is served over ``http``, so a scheme-less loopback
   domain gets ``http://`` and any other ``https://``.

Name filters are matched exactly on our side too, in case the service's filter is a substring
match. A 409 from a create (another gateway won the race) is answered by looking up again.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import httpx
import msgspec

from agent_identity.oidc.discovery import WELL_KNOWN_PATH, discovery_location, is_loopback_host
from agent_identity.oidc.errors import OidcError, OidcReason
from agent_identity.volcengine import IdentityClient, VolcengineError, is_conflict
from agent_identity.volcengine.models import (
    ClientFilter,
    CreateUserPoolClientRequest,
    CreateUserPoolRequest,
    GetUserPoolClientRequest,
    GetUserPoolRequest,
    ListUserPoolClientsRequest,
    ListUserPoolsRequest,
    UpdateUserPoolClientRequest,
    UserPool,
    UserPoolClient,
    UserPoolFilter,
)

__all__ = [
    "ResolvedUserPool",
    "discovery_url_for_pool",
    "resolve_user_pool",
    "user_pool_uid_from_url",
]

logger = logging.getLogger(__name__)

_PAGE_SIZE = 100
_SANDBOX_PATH = re.compile(r"/userpool/([A-Za-z0-9_.-]+)/?$")
_SERVICE_HOST = re.compile(r"^userpool-([A-Za-z0-9_-]+)\.userpool\.auth\.id\.[a-z0-9-]+\.")


@dataclass(frozen=True, slots=True)
class ResolvedUserPool:
    """The OIDC client a dynamic-mode config resolved to; ``repr`` hides the secret.

    Attributes:
        user_pool_uid: The pool's uid (for ``ListIdentityProviders``).
        user_pool_name: The pool's name.
        client_id: The client's uid, the OIDC ``client_id``.
        client_secret: The client's secret (None for a public client).
        discovery_url: The pool's OpenID configuration URL.
        created_user_pool: Whether this call created the pool.
        created_client: Whether this call created the client.
        registered_callback: Whether this call added the callback URL to the client.
    """

    user_pool_uid: str
    user_pool_name: str
    client_id: str
    client_secret: str | None = field(repr=False)
    discovery_url: str
    created_user_pool: bool = False
    created_client: bool = False
    registered_callback: bool = False


def user_pool_uid_from_url(url: str) -> str | None:
    """The user-pool uid in an issuer or discovery URL, when it has a known shape.

    Knows the service's ``https://userpool-<uid>.userpool.auth.id.<region>.volces.com`` and
    the sandbox's ``<base>/userpool/<uid>``; any other provider yields None.
    """
    try:
        issuer = httpx.URL(discovery_location(url)[1])
    except httpx.InvalidURL:
        return None
    found = _SANDBOX_PATH.search(issuer.path) or _SERVICE_HOST.match(issuer.host)
    return found.group(1) if found else None


def discovery_url_for_pool(pool: UserPool) -> str | None:
    """The discovery URL of a pool record (see the module docstring), or None if it has none."""
    if pool.discovery_url:
        return pool.discovery_url
    if pool.issuer_url:
        return discovery_location(pool.issuer_url)[0]
    domain = pool.domain.strip().rstrip("/")
    if not domain:
        return None
    if "://" not in domain:
        try:
            host = httpx.URL(f"https://{domain}").host
        except httpx.InvalidURL:
            return None
        domain = f"{'http' if is_loopback_host(host) else 'https'}://{domain}"
    return f"{domain}{WELL_KNOWN_PATH}"


def _failed(reason: OidcReason, what: str, exc: VolcengineError) -> OidcError:
    # VolcengineError's text is the server's code and message, never a credential.
    return OidcError(reason, f"{what}: {exc}")


async def _find_pool(identity: IdentityClient, name: str) -> UserPool | None:
    page = await identity.list_user_pools(
        ListUserPoolsRequest(page_number=1, page_size=_PAGE_SIZE, filter=UserPoolFilter(name=name))
    )
    return next((pool for pool in page.data if pool.name == name), None)


async def _pool(identity: IdentityClient, name: str, auto_create: bool) -> tuple[UserPool, bool]:
    found = await _find_pool(identity, name)
    if found is not None:
        return found, False
    if not auto_create:
        raise OidcError(
            "user_pool_not_found",
            f"The user pool {name!r} does not exist and userpool.autoCreate is false; "
            "create it in the console or enable autoCreate.",
        )
    created: UserPool | None
    try:
        created = await identity.create_user_pool(
            CreateUserPoolRequest(
                name=name, self_sign_up_enabled=False, self_account_recovery_enabled=True
            )
        )
    except VolcengineError as exc:
        if not is_conflict(exc):
            raise
        created = None
    if created is None:
        # Another gateway created it between our lookup and our create.
        found = await _find_pool(identity, name)
        if found is None:
            raise OidcError(
                "user_pool_lookup_failed", f"The user pool {name!r} exists but cannot be found."
            )
        return found, False
    logger.info("created user pool %r (%s)", name, created.uid)
    return created, True


async def _find_client(identity: IdentityClient, pool_uid: str, name: str) -> UserPoolClient | None:
    page = await identity.list_user_pool_clients(
        ListUserPoolClientsRequest(
            user_pool_uid=pool_uid,
            page_number=1,
            page_size=_PAGE_SIZE,
            filter=ClientFilter(name=name),
        )
    )
    listed = next((client for client in page.data if client.name == name), None)
    if listed is None:
        return None
    return await identity.get_user_pool_client(
        GetUserPoolClientRequest(user_pool_uid=pool_uid, client_uid=listed.uid)
    )


async def _client(
    identity: IdentityClient, pool: UserPool, name: str, callback_url: str, auto_create: bool
) -> tuple[UserPoolClient, bool]:
    found = await _find_client(identity, pool.uid, name)
    if found is not None:
        return found, False
    if not auto_create:
        raise OidcError(
            "user_pool_client_not_found",
            f"The user pool {pool.name!r} has no client {name!r} and userpool.autoCreate is "
            "false; create it in the console or enable autoCreate.",
        )
    created: UserPoolClient | None
    try:
        created = await identity.create_user_pool_client(
            CreateUserPoolClientRequest(
                user_pool_uid=pool.uid,
                name=name,
                client_type="WEB_APPLICATION",
                allowed_callback_urls=[callback_url],
            )
        )
    except VolcengineError as exc:
        if not is_conflict(exc):
            raise
        created = None
    if created is None:
        found = await _find_client(identity, pool.uid, name)
        if found is None:
            raise OidcError(
                "user_pool_lookup_failed",
                f"The user pool client {name!r} exists but cannot be found.",
            )
        return found, False
    logger.info("created user pool client %r in %r", name, pool.name)
    return created, True


async def _register_callback(
    identity: IdentityClient, pool_uid: str, client: UserPoolClient, callback_url: str
) -> UserPoolClient:
    origin = str(httpx.URL(callback_url).copy_with(path="/", query=None, fragment=None))
    origin = origin.rstrip("/")
    origins = list(client.allowed_web_origins)
    if origin not in origins:
        origins.append(origin)
    request = msgspec.structs.replace(
        UpdateUserPoolClientRequest.from_client(pool_uid, client),
        allowed_callback_urls=[*client.allowed_callback_urls, callback_url],
        allowed_web_origins=origins,
    )
    try:
        updated = await identity.update_user_pool_client(request)
    except VolcengineError as exc:
        raise _failed(
            "callback_registration_failed",
            f"Could not add the callback URL {callback_url} to the user pool client "
            f"{client.name!r}",
            exc,
        ) from exc
    logger.info("added callback URL %s to user pool client %r", callback_url, client.name)
    return updated


async def resolve_user_pool(
    identity_client: IdentityClient,
    user_pool_name: str,
    client_name: str,
    callback_url: str,
    auto_create: bool = True,
) -> ResolvedUserPool:
    """Resolve dynamic mode's names to an OIDC client (see the module docstring).

    Args:
        identity_client: The Identity control-plane client.
        user_pool_name: ``userpool.userPoolName``.
        client_name: ``userpool.clientName``.
        callback_url: ``userpool.callbackUrl``; registered on the client when missing.
        auto_create: ``userpool.autoCreate``: create a missing pool or client.

    Returns:
        The client id, secret, discovery URL and what was created or changed.

    Raises:
        OidcError: ``user_pool_not_found``, ``user_pool_client_not_found``,
            ``callback_registration_failed`` or ``user_pool_lookup_failed``.
    """
    try:
        pool, created_pool = await _pool(identity_client, user_pool_name, auto_create)
        client, created_client = await _client(
            identity_client, pool, client_name, callback_url, auto_create
        )
        registered = callback_url not in client.allowed_callback_urls
        if registered:
            client = await _register_callback(identity_client, pool.uid, client, callback_url)
        discovery_url = discovery_url_for_pool(pool)
        if discovery_url is None:
            full = await identity_client.get_user_pool(GetUserPoolRequest(user_pool_uid=pool.uid))
            discovery_url = discovery_url_for_pool(full)
    except VolcengineError as exc:
        raise _failed(
            "user_pool_lookup_failed", f"Could not resolve the user pool {user_pool_name!r}", exc
        ) from exc
    if discovery_url is None:
        raise OidcError(
            "user_pool_lookup_failed",
            f"The user pool {user_pool_name!r} has neither a discovery URL nor a domain.",
        )
    return ResolvedUserPool(
        user_pool_uid=pool.uid,
        user_pool_name=pool.name,
        client_id=client.uid,
        client_secret=client.client_secret or None,
        discovery_url=discovery_url,
        created_user_pool=created_pool,
        created_client=created_client,
        registered_callback=registered,
    )

"""Each user pool as an OIDC provider at ``<base>/userpool/<uid>`` (section 6 of the notes).

Endpoints under the issuer: ``/.well-known/openid-configuration``, ``/keys`` (JWKS),
``/authorize`` (a username/password login form), ``/login`` (the form's POST), ``/relay``,
``/oauth/token`` (``authorization_code`` with PKCE S256, ``refresh_token``,
``client_credentials``), ``/userinfo`` and ``/logout``. ``redirect_uri`` must be one of the
client's ``AllowedCallbackUrls`` exactly, as the real service requires.

Choices where the real service is undocumented (section 9 of the notes):

- PKCE S256 is required for every authorization request (``plain`` and no PKCE are refused).
- ``identity_provider`` names the login connection (a ``ListIdentityProviders`` entry, by name
  or uid); an unknown or disabled one is an ``invalid_request`` redirect to the client.
- The relay: with ``redirect_relay_uri=<callback>`` the ``redirect_uri`` is the pool's own
  ``<issuer>/relay`` (published as ``redirect_relay_endpoint`` in discovery) and the callback
  must be an allowed callback URL. After login the browser goes to ``<issuer>/relay?code&state
  &iss``, which forwards the same parameters to the callback registered with the code; the
  code is redeemed with ``redirect_uri=<issuer>/relay``. Errors after the request was checked
  go straight to the callback.
- Refresh tokens rotate: each use returns a new one and the old one stops working.
- Authorization responses carry ``iss`` (RFC 9207).
- Basic client credentials are form-url-decoded (RFC 6749 section 2.3.1); sending them both
  in the header and the body is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from agent_identity.sandbox.asgi import (
    Request,
    Response,
    add_query,
    form_page,
    html_page,
    json_response,
    redirect,
)
from agent_identity.sandbox.keys import SIGNING_ALGORITHMS, jwks
from agent_identity.sandbox.secrets import record_secret
from agent_identity.sandbox.state import Client, SandboxState, User, UserPool
from agent_identity.sandbox.tokens import issue_id_token

__all__ = ["PREFIX", "UserPoolOidc"]

PREFIX = "/userpool/"
_REQUEST_TTL = 600.0
_CODE_TTL = 300.0
_ACCESS_TTL = 3600
_REFRESH_TTL = 30 * 86400
_PUBLIC_CLIENTS = frozenset({"SINGLE_PAGE_APPLICATION", "MOBILE_APPLICATION"})


class _OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


@dataclass(slots=True)
class _AuthRequest:
    pool_uid: str
    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str | None
    expires_at: float
    sub: str | None = None
    relay_uri: str | None = None
    identity_provider: str | None = None


@dataclass(slots=True)
class _Session:
    pool_uid: str
    client_id: str
    sub: str
    scope: str
    expires_at: float


class UserPoolOidc:
    """The OIDC endpoints of every user pool, and their pending logins and tokens.

    Args:
        state: The sandbox state.
    """

    def __init__(self, state: SandboxState) -> None:
        self._state = state
        self._requests: dict[str, _AuthRequest] = {}
        self._codes: dict[str, _AuthRequest] = {}
        self._access: dict[str, _Session] = {}
        self._refresh: dict[str, _Session] = {}

    def handle(self, request: Request) -> Response:
        """Serve a request under ``/userpool/<uid>/``."""
        uid, _, route = request.path.removeprefix(PREFIX).partition("/")
        pool = self._state.user_pools.get(uid)
        if pool is None:
            return json_response(404, {"error": "not_found", "error_description": "no such pool"})
        issuer = self._state.user_pool_issuer(pool)
        try:
            if route == ".well-known/openid-configuration":
                return json_response(200, _discovery(issuer))
            if route == "keys":
                now = self._state.now()
                return json_response(200, jwks(self._state.keys.user_pool_keys(uid, now)))
            if route == "authorize":
                return self._authorize(pool, request)
            if route == "login" and request.method == "POST":
                return self._login(pool, request)
            if route == "relay":
                return self._relay(pool, request)
            if route == "oauth/token" and request.method == "POST":
                return self._token(pool, request)
            if route == "userinfo":
                return self._userinfo(pool, request)
            if route == "logout":
                return self._logout(pool, request)
        except _OAuthError as exc:
            return json_response(
                exc.status, {"error": exc.error, "error_description": exc.description}
            )
        return html_page(404, "Not found", "<p>No such page in this user pool.</p>")

    def _authorize(self, pool: UserPool, request: Request) -> Response:
        q = request.query_value
        issuer = self._state.user_pool_issuer(pool)
        client = pool.clients.get(q("client_id") or "")
        redirect_uri = q("redirect_uri") or ""
        relay_uri = q("redirect_relay_uri")
        # Where the browser is finally sent: the relay target when relaying.
        target = relay_uri if relay_uri is not None else redirect_uri
        if client is None or target not in client.allowed_callback_urls:
            return html_page(
                400,
                "Invalid login request",
                "<p>Unknown client, or the redirect_uri is not an allowed callback URL.</p>",
            )
        if relay_uri is not None and redirect_uri != f"{issuer}/relay":
            return html_page(
                400,
                "Invalid login request",
                "<p>With redirect_relay_uri the redirect_uri must be this pool's relay.</p>",
            )
        idp_name = q("identity_provider")
        error = _request_error(pool, q, idp_name)
        if error is not None:
            params = {"error": error[0], "error_description": error[1], "iss": issuer}
            if q("state"):
                params["state"] = q("state") or ""
            return redirect(add_query(target, params))
        request_id = secrets.token_urlsafe(18)
        self._requests[request_id] = _AuthRequest(
            pool.uid,
            client.uid,
            redirect_uri,
            q("scope") or "openid",
            q("state"),
            q("nonce"),
            q("code_challenge"),
            self._state.now() + _REQUEST_TTL,
            relay_uri=relay_uri,
            identity_provider=idp_name,
        )
        return _login_form(pool, client, request_id, 200, "")

    def _login(self, pool: UserPool, request: Request) -> Response:
        form = request.form()
        request_id = form.get("authRequestId", "")
        pending = self._requests.get(request_id)
        if (
            pending is None
            or pending.pool_uid != pool.uid
            or pending.expires_at <= self._state.now()
        ):
            return html_page(400, "Login expired", "<p>Start the login again.</p>")
        user = pool.users.get(form.get("username", ""))
        if user is None or not secrets.compare_digest(user.password, form.get("password", "")):
            client = pool.clients[pending.client_id]
            return _login_form(pool, client, request_id, 401, "Wrong username or password.")
        del self._requests[request_id]
        pending.sub = user.sub
        pending.expires_at = self._state.now() + _CODE_TTL
        code = secrets.token_urlsafe(24)
        record_secret(code, url_borne=True)
        self._codes[code] = pending
        return redirect(add_query(pending.redirect_uri, self._response_params(pool, code)))

    def _response_params(self, pool: UserPool, code: str) -> dict[str, str]:
        grant = self._codes[code]
        params = {"code": code}
        if grant.state:
            params["state"] = grant.state
        params["iss"] = self._state.user_pool_issuer(pool)
        return params

    def _relay(self, pool: UserPool, request: Request) -> Response:
        code = request.query_value("code") or ""
        grant = self._codes.get(code)
        if (
            grant is None
            or grant.pool_uid != pool.uid
            or grant.relay_uri is None
            or grant.expires_at <= self._state.now()
        ):
            return html_page(400, "Login expired", "<p>Unknown or expired relay request.</p>")
        # The target comes from the stored grant, never from the query: no open redirect.
        return redirect(add_query(grant.relay_uri, self._response_params(pool, code)))

    def _client_auth(self, pool: UserPool, request: Request, form: dict[str, str]) -> Client:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            if secret is not None:
                raise _OAuthError("invalid_request", "use one client authentication method")
            try:
                decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise _OAuthError("invalid_client", "malformed Basic credentials", 401) from exc
            raw_id, _, raw_secret = decoded.partition(":")
            basic_id = unquote_plus(raw_id)
            if client_id is not None and client_id != basic_id:
                raise _OAuthError("invalid_request", "client_id differs from the Basic user")
            client_id, secret = basic_id, unquote_plus(raw_secret)
        client = pool.clients.get(client_id or "")
        if client is None:
            raise _OAuthError("invalid_client", "unknown client", 401)
        if secret is None and client.client_type in _PUBLIC_CLIENTS:
            return client
        if not secrets.compare_digest(client.secret, secret or ""):
            raise _OAuthError("invalid_client", "wrong client secret", 401)
        return client

    def _token(self, pool: UserPool, request: Request) -> Response:
        form = request.form()
        client = self._client_auth(pool, request, form)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._redeem_code(pool, client, form)
        if grant_type == "refresh_token":
            # Rotation: the token is spent by this request whatever happens next.
            session = self._refresh.pop(form.get("refresh_token", ""), None)
            if (
                session is None
                or session.client_id != client.uid
                or session.pool_uid != pool.uid
                or session.expires_at <= self._state.now()
            ):
                raise _OAuthError("invalid_grant", "the refresh token is unknown, used or expired")
            return self._tokens(pool, client, session.sub, session.scope, None)
        if grant_type == "client_credentials":
            scope = form.get("scope", "")
            access = secrets.token_urlsafe(32)
            record_secret(access)
            self._access[access] = _Session(
                pool.uid, client.uid, client.uid, scope, self._state.now() + _ACCESS_TTL
            )
            return json_response(
                200,
                {
                    "access_token": access,
                    "token_type": "Bearer",
                    "expires_in": _ACCESS_TTL,
                    "scope": scope,
                },
            )
        raise _OAuthError("unsupported_grant_type", f"grant_type {grant_type!r}")

    def _redeem_code(self, pool: UserPool, client: Client, form: dict[str, str]) -> Response:
        grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or grant.expires_at <= self._state.now() or grant.sub is None:
            raise _OAuthError("invalid_grant", "the code is unknown, used or expired")
        if grant.client_id != client.uid or grant.redirect_uri != form.get("redirect_uri"):
            raise _OAuthError("invalid_grant", "the code was issued to another client or URI")
        # Every request carried an S256 challenge (the authorize endpoint insists).
        verifier = form.get("code_verifier", "")
        if grant.code_challenge is None or not secrets.compare_digest(
            _b64_sha256(verifier), grant.code_challenge
        ):
            raise _OAuthError("invalid_grant", "the PKCE code_verifier does not match")
        return self._tokens(pool, client, grant.sub, grant.scope, grant.nonce)

    def _tokens(
        self, pool: UserPool, client: Client, sub: str, scope: str, nonce: str | None
    ) -> Response:
        now = self._state.now()
        access = secrets.token_urlsafe(32)
        record_secret(access)
        # Both algorithms hash with SHA-256, so at_hash is its left half either way.
        extra: dict[str, Any] = {"at_hash": _b64_sha256(access, half=True)}
        if nonce:
            extra["nonce"] = nonce
        id_token = issue_id_token(
            self._state,
            pool,
            sub,
            client_id=client.uid,
            ttl=client.id_token_lifetime,
            extra_claims=extra,
        )
        self._access[access] = _Session(pool.uid, client.uid, sub, scope, now + _ACCESS_TTL)
        body: dict[str, Any] = {
            "access_token": access,
            "id_token": id_token,
            "token_type": "Bearer",
            "expires_in": _ACCESS_TTL,
            "scope": scope,
        }
        refresh = secrets.token_urlsafe(32)
        record_secret(refresh)
        self._refresh[refresh] = _Session(pool.uid, client.uid, sub, scope, now + _REFRESH_TTL)
        body["refresh_token"] = refresh
        return json_response(200, body)

    def _userinfo(self, pool: UserPool, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        session = self._access.get(token)
        if (
            session is None
            or session.pool_uid != pool.uid
            or session.expires_at <= self._state.now()
        ):
            raise _OAuthError("invalid_token", "unknown or expired access token", 401)
        user: User | None = next((u for u in pool.users.values() if u.sub == session.sub), None)
        info: dict[str, Any] = {"sub": session.sub}
        if user is not None:
            info["preferred_username"] = user.username
            if user.email:
                info.update(email=user.email, email_verified=True)
            if user.name:
                info["name"] = user.name
        return json_response(200, info)

    def _logout(self, pool: UserPool, request: Request) -> Response:
        target = request.query_value("post_logout_redirect_uri")
        allowed = {url for c in pool.clients.values() for url in c.allowed_logout_urls}
        if target and target in allowed:
            return redirect(target)
        return html_page(200, "Signed out", "<p>You are signed out.</p>")


def _request_error(
    pool: UserPool, q: Callable[[str], str | None], idp_name: str | None
) -> tuple[str, str] | None:
    """The OAuth error of an authorization request whose client and target are fine."""
    if q("response_type") != "code":
        return "unsupported_response_type", "only response_type=code is supported"
    if "openid" not in (q("scope") or "").split():
        return "invalid_scope", "the scope must include openid"
    if not q("code_challenge") or q("code_challenge_method") != "S256":
        return "invalid_request", "PKCE with code_challenge_method=S256 is required"
    if idp_name is not None and not any(
        idp.enabled and idp_name in {idp.name, idp.uid} for idp in pool.identity_providers
    ):
        return "invalid_request", "unknown or disabled identity_provider"
    return None


def _b64_sha256(text: str, *, half: bool = False) -> str:
    digest = hashlib.sha256(text.encode("ascii", "replace")).digest()
    if half:
        digest = digest[: len(digest) // 2]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _discovery(issuer: str) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "redirect_relay_endpoint": f"{issuer}/relay",
        "token_endpoint": f"{issuer}/oauth/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/keys",
        "end_session_endpoint": f"{issuer}/logout",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(SIGNING_ALGORITHMS),
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "email", "name", "nonce"],
    }


def _login_form(
    pool: UserPool, client: Client, request_id: str, status: int, error: str
) -> Response:
    message = f"Sign in to {pool.name} to continue to {client.name}."
    if error:
        message = f"{error} {message}"
    return form_page(
        status,
        "Sign in",
        message,
        f"{PREFIX}{pool.uid}/login",
        {"authRequestId": request_id},
        inputs=(("username", "text", "Username"), ("password", "password", "Password")),
        buttons=(("", "", "Sign in"),),
    )

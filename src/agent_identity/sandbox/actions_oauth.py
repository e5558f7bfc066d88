"""OAuth2 outbound credentials: M2M tokens and the 3LO (user federation) flow.

3LO, as the sandbox runs it:

1. ``GetResourceOauth2Token`` with no stored token for (pool, user sub, provider) returns an
   ``AuthorizationUrl`` at the demo OAuth2 provider (``redirect_uri`` = the sandbox's own
   ``<base>/api/v1/oauth2callback``, or the caller's ``RedirectUrl``) and a ``SessionUri``.
   Polling with identical params returns the same session until it completes.
2. The user approves on the demo provider's consent page, which redirects to the callback.
3. The callback (:func:`handle_callback`) redeems the code with the demo provider (in-process,
   same checks as its token endpoint) and stores the token for the user; the next poll returns
   ``AccessToken``. With a ``ResourceOauth2ReturnUrl`` the browser is sent there instead
   (``session_id=<SessionUri>``) and the token waits for ``CompleteResourceTokenAuth``.
4. A client that receives the code itself (its own ``RedirectUrl``) completes with
   ``Oauth2Callback{State, Code, IdentityToken}``; ``Error=access_denied`` fails the session
   with 400 ``Oauth2AuthorizationDenied``.
"""

from __future__ import annotations

import html
import secrets
from urllib.parse import urlencode

from agent_identity.sandbox.asgi import Request, Response, add_query, html_page, redirect
from agent_identity.sandbox.context import ActionContext, Handler, Result, identity_token
from agent_identity.sandbox.envelope import ApiError, Params, invalid, missing, not_found
from agent_identity.sandbox.oauth_demo import DemoOAuthError, DemoOAuthProvider
from agent_identity.sandbox.state import OAuth2Provider, OAuthSession, SandboxState, StoredToken
from agent_identity.sandbox.tokens import TokenError, verify_tip, verify_user_token

__all__ = ["CALLBACK_PATH", "HANDLERS", "handle_callback"]

CALLBACK_PATH = "/api/v1/oauth2callback"
_SESSION_TTL = 600.0
_FLOWS = ("USER_FEDERATION", "M2M")


def _denied(error: str) -> ApiError:
    return ApiError(
        400, "Oauth2AuthorizationDenied", f"The user denied the authorization ({error})."
    )


def _provider(ctx: ActionContext) -> OAuth2Provider:
    name = ctx.params.required_text("ProviderName")
    pool = ctx.params.text("PoolName", "default") or "default"
    provider = ctx.state.providers.get((pool, name))
    if provider is None:
        raise not_found("CredentialProvider", name)
    if not isinstance(provider, OAuth2Provider):
        raise invalid("ProviderName", f"The provider {name!r} is not an OAuth2 provider.")
    return provider


def _custom_parameters(params: Params) -> dict[str, str]:
    # Three shapes exist in the wild (section 2.6): a bare list, {"Entries": [...]} from the
    # SDK, and {"entries": [{"key", "value"}]} from veadk.
    raw = params.raw("CustomParameters")
    if isinstance(raw, dict):
        raw = raw.get("Entries", raw.get("entries"))
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise invalid("CustomParameters", "Expected a list of {Key, Value} entries.")
    found: dict[str, str] = {}
    for entry in raw:
        key = entry.get("Key", entry.get("key")) if isinstance(entry, dict) else None
        value = entry.get("Value", entry.get("value")) if isinstance(entry, dict) else None
        if not isinstance(key, str) or not isinstance(value, str):
            raise invalid("CustomParameters", "Each entry needs a string Key and Value.")
        found[key] = value
    return found


def _check_return_url(ctx: ActionContext, act_sub: object, url: str | None) -> None:
    if url is None:
        return
    pool = ctx.state.workload_pools.get(ctx.params.text("PoolName", "default") or "default")
    workload = pool.workloads.get(str(act_sub)) if pool is not None else None
    # A workload with an allowlist must list the URL; without one the sandbox is lenient.
    if (
        workload is not None
        and workload.allowed_return_urls
        and url not in workload.allowed_return_urls
    ):
        raise invalid(
            "ResourceOauth2ReturnUrl",
            "It is not in the workload's AllowedResourceOauth2ReturnUrls.",
        )


def _authorization_url(
    ctx: ActionContext, provider: OAuth2Provider, session: OAuthSession, extra: dict[str, str]
) -> str:
    query = {
        "response_type": "code",
        "client_id": provider.client_id,
        "redirect_uri": session.redirect_uri,
        "scope": " ".join(session.scopes),
        "state": session.state,
        **extra,
    }
    return f"{ctx.demo.authorize_url}?{urlencode(query)}"


def get_resource_oauth2_token(ctx: ActionContext) -> Result:
    """``GetResourceOauth2Token``: an ``AccessToken`` or an ``AuthorizationUrl``, never both."""
    tip = identity_token(ctx)
    provider = _provider(ctx)
    params, state = ctx.params, ctx.state
    flow = params.text("Flow") or provider.flow
    if flow not in _FLOWS:
        raise invalid("Flow", "Use USER_FEDERATION or M2M.")
    scopes = params.texts("Scopes") or list(provider.scopes)
    if flow == "M2M":
        grant = ctx.demo.client_credentials(
            client_id=provider.client_id, client_secret=provider.client_secret, scopes=scopes
        )
        return {"AccessToken": grant.access_token, "ExpiresIn": grant.expires_in}
    now = state.now()
    force = params.flag("ForceAuthentication")
    stored = state.oauth_tokens.get((provider.pool_name, tip.sub, provider.name))
    if (
        stored is not None
        and not force
        and stored.expires_at > now
        and set(scopes) <= set(stored.scopes)
    ):
        return {"AccessToken": stored.access_token, "ExpiresIn": int(stored.expires_at - now)}
    redirect_uri = params.text("RedirectUrl") or f"{state.base_url}{CALLBACK_PATH}"
    return_url = params.text("ResourceOauth2ReturnUrl")
    _check_return_url(ctx, (tip.claims.get("act") or {}).get("sub"), return_url)
    session = None
    if not force:
        # Polling with identical params must not mint a new state each time.
        session = next(
            (
                s
                for s in state.oauth_sessions.values()
                if s.status == "pending"
                and s.expires_at > now
                and (s.pool_name, s.sub, s.provider) == (provider.pool_name, tip.sub, provider.name)
                and (s.redirect_uri, s.return_url, s.scopes) == (redirect_uri, return_url, scopes)
            ),
            None,
        )
    if session is None:
        _prune(state, now)
        session = OAuthSession(
            state=secrets.token_urlsafe(18),
            session_uri=f"urn:ietf:params:oauth:request_uri:{secrets.token_urlsafe(18)}",
            pool_name=provider.pool_name,
            provider=provider.name,
            sub=tip.sub,
            scopes=scopes,
            redirect_uri=redirect_uri,
            return_url=return_url,
            custom_state=params.text("CustomState"),
            expires_at=now + _SESSION_TTL,
        )
        state.oauth_sessions[session.state] = session
    return {
        "AuthorizationUrl": _authorization_url(ctx, provider, session, _custom_parameters(params)),
        "SessionUri": session.session_uri,
    }


def _prune(state: SandboxState, now: float) -> None:
    # Expired sessions are dropped as new ones start, so a long `dev` run stays small.
    for key in [key for key, s in state.oauth_sessions.items() if s.expires_at <= now]:
        del state.oauth_sessions[key]


def _exchange(
    state: SandboxState, demo: DemoOAuthProvider, session: OAuthSession, code: str
) -> StoredToken:
    provider = state.providers.get((session.pool_name, session.provider))
    if not isinstance(provider, OAuth2Provider):
        raise DemoOAuthError("invalid_client", "the credential provider no longer exists")
    grant = demo.exchange_code(
        code=code,
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        redirect_uri=session.redirect_uri,
    )
    return StoredToken(grant.access_token, state.now() + grant.expires_in, grant.scopes)


def _complete(state: SandboxState, session: OAuthSession, token: StoredToken) -> None:
    session.status = "completed"
    session.token = token
    state.oauth_tokens[(session.pool_name, session.sub, session.provider)] = token


def _live_session(state: SandboxState, key: str | None) -> OAuthSession | None:
    session = state.oauth_sessions.get(key or "")
    if session is None or session.expires_at <= state.now():
        return None
    return session


def handle_callback(state: SandboxState, demo: DemoOAuthProvider, request: Request) -> Response:
    """Serve ``GET <base>/api/v1/oauth2callback?code&state`` (or ``?error&state``)."""
    session = _live_session(state, request.query_value("state"))
    if session is None:
        return html_page(400, "Authorization failed", "<p>Unknown or expired authorization.</p>")
    if session.status != "pending":
        return html_page(400, "Authorization failed", "<p>This authorization was already used.</p>")
    error = request.query_value("error")
    if error:
        session.status, session.error = "failed", error
        return html_page(
            200, "Authorization denied", f"<p>The provider said: {html.escape(error)}.</p>"
        )
    try:
        token = _exchange(state, demo, session, request.query_value("code") or "")
    except DemoOAuthError as exc:
        session.status, session.error = "failed", exc.error
        return html_page(400, "Authorization failed", f"<p>{html.escape(exc.description)}.</p>")
    if session.return_url:
        session.status, session.token = "awaiting_binding", token
        params = {"session_id": session.session_uri}
        if session.custom_state:
            params["state"] = session.custom_state
        return redirect(add_query(session.return_url, params))
    _complete(state, session, token)
    return html_page(
        200,
        "Authorization complete",
        f"<p>{html.escape(session.provider)} is connected. You can close this window.</p>",
    )


def oauth2_callback(ctx: ActionContext) -> Result:
    """``Oauth2Callback``: State*, IdentityToken*, Code, Error → ``AccessToken``."""
    tip = identity_token(ctx)
    state_param = ctx.params.required_text("State")
    session = _live_session(ctx.state, state_param)
    if session is None:
        raise not_found("Oauth2Session", state_param)
    if session.sub != tip.sub:
        raise invalid("IdentityToken", "It belongs to another user than the authorization.")
    if session.status == "completed" and session.token is not None:
        return {"AccessToken": session.token.access_token}
    if session.status != "pending":
        raise invalid("State", "This authorization was already used or failed.")
    error = ctx.params.text("Error")
    if error:
        session.status, session.error = "failed", error
        raise _denied(error)
    code = ctx.params.text("Code")
    if code is None:
        raise missing("Code")
    try:
        token = _exchange(ctx.state, ctx.demo, session, code)
    except DemoOAuthError as exc:
        session.status, session.error = "failed", exc.error
        raise invalid("Code", f"The provider refused it: {exc.description}.") from exc
    _complete(ctx.state, session, token)
    return {"AccessToken": token.access_token}


def _identifier_sub(ctx: ActionContext) -> str:
    ident = ctx.params.required_child("UserIdentifier")
    try:
        if ident.has("IdentityToken"):
            return verify_tip(ctx.state, ident.required_text("IdentityToken")).sub
        if ident.has("UserToken"):
            return verify_user_token(ctx.state, ident.required_text("UserToken")).sub
    except TokenError as exc:
        raise invalid("UserIdentifier", f"Its token is not valid: {exc}.") from exc
    user_id = ident.text("UserID") or ident.text("UserId")
    if user_id is None:
        raise missing("UserIdentifier.IdentityToken")
    return user_id


def complete_resource_token_auth(ctx: ActionContext) -> Result:
    """``CompleteResourceTokenAuth``: bind a consented session to the logged-in user."""
    session_uri = ctx.params.required_text("SessionUri")
    session = next(
        (s for s in ctx.state.oauth_sessions.values() if s.session_uri == session_uri), None
    )
    if session is None or session.expires_at <= ctx.state.now():
        raise not_found("Oauth2Session", session_uri)
    if _identifier_sub(ctx) != session.sub:
        raise invalid("UserIdentifier", "It is not the user who started the authorization.")
    if session.status == "failed":
        raise _denied(session.error or "access_denied")
    if session.status == "pending":
        raise invalid("SessionUri", "The user has not authorized yet.")
    if session.status == "awaiting_binding" and session.token is not None:
        _complete(ctx.state, session, session.token)
    return {}


HANDLERS: dict[str, Handler] = {
    "GetResourceOauth2Token": get_resource_oauth2_token,
    "Oauth2Callback": oauth2_callback,
    "CompleteResourceTokenAuth": complete_resource_token_auth,
}

"""A demo third-party OAuth2 provider, the "GitHub" behind the sandbox's 3LO and M2M providers.

Its clients are the seed's OAuth2 credential providers (client id and secret). It serves:

- ``GET /demo-oauth/authorize``: a consent page with Approve and Deny buttons (a plain HTML
  form, which a test drives by posting the form like a browser);
- ``POST /demo-oauth/authorize``: the decision, redirecting to ``redirect_uri`` with
  ``code``/``state`` or ``error=access_denied``;
- ``POST /demo-oauth/token``: ``authorization_code`` and ``client_credentials`` grants;
- ``GET /demo-oauth/userinfo``: who a bearer token belongs to.

The sandbox's own 3LO callback exchanges codes through :meth:`DemoOAuthProvider.exchange_code`
in-process: the same checks as the HTTP token endpoint (client secret, single-use code,
matching ``redirect_uri``), without a loopback request from the server to itself.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass

from agent_identity.sandbox.asgi import (
    Request,
    Response,
    add_query,
    form_page,
    html_page,
    json_response,
    redirect,
)
from agent_identity.sandbox.secrets import record_secret
from agent_identity.sandbox.state import OAuth2Provider, SandboxState

__all__ = ["DemoOAuthError", "DemoOAuthProvider", "TokenGrant"]

PREFIX = "/demo-oauth"
_CODE_TTL = 300.0
_TOKEN_TTL = 3600
DEMO_SUBJECT = "demo-user"


class DemoOAuthError(Exception):
    """An OAuth2 error response (RFC 6749 section 5.2)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """An issued access token."""

    access_token: str
    expires_in: int
    scopes: list[str]


@dataclass(slots=True)
class _Code:
    client_id: str
    redirect_uri: str
    scopes: list[str]
    expires_at: float


class DemoOAuthProvider:
    """The demo provider's state and endpoints.

    Args:
        state: The sandbox state (its OAuth2 providers are this provider's clients).
    """

    def __init__(self, state: SandboxState) -> None:
        self._state = state
        self._codes: dict[str, _Code] = {}
        self._tokens: dict[str, tuple[str, list[str], float]] = {}

    @property
    def authorize_url(self) -> str:
        """The authorize endpoint's absolute URL."""
        return f"{self._state.base_url}{PREFIX}/authorize"

    def _client(self, client_id: str | None) -> OAuth2Provider | None:
        return next(
            (
                p
                for p in self._state.providers.values()
                if isinstance(p, OAuth2Provider) and p.client_id == client_id
            ),
            None,
        )

    def _authenticate(self, client_id: str | None, client_secret: str | None) -> OAuth2Provider:
        client = self._client(client_id)
        if client is None or not secrets.compare_digest(client.client_secret, client_secret or ""):
            raise DemoOAuthError("invalid_client", "unknown client or wrong secret", 401)
        return client

    def _issue(self, client_id: str, scopes: list[str]) -> TokenGrant:
        token = f"demo-at-{secrets.token_urlsafe(24)}"
        record_secret(token)
        self._tokens[token] = (client_id, scopes, self._state.now() + _TOKEN_TTL)
        return TokenGrant(token, _TOKEN_TTL, scopes)

    def exchange_code(
        self, *, code: str, client_id: str, client_secret: str, redirect_uri: str
    ) -> TokenGrant:
        """Redeem an authorization code (single use, 5 minutes, same redirect_uri).

        Raises:
            DemoOAuthError: ``invalid_client`` or ``invalid_grant``.
        """
        self._authenticate(client_id, client_secret)
        grant = self._codes.pop(code, None)
        if grant is None or grant.expires_at <= self._state.now():
            raise DemoOAuthError("invalid_grant", "the code is unknown, used or expired")
        if grant.client_id != client_id or grant.redirect_uri != redirect_uri:
            raise DemoOAuthError("invalid_grant", "the code was issued for another client or URI")
        return self._issue(client_id, grant.scopes)

    def client_credentials(
        self, *, client_id: str, client_secret: str, scopes: list[str]
    ) -> TokenGrant:
        """Issue a token for the client itself (the M2M flow).

        Raises:
            DemoOAuthError: ``invalid_client``.
        """
        self._authenticate(client_id, client_secret)
        return self._issue(client_id, scopes)

    def handle(self, request: Request) -> Response:
        """Serve a request under ``/demo-oauth/``."""
        route = request.path.removeprefix(PREFIX)
        try:
            if route == "/authorize" and request.method == "GET":
                return self._consent_page(request)
            if route == "/authorize" and request.method == "POST":
                return self._decide(request)
            if route == "/token" and request.method == "POST":
                return self._token(request)
            if route == "/userinfo":
                return self._userinfo(request)
        except DemoOAuthError as exc:
            return json_response(
                exc.status, {"error": exc.error, "error_description": exc.description}
            )
        return html_page(404, "Not found", "<p>No such page at the demo OAuth2 provider.</p>")

    def _consent_page(self, request: Request) -> Response:
        client = self._client(request.query_value("client_id"))
        redirect_uri = request.query_value("redirect_uri")
        if client is None or not redirect_uri:
            return html_page(400, "Invalid request", "<p>Unknown client or no redirect_uri.</p>")
        if request.query_value("response_type") != "code":
            return redirect(
                add_query(redirect_uri, self._error_params(request, "unsupported_response_type"))
            )
        hidden = {
            "client_id": client.client_id,
            "redirect_uri": redirect_uri,
            "scope": request.query_value("scope") or "",
            "state": request.query_value("state") or "",
        }
        return form_page(
            200,
            "Demo OAuth2 provider",
            f"{client.name} asks for access to your demo account "
            f"(scopes: {hidden['scope'] or 'none'}).",
            f"{PREFIX}/authorize",
            hidden,
            buttons=(("decision", "approve", "Approve"), ("decision", "deny", "Deny")),
        )

    @staticmethod
    def _error_params(request: Request, error: str) -> dict[str, str]:
        params = {"error": error}
        state = request.query_value("state")
        if state:
            params["state"] = state
        return params

    def _decide(self, request: Request) -> Response:
        form = request.form()
        client = self._client(form.get("client_id"))
        redirect_uri = form.get("redirect_uri", "")
        if client is None or not redirect_uri:
            return html_page(400, "Invalid request", "<p>Unknown client or no redirect_uri.</p>")
        state = form.get("state", "")
        if form.get("decision") != "approve":
            return redirect(add_query(redirect_uri, {"error": "access_denied", "state": state}))
        code = secrets.token_urlsafe(24)
        record_secret(code, url_borne=True)
        self._codes[code] = _Code(
            client.client_id,
            redirect_uri,
            form.get("scope", "").split(),
            self._state.now() + _CODE_TTL,
        )
        return redirect(add_query(redirect_uri, {"code": code, "state": state}))

    def _token(self, request: Request) -> Response:
        form = request.form()
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(basic[6:]).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise DemoOAuthError("invalid_client", "malformed Basic credentials", 401) from exc
            client_id, _, client_secret = decoded.partition(":")
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            grant = self.exchange_code(
                code=form.get("code", ""),
                client_id=client_id or "",
                client_secret=client_secret or "",
                redirect_uri=form.get("redirect_uri", ""),
            )
        elif grant_type == "client_credentials":
            grant = self.client_credentials(
                client_id=client_id or "",
                client_secret=client_secret or "",
                scopes=form.get("scope", "").split(),
            )
        else:
            raise DemoOAuthError("unsupported_grant_type", f"grant_type {grant_type!r}")
        return json_response(
            200,
            {
                "access_token": grant.access_token,
                "token_type": "Bearer",
                "expires_in": grant.expires_in,
                "scope": " ".join(grant.scopes),
            },
        )

    def _userinfo(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        found = self._tokens.get(token)
        if found is None or found[2] <= self._state.now():
            raise DemoOAuthError("invalid_token", "unknown or expired access token", 401)
        client_id, scopes, _ = found
        return json_response(
            200, {"sub": DEMO_SUBJECT, "client_id": client_id, "scope": " ".join(scopes)}
        )

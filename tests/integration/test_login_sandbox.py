"""The whole login over real sockets: /identity login → user pool → callback → stored session.

The browser is httpx following the sandbox's login form; the callback is the hypercorn-served
app with the real flow, broker and encrypted file store behind it.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import trio

from agent_identity.actors.login_flow import LoginFailure, LoginFlow
from agent_identity.host.session_keys import build_effective_session_key

from .conftest import CLIENT_ID, POOL, LoginStack, make_oidc

pytestmark = pytest.mark.slow

KEY = build_effective_session_key("agent:main:main", sender_id="123456789", channel="telegram")


def _with_param(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = [(k, value if k == name else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _state_of(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["state"]


def _assert_no_secrets(text: str, *secrets: str | None) -> None:
    for secret in secrets:
        if secret:
            assert secret not in text


async def test_full_login_stores_an_encrypted_session_that_survives_a_restart(
    stack: LoginStack, nursery: trio.Nursery
) -> None:
    events = stack.flow.events.subscribe()
    with trio.fail_after(30):
        url = await stack.flow.start_login(KEY, context={"to": "telegram:123456789"})
        query = dict(parse_qsl(urlsplit(url).query))
        assert query["client_id"] == CLIENT_ID
        assert query["redirect_uri"] == stack.callback_url
        assert query["code_challenge_method"] == "S256"
        page = await stack.browse(url)
        assert page.status_code == 200, page.text
        assert str(page.url).startswith(stack.callback_url)
        assert "Logged in as alice" in page.text
        assert "You can close this window and return to the chat." in page.text
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["content-security-policy"].startswith("default-src 'none'")

        view = await stack.sessions.get(KEY)
        assert view is not None
        assert view.sub == "alice"
        assert view.has_refresh_token
        refresh = await stack.sessions.get_refresh_token(KEY)
        # Nothing secret reaches the page.
        _assert_no_secrets(page.text, view.user_token, refresh, query["state"], query["nonce"])

        # The notification event and the TIP hook both saw the login.
        event = events.receive_nowait()
        assert (event.session_key, event.sub) == (KEY, "alice")
        assert event.context == {"to": "telegram:123456789"}
        assert [record.sub for record in stack.tips] == ["alice"]

        # On disk: encrypted, so no token appears in any file of the data folder.
        await stack.sessions.flush()
        files = [p for p in stack.data_dir.iterdir() if p.is_file()]
        assert files
        for path in files:
            content = path.read_bytes()
            for secret in (view.user_token, refresh, "alice-password"):
                assert secret is not None
                assert secret.encode() not in content

        # A new store on the same files still has the session.
        await stack.restart_store(nursery)
        again = await stack.sessions.get(KEY)
        assert again is not None
        assert (again.sub, again.user_token) == ("alice", view.user_token)

        # The same callback URL cannot be used twice.
        replay = await stack.http.get(str(page.url))
        assert replay.status_code == 400
        assert "already used" in replay.text
        assert "No session was created" in replay.text


async def test_replayed_state_is_refused_and_changes_nothing(stack: LoginStack) -> None:
    with trio.fail_after(30):
        url = await stack.flow.start_login(KEY)
        first = await stack.browse(url)
        assert first.status_code == 200
        before = await stack.sessions.get(KEY)
        # A second login by bob, then bob's callback replayed with alice's old state.
        query = dict(parse_qsl(urlsplit(str(first.url)).query))
        forged = await stack.http.get(
            stack.callback_url, params={"code": "stolen", "state": query["state"]}
        )
        assert forged.status_code == 400
        assert "already used" in forged.text
        assert await stack.sessions.get(KEY) == before
        assert stack.late.outcomes[-1].failure is LoginFailure.STATE_USED


@pytest.mark.parametrize("broker_ttl", [0.5])
async def test_expired_state_shows_an_error_and_creates_no_session(stack: LoginStack) -> None:
    with trio.fail_after(30):
        url = await stack.flow.start_login(KEY)
        await trio.sleep(0.6)  # real sockets: a real (short) wait, no mock clock
        page = await stack.browse(url)
        assert page.status_code == 400
        assert "expired" in page.text
        assert "No session was created" in page.text
        assert await stack.sessions.get(KEY) is None
        assert stack.late.outcomes[-1].failure is LoginFailure.STATE_EXPIRED


async def test_idp_access_denied_is_shown_escaped_and_consumes_the_login(
    stack: LoginStack,
) -> None:
    with trio.fail_after(30):
        url = await stack.flow.start_login(KEY)
        state = _state_of(url)
        page = await stack.http.get(
            stack.callback_url,
            params={
                "error": "access_denied",
                "error_description": "User <b>cancelled</b> & left",
                "state": state,
                "iss": stack.sb.user_pool_issuer(POOL),
            },
        )
        assert page.status_code == 400
        assert "access_denied" in page.text
        assert "User &lt;b&gt;cancelled&lt;/b&gt; &amp; left" in page.text
        assert "<b>" not in page.text
        assert await stack.sessions.get(KEY) is None
        assert stack.late.outcomes[-1].failure is LoginFailure.IDP_ERROR
        # The login is spent: the real code cannot be used with this state any more.
        late = await stack.browse(url)
        assert late.status_code == 400
        assert "already used" in late.text
        assert await stack.sessions.get(KEY) is None


async def test_forged_error_with_unknown_state_does_not_echo_the_text(
    stack: LoginStack,
) -> None:
    page = await stack.http.get(
        stack.callback_url,
        params={"error": "access_denied", "error_description": "Call +1-555-SCAM", "state": "x"},
    )
    assert page.status_code == 400
    assert "SCAM" not in page.text
    assert "not valid" in page.text


async def test_wrong_nonce_is_refused(stack: LoginStack) -> None:
    with trio.fail_after(30):
        url = await stack.flow.start_login(KEY)
        page = await stack.browse(_with_param(url, "nonce", "someone-elses-nonce"))
        assert page.status_code == 400
        assert "No session was created" in page.text
        assert await stack.sessions.get(KEY) is None
        outcome = stack.late.outcomes[-1]
        assert outcome.failure is LoginFailure.TOKEN_REJECTED
        assert outcome.detail == "id_token_nonce_mismatch"
        assert stack.tips == []


async def test_expired_id_token_is_refused(stack: LoginStack) -> None:
    pool = stack.sb.state.user_pool(POOL)
    assert pool is not None
    pool.clients[CLIENT_ID].id_token_lifetime = -3600  # the provider issues a stale token
    with trio.fail_after(30):
        url = await stack.flow.start_login(KEY)
        page = await stack.browse(url)
        assert page.status_code == 400
        assert await stack.sessions.get(KEY) is None
        assert stack.late.outcomes[-1].detail == "id_token_expired"


async def test_failed_code_exchange_is_refused(stack: LoginStack) -> None:
    """The IdP refuses the token request (wrong client secret): an error page, no session."""
    bad = make_oidc(stack.sb, stack.http, stack.callback_url, client_secret="wrong")
    flow = LoginFlow(stack.logins, bad, stack.sessions)  # a misconfigured gateway
    stack.late.flow = flow
    with trio.fail_after(30):
        url = await flow.start_login(KEY)
        page = await stack.browse(url)
        assert page.status_code == 400
        assert "Login failed" in page.text
        assert "invalid_client" in page.text
        assert await stack.sessions.get(KEY) is None
        assert stack.late.outcomes[-1].failure is LoginFailure.TOKEN_REJECTED
        assert stack.late.outcomes[-1].detail == "invalid_client"


async def test_two_users_get_separate_sessions(stack: LoginStack) -> None:
    alice_key = build_effective_session_key("main", sender_id="ou_alice", channel="feishu")
    bob_key = build_effective_session_key("main", sender_id="ou_bob", channel="feishu")
    pool = stack.sb.state.user_pool(POOL)
    assert pool is not None
    users = {user.username: user for user in pool.users.values()}
    bob = next(name for name in users if name != "alice")
    with trio.fail_after(30):
        alice_url = await stack.flow.start_login(alice_key)
        bob_url = await stack.flow.start_login(bob_key)
        assert (await stack.browse(bob_url, username=bob, password=users[bob].password)).is_success
        assert (await stack.browse(alice_url)).is_success
        alice = await stack.sessions.get(alice_key)
        bob_view = await stack.sessions.get(bob_key)
        assert alice is not None
        assert bob_view is not None
        assert alice.sub == "alice"
        assert bob_view.sub == users[bob].sub
        assert bob_view.sub != alice.sub

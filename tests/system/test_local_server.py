"""The local identity server's read endpoints over a real Unix socket and peer gate.

``GET /token``, ``/session``, ``/status`` and ``/tools`` against a system running on the
sandbox, before and after real logins, for the main session and for others (``?session=``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import jwt
import pytest

from agent_identity.actors.tip_messages import TipInfo
from agent_identity.host.tool_specs import TOOL_SPECS

from .conftest import World
from .test_local_server_support import BOB_DM, MAIN, Served, open_served


@pytest.fixture
async def served(world: World) -> AsyncIterator[Served]:
    async with open_served(world) as running:
        yield running


async def cached_tip(served: Served, key: str) -> TipInfo:
    tip = await served.ident.tips.peek(key)
    assert isinstance(tip, TipInfo), tip
    return tip


async def test_a_session_that_is_not_logged_in_gets_404_with_the_login_hint(
    served: Served,
) -> None:
    async with served.client() as client:
        for path, params in (
            ("/token", {}),
            ("/session", {}),
            ("/token", {"session": BOB_DM}),
            ("/session", {"session": BOB_DM}),
        ):
            response = await client.get(path, params=params)
            assert response.status_code == 404, path
            assert response.headers["content-type"].startswith("application/json")
            body = response.json()
            assert body["error"] == "not_logged_in"
            assert "/identity login" in body["message"]
            assert params.get("session", MAIN) in body["message"]


async def test_token_and_session_of_the_main_session(served: Served) -> None:
    await served.login(MAIN)
    async with served.client() as client:
        token = await client.get("/token")
        session = await client.get("/session")
    assert token.status_code == 200, token.text
    tip = await cached_tip(served, MAIN)
    assert token.json() == {
        "token": tip.token,
        "sessionKey": MAIN,
        "sub": "alice",
        "expiresAt": int(tip.expires_at),
        "delegationChain": list(tip.chain.actors),
    }
    assert tip.chain.actors  # the workload acts for the user
    claims = jwt.decode(tip.token, options={"verify_signature": False})
    assert claims["sub"] == "alice"
    assert session.status_code == 200, session.text
    view = await served.ident.sessions.get(MAIN)
    assert view is not None
    assert session.json() == {
        "idToken": view.user_token,
        "sessionKey": MAIN,
        "sub": "alice",
        "expiresAt": int(view.expires_at),
        "hasRefreshToken": view.has_refresh_token,
    }


async def test_the_session_query_names_another_session(served: Served) -> None:
    await served.login(MAIN)
    await served.login(BOB_DM, username="bob", password="bob-password")
    async with served.client() as client:
        main = (await client.get("/token")).json()
        bob = (await client.get("/token", params={"session": BOB_DM})).json()
        bob_session = (await client.get("/session", params={"session": BOB_DM})).json()
        # An empty session is the main one, as in the spec's ``"session": ""``.
        empty = (await client.get("/token", params={"session": ""})).json()
    assert (main["sub"], main["sessionKey"]) == ("alice", MAIN)
    assert (bob["sub"], bob["sessionKey"]) == ("bob", BOB_DM)
    assert bob["token"] == (await cached_tip(served, BOB_DM)).token
    assert bob["token"] != main["token"]
    assert (bob_session["sub"], bob_session["sessionKey"]) == ("bob", BOB_DM)
    assert empty == main


async def test_status_summarizes_the_sessions_without_a_secret(served: Served) -> None:
    async with served.client() as client:
        empty = await client.get("/status")
        assert (empty.status_code, empty.json()) == (200, {"status": "ok", "sessions": []})
        await served.login(MAIN)
        await served.login(BOB_DM, username="bob", password="bob-password")
        assert await served.ident.tips.forget(BOB_DM)
        response = await client.get("/status")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    rows = {row["sessionKey"]: row for row in body["sessions"]}
    assert set(rows) == {MAIN, BOB_DM}
    main, bob = await served.ident.sessions.get(MAIN), await served.ident.sessions.get(BOB_DM)
    assert main is not None
    assert bob is not None
    assert rows[MAIN] == {
        "sessionKey": MAIN,
        "sub": "alice",
        "expiresAt": int(main.expires_at),
        "hasTip": True,
    }
    assert rows[BOB_DM]["hasTip"] is False
    secrets = [main.user_token, bob.user_token, (await cached_tip(served, MAIN)).token]
    for key in (MAIN, BOB_DM):
        refresh = await served.ident.sessions.get_refresh_token(key)
        if refresh:
            secrets.append(refresh)
    for secret in secrets:
        assert secret not in response.text
    assert "eyJ" not in response.text  # no JWT of any kind


async def test_tools_lists_every_tool_with_its_schema(served: Served) -> None:
    async with served.client() as client:
        response = await client.get("/tools")
    assert response.status_code == 200
    tools = {tool["name"]: tool for tool in response.json()["tools"]}
    # Every tool the plugin defines, the hidden one included: the socket is a user surface.
    assert set(tools) == {spec.name for spec in TOOL_SPECS}
    for spec in TOOL_SPECS:
        tool = tools[spec.name]
        assert tool == {
            "name": spec.name,
            "label": spec.label,
            "description": spec.description,
            "parameters": spec.json_schema(),
            "agentVisible": spec.agent_visible,
        }
        assert tool["parameters"]["type"] == "object"
        assert tool["description"]
    assert tools["identity_approve_tool"]["agentVisible"] is False
    assert [name for name, tool in tools.items() if not tool["agentVisible"]] == [
        "identity_approve_tool"
    ]
    assert "approval_id" in tools["identity_approve_tool"]["parameters"]["properties"]

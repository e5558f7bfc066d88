"""whoami, status, login and logout against the real stack (sandbox, actors, login form)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import pytest
import trio

from agent_identity.actors.tip_messages import NoTip, TipInfo
from agent_identity.config import parse_feishu_channel
from agent_identity.host import ops_session
from agent_identity.host.caller import Caller, caller_for_command
from agent_identity.host.commands import IdentityCommands
from agent_identity.host.contract import IdentityCommand, Login, Logout, Status, Whoami
from agent_identity.host.events import CommandContext
from agent_identity.host.outcome import OperationError, Outcome
from agent_identity.notify import Notifier
from agent_identity.sandbox.browser import submit_login_form

from .conftest import MAIN, Stack, StackOpener

OTHER = "agent:main:main:user:bob"
API_KEY = "sk-imported-api-key-0123456789"


def caller(key: str = MAIN, **fields: Any) -> Caller:
    return Caller(session_key=key, host_session_key=key, **fields)


async def tool(stack: Stack, name: str, who: Caller | None = None) -> Outcome:
    return await ops_session.TOOLS[name](stack.deps, who or caller(), {})


async def command(stack: Stack, parsed: IdentityCommand, who: Caller | None = None) -> Outcome:
    return await ops_session.COMMANDS[type(parsed)](stack.deps, who or caller(), parsed)


def shown(outcome: Outcome) -> str:
    """Everything an outcome shows: its text and its details as JSON."""
    return outcome.text + json.dumps(outcome.details)


async def import_key(stack: Stack, key: str = MAIN) -> None:
    """Give ``key`` a credential and a binding without network: ``/identity set`` importing."""
    environ = {"OPENAI_API_KEY": API_KEY}
    result = await stack.deps.vault.set_binding(key, "openai", "OPENAI_API_KEY", environ=environ)
    assert result.ok


async def log_in_through(stack: Stack, outcome: Outcome) -> None:
    """Open a login outcome's URL and sign alice in, as the user would."""
    url = outcome.details["authUrl"]
    page = await submit_login_form(stack.browser, url, username="alice", password="alice-password")
    assert page.status_code == 200


# ---------------------------------------------------------------- whoami


async def test_whoami_when_not_logged_in_says_so_for_command_and_tool(stack: Stack) -> None:
    by_command = await command(stack, Whoami())
    by_tool = await tool(stack, "identity_whoami")
    assert by_command == by_tool
    assert by_tool.text == "Not logged in. Run /identity login to sign in."
    assert by_tool.details == {"loggedIn": False, "hasTip": False, "sessionKey": MAIN}


async def test_whoami_shows_sub_session_and_tip_with_chain(stack: Stack) -> None:
    await stack.login(MAIN)
    tip = await stack.deps.tips.peek(MAIN)
    view = await stack.deps.sessions.get(MAIN)
    assert isinstance(tip, TipInfo)
    assert view is not None

    outcome = await tool(stack, "identity_whoami")

    details = outcome.details
    assert details["loggedIn"] is True
    assert details["sub"] == "alice"
    assert details["email"] == "alice@example.com"
    assert details["hasTip"] is True
    assert details["tipChain"] == ["openclaw-agent"]
    assert 0 < details["tipExpiresInSeconds"] <= 3600
    expires_at = dt.datetime.fromisoformat(details["tipExpiresAt"]).timestamp()
    assert expires_at == pytest.approx(tip.expires_at, abs=1)
    assert details["sessionExpiresAt"] is not None
    lines = outcome.text.splitlines()
    assert lines[0] == "Logged in as alice (alice@example.com)"
    assert lines[2].startswith("TIP: valid, expires in ")
    assert lines[2].endswith("chain: openclaw-agent")
    assert tip.token not in shown(outcome)
    assert view.user_token not in shown(outcome)


async def test_whoami_after_the_tip_was_forgotten_reports_none_and_mints_nothing(
    stack: Stack,
) -> None:
    await stack.login(MAIN)
    assert await stack.deps.tips.forget(MAIN)

    outcome = await tool(stack, "identity_whoami")

    assert outcome.details["loggedIn"] is True
    assert outcome.details["hasTip"] is False
    assert "tipChain" not in outcome.details
    assert "TIP: none cached" in outcome.text
    # whoami only looks: the TIP is still not cached afterwards.
    assert isinstance(await stack.deps.tips.peek(MAIN), NoTip)


# ---------------------------------------------------------------- status


async def test_status_when_not_logged_in(stack: Stack) -> None:
    outcome = await command(stack, Status())
    assert outcome == await tool(stack, "identity_status")
    assert outcome.text == "Not logged in. Run /identity login to sign in.\nCredentials: none"
    assert outcome.details["loggedIn"] is False
    assert outcome.details["session"] is None
    assert outcome.details["tip"] is None
    assert "tipError" not in outcome.details
    assert outcome.details["credentialProviders"] == []


async def test_status_mints_a_forgotten_tip_and_lists_credentials(stack: Stack) -> None:
    await stack.login(MAIN)
    await import_key(stack)
    await stack.deps.sessions.set_binding(MAIN, "github", "GITHUB_TOKEN")  # bound, not stored
    await stack.deps.tips.forget(MAIN)

    outcome = await tool(stack, "identity_status")

    details = outcome.details
    assert details["loggedIn"] is True
    assert details["sub"] == "alice"
    assert details["hasTip"] is True
    assert details["tip"]["chain"] == ["openclaw-agent"]
    assert details["session"]["expiresAt"] is not None
    assert details["bindings"] == {"openai": "OPENAI_API_KEY", "github": "GITHUB_TOKEN"}
    github, openai = details["credentialProviders"]
    assert (openai["name"], openai["stored"], openai["envVar"]) == (
        "openai",
        True,
        "OPENAI_API_KEY",
    )
    assert (github["name"], github["stored"]) == ("github", False)
    credentials = outcome.text.splitlines()[-1]
    assert credentials.startswith("Credentials: github (")
    assert credentials.endswith(
        "no credential, env GITHUB_TOKEN), openai (api_key, env OPENAI_API_KEY)"
    )
    assert isinstance(await stack.deps.tips.peek(MAIN), TipInfo)  # status did get one
    assert API_KEY not in shown(outcome)


async def test_status_reports_a_tip_that_cannot_be_minted(stack: Stack) -> None:
    await stack.login(MAIN)
    await stack.deps.tips.forget(MAIN)
    stack.sb.faults.add("GetWorkloadAccessTokenForJWT", status=403, code="AccessDenied")

    outcome = await tool(stack, "identity_status")

    assert outcome.details["loggedIn"] is True
    assert outcome.details["hasTip"] is False
    assert outcome.details["tipError"]["code"] == "unavailable"
    assert "AccessDenied" in outcome.details["tipError"]["reason"]
    assert outcome.text.splitlines()[1].startswith("TIP: none (")


# ---------------------------------------------------------------- login


async def test_login_from_webchat_returns_the_url_and_says_to_check_status(stack: Stack) -> None:
    who = caller_for_command(
        CommandContext(session_key="main", sender_id="u1", channel="webchat"),
        personal_session_mode=False,
    )
    outcome = await command(stack, Login(), who)

    url = outcome.details["authUrl"]
    assert url.startswith(stack.sb.base_url)
    assert outcome.details["loggedIn"] is False
    assert outcome.details["followUp"] is False
    assert outcome.details["sessionKey"] == who.session_key
    assert url in outcome.text.splitlines()
    assert "run /identity status to check" in outcome.text
    # The URL really logs the caller's own effective session in.
    await log_in_through(stack, outcome)
    view = await stack.deps.sessions.get(who.session_key)
    assert view is not None
    assert view.sub == "alice"
    assert await stack.deps.sessions.get(MAIN) is None


async def test_login_from_feishu_carries_the_route_and_promises_a_message(stack: Stack) -> None:
    who = caller_for_command(
        CommandContext(
            session_key="main",
            sender_id="ou_alice",
            channel="feishu",
            to="user:ou_alice",
            account_id="main-bot",
        ),
        personal_session_mode=False,
    )
    app_id, app_secret = next(iter(stack.sb.feishu.apps.items()))
    feishu = parse_feishu_channel(
        {"appId": app_id, "appSecret": app_secret, "domain": stack.sb.base_url}
    )
    deps = dataclasses.replace(stack.deps, notifier=Notifier.for_channel(stack.ident.http, feishu))
    with stack.ident.login_events.subscribe() as events:
        outcome = await ops_session.COMMANDS[Login](deps, who, Login())

        assert outcome.details["followUp"] is True
        assert outcome.text.endswith("You will get a message here once you are logged in.")
        await log_in_through(stack, outcome)
        with trio.fail_after(10):
            event = await events.receive()
        assert event.session_key == who.session_key
        assert dict(event.context) == {
            "channel": "feishu",
            "senderId": "ou_alice",
            "to": "user:ou_alice",
            "accountId": "main-bot",
        }

        # A tool has no command route: its trusted channel and sender are used instead. And
        # without channels.feishu the user is told to check for itself.
        tool_caller = caller(OTHER, channel="feishu", sender_id="ou_bob", kind="tool")
        by_tool = await ops_session.TOOLS["identity_login"](stack.deps, tool_caller, {})
        assert by_tool.details["followUp"] is False
        await log_in_through(stack, by_tool)
        with trio.fail_after(10):
            event = await events.receive()
        assert dict(event.context) == {"channel": "feishu", "senderId": "ou_bob"}


async def test_login_when_logged_in_refreshes_the_tip(stack: Stack) -> None:
    await stack.login(MAIN)
    before = await stack.deps.tips.peek(MAIN)
    assert isinstance(before, TipInfo)

    outcome = await tool(stack, "identity_login")

    after = await stack.deps.tips.peek(MAIN)
    assert isinstance(after, TipInfo)
    assert after.token != before.token
    assert outcome.text.startswith("Already logged in as alice (alice@example.com). TIP refreshed")
    assert outcome.details["refreshed"] is True
    assert outcome.details["tip"]["chain"] == ["openclaw-agent"]
    assert "authUrl" not in outcome.details
    assert after.token not in shown(outcome)


async def test_login_whose_user_token_is_refused_offers_a_new_login(stack: Stack) -> None:
    await stack.login(MAIN)
    stack.sb.faults.add(
        "GetWorkloadAccessTokenForJWT", status=401, code="InvalidParameter.UserToken"
    )

    outcome = await tool(stack, "identity_login")

    assert outcome.text.startswith("Your login has expired or was revoked; log in again.\n")
    assert outcome.details["authUrl"].startswith(stack.sb.base_url)


async def test_login_whose_tip_refresh_fails_is_an_error(stack: Stack) -> None:
    await stack.login(MAIN)
    stack.sb.faults.add("GetWorkloadAccessTokenForJWT", status=403, code="AccessDenied")
    with pytest.raises(OperationError) as failed:
        await tool(stack, "identity_login")
    assert failed.value.code == "tip_unavailable"
    assert failed.value.message.startswith("No TIP is available right now")


async def test_login_without_a_userpool_is_an_error(open_stack: StackOpener) -> None:
    async with open_stack(userpool=None) as stack:
        with pytest.raises(OperationError) as failed:
            await tool(stack, "identity_login")
        assert failed.value.code == "login_not_configured"
        reply = await IdentityCommands(stack.deps, ops_session.COMMANDS).handle({"args": "login"})
        assert reply.is_error is True
        assert reply.text == "⚠️ " + failed.value.message
        assert "userpool" in failed.value.message


async def test_login_with_the_identity_provider_down_is_an_error(stack: Stack) -> None:
    stack.sb.faults.add("/userpool/", status=503)
    with pytest.raises(OperationError) as failed:
        await tool(stack, "identity_login")
    assert failed.value.code == "login_unavailable"
    assert "could not be reached" in failed.value.message


# ---------------------------------------------------------------- logout


async def test_logout_clears_session_tip_credentials_bindings_and_approvals(stack: Stack) -> None:
    await stack.login(MAIN)
    await import_key(stack)
    await stack.deps.approvals.request(
        MAIN, "exec", {"command": "rm -rf /"}, risk="high", reason="destructive"
    )

    outcome = await command(stack, Logout())

    assert outcome.text == (
        "Logged out alice. Cleared: session, TIP, 1 credential, 1 binding, 1 pending approval."
    )
    assert outcome.details == {
        "loggedOut": True,
        "sub": "alice",
        "sessionKey": MAIN,
        "cleared": {"session": True, "tip": True, "credentials": 1, "bindings": 1, "approvals": 1},
    }
    assert await stack.deps.sessions.get(MAIN) is None
    assert await stack.deps.sessions.bindings(MAIN) == {}
    assert isinstance(await stack.deps.tips.peek(MAIN), NoTip)
    assert await stack.deps.vault.describe(MAIN) == []
    assert await stack.deps.approvals.list(MAIN) == []


async def test_logout_when_not_logged_in_is_a_friendly_answer(stack: Stack) -> None:
    outcome = await tool(stack, "identity_logout")
    assert outcome.text == "You were not logged in; there was nothing to clear."
    assert outcome.details["loggedOut"] is False
    assert outcome.details["cleared"]["session"] is False


async def test_logout_without_a_session_still_clears_what_there_is(stack: Stack) -> None:
    await import_key(stack)
    outcome = await tool(stack, "identity_logout")
    assert outcome.text == "You were not logged in. Cleared: 1 credential, 1 binding."
    assert await stack.deps.vault.describe(MAIN) == []


async def test_logout_leaves_other_sessions_alone(stack: Stack) -> None:
    await stack.login(MAIN)
    await stack.login(OTHER, username="bob", password="bob-password")
    await import_key(stack, OTHER)

    await tool(stack, "identity_logout", caller(MAIN))

    other = await tool(stack, "identity_whoami", caller(OTHER))
    assert other.details["sub"] == "bob"
    assert other.details["hasTip"] is True
    assert await stack.deps.sessions.bindings(OTHER) == {"openai": "OPENAI_API_KEY"}
    assert (await tool(stack, "identity_whoami", caller(MAIN))).details["loggedIn"] is False

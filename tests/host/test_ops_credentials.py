"""``/identity list`` and ``fetch``, their tools, and the credential follow-ups.

Commands go through the real :class:`IdentityCommands` and tools through
:class:`IdentityTools`, with the handlers of :mod:`agent_identity.host.ops_credentials`,
against a running system on the sandbox: the real vault, the control plane over loopback and
the sandbox's Feishu stand-in (``channels.feishu`` points at it). 3LO consent is given on
the demo OAuth2 provider's page with the test's browser, like a person would.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
import trio

from agent_identity.actors.vault_events import CredentialAdded, CredentialFlowFailed, VaultEvent
from agent_identity.actors.vault_types import FetchFailure
from agent_identity.config import FeishuChannel
from agent_identity.host.commands import IdentityCommands
from agent_identity.host.ops_credentials import (
    COMMANDS,
    TOOLS,
    fetch,
)
from agent_identity.host.outcome import OperationError
from agent_identity.host.results import ReplyPayload, ToolResult
from agent_identity.host.session_keys import build_effective_session_key
from agent_identity.host.tools import IdentityTools, ToolError
from agent_identity.notify import SendStatus
from agent_identity.sandbox.browser import submit_consent_form
from agent_identity.sandbox.feishu import DEV_APP_ID, DEV_APP_SECRET
from agent_identity.sandbox.state import ApiKeyProvider
from agent_identity.system.followups import CredentialFollowups

from .conftest import MAIN, Stack, StackOpener

OPENAI_KEY = "sk-sandbox-openai-0000000000000000"
FOLLOW_UP = "✓ Credential for {} added."
#: A bound for anything that waits on the loopback sandbox (the first 3LO poll is after 2 s).
WAIT = 20.0


# ------------------------------------------------------------------- support


@dataclass
class Chat:
    """One person talking to the gateway: commands and tools with their trusted context."""

    stack: Stack
    sender: str | None = "ou_alice"
    channel: str = "feishu"
    host_key: str = MAIN

    @property
    def key(self) -> str:
        """The effective session key the system stores this person's session under."""
        return build_effective_session_key(
            self.host_key, sender_id=self.sender, channel=self.channel
        )

    async def login(self, username: str = "alice") -> None:
        await self.stack.login(self.key, username=username, password=f"{username}-password")

    async def command(self, args: str) -> ReplyPayload:
        ctx: dict[str, Any] = {
            "sessionKey": self.host_key,
            "senderId": self.sender,
            "channel": self.channel,
            "to": f"user:{self.sender}" if self.channel == "feishu" else None,
            "args": args,
            "commandBody": f"/identity {args}",
            "isAuthorizedSender": True,
        }
        return await IdentityCommands(self.stack.deps, COMMANDS).handle(ctx)

    async def tool(self, name: str, params: dict[str, Any]) -> ToolResult:
        ctx = {
            "sessionKey": self.host_key,
            "requesterSenderId": self.sender,
            "messageChannel": self.channel,
        }
        return await IdentityTools(self.stack.deps, TOOLS).execute(name, params, ctx)

    async def tool_error(self, name: str, params: dict[str, Any]) -> ToolError:
        with pytest.raises(ToolError) as caught:
            await self.tool(name, params)
        return caught.value


def text_of(result: ToolResult) -> str:
    [block] = result.content
    return block.text


def log_texts(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(record.getMessage() for record in caplog.records)


async def consent(browser: httpx.AsyncClient, url: str, decision: str = "approve") -> str:
    """Decide on the demo provider's consent page; returns the final page's text."""
    return (await submit_consent_form(browser, url, decision=decision)).text


async def next_event(events: trio.MemoryReceiveChannel[VaultEvent]) -> VaultEvent:
    with trio.fail_after(WAIT):
        return await events.receive()


@pytest.fixture
async def feishu_stack(open_stack: StackOpener) -> AsyncIterator[Stack]:
    """A running system whose ``channels.feishu`` is the sandbox's Feishu stand-in."""
    sb = open_stack.sb
    feishu = FeishuChannel(app_id=DEV_APP_ID, app_secret=DEV_APP_SECRET, domain=sb.base_url)
    async with open_stack(feishu=feishu) as stack:
        yield stack


@pytest.fixture
async def alice(feishu_stack: Stack) -> Chat:
    """Alice on Feishu, logged in."""
    chat = Chat(feishu_stack)
    await chat.login()
    return chat


# ------------------------------------------------------------------- not logged in


@pytest.mark.parametrize("args", ["list", "list 2", "fetch openai", "fetch demo-oauth"])
async def test_commands_need_a_login(feishu_stack: Stack, args: str) -> None:
    reply = await Chat(feishu_stack).command(args)
    assert reply.is_error
    assert reply.text is not None
    assert reply.text.startswith("⚠️ You are not logged in")
    assert "/identity login" in reply.text
    assert feishu_stack.sb.feishu.sent_messages == []


@pytest.mark.parametrize(
    ("name", "params"),
    [("identity_list_credentials", {}), ("identity_fetch", {"provider": "openai"})],
)
async def test_tools_need_a_login(feishu_stack: Stack, name: str, params: dict[str, Any]) -> None:
    error = await Chat(feishu_stack).tool_error(name, params)
    assert error.code == "not_logged_in"
    assert "/identity login" in error.message


async def test_a_failing_tip_mint_is_reported_as_such(feishu_stack: Stack) -> None:
    bob = Chat(feishu_stack, sender="ou_bob")
    # Bob's session exists, but no TIP can be minted for it (a non-retryable refusal).
    feishu_stack.sb.faults.add("GetWorkloadAccessTokenForJWT", status=400, code="InvalidParameter")
    await bob.login("bob")
    reply = await bob.command("list")
    assert reply.text is not None
    assert reply.text.startswith("⚠️ No TIP is available right now: minting the TIP failed")
    assert "/identity login" in reply.text
    error = await bob.tool_error("identity_fetch", {"provider": "openai"})
    assert error.code == "tip_unavailable"


async def test_a_refused_login_asks_to_sign_in_again(feishu_stack: Stack) -> None:
    carol = Chat(feishu_stack, sender="ou_carol")
    # The control plane refuses the user token itself (and the renewed one): a dead login.
    feishu_stack.sb.faults.add(
        "GetWorkloadAccessTokenForJWT", status=400, code="InvalidParameter.UserToken"
    )
    await carol.login("bob")
    reply = await carol.command("fetch openai")
    assert reply.text == (
        "⚠️ Your login has expired or was revoked. Run /identity login to sign in again."
    )
    assert (await carol.tool_error("identity_list_credentials", {})).code == "logged_out"


# ------------------------------------------------------------------- list


async def test_list_shows_providers_and_the_callers_credentials(alice: Chat) -> None:
    await alice.command("fetch openai")
    await alice.command("set openai OPENAI_API_KEY")
    await alice.command("get-role demo-role")
    reply = await alice.command("list")
    assert reply.is_error is None
    assert reply.text == "\n".join(
        [
            "Credential providers (page 1, 3 in total):",
            "• demo-m2m (oauth2, oauth2-m2m)",
            "• demo-oauth (oauth2, oauth2-user)",
            "• openai (api_key, apikey) · stored · env OPENAI_API_KEY",
            "Your other credentials:",
            "• demo-role (role) · stored, expires in 59m",
            "Add one: /identity fetch <provider>",
        ]
    )
    result = await alice.tool("identity_list_credentials", {})
    assert text_of(result) == reply.text  # the command and the tool report the same facts
    details = result.details
    assert (details["page"], details["total"], details["hasMore"], details["nextPage"]) == (
        1,
        3,
        False,
        None,
    )
    assert [p["name"] for p in details["providers"]] == ["demo-m2m", "demo-oauth", "openai"]
    assert details["credentials"] == [
        {
            "name": "openai",
            "type": "api_key",
            "flow": "apikey",
            "stored": True,
            "expired": False,
            "envVar": "OPENAI_API_KEY",
            "expiresIn": None,
            "source": "apikey",
        },
        {
            "name": "demo-role",
            "type": "role",
            "flow": None,
            "stored": True,
            "expired": False,
            "envVar": None,
            "expiresIn": details["credentials"][1]["expiresIn"],
            "source": "role",
        },
    ]
    assert OPENAI_KEY not in reply.text


async def test_list_is_paginated(alice: Chat) -> None:
    providers = alice.stack.sb.state.providers
    template = providers[("default", "openai")]
    assert isinstance(template, ApiKeyProvider)
    for number in range(25):  # 28 providers: 20 on page 1, 8 on page 2
        name = f"bulk-{number:02d}"
        providers[("default", name)] = replace(template, name=name)
    first = await alice.command("list")
    assert first.text is not None
    lines = first.text.splitlines()
    assert lines[0] == "Credential providers (page 1, 28 in total):"
    assert len([line for line in lines if line.startswith("• ")]) == 20
    assert "More: /identity list 2" in lines
    second = await alice.tool("identity_list_credentials", {"page": 2})
    assert second.details["hasMore"] is False
    assert [p["name"] for p in second.details["providers"]][-3:] == [
        "demo-m2m",
        "demo-oauth",
        "openai",
    ]
    assert "More:" not in text_of(second)
    beyond = await alice.command("list 9")
    assert beyond.text is not None
    assert beyond.text.startswith("No providers on page 9 (28 in total).")


async def test_list_tool_filters(alice: Chat) -> None:
    by_type = await alice.tool("identity_list_credentials", {"type": "api_key"})
    assert [p["name"] for p in by_type.details["providers"]] == ["openai"]
    by_flow = await alice.tool("identity_list_credentials", {"flow": "oauth2-m2m"})
    assert [p["name"] for p in by_flow.details["providers"]] == ["demo-m2m"]
    by_name = await alice.tool("identity_list_credentials", {"name": "demo"})
    assert [p["name"] for p in by_name.details["providers"]] == ["demo-m2m", "demo-oauth"]
    none = await alice.tool("identity_list_credentials", {"name": "nothing-like-this"})
    assert text_of(none).startswith("No credential providers found.")
    error = await alice.tool_error("identity_list_credentials", {"type": "password"})
    assert error.code == "invalid_params"


async def test_a_failing_listing_is_an_error(alice: Chat) -> None:
    alice.stack.sb.faults.add("ListCredentialProviders", status=400, code="InvalidParameter")
    reply = await alice.command("list")
    assert reply.is_error
    assert reply.text is not None
    assert reply.text.startswith("⚠️ Listing providers failed: InvalidParameter")
    error = await alice.tool_error("identity_list_credentials", {})
    assert error.code == "list_failed"


# ------------------------------------------------------------------- fetch: at once


async def test_fetch_api_key_stores_it_and_follows_up_on_feishu(
    alice: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reply = await alice.command("fetch openai")
    assert reply.is_error is None
    assert reply.text == (
        "✓ API key for openai stored.\nInject it into tools: /identity set openai <ENV_VAR>"
    )
    assert alice.stack.sb.feishu.texts_to("ou_alice") == [FOLLOW_UP.format("openai")]
    [status] = await alice.stack.deps.vault.describe(alice.key)
    assert (status.name, status.stored) == ("openai", True)
    assert OPENAI_KEY not in log_texts(caplog)


async def test_fetch_m2m_stores_a_token_and_follows_up(alice: Chat) -> None:
    reply = await alice.command("fetch demo-m2m")
    assert reply.text is not None
    assert reply.text.startswith("✓ Access token for demo-m2m stored.")
    assert alice.stack.sb.feishu.texts_to("ou_alice") == [FOLLOW_UP.format("demo-m2m")]
    result = await alice.tool("identity_fetch", {"provider": "demo-m2m"})
    assert result.details["success"] is True
    assert result.details["flow"] == "oauth2-m2m"
    assert 0 < result.details["expiresIn"] <= 3600
    assert "value" not in result.details
    # A tool runs in the same Feishu conversation (its delivery context): it follows up too.
    assert alice.stack.sb.feishu.texts_to("ou_alice") == [FOLLOW_UP.format("demo-m2m")] * 2


async def test_fetch_tool_returns_the_value_only_when_asked(
    alice: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    plain = await alice.tool("identity_fetch", {"provider": "openai"})
    assert OPENAI_KEY not in text_of(plain)
    assert OPENAI_KEY not in str(plain.details)
    assert plain.details == {
        "success": True,
        "message": "API key for openai stored.",
        "provider": "openai",
        "flow": "apikey",
        "expiresIn": None,
    }
    asked = await alice.tool("identity_fetch", {"provider": "openai", "returnValue": True})
    assert f"Value: {OPENAI_KEY}" in text_of(asked)
    assert (asked.details["value"], asked.details["secret"]) == (OPENAI_KEY, True)
    assert OPENAI_KEY not in log_texts(caplog)


async def test_flow_override(alice: Chat) -> None:
    # demo-oauth is a 3LO provider; --flow=oauth2-m2m asks for client credentials instead.
    reply = await alice.command("fetch demo-oauth --flow=oauth2-m2m")
    assert reply.text is not None
    assert reply.text.startswith("✓ Access token for demo-oauth stored.")
    [status] = await alice.stack.deps.vault.describe(alice.key)
    assert (status.name, status.source) == ("demo-oauth", "oauth2-m2m")


async def test_fetch_errors(alice: Chat) -> None:
    unknown = await alice.command("fetch no-such-provider")
    assert unknown.is_error
    assert unknown.text == (
        "⚠️ There is no OAuth2 or API key provider named 'no-such-provider' in pool 'default'."
    )
    error = await alice.tool_error("identity_fetch", {"provider": "no-such-provider"})
    assert error.code == "unknown_provider"
    wrong_flow = await alice.tool_error("identity_fetch", {"provider": "openai", "flow": "bogus"})
    assert wrong_flow.code == "invalid_params"
    # Below the dispatchers' validation the vault still refuses an unknown flow.
    caller = IdentityTools(alice.stack.deps, TOOLS).caller(
        {"sessionKey": MAIN, "requesterSenderId": "ou_alice", "messageChannel": "feishu"}
    )
    with pytest.raises(OperationError) as caught:
        await fetch(alice.stack.deps, caller, "openai", flow="bogus")
    assert caught.value.code == FetchFailure.INVALID_FLOW.value
    mismatch = await alice.command("fetch demo-m2m --flow=apikey")
    assert mismatch.is_error
    assert mismatch.text is not None
    assert "The provider 'demo-m2m' is not an API key provider." in mismatch.text
    assert alice.stack.sb.feishu.sent_messages == []


# ------------------------------------------------------------------- fetch: 3LO


async def test_three_legged_fetch_follows_up_on_feishu_when_it_completes(alice: Chat) -> None:
    stack = alice.stack
    events = stack.ident.tree.credential_vault.events.subscribe()
    reply = await alice.command("fetch demo-oauth")
    assert reply.is_error is None
    assert reply.text is not None
    intro, url, then = reply.text.splitlines()
    assert intro == "Open this link to authorize demo-oauth:"
    assert url.startswith(f"{stack.sb.base_url}/demo-oauth/authorize?")
    assert then == "You will get a message here once the credential is added."
    assert stack.sb.feishu.sent_messages == []  # nothing yet: the user has not consented
    assert "Authorization complete" in await consent(stack.browser, url)
    event = await next_event(events)
    assert event == CredentialAdded(
        alice.key,
        "demo-oauth",
        {"channel": "feishu", "senderId": "ou_alice", "to": "user:ou_alice"},
    )
    # The system's listener turns the flow's event into a follow-up on Feishu.
    followups = stack.ident.followups
    with trio.fail_after(10):
        await followups.wait_handled(1)
    assert stack.sb.feishu.texts_to("ou_alice") == [FOLLOW_UP.format("demo-oauth")]
    assert (followups.sent, followups.not_sent) == (1, 0)
    listing = await alice.tool("identity_list_credentials", {"name": "demo-oauth"})
    [provider] = listing.details["providers"]
    assert (provider["stored"], provider["flow"]) == (True, "oauth2-user")


async def test_three_legged_fetch_from_webchat_gets_no_push(feishu_stack: Stack) -> None:
    web = Chat(feishu_stack, sender="openclaw-control-ui", channel="webchat")
    await web.login()
    events = feishu_stack.ident.tree.credential_vault.events.subscribe()
    reply = await web.command("fetch demo-oauth")
    assert reply.text is not None
    _intro, url, then = reply.text.splitlines()
    assert then == "When you are done, check with /identity status."
    await consent(feishu_stack.browser, url)
    event = await next_event(events)
    assert isinstance(event, CredentialAdded)
    result = await CredentialFollowups(feishu_stack.deps.notifier).handle(event)
    assert result is not None
    assert result.status is SendStatus.SKIPPED
    assert feishu_stack.sb.feishu.send_requests == 0


async def test_three_legged_fetch_tool(alice: Chat) -> None:
    result = await alice.tool(
        "identity_fetch", {"provider": "demo-oauth", "scopes": ["profile"], "flow": "oauth2-user"}
    )
    details = result.details
    assert details["authUrl"].startswith(f"{alice.stack.sb.base_url}/demo-oauth/authorize?")
    assert "scope=profile&" in details["authUrl"]
    # The tool runs in alice's Feishu conversation, so a follow-up is promised there too.
    assert (details["pending"], details["followUp"], details["flow"]) == (
        True,
        True,
        "oauth2-user",
    )
    assert "success" not in details  # pending is not a failure (hosts grade on it)
    assert "You will get a message here once the credential is added." in text_of(result)


async def test_followups_ignore_tool_flows_and_failures(feishu_stack: Stack) -> None:
    followups = CredentialFollowups(feishu_stack.deps.notifier)
    assert await followups.handle(CredentialAdded("agent:main:main", "demo-oauth", {})) is None
    failed = CredentialFlowFailed(
        "agent:main:main",
        "demo-oauth",
        FetchFailure.DENIED,
        "denied",
        {"channel": "feishu", "to": "user:ou_alice"},
    )
    assert await followups.handle(failed) is None
    assert feishu_stack.sb.feishu.send_requests == 0


async def test_without_feishu_config_nothing_is_promised(open_stack: StackOpener) -> None:
    async with open_stack() as stack:
        chat = Chat(stack)
        await chat.login()
        reply = await chat.command("fetch demo-oauth")
        assert reply.text is not None
        assert reply.text.endswith("When you are done, check with /identity status.")


# ------------------------------------------------------------------- isolation


async def test_sessions_are_isolated(alice: Chat) -> None:
    bob = Chat(alice.stack, sender="ou_bob")
    await bob.login("bob")
    await alice.command("fetch openai")
    await alice.command("set openai OPENAI_API_KEY")
    listing = await bob.tool("identity_list_credentials", {})
    assert listing.details["credentials"] == []
    assert "stored" not in text_of(listing)
    gone = await bob.command("unset openai")
    assert gone.text == "openai has no env binding; nothing to remove."
    mine = await alice.tool("identity_list_credentials", {"name": "openai"})
    assert mine.details["credentials"][0]["envVar"] == "OPENAI_API_KEY"
    # A tool call cannot name another session: params are checked against the schema.
    error = await bob.tool_error("identity_list_credentials", {"sessionKey": alice.key})
    assert error.code == "invalid_params"

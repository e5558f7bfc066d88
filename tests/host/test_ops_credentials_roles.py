"""``/identity list-roles`` and ``get-role`` and their tools, through the real stack.

The keys ``get-role`` stores are read back through a tool-call lease (bound as
``DEMO_ACCESS_KEY``), which is how the test knows the real values a masked answer must not
contain.
"""

from __future__ import annotations

import logging

import pytest

from .conftest import Stack
from .test_ops_credentials import Chat, log_texts, text_of

ROLE_LINE = "• demo-role — role demo-readonly, user pool agent-identity-dev"


@pytest.fixture
async def alice(stack: Stack) -> Chat:
    """Alice on Telegram, logged in."""
    chat = Chat(stack, sender="1001", channel="telegram")
    await chat.login()
    return chat


async def stored_keys(chat: Chat, lease_id: str) -> dict[str, str]:
    """The role keys the session holds now (bound as DEMO_*; bind first if needed)."""
    bound = await chat.stack.deps.sessions.bindings(chat.key)
    if "demo-role" not in bound:
        reply = await chat.command("set demo-role DEMO_ACCESS_KEY")
        assert reply.is_error is None, reply.text
    keys = await chat.stack.deps.vault.lease(chat.key, lease_id)
    assert set(keys) == {"DEMO_ACCESS_KEY", "DEMO_SECRET_KEY", "DEMO_SESSION_TOKEN"}
    return keys


# ------------------------------------------------------------------- list-roles


async def test_list_roles(alice: Chat) -> None:
    reply = await alice.command("list-roles")
    assert reply.text == "\n".join(
        [
            "Role credential providers:",
            ROLE_LINE,
            "Get temporary keys: /identity get-role <provider>",
        ]
    )
    result = await alice.tool("identity_list_roles", {"prefix": "DEMO"})
    assert text_of(result).splitlines()[:2] == [
        'Role credential providers starting with "DEMO":',
        ROLE_LINE,
    ]
    [role] = result.details["roles"]
    assert result.details["prefix"] == "DEMO"
    assert (role["name"], role["roleName"], role["userPoolName"]) == (
        "demo-role",
        "demo-readonly",
        "agent-identity-dev",
    )
    assert role["trn"]
    none = await alice.command("list-roles zzz")
    assert none.text == 'No role credential providers starting with "zzz".'


async def test_list_roles_errors(stack: Stack) -> None:
    stranger = Chat(stack, sender="2002", channel="telegram")
    reply = await stranger.command("list-roles")
    assert reply.text is not None
    assert reply.text.startswith("⚠️ You are not logged in")
    assert (await stranger.tool_error("identity_list_roles", {})).code == "not_logged_in"
    alice = Chat(stack, sender="1001", channel="telegram")
    await alice.login()
    stack.sb.faults.add("ListRoleCredentialProviders", status=400, code="InvalidParameter")
    failed = await alice.tool_error("identity_list_roles", {})
    assert failed.code == "list_failed"
    assert failed.message.startswith("Listing role providers failed: InvalidParameter")


# ------------------------------------------------------------------- get-role


async def test_get_role_masks_the_keys(alice: Chat, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    reply = await alice.command("get-role demo-role")
    assert reply.is_error is None
    assert reply.text is not None
    keys = await stored_keys(alice, "run:1")
    lines = reply.text.splitlines()
    assert lines[0].startswith("Temporary credentials for demo-role (expire ")
    access = keys["DEMO_ACCESS_KEY"]
    assert lines[1] == f"AccessKeyId: {access[:4]}***{access[-4:]}"
    assert lines[2:4] == ["SecretAccessKey: ***", "SessionToken: ***"]
    assert lines[4] == "Assumed role: trn:sts::2100000001:assumed-role/demo-readonly/alice"
    assert "Show the keys: /identity get-role demo-role --show-secrets" in lines
    assert "Inject them into tools: /identity set demo-role <PREFIX>_ACCESS_KEY" in lines
    result = await alice.tool("identity_list_credentials", {})
    assert [c["name"] for c in result.details["credentials"]] == ["demo-role"]
    shown = reply.text + log_texts(caplog)
    assert not [value for value in keys.values() if value in shown]


async def test_get_role_shows_secrets_when_asked(alice: Chat) -> None:
    await alice.command("get-role demo-role")
    await stored_keys(alice, "run:1")  # binds demo-role
    reply = await alice.command("get-role demo-role --show-secrets")
    assert reply.text is not None
    keys = await stored_keys(alice, "run:2")  # the keys of this second call
    assert f"AccessKeyId: {keys['DEMO_ACCESS_KEY']}" in reply.text
    assert f"SecretAccessKey: {keys['DEMO_SECRET_KEY']}" in reply.text
    assert f"SessionToken: {keys['DEMO_SESSION_TOKEN']}" in reply.text
    assert "--show-secrets" not in reply.text
    assert "Bound for tools as DEMO_ACCESS_KEY, DEMO_SECRET_KEY, DEMO_SESSION_TOKEN." in reply.text
    assert "Inject them into tools" not in reply.text


async def test_get_role_with_the_tip(alice: Chat) -> None:
    reply = await alice.command("get-role demo-role --use-tip")
    assert reply.text is not None
    assert "Bound to the TIP's subject: alice" in reply.text.splitlines()


async def test_get_role_tool_returns_the_keys_flagged_secret(alice: Chat) -> None:
    result = await alice.tool(
        "identity_get_role_credentials", {"providerName": "demo-role", "useTip": True}
    )
    keys = await stored_keys(alice, "run:1")
    details = result.details
    assert (details["success"], details["secret"], details["masked"]) == (True, True, False)
    assert (details["accessKeyId"], details["secretAccessKey"], details["sessionToken"]) == (
        keys["DEMO_ACCESS_KEY"],
        keys["DEMO_SECRET_KEY"],
        keys["DEMO_SESSION_TOKEN"],
    )
    assert details["oidcSubject"] == "alice"
    assert details["expiration"]


async def test_get_role_errors(alice: Chat) -> None:
    unknown = await alice.command("get-role no-such-role")
    assert unknown.is_error
    assert unknown.text == "⚠️ There is no role credential provider named 'no-such-role'."
    error = await alice.tool_error("identity_get_role_credentials", {"providerName": "nope"})
    assert error.code == "get_role_failed"
    stranger = Chat(alice.stack, sender="2002", channel="telegram")
    refused = await stranger.command("get-role demo-role --show-secrets")
    assert refused.text is not None
    assert refused.text.startswith("⚠️ You are not logged in")
    not_in = await stranger.tool_error("identity_get_role_credentials", {"providerName": "x"})
    assert not_in.code == "not_logged_in"

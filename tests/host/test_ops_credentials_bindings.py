"""``/identity set`` and ``unset`` and their tools, through the real dispatchers and stack.

The lease the vault grants for a tool call (what ``before_tool_call`` injects) is the
evidence that a binding took effect; the gateway's environment is the ``environ`` the system
was started with.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from .conftest import Stack, StackOpener
from .test_ops_credentials import OPENAI_KEY, Chat, log_texts, text_of

ENV_VALUE = "env-imported-secret-0123456789"
GATEWAY_SECRET = "gateway-own-secret-key-0123456789"


@pytest.fixture
async def stack_with_env(open_stack: StackOpener) -> AsyncIterator[Stack]:
    """A running system whose gateway environment holds a user key and the gateway's own."""
    environ = {"MY_SERVICE_TOKEN": ENV_VALUE, "VOLCENGINE_SECRET_KEY": GATEWAY_SECRET}
    async with open_stack(environ=environ) as stack:
        yield stack


@pytest.fixture
async def alice(stack_with_env: Stack) -> Chat:
    """Alice on Telegram, logged in."""
    chat = Chat(stack_with_env, sender="1001", channel="telegram")
    await chat.login()
    return chat


async def lease(chat: Chat, lease_id: str) -> dict[str, str]:
    return await chat.stack.deps.vault.lease(chat.key, lease_id)


async def test_set_binds_a_stored_credential(alice: Chat) -> None:
    await alice.command("fetch openai")
    reply = await alice.command("set openai OPENAI_API_KEY")
    assert reply.is_error is None
    assert reply.text == "✓ openai's credential is injected as OPENAI_API_KEY into tool calls."
    assert await lease(alice, "run:1") == {"OPENAI_API_KEY": OPENAI_KEY}
    result = await alice.tool("identity_set_binding", {"provider": "openai", "envVar": "OAI_KEY"})
    assert result.details == {
        "success": True,
        "provider": "openai",
        "envVar": "OAI_KEY",
        "imported": False,
        "message": "openai's credential is injected as OAI_KEY into tool calls.",
    }
    assert await lease(alice, "run:2") == {"OAI_KEY": OPENAI_KEY}
    assert await alice.stack.deps.sessions.bindings(alice.key) == {"openai": "OAI_KEY"}


async def test_set_imports_the_gateways_value_without_showing_it(
    alice: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reply = await alice.command("set my-service MY_SERVICE_TOKEN")
    assert reply.text == (
        "✓ Imported MY_SERVICE_TOKEN from the gateway's environment as my-service's "
        "credential; it is injected as MY_SERVICE_TOKEN into tool calls."
    )
    assert await lease(alice, "run:1") == {"MY_SERVICE_TOKEN": ENV_VALUE}
    listing = await alice.tool("identity_list_credentials", {})
    [mine] = listing.details["credentials"]
    assert (mine["name"], mine["source"], mine["envVar"]) == (
        "my-service",
        "environment",
        "MY_SERVICE_TOKEN",
    )
    shown = [reply.text, text_of(listing), str(listing.details), log_texts(caplog)]
    assert not [text for text in shown if ENV_VALUE in text]


async def test_set_tool_reports_an_import(alice: Chat) -> None:
    result = await alice.tool(
        "identity_set_binding", {"provider": "my-service", "envVar": "MY_SERVICE_TOKEN"}
    )
    assert result.details["imported"] is True
    assert ENV_VALUE not in text_of(result)
    assert ENV_VALUE not in str(result.details)


@pytest.mark.parametrize("name", ["PATH", "Path", "LD_PRELOAD"])
async def test_set_refuses_names_that_change_how_tools_run(alice: Chat, name: str) -> None:
    await alice.command("fetch openai")
    reply = await alice.command(f"set openai {name}")
    assert reply.is_error
    assert reply.text == (
        f"⚠️ {name} is reserved: binding a credential to it would change how tools run."
    )
    error = await alice.tool_error("identity_set_binding", {"provider": "openai", "envVar": name})
    assert error.code == "reserved_name"
    assert await alice.stack.deps.sessions.bindings(alice.key) == {}


async def test_set_never_imports_the_gateways_own_keys(
    alice: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reply = await alice.command("set my-cloud VOLCENGINE_SECRET_KEY")
    assert reply.is_error
    assert reply.text is not None
    assert reply.text.startswith(
        "⚠️ VOLCENGINE_SECRET_KEY holds the gateway's own keys and is never imported."
    )
    error = await alice.tool_error(
        "identity_set_binding", {"provider": "my-cloud", "envVar": "VOLCENGINE_SECRET_KEY"}
    )
    assert error.code == "protected_variable"
    assert GATEWAY_SECRET not in reply.text + error.message + log_texts(caplog)
    assert await lease(alice, "run:1") == {}


async def test_set_without_anything_to_bind(alice: Chat) -> None:
    reply = await alice.command("set openai OPENAI_API_KEY")
    assert reply.is_error
    assert reply.text == (
        "⚠️ No credential for openai is stored and the gateway has no OPENAI_API_KEY to "
        "import. Fetch one first (/identity fetch openai)."
    )
    error = await alice.tool_error(
        "identity_set_binding", {"provider": "openai", "envVar": "OPENAI_API_KEY"}
    )
    assert error.code == "not_in_environment"
    invalid = await alice.tool_error("identity_set_binding", {"provider": "x", "envVar": "1BAD"})
    assert invalid.code == "invalid_params"


async def test_set_needs_a_login(stack_with_env: Stack) -> None:
    stranger = Chat(stack_with_env, sender="2002", channel="telegram")
    reply = await stranger.command("set my-service MY_SERVICE_TOKEN")
    assert reply.is_error
    assert reply.text is not None
    assert reply.text.startswith("⚠️ You are not logged in")
    error = await stranger.tool_error(
        "identity_set_binding", {"provider": "my-service", "envVar": "MY_SERVICE_TOKEN"}
    )
    assert error.code == "not_logged_in"
    # Nothing was imported for the stranger's session.
    assert await stack_with_env.deps.vault.describe(stranger.key) == []


async def test_unset_removes_the_binding(alice: Chat) -> None:
    await alice.command("fetch openai")
    await alice.command("set openai OPENAI_API_KEY")
    reply = await alice.command("unset openai")
    assert reply.is_error is None
    assert reply.text == "✓ Removed the binding of openai (OPENAI_API_KEY); tools no longer get it."
    assert await lease(alice, "run:1") == {}
    assert await alice.stack.deps.sessions.bindings(alice.key) == {}
    again = await alice.command("unset openai")
    assert again.is_error is None  # nothing to remove is an answer, not a failure
    assert again.text == "openai has no env binding; nothing to remove."
    result = await alice.tool("identity_unset_binding", {"provider": "openai"})
    assert result.details == {"removed": False, "provider": "openai", "envVar": None}


async def test_unset_tool_reports_what_it_removed(alice: Chat) -> None:
    await alice.command("set my-service MY_SERVICE_TOKEN")
    result = await alice.tool("identity_unset_binding", {"provider": "my-service"})
    assert result.details == {
        "removed": True,
        "provider": "my-service",
        "envVar": "MY_SERVICE_TOKEN",
    }


async def test_unset_without_a_login_is_harmless(stack_with_env: Stack) -> None:
    stranger = Chat(stack_with_env, sender="2002", channel="telegram")
    reply = await stranger.command("unset openai")
    assert (reply.is_error, reply.text) == (None, "openai has no env binding; nothing to remove.")

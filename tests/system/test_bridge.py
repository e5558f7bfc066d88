"""The gateway bridge's definitions and hooks over a real owner-only Unix socket.

A gateway shim (OpenClaw is Node.js) would do exactly this: read ``GET /definitions`` to
register, then forward each hook as ``POST /hook/<name>`` with ``{"event", "ctx"}`` and act
on the JSON result. Everything runs against the sandbox, logins through the provider's form.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from agent_identity.host.tool_specs import agent_tools

from .conftest import World
from .test_local_server_support import (
    ALICE_DM,
    MAIN,
    SANDBOX_OPENAI_KEY,
    Served,
    open_served,
)

URL = re.compile(r"https?://\S+")
HOOKS = ["after_tool_call", "before_agent_start", "before_dispatch", "before_tool_call",
         "subagent_spawned"]  # fmt: skip
#: The tool context of sender 42 on telegram, in the host's main session.
ALICE_CONTEXT = {"sessionKey": MAIN, "requesterSenderId": "42", "messageChannel": "telegram"}


@pytest.fixture
async def bridge(world: World) -> AsyncIterator[Served]:
    async with open_served(world, "bridge", allowlist=("*",)) as running:
        yield running


async def hook(client: httpx.AsyncClient, name: str, event: Any, ctx: Any = None) -> Any:
    body = {"event": event} if ctx is None else {"event": event, "ctx": ctx}
    response = await client.post(f"/hook/{name}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def exec_call(n: int, command: str = "env", **params: Any) -> dict[str, Any]:
    return {
        "toolName": "exec",
        "params": {"command": command, **params},
        "runId": "r",
        "toolCallId": f"c{n}",
    }


async def test_definitions_list_what_a_gateway_registers(bridge: Served) -> None:
    async with bridge.client() as client:
        response = await client.get("/definitions")
        wrong = await client.post("/definitions")
    assert response.status_code == 200
    body = response.json()
    assert body["hooks"] == HOOKS
    assert [c["name"] for c in body["commands"]] == ["identity", "id"]
    assert all(c["acceptsArgs"] is True for c in body["commands"])
    # Only what the agent may see: identity_approve_tool is not offered.
    assert body["tools"] == [
        {
            "name": spec.name,
            "label": spec.label,
            "description": spec.description,
            "parameters": spec.json_schema(),
        }
        for spec in agent_tools()
    ]
    assert "identity_approve_tool" not in {t["name"] for t in body["tools"]}
    assert body["gatewayMethods"] == []  # webchatSessionExchange is off
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method_not_allowed"
    assert wrong.headers["allow"] == "GET"


async def test_definitions_name_the_gateway_methods_when_they_are_on(world: World) -> None:
    exchange = {"webchatSessionExchange": True}
    async with (
        open_served(world, "bridge", allowlist=("*",), identity=exchange) as bridge,
        bridge.client() as client,
    ):
        body = (await client.get("/definitions")).json()
    assert body["gatewayMethods"] == ["identity.session.put", "identity.session.get"]


async def test_before_dispatch_blocks_with_a_login_url_until_the_user_logs_in(
    bridge: Served,
) -> None:
    message = {"content": "hello", "channel": "telegram", "senderId": "42"}
    async with bridge.client() as client:
        blocked = await hook(client, "before_dispatch", message, {"sessionKey": MAIN})
        assert blocked["handled"] is True
        found = URL.search(blocked["text"])
        assert found is not None, blocked
        page = await bridge.world.browse(found.group(0))
        assert page.status_code == 200
        # The login was for the sender's own effective key; now the message goes through.
        assert await bridge.ident.sessions.get(ALICE_DM) is not None
        assert await hook(client, "before_dispatch", message, {"sessionKey": MAIN}) is None
        # Another sender of the same host session is still gated.
        other = {**message, "senderId": "43"}
        assert (await hook(client, "before_dispatch", other, {"sessionKey": MAIN}))["handled"]


async def test_before_tool_call_injects_a_credential_bound_over_the_bridge(
    bridge: Served,
) -> None:
    await bridge.login(ALICE_DM)
    async with bridge.client() as client:
        for name, params in (
            ("identity_fetch", {"provider": "openai"}),
            ("identity_set_binding", {"provider": "openai", "envVar": "OPENAI_API_KEY"}),
        ):
            done = await client.post(
                f"/tool/{name}", json={"params": params, "context": ALICE_CONTEXT}
            )
            assert done.status_code == 200, done.text
        ctx = {"sessionKey": ALICE_DM}
        injected = await hook(client, "before_tool_call", exec_call(1, env={"FOO": "1"}), ctx)
        assert injected == {"params": {"env": {"FOO": "1", "OPENAI_API_KEY": SANDBOX_OPENAI_KEY}}}
        # Not an exec-style tool: no env to inject.
        fetch = {"toolName": "web_fetch", "params": {"url": "x"}, "toolCallId": "c2"}
        assert await hook(client, "before_tool_call", fetch, ctx) is None
        # Another session has no binding: nothing injected there.
        other = {"sessionKey": "agent:main:telegram:direct:77"}
        assert await hook(client, "before_tool_call", exec_call(3), other) is None
        assert (await bridge.ident.vault.statistics()).leases_active == 1
        after = {"toolName": "exec", "params": {"command": "env"}, "runId": "r", "toolCallId": "c1"}
        assert await hook(client, "after_tool_call", after, ctx) is None
    assert (await bridge.ident.vault.statistics()).leases_active == 0


async def test_a_body_the_bridge_cannot_decode_is_a_400_the_shim_treats_as_a_block(
    bridge: Served,
) -> None:
    async with bridge.client() as client:
        no_event = await client.post("/hook/before_tool_call", json={"ctx": {}})
        not_json = await client.post("/hook/before_tool_call", content=b"{not json")
        not_an_object = await client.post("/hook/before_tool_call", json={"event": [1]})
        # A decodable request with nonsense inside: the hook itself fails closed.
        nonsense = await hook(client, "before_tool_call", {"toolName": "exec", "params": 1}, {})
        unknown = await client.post("/hook/before_everything", json={"event": {}})
        wrong = await client.get("/hook/before_tool_call")
    for response in (no_event, not_json, not_an_object):
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_json"
    assert nonsense["block"] is True
    assert nonsense["blockReason"]
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "unknown_hook"
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"

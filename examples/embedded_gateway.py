"""A minimal chat gateway that embeds agent-identity in its own Trio nursery.

Run it with an ``openclaw.json`` (``agent-identity dev`` writes one for the sandbox)::

    python examples/embedded_gateway.py --config /tmp/agent-identity-dev/openclaw.json

It reads chat messages from stdin, one per line, ``<sender> <text>``, as if they came from
Telegram DMs, and does what a real gateway does with them:

* every message goes through the ``before_dispatch`` hook first (the login gate);
* ``/identity …`` and ``/id …`` run the plugin's command;
* ``<sender> !exec <command>`` plays the agent calling the ``exec`` tool: ``before_tool_call``
  decides (blocked, needs approval, or allowed with an env overlay) and ``after_tool_call``
  releases the call's credentials;
* anything else would go to the model (printed as a placeholder).

The OIDC callback route (``ident.asgi_app``) is served on the host and port of the config's
``callbackUrl``, as a gateway mounts it on its own HTTP server.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import trio

from agent_identity.config import load_config
from agent_identity.system import Identity, open_identity
from agent_identity.transports.callback import serve_callback_app


async def _lines(stream: trio.abc.ReceiveStream) -> AsyncIterator[str]:
    buffer = b""
    async for chunk in stream:
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line.decode().strip()
    if buffer.strip():
        yield buffer.decode().strip()


def say(sender: str, text: str) -> None:
    """What the gateway sends back to the chat."""
    print(f"[to {sender}] {text}", flush=True)


class Gateway:
    """Routes one chat line through the hooks, the command and the tool hooks."""

    def __init__(self, ident: Identity) -> None:
        self.ident = ident
        self.calls = 0

    async def handle(self, sender: str, text: str) -> None:
        key = f"agent:main:telegram:direct:{sender}"  # dmScope per-channel-peer
        where = {"sessionKey": key, "senderId": sender, "channel": "telegram"}
        claim = await self.ident.hooks.before_dispatch({"content": text, **where}, where)
        if claim is not None and claim.handled:
            say(sender, claim.text or "")
        elif text.startswith(("/identity", "/id")):
            reply = await self.ident.commands.handle({"commandBody": text, **where})
            say(sender, reply.text or "")
        elif text.startswith("!exec "):
            await self.exec_tool(sender, key, text.removeprefix("!exec "))
        else:
            say(sender, "(the model would answer here)")

    async def exec_tool(self, sender: str, key: str, command: str) -> None:
        self.calls += 1
        call = {"runId": "run-1", "toolCallId": f"call-{self.calls}"}
        event = {"toolName": "exec", "params": {"command": command}, **call}
        ctx = {"toolName": "exec", "sessionKey": key, **call}
        decision = await self.ident.hooks.before_tool_call(event, ctx)
        try:
            if decision is not None and decision.block:
                say(sender, f"exec blocked: {decision.block_reason}")
            elif decision is not None and decision.require_approval is not None:
                say(sender, f"exec needs approval: {decision.require_approval.description}")
            else:
                env = (decision.params or {}).get("env", {}) if decision is not None else {}
                # Only the names: the values are the user's secrets.
                say(sender, f"exec runs with env: {', '.join(sorted(env)) or '(none)'}")
        finally:
            await self.ident.hooks.after_tool_call({"toolName": "exec", "params": {}, **call}, ctx)


async def main(config_path: Path) -> None:
    """Run the gateway until stdin ends."""
    loaded = load_config(config_path)
    userpool = loaded.plugin.userpool
    async with open_identity(loaded) as ident, trio.open_nursery() as nursery:
        if ident.asgi_app is not None and userpool is not None:
            callback = urlsplit(userpool.callback_url)
            host, port = callback.hostname or "127.0.0.1", callback.port or 80
            await nursery.start(serve_callback_app, ident.asgi_app, host, port)
        print("gateway ready", flush=True)
        gateway = Gateway(ident)
        stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
        async for line in _lines(stdin):
            if " " in line:
                sender, text = line.split(" ", 1)
                await gateway.handle(sender, text.strip())
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="the openclaw.json to use")
    trio.run(main, parser.parse_args().config)

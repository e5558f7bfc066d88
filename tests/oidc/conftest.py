"""Fixtures: the sandbox and its control-plane client, a browser, and a real OpenID provider.

``interop`` runs panva's oidc-provider (``tests/oidc-provider/server.mjs``) with node on a free
loopback port, waits until its discovery document answers, and stops it at teardown. Tests
using it are skipped, with the reason shown, when ``node`` or the package's ``node_modules``
is missing. Parametrize it indirectly with the signing algorithm (RS256 by default).
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO

import httpx
import pytest
import trio

from agent_identity.oidc import OidcClient, OidcSettings
from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.volcengine import IdentityClient, RetryPolicy, SigningCredentials
from agent_identity.volcengine.transport import static_credentials

from .browser import Browser

CALLBACK = "http://127.0.0.1:18789/identity/oauth/callback"
POOL = "agent-identity-dev"
POOL_UID = "up-dev-0001"
CLIENT_UID = "client-openclaw-0001"
CLIENT_SECRET = "openclaw-gateway-client-secret"

PROVIDER_DIR = Path(__file__).resolve().parents[1] / "oidc-provider"
INTEROP_CLIENT_ID = "agent-identity-rp"
INTEROP_CLIENT_SECRET = "agent-identity-rp-secret/with+odd chars"
# Generous: the first start in a fresh clone loads node_modules from a cold disk cache, and a
# loaded 2-core CI machine has been seen to need more than 30 s for it.
_READY_TIMEOUT = 90.0

FAST_RETRY = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02, max_retry_after=1.0)


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with open_sandbox(rng=random.Random(5)) as sandbox:
        yield sandbox


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield Browser(client, CALLBACK)


@pytest.fixture
def identity(sb: Sandbox, http: httpx.AsyncClient) -> IdentityClient:
    root = SigningCredentials(sb.access_key_id, sb.secret_access_key)
    return IdentityClient(
        http, endpoint=sb.base_url, credentials=static_credentials(root), retry=FAST_RETRY
    )


def sandbox_settings(sb: Sandbox, **overrides: object) -> OidcSettings:
    values: dict[str, object] = {
        "discovery_url": sb.user_pool_discovery_url(POOL),
        "client_id": CLIENT_UID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": CALLBACK,
        **overrides,
    }
    return OidcSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def rp(sb: Sandbox, http: httpx.AsyncClient) -> OidcClient:
    """An explicit-mode client of the seeded pool, without an Identity client."""
    return OidcClient(sandbox_settings(sb), http)


# -- the real OpenID provider ----------------------------------------------------------------


@dataclass
class InteropProvider:
    """A running oidc-provider and the client registered in it."""

    issuer: str
    http: httpx.AsyncClient
    alg: str
    client_id: str = INTEROP_CLIENT_ID
    client_secret: str = INTEROP_CLIENT_SECRET
    redirect_uri: str = CALLBACK

    async def rotate(self, *, keep: bool, alg: str | None = None) -> str:
        params = {"keep": "1" if keep else "0", **({"alg": alg} if alg else {})}
        response = await self.http.post(f"{self.issuer}/__admin/rotate", params=params)
        response.raise_for_status()
        kid: str = response.json()["kid"]
        return kid


def interop_skip_reason() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (the oidc-provider interop tests need Node.js 20+)"
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        return "tests/oidc-provider/node_modules is missing: run `npm ci` there (scripts/install)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _open_log(path: Path) -> IO[bytes]:
    return path.open("wb")


async def _wait_ready(
    http: httpx.AsyncClient, issuer: str, process: trio.Process, log: Path
) -> None:
    with trio.move_on_after(_READY_TIMEOUT):
        while process.returncode is None:
            try:
                response = await http.get(f"{issuer}/.well-known/openid-configuration")
            except httpx.TransportError:
                await trio.sleep(0.05)
                continue
            if response.status_code == 200:
                return
            await trio.sleep(0.05)
    output = await trio.Path(log).read_text(errors="replace")
    pytest.fail(f"oidc-provider did not start (exit {process.returncode}):\n{output}")


@asynccontextmanager
async def run_oidc_provider(
    http: httpx.AsyncClient, alg: str, log: Path
) -> AsyncIterator[InteropProvider]:
    node = shutil.which("node")
    assert node is not None
    port = _free_port()
    env = {
        **os.environ,
        "OIDC_SIGNING_ALG": alg,
        "OIDC_CLIENT_ID": INTEROP_CLIENT_ID,
        "OIDC_CLIENT_SECRET": INTEROP_CLIENT_SECRET,
        "OIDC_REDIRECT_URIS": CALLBACK,
    }
    command = [node, "server.mjs", "--port", str(port)]
    with _open_log(log) as output:
        async with trio.open_nursery() as nursery:
            process: trio.Process = await nursery.start(
                partial(
                    trio.run_process,
                    command,
                    cwd=PROVIDER_DIR,
                    env=env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    check=False,
                )
            )
            try:
                issuer = f"http://127.0.0.1:{port}"
                await _wait_ready(http, issuer, process, log)
                yield InteropProvider(issuer, http, alg)
            finally:
                # run_process answers cancellation with SIGTERM (then SIGKILL after 5 s).
                nursery.cancel_scope.cancel()


@pytest.fixture
async def interop(
    request: pytest.FixtureRequest, http: httpx.AsyncClient, tmp_path: Path
) -> AsyncIterator[InteropProvider]:
    reason = interop_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    alg = getattr(request, "param", "RS256")
    async with run_oidc_provider(http, alg, tmp_path / "oidc-provider.log") as provider:
        yield provider

"""Fixtures shared by the vault tests: a loopback sandbox and an Identity client on it.

A module that needs something else defines a fixture of the same name, which wins.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import httpx
import pytest

from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.volcengine import IdentityClient

from .vault_support import Running, identity_client, mint_tip, running_vault


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with open_sandbox(rng=random.Random(20261129)) as sandbox:  # fault rates
        yield sandbox


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
def client(sb: Sandbox, http: httpx.AsyncClient) -> IdentityClient:
    return identity_client(http, sb.base_url, sb)


@pytest.fixture
async def tip(client: IdentityClient, sb: Sandbox) -> str:
    return await mint_tip(client, sb, "alice")


@pytest.fixture
async def vault(client: IdentityClient) -> AsyncIterator[Running]:
    async with running_vault(client) as running:
        yield running

"""Fixtures: a fresh sandbox per test (seeded Random for fault rates) and a signing client."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import httpx
import pytest

from agent_identity.sandbox import Sandbox, open_sandbox

from .helpers import Api


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    rng = random.Random(20261129)
    async with open_sandbox(rng=rng) as sandbox:
        yield sandbox


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
def api(sb: Sandbox, http: httpx.AsyncClient) -> Api:
    return Api(http, sb)

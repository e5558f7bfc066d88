"""Bindings and per-tool-call leases, through the running vault (no network needed).

Credentials come from ``set``'s import of the gateway's environment mapping, so these tests
never reach a control plane (the vault's Identity client points at a closed port).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import pytest
import trio
import trio.testing

from agent_identity.actors.session_store_messages import SessionStoreClient
from agent_identity.actors.vault_leases import DEFAULT_LEASE_TTL
from agent_identity.actors.vault_types import BindingFailure, ProviderStatus
from agent_identity.kernel import ActorStopped
from agent_identity.storage import Snapshot

from .vault_support import Running, offline_identity, running_vault

ALICE = "agent:main:telegram:direct:alice"
BOB = "agent:main:telegram:direct:bob"
ENV = {"OPENAI_API_KEY": "sk-alice-0001", "GITHUB_TOKEN": "ghp-alice-0002", "EMPTY": ""}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
async def vault(http: httpx.AsyncClient) -> AsyncIterator[Running]:
    async with running_vault(offline_identity(http)) as running:
        yield running


async def test_invalid_env_var_names_are_refused(vault: Running) -> None:
    for name in ("1ABC", "MY-VAR", "A B", "", "X" * 300, "É", "A=B", "a\nb"):
        result = await vault.creds.set_binding(ALICE, "openai", name, environ={name: "v"})
        assert not result.ok, name
        assert result.failure is BindingFailure.INVALID_NAME
        assert "not a valid environment variable name" in result.message
    for name in ("PATH", "ld_preload", "NODE_OPTIONS"):
        result = await vault.creds.set_binding(ALICE, "openai", name, environ={name: "v"})
        assert result.failure is BindingFailure.RESERVED_NAME, name
    blank = await vault.creds.set_binding(ALICE, " ", "OPENAI_API_KEY", environ=ENV)
    assert blank.failure is BindingFailure.INVALID_PROVIDER
    assert await vault.sessions.bindings(ALICE) == {}
    assert await vault.creds.describe(ALICE) == []


async def test_import_from_environ_and_persist(vault: Running) -> None:
    result = await vault.creds.set_binding(ALICE, "openai", "OPENAI_API_KEY", environ=ENV)
    assert (result.ok, result.imported) == (True, True)
    assert "Imported OPENAI_API_KEY" in result.message
    assert "sk-alice-0001" not in result.message
    assert await vault.sessions.bindings(ALICE) == {"openai": "OPENAI_API_KEY"}
    await vault.sessions.flush()
    assert vault.backend.snapshot.bindings == {ALICE: {"openai": "OPENAI_API_KEY"}}
    [status] = await vault.creds.describe(ALICE)
    assert status == ProviderStatus(
        name="openai",
        type="api_key",
        stored=True,
        env_var="OPENAI_API_KEY",
        source="environment",
    )
    assert await vault.creds.lease(ALICE, "r1:c1") == {"OPENAI_API_KEY": "sk-alice-0001"}
    # Rebinding to another name keeps the stored credential (nothing imported again).
    moved = await vault.creds.set_binding(ALICE, "openai", "OPENAI_KEY", environ={})
    assert (moved.ok, moved.imported) == (True, False)
    assert await vault.creds.lease(ALICE, "r1:c2") == {"OPENAI_KEY": "sk-alice-0001"}
    assert "OPENAI_API_KEY" not in os.environ or os.environ["OPENAI_API_KEY"] != "sk-alice-0001"


async def test_import_refusals(vault: Running) -> None:
    absent = await vault.creds.set_binding(ALICE, "openai", "NOT_THERE", environ=ENV)
    assert absent.failure is BindingFailure.NOT_IN_ENVIRONMENT
    empty = await vault.creds.set_binding(ALICE, "openai", "EMPTY", environ=ENV)
    assert empty.failure is BindingFailure.NOT_IN_ENVIRONMENT
    gateway = {"VOLCENGINE_SECRET_KEY": "gateway-root-secret"}
    protected = await vault.creds.set_binding(
        ALICE, "volc", "VOLCENGINE_SECRET_KEY", environ=gateway
    )
    assert protected.failure is BindingFailure.PROTECTED_VARIABLE
    assert "gateway-root-secret" not in protected.message
    assert await vault.sessions.bindings(ALICE) == {}
    assert (await vault.creds.statistics()).credentials == 0


async def test_unset_and_bindings_loaded_from_the_store(http: httpx.AsyncClient) -> None:
    # Bindings persisted by an earlier run of the gateway: the credential is gone (memory
    # only), the binding is not.
    async with running_vault(offline_identity(http)) as vault:
        await vault.sessions.set_binding(ALICE, "github", "GITHUB_TOKEN")
        assert await vault.creds.describe(ALICE) == [
            ProviderStatus(name="github", type="", env_var="GITHUB_TOKEN")
        ]
        assert await vault.creds.lease(ALICE, "r:c") == {}  # bound, but nothing stored
        again = await vault.creds.set_binding(ALICE, "github", "GITHUB_TOKEN", environ=ENV)
        assert again.imported
        assert await vault.creds.lease(ALICE, "r:c") == {"GITHUB_TOKEN": "ghp-alice-0002"}
        assert await vault.creds.unset_binding(ALICE, "github")
        assert not await vault.creds.unset_binding(ALICE, "github")
        assert await vault.sessions.bindings(ALICE) == {}
        assert await vault.creds.lease(ALICE, "r:c2") == {}
        [status] = await vault.creds.describe(ALICE)
        assert (status.stored, status.env_var) == (True, None)


async def test_first_lease_loads_bindings_from_the_store(http: httpx.AsyncClient) -> None:
    async with running_vault(offline_identity(http)) as vault:
        result = await vault.creds.set_binding(ALICE, "openai", "OPENAI_API_KEY", environ=ENV)
        assert result.ok
        await trio.testing.wait_all_tasks_blocked()  # the bindings prefetch is done
        state = vault.vault._state  # forget the cache by hand
        assert state is not None
        assert state.bindings[ALICE] == {"openai": "OPENAI_API_KEY"}
        await vault.sessions.set_binding(ALICE, "github", "GITHUB_TOKEN")
        del state.bindings[ALICE]
        overlay = await vault.creds.lease(ALICE, "r:c")
        assert overlay == {"OPENAI_API_KEY": "sk-alice-0001"}
        assert (await vault.creds.statistics()).bound_sessions == 1


async def test_leases_release_and_isolation(vault: Running) -> None:
    await vault.creds.set_binding(ALICE, "openai", "OPENAI_API_KEY", environ=ENV)
    bob_env = {"OPENAI_API_KEY": "sk-bob-0003"}
    await vault.creds.set_binding(BOB, "openai", "OPENAI_API_KEY", environ=bob_env)
    assert await vault.creds.lease(ALICE, "run:1") == {"OPENAI_API_KEY": "sk-alice-0001"}
    assert await vault.creds.lease(BOB, "run:2") == {"OPENAI_API_KEY": "sk-bob-0003"}
    # A lease id held by another session injects nothing.
    assert await vault.creds.lease(BOB, "run:1") == {}
    # Renewing one's own lease is fine.
    assert await vault.creds.lease(ALICE, "run:1") == {"OPENAI_API_KEY": "sk-alice-0001"}
    stats = await vault.creds.statistics()
    assert (stats.leases_active, stats.leases_granted) == (2, 3)
    assert await vault.creds.release("run:1")
    assert not await vault.creds.release("run:1")
    assert await vault.creds.lease(BOB, "run:1") == {"OPENAI_API_KEY": "sk-bob-0003"}
    # Nothing stored, nothing leased.
    assert await vault.creds.lease("agent:main:main", "run:3") == {}
    stats = await vault.creds.statistics()
    assert (stats.leases_active, stats.leases_released) == (2, 1)


async def test_logout_drops_credentials_and_leases(vault: Running) -> None:
    await vault.creds.set_binding(ALICE, "openai", "OPENAI_API_KEY", environ=ENV)
    await vault.creds.set_binding(ALICE, "github", "GITHUB_TOKEN", environ=ENV)
    await vault.creds.set_binding(BOB, "openai", "OPENAI_API_KEY", environ={"OPENAI_API_KEY": "b"})
    assert len(await vault.creds.lease(ALICE, "a:1")) == 2
    assert await vault.creds.clear(ALICE) == 2
    assert await vault.creds.lease(ALICE, "a:2") == {}
    assert not await vault.creds.release("a:1")
    assert await vault.creds.lease(BOB, "b:1") == {"OPENAI_API_KEY": "b"}
    stats = await vault.creds.statistics()
    assert (stats.sessions, stats.credentials, stats.leases_active) == (1, 1, 1)
    # The bindings stay in the store (its own delete removes them at logout).
    assert await vault.sessions.bindings(ALICE) == {
        "openai": "OPENAI_API_KEY",
        "github": "GITHUB_TOKEN",
    }


async def test_leases_expire_after_the_ttl(
    http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    # No sockets are used here, so virtual time is safe.
    async with running_vault(offline_identity(http)) as vault:
        await vault.creds.set_binding(ALICE, "openai", "OPENAI_API_KEY", environ=ENV)
        await vault.creds.lease(ALICE, "r:1")
        await trio.sleep(DEFAULT_LEASE_TTL / 2)
        await vault.creds.lease(ALICE, "r:2")
        await trio.sleep(DEFAULT_LEASE_TTL / 2 + 1)
        stats = await vault.creds.statistics()
        assert (stats.leases_active, stats.leases_expired) == (1, 1)
        await trio.sleep(DEFAULT_LEASE_TTL)
        stats = await vault.creds.statistics()
        assert (stats.leases_active, stats.leases_expired) == (0, 2)
        assert not await vault.creds.release("r:2")


async def test_expired_credentials_are_not_injected(
    http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    async with running_vault(offline_identity(http)) as vault:
        await vault.creds.set_binding(ALICE, "openai", "OPENAI_API_KEY", environ=ENV)
        state = vault.vault._state  # age the credential by hand
        assert state is not None
        credential = state.credentials[ALICE]["openai"]
        from dataclasses import replace

        state.credentials[ALICE]["openai"] = replace(credential, expires_at=trio.current_time() + 5)
        assert await vault.creds.lease(ALICE, "r:1") == {"OPENAI_API_KEY": "sk-alice-0001"}
        await trio.sleep(6)
        assert await vault.creds.lease(ALICE, "r:2") == {}
        [status] = await vault.creds.describe(ALICE)
        assert (status.stored, status.expired, status.expires_in) == (True, True, 0)


async def test_store_failures_reach_the_caller(http: httpx.AsyncClient) -> None:
    async with running_vault(offline_identity(http)) as vault:
        await vault.store.stop()
        with pytest.raises(ActorStopped):
            await vault.creds.set_binding(ALICE, "openai", "OPENAI_API_KEY", environ=ENV)
        with pytest.raises(ActorStopped):
            await vault.creds.describe(ALICE)
        # The vault itself is fine.
        assert (await vault.creds.statistics()).actor.running


class GatedSessions:
    """A session store client whose binding reads wait for a gate."""

    def __init__(self, inner: SessionStoreClient) -> None:
        self.inner = inner
        self.gate = trio.Event()

    async def bindings(self, key: str) -> dict[str, str]:
        await self.gate.wait()
        return await self.inner.bindings(key)


async def test_the_callers_deadline_travels_with_background_requests(
    http: httpx.AsyncClient,
) -> None:
    async with running_vault(offline_identity(http)) as vault:
        state = vault.vault._state  # slow the store down by hand
        assert state is not None
        gated = GatedSessions(vault.sessions)
        state.sessions = gated  # type: ignore[assignment]
        with trio.move_on_after(0.05) as scope:
            await vault.creds.describe(ALICE)
        assert scope.cancelled_caught
        # The vault's task gave up at the caller's deadline too, although the store hangs.
        await trio.testing.wait_all_tasks_blocked()
        assert (await vault.creds.statistics()).calls_running == 0
        gated.gate.set()
        assert await vault.creds.describe(ALICE) == []


async def test_restart_starts_empty(http: httpx.AsyncClient) -> None:
    async with running_vault(offline_identity(http)) as vault:
        await vault.creds.set_binding(ALICE, "openai", "OPENAI_API_KEY", environ=ENV)
        await vault.vault.stop()
        with pytest.raises(ActorStopped):
            await vault.creds.statistics()
        stopped = vault.vault.vault_statistics()
        assert not stopped.actor.running
        async with trio.open_nursery() as nursery:
            await nursery.start(vault.vault.run)
            assert await vault.creds.describe(ALICE) == [
                ProviderStatus(name="openai", type="", env_var="OPENAI_API_KEY")
            ]
            stats = await vault.creds.statistics()
            assert (stats.credentials, stats.actor.restarts) == (0, 1)
            with pytest.raises(RuntimeError, match="already running"):
                await vault.vault.run()
            nursery.cancel_scope.cancel()


async def test_statistics_before_start(http: httpx.AsyncClient) -> None:
    from agent_identity.actors.credential_vault import CredentialVault
    from agent_identity.actors.session_store import SessionStore
    from agent_identity.storage import MemoryBackend

    store = SessionStore(MemoryBackend(Snapshot()))
    vault = CredentialVault(offline_identity(http), store.client)
    stats = vault.vault_statistics()
    assert (stats.sessions, stats.leases_active, stats.actor.running) == (0, 0, False)
    assert "credential_vault" in repr(vault.client)
    with pytest.raises(ValueError, match="positive"):
        CredentialVault(offline_identity(http), store.client, lease_ttl=0)

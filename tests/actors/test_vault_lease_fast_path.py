"""The vault's synchronous lease path and its lease sweeper, on Trio's mock clock.

``lease_nowait``/``release_nowait`` answer what ``GrantLease``/``ReleaseLease`` answer when the
session's bindings are in memory, in the caller's task; otherwise ``None`` (ask the actor).
Granting never wakes the sweeper (every lease lives the same TTL), yet unreleased leases
still expire on time, the idle sweeper included. The vault's control plane is a closed port:
API keys are imported from an environment, nothing is fetched.
"""

from __future__ import annotations

import httpx
import trio
import trio.testing

from agent_identity.actors.vault_messages import CredentialVaultClient

from .vault_support import offline_identity, running_vault

ALICE = "agent:main:telegram:direct:42"
BOB = "agent:main:telegram:direct:77"
TTL = 60.0


async def warm(creds: CredentialVaultClient) -> None:
    """One asked lease: the session's bindings are in the vault's memory from now on."""
    assert await creds.lease(ALICE, "warm-up")
    assert await creds.release("warm-up")


async def test_the_fast_lease_is_the_asked_lease(autojump_clock: trio.testing.MockClock) -> None:
    async with httpx.AsyncClient() as http, running_vault(offline_identity(http)) as run:
        creds = run.creds
        assert creds.lease_nowait(ALICE, "r:c0") == {}  # no credential: nothing to inject
        bound = await creds.set_binding(ALICE, "openai", "OPENAI_API_KEY", environ=ENV)
        assert bound.ok, bound.message
        await warm(creds)
        handled = run.vault.statistics().handled
        fast = creds.lease_nowait(ALICE, "r:c1")
        assert fast == {"OPENAI_API_KEY": ENV["OPENAI_API_KEY"]}
        assert await creds.lease(ALICE, "r:c2") == fast
        assert creds.lease_nowait(BOB, "r:c1") == {}  # another session's lease id: refused
        assert creds.release_nowait("r:c1") is True
        assert creds.release_nowait("r:c1") is False
        assert await creds.release("r:c2") is True
        assert run.vault.statistics().handled == handled + 2  # the two asked ones only
        stats = await creds.statistics()
        assert (stats.leases_granted, stats.leases_released, stats.leases_active) == (3, 3, 0)


async def test_a_stopped_vault_has_no_fast_path(autojump_clock: trio.testing.MockClock) -> None:
    async with httpx.AsyncClient() as http, running_vault(offline_identity(http)) as run:
        await run.creds.set_binding(ALICE, "openai", "OPENAI_API_KEY", environ=ENV)
        await warm(run.creds)
        assert run.creds.lease_nowait(ALICE, "r:c1")
        await run.vault.stop()
        assert run.creds.lease_nowait(ALICE, "r:c2") is None
        assert run.creds.release_nowait("r:c1") is None


class SweeperSteps(trio.abc.Instrument):
    """Counts the steps of the vault's lease sweeper task (each one a wake-up)."""

    def __init__(self) -> None:
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith("sweep_leases"):
            self.steps += 1


async def test_unreleased_leases_expire_without_waking_the_sweeper_per_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with (
        httpx.AsyncClient() as http,
        running_vault(offline_identity(http), lease_ttl=TTL) as run,
    ):
        creds = run.creds
        await creds.set_binding(ALICE, "openai", "OPENAI_API_KEY", environ=ENV)
        await warm(creds)
        await trio.sleep(1000)  # the sweeper is idle: no lease for a long time
        sweeper = SweeperSteps()
        trio.lowlevel.add_instrument(sweeper)
        try:
            for n in range(50):  # a tool loop: each lease released before the next call
                assert creds.lease_nowait(ALICE, f"r:{n}")
                assert creds.release_nowait(f"r:{n}") is True
                await trio.sleep(0.1)
        finally:
            trio.lowlevel.remove_instrument(sweeper)
        assert sweeper.steps == 0  # granting into an empty table woke nobody
        assert creds.lease_nowait(ALICE, "r:forgotten")  # after_tool_call never comes
        await trio.sleep(TTL - 0.5)
        assert (await creds.statistics()).leases_active == 1
        await trio.sleep(0.6)  # swept when it expires, although the sweeper was idle
        stats = await creds.statistics()
        assert (stats.leases_active, stats.leases_expired) == (0, 1)


ENV = {"OPENAI_API_KEY": "sk-imported-for-the-fast-path-test"}
